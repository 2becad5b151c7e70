//! Rating prediction with the active model: single pairs in plain Rust, lists through the catalogue scorer in
//! bounded chunks.
use crate::error::{OrRaise, RecsysError};
use crate::serving::fold_in::UserVector;
use crate::serving::model::LoadedModel;
use crate::serving::state;
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
    let model = state::active_model()?;
    let position = position(&model, movie_id)?;
    let raw = match state::user_vector(&model, user_id)? {
        UserVector::Row(row) => model.scorer.raw_score(row, position)?,
        UserVector::Folded(user, first_layer) => model.scorer.raw_score_folded_with(&user, &first_layer, position)?,
    };
    model.rating(raw)
}

/// Predicted rating of `movie_id` for `user_id` by the active model, on the model's rating scale (0.5–5).
/// Ratings the model never saw are folded into the user's vector first (`recsys.fold_in`); a user the model has not
/// seen and who has no ratings is scored as an average user (the "unknown user" embedding, no user bias);
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
    let model = state::active_model()?;
    let user = state::user_vector(&model, user_id)?;
    let mut scores = Vec::with_capacity(movie_ids.len());
    for chunk in movie_ids.chunks(PAIRS_PER_CHUNK) {
        let positions = chunk.iter().map(|m| position(&model, *m).map(|p| p as i64)).collect::<Result<Vec<i64>, _>>()?;
        let raw = match &user {
            UserVector::Row(row) => model.scorer.score_pairs(&vec![*row as i64; positions.len()], &positions)?,
            UserVector::Folded(user, _) => {
                model.scorer.score_pairs_folded(std::slice::from_ref(user.as_ref()), &vec![0; positions.len()], &positions)?
            }
        };
        for value in raw {
            scores.push(model.rating(value)?);
        }
        pgrx::check_for_interrupts!();
    }
    Ok(scores)
}
