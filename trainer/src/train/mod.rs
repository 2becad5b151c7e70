//! `trainer train`: loads the data from PostgreSQL, fits the hybrid model on a random 90 % of the ratings,
//! evaluates it (hold-out RMSE/MAE, Recall/NDCG@10, a cold-start run with 10 % of movies held out, baselines on
//! the same splits), and registers the artefact as a new model version in one transaction.
pub mod batching;
pub mod compare;
pub mod data;
pub mod ease;
pub mod evaluate;
pub mod fit;
pub mod metrics;
pub mod mlflow;
pub mod phases;
pub mod register;
pub mod sizing;
pub mod snapshot;
pub mod split;
pub mod title_embeddings;
pub mod workers;

use anyhow::Result;
use batching::PrecisionChoice;
use clap::Args;
use data::IndexedRatings;
use data::{Catalogue, Ratings};
use fit::FitOptions;
use metrics::{Accuracy, Baselines};
use recsys_model::preference::{Positives, PreferenceConfig};
use recsys_model::{Artefact, AutoencoderOptions, ContentInputs, DataFingerprint, ModelConfig, PreferenceOptions, Standardiser, Vocabulary};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Instant;
use tch::Tensor;

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// Epochs of the rating network at most (it stops earlier when the validation RMSE stops improving); without it
    /// 10, and above `sizing::LARGE_DATA` ratings fewer (`sizing::RATING_VISITS` / ratings; the ML-25M shape: 2).
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
    /// Epochs of the preference part at most (it stops earlier when validation Recall@10 stops improving); without
    /// it 300,000 / users, between 10 and 300, and above `sizing::LARGE_DATA` ratings at most
    /// `sizing::PREFERENCE_PAIRS` / (users × movies) (the ML-25M shape: 2).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub preference_epochs: Option<u64>,
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
    /// Share of the training ratings used to pick the best epoch (early stopping); 0 turns it off.
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
    /// Run every phase whatever the data's size: above `sizing::LARGE_DATA` ratings the defaults leave out the
    /// cold-start run, the refit and the item autoencoder (each would add a training of the whole set; at the ML-25M
    /// shape the three together do not finish in hours on two cores). Epochs not given are bounded either way.
    #[arg(long)]
    pub every_phase: bool,
    /// Also write the artefact (manifest.json, weights.safetensors) to this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl TrainArgs {
    fn fit_options(&self) -> FitOptions {
        FitOptions {
            epochs: self.epochs.map_or(sizing::DEFAULT_EPOCHS, |e| e as usize),
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
                patience: 4,
                blend_users: 500,
                seed: self.seed,
            }),
        }
    }

    fn config(&self, vocabulary: &Vocabulary) -> ModelConfig {
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
        config.preference =
            (self.preference_dim > 0).then_some(PreferenceConfig { dim: self.preference_dim, positives: self.preference_positives, neighbours });
        config.autoencoder_rank =
            (self.autoencoder_hidden > 0 && self.validation_fraction > 0.0).then(|| self.autoencoder_rank.clamp(1, self.autoencoder_hidden));
        config
    }
}

/// Vocabularies fitted on training ratings: users and movies that have training ratings, all genres, the people
/// of training movies, runtime/year statistics over training movies.
pub fn fit_vocabulary(train: &Ratings, catalogue: &Catalogue) -> Vocabulary {
    let users: Vec<i32> = train.users.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
    let movies: Vec<i32> = train.movies.iter().copied().collect::<BTreeSet<_>>().into_iter().collect();
    let trained = || movies.iter().filter_map(|m| catalogue.row_of.get(m)).map(|row| &catalogue.contents[*row]);
    let genres: BTreeSet<String> = catalogue.contents.iter().flat_map(|c| c.genres.iter().cloned()).collect();
    let directors: BTreeSet<i32> = trained().flat_map(|c| c.directors.iter().copied()).collect();
    let actors: BTreeSet<i32> = trained().flat_map(|c| c.actors.iter().take(4).copied()).collect();
    let runtime = Standardiser::fit(trained().filter_map(|c| c.runtime_minutes));
    let year = Standardiser::fit(trained().filter_map(|c| c.year));
    Vocabulary::new(users, movies.clone(), genres.into_iter().collect(), directors.into_iter().collect(), actors.into_iter().collect(), runtime, year)
}

pub fn encode_catalogue(vocabulary: &Vocabulary, catalogue: &Catalogue, titles: &Tensor, config: &ModelConfig) -> Result<ContentInputs> {
    let contents: Vec<_> = catalogue.contents.iter().collect();
    Ok(vocabulary.encode(&contents, titles, config.max_directors, config.max_actors)?)
}

/// One model trained and evaluated on one split.
pub struct Evaluated {
    pub trained: fit::Trained,
    pub vocabulary: Vocabulary,
    pub config: ModelConfig,
    pub model: Accuracy,
    pub global: Accuracy,
    pub user_mean: Accuracy,
    pub bias: Accuracy,
    pub seconds: f64,
}

/// `cold`: the split holds out whole movies, and the epoch is picked on held-out movies of the training share too;
/// the item autoencoder and the item neighbourhood are left out (neither scores a movie without training ratings).
fn train_and_evaluate(args: &TrainArgs, catalogue: &Catalogue, titles: &Tensor, split: &split::Split, cold: bool) -> Result<Evaluated> {
    let started = Instant::now();
    let vocabulary = fit_vocabulary(&split.train, catalogue);
    let mut config = args.config(&vocabulary);
    let mut options = FitOptions { validate_on_unseen_movies: cold, ..args.fit_options() };
    if cold {
        (config.autoencoder_rank, options.autoencoder) = (None, None);
        if let Some(preference) = config.preference.as_mut() {
            preference.neighbours = 0;
        }
    }
    let content = encode_catalogue(&vocabulary, catalogue, titles, &config)?;
    let trained = fit::fit(&config, &vocabulary, &content, catalogue, &split.train, &options)?;
    let test = IndexedRatings::new(&split.test, &vocabulary, catalogue)?;
    let predictions = fit::predict(&trained.network, &content, &test)?;
    let (low, high) = (config.rating_min, config.rating_max);
    let baselines = Baselines::fit(&split.train);
    let acc = |p: &[f32]| metrics::accuracy(p, &split.test.values, low, high);
    Ok(Evaluated {
        model: acc(&predictions),
        global: acc(&baselines.predict_global(&split.test)),
        user_mean: acc(&baselines.predict_user_mean(&split.test)),
        bias: acc(&baselines.predict_bias(&split.test)),
        trained,
        vocabulary,
        config,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Row counts, the latest rating time and the last load number of the data in the database (read in the snapshot
/// the training data is read in, so that `loaded_until` says exactly which ratings the model saw). A database not
/// yet updated to 0.7.0 has no load numbers: its versions keep the rated_at rule.
fn fingerprint(client: &mut postgres::Client) -> Result<DataFingerprint> {
    let has_load_numbers: bool = client.query_one(recsys_contract::HAS_LOAD_NUMBERS, &[])?.get(0);
    let loaded_until = if has_load_numbers { "max(loaded)" } else { "NULL::bigint" };
    let row = client.query_one(
        &format!(
            "SELECT r.ratings, (SELECT count(*) FROM recsys.users), (SELECT count(*) FROM recsys.movies), r.max_rated_at, r.loaded_until
             FROM (SELECT count(*) AS ratings, extract(epoch FROM max(rated_at))::bigint AS max_rated_at, {loaded_until} AS loaded_until
                   FROM recsys.ratings) r"
        ),
        &[],
    )?;
    Ok(DataFingerprint { ratings: row.get(0), users: row.get(1), movies: row.get(2), max_rated_at: row.get(3), loaded_until: row.get(4) })
}

fn active_fingerprint(client: &mut postgres::Client) -> Result<Option<DataFingerprint>> {
    let row = client.query_opt("SELECT fingerprint FROM recsys.models WHERE status = 'active'", &[])?;
    Ok(row.and_then(|r| serde_json::from_value(r.get::<_, serde_json::Value>(0)).ok()))
}

/// The served model refitted on every rating but the validation share, for the epoch count the hold-out run chose.
pub struct Refitted {
    pub trained: fit::Trained,
    pub vocabulary: Vocabulary,
    pub config: ModelConfig,
    /// Ratings the served model was fitted on (all minus the validation share).
    pub fitted_ratings: usize,
}

/// The epochs the hold-out run chose, which bound the refit's.
struct Budget {
    /// The rating network's best epoch.
    epochs: usize,
    /// The preference part's best epoch (trained to the end, no early stop: its checks are noisier than RMSE).
    preference_epochs: Option<usize>,
}

/// Trains the model that is served on all `ratings`, with the hold-out run's best epochs as the budget.
fn refit(args: &TrainArgs, catalogue: &Catalogue, titles: &Tensor, ratings: &Ratings, budget: Budget) -> Result<Refitted> {
    let vocabulary = fit_vocabulary(ratings, catalogue);
    let config = args.config(&vocabulary);
    let mut options = FitOptions { epochs: budget.epochs.max(1), ..args.fit_options() };
    if let (Some(preference), Some(epochs)) = (options.preference.as_mut(), budget.preference_epochs) {
        (preference.epochs, preference.patience) = (epochs.max(1), usize::MAX);
    }
    let content = encode_catalogue(&vocabulary, catalogue, titles, &config)?;
    let trained = fit::fit(&config, &vocabulary, &content, catalogue, ratings, &options)?;
    let validation = ((ratings.len() as f64) * options.validation_fraction).round() as usize;
    Ok(Refitted { trained, vocabulary, config, fitted_ratings: ratings.len() - validation })
}

/// Whether the main thread, libtorch's pool and the gradient workers all flushed subnormal floats to zero.
fn float_mode_report(trained: &fit::Trained) -> Result<serde_json::Value> {
    let main_thread = recsys_model::float_mode::enabled_on_this_thread();
    let libtorch_threads = recsys_model::float_mode::libtorch_threads_flush()?;
    let gradient_workers = trained.workers_flush_to_zero;
    if !(main_thread && libtorch_threads && gradient_workers) {
        eprintln!("warning: some threads ran without flush-to-zero (main {main_thread}, libtorch {libtorch_threads}, workers {gradient_workers}): subnormal floats slow training");
    }
    Ok(json!({"main_thread": main_thread, "libtorch_threads": libtorch_threads, "gradient_workers": gradient_workers}))
}

pub fn run(client: &mut postgres::Client, args: &TrainArgs, connection: &crate::connection::ConnectionArgs) -> Result<()> {
    let started = Instant::now();
    let started_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let mut phases = phases::Phases::default();
    recsys_model::runtime::set_intra_op_threads(args.threads)?;
    // The fingerprint and the training data come from one snapshot without rating writers in progress, so the
    // fingerprint's loaded_until is exactly the last load the model sees.
    snapshot::begin_settled(client, connection)?;
    let current = fingerprint(client)?;
    if args.if_data_changed && active_fingerprint(client)?.as_ref() == Some(&current) {
        client.batch_execute("COMMIT")?;
        println!("the active model was trained on the current data ({} ratings); nothing to do", current.ratings);
        return Ok(());
    }
    let (ratings, catalogue) = phases.run("load data", || Ok((data::load_ratings(client)?, data::load_catalogue(client)?)))?;
    client.batch_execute("COMMIT")?;
    eprintln!("loaded {} ratings and {} movies", ratings.len(), catalogue.movie_ids.len());
    let args = &args.adapted_to(&sizing::DataSize::of(&ratings, &catalogue));

    let (titles, embedded) = phases.run_with_own_progress("title embeddings", || title_embeddings::embed_titles(client, &catalogue))?;
    eprintln!("title embeddings: {embedded} computed, {} from the cache", catalogue.movie_ids.len() - embedded);

    let random = match &args.test_ratings {
        Some(path) => split::from_test_file(&ratings, path)?,
        None => split::random_holdout(&ratings, args.test_fraction, args.seed),
    };
    eprintln!("hold-out run: training on {} ratings, testing on {} (random hold-out)", random.train.len(), random.test.len());
    let main = phases.run_with_own_progress("hold-out run", || train_and_evaluate(args, &catalogue, &titles, &random, false))?;
    let ranking_started = Instant::now();
    let ranking =
        phases.run("ranking metrics", || evaluate::ranking_metrics(&main, &catalogue, &titles, &random, args.ranking_users, args.seed, false))?;
    let ranking_seconds = ranking_started.elapsed().as_secs_f64();
    let cold = if args.skip_cold_start {
        None
    } else {
        let split = match &args.cold_test_ratings {
            Some(path) => split::from_test_file(&ratings, path)?,
            None => split::cold_movies(&ratings, 0.1, args.seed),
        };
        eprintln!("cold-start run: training on {} ratings, testing on {} ratings of held-out movies", split.train.len(), split.test.len());
        let evaluated = phases.run_with_own_progress("cold-start run", || train_and_evaluate(args, &catalogue, &titles, &split, true))?;
        let ranking = phases
            .run("cold-start ranking", || evaluate::ranking_metrics(&evaluated, &catalogue, &titles, &split, args.ranking_users, args.seed, true))?;
        Some((evaluated, ranking))
    };
    let (cold, cold_ranking) = cold.map_or((None, None), |(evaluated, ranking)| (Some(evaluated), Some(ranking)));
    evaluate::print_summary(&main, cold.as_ref(), &ranking, cold_ranking.as_ref());

    let serving_needed = !args.no_register || args.out.is_some();
    let refitted = if serving_needed && !args.no_refit {
        let preference_epochs = main.trained.preference.as_ref().map(|p| p.best_epoch);
        eprintln!(
            "refit: training the served model on all {} ratings but the validation share, {} epochs at most{}",
            ratings.len(),
            main.trained.best_epoch,
            preference_epochs.map(|e| format!(" and {e} of the preference part")).unwrap_or_default()
        );
        let budget = Budget { epochs: main.trained.best_epoch, preference_epochs };
        Some(phases.run_with_own_progress("refit on all ratings", || refit(args, &catalogue, &titles, &ratings, budget))?)
    } else {
        None
    };
    let float_mode = float_mode_report(&main.trained)?;

    let describe = |e: &Evaluated| json!({"model": e.model, "global_mean": e.global, "user_mean": e.user_mean, "bias_baseline": e.bias, "seconds": e.seconds, "best_epoch": e.trained.best_epoch, "epochs": e.trained.history, "autoencoder": e.trained.autoencoder, "preference": e.trained.preference});
    let served = match &refitted {
        Some(r) => {
            json!({"refit": true, "trained_ratings": r.fitted_ratings, "validation_ratings": ratings.len() - r.fitted_ratings, "epochs": r.trained.history.len(), "best_epoch": r.trained.best_epoch, "autoencoder": r.trained.autoencoder, "preference": r.trained.preference,
                          "note": "the served model was refitted on all ratings but the validation share; the metrics above come from the hold-out run, which never saw its test ratings"})
        }
        None => {
            json!({"refit": false, "trained_ratings": random.train.len() - ((random.train.len() as f64) * args.validation_fraction).round() as usize, "note": "the served model is the hold-out run's"})
        }
    };
    let (served_trained, served_vocabulary, served_config) = match &refitted {
        Some(r) => (&r.trained, &r.vocabulary, &r.config),
        None => (&main.trained, &main.vocabulary, &main.config),
    };
    let mut metrics = json!({"random_holdout": describe(&main), "ranking": ranking, "cold_start_ranking": cold_ranking, "ranking_seconds": ranking_seconds, "cold_start": cold.as_ref().map(describe), "served_model": served});
    let fit = FitOptions {
        batch_size: Some(served_trained.batching.batch_size),
        learning_rate: Some(served_trained.batching.learning_rate),
        precision: PrecisionChoice::exactly(served_trained.batching.precision),
        ..args.fit_options()
    };
    let params = json!({"fit": fit, "threads": args.threads, "test_fraction": args.test_fraction, "ranking_users": args.ranking_users, "refit": refitted.is_some(), "flush_to_zero": float_mode});

    let mut tracked = mlflow::Run {
        started_ms,
        model_version: None,
        activated: false,
        params: json!({"train": params.clone(), "config": served_config}),
        metrics: metrics.clone(),
        series: epoch_series(&main.trained, refitted.as_ref().map(|r| &r.trained)),
        artefact: None,
    };
    let artefact = if serving_needed {
        metrics["phase_seconds"] = phases.to_json();
        let artefact = Artefact::capture(&served_trained.store, served_config, served_vocabulary, current, params, metrics)?;
        if let Some(dir) = &args.out {
            artefact.save_dir(dir)?;
            println!("artefact written to {}", dir.display());
        }
        if !args.no_register {
            let (version, activated) =
                phases.run("registration", || register_version(client, args, &artefact, &main, &catalogue, &titles, &ratings, &random, started))?;
            (tracked.model_version, tracked.activated) = (Some(version), activated);
        }
        Some(artefact)
    } else {
        None
    };
    if let Some(dir) = mlflow::tracking_dir(args.mlflow.as_deref()) {
        tracked.artefact = artefact.as_ref();
        let run_id = mlflow::record(&dir, &tracked)?;
        println!("MLflow run {run_id} written to {}", dir.display());
    }
    println!("phases: {}", phases.summary());
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Per-epoch training loss and validation RMSE of the hold-out run (and of the refit, when there is one).
fn epoch_series(main: &fit::Trained, refit: Option<&fit::Trained>) -> Vec<(String, Vec<(usize, f64)>)> {
    let mut series = Vec::new();
    for (prefix, trained) in [("", Some(main)), ("refit.", refit)] {
        let Some(trained) = trained else { continue };
        series.push((format!("{prefix}train_loss"), trained.history.iter().map(|e| (e.epoch, e.train_loss)).collect()));
        let validation: Vec<(usize, f64)> = trained.history.iter().filter_map(|e| Some((e.epoch, e.validation_rmse?))).collect();
        if !validation.is_empty() {
            series.push((format!("{prefix}validation_rmse"), validation));
        }
    }
    series
}

/// Compares with the active model (when asked), registers the version, activates it as asked, and logs the run.
/// Returns the version and whether it was activated.
#[allow(clippy::too_many_arguments)]
fn register_version(
    client: &mut postgres::Client,
    args: &TrainArgs,
    artefact: &Artefact,
    main: &Evaluated,
    catalogue: &Catalogue,
    titles: &Tensor,
    ratings: &Ratings,
    random: &split::Split,
    started: Instant,
) -> Result<(i64, bool)> {
    let champion = compare::Champion::load(client)?;
    let challenger = compare::Scorer { network: &main.trained.network, vocabulary: &main.vocabulary, config: &main.config };
    let comparison = match (&champion, args.activate_if_better) {
        (Some(champion), true) => Some(compare::compare(champion, &challenger, catalogue, titles, &random.test)?),
        _ => None,
    };
    match &comparison {
        Some(compare::Comparison { champion_version, champion_rmse: Some(old), challenger_rmse: Some(new), ratings, .. }) => {
            println!("active version {champion_version} vs new model on {ratings} hold-out ratings it has not seen: RMSE {old:.4} vs {new:.4}")
        }
        Some(c) => println!(
            "none of the {} hold-out ratings is new to active version {}: not compared on ratings it was trained on",
            random.test.len(),
            c.champion_version
        ),
        None => {}
    }
    let activate = args.activate || (args.activate_if_better && comparison.as_ref().is_none_or(|c| c.challenger_wins));
    let (prospective_rmse, prospective_ratings) = match &champion {
        Some(champion) => compare::prospective(champion, catalogue, titles, ratings)?,
        None => (None, 0),
    };
    let version = register::register(client, artefact, activate)?;
    let kept = match &comparison {
        Some(c) if !activate && c.ratings == 0 => " (not activated: nothing to judge it by; --activate activates it anyway)",
        Some(_) if !activate => " (not activated: the active model is as good or better)",
        _ => "",
    };
    println!("registered model version {version}{}{kept}", if activate { " (active)" } else { "" });
    let details = json!({"activated": activate, "holdout_rmse": main.model.rmse, "comparison": comparison, "previous_active": champion.as_ref().map(|c| c.version)});
    register::log_training(client, version, started.elapsed().as_secs_f64(), prospective_rmse, prospective_ratings as i64, &details)?;
    Ok((version, activate))
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
