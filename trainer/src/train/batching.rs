//! The batch size and learning rate of a fit when the command line leaves them out: both grow with the training
//! set, so that large data spreads the per-step cost (the optimiser's pass over every dense weight, libtorch's
//! per-operation overhead) over more ratings, while small data keeps the settings its accuracy was tuned with.

/// The batch size of a training set of at most `RATINGS_PER_DOUBLING` ratings (ml-latest-small, ML-100K).
pub const BASE_BATCH_SIZE: i64 = 256;
/// The learning rate at `BASE_BATCH_SIZE`.
pub const BASE_LEARNING_RATE: f64 = 0.001;
/// The automatic batch size doubles for every doubling of the training set beyond this many ratings.
pub const RATINGS_PER_DOUBLING: usize = 100_000;
/// The largest automatic batch size (reached at 1.6M training ratings).
pub const MAX_AUTOMATIC_BATCH_SIZE: i64 = 4096;

/// The batch size and learning rate one fit runs with.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Batching {
    /// Ratings per optimiser step.
    pub batch_size: i64,
    /// Adam's learning rate.
    pub learning_rate: f64,
}

impl Batching {
    /// The settings for `training_ratings`: a given batch size or `BASE_BATCH_SIZE` · 2^⌊log2(ratings /
    /// `RATINGS_PER_DOUBLING`)⌋ (at most `MAX_AUTOMATIC_BATCH_SIZE`); a given learning rate or `BASE_LEARNING_RATE`
    /// · √(batch size / `BASE_BATCH_SIZE`), the square-root rule for Adam.
    pub fn resolve(batch_size: Option<i64>, learning_rate: Option<f64>, training_ratings: usize) -> Self {
        let batch_size = batch_size.unwrap_or_else(|| automatic_batch_size(training_ratings));
        let scale = (batch_size as f64 / BASE_BATCH_SIZE as f64).max(1.0).sqrt();
        Self { batch_size, learning_rate: learning_rate.unwrap_or(BASE_LEARNING_RATE * scale) }
    }
}

fn automatic_batch_size(training_ratings: usize) -> i64 {
    let doublings = (training_ratings / RATINGS_PER_DOUBLING).max(1).ilog2();
    BASE_BATCH_SIZE.saturating_mul(1i64 << doublings.min(32)).min(MAX_AUTOMATIC_BATCH_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_data_keeps_the_tuned_settings_and_large_data_grows_the_batch_and_the_rate() {
        for ratings in [0, 1_000, 86_000, 199_999] {
            assert_eq!(Batching::resolve(None, None, ratings), Batching { batch_size: 256, learning_rate: 0.001 }, "{ratings} ratings");
        }
        assert_eq!(Batching::resolve(None, None, 200_000).batch_size, 512);
        assert_eq!(Batching::resolve(None, None, 855_000).batch_size, 2048);
        let large = Batching::resolve(None, None, 21_375_000);
        assert_eq!(large.batch_size, 4096);
        assert!((large.learning_rate - 0.004).abs() < 1e-12, "{}", large.learning_rate);
    }

    #[test]
    fn given_settings_win_and_a_given_batch_scales_the_automatic_rate() {
        assert_eq!(Batching::resolve(Some(64), Some(0.01), 21_375_000), Batching { batch_size: 64, learning_rate: 0.01 });
        assert_eq!(Batching::resolve(Some(64), None, 21_375_000).learning_rate, 0.001, "smaller batches keep the base rate");
        assert!((Batching::resolve(Some(1024), None, 100).learning_rate - 0.002).abs() < 1e-12);
        assert_eq!(Batching::resolve(None, Some(0.002), 21_375_000).batch_size, 4096);
    }
}
