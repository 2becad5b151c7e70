//! Rating prediction with the active model.
use crate::error::{OrRaise, RecsysError};
use crate::model_cache::{self, LoadedModel};
use pgrx::prelude::*;
use tch::Tensor;

/// The encoded content and embedding row of a movie: from the cached catalogue, or read and encoded on the fly
/// for a movie added after the model was loaded (it is then scored from its content).
fn movie_inputs(model: &LoadedModel, movie_id: i32) -> Result<(Tensor, Tensor), RecsysError> {
    if let Some(position) = model.movie_index.get(&movie_id) {
        let index = Tensor::f_from_slice(&[*position as i64])?;
        return Ok((model.content.f_index_select(0, &index)?, model.movie_rows.f_index_select(0, &index)?));
    }
    let (ids, contents, titles) = model_cache::read_catalogue(&format!("WHERE m.movie_id = {movie_id}"))?;
    if ids.is_empty() {
        return Err(RecsysError::UnknownMovie(movie_id));
    }
    let content = model_cache::encode(&model.network, &model.vocabulary, &contents, &titles)?;
    Ok((content, Tensor::f_from_slice(&[model.vocabulary.movie_row(movie_id)])?))
}

fn predict_one(user_id: i32, movie_id: i32) -> Result<f32, RecsysError> {
    let model = model_cache::active()?;
    crate::torch_runtime::prepare()?;
    let (content, movie_row) = movie_inputs(&model, movie_id)?;
    let user_row = Tensor::f_from_slice(&[model.vocabulary.user_row(user_id)])?;
    let score = tch::no_grad(|| model.network.forward_encoded(&user_row, &movie_row, &content, false).and_then(|s| model.network.clip(&s)))?;
    Ok(score.f_double_value(&[0])? as f32)
}

/// Predicted rating of `movie_id` for `user_id` by the active model, on the model's rating scale (0.5–5).
/// A user the model has not seen is scored as an average user (the "unknown user" embedding, no user bias);
/// a movie without a trained embedding is scored from its content. Errors: no active model (55000), a movie
/// that is not in recsys.movies (42704). NULL arguments give NULL.
#[pg_extern(stable, strict, parallel_restricted)]
fn recsys_predict(user_id: i32, movie_id: i32) -> f32 {
    predict_one(user_id, movie_id).or_raise()
}
