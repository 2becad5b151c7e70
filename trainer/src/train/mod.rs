//! `trainer train`: loads the data from PostgreSQL, fits the hybrid model on a random 90 % of the ratings,
//! evaluates it (hold-out RMSE/MAE, Recall/NDCG@10, a cold-start run with 10 % of movies held out, baselines on
//! the same splits), and registers the artefact as a new model version in one transaction.
pub mod args;
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
pub use args::TrainArgs;
use batching::PrecisionChoice;
use data::IndexedRatings;
use data::{Catalogue, Ratings};
use fit::FitOptions;
use metrics::{Accuracy, Baselines};
use recsys_model::{Artefact, ContentInputs, DataFingerprint, ModelConfig, Standardiser, Vocabulary};
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Instant;
use tch::Tensor;

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

/// Stale checks after which the cold-start run's preference part stops without `--preference-patience`: its checks
/// rank held-out movies nobody rated, which its lists almost never hold (validation Recall@10 0 at every check of
/// ml-latest-small's 300 epochs), so running them all would only cost time.
const COLD_START_PREFERENCE_PATIENCE: usize = 4;

/// `cold`: the split holds out whole movies, and the epoch is picked on held-out movies of the training share too;
/// the item autoencoder and the item neighbourhood are left out (neither scores a movie without training ratings), and
/// the preference part stops early.
fn train_and_evaluate(args: &TrainArgs, catalogue: &Catalogue, titles: &Tensor, split: &split::Split, cold: bool) -> Result<Evaluated> {
    let started = Instant::now();
    let vocabulary = fit_vocabulary(&split.train, catalogue);
    let mut config = args.config(&vocabulary);
    let mut options = FitOptions { validate_on_unseen_movies: cold, ..args.fit_options() };
    if cold {
        (config.autoencoder_rank, options.autoencoder) = (None, None);
        if let (Some(preference), None) = (options.preference.as_mut(), args.preference_patience) {
            preference.patience = COLD_START_PREFERENCE_PATIENCE;
        }
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
    Ok(Refitted { trained, vocabulary, fitted_ratings: ratings.len() - validation })
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
    let (served_trained, served_vocabulary) = match &refitted {
        Some(r) => (&r.trained, &r.vocabulary),
        None => (&main.trained, &main.vocabulary),
    };
    let served_config = served_trained.network.config();
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
