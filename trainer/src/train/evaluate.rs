//! Ranking evaluation (top-10 over each sampled user's unrated movies, ranked by the code the extension serves,
//! beside the popularity baseline), the printed summary table, and `trainer evaluate`.
use super::data::Catalogue;
use super::ease::{self, Ease};
use super::metrics::{self, Accuracy, Ranking};
use super::split::Split;
use super::Evaluated;
use anyhow::Result;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use recsys_model::ranking::{rank_by_preference, rank_users, top_k, RankOptions, RatingUsers, Retrieval};
use recsys_model::scoring::Precision;
use std::collections::{HashMap, HashSet};
use tch::Tensor;

/// Floats of the head's first layer scored at once while ranking (users × movies × width): bounds memory.
const FLOATS_PER_CHUNK: usize = 1 << 22;

/// Ranking quality of the model and of the baselines on the same users and candidates.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RankingReport {
    /// The model's lists (stored at the top level of metrics.ranking, as before the baselines were added).
    #[serde(flatten)]
    pub model: ListQuality,
    /// How the lists were ranked: the extension's own ranking code and arithmetic.
    pub ranked_by: String,
    /// The most-rated movies the user has not rated (training counts).
    pub popularity: ListQuality,
    /// EASE (λ = 500) on the same users and candidates; `None` above `ease::MAX_MOVIES` rated movies.
    pub ease: Option<ListQuality>,
    /// Why EASE is missing, when it is.
    pub ease_note: Option<String>,
}

/// Recall/NDCG@10, coverage and long-tail share of one way of making lists.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct ListQuality {
    pub recall_at_10: f64,
    pub ndcg_at_10: f64,
    pub users: usize,
    /// Distinct movies over all users' top-10 lists, over the catalogue's movies.
    pub coverage: f64,
    /// Share of lists holding a movie outside the `LONG_TAIL_FROM` most-rated (training counts).
    pub long_tail_share: f64,
}

/// Movies from this popularity rank on are the long tail.
pub const LONG_TAIL_FROM: usize = 1000;

/// Scores the lists of `users` (movie ids) against the test ratings ≥ 4, with coverage and the long-tail share.
fn list_quality(split: &Split, users: &[i32], lists: &HashMap<i32, Vec<i32>>, head: &HashSet<i32>, catalogue_movies: usize) -> ListQuality {
    let Ranking { recall_at_10, ndcg_at_10, users: counted } =
        metrics::ranking(&split.test, 4.0, users, |user| lists.get(&user).cloned().unwrap_or_default());
    let listed: Vec<&Vec<i32>> = users.iter().filter_map(|u| lists.get(u)).collect();
    let distinct: HashSet<i32> = listed.iter().flat_map(|l| l.iter().copied()).collect();
    let long_tail = listed.iter().filter(|l| l.iter().any(|m| !head.contains(m))).count();
    ListQuality {
        recall_at_10,
        ndcg_at_10,
        users: counted,
        coverage: distinct.len() as f64 / catalogue_movies.max(1) as f64,
        long_tail_share: long_tail as f64 / listed.len().max(1) as f64,
    }
}

/// Recall@10 and NDCG@10 (relevant = test rating ≥ 4) for up to `sample` test users, over every catalogue movie the
/// user has not rated in training, ranked by the code `recsys_recommend` and the batch refresh serve with (the
/// preference order through `rank_by_preference`, or for a network without it `rank_users`, in the extension's
/// default arithmetic); and the popularity and EASE baselines on the same users and candidates. `cold`: the test
/// movies have no training ratings, so EASE (0 on them by construction) is not fitted.
pub fn ranking_metrics(
    evaluated: &Evaluated,
    catalogue: &Catalogue,
    titles: &Tensor,
    split: &Split,
    sample: usize,
    seed: u64,
    cold: bool,
) -> Result<RankingReport> {
    let (network, vocabulary) = (&evaluated.trained.network, &evaluated.vocabulary);
    let content = super::encode_catalogue(vocabulary, catalogue, titles, &evaluated.config)?;
    let mut rated: HashMap<i32, Vec<(usize, f32)>> = HashMap::new();
    let mut rated_ids: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut popularity: HashMap<i32, usize> = HashMap::new();
    for ((user, movie), rating) in split.train.users.iter().zip(&split.train.movies).zip(&split.train.values) {
        if let Some(position) = catalogue.row_of.get(movie) {
            rated.entry(*user).or_default().push((*position, *rating));
        }
        rated_ids.entry(*user).or_default().push(*movie);
        *popularity.entry(*movie).or_default() += 1;
    }
    let mut users: Vec<i32> = split.test.users.iter().copied().collect::<HashSet<_>>().into_iter().collect();
    users.sort_unstable();
    users.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0x7A11));
    users.truncate(sample);
    let movie_rows = Tensor::from_slice(&catalogue.movie_ids.iter().map(|m| vocabulary.movie_row(*m)).collect::<Vec<_>>());
    let encoded = tch::no_grad(|| network.encode_content(&content))?;
    let scorer = network.catalogue_scorer(&movie_rows, &encoded)?;
    let preference = network.preference_scorer(&movie_rows, &encoded)?;
    let movies = catalogue.movie_ids.len();
    let candidates_of = |user: &i32| {
        let mut allowed = vec![true; movies];
        rated.get(user).into_iter().flatten().for_each(|(p, _)| allowed[*p] = false);
        (0..movies).filter(|p| allowed[*p]).collect::<Vec<usize>>()
    };
    let options = RankOptions { k: 10, precision: Precision::fastest_available(), retrieval: Retrieval::Exhaustive };
    let chunk = (FLOATS_PER_CHUNK / (movies.max(1) * scorer.width())).max(1);
    let mut lists: HashMap<i32, Vec<i32>> = HashMap::new();
    for group in users.chunks(chunk) {
        let rows: Vec<i64> = group.iter().map(|u| vocabulary.user_row(*u)).collect();
        let ranked = match &preference {
            Some(preference) => {
                let vectors = group.iter().map(|u| preference.user(rated.get(u).map_or(&[][..], |r| r.as_slice()))).collect::<Result<Vec<_>, _>>()?;
                rank_by_preference(
                    &scorer,
                    preference,
                    RatingUsers::Rows(&rows),
                    &vectors,
                    |i| candidates_of(&group[i]),
                    &catalogue.movie_ids,
                    options,
                )?
            }
            None => rank_users(&scorer, &rows, |i| candidates_of(&group[i]), &catalogue.movie_ids, options)?,
        };
        for (user, ranking) in group.iter().zip(ranked) {
            lists.insert(*user, ranking.into_iter().map(|(position, _)| catalogue.movie_ids[position]).collect());
        }
    }
    let mut by_count: Vec<(i32, usize)> = popularity.iter().map(|(m, c)| (*m, *c)).collect();
    by_count.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let head: HashSet<i32> = by_count.iter().take(LONG_TAIL_FROM).map(|(m, _)| *m).collect();
    let model = list_quality(split, &users, &lists, &head, movies);
    let popularity_scores: Vec<f32> = catalogue.movie_ids.iter().map(|m| popularity.get(m).copied().unwrap_or(0) as f32).collect();
    let popular_lists: HashMap<i32, Vec<i32>> = users
        .iter()
        .map(|user| {
            (*user, top_k(&popularity_scores, &catalogue.movie_ids, candidates_of(user), 10).into_iter().map(|p| catalogue.movie_ids[p]).collect())
        })
        .collect();
    let fitted = if cold { None } else { Ease::fit(&split.train, ease::LAMBDA)? };
    let (ease, ease_note) = match fitted {
        None if cold => (
            None,
            Some("not fitted: it ranks only movies with training ratings, so none of the held-out movies (Recall@10 0 by construction)".to_string()),
        ),
        Some(fitted) => {
            let own: Vec<&[i32]> = users.iter().map(|user| rated_ids.get(user).map_or(&[][..], |r| r.as_slice())).collect();
            let mut ease_lists = HashMap::new();
            for ((user, own), scores) in users.iter().zip(&own).zip(fitted.scores(&own)?) {
                let seen: HashSet<i32> = own.iter().copied().collect();
                let (ids, scores): (Vec<i32>, Vec<f32>) = scores.into_iter().filter(|(m, _)| !seen.contains(m)).unzip();
                ease_lists.insert(*user, top_k(&scores, &ids, (0..ids.len()).collect(), 10).into_iter().map(|i| ids[i]).collect());
            }
            (Some(list_quality(split, &users, &ease_lists, &head, movies)), None)
        }
        None => (None, Some(format!("EASE skipped: more than {} rated movies", ease::MAX_MOVIES))),
    };
    Ok(RankingReport {
        model,
        ranked_by: match &preference {
            Some(p) => format!("preference + {} × neighbourhood + {} × predicted rating", p.neighbour_weight(), p.blend()),
            None => format!("rank_users (predicted rating), {:?}", options.precision),
        },
        popularity: list_quality(split, &users, &popular_lists, &head, movies),
        ease,
        ease_note,
    })
}

fn row(name: &str, accuracy: &Accuracy) {
    println!("  {name:<22} RMSE {:.4}   MAE {:.4}", accuracy.rmse, accuracy.mae);
}

pub fn print_summary(main: &Evaluated, cold: Option<&Evaluated>, ranking: &RankingReport, cold_ranking: Option<&RankingReport>) {
    println!("random hold-out ({} test ratings; best epoch {}):", main.model.count, main.trained.best_epoch);
    row("hybrid model", &main.model);
    row("bias baseline", &main.bias);
    row("user mean", &main.user_mean);
    row("global mean", &main.global);
    print_lists(ranking);
    if let Some(cold) = cold {
        println!("cold-start movies ({} test ratings of movies never seen in training):", cold.model.count);
        row("hybrid model", &cold.model);
        row("bias baseline", &cold.bias);
        row("user mean", &cold.user_mean);
        row("global mean", &cold.global);
    }
    if let Some(cold_ranking) = cold_ranking {
        print_lists(cold_ranking);
    }
}

/// The model's lists beside the baselines' on the same users and candidates.
fn print_lists(ranking: &RankingReport) {
    let list = |name: &str, q: &ListQuality| {
        println!(
            "  {name:<22} Recall@10 {:.4}   NDCG@10 {:.4}   coverage {:.3}   lists with a long-tail movie {:.2}",
            q.recall_at_10, q.ndcg_at_10, q.coverage, q.long_tail_share
        )
    };
    println!("  top-10 lists of {} users over every unrated movie ({}):", ranking.model.users, ranking.ranked_by);
    list("hybrid model", &ranking.model);
    list("popularity baseline", &ranking.popularity);
    match &ranking.ease {
        Some(ease) => list("EASE baseline", ease),
        None => println!("  EASE baseline          {}", ranking.ease_note.as_deref().unwrap_or("skipped")),
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
    let (title_vectors, _) = super::title_embeddings::embed_titles(client, &catalogue)?;
    let split = super::split::random_holdout(&ratings, args.test_fraction, args.seed);
    let vocabulary = &artefact.manifest.vocabulary;
    let config = &artefact.manifest.config;
    let content = super::encode_catalogue(vocabulary, &catalogue, &title_vectors, config)?;
    let test = super::data::IndexedRatings::new(&split.test, vocabulary, &catalogue)?;
    let predictions = super::fit::predict(&network, &content, &test)?;
    let model = metrics::accuracy(&predictions, &split.test.values, config.rating_min, config.rating_max);
    let baselines = metrics::Baselines::fit(&split.train);
    println!("model {label} on {} test ratings (seed {}):", model.count, args.seed);
    row("hybrid model", &model);
    row("bias baseline", &metrics::accuracy(&baselines.predict_bias(&split.test), &split.test.values, config.rating_min, config.rating_max));
    Ok(())
}
