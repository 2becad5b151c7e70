//! `recsys_recommend_for`: recommendations for a visitor from a handful of ratings (the "rate five movies to get
//! started" page), fitted at query time from the average user; nothing is written.
use crate::error::{OrRaise, RecsysError};
use crate::serving::{fold_in, state};
use pgrx::prelude::*;
use pgrx::JsonB;
use recsys_model::ranking::RatingUsers;
use std::collections::HashSet;

type Row = (i32, i32, String, f32);

fn invalid(message: String) -> RecsysError {
    RecsysError::invalid_parameter(message, "Pass one rating per movie id, each on the model's rating scale (e.g. 0.5 to 5).")
}

fn recommend_for(rated: &[(i32, f32)], k: i32, exclude_rated: bool, genre: Option<&str>) -> Result<Vec<Row>, RecsysError> {
    super::checked_k(k, super::recommend::MAX_K, "recommendations")?;
    let _float_mode = crate::torch_runtime::prepare()?;
    let model = state::active_model()?;
    let config = model.network().config();
    let mut seen = HashSet::new();
    let mut observed = Vec::with_capacity(rated.len());
    for (movie, rating) in rated {
        if !(config.rating_min as f32..=config.rating_max as f32).contains(rating) {
            return Err(invalid(format!("rating {rating} of movie {movie} is outside the scale {}–{}", config.rating_min, config.rating_max)));
        }
        if !seen.insert(*movie) {
            return Err(invalid(format!("movie {movie} is rated twice")));
        }
        observed.push((*model.movie_index.get(movie).ok_or(RecsysError::UnknownMovie(*movie))?, *rating));
    }
    let visitor = fold_in::visitor_vector(&model, &observed)?;
    let allowed = match genre {
        Some(name) => Some(super::recommend::movies_of_genre(name)?),
        None => None,
    };
    let rated_at: Vec<usize> = observed.iter().map(|(position, _)| *position).collect();
    let excluded: &[usize] = if exclude_rated { &rated_at } else { &[] };
    let candidates = |_| model.candidate_positions(excluded, allowed.as_ref());
    let ranked = model.rank_lists(
        RatingUsers::Folded(std::slice::from_ref(&visitor)),
        &[&observed],
        candidates,
        crate::guc::rank_options(k as usize, model.scorer.movies()),
    )?;
    Ok(ranked
        .into_iter()
        .next()
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(rank, (at, score))| (rank as i32 + 1, model.catalogue.movie_ids[at], model.catalogue.titles[at].clone(), score))
        .collect())
}

/// The `k` best movies for a visitor who rated `movie_ids` with `ratings` (same length, on the model's scale): a
/// vector fitted to those ratings from the average user's (fold-in), ranked over the whole catalogue like
/// `recsys_recommend`: rank, movie id, title, predicted rating. Writes nothing. `exclude_rated` leaves out the rated
/// movies; `genre` filters. Arrays of different lengths, a NULL element, a rating outside the scale or a movie
/// rated twice → 22023; a movie not in recsys.movies → 42704; empty arrays → the average user's list.
#[pg_extern(stable, parallel_safe)]
fn recsys_recommend_for(
    movie_ids: Option<Vec<Option<i32>>>,
    ratings: Option<Vec<Option<f32>>>,
    k: default!(Option<i32>, 10),
    exclude_rated: default!(Option<bool>, true),
    genre: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(rank, i32), name!(movie_id, i32), name!(title, String), name!(score, f32))> {
    let (movies, ratings) = (movie_ids.unwrap_or_default(), ratings.unwrap_or_default());
    let pairs = if movies.len() != ratings.len() {
        Err(invalid(format!("{} movie ids but {} ratings", movies.len(), ratings.len())))
    } else {
        movies
            .into_iter()
            .zip(ratings)
            .map(|pair| match pair {
                (Some(movie), Some(rating)) => Ok((movie, rating)),
                _ => Err(invalid("a movie id or rating is NULL".into())),
            })
            .collect::<Result<Vec<_>, _>>()
    };
    TableIterator::new(pairs.and_then(|pairs| recommend_for(&pairs, k.unwrap_or(10), exclude_rated.unwrap_or(true), genre)).or_raise())
}

/// `recsys_recommend_for` with the ratings as a jsonb object `{"movie_id": rating, …}` (keys are movie ids).
#[pg_extern(name = "recsys_recommend_for", stable, parallel_safe)]
fn recsys_recommend_for_jsonb(
    ratings: Option<JsonB>,
    k: default!(Option<i32>, 10),
    exclude_rated: default!(Option<bool>, true),
    genre: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(rank, i32), name!(movie_id, i32), name!(title, String), name!(score, f32))> {
    let pairs = match ratings.map(|j| j.0) {
        None => Ok(Vec::new()),
        Some(serde_json::Value::Object(map)) => map
            .iter()
            .map(|(key, value)| {
                let movie = key.trim().parse::<i32>().map_err(|_| invalid(format!("key {key:?} is not a movie id")))?;
                let rating = value.as_f64().ok_or_else(|| invalid(format!("the rating of movie {movie} is not a number")))?;
                Ok((movie, rating as f32))
            })
            .collect::<Result<Vec<(i32, f32)>, RecsysError>>(),
        Some(_) => Err(invalid("ratings must be a jsonb object {\"movie_id\": rating, …}".into())),
    };
    TableIterator::new(pairs.and_then(|pairs| recommend_for(&pairs, k.unwrap_or(10), exclude_rated.unwrap_or(true), genre)).or_raise())
}
