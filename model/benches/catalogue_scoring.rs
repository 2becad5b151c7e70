//! `cargo bench -p recsys_model --bench catalogue_scoring`: whole-catalogue scoring speed at the ML-1M shape
//! (6,040 users × 3,706 movies, seed dimensions) per users-per-pass and libtorch thread count.
use recsys_model::config::{Cardinalities, ModelConfig};
use recsys_model::network::ContentInputs;
use recsys_model::HybridRecommender;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

fn main() {
    let (users, movies) = (6040i64, 3706i64);
    let config = ModelConfig::seed(Cardinalities { users, movies, genres: 18, directors: 2000, actors: 8000 });
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
    let encoded = tch::no_grad(|| network.encode_content(&content, false)).unwrap();
    let rows = Tensor::arange_start(1, movies + 1, (Kind::Int64, Device::Cpu));
    let scorer = network.catalogue_scorer(&rows, &encoded).unwrap();
    let sample_users = 600i64;
    for threads in [1, 2] {
        tch::set_num_threads(threads);
        for per_pass in [1usize, 2, 4, 8, 17] {
            let user_rows: Vec<i64> = (1..=sample_users).collect();
            let started = Instant::now();
            for chunk in user_rows.chunks(per_pass) {
                let _ = scorer.score_catalogue(chunk).unwrap();
            }
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "threads {threads}, {per_pass:>2} users per pass: {:.2} ms per user, all {users} users ≈ {:.1} s",
                seconds * 1000.0 / sample_users as f64,
                seconds / sample_users as f64 * users as f64
            );
        }
    }
}
