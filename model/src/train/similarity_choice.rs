//! Which representation `recsys_similar_movies` and `recsys_similar_users` serve, chosen on the validation share by
//! the lists each one makes for the validation users, scored against the movies they liked in validation: the ten
//! movies nearest to a user's favourite fitted movie; the ten movies the user's twenty nearest users liked most.
use super::validation::{list_quality, CheckedUsers};
use crate::config::{Positives, Representation};
use crate::network::HybridRecommender;
use crate::preference::PreferenceScorer;
use crate::ranking::top_k;
use crate::scoring::CatalogueScorer;
use crate::ModelError;
use serde::Serialize;
use tch::Tensor;

/// Users whose liked movies vote for a validation user's list when similar users are scored.
const VOTING_USERS: usize = 20;

/// The representation chosen and the mean of validation Recall@10 and NDCG@10 each one reached.
#[derive(Debug, Clone, Serialize)]
pub struct RepresentationChoice {
    /// The representation with the better lists (ties: the rating network's).
    pub chosen: Representation,
    /// (representation, mean of Recall@10 and NDCG@10 over the users checked).
    pub quality: Vec<(Representation, f64)>,
    /// Validation users checked.
    pub users: usize,
    /// Wall time of the choice.
    pub seconds: f64,
}

impl RepresentationChoice {
    fn rating_only() -> Self {
        Self { chosen: Representation::Rating, quality: Vec::new(), users: 0, seconds: 0.0 }
    }
}

impl HybridRecommender {
    /// Scores both representations of movies and of users on the `checked` users; `rows` are the trained movie rows
    /// 1..=movies and `content` their encoded content. The scorers are built once for both choices.
    pub(crate) fn choose_similarities(
        &self,
        rows: &Tensor,
        content: &Tensor,
        checked: &CheckedUsers<'_>,
    ) -> Result<(RepresentationChoice, RepresentationChoice), ModelError> {
        let rating = self.catalogue_scorer(rows, content)?;
        let Some(preference) = self.preference_scorer(rows, content)? else {
            return Ok((RepresentationChoice::rating_only(), RepresentationChoice::rating_only()));
        };
        let rating_max = self.config.rating_max as f32;
        Ok((similar_movies(&rating, &preference, checked)?, similar_users(&rating, &preference, checked, rating_max)?))
    }
}

/// Scores both movie representations: the ten movies nearest to each user's favourite fitted movie.
fn similar_movies(rating: &CatalogueScorer, preference: &PreferenceScorer, checked: &CheckedUsers<'_>) -> Result<RepresentationChoice, ModelError> {
    choose(checked, preference.movies(), |user, allowed| {
        let Some(favourite) = favourite(&checked.fit[user]) else { return Ok([Vec::new(), Vec::new()]) };
        Ok([rating.similar_movies(favourite, 10, |p| allowed[p])?, preference.similar_movies(favourite, 10, |p| allowed[p])?]
            .map(|list| list.into_iter().map(|(position, _)| position).collect()))
    })
}

/// Scores both user representations (the preference one only when the network stores user vectors): the ten movies
/// each user's `VOTING_USERS` nearest users liked most.
fn similar_users(
    rating: &CatalogueScorer,
    preference: &PreferenceScorer,
    checked: &CheckedUsers<'_>,
    rating_max: f32,
) -> Result<RepresentationChoice, ModelError> {
    if !preference.has_user_vectors() {
        return Ok(RepresentationChoice::rating_only());
    }
    let movies = preference.movies();
    choose(checked, movies, |user, allowed| {
        let by_rating = rating.similar_users(user, VOTING_USERS)?;
        let by_preference = preference.similar_users(user, VOTING_USERS)?;
        Ok([by_rating, by_preference].map(|neighbours| {
            let mut votes = vec![0f32; movies];
            for (neighbour, _) in neighbours {
                let liked = checked.fit.get(neighbour).into_iter().flatten().filter(|(_, r)| Positives::Liked.weight(*r, rating_max) > 0.0);
                liked.for_each(|(row, _)| votes[(*row - 1) as usize] += 1.0);
            }
            let ids: Vec<i32> = (0..movies as i32).collect();
            top_k(&votes, &ids, (0..movies).filter(|p| allowed[*p] && votes[*p] > 0.0).collect(), 10)
        }))
    })
}

/// The mean list quality of the rating (first) and preference (second) lists `lists(user row, allowed positions)`
/// makes for each checked user, and the better of the two.
fn choose(
    checked: &CheckedUsers<'_>,
    movies: usize,
    lists: impl Fn(usize, &[bool]) -> Result<[Vec<usize>; 2], ModelError>,
) -> Result<RepresentationChoice, ModelError> {
    let started = std::time::Instant::now();
    let mut totals = [0.0f64; 2];
    for (user, relevant) in checked.rows.iter().zip(checked.relevant) {
        let mut allowed = vec![true; movies];
        checked.fit[*user].iter().for_each(|(row, _)| allowed[(*row - 1) as usize] = false);
        for (total, list) in totals.iter_mut().zip(lists(*user, &allowed)?) {
            let rows: Vec<i64> = list.iter().map(|position| *position as i64 + 1).collect();
            *total += list_quality(&rows, relevant);
        }
    }
    let count = checked.rows.len();
    let [by_rating, by_preference] = totals.map(|total| total / count.max(1) as f64);
    Ok(RepresentationChoice {
        chosen: if by_preference > by_rating { Representation::Preference } else { Representation::Rating },
        quality: vec![(Representation::Rating, by_rating), (Representation::Preference, by_preference)],
        users: count,
        seconds: started.elapsed().as_secs_f64(),
    })
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
