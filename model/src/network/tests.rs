//! Unit tests of the hybrid network and its catalogue scorer, and the small fixtures other modules' tests share.
use super::*;
use crate::config::Cardinalities;
use crate::scoring::Precision;
use tch::Device;

pub(crate) fn small_config() -> ModelConfig {
    let mut config = ModelConfig {
        use_biases: true,
        movie_id_dropout: 0.1,
        content_projection: true,
        ..ModelConfig::seed_architecture(Cardinalities { users: 5, movies: 4, genres: 3, directors: 2, actors: 3 })
    };
    config.title_dim = 8;
    config
}

pub(crate) fn content(rows: i64, config: &ModelConfig) -> ContentInputs {
    let options = (Kind::Float, Device::Cpu);
    ContentInputs {
        genres: Tensor::ones([rows, config.cardinalities.genres], options),
        titles: Tensor::randn([rows, config.title_dim], options),
        directors: Tensor::from_slice(&[1i64, 0, 0, 0]).repeat([rows, 1]),
        actors: Tensor::from_slice(&[1i64, 2, 3, 0]).repeat([rows, 1]),
        numeric: Tensor::zeros([rows, 2], options),
    }
}

#[test]
fn predictions_have_one_value_per_pair_within_the_scale() {
    let store = nn::VarStore::new(Device::Cpu);
    let config = small_config();
    let network = HybridRecommender::new(&store.root(), &config);
    let users = Tensor::from_slice(&[1i64, 2, 0]);
    let movies = Tensor::from_slice(&[1i64, 0, 4]);
    let predictions = network.predict(&users, &movies, &content(3, &config)).unwrap();
    assert_eq!(predictions.size(), vec![3]);
    let values: Vec<f32> = Vec::try_from(&predictions).unwrap();
    assert!(values.iter().all(|v| (0.5..=5.0).contains(v)), "{values:?}");
}

#[test]
fn unknown_rows_start_at_zero_and_cold_movies_depend_on_content() {
    let store = nn::VarStore::new(Device::Cpu);
    let config = small_config();
    let network = HybridRecommender::new(&store.root(), &config);
    assert_eq!(network.movie_embedding.get(0).abs().sum(Kind::Float).double_value(&[]), 0.0);
    let cold = Tensor::from_slice(&[0i64, 0]);
    let users = Tensor::from_slice(&[1i64, 1]);
    let mut inputs = content(2, &config);
    inputs.titles = Tensor::randn([2, config.title_dim], (Kind::Float, Device::Cpu)) * 3.0;
    let scores: Vec<f32> = Vec::try_from(&network.raw_scores_for_rows(&users, &cold, &network.encode_content(&inputs).unwrap()).unwrap()).unwrap();
    assert_ne!(scores[0], scores[1], "two unseen movies with different content score differently");
}

#[test]
fn a_few_optimiser_steps_fit_a_tiny_problem() {
    for (dot_product, precision) in [(false, Precision::Float32), (true, Precision::Float32), (true, Precision::Bfloat16)] {
        tch::manual_seed(1);
        let store = nn::VarStore::new(Device::Cpu);
        let mut config = small_config();
        config.movie_id_dropout = 0.0;
        config.dot_product = dot_product;
        let network = HybridRecommender::new(&store.root(), &config);
        network.set_global_bias(3.0).unwrap();
        let batch = crate::TrainingBatch {
            users: Tensor::from_slice(&[1i64, 2, 3, 4, 5, 1]),
            movies: Tensor::from_slice(&[1i64, 2, 3, 4, 1, 2]),
            content: content(6, &config),
            targets: Tensor::from_slice(&[5.0f32, 1.0, 4.0, 2.0, 3.0, 4.5]),
        };
        let mut optimiser = crate::LazyAdam::new(network.parameters(), 1e-2, 0.0, 1e-4).unwrap();
        let evaluate = || {
            network
                .raw_scores_for_rows(&batch.users, &batch.movies, &network.encode_content(&batch.content).unwrap())
                .unwrap()
                .mse_loss(&batch.targets, tch::Reduction::Mean)
                .double_value(&[])
        };
        let before = evaluate();
        let mut random = crate::MaskRandom::new(1, 0);
        for _ in 0..200 {
            let loss = network.training_loss(&batch, &network.draw_noise(6, &mut random).unwrap(), 6.0, precision).unwrap();
            optimiser.step(&[HybridRecommender::gradients(&loss, &network.parameters()).unwrap()], 6).unwrap();
        }
        let after = evaluate();
        assert!(after < before / 10.0, "dot product {dot_product}, {precision:?}: loss {before} -> {after}");
    }
}

#[test]
fn a_bfloat16_training_step_gives_the_float32_loss_and_gradients_within_its_rounding() {
    tch::manual_seed(3);
    let store = nn::VarStore::new(Device::Cpu);
    let config = small_config();
    let network = HybridRecommender::new(&store.root(), &config);
    let rows = 64;
    let batch = crate::TrainingBatch {
        users: Tensor::arange(rows, (Kind::Int64, Device::Cpu)).remainder(5) + 1,
        movies: Tensor::arange(rows, (Kind::Int64, Device::Cpu)).remainder(4) + 1,
        content: content(rows, &config),
        targets: Tensor::rand([rows], (Kind::Float, Device::Cpu)) * 4.5 + 0.5,
    };
    let noise = network.draw_noise(rows, &mut crate::MaskRandom::new(3, 0)).unwrap();
    let parameters = network.parameters();
    let step = |precision| {
        let loss = network.training_loss(&batch, &noise, rows as f64, precision).unwrap();
        (loss.double_value(&[]), HybridRecommender::gradients(&loss, &parameters).unwrap())
    };
    let ((exact_loss, exact), (half_loss, half)) = (step(Precision::Float32), step(Precision::Bfloat16));
    assert!((exact_loss - half_loss).abs() < 0.02 * exact_loss, "loss {exact_loss} vs {half_loss}");
    assert_ne!(exact_loss, half_loss, "bfloat16 really rounds");
    for ((parameter, exact), half) in parameters.iter().zip(&exact).zip(&half) {
        if !exact.defined() || parameter.sparse {
            continue;
        }
        assert_eq!(half.kind(), Kind::Float, "{}: float32 gradients for float32 weights", parameter.name);
        let difference = (exact - half).norm().double_value(&[]);
        let size = exact.norm().double_value(&[]);
        // bfloat16 keeps 8 bits of mantissa: a small gradient summed from larger terms can lose ~10 % of itself,
        // so the bound has an absolute part at the scale of the loss (1e-3) beside the relative one.
        assert!(difference <= 0.1 * size + 1e-3, "{}: gradient differs by {difference} of {size}", parameter.name);
    }
}

#[test]
fn noise_drawn_up_front_makes_the_loss_of_slices_add_up_to_the_batch_loss() {
    tch::manual_seed(2);
    let store = nn::VarStore::new(Device::Cpu);
    let config = small_config();
    let network = HybridRecommender::new(&store.root(), &config);
    let batch = |rows: std::ops::Range<i64>| crate::TrainingBatch {
        users: Tensor::arange_start(rows.start, rows.end, (Kind::Int64, Device::Cpu)).remainder(5) + 1,
        movies: Tensor::arange_start(rows.start, rows.end, (Kind::Int64, Device::Cpu)).remainder(4) + 1,
        content: content(rows.end - rows.start, &config),
        targets: Tensor::full([rows.end - rows.start], 3.5, (Kind::Float, Device::Cpu)),
    };
    let noise = network.draw_noise(8, &mut crate::MaskRandom::new(2, 0)).unwrap();
    let mut whole = batch(0..8);
    let titles = Tensor::randn([8, config.title_dim], (Kind::Float, Device::Cpu));
    whole.content.titles = titles.copy();
    let mut first = batch(0..3);
    first.content.titles = titles.narrow(0, 0, 3);
    let mut second = batch(3..8);
    second.content.titles = titles.narrow(0, 3, 5);
    let total = network.training_loss(&whole, &noise, 8.0, Precision::Float32).unwrap().double_value(&[]);
    let parts = network.training_loss(&first, &noise.narrow(0, 3).unwrap(), 8.0, Precision::Float32).unwrap().double_value(&[])
        + network.training_loss(&second, &noise.narrow(3, 5).unwrap(), 8.0, Precision::Float32).unwrap().double_value(&[]);
    assert!((total - parts).abs() < 1e-5, "{total} vs {parts}");
    let masks_differ = noise.head[0].narrow(0, 0, 1).not_equal_tensor(&noise.head[0].narrow(0, 1, 1)).any().int64_value(&[]);
    assert_eq!(masks_differ, 1, "dropout masks are drawn per row");
}

#[test]
fn the_catalogue_scorer_reproduces_the_network() {
    scorer_reproduces_the_network(small_config());
}

#[test]
fn the_catalogue_scorer_reproduces_the_network_with_its_dot_product_path() {
    scorer_reproduces_the_network(ModelConfig { dot_product: true, ..small_config() });
}

#[test]
fn the_catalogue_scorer_reproduces_the_network_with_a_low_rank_title_path() {
    scorer_reproduces_the_network(ModelConfig { title_rank: Some(3), ..small_config() });
}

#[test]
fn the_catalogue_scorer_reproduces_the_network_with_its_autoencoder_blend() {
    scorer_reproduces_the_network(ModelConfig { autoencoder_rank: Some(3), ..small_config() });
}

#[test]
fn the_catalogue_scorer_reproduces_the_seed_architecture() {
    let config = ModelConfig { title_dim: 8, ..ModelConfig::seed_architecture(small_config().cardinalities) };
    let store = nn::VarStore::new(Device::Cpu);
    let names: Vec<&str> = HybridRecommender::new(&store.root(), &config).parameters().iter().map(|p| p.name).collect();
    assert!(!names.iter().any(|name| name.contains("bias") && *name != "bias"), "no bias terms are trained: {names:?}");
    assert_eq!(names.len(), 4 + 2 * (2 + 3 + 1), "embeddings, then content encoder, head and output layers only");
    scorer_reproduces_the_network(config);
}

#[test]
fn a_low_rank_title_path_is_a_trained_projection_in_front_of_the_encoder() {
    tch::manual_seed(4);
    let store = nn::VarStore::new(Device::Cpu);
    let config = ModelConfig { title_rank: Some(3), movie_id_dropout: 0.0, ..small_config() };
    assert_eq!(config.content_input_dim(), 3 + 3 + 2 * 16 + 2);
    let network = HybridRecommender::new(&store.root(), &config);
    assert_eq!(store.variables()["title_projection"].size(), vec![3, config.title_dim]);
    let parameters = network.parameters();
    assert!(parameters.iter().any(|p| p.name == "title_projection"));
    let before = store.variables()["title_projection"].copy();
    let batch = crate::TrainingBatch {
        users: Tensor::from_slice(&[1i64, 2]),
        movies: Tensor::from_slice(&[1i64, 2]),
        content: content(2, &config),
        targets: Tensor::from_slice(&[5.0f32, 1.0]),
    };
    let mut optimiser = crate::LazyAdam::new(parameters, 1e-2, 0.0, 0.0).unwrap();
    let loss = network.training_loss(&batch, &network.draw_noise(2, &mut crate::MaskRandom::new(4, 0)).unwrap(), 2.0, Precision::Float32).unwrap();
    optimiser.step(&[HybridRecommender::gradients(&loss, &network.parameters()).unwrap()], 2).unwrap();
    assert!(!store.variables()["title_projection"].equal(&before), "the projection learns");
    let error = ModelConfig { title_rank: Some(9), ..small_config() }.validate().unwrap_err();
    assert!(matches!(&error, crate::ModelError::InvalidConfig(problem) if problem.contains("title_rank")), "{error:?}");
}

/// The reference every scoring path must reproduce: the libtorch training forward with nothing drawn, plus the
/// autoencoder's blend written out (a·hybrid + b·decoded + c on known pairs).
fn libtorch_reference(network: &HybridRecommender, users: &Tensor, movies: &Tensor, encoded: &Tensor) -> Vec<f32> {
    let noise = crate::Noise::none(users.size()[0], &network.config);
    let hybrid = tch::no_grad(|| network.training_forward(users, movies, encoded, &noise, Precision::Float32)).unwrap();
    let raw = match &network.autoencoder {
        Some(tables) => {
            let [a, b, c] = tables.coefficients().unwrap();
            let decoded = tables.predict(users, movies).unwrap();
            let blended = &hybrid * f64::from(a) + decoded * f64::from(b) + f64::from(c);
            &hybrid + (blended - &hybrid) * tables.known(users, movies).unwrap()
        }
        None => hybrid,
    };
    Vec::try_from(raw).unwrap()
}

pub(crate) fn scorer_reproduces_the_network(config: ModelConfig) {
    tch::manual_seed(3);
    let store = nn::VarStore::new(Device::Cpu);
    let network = HybridRecommender::new(&store.root(), &config);
    if let Some(autoencoder) = &network.autoencoder {
        crate::train::autoencoder::tests::fill_randomly(autoencoder);
    }
    let inputs = content(4, &config);
    let encoded = network.encode_content(&inputs).unwrap();
    let movie_rows = Tensor::from_slice(&[1i64, 2, 0, 4]);
    let scorer = network.catalogue_scorer(&movie_rows, &encoded).unwrap();
    let single_pairs_only = network.catalogue_scorer(&movie_rows, &encoded).unwrap();
    let all_users: Vec<i64> = (0..=5).collect();
    let batched: Vec<Vec<f32>> = Vec::try_from(scorer.score_catalogue(&all_users, Precision::Float32).unwrap()).unwrap();
    for user in all_users {
        let users = Tensor::full([4], user, (Kind::Int64, Device::Cpu));
        let raw = libtorch_reference(&network, &users, &movie_rows, &encoded);
        let evaluated: Vec<f32> = Vec::try_from(network.raw_scores_for_rows(&users, &movie_rows, &encoded).unwrap()).unwrap();
        let expected: Vec<f32> = raw.iter().map(|r| r.clamp(config.rating_min as f32, config.rating_max as f32)).collect();
        for (position, want) in expected.iter().enumerate() {
            let got = evaluated[position];
            assert!((got - raw[position]).abs() < 1e-4, "evaluation forward: user {user} movie {position}: {got} vs {}", raw[position]);
            let got = single_pairs_only.score(user as usize, position).unwrap();
            assert!((got - want).abs() < 1e-4, "user {user} movie {position}: {got} vs {want}");
            let got = scorer.score(user as usize, position).unwrap();
            assert!((got - want).abs() < 1e-4, "after a catalogue pass: user {user} movie {position}: {got} vs {want}");
            assert_eq!(
                scorer.raw_score(user as usize, position).unwrap(),
                single_pairs_only.raw_score(user as usize, position).unwrap(),
                "a pair scores bit for bit the same whether or not the backend ran a catalogue pass"
            );
            let (got, want) = (batched[user as usize][position], raw[position]);
            assert!((got - want).abs() < 1e-4, "batched raw: user {user} movie {position}: {got} vs {want}");
            let got = scorer.raw_score(user as usize, position).unwrap();
            assert!((got - want).abs() < 1e-4, "single raw: user {user} movie {position}: {got} vs {want}");
            let got = scorer.raw_score_folded(&scorer.trained_user(user as usize).unwrap(), position).unwrap();
            assert!((got - want).abs() < 1e-4, "folded path, nothing fitted: user {user} movie {position}: {got} vs {want}");
        }
    }
    let as_folded: Vec<_> = (0..=5).map(|row| scorer.trained_user(row).unwrap()).collect();
    let folded: Vec<Vec<f32>> = Vec::try_from(scorer.score_catalogue_folded(&as_folded, Precision::Float32).unwrap()).unwrap();
    for (got, want) in folded.iter().flatten().zip(batched.iter().flatten()) {
        assert!((got - want).abs() < 1e-5, "folded catalogue pass: {got} vs {want}");
    }
    let folded_pairs = scorer.score_pairs_folded(&as_folded, &[1, 5, 0], &[0, 3, 2]).unwrap();
    for (got, (user, position)) in folded_pairs.iter().zip([(1, 0), (5, 3), (0, 2)]) {
        assert!((got - batched[user][position]).abs() < 1e-5, "folded pair ({user}, {position}): {got}");
    }
    let (bad_user, bad_movie) = (scorer.score(99, 0).unwrap_err().to_string(), scorer.score(0, 99).unwrap_err().to_string());
    assert!(bad_user.contains("user row 99 is outside"), "the error names its cause: {bad_user}");
    assert!(bad_movie.contains("catalogue position 99 is outside"), "the error names its cause: {bad_movie}");
    assert!(scorer.score_catalogue(&[99], Precision::Float32).is_err());
    let pairs = scorer.score_pairs(&[1, 5, 0], &[0, 3, 2]).unwrap();
    for (got, (user, position)) in pairs.iter().zip([(1, 0), (5, 3), (0, 2)]) {
        assert!((got - batched[user][position]).abs() < 1e-5, "pair ({user}, {position}): {got}");
    }
    assert!(scorer.score_pairs(&[1], &[4]).is_err() && scorer.score_pairs(&[1, 2], &[0]).is_err());
}

/// A scorer over a 300-movie catalogue with random genres, after `adjust` changed the fresh network's weights.
fn scorer_of_300_movies(seed: i64, users: i64, adjust: impl Fn(&nn::VarStore, &HybridRecommender)) -> crate::scoring::CatalogueScorer {
    tch::manual_seed(seed);
    let store = nn::VarStore::new(Device::Cpu);
    let mut config = small_config();
    config.cardinalities.movies = 300;
    config.cardinalities.users = users;
    let network = HybridRecommender::new(&store.root(), &config);
    adjust(&store, &network);
    let movie_rows = Tensor::arange(300, (Kind::Int64, Device::Cpu));
    let mut inputs = content(300, &config);
    inputs.genres = Tensor::rand([300, config.cardinalities.genres], (Kind::Float, Device::Cpu));
    network.catalogue_scorer(&movie_rows, &network.encode_content(&inputs).unwrap()).unwrap()
}

fn exhaustive(precision: Precision) -> crate::ranking::RankOptions {
    crate::ranking::RankOptions { k: 10, precision, retrieval: crate::ranking::Retrieval::Exhaustive }
}

#[test]
fn two_stage_ranking_is_exhaustive_when_its_candidates_cover_the_catalogue_and_close_with_fewer() {
    use crate::ranking::{rank_users, Retrieval};
    let scorer = scorer_of_300_movies(6, 400, |store, _| {
        tch::no_grad(|| store.variables().values().for_each(|v| drop(v.shallow_clone().f_mul_scalar_(3.0).unwrap())))
    });
    let users: Vec<i64> = (0..=400).collect();
    let ids: Vec<i32> = (0..300).map(|i| 5000 - 3 * i).collect();
    let candidates = |user: usize| (0..300).filter(|p| !(p + user).is_multiple_of(5)).collect::<Vec<usize>>();
    let exact = rank_users(&scorer, &users, candidates, &ids, exhaustive(Precision::Float32)).unwrap();
    let two_stage = |candidates_per_user| {
        let options =
            crate::ranking::RankOptions { retrieval: Retrieval::TwoStage { candidates: candidates_per_user }, ..exhaustive(Precision::Bfloat16) };
        rank_users(&scorer, &users, candidates, &ids, options).unwrap()
    };
    assert_eq!(two_stage(300), exact, "every allowed movie is a candidate: the exhaustive float32 ranking");
    let recall = |ranked: &[crate::ranking::Ranking]| {
        let hits: usize = ranked.iter().zip(&exact).map(|(r, e)| r.iter().filter(|m| e.iter().any(|x| x.0 == m.0)).count()).sum();
        hits as f64 / (10 * exact.len()) as f64
    };
    let (only_k, some) = (recall(&two_stage(10)), recall(&two_stage(30)));
    assert!(only_k < 0.99 && some >= 0.99, "recall@10 with 10 candidates {only_k}, with 30 {some}");
    let approximate = scorer.approximate_catalogue(&users).unwrap();
    let full = scorer.score_catalogue(&users, Precision::Float32).unwrap();
    let error = (&approximate - &full).abs().max().double_value(&[]);
    assert!(error > 0.0, "the first stage is an approximation on this network, not the exact scores");
}

#[test]
fn bfloat16_ranking_returns_the_float32_ranking() {
    let scorer = scorer_of_300_movies(5, 40, |store, _| {
        tch::no_grad(|| {
            store.variables().values().for_each(|v| {
                let _ = v.shallow_clone().f_mul_scalar_(1.5).unwrap();
            })
        })
    });
    let users: Vec<i64> = (0..=40).collect();
    let ids: Vec<i32> = (0..300).map(|i| 1000 - i).collect();
    let candidates = |user: usize| (0..300).filter(|p| !(p + user).is_multiple_of(7)).collect::<Vec<usize>>();
    let exact = crate::ranking::rank_users(&scorer, &users, candidates, &ids, exhaustive(Precision::Float32)).unwrap();
    let fast = crate::ranking::rank_users(&scorer, &users, candidates, &ids, exhaustive(Precision::Bfloat16)).unwrap();
    assert_eq!(exact, fast, "same movies, order and float32 scores");
    let approximate = scorer.score_catalogue(&users, Precision::Bfloat16).unwrap();
    let error = (approximate - scorer.score_catalogue(&users, Precision::Float32).unwrap()).abs().max().double_value(&[]);
    assert!(error > 0.0 && error < 0.05, "bfloat16 pre-scores differ from float32 ones, within half the margin: {error}");
    assert!(exact.iter().all(|r| r.len() == 10) && exact[3].iter().all(|(p, _)| (p + 3) % 7 != 0));
    let spread = exact.iter().map(|r| r[0].1 - r[9].1).fold(0.0f32, f32::max);
    assert!(spread > 0.05, "scores too flat for a meaningful comparison: {spread}");
}

#[test]
fn scores_above_the_scale_are_ranked_by_the_model_and_clipped_only_when_returned() {
    let scorer = scorer_of_300_movies(8, 5, |_, network| network.set_global_bias(20.0).unwrap());
    let ids: Vec<i32> = (1..=300).collect();
    let raw: Vec<f32> = Vec::try_from(scorer.score_catalogue(&[1], Precision::Float32).unwrap().view([-1])).unwrap();
    assert!(raw.iter().all(|r| *r > 5.0), "every raw score is above the scale");
    let by_model = crate::ranking::top_k(&raw, &ids, (0..300).collect(), 10);
    for precision in [Precision::Float32, Precision::Bfloat16] {
        let ranked = crate::ranking::rank_users(&scorer, &[1], |_| (0..300).collect(), &ids, exhaustive(precision)).unwrap().remove(0);
        assert_eq!(ranked.iter().map(|(p, _)| *p).collect::<Vec<_>>(), by_model, "{precision:?}: the model's order, not the lowest ids");
        assert!(ranked.iter().all(|(_, rating)| *rating == 5.0), "{precision:?}: returned ratings are on the scale");
    }
    assert_ne!(by_model, (0..10).collect::<Vec<usize>>());
}

#[test]
fn person_dropout_hides_people_at_its_rate_and_only_in_training() {
    tch::manual_seed(6);
    let store = nn::VarStore::new(Device::Cpu);
    let config = ModelConfig { person_dropout: 0.25, ..small_config() };
    let network = HybridRecommender::new(&store.root(), &config);
    let noise = network.draw_noise(4000, &mut crate::MaskRandom::new(6, 0)).unwrap();
    assert_eq!(noise.directors_keep.size(), vec![4000, config.max_directors]);
    let kept = noise.actors_keep.to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
    assert!((kept - 0.75).abs() < 0.02, "kept share {kept}");
    let inputs = content(1, &config);
    let mut hidden = network.draw_noise(1, &mut crate::MaskRandom::new(6, 1)).unwrap();
    hidden.directors_keep = hidden.directors_keep.zeros_like();
    hidden.actors_keep = hidden.actors_keep.zeros_like();
    let no_people = ContentInputs { directors: inputs.directors.zeros_like(), actors: inputs.actors.zeros_like(), ..inputs.shallow_clone() };
    let masks = ContentMasks {
        layers: &hidden.content,
        directors_keep: Some(&hidden.directors_keep),
        actors_keep: Some(&hidden.actors_keep),
        sparse: true,
        precision: Precision::Float32,
    };
    let without = network.encode_content_masked(&no_people, &masks).unwrap();
    assert!(network.encode_content_masked(&inputs, &masks).unwrap().equal(&without), "hiding everyone = a movie without known people");
    assert!(!network.encode_content(&inputs).unwrap().equal(&network.encode_content(&no_people).unwrap()), "inference sees everyone");
}

#[test]
fn people_are_pooled_as_the_mean_of_the_known_ids() {
    let table = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 2.0, 3.0, 6.0]).view([3, 2]);
    let pooled = HybridRecommender::pool(&table, &Tensor::from_slice(&[1i64, 2, 0, 0, 0, 2, 0, 0]).view([4, 2]), false).unwrap();
    let values: Vec<Vec<f32>> = Vec::try_from(pooled).unwrap();
    assert_eq!(values, vec![vec![2.0, 4.0], vec![0.0, 0.0], vec![3.0, 6.0], vec![0.0, 0.0]]);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let store = nn::VarStore::new(Device::Cpu);
    let config = small_config();
    let network = HybridRecommender::new(&store.root(), &config);
    let out_of_range = Tensor::from_slice(&[99i64]);
    assert!(network.predict(&out_of_range, &Tensor::from_slice(&[1i64]), &content(1, &config)).is_err());
    let mut wrong = content(1, &config);
    wrong.titles = Tensor::zeros([1, 7], (Kind::Float, Device::Cpu));
    assert!(network.predict(&Tensor::from_slice(&[1i64]), &Tensor::from_slice(&[1i64]), &wrong).is_err());
}
