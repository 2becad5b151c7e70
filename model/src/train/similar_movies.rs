//! Which representation `recsys_similar_movies` serves, chosen on the validation share: for each validation user,
//! the ten movies nearest to their favourite fitted movie (among the movies they have not rated), scored against the
//! movies they liked in validation, in the rating network's representation and in the preference part's.
use super::preference::{list_quality, Histories};
use crate::config::SimilarMovies;
use crate::network::HybridRecommender;
use crate::ModelError;
use serde::Serialize;
use tch::Tensor;

/// The representation chosen and the mean of validation Recall@10 and NDCG@10 each one reached.
#[derive(Debug, Clone, Serialize)]
pub struct SimilarMoviesChoice {
    /// The representation with the better lists (ties: the rating network's).
    pub chosen: SimilarMovies,
    /// (representation, mean of Recall@10 and NDCG@10 over the users checked).
    pub quality: Vec<(SimilarMovies, f64)>,
    /// Validation users checked.
    pub users: usize,
    /// Wall time of the choice.
    pub seconds: f64,
}

impl HybridRecommender {
    /// Scores both representations on the first `limit` of the `checked` validation users (with their `relevant`
    /// movie rows); `rows` are the trained movie rows 1..=movies and `content` their encoded content.
    pub(crate) fn choose_similar_movies(
        &self,
        rows: &Tensor,
        content: &Tensor,
        fit: &Histories,
        checked: &[usize],
        relevant: &[Vec<i64>],
        limit: usize,
    ) -> Result<SimilarMoviesChoice, ModelError> {
        let started = std::time::Instant::now();
        let count = checked.len().min(limit);
        let rating = self.catalogue_scorer(rows, content)?;
        let Some(preference) = self.preference_scorer(rows, content)? else {
            return Ok(SimilarMoviesChoice { chosen: SimilarMovies::Rating, quality: Vec::new(), users: 0, seconds: 0.0 });
        };
        let movies = preference.movies();
        let mut totals = [0.0f64; 2];
        for (user, relevant) in checked[..count].iter().zip(relevant) {
            let Some(favourite) = favourite(&fit[*user]) else { continue };
            let mut allowed = vec![true; movies];
            fit[*user].iter().for_each(|(row, _)| allowed[(*row - 1) as usize] = false);
            let by_rating = rating.similar_movies(favourite, 10, |p| allowed[p])?;
            let by_preference = preference.similar_movies(favourite, 10, |p| allowed[p])?;
            for (total, list) in totals.iter_mut().zip([by_rating, by_preference]) {
                let rows: Vec<i64> = list.iter().map(|(position, _)| *position as i64 + 1).collect();
                *total += list_quality(&rows, relevant);
            }
        }
        let [by_rating, by_preference] = totals.map(|total| total / count.max(1) as f64);
        let chosen = if by_preference > by_rating { SimilarMovies::Preference } else { SimilarMovies::Rating };
        Ok(SimilarMoviesChoice {
            chosen,
            quality: vec![(SimilarMovies::Rating, by_rating), (SimilarMovies::Preference, by_preference)],
            users: count,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// The catalogue position of a user's highest-rated movie (the first of equals), `None` without ratings.
fn favourite(history: &[(i64, f32)]) -> Option<usize> {
    let best = history.iter().fold(None::<(i64, f32)>, |best, (row, rating)| match best {
        Some((_, top)) if top >= *rating => best,
        _ => Some((*row, *rating)),
    })?;
    Some((best.0 - 1) as usize)
}

#[cfg(test)]
mod tests {
    use super::favourite;

    #[test]
    fn the_favourite_is_the_first_highest_rating() {
        assert_eq!(favourite(&[(3, 4.0), (7, 5.0), (2, 5.0), (9, 1.0)]), Some(6));
        assert_eq!(favourite(&[]), None);
    }
}
