//! How a backend orders recommendation lists: by the model's preference part (the preference score of the user's
//! rated movies plus the blend of the predicted rating the trainer chose) when the model has one, else by predicted
//! rating (models trained before 0.7). `recsys_recommend`, `recsys_recommend_for` and the batch refresh all call it.
use super::model::LoadedModel;
use crate::error::RecsysError;
use recsys_model::ranking::{rank_by_preference, rank_folded_users, rank_users, RankOptions, Ranking, RatingUsers};
use std::collections::HashSet;

impl LoadedModel {
    /// The catalogue positions a list may hold: every position but `excluded`, and with `allowed` (movie ids) only
    /// the allowed ones. A mask by position: no hashing per catalogue movie.
    pub fn candidate_positions(&self, excluded: &[usize], allowed: Option<&HashSet<i32>>) -> Vec<usize> {
        let movies = self.catalogue.movie_ids.len();
        let mut keep = match allowed {
            None => vec![true; movies],
            Some(allowed) => {
                let mut keep = vec![false; movies];
                allowed.iter().filter_map(|id| self.movie_index.get(id)).for_each(|position| keep[*position] = true);
                keep
            }
        };
        excluded.iter().filter(|position| **position < movies).for_each(|position| keep[*position] = false);
        (0..movies).filter(|position| keep[*position]).collect()
    }

    /// The `k` best `candidates(i)` of each user i, whose predicted ratings come from `users` and who rated the
    /// catalogue positions of `rated[i]` (position, rating: their preference vector and neighbourhood scores; all their
    /// ratings, new ones included). Each entry is (catalogue position, predicted rating), best first.
    pub fn rank_lists(
        &self,
        users: RatingUsers<'_>,
        rated: &[&[(usize, f32)]],
        candidates: impl Fn(usize) -> Vec<usize>,
        options: RankOptions,
    ) -> Result<Vec<Ranking>, RecsysError> {
        let ids = &self.catalogue.movie_ids;
        Ok(match (&self.preference, users) {
            (Some(preference), users) => {
                let vectors = rated.iter().map(|r| preference.user(r)).collect::<Result<Vec<_>, _>>()?;
                rank_by_preference(&self.scorer, preference, users, &vectors, candidates, ids, options)?
            }
            (None, RatingUsers::Rows(rows)) => rank_users(&self.scorer, rows, candidates, ids, options)?,
            (None, RatingUsers::Folded(folded)) => rank_folded_users(&self.scorer, folded, candidates, ids, options)?,
        })
    }
}
