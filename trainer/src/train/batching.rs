//! How a fit steps when the command line leaves it open: the batch size and learning rate grow with the training
//! set, so that large data spreads the per-step cost (the optimiser's pass over every dense weight, libtorch's
//! per-operation overhead) over more ratings, and large batches run their hidden layers in bfloat16 where the CPU
//! computes it natively; small data keeps the settings its accuracy was tuned with.
use recsys_model::scoring::Precision;

/// The batch size of a training set of at most `RATINGS_PER_DOUBLING` ratings (ml-latest-small, ML-100K).
pub const BASE_BATCH_SIZE: i64 = 256;
/// The learning rate at `BASE_BATCH_SIZE`.
pub const BASE_LEARNING_RATE: f64 = 0.001;
/// The automatic batch size doubles for every doubling of the training set beyond this many ratings.
pub const RATINGS_PER_DOUBLING: usize = 100_000;
/// The largest automatic batch size (reached at 1.6M training ratings).
pub const MAX_AUTOMATIC_BATCH_SIZE: i64 = 4096;
/// The smallest batch whose hidden layers the automatic precision runs in bfloat16: each gradient worker's slice
/// is then large enough for bfloat16's matrix products to gain more than the casts cost (`cargo bench -p
/// recsys_model --bench training_step` with PRECISION=bfloat16: a quarter less time per step at 2048 and 4096 rows;
/// at 256 rows a fifth more).
pub const MIN_BFLOAT16_BATCH_SIZE: i64 = 2048;

/// The hidden layers' precision asked for on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    /// bfloat16 for batches of at least 2048 ratings when the CPU has AVX512-BF16, else float32.
    Auto,
    /// float32 throughout.
    Float32,
    /// bfloat16 matrix products in the head's and content encoder's hidden layers (float32 weights and optimiser).
    Bfloat16,
}

impl PrecisionChoice {
    /// The choice that asks for exactly `precision` (how a fit's resolved precision is recorded).
    pub fn exactly(precision: Precision) -> Self {
        match precision {
            Precision::Float32 => Self::Float32,
            Precision::Bfloat16 => Self::Bfloat16,
        }
    }
}

/// The batch size, learning rate and hidden-layer precision one fit runs with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Batching {
    /// Ratings per optimiser step.
    pub batch_size: i64,
    /// Adam's learning rate.
    pub learning_rate: f64,
    /// The hidden layers' precision.
    pub precision: Precision,
}

impl Batching {
    /// The settings for `training_ratings`: a given batch size or `BASE_BATCH_SIZE` · 2^⌊log2(ratings /
    /// `RATINGS_PER_DOUBLING`)⌋ (at most `MAX_AUTOMATIC_BATCH_SIZE`); a given learning rate or `BASE_LEARNING_RATE`
    /// · √(batch size / `BASE_BATCH_SIZE`), the square-root rule for Adam; the precision as `precision` says, where
    /// `Auto` takes bfloat16 from `MIN_BFLOAT16_BATCH_SIZE` on when the CPU computes it natively.
    pub fn resolve(batch_size: Option<i64>, learning_rate: Option<f64>, precision: PrecisionChoice, training_ratings: usize) -> Self {
        let batch_size = batch_size.unwrap_or_else(|| automatic_batch_size(training_ratings));
        let scale = (batch_size as f64 / BASE_BATCH_SIZE as f64).max(1.0).sqrt();
        let precision = match precision {
            PrecisionChoice::Auto if batch_size >= MIN_BFLOAT16_BATCH_SIZE => Precision::fastest_available(),
            PrecisionChoice::Auto | PrecisionChoice::Float32 => Precision::Float32,
            PrecisionChoice::Bfloat16 => Precision::Bfloat16,
        };
        Self { batch_size, learning_rate: learning_rate.unwrap_or(BASE_LEARNING_RATE * scale), precision }
    }
}

fn automatic_batch_size(training_ratings: usize) -> i64 {
    let doublings = (training_ratings / RATINGS_PER_DOUBLING).max(1).ilog2();
    BASE_BATCH_SIZE.saturating_mul(1i64 << doublings.min(32)).min(MAX_AUTOMATIC_BATCH_SIZE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn automatic(ratings: usize) -> Batching {
        Batching::resolve(None, None, PrecisionChoice::Float32, ratings)
    }

    #[test]
    fn small_data_keeps_the_tuned_settings_and_large_data_grows_the_batch_and_the_rate() {
        for ratings in [0, 1_000, 86_000, 199_999] {
            assert_eq!(automatic(ratings), Batching { batch_size: 256, learning_rate: 0.001, precision: Precision::Float32 }, "{ratings} ratings");
            assert_eq!(Batching::resolve(None, None, PrecisionChoice::Auto, ratings).precision, Precision::Float32, "small batches stay float32");
        }
        assert_eq!(automatic(200_000).batch_size, 512);
        assert_eq!(automatic(855_000).batch_size, 2048);
        let large = automatic(21_375_000);
        assert_eq!(large.batch_size, 4096);
        assert!((large.learning_rate - 0.004).abs() < 1e-12, "{}", large.learning_rate);
        assert_eq!(Batching::resolve(None, None, PrecisionChoice::Auto, 21_375_000).precision, Precision::fastest_available());
    }

    #[test]
    fn given_settings_win_and_a_given_batch_scales_the_automatic_rate() {
        let resolve = |batch, rate| Batching::resolve(batch, rate, PrecisionChoice::Float32, 21_375_000);
        assert_eq!(resolve(Some(64), Some(0.01)), Batching { batch_size: 64, learning_rate: 0.01, precision: Precision::Float32 });
        assert_eq!(resolve(Some(64), None).learning_rate, 0.001, "smaller batches keep the base rate");
        assert!((Batching::resolve(Some(1024), None, PrecisionChoice::Auto, 100).learning_rate - 0.002).abs() < 1e-12);
        assert_eq!(resolve(None, Some(0.002)).batch_size, 4096);
        assert_eq!(
            Batching::resolve(Some(256), None, PrecisionChoice::Bfloat16, 100).precision,
            Precision::Bfloat16,
            "asked for, bfloat16 at any size"
        );
    }
}
