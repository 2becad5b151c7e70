//! Ranking evaluation (top-10 over each sampled user's unrated movies) and the printed summary table.
use super::data::Catalogue;
use super::metrics::{self, Accuracy, Ranking};
use super::split::Split;
use super::Evaluated;
use anyhow::Result;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recsys_model::{HybridRecommender, ModelConfig, Vocabulary};
use std::collections::{HashMap, HashSet};
use tch::{Kind, Tensor};

/// Recall@10 and NDCG@10 (relevant = test rating ≥ 4) for up to `sample` test users, scoring every catalogue
/// movie the user has not rated in training.
pub fn ranking_metrics(network: &HybridRecommender, vocabulary: &Vocabulary, catalogue: &Catalogue, titles: &Tensor, config: &ModelConfig, split: &Split, sample: usize, seed: u64) -> Result<Ranking> {
    let content = super::encode_catalogue(vocabulary, catalogue, titles, config)?;
    let mut rated: HashMap<i32, HashSet<i32>> = HashMap::new();
    for (user, movie) in split.train.users.iter().zip(&split.train.movies) {
        rated.entry(*user).or_default().insert(*movie);
    }
    let mut users: Vec<i32> = split.test.users.iter().copied().collect::<HashSet<_>>().into_iter().collect();
    users.sort_unstable();
    users.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x7A11));
    users.truncate(sample);
    let movie_rows = Tensor::from_slice(&catalogue.movie_ids.iter().map(|m| vocabulary.movie_row(*m)).collect::<Vec<_>>());
    let encoded = tch::no_grad(|| network.encode_content(&content))?;
    let count = catalogue.movie_ids.len() as i64;
    let mut failure = None;
    let result = metrics::ranking(&split.test, 4.0, &users, |user| {
        let scores = tch::no_grad(|| network.forward_encoded(&Tensor::full([count], vocabulary.user_row(user), (Kind::Int64, tch::Device::Cpu)), &movie_rows, &encoded));
        let mut scores: Vec<f32> = match scores.and_then(|s| Vec::<f32>::try_from(s)) {
            Ok(s) => s,
            Err(error) => {
                failure = Some(error);
                return Vec::new();
            }
        };
        if let Some(seen) = rated.get(&user) {
            for (index, movie) in catalogue.movie_ids.iter().enumerate() {
                if seen.contains(movie) {
                    scores[index] = f32::NEG_INFINITY;
                }
            }
        }
        let best = recsys_model::ranking::top_k(&scores, &catalogue.movie_ids, (0..scores.len()).collect(), 10);
        best.iter().map(|i| catalogue.movie_ids[*i]).collect()
    });
    match failure {
        Some(error) => Err(error.into()),
        None => Ok(result),
    }
}

fn row(name: &str, accuracy: &Accuracy) {
    println!("  {name:<22} RMSE {:.4}   MAE {:.4}", accuracy.rmse, accuracy.mae);
}

pub fn print_summary(main: &Evaluated, cold: Option<&Evaluated>, ranking: &Ranking) {
    println!("random hold-out ({} test ratings; best epoch {}):", main.model.count, main.trained.best_epoch);
    row("hybrid model", &main.model);
    row("bias baseline", &main.bias);
    row("user mean", &main.user_mean);
    row("global mean", &main.global);
    println!("  ranking ({} users)      Recall@10 {:.4}   NDCG@10 {:.4}", ranking.users, ranking.recall_at_10, ranking.ndcg_at_10);
    if let Some(cold) = cold {
        println!("cold-start movies ({} test ratings of movies never seen in training):", cold.model.count);
        row("hybrid model", &cold.model);
        row("bias baseline", &cold.bias);
        row("user mean", &cold.user_mean);
        row("global mean", &cold.global);
    }
}

/// Where `trainer evaluate` takes its model from.
#[derive(clap::Args, Debug)]
pub struct EvaluateArgs {
    /// A registered model version (default: the active one).
    #[arg(long, conflicts_with = "artefact")]
    pub version: Option<i64>,
    /// An artefact directory written by `trainer train --out`.
    #[arg(long)]
    pub artefact: Option<std::path::PathBuf>,
    /// Split seed and test share; use the training run's values to score its own hold-out.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[arg(long, default_value_t = 0.1)]
    pub test_fraction: f64,
}

pub(super) fn load_registered(client: &mut postgres::Client, version: Option<i64>) -> Result<(i64, recsys_model::Artefact)> {
    let row = match version {
        Some(v) => client.query_opt("SELECT version, manifest::text, weights FROM recsys.models WHERE version = $1", &[&v])?,
        None => client.query_opt("SELECT version, manifest::text, weights FROM recsys.models WHERE status = 'active'", &[])?,
    };
    let Some(row) = row else {
        anyhow::bail!("{}", version.map(|v| format!("model version {v} is not registered")).unwrap_or_else(|| "no model is active".into()));
    };
    Ok((row.get(0), recsys_model::Artefact::from_parts(row.get(1), row.get(2))?))
}

/// `trainer evaluate`: scores a registered version or an artefact on the random hold-out of the current data.
pub fn run_evaluate(client: &mut postgres::Client, args: &EvaluateArgs) -> Result<()> {
    let (label, artefact) = match &args.artefact {
        Some(dir) => (dir.display().to_string(), recsys_model::Artefact::load_dir(dir)?),
        None => load_registered(client, args.version).map(|(v, a)| (format!("version {v}"), a))?,
    };
    let (_store, network) = artefact.build()?;
    let ratings = super::data::load_ratings(client)?;
    let catalogue = super::data::load_catalogue(client)?;
    let (title_vectors, _) = super::titles::embed_titles(client, &catalogue)?;
    let split = super::split::random_holdout(&ratings, args.test_fraction, args.seed);
    let vocabulary = &artefact.manifest.vocabulary;
    let config = &artefact.manifest.config;
    let content = super::encode_catalogue(vocabulary, &catalogue, &title_vectors, config)?;
    let test = super::fit::IndexedRatings::new(&split.test, vocabulary, &catalogue)?;
    let predictions = super::fit::predict(&network, &content, &test)?;
    let model = metrics::accuracy(&predictions, &split.test.values, config.rating_min, config.rating_max);
    let baselines = metrics::Baselines::fit(&split.train);
    println!("model {label} on {} test ratings (seed {}):", model.count, args.seed);
    row("hybrid model", &model);
    row("bias baseline", &metrics::accuracy(&baselines.predict_bias(&split.test), &split.test.values, config.rating_min, config.rating_max));
    Ok(())
}
