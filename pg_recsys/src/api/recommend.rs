//! Real-time top-k recommendations over the whole catalogue with the active model.
use crate::error::{OrRaise, RecsysError};
use crate::serving::fold_in::UserVector;
use crate::serving::model::LoadedModel;
use crate::serving::state;
use pgrx::prelude::*;
use recsys_model::ranking::RatingUsers;
use std::collections::HashSet;

/// Upper bound on `k`: larger values are capped to the catalogue size anyway.
pub(super) const MAX_K: i32 = 10_000;

/// Rated movies of a user, or movies of a genre: every value is a bound parameter.
const RATED_BY_USER: &str = "SELECT movie_id FROM recsys.ratings WHERE user_id OPERATOR(pg_catalog.=) $1::pg_catalog.int4";
const OF_GENRE: &str = "SELECT mg.movie_id FROM recsys.movie_genres mg JOIN recsys.genres g USING (genre_id)
     WHERE pg_catalog.lower(g.name) OPERATOR(pg_catalog.=) pg_catalog.lower($1::pg_catalog.text)";

fn movie_ids_where(sql: &str, argument: pgrx::datum::DatumWithOid<'_>) -> Result<HashSet<i32>, RecsysError> {
    Spi::connect(|client| -> Result<HashSet<i32>, pgrx::spi::Error> {
        let mut ids = HashSet::new();
        for row in client.select(sql, None, &[argument])? {
            if let Some(id) = row.get::<i32>(1)? {
                ids.insert(id);
            }
        }
        Ok(ids)
    })
    .map_err(RecsysError::spi("reading movie ids"))
}

/// The ids of the movies of genre `name` (case-insensitive).
pub(super) fn movies_of_genre(name: &str) -> Result<HashSet<i32>, RecsysError> {
    movie_ids_where(OF_GENRE, name.into())
}

/// One recommendation: rank, movie id, title, score, and (when asked) why.
type Recommendation = (i32, i32, String, f32, Option<String>);

/// Why each ranked movie is recommended, from the user's `rated` (catalogue position, rating): the user's liked (4★ and up; else any) rated movie closest to it in the
/// model's movie representation, or, for a user without ratings, that the movie is rated highly overall.
fn reasons(model: &LoadedModel, rated: Vec<(usize, f32)>, ranked: &[(usize, f32)]) -> Result<Vec<String>, RecsysError> {
    let liked: Vec<(usize, f32)> = rated.iter().copied().filter(|(_, rating)| *rating >= 4.0).collect();
    let basis = if liked.is_empty() { rated } else { liked };
    ranked
        .iter()
        .map(|(position, _)| {
            Ok(match super::explain::closest_rated(model, *position, &basis)?.first() {
                Some((at, rating)) => format!("because {}", super::explain::you_rated(model, *at, *rating)),
                None => "rated highly by users overall; rate a few movies for a list of your own".to_string(),
            })
        })
        .collect()
}

fn recommend(user_id: i32, k: i32, exclude_rated: bool, genre: Option<&str>, explain: bool) -> Result<Vec<Recommendation>, RecsysError> {
    super::checked_k(k, MAX_K, "recommendations")?;
    let _float_mode = crate::torch_runtime::prepare()?;
    let model = state::active_model()?;
    let needs_ratings = explain || model.preference.is_some();
    let rated = if needs_ratings { Some(super::explain::rated_positions(user_id, &model.movie_index)?) } else { None };
    let excluded: Vec<usize> = match (&rated, exclude_rated) {
        (_, false) => Vec::new(),
        (Some(rated), true) => rated.iter().map(|(position, _)| *position).collect(),
        (None, true) => movie_ids_where(RATED_BY_USER, user_id.into())?.iter().filter_map(|id| model.movie_index.get(id).copied()).collect(),
    };
    let rated_at: Vec<(usize, f32)> = rated.iter().flatten().copied().collect();
    let allowed = match genre {
        Some(name) => Some(movies_of_genre(name)?),
        None => None,
    };
    let candidates = |_| model.candidate_positions(&excluded, allowed.as_ref());
    let options = crate::guc::rank_options(k as usize, model.scorer.movies());
    let ranked = match state::user_vector(&model, user_id)? {
        UserVector::Row(row) => model.rank_lists(RatingUsers::Rows(&[row as i64]), &[&rated_at], candidates, options)?,
        UserVector::Folded(user, _) => {
            model.rank_lists(RatingUsers::Folded(std::slice::from_ref(user.as_ref())), &[&rated_at], candidates, options)?
        }
    };
    let best = ranked.into_iter().next().unwrap_or_default();
    let because: Vec<Option<String>> = match rated {
        Some(rated) if explain => reasons(&model, rated, &best)?.into_iter().map(Some).collect(),
        _ => vec![None; best.len()],
    };
    Ok(best
        .into_iter()
        .zip(because)
        .enumerate()
        .map(|(rank, ((i, score), because))| (rank as i32 + 1, model.catalogue.movie_ids[i], model.catalogue.titles[i].clone(), score, because))
        .collect())
}

/// The `k` best movies for `user_id` by the active model over the whole catalogue, in the order the trainer chose on
/// validation (the preference score of the user's rated movies plus a stored weight times the predicted rating):
/// rank (1 = best), movie id, title, predicted rating, and with `explain` a short `because` text (the user's liked
/// movie closest to it; NULL without `explain`). `exclude_rated` leaves out movies the user has rated; `genre` keeps
/// only movies of that genre (case-insensitive). Ties go to the lower movie id. Ratings the model never saw are
/// folded into the user's vector first (`recsys.fold_in`); an unknown user without ratings gets the recommendations
/// of an average user; a NULL user gets no rows; NULL k, exclude_rated and explain take their defaults. k outside
/// 1..10000 → 22023; no active model → 55000.
#[pg_extern(stable, parallel_safe, name = "recsys_recommend")]
fn recsys_recommend_with_reasons(
    user_id: Option<i32>,
    k: default!(Option<i32>, 10),
    exclude_rated: default!(Option<bool>, true),
    genre: default!(Option<&str>, "NULL"),
    explain: default!(Option<bool>, false),
) -> TableIterator<'static, (name!(rank, i32), name!(movie_id, i32), name!(title, String), name!(score, f32), name!(because, Option<String>))> {
    let Some(user_id) = user_id else { return TableIterator::new(Vec::new()) };
    TableIterator::new(recommend(user_id, k.unwrap_or(10), exclude_rated.unwrap_or(true), genre, explain.unwrap_or(false)).or_raise())
}

/// The 0.4.0 form (four columns), kept as a C symbol so that a 0.4.0 schema keeps serving with this library until
/// `ALTER EXTENSION pg_recsys UPDATE`; not part of the current schema.
#[pg_extern(stable, parallel_safe, sql = false)]
fn recsys_recommend(
    user_id: Option<i32>,
    k: Option<i32>,
    exclude_rated: Option<bool>,
    genre: Option<&str>,
) -> TableIterator<'static, (name!(rank, i32), name!(movie_id, i32), name!(title, String), name!(score, f32))> {
    let Some(user_id) = user_id else { return TableIterator::new(Vec::new()) };
    let rows = recommend(user_id, k.unwrap_or(10), exclude_rated.unwrap_or(true), genre, false).or_raise();
    TableIterator::new(rows.into_iter().map(|(rank, movie, title, score, _)| (rank, movie, title, score)))
}
