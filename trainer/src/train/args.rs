//! `trainer train`'s flags, and how they become the model's configuration and the fit's options.
use super::batching::PrecisionChoice;
use super::ease;
use super::fit::FitOptions;
use clap::Args;
use recsys_model::preference::{Positives, PreferenceConfig};
use recsys_model::{AutoencoderOptions, ModelConfig, PreferenceOptions, Vocabulary};
use std::path::PathBuf;

/// The rating network's epochs when `--epochs` is not given and the data is not large (`sizing::LARGE_DATA`).
pub const DEFAULT_EPOCHS: usize = 10;

/// `trainer train`'s flags (`trainer train --help` prints each one's text).
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Epochs of the rating network at most (it stops earlier when the validation RMSE stops improving); without it
    /// 10, and above 2,000,000 ratings fewer (50,000,000 / ratings, rounded; the ML-25M shape: 2).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: Option<u64>,
    /// Ratings per optimiser step; without it 256, doubled for every doubling of the training set beyond 100,000
    /// ratings, at most 4096 (ML-1M: 2048, ML-25M: 4096).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub batch_size: Option<i64>,
    /// Adam's learning rate; without it 0.001 · √(batch size / 256), at least 0.001.
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Precision of the head's and the content encoder's hidden layers while training; auto: bfloat16 for batches
    /// of 2048 ratings and more when the CPU has AVX512-BF16 (weights, embeddings and the optimiser stay float32).
    #[arg(long, value_enum, default_value_t = PrecisionChoice::Auto)]
    pub precision: PrecisionChoice,
    /// L2 weight decay of the dense layers (Adam's `weight_decay`; the seed used 0).
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// L2 penalty on the user/movie embedding and bias rows of each rating, matrix-factorisation style (the seed
    /// used 0).
    #[arg(long, default_value_t = 0.05)]
    pub embedding_l2: f64,
    /// Leave out the user·movie dot-product path beside the MLP head (the seed architecture has none).
    #[arg(long)]
    pub no_dot_product: bool,
    /// Width of the user and movie embeddings.
    #[arg(long, default_value_t = ModelConfig::default().user_dim)]
    pub embedding_dim: i64,
    /// Width of the director and actor embeddings.
    #[arg(long, default_value_t = ModelConfig::default().person_dim)]
    pub person_dim: i64,
    /// Rank of the learned projection the title embedding passes through into the content encoder; 0: the full
    /// 384 dimensions enter the encoder's first layer (the seed architecture).
    #[arg(long, default_value_t = ModelConfig::default().title_rank.unwrap_or(0))]
    pub title_rank: i64,
    /// Widths of the content encoder's layers (comma-separated); the last is the content vector's.
    #[arg(long, value_delimiter = ',', default_values_t = ModelConfig::default().content_hidden)]
    pub content_hidden: Vec<i64>,
    /// Widths of the head's hidden layers (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = ModelConfig::default().head_hidden)]
    pub head_hidden: Vec<i64>,
    /// Dropout rate after every hidden layer.
    #[arg(long, default_value_t = ModelConfig::default().dropout)]
    pub dropout: f64,
    /// Probability of hiding a movie's id during training (teaches the cold-start content path).
    #[arg(long, default_value_t = ModelConfig::default().movie_id_dropout)]
    pub movie_id_dropout: f64,
    /// Probability of hiding each director and actor of a training pair (teaches movies with new or unknown people).
    #[arg(long, default_value_t = ModelConfig::default().person_dropout)]
    pub person_dropout: f64,
    /// Leave out the projection of the content vector added to the movie embedding (the seed architecture has none;
    /// without it a movie the model has no embedding for is scored from the content vector in the head alone).
    #[arg(long)]
    pub no_content_projection: bool,
    /// Leave out the global/user/movie/content bias terms (the seed architecture has none).
    #[arg(long)]
    pub no_biases: bool,
    /// Width of the item autoencoder (I-AutoRec) trained after the hybrid and blended into predictions for known
    /// users and movies; 0 leaves it out (the seed architecture has none). Needs a validation share.
    #[arg(long, default_value_t = 500)]
    pub autoencoder_hidden: i64,
    /// Rank the trained autoencoder is truncated to for serving (its tables are users × rank and movies × rank).
    #[arg(long, default_value_t = ModelConfig::default().autoencoder_rank.unwrap_or(32))]
    pub autoencoder_rank: i64,
    /// Upper bound on the autoencoder's epochs (it stops earlier when the validation RMSE stops improving).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub autoencoder_epochs: u64,
    /// Adam's learning rate for the autoencoder.
    #[arg(long, default_value_t = 0.001)]
    pub autoencoder_learning_rate: f64,
    /// λ of the autoencoder's λ/2·‖weights‖² per batch of movies.
    #[arg(long, default_value_t = 20.0)]
    pub autoencoder_l2: f64,
    /// Width of the preference part that orders recommendation lists (a softmax over the catalogue of the movies
    /// each user picked); 0 leaves it out and lists follow the predicted rating, as before 0.7.
    #[arg(long, default_value_t = ModelConfig::default().preference.map_or(0, |p| p.dim))]
    pub preference_dim: i64,
    /// What the preference objective counts as picked: liked (rated 4 and up), all (every rated movie) or valued
    /// (every rated movie, weighted by its rating).
    #[arg(long, default_value_t = ModelConfig::default().preference.map(|p| p.positives).unwrap_or_default())]
    pub preference_positives: Positives,
    /// Item neighbours kept per movie from a closed-form item-item model (EASE on the fitting ratings) whose score
    /// the order adds with a weight chosen on validation; 0 leaves it out (it is left out above 20,000 movies).
    #[arg(long, default_value_t = ModelConfig::default().preference.map_or(0, |p| p.neighbours))]
    pub preference_neighbours: i64,
    /// Epochs of the preference part (with `--preference-patience` it may stop earlier); without
    /// it 300,000 / users, between 10 and 300, and above 2,000,000 ratings at most 2·10¹⁰ / (users × movies),
    /// rounded (the ML-25M shape: 2).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub preference_epochs: Option<u64>,
    /// Validation checks of the preference part (about 40 over its epochs) without a better Recall@10 before it stops
    /// early; without it the part runs all its epochs and keeps the weights of its best check (its checks are noisy:
    /// stopping after 4 stale ones cost 4 % of the order's validation quality on ml-latest-small, docs/benchmarks.md).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub preference_patience: Option<u64>,
    /// Users per step of the preference part.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    pub preference_batch_users: u64,
    /// Adam's learning rate for the preference part.
    #[arg(long, default_value_t = 0.003)]
    pub preference_learning_rate: f64,
    /// Share of a user's rated movies hidden from the user's vector in each preference step.
    #[arg(long, default_value_t = 0.5)]
    pub preference_input_dropout: f64,
    /// Share of movies whose own rows are hidden in each preference step (teaches ranking movies without ratings).
    #[arg(long, default_value_t = 0.2)]
    pub preference_id_dropout: f64,
    /// Share of ratings held out for the reported test metrics.
    #[arg(long, default_value_t = 0.1)]
    pub test_fraction: f64,
    /// Share of the training ratings used to pick the best epoch (early stopping) and every choice made on validation
    /// (the order's weights, the preference part's epoch, the similarity representations); 0 turns them all off (the
    /// order then takes fixed weights, the preference part runs all its epochs).
    #[arg(long, default_value_t = 0.05)]
    pub validation_fraction: f64,
    #[arg(long, default_value_t = 2)]
    pub patience: usize,
    /// Seed for splits, initialisation and batch order: runs are reproducible.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Gradient workers per training batch (each on one libtorch thread), and libtorch threads for evaluation.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(i32).range(1..=64))]
    pub threads: i32,
    /// Use the (user, movie) pairs of this CSV as the test set instead of a random hold-out (e.g. the anchor
    /// harness's splits/<name>/test.csv), to compare with other systems on exactly the same split.
    #[arg(long)]
    pub test_ratings: Option<PathBuf>,
    /// The same for the cold-start run (e.g. splits/mls_coldmovie/test.csv).
    #[arg(long)]
    pub cold_test_ratings: Option<PathBuf>,
    /// Skip the second training run that measures cold-start accuracy (10 % of movies held out).
    #[arg(long)]
    pub skip_cold_start: bool,
    /// Users sampled for Recall/NDCG@10.
    #[arg(long, default_value_t = 500)]
    pub ranking_users: usize,
    /// Make the new version the active model.
    #[arg(long, conflicts_with = "activate_if_better")]
    pub activate: bool,
    /// Make the new version active only when it beats the active model on the hold-out ratings the active model
    /// has not seen (`recsys.rating_unseen`), or when no model is active; with none, the active model stays.
    #[arg(long)]
    pub activate_if_better: bool,
    /// Do nothing when the active model was trained on exactly the current data (same counts, latest rating and last
    /// load number).
    #[arg(long)]
    pub if_data_changed: bool,
    /// Do not register the version in the database.
    #[arg(long)]
    pub no_register: bool,
    /// Also write the run (parameters, per-epoch loss and validation RMSE, metrics, model version, artefact files)
    /// to the MLflow file store in DIR; without it, to MLFLOW_TRACKING_URI when that is a file: URI.
    #[arg(long, value_name = "DIR")]
    pub mlflow: Option<PathBuf>,
    /// Serve the hold-out run's model (fitted without the test share) instead of refitting on all the ratings.
    #[arg(long)]
    pub no_refit: bool,
    /// Run every phase whatever the data's size: above 2,000,000 ratings the defaults leave out the
    /// cold-start run, the refit and the item autoencoder (each would add a training of the whole set; at the ML-25M
    /// shape the three together do not finish in hours on two cores). Epochs not given are bounded either way.
    #[arg(long)]
    pub every_phase: bool,
    /// Also write the artefact (manifest.json, weights.safetensors) to this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl TrainArgs {
    pub(super) fn fit_options(&self) -> FitOptions {
        FitOptions {
            epochs: self.epochs.map_or(DEFAULT_EPOCHS, |e| e as usize),
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            precision: self.precision,
            weight_decay: self.weight_decay,
            embedding_l2: self.embedding_l2,
            validate_on_unseen_movies: false,
            threads: self.threads as usize,
            validation_fraction: self.validation_fraction,
            patience: self.patience,
            seed: self.seed,
            autoencoder: (self.autoencoder_hidden > 0).then_some(AutoencoderOptions {
                hidden: self.autoencoder_hidden,
                epochs: self.autoencoder_epochs as usize,
                learning_rate: self.autoencoder_learning_rate,
                l2: self.autoencoder_l2,
                batch_movies: 256,
                patience: 3,
            }),
            preference: (self.preference_dim > 0).then(|| PreferenceOptions {
                epochs: self.preference_epochs.unwrap_or(0) as usize,
                batch_users: self.preference_batch_users as usize,
                learning_rate: self.preference_learning_rate,
                input_dropout: self.preference_input_dropout,
                id_dropout: self.preference_id_dropout,
                weight_decay: 0.0,
                patience: self.preference_patience.map_or(usize::MAX, |p| p as usize),
                blend_users: 500,
                seed: self.seed,
            }),
        }
    }

    pub(super) fn config(&self, vocabulary: &Vocabulary) -> ModelConfig {
        let mut config = ModelConfig { cardinalities: vocabulary.cardinalities(), ..ModelConfig::default() };
        config.user_dim = self.embedding_dim;
        config.movie_dim = self.embedding_dim;
        config.person_dim = self.person_dim;
        config.title_rank = (self.title_rank != 0).then_some(self.title_rank);
        config.content_hidden = self.content_hidden.clone();
        config.head_hidden = self.head_hidden.clone();
        config.dropout = self.dropout;
        config.movie_id_dropout = self.movie_id_dropout;
        config.person_dropout = self.person_dropout;
        config.content_projection = !self.no_content_projection;
        config.use_biases = !self.no_biases;
        config.dot_product = !self.no_dot_product;
        let neighbours = if vocabulary.cardinalities().movies as usize > ease::MAX_MOVIES { 0 } else { self.preference_neighbours };
        config.preference = (self.preference_dim > 0).then_some(PreferenceConfig {
            dim: self.preference_dim,
            positives: self.preference_positives,
            neighbours,
            similar_movies: Default::default(),
            neighbour_input: Default::default(),
            user_vectors: true,
            similar_users: Default::default(),
        });
        config.autoencoder_rank =
            (self.autoencoder_hidden > 0 && self.validation_fraction > 0.0).then(|| self.autoencoder_rank.clamp(1, self.autoencoder_hidden));
        config
    }
}

/// `trainer train`'s arguments parsed from `flags`, as the command line gives them.
#[cfg(test)]
pub(crate) fn parsed_args(flags: &[&str]) -> TrainArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Command {
        #[command(flatten)]
        train: TrainArgs,
    }
    Command::parse_from(std::iter::once("trainer").chain(flags.iter().copied())).train
}

#[cfg(test)]
mod tests {
    use super::*;
    use recsys_model::Standardiser;

    #[test]
    fn the_flags_default_to_the_model_crates_default_configuration() {
        let args = parsed_args(&[]);
        let vocabulary = Vocabulary::new(
            vec![1, 2],
            vec![7],
            vec!["Drama".into()],
            vec![],
            vec![],
            Standardiser::fit([90.0].into_iter()),
            Standardiser::fit([1999.0].into_iter()),
        );
        let cardinalities = vocabulary.cardinalities();
        assert_eq!(args.config(&vocabulary), ModelConfig { cardinalities, ..ModelConfig::default() });
        let seed = parsed_args(&[
            "--no-dot-product",
            "--no-biases",
            "--title-rank",
            "0",
            "--movie-id-dropout",
            "0",
            "--person-dropout",
            "0",
            "--autoencoder-hidden",
            "0",
            "--preference-dim",
            "0",
        ]);
        let seed_config = ModelConfig { content_projection: true, ..ModelConfig::seed_architecture(vocabulary.cardinalities()) };
        assert_eq!(seed.config(&vocabulary), seed_config, "the flags reach the seed design except the content projection");
    }
}
