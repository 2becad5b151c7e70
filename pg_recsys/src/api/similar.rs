//! Nearest neighbours in the active model's learned representations: similar movies and similar users.
use crate::error::{OrRaise, RecsysError};
use crate::serving::state;
use pgrx::prelude::*;

/// Upper bound on `k`.
const MAX_K: i32 = 1_000;

fn check_k(k: i32) -> Result<usize, RecsysError> {
    super::checked_k(k, MAX_K, "neighbours")
}

fn similar_movies(movie_id: i32, k: i32, genre: Option<&str>) -> Result<Vec<(i32, i32, String, f32)>, RecsysError> {
    let k = check_k(k)?;
    let _float_mode = crate::torch_runtime::prepare()?;
    let model = state::active_model()?;
    let position = *model.movie_index.get(&movie_id).ok_or(RecsysError::UnknownMovie(movie_id))?;
    let allowed = match genre {
        Some(name) => Some(super::recommend::movies_of_genre(name)?),
        None => None,
    };
    let ids = &model.catalogue.movie_ids;
    let keep = |candidate: usize| allowed.as_ref().is_none_or(|a| a.contains(&ids[candidate]));
    let neighbours = match model.preference.as_ref().filter(|p| p.serves_similar_movies()) {
        Some(preference) => preference.similar_movies(position, k, keep)?,
        None => model.scorer.similar_movies(position, k, keep)?,
    };
    Ok(neighbours
        .into_iter()
        .enumerate()
        .map(|(rank, (at, similarity))| (rank as i32 + 1, ids[at], model.catalogue.titles[at].clone(), similarity))
        .collect())
}

fn similar_users(user_id: i32, k: i32) -> Result<Vec<(i32, i32, f32)>, RecsysError> {
    let k = check_k(k)?;
    let _float_mode = crate::torch_runtime::prepare()?;
    let model = state::active_model()?;
    let row = model.vocabulary.user_row(user_id);
    if row == 0 {
        return Err(RecsysError::UnknownUser(user_id));
    }
    let users = &model.vocabulary.users;
    let neighbours = match model.preference.as_ref().filter(|p| p.serves_similar_users()) {
        Some(preference) => preference.similar_users(row as usize, k)?,
        None => model.scorer.similar_users(row as usize, k)?,
    };
    Ok(neighbours
        .into_iter()
        .enumerate()
        .map(|(rank, (neighbour_row, similarity))| (rank as i32 + 1, users[neighbour_row - 1], similarity))
        .collect())
}

/// The `k` movies most similar to `movie_id` by cosine similarity in the representation the trainer chose on its
/// validation share: the preference part's vectors (movies picked by the same users; 0.7.0's default models) or
/// what the movie feeds the rating network's head (older models). Both hold the movie's content, so a movie without
/// ratings finds neighbours through its genres, people, title and year. Rank, movie id, title, similarity (−1..1).
/// The movie itself is never listed; `genre` keeps only neighbours of that genre. NULL movie → no rows; a movie not
/// in recsys.movies → 42704; k outside 1..1000 → 22023.
#[pg_extern(stable, parallel_safe)]
fn recsys_similar_movies(
    movie_id: Option<i32>,
    k: default!(Option<i32>, 10),
    genre: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(rank, i32), name!(movie_id, i32), name!(title, String), name!(similarity, f32))> {
    let Some(movie_id) = movie_id else { return TableIterator::new(Vec::new()) };
    TableIterator::new(similar_movies(movie_id, k.unwrap_or(10), genre).or_raise())
}

/// The `k` users most similar to `user_id` by cosine similarity in the representation the trainer chose on its
/// validation share: the users' preference vectors as trained (users who picked the same movies; 0.7.0's default
/// models) or what the user's learned embedding feeds the rating network's head, and the embedding itself (older
/// models). Ratings given after training do not move a user here. Rank, user id, similarity (−1..1).
/// The user is never listed. NULL user → no rows; a user the model was trained without → 42704; k outside 1..1000
/// → 22023.
#[pg_extern(stable, parallel_safe)]
fn recsys_similar_users(
    user_id: Option<i32>,
    k: default!(Option<i32>, 10),
) -> TableIterator<'static, (name!(rank, i32), name!(user_id, i32), name!(similarity, f32))> {
    let Some(user_id) = user_id else { return TableIterator::new(Vec::new()) };
    TableIterator::new(similar_users(user_id, k.unwrap_or(10)).or_raise())
}
