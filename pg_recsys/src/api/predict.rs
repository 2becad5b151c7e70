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
    let _float_mode = crate::torch_runtime::prepare()?;
    let model = model_cache::active()?;
    let user_row = model.vocabulary.user_row(user_id) as usize;
    if let Some(score) = model.movie_index.get(&movie_id).and_then(|position| model.scorer.score(user_row, *position)) {
        return Ok(score);
    }
    let (content, movie_row) = movie_inputs(&model, movie_id)?;
    let user_row = Tensor::f_from_slice(&[model.vocabulary.user_row(user_id)])?;
    let score = tch::no_grad(|| model.network.forward_encoded(&user_row, &movie_row, &content).and_then(|s| model.network.clip(&s)))?;
    Ok(score.f_double_value(&[0])? as f32)
}

/// Predicted rating of `movie_id` for `user_id` by the active model, on the model's rating scale (0.5–5).
/// A user the model has not seen is scored as an average user (the "unknown user" embedding, no user bias);
/// a movie without a trained embedding is scored from its content. Errors: no active model (55000), a movie
/// that is not in recsys.movies (42704). NULL arguments give NULL.
#[pg_extern(stable, strict, parallel_safe)]
fn recsys_predict(user_id: i32, movie_id: i32) -> f32 {
    predict_one(user_id, movie_id).or_raise()
}

/// Scores of `movie_ids` for `user_id` in one batched forward pass: one row per non-NULL id, in the given order
/// (NULL elements are skipped). Same rules and errors as `recsys_predict(user_id, movie_id)`.
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
    let model = model_cache::active()?;
    let mut contents = Vec::with_capacity(movie_ids.len());
    let mut rows = Vec::with_capacity(movie_ids.len());
    for movie_id in movie_ids {
        let (content, row) = movie_inputs(&model, *movie_id)?;
        contents.push(content);
        rows.push(row);
    }
    let content = Tensor::f_cat(&contents, 0)?;
    let movie_rows = Tensor::f_cat(&rows, 0)?;
    let users = Tensor::f_full([movie_ids.len() as i64], model.vocabulary.user_row(user_id), (tch::Kind::Int64, tch::Device::Cpu))?;
    let scores = tch::no_grad(|| model.network.forward_encoded(&users, &movie_rows, &content).and_then(|s| model.network.clip(&s)))?;
    Ok(Vec::<f32>::try_from(&scores).map_err(recsys_model::ModelError::from)?)
}
