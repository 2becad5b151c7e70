//! Cold-start prediction for a movie the model has never seen, from its features alone.
use crate::error::{OrRaise, RecsysError};
use crate::serving::fold_in::UserVector;
use crate::serving::{catalogue, state};
use pgrx::prelude::*;
use recsys_model::MovieContent;
use std::collections::HashMap;
use tch::Tensor;

/// Names looked up per role: more than the model pools, fewer than an unbounded list.
const NAMES_CONSIDERED: usize = 64;

/// Person ids for names, in the given order, skipping names not in recsys.persons (lowest id for a shared name).
fn person_ids(names: &[String]) -> Result<Vec<i32>, RecsysError> {
    let names: Vec<&String> = names.iter().filter(|n| !n.trim().is_empty()).take(NAMES_CONSIDERED).collect();
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let trimmed: Vec<String> = names.iter().map(|n| n.trim().to_string()).collect();
    let found: HashMap<String, i32> = Spi::connect(|client| -> Result<HashMap<String, i32>, pgrx::spi::Error> {
        let mut found = HashMap::new();
        let sql =
            "SELECT name, pg_catalog.min(person_id) FROM recsys.persons WHERE name OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[]) GROUP BY name";
        for row in client.select(sql, None, &[trimmed.into()])? {
            if let (Some(name), Some(id)) = (row.get::<String>(1)?, row.get::<i32>(2)?) {
                found.insert(name, id);
            }
        }
        Ok(found)
    })
    .map_err(RecsysError::spi("looking up people"))?;
    Ok(names.iter().filter_map(|n| found.get(n.trim()).copied()).collect())
}

/// The longest runtime accepted, in minutes (the longest film made runs 51,420 minutes); larger values would
/// overflow the standardised float32 feature.
const MAX_RUNTIME_MINUTES: f64 = 100_000.0;
/// The years accepted: from the first films to far enough ahead for announced ones.
const YEARS: std::ops::RangeInclusive<f64> = 1870.0..=2200.0;

fn check_features(content: &MovieContent) -> Result<(), RecsysError> {
    if let Some(runtime) = content.runtime_minutes {
        if !runtime.is_finite() || runtime <= 0.0 || runtime > MAX_RUNTIME_MINUTES {
            return Err(RecsysError::invalid_parameter(
                format!("runtime_minutes must be a positive number of at most {MAX_RUNTIME_MINUTES}, got {runtime}"),
                "Pass the runtime in minutes, or NULL when unknown.",
            ));
        }
    }
    if let Some(year) = content.year.filter(|year| !YEARS.contains(year)) {
        return Err(RecsysError::invalid_parameter(
            format!("year must be between {} and {}, got {year}", YEARS.start(), YEARS.end()),
            "Pass the release year, or NULL when unknown.",
        ));
    }
    Ok(())
}

fn predict_new(user_id: i32, content: MovieContent) -> Result<f32, RecsysError> {
    check_features(&content)?;
    let _float_mode = crate::torch_runtime::prepare()?;
    let model = state::active_model()?;
    let title = state::title_embedding(&content.title)?;
    let encoded = catalogue::encode(model.network(), &model.vocabulary, std::slice::from_ref(&content), &title)?;
    let unseen_movie = Tensor::f_from_slice(&[0i64])?;
    let raw = match state::user_vector(&model, user_id)? {
        UserVector::Row(row) => model.network().raw_scores_for_rows(&Tensor::f_from_slice(&[row as i64])?, &unseen_movie, &encoded)?,
        UserVector::Folded(user, _) => model.network().raw_scores_for_vector(&user, &unseen_movie, &encoded)?,
    }
    .f_double_value(&[0])?;
    model.rating(raw as f32)
}

fn strings(values: Option<Vec<Option<String>>>) -> Vec<String> {
    values.unwrap_or_default().into_iter().flatten().collect()
}

fn split_commas(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

fn content(
    title: &str,
    genres: Vec<String>,
    directors: &[String],
    actors: &[String],
    runtime: Option<f64>,
    year: Option<i32>,
) -> Result<MovieContent, RecsysError> {
    Ok(MovieContent {
        title: title.to_string(),
        genres,
        directors: person_ids(directors)?,
        actors: person_ids(actors)?,
        runtime_minutes: runtime,
        year: year.map(f64::from),
    })
}

/// Predicted rating of a movie the model has never seen, from its features: the title (embedded with
/// all-MiniLM-L6-v2 in this backend, cached), genres (as in recsys.genres, e.g. 'Drama'; unknown ones are
/// ignored), director and actor names (matched against recsys.persons; unknown names are ignored, only the first
/// few count), runtime in minutes and release year (NULL = unknown). NULL user or title → NULL; a runtime that is
/// not a positive number → 22023; no active model → 55000.
#[pg_extern(stable, parallel_safe)]
fn recsys_predict_new(
    user_id: Option<i32>,
    title: Option<&str>,
    genres: default!(Option<Vec<Option<String>>>, "NULL"),
    directors: default!(Option<Vec<Option<String>>>, "NULL"),
    actors: default!(Option<Vec<Option<String>>>, "NULL"),
    runtime_minutes: default!(Option<f64>, "NULL"),
    year: default!(Option<i32>, "NULL"),
) -> Option<f32> {
    let (user_id, title) = (user_id?, title?);
    let movie = content(title, strings(genres), &strings(directors), &strings(actors), runtime_minutes, year).or_raise();
    Some(predict_new(user_id, movie).or_raise())
}

/// `recsys_predict_new` with genres, directors and actors as comma-separated text, as the original service took them.
#[pg_extern(name = "recsys_predict_new", stable, parallel_safe)]
fn recsys_predict_new_text(
    user_id: Option<i32>,
    title: Option<&str>,
    genres: Option<&str>,
    directors: Option<&str>,
    actors: Option<&str>,
    runtime_minutes: Option<f64>,
    year: Option<i32>,
) -> Option<f32> {
    let (user_id, title) = (user_id?, title?);
    let movie = content(title, split_commas(genres), &split_commas(directors), &split_commas(actors), runtime_minutes, year).or_raise();
    Some(predict_new(user_id, movie).or_raise())
}
