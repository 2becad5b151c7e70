//! `cargo bench -p recsys_model --bench training_step`: where one training step's time goes at the seed shape
//! (batch 256, ML-1M-sized vocabularies, random data): drawing the noise, forward, backward, and the lazy Adam
//! update. libtorch runs on one thread, as in each gradient worker. ROWS=n sets the batch size (default 256),
//! PRECISION=bfloat16 the hidden layers' precision (default float32).
use recsys_model::scoring::Precision;
use recsys_model::{Cardinalities, ContentInputs, HybridRecommender, LazyAdam, MaskRandom, ModelConfig, TrainingBatch};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

const STEPS: usize = 300;

fn batch(rows: i64, config: &ModelConfig) -> TrainingBatch {
    let c = &config.cardinalities;
    let ints = |high: i64, shape: &[i64]| Tensor::randint_low(0, high, shape, (Kind::Int64, Device::Cpu));
    TrainingBatch {
        users: ints(c.users, &[rows]) + 1,
        movies: ints(c.movies, &[rows]) + 1,
        content: ContentInputs {
            genres: Tensor::rand([rows, c.genres], (Kind::Float, Device::Cpu)).round(),
            titles: Tensor::randn([rows, config.title_dim], (Kind::Float, Device::Cpu)),
            directors: ints(c.directors + 1, &[rows, config.max_directors]),
            actors: ints(c.actors + 1, &[rows, config.max_actors]),
            numeric: Tensor::randn([rows, 2], (Kind::Float, Device::Cpu)),
        },
        targets: Tensor::rand([rows], (Kind::Float, Device::Cpu)) * 4.0 + 1.0,
    }
}

fn main() {
    tch::set_num_threads(1);
    tch::manual_seed(7);
    let config = ModelConfig {
        use_biases: true,
        movie_id_dropout: 0.1,
        content_projection: true,
        ..ModelConfig::seed_architecture(Cardinalities { users: 6040, movies: 3706, genres: 18, directors: 2000, actors: 8000 })
    };
    let rows: i64 = std::env::var("ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(256);
    let precision = if std::env::var("PRECISION").is_ok_and(|p| p == "bfloat16") { Precision::Bfloat16 } else { Precision::Float32 };
    let batch = batch(rows, &config);
    {
        let store = nn::VarStore::new(Device::Cpu);
        let network = HybridRecommender::new(&store.root(), &config);
        let parameters = network.parameters();
        let mut optimiser = LazyAdam::new(network.parameters(), 1e-3, 1e-4, 0.05).unwrap();
        let mut seconds = [0f64; 4];
        let mut random = MaskRandom::new(7, 0);
        for step in 0..STEPS + 20 {
            let started = Instant::now();
            let noise = network.draw_noise(rows, &mut random).unwrap();
            let drawn = Instant::now();
            let loss = network.training_loss(&batch, &noise, rows as f64, precision).unwrap();
            let forward = Instant::now();
            let gradients = HybridRecommender::gradients(&loss, &parameters).unwrap();
            let backward = Instant::now();
            optimiser.step(&[gradients], rows as usize).unwrap();
            if step >= 20 {
                for (total, span) in seconds.iter_mut().zip([drawn - started, forward - drawn, backward - forward, backward.elapsed()]) {
                    *total += span.as_secs_f64();
                }
            }
        }
        let [noise, forward, backward, update] = seconds.map(|s| s / STEPS as f64 * 1e3);
        println!(
            "batch {rows}, {precision:?}: noise {noise:.3} ms, forward {forward:.3} ms, backward {backward:.3} ms, lazy Adam {update:.3} ms per step"
        );
    }
}
