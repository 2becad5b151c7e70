//! `cargo bench -p recsys_model --bench catalogue_scoring`: whole-catalogue scoring speed per precision, users per
//! pass and libtorch thread count, at the ML-1M shape (6,040 users × 3,706 movies) and the ml-latest-small one
//! (610 users × 9,742 movies), seed dimensions, random weights. Also the bfloat16 ranking's exact rescoring, and
//! two-stage ranking (fit time, ms per user, recall@10 against exhaustive) up to the ML-25M catalogue (62,423 movies),
//! and single pairs through the plain-Rust path (`RECSYS_BENCH_SINGLE_PAIRS_ONLY=1` for that line alone).
use recsys_model::config::{Cardinalities, ModelConfig};
use recsys_model::network::ContentInputs;
use recsys_model::ranking::{rank_users, RankOptions, Ranking, Retrieval};
use recsys_model::scoring::{CatalogueScorer, Precision};
use recsys_model::HybridRecommender;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

fn scorer(users: i64, movies: i64) -> CatalogueScorer {
    let config = ModelConfig {
        use_biases: true,
        movie_id_dropout: 0.1,
        content_projection: true,
        ..ModelConfig::seed_architecture(Cardinalities { users, movies, genres: 18, directors: 2000, actors: 8000 })
    };
    let store = nn::VarStore::new(Device::Cpu);
    let network = HybridRecommender::new(&store.root(), &config);
    let options = (Kind::Float, Device::Cpu);
    let content = ContentInputs {
        genres: Tensor::zeros([movies, 18], options),
        titles: Tensor::randn([movies, config.title_dim], options),
        directors: Tensor::zeros([movies, config.max_directors], (Kind::Int64, Device::Cpu)),
        actors: Tensor::zeros([movies, config.max_actors], (Kind::Int64, Device::Cpu)),
        numeric: Tensor::zeros([movies, 2], options),
    };
    let encoded = tch::no_grad(|| network.encode_content(&content)).unwrap();
    let rows = Tensor::arange_start(1, movies + 1, (Kind::Int64, Device::Cpu));
    network.catalogue_scorer(&rows, &encoded).unwrap()
}

/// Rankings of `user_rows`, `per_pass` users at a time, and the seconds per user they took.
fn ranked(scorer: &CatalogueScorer, user_rows: &[i64], ids: &[i32], options: RankOptions, per_pass: usize) -> (Vec<Ranking>, f64) {
    let started = Instant::now();
    let mut rankings = Vec::new();
    for chunk in user_rows.chunks(per_pass) {
        rankings.extend(rank_users(scorer, chunk, |_| (0..ids.len()).collect(), ids, options).unwrap());
    }
    (rankings, started.elapsed().as_secs_f64() / user_rows.len() as f64)
}

fn two_stage(users: i64, movies: i64) {
    let scorer = scorer(users, movies);
    let ids: Vec<i32> = (1..=movies as i32).collect();
    let user_rows: Vec<i64> = (1..=100).collect();
    tch::set_num_threads(1);
    let precision = Precision::fastest_available();
    let exhaustive = RankOptions { k: 10, precision, retrieval: Retrieval::Exhaustive };
    let (exact, exhaustive_seconds) = ranked(&scorer, &user_rows, &ids, exhaustive, 1);
    let started = Instant::now();
    let _ = scorer.approximate_catalogue(&[1]).unwrap();
    let fit = started.elapsed().as_secs_f64();
    for candidates in [100, 400] {
        let options = RankOptions { retrieval: Retrieval::TwoStage { candidates }, ..exhaustive };
        let (two_stage, seconds) = ranked(&scorer, &user_rows, &ids, options, 32);
        let hits: usize = two_stage.iter().zip(&exact).map(|(r, e)| r.iter().filter(|m| e.iter().any(|x| x.0 == m.0)).count()).sum();
        println!(
            "{movies} movies, 1 thread: exhaustive {:.2} ms/user; two-stage {candidates} candidates {:.2} ms/user (fit once {:.2} s), recall@10 {:.3}",
            exhaustive_seconds * 1000.0,
            seconds * 1000.0,
            fit,
            hits as f64 / (10 * exact.len()) as f64
        );
    }
}

/// One pair at a time through the plain-Rust path (recsys_predict's): µs per pair once both parts are cached, over
/// 1M pairs of the ML-1M shape.
fn single_pairs() {
    let scorer = scorer(6040, 3706);
    let pairs: Vec<(usize, usize)> = (0..1_000_000usize).map(|i| (1 + i % 6040, (i * 7) % 3706)).collect();
    let mut total = 0f32;
    for &(user, movie) in &pairs {
        total += scorer.raw_score(user, movie).unwrap();
    }
    let started = Instant::now();
    for &(user, movie) in &pairs {
        total += scorer.raw_score(user, movie).unwrap();
    }
    println!("single pairs (plain Rust, parts cached): {:.2} µs/pair ({total:.0})", started.elapsed().as_secs_f64());
}

fn main() {
    single_pairs();
    if std::env::var_os("RECSYS_BENCH_SINGLE_PAIRS_ONLY").is_some() {
        return;
    }
    for (users, movies) in [(6040i64, 3706i64), (162_541, 62_423)] {
        two_stage(users, movies);
    }
    let precisions = [Precision::Float32, Precision::fastest_available()];
    for (users, movies) in [(6040i64, 3706i64), (610, 9742)] {
        let scorer = scorer(users, movies);
        let ids: Vec<i32> = (1..=movies as i32).collect();
        let sample_users = 300i64.min(users);
        let user_rows: Vec<i64> = (1..=sample_users).collect();
        for threads in [1, 2] {
            tch::set_num_threads(threads);
            for precision in precisions.iter().copied().collect::<std::collections::BTreeSet<_>>() {
                for per_pass in [1usize, 4] {
                    let started = Instant::now();
                    for chunk in user_rows.chunks(per_pass) {
                        let _ = scorer.score_catalogue(chunk, precision).unwrap();
                    }
                    let scoring = started.elapsed().as_secs_f64() / sample_users as f64;
                    let started = Instant::now();
                    for chunk in user_rows.chunks(per_pass) {
                        let options = RankOptions { k: 10, precision, retrieval: Retrieval::Exhaustive };
                        let _ = rank_users(&scorer, chunk, |_| (0..movies as usize).collect(), &ids, options).unwrap();
                    }
                    let ranking = started.elapsed().as_secs_f64() / sample_users as f64;
                    println!(
                        "{movies} movies, {precision:?}, threads {threads}, {per_pass} users per pass: score {:.2} ms/user, top-10 {:.2} ms/user, all {users} users ≈ {:.1} s",
                        scoring * 1000.0,
                        ranking * 1000.0,
                        ranking * users as f64
                    );
                }
            }
        }
    }
}
