//! The training loop: ratings become index tensors once, batches are gathered with `index_select` (no per-row
//! Rust loops in the hot path), each batch's gradients computed by `threads` workers on slices of it, lazy Adam on
//! MSE plus row-wise L2, a validation share for early stopping with the best epoch's weights restored, and a
//! progress bar per epoch.
use super::batching::{Batching, PrecisionChoice};
use super::data::{Catalogue, IndexedRatings, Ratings};
use super::workers::{Differentiator, NoiseStream, Slice, Workers};
use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recsys_model::scoring::Precision;
use recsys_model::train::validation::Histories;
use recsys_model::{
    AutoencoderOptions, AutoencoderReport, ContentInputs, HybridRecommender, LazyAdam, MaskRandom, ModelConfig, Noise, PreferenceOptions,
    PreferenceReport, Vocabulary,
};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Instant;
use tch::nn;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, serde::Serialize)]
pub struct FitOptions {
    pub epochs: usize,
    /// Ratings per step; `None`: chosen from the training set's size (see `Batching`).
    pub batch_size: Option<i64>,
    /// Adam's learning rate; `None`: chosen from the batch size (see `Batching`).
    pub learning_rate: Option<f64>,
    /// The hidden layers' precision (see `Batching`).
    pub precision: PrecisionChoice,
    /// L2 weight decay of the dense layers.
    pub weight_decay: f64,
    /// L2 penalty on the user/movie embedding and bias rows of each rating, per rating (as in matrix factorisation).
    pub embedding_l2: f64,
    /// Gradient workers per batch, each running libtorch on one thread.
    pub threads: usize,
    /// Share of the training ratings kept aside to pick the best epoch (0 disables early stopping).
    pub validation_fraction: f64,
    /// Validate on every rating of a share of the movies, scored as unseen (the cold-start run picks its epoch by
    /// cold-start accuracy).
    pub validate_on_unseen_movies: bool,
    /// Stop after this many epochs without a better validation RMSE.
    pub patience: usize,
    pub seed: u64,
    /// Trains the network's item autoencoder after the hybrid and fits the blend on the validation share (needs a
    /// validation share of random ratings, so not in the cold-start run).
    pub autoencoder: Option<AutoencoderOptions>,
    /// Fits the network's preference part (the order of recommendation lists) after the rating network.
    pub preference: Option<PreferenceOptions>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct EpochStats {
    pub epoch: usize,
    pub train_loss: f64,
    pub validation_rmse: Option<f64>,
    pub seconds: f64,
    pub ratings_per_second: f64,
}

pub struct Trained {
    pub store: nn::VarStore,
    pub network: HybridRecommender,
    pub history: Vec<EpochStats>,
    pub best_epoch: usize,
    /// The batch size, learning rate and precision the fit ran with.
    pub batching: Batching,
    pub autoencoder: Option<AutoencoderReport>,
    pub preference: Option<PreferenceReport>,
    /// Whether every gradient worker thread ran with flush-to-zero.
    pub workers_flush_to_zero: bool,
}

/// Differentiates batches: slice 0 on the calling thread, the others on the workers.
struct BatchGradients {
    local: Differentiator,
    workers: Workers,
    precision: Precision,
}

impl BatchGradients {
    fn new(network: &HybridRecommender, data: &IndexedRatings, content: &ContentInputs, options: &FitOptions, precision: Precision) -> Self {
        Self {
            local: Differentiator::new(network, data, content),
            workers: Workers::start(options.threads.max(1) - 1, network, data, content),
            precision,
        }
    }

    /// The mean loss of one batch and its gradients per slice: the batch is cut into one slice per thread, each
    /// differentiates its slice's share of the loss (the optimiser sums the gradients in slice order, so a seeded
    /// run is reproducible). The noise, drawn in batch order by one thread, is cut the same way.
    fn compute(&self, noise: Noise, index: &Tensor) -> Result<(f64, Vec<Vec<Tensor>>)> {
        let rows = index.size()[0];
        let threads = self.workers.len() as i64 + 1;
        let slice_rows = (rows + threads - 1) / threads;
        let mut slices = Vec::with_capacity(threads as usize);
        for (number, slice) in index.split(slice_rows, 0).iter().enumerate() {
            slices.push(Slice {
                rows: slice.shallow_clone(),
                noise: noise.narrow(number as i64 * slice_rows, slice.size()[0])?,
                batch_rows: rows,
                precision: self.precision,
            });
        }
        let mut slices = slices.into_iter();
        let first = slices.next().ok_or_else(|| anyhow::anyhow!("an empty batch"))?;
        let submitted = self.workers.submit(slices.collect())?;
        let mut results = vec![self.local.differentiate(&first)];
        results.extend(self.workers.collect(submitted));
        let mut loss = 0.0;
        let mut gradients = Vec::with_capacity(results.len());
        for result in results {
            let (slice_loss, slice_gradients) = result?;
            loss += slice_loss;
            gradients.push(slice_gradients);
        }
        Ok((loss, gradients))
    }
}

/// Raw (unclipped) predictions for `ratings`, in batches, without gradients.
pub fn predict(network: &HybridRecommender, content: &ContentInputs, ratings: &IndexedRatings) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(ratings.len() as usize);
    tch::no_grad(|| -> Result<()> {
        let all = Tensor::arange(ratings.len(), (Kind::Int64, Device::Cpu));
        for chunk in all.split(8192, 0) {
            let (users, movies, rows, _) = ratings.batch(&chunk);
            let encoded = network.encode_content(&content.select(&rows)?)?;
            out.extend(Vec::<f32>::try_from(network.raw_scores_for_rows(&users, &movies, &encoded)?)?);
        }
        Ok(())
    })?;
    Ok(out)
}

fn rmse(predictions: &[f32], truth: &Tensor, low: f64, high: f64) -> Result<f64> {
    let truth: Vec<f32> = Vec::try_from(truth)?;
    Ok(super::metrics::accuracy(predictions, &truth, low, high).rmse)
}

fn progress(epoch: usize, epochs: usize, batches: u64) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
    let bar = ProgressBar::with_draw_target(Some(batches), target);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} batches {per_sec} loss {msg} ETA {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
}

/// (validation rows, fitting rows) of `train`: a random share of the ratings, or with
/// `validate_on_unseen_movies` every rating of a random share of the movies.
fn validation_split(train: &Ratings, options: &FitOptions) -> (Vec<usize>, Vec<usize>) {
    let mut random = ChaCha8Rng::seed_from_u64(options.seed ^ 0x5EED);
    if options.validate_on_unseen_movies {
        let mut movies: Vec<i32> = train.movies.iter().copied().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
        movies.shuffle(&mut random);
        let held: std::collections::HashSet<i32> =
            movies.iter().take(((movies.len() as f64) * options.validation_fraction).round() as usize).copied().collect();
        return (0..train.len()).partition(|row| held.contains(&train.movies[*row]));
    }
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut random);
    let validation_count = ((train.len() as f64) * options.validation_fraction).round() as usize;
    let (validation, fit) = order.split_at(validation_count);
    (validation.to_vec(), fit.to_vec())
}

/// Trains a fresh network on `train` (a validation share is split off when early stopping is on).
pub fn fit(
    config: &ModelConfig,
    vocabulary: &Vocabulary,
    content: &ContentInputs,
    catalogue: &Catalogue,
    train: &Ratings,
    options: &FitOptions,
) -> Result<Trained> {
    tch::manual_seed(options.seed as i64);
    let (validation_rows, fit_rows) = validation_split(train, options);
    let fit_set = IndexedRatings::new(&train.subset(&fit_rows), vocabulary, catalogue)?;
    let validation =
        (!validation_rows.is_empty()).then(|| IndexedRatings::new(&train.subset(&validation_rows), vocabulary, catalogue)).transpose()?;
    let validation = match (validation, options.validate_on_unseen_movies) {
        (Some(mut v), true) => {
            v.movies = v.movies.zeros_like();
            Some(v)
        }
        (v, _) => v,
    };

    let store = nn::VarStore::new(Device::Cpu);
    let mut network = HybridRecommender::new(&store.root(), config);
    network.set_global_bias(train.mean())?;
    let batching = Batching::resolve(options.batch_size, options.learning_rate, options.precision, fit_set.len() as usize);
    eprintln!(
        "batch size {}, learning rate {:.4}, hidden layers in {} ({} training ratings)",
        batching.batch_size,
        batching.learning_rate,
        if batching.precision == Precision::Bfloat16 { "bfloat16" } else { "float32" },
        fit_set.len()
    );
    let batch_gradients = BatchGradients::new(&network, &fit_set, content, options, batching.precision);
    let mut optimiser = LazyAdam::new(network.parameters(), batching.learning_rate, options.weight_decay, options.embedding_l2)?;
    let batches = (fit_set.len() + batching.batch_size - 1) / batching.batch_size;
    let mut history = Vec::new();
    let (mut best_rmse, mut best_epoch, mut best_weights): (f64, usize, Option<HashMap<String, Tensor>>) = (f64::INFINITY, 0, None);
    for epoch in 1..=options.epochs {
        let started = Instant::now();
        let bar = progress(epoch, options.epochs, batches as u64);
        let permutation = Tensor::randperm(fit_set.len(), (Kind::Int64, Device::Cpu));
        let mut loss_sum = 0.0;
        tch::set_num_threads(1);
        let batch_indexes = permutation.split(batching.batch_size, 0);
        let noise =
            NoiseStream::start(&network, batch_indexes.iter().map(|index| index.size()[0]).collect(), MaskRandom::new(options.seed, epoch as u64));
        for (step, index) in batch_indexes.iter().enumerate() {
            let (loss, gradients) = batch_gradients.compute(noise.next()?, index)?;
            optimiser.step(&gradients, index.size()[0] as usize)?;
            loss_sum += loss;
            if step % 50 == 0 {
                bar.set_position(step as u64);
                bar.set_message(format!("{:.4}", loss_sum / (step + 1) as f64));
            }
        }
        bar.finish_and_clear();
        tch::set_num_threads(options.threads as i32);
        let validation_rmse = validation
            .as_ref()
            .map(|v| predict(&network, content, v).and_then(|p| rmse(&p, &v.values, config.rating_min, config.rating_max)))
            .transpose()?;
        let seconds = started.elapsed().as_secs_f64();
        let stats =
            EpochStats { epoch, train_loss: loss_sum / batches as f64, validation_rmse, seconds, ratings_per_second: fit_set.len() as f64 / seconds };
        eprintln!(
            "  epoch {epoch:>2}/{}  loss {:.4}  validation RMSE {}  {:.1} s  {:.0} ratings/s",
            options.epochs,
            stats.train_loss,
            validation_rmse.map(|r| format!("{r:.4}")).unwrap_or_else(|| "-".into()),
            seconds,
            stats.ratings_per_second
        );
        history.push(stats);
        match validation_rmse {
            Some(current) if current < best_rmse => {
                best_rmse = current;
                best_epoch = epoch;
                best_weights = Some(store.variables().into_iter().map(|(name, t)| (name, t.detach().copy())).collect());
            }
            Some(_) if epoch - best_epoch >= options.patience => {
                eprintln!("  early stop: no better validation RMSE for {} epochs", options.patience);
                break;
            }
            None => best_epoch = epoch,
            _ => {}
        }
    }
    if let Some(weights) = best_weights {
        let mut variables = store.variables();
        tch::no_grad(|| {
            for (name, saved) in &weights {
                if let Some(variable) = variables.get_mut(name) {
                    variable.copy_(saved);
                }
            }
        });
    }
    let autoencoder = match (&options.autoencoder, &validation) {
        (Some(autoencoder_options), Some(validation)) if config.autoencoder_rank.is_some() => {
            Some(fit_autoencoder(&network, content, &fit_set, validation, autoencoder_options)?)
        }
        _ => None,
    };
    let preference = match &options.preference {
        Some(preference_options) if config.preference.is_some() => {
            let (fit_ratings, validation_ratings) = (train.subset(&fit_rows), train.subset(&validation_rows));
            let report = fit_preference(&network, vocabulary, content, catalogue, &fit_ratings, &validation_ratings, preference_options)?;
            network.set_preference_choices(&report.choices());
            Some(report)
        }
        _ => None,
    };
    let workers_flush_to_zero = batch_gradients.workers.flush_to_zero();
    Ok(Trained { store, network, history, best_epoch, batching, autoencoder, preference, workers_flush_to_zero })
}

/// Trains the autoencoder on the fitting ratings and blends it in on the validation ones.
fn fit_autoencoder(
    network: &HybridRecommender,
    content: &ContentInputs,
    fit_set: &IndexedRatings,
    validation: &IndexedRatings,
    options: &AutoencoderOptions,
) -> Result<AutoencoderReport> {
    let started = Instant::now();
    let spinner = super::phases::spinner("autoencoder");
    let hybrid = Tensor::from_slice(&predict(network, content, validation)?);
    let report = network.train_autoencoder(&fit_set.rating_rows(), &validation.rating_rows(), &hybrid, options);
    spinner.finish_and_clear();
    let report = report?;
    let [a, b, c] = report.blend;
    eprintln!(
        "  autoencoder: best epoch {} of {}, validation RMSE {:.4}; blend {a:.3}·hybrid + {b:.3}·autoencoder + {c:.3}: {:.4} -> {:.4}  {:.1} s",
        report.best_epoch,
        report.validation_rmse.len(),
        report.validation_rmse[report.best_epoch - 1],
        report.hybrid_rmse,
        report.blended_rmse,
        started.elapsed().as_secs_f64()
    );
    Ok(report)
}

/// Each user row's (movie row, rating) pairs among `ratings` (users and movies outside the vocabulary left out).
pub fn histories(ratings: &Ratings, vocabulary: &Vocabulary) -> Histories {
    let mut histories = vec![Vec::new(); vocabulary.cardinalities().users as usize + 1];
    for i in 0..ratings.len() {
        let (user, movie) = (vocabulary.user_row(ratings.users[i]), vocabulary.movie_row(ratings.movies[i]));
        if user > 0 && movie > 0 {
            histories[user as usize].push((movie, ratings.values[i]));
        }
    }
    histories
}

/// [movies + 1, content_dim]: the encoded content of every trained movie, by movie row (row 0: the first
/// catalogue movie's, never used).
pub fn content_by_movie_row(network: &HybridRecommender, vocabulary: &Vocabulary, content: &ContentInputs, catalogue: &Catalogue) -> Result<Tensor> {
    let mut positions = vec![0i64; vocabulary.cardinalities().movies as usize + 1];
    for (position, id) in catalogue.movie_ids.iter().enumerate() {
        let row = vocabulary.movie_row(*id);
        if row > 0 {
            positions[row as usize] = position as i64;
        }
    }
    let selected = content.select(&Tensor::from_slice(&positions))?;
    Ok(tch::no_grad(|| network.encode_content(&selected))?)
}

/// The preference part's epoch bound when none is given: 300,000 / users, between 10 and 300.
pub fn default_preference_epochs(users: usize) -> usize {
    (300_000 / users.max(1)).clamp(10, 300)
}

/// Distinct users among `ratings`.
pub fn histories_count(ratings: &Ratings) -> usize {
    ratings.users.iter().collect::<std::collections::HashSet<_>>().len()
}

/// How the order's weights were come by: chosen on validation users, with what they reached, or fixed.
fn order_choice(report: &PreferenceReport) -> String {
    if report.blend_users == 0 {
        return "fixed (no validation share to choose them on)".into();
    }
    format!(
        "chosen on {} users (mean of Recall@10 and NDCG@10 {:.4}; preference alone {:.4}{})",
        report.blend_users,
        report.blend_recall.iter().map(|t| t.quality).fold(0.0, f64::max),
        report.blend_recall.first().map_or(0.0, |t| t.quality),
        best_by_input(&report.blend_recall)
    )
}

/// The best validation quality reached with each neighbourhood input, as a clause of the report (empty without a
/// neighbourhood).
fn best_by_input(tried: &[recsys_model::train::blend::BlendTried]) -> String {
    let mut best: Vec<(recsys_model::config::NeighbourInput, f64)> = Vec::new();
    for t in tried.iter().filter(|t| t.neighbour_weight > 0.0) {
        match best.iter_mut().find(|(input, _)| *input == t.neighbour_input) {
            Some(entry) => entry.1 = entry.1.max(t.quality),
            None => best.push((t.neighbour_input, t.quality)),
        }
    }
    match best.is_empty() {
        true => String::new(),
        false => format!("; best with {}", best.iter().map(|(input, quality)| format!("{input} {quality:.4}")).collect::<Vec<_>>().join(", ")),
    }
}

/// Fits the preference part on the fitting ratings and picks its epoch and blend on the validation ones.
fn fit_preference(
    network: &HybridRecommender,
    vocabulary: &Vocabulary,
    content: &ContentInputs,
    catalogue: &Catalogue,
    fit_ratings: &Ratings,
    validation: &Ratings,
    options: &PreferenceOptions,
) -> Result<PreferenceReport> {
    let users = histories_count(fit_ratings);
    let epochs = if options.epochs == 0 { default_preference_epochs(users) } else { options.epochs };
    eprintln!(
        "preference part: {epochs} epochs at most{} for {users} users",
        if options.epochs == 0 { " (300,000 / users, within 10..300)" } else { "" }
    );
    if validation.users.is_empty() {
        eprintln!(
            "  no validation share (--validation-fraction 0): the preference part runs all {epochs} epochs, and the order takes fixed weights instead of chosen ones (the best on average over the validation shares of ml-latest-small and ML-100K u1; the line below gives them)"
        );
    }
    let options = &PreferenceOptions { epochs, ..options.clone() };
    let spinner = super::phases::spinner("preference");
    let movie_content = content_by_movie_row(network, vocabulary, content, catalogue)?;
    let fit_histories = histories(fit_ratings, vocabulary);
    let item_item = match network.config().preference.is_some_and(|p| p.neighbours > 0) {
        true => super::ease::item_item_by_row(&fit_histories, vocabulary.cardinalities().movies as usize, super::ease::LAMBDA)?,
        false => None,
    };
    let report = network.train_preference(&movie_content, &fit_histories, &histories(validation, vocabulary), item_item.as_ref(), options);
    spinner.finish_and_clear();
    let report = report?;
    eprintln!(
        "  preference: best epoch {} of {}, validation Recall@10 {:.4} ({} users{}); neighbourhood weight {} ({}) and rating weight {} {} {:.1} s (steps {:.1}, checks {:.1}, order choice {:.1}, user vectors {:.1} s)",
        report.best_epoch,
        report.epochs_run,
        report.validation_recall.iter().map(|(_, r)| *r).fold(0.0, f64::max),
        report.validation_users,
        if report.epoch_check_users < report.validation_users { format!(", {} of them checked each epoch", report.epoch_check_users) } else { String::new() },
        report.neighbour_weight,
        report.neighbour_input,
        report.blend,
        order_choice(&report),
        report.seconds,
        report.spent.steps,
        report.spent.checks,
        report.spent.blend,
        report.spent.user_vectors
    );
    for (what, list, choice) in [
        ("movies", "the 10 nearest to each one's favourite", &report.similar_movies),
        ("users", "the 10 movies each one's 20 nearest users liked most", &report.similar_users),
    ] {
        eprintln!(
            "  similar {what}: {} representation chosen on {} users (mean of Recall@10 and NDCG@10 of {list}: {}) {:.1} s",
            choice.chosen,
            choice.users,
            choice.quality.iter().map(|(by, quality)| format!("{by} {quality:.4}")).collect::<Vec<_>>().join(", "),
            choice.seconds
        );
    }
    Ok(report)
}
