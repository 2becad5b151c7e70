//! Champion against challenger for `--activate-if-better`, and the monitoring row of a training run: the active
//! model (champion) and the new one (challenger) are scored on the hold-out ratings neither has seen
//! (`recsys.rating_unseen` for the champion); with none, they are not compared and the champion stays.
use super::data::IndexedRatings;
use super::data::{Catalogue, Ratings};
use super::fit;
use super::metrics;
use anyhow::Result;
use recsys_model::{Artefact, HybridRecommender, ModelConfig, Vocabulary};
use serde::Serialize;
use std::collections::HashSet;
use tch::Tensor;

/// A model ready to score ratings: its network, vocabulary and config.
pub struct Scorer<'a> {
    pub network: &'a HybridRecommender,
    pub vocabulary: &'a Vocabulary,
    pub config: &'a ModelConfig,
}

impl Scorer<'_> {
    /// RMSE on `ratings` (None when there are none).
    pub fn rmse(&self, catalogue: &Catalogue, titles: &Tensor, ratings: &Ratings) -> Result<Option<f64>> {
        if ratings.len() == 0 {
            return Ok(None);
        }
        let content = super::encode_catalogue(self.vocabulary, catalogue, titles, self.config)?;
        let indexed = IndexedRatings::new(ratings, self.vocabulary, catalogue)?;
        let predictions = fit::predict(self.network, &content, &indexed)?;
        Ok(Some(metrics::accuracy(&predictions, &ratings.values, self.config.rating_min, self.config.rating_max).rmse))
    }
}

/// The active model as stored in the registry, built once.
pub struct Champion {
    pub version: i64,
    pub artefact: Artefact,
    _store: tch::nn::VarStore,
    network: HybridRecommender,
    /// (user, movie) of the ratings given after its training data, as the extension's prospective RMSE counts them.
    after_training: HashSet<(i32, i32)>,
}

impl Champion {
    pub fn load(client: &mut postgres::Client) -> Result<Option<Self>> {
        if client.query_opt("SELECT 1 FROM recsys.models WHERE status = 'active'", &[])?.is_none() {
            return Ok(None);
        }
        let (version, artefact) = super::evaluate::load_registered(client, None)?;
        let (store, network) = artefact.build()?;
        let has_load_numbers: bool = client.query_one(recsys_contract::HAS_LOAD_NUMBERS, &[])?.get(0);
        let fingerprint = &artefact.manifest.fingerprint;
        let trained_until = fingerprint.max_rated_at.map(|seconds| seconds as f64);
        let rows = match has_load_numbers {
            true => client.query(recsys_contract::RATINGS_AFTER_TRAINING, &[&fingerprint.loaded_until, &trained_until])?,
            false => client.query(recsys_contract::RATINGS_AFTER_TRAINING_BY_TIME, &[&version])?,
        };
        let after_training = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
        Ok(Some(Self { version, artefact, _store: store, network, after_training }))
    }

    fn scorer(&self) -> Scorer<'_> {
        Scorer { network: &self.network, vocabulary: &self.artefact.manifest.vocabulary, config: &self.artefact.manifest.config }
    }

    /// Ratings in `ratings` that arrived after the champion's training data.
    pub fn unseen(&self, ratings: &Ratings) -> Ratings {
        let newer: Vec<usize> = (0..ratings.len()).filter(|i| self.after_training.contains(&(ratings.users[*i], ratings.movies[*i]))).collect();
        ratings.subset(&newer)
    }
}

#[derive(Debug, Serialize)]
pub struct Comparison {
    pub champion_version: i64,
    /// RMSE of each on the hold-out ratings the champion has not seen (None when there are none).
    pub champion_rmse: Option<f64>,
    pub challenger_rmse: Option<f64>,
    /// How many such ratings there were.
    pub ratings: usize,
    /// Whether the challenger scored better on them (false when there were none: nothing to judge it by).
    pub challenger_wins: bool,
}

/// Scores champion and challenger on the test ratings the champion has not seen; never on ratings it was trained
/// on, which would favour it.
pub fn compare(champion: &Champion, challenger: &Scorer<'_>, catalogue: &Catalogue, titles: &Tensor, test: &Ratings) -> Result<Comparison> {
    let unseen = champion.unseen(test);
    let champion_rmse = champion.scorer().rmse(catalogue, titles, &unseen)?;
    let challenger_rmse = challenger.rmse(catalogue, titles, &unseen)?;
    let challenger_wins = matches!((champion_rmse, challenger_rmse), (Some(old), Some(new)) if new < old);
    Ok(Comparison { champion_version: champion.version, champion_rmse, challenger_rmse, ratings: unseen.len(), challenger_wins })
}

/// The champion's RMSE on every rating that arrived after its training data, and how many there were.
pub fn prospective(champion: &Champion, catalogue: &Catalogue, titles: &Tensor, all: &Ratings) -> Result<(Option<f64>, usize)> {
    let unseen = champion.unseen(all);
    Ok((champion.scorer().rmse(catalogue, titles, &unseen)?, unseen.len()))
}
