//! The training defaults by the data's size: above `LARGE_DATA` ratings the default command trains once, without the
//! item autoencoder, and bounds the epochs it was not given so that it finishes at the ML-25M shape on two cores.
use super::args::{TrainArgs, DEFAULT_EPOCHS};
use super::data::{Catalogue, Ratings};
use super::fit::{default_preference_epochs, histories_count};

/// Ratings above which the defaults train once (no cold-start run, no refit, no item autoencoder) and bound epochs.
pub const LARGE_DATA: usize = 2_000_000;

/// Rating visits the rating network's default epochs add up to above `LARGE_DATA` (one epoch visits every fitting
/// rating once): 50,000,000 / ratings epochs, rounded, at least 1 (ML-10M: 5, ML-25M: 2).
pub const RATING_VISITS: usize = 50_000_000;

/// User × movie pairs the preference part's default epochs add up to above `LARGE_DATA` (an epoch scores every
/// user against the whole catalogue): 2·10¹⁰ / (users × movies) epochs, rounded, at least 1, at most the part's own
/// default (`fit::default_preference_epochs`; ML-20M: 5, ML-25M: 2).
pub const PREFERENCE_PAIRS: f64 = 2.0e10;

/// What the defaults are chosen by.
#[derive(Debug, Clone, Copy)]
pub struct DataSize {
    /// Ratings loaded.
    pub ratings: usize,
    /// Distinct users among them.
    pub users: usize,
    /// Movies in the catalogue.
    pub movies: usize,
}

impl DataSize {
    /// The size of the loaded ratings and catalogue.
    pub fn of(ratings: &Ratings, catalogue: &Catalogue) -> Self {
        DataSize { ratings: ratings.users.len(), users: histories_count(ratings), movies: catalogue.movie_ids.len() }
    }

    fn rating_epochs(&self) -> usize {
        ((RATING_VISITS as f64 / self.ratings.max(1) as f64).round() as usize).clamp(1, DEFAULT_EPOCHS)
    }

    fn preference_epochs(&self) -> usize {
        let pairs = self.users.max(1) as f64 * self.movies.max(1) as f64;
        ((PREFERENCE_PAIRS / pairs).round() as usize).clamp(1, default_preference_epochs(self.users))
    }
}

impl TrainArgs {
    /// These arguments for data of `size`: above `LARGE_DATA` ratings the epochs not given are bounded and (without
    /// `--every-phase`) the cold-start run, the refit and the autoencoder are left out; prints what was chosen and why.
    pub(super) fn adapted_to(&self, size: &DataSize) -> Self {
        let mut adapted = self.clone();
        if size.ratings <= LARGE_DATA {
            return adapted;
        }
        let mut chosen = Vec::new();
        if self.epochs.is_none() {
            adapted.epochs = Some(size.rating_epochs() as u64);
            chosen.push(format!("{} rating epochs at most ({RATING_VISITS} rating visits / ratings)", size.rating_epochs()));
        }
        if self.preference_epochs.is_none() && self.preference_dim > 0 {
            adapted.preference_epochs = Some(size.preference_epochs() as u64);
            chosen.push(format!("{} preference epochs at most (2·10¹⁰ user-movie pairs / (users × movies))", size.preference_epochs()));
        }
        if !self.every_phase {
            if !self.skip_cold_start {
                adapted.skip_cold_start = true;
                chosen.push("no cold-start run".into());
            }
            if !self.no_refit {
                adapted.no_refit = true;
                chosen.push("no refit (the hold-out run's model is served)".into());
            }
            if self.autoencoder_hidden > 0 {
                adapted.autoencoder_hidden = 0;
                chosen.push("no item autoencoder".into());
            }
        }
        if !chosen.is_empty() {
            eprintln!(
                "{} ratings, {} users, {} movies (more than {LARGE_DATA} ratings): {} (flags override each; --every-phase runs every phase)",
                size.ratings,
                size.users,
                size.movies,
                chosen.join(", ")
            );
        }
        adapted
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::args::parsed_args as parsed;

    const ML_25M: DataSize = DataSize { ratings: 25_000_095, users: 162_541, movies: 62_423 };
    const ML_1M: DataSize = DataSize { ratings: 1_000_209, users: 6_040, movies: 3_706 };

    #[test]
    fn small_data_keeps_every_default() {
        let adapted = parsed(&[]).adapted_to(&ML_1M);
        assert_eq!((adapted.epochs, adapted.preference_epochs), (None, None));
        assert!(!adapted.skip_cold_start && !adapted.no_refit && adapted.autoencoder_hidden > 0);
    }

    #[test]
    fn the_ml_25m_shape_trains_once_with_two_epochs_of_each_part() {
        let adapted = parsed(&[]).adapted_to(&ML_25M);
        assert_eq!((adapted.epochs, adapted.preference_epochs), (Some(2), Some(2)));
        assert!(adapted.skip_cold_start && adapted.no_refit);
        assert_eq!(adapted.autoencoder_hidden, 0);
    }

    #[test]
    fn given_flags_win_over_the_size_defaults() {
        let adapted = parsed(&["--epochs", "7", "--preference-epochs", "3", "--every-phase"]).adapted_to(&ML_25M);
        assert_eq!((adapted.epochs, adapted.preference_epochs), (Some(7), Some(3)));
        assert!(!adapted.skip_cold_start && !adapted.no_refit && adapted.autoencoder_hidden > 0);
        let every_phase = parsed(&["--every-phase"]).adapted_to(&ML_25M);
        assert_eq!((every_phase.epochs, every_phase.preference_epochs), (Some(2), Some(2)), "epochs are bounded either way");
    }

    #[test]
    fn the_bounds_grow_as_the_data_shrinks() {
        let ml_10m = DataSize { ratings: 10_000_054, users: 69_878, movies: 10_677 };
        assert_eq!(ml_10m.rating_epochs(), 5);
        assert_eq!(ml_10m.preference_epochs(), 10, "capped at the part's own default");
        let ml_20m = DataSize { ratings: 20_000_263, users: 138_493, movies: 27_278 };
        assert_eq!((ml_20m.rating_epochs(), ml_20m.preference_epochs()), (2, 5));
    }
}
