//! Rating prediction with the active model: single pairs in plain Rust, lists through the catalogue scorer in
//! bounded chunks.
use crate::error::{OrRaise, RecsysError};
use crate::serving::cache::{self, LoadedModel};
use pgrx::prelude::*;

/// Pairs scored per pass of a list: bounds the memory of one call (about this many × the head's width floats)
/// and how long a cancel waits.
const PAIRS_PER_CHUNK: usize = 8192;

/// The catalogue position of `movie_id`. The cached catalogue is the current one (it is reloaded whenever the
/// catalogue version changes), so a movie that is not in it is not in recsys.movies.
fn position(model: &LoadedModel, movie_id: i32) -> Result<usize, RecsysError> {
    model.movie_index.get(&movie_id).copied().ok_or(RecsysError::UnknownMovie(movie_id))
}

fn predict_one(user_id: i32, movie_id: i32) -> Result<f32, RecsysError> {
    let _float_mode = crate::torch_runtime::prepare()?;
    let model = cache::active()?;
    let user_row = model.vocabulary.user_row(user_id) as usize;
    let raw = model
        .scorer
        .raw_score(user_row, position(&model, movie_id)?)
        .ok_or_else(|| RecsysError::internal(format!("user row {user_row} is outside the model")))?;
    model.rating(raw)
}

/// Predicted rating of `movie_id` for `user_id` by the active model, on the model's rating scale (0.5–5).
/// A user the model has not seen is scored as an average user (the "unknown user" embedding, no user bias);
/// a movie without a trained embedding is scored from its content. Errors: no active model (55000), a movie
/// that is not in recsys.movies (42704). NULL arguments give NULL.
#[pg_extern(stable, strict, parallel_safe)]
fn recsys_predict(user_id: i32, movie_id: i32) -> f32 {
    predict_one(user_id, movie_id).or_raise()
}

/// Scores of `movie_ids` for `user_id`: one row per non-NULL id, in the given order (NULL elements are skipped),
/// scored in chunks of 8,192 pairs (memory per call stays bounded whatever the list's length, and a cancel or
/// statement_timeout stops it between chunks). Same rules and errors as `recsys_predict(user_id, movie_id)`.
#[pg_extern(name = "recsys_predict", stable, strict, parallel_safe)]
fn recsys_predict_many(user_id: i32, movie_ids: Vec<Option<i32>>) -> TableIterator<'static, (name!(movie_id, i32), name!(score, f32))> {
    let ids: Vec<i32> = movie_ids.into_iter().flatten().collect();
    let scores = predict_many(user_id, &ids).or_raise();
    TableIterator::new(ids.into_iter().zip(scores))
}

fn predict_many(user_id: i32, movie_ids: &[i32]) -> Result<Vec<f32>, RecsysError> {
    if movie_ids.is_empty() {
        return Ok(Vec::new());
    }
    let _float_mode = crate::torch_runtime::prepare()?;
    let model = cache::active()?;
    let user_row = model.vocabulary.user_row(user_id);
    let mut scores = Vec::with_capacity(movie_ids.len());
    for chunk in movie_ids.chunks(PAIRS_PER_CHUNK) {
        let positions = chunk.iter().map(|m| position(&model, *m).map(|p| p as i64)).collect::<Result<Vec<i64>, _>>()?;
        let raw = model.scorer.score_pairs(&vec![user_row; positions.len()], &positions)?;
        for value in raw {
            scores.push(model.rating(value)?);
        }
        pgrx::check_for_interrupts!();
    }
    Ok(scores)
}
