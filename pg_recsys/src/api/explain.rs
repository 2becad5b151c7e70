//! `recsys_explain`: a prediction split into parts that add up to it, each with a short human-readable detail.
use crate::error::{OrRaise, RecsysError};
use crate::serving::fold_in::UserVector;
use crate::serving::model::LoadedModel;
use crate::serving::{catalogue, state};
use pgrx::prelude::*;
use recsys_model::explain::GROUPS;
use recsys_model::MovieContent;
use std::collections::{HashMap, HashSet};

/// Rated movies named as the closest to the explained one.
const CLOSEST_RATED: usize = 3;

type Part = (String, String, f32);

/// Names of `ids` (person ids) from recsys.persons, in the given order.
fn person_names(ids: &[i32]) -> Result<Vec<String>, RecsysError> {
    let names: HashMap<i32, String> = Spi::connect(|client| {
        let mut names = HashMap::new();
        for row in client.select(
            "SELECT person_id, name FROM recsys.persons WHERE person_id OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.int4[])",
            None,
            &[ids.to_vec().into()],
        )? {
            if let (Some(id), Some(name)) = (row.get::<i32>(1)?, row.get::<String>(2)?) {
                names.insert(id, name);
            }
        }
        Ok::<_, pgrx::spi::Error>(names)
    })
    .map_err(RecsysError::spi("reading person names"))?;
    Ok(ids.iter().filter_map(|id| names.get(id).cloned()).collect())
}

/// The user's ratings of catalogue movies: (catalogue position, rating).
pub(super) fn rated_positions(user_id: i32, movie_index: &HashMap<i32, usize>) -> Result<Vec<(usize, f32)>, RecsysError> {
    Spi::connect(|client| {
        let mut rated = Vec::new();
        for row in client.select(
            "SELECT movie_id, rating::pg_catalog.float4 FROM recsys.ratings WHERE user_id OPERATOR(pg_catalog.=) $1::pg_catalog.int4",
            None,
            &[user_id.into()],
        )? {
            if let (Some(movie), Some(rating)) = (row.get::<i32>(1)?, row.get::<f32>(2)?) {
                if let Some(position) = movie_index.get(&movie) {
                    rated.push((*position, rating));
                }
            }
        }
        Ok::<_, pgrx::spi::Error>(rated)
    })
    .map_err(RecsysError::spi("reading the user's ratings"))
}

/// `rated` (catalogue position, rating) other than `position`, the most similar to the movie at `position` first
/// (cosine in the model's movie representation; ties: lower position first).
pub(super) fn closest_rated(model: &LoadedModel, position: usize, rated: &[(usize, f32)]) -> Result<Vec<(usize, f32)>, RecsysError> {
    let similarities = model.scorer.movie_similarities(position, &rated.iter().map(|(at, _)| *at).collect::<Vec<_>>())?;
    let mut closest: Vec<(f32, usize, f32)> =
        rated.iter().zip(similarities).filter(|((at, _), _)| *at != position).map(|((at, rating), s)| (s, *at, *rating)).collect();
    closest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    Ok(closest.into_iter().map(|(_, at, rating)| (at, rating)).collect())
}

/// "you rated <title> <rating>★".
pub(super) fn you_rated(model: &LoadedModel, position: usize, rating: f32) -> String {
    format!("you rated {} {rating}★", model.catalogue.titles[position])
}

fn explain(user_id: i32, movie_id: i32) -> Result<Vec<Part>, RecsysError> {
    let _float_mode = crate::torch_runtime::prepare()?;
    let model = state::active_model()?;
    let position = *model.movie_index.get(&movie_id).ok_or(RecsysError::UnknownMovie(movie_id))?;
    let (_, contents, titles) = catalogue::read_catalogue(Some(&[movie_id]), state::embed_titles)?;
    let content: &MovieContent = contents.first().ok_or(RecsysError::UnknownMovie(movie_id))?;
    let config = model.network().config();
    let inputs = model.vocabulary.encode(&[content], &titles, config.max_directors, config.max_actors)?;
    let (user_row, movie_row) = (model.vocabulary.user_row(user_id), model.vocabulary.movie_row(movie_id));
    let (vector, folded) = match state::user_vector(&model, user_id)? {
        UserVector::Row(row) => (model.scorer.trained_user(row)?, false),
        UserVector::Folded(user, _) => (user.as_ref().clone(), true),
    };
    let parts = model.network().explain_user(&vector, movie_row, &inputs)?;
    let title = &content.title;
    let direction = |value: f32| if value >= 0.0 { "above" } else { "below" };

    let rated = rated_positions(user_id, &model.movie_index)?;
    let named: Vec<String> =
        closest_rated(&model, position, &rated)?.iter().take(CLOSEST_RATED).map(|(at, rating)| you_rated(&model, *at, *rating)).collect();
    let learned =
        if folded { "your taste, with the ratings the model never saw folded in" } else { "your taste as the model learned it from your ratings" };
    let user_detail = match (user_row, folded, named.is_empty()) {
        (0, false, _) => "a user the model was trained without: scored as an average user".to_string(),
        (_, _, true) => learned.to_string(),
        (_, _, false) => format!("{learned}; closest to this movie: {}", named.join(", ")),
    };
    let known_people = |ids: &[i32], vocabulary: &[i32], limit: i64| -> Result<String, RecsysError> {
        let known: HashSet<i32> = vocabulary.iter().copied().collect();
        let counted: Vec<i32> = ids.iter().copied().filter(|id| known.contains(id)).take(limit.max(0) as usize).collect();
        let names = person_names(&counted)?;
        Ok(if names.is_empty() { "none the model knows".to_string() } else { names.join(", ") })
    };
    let mut numbers = Vec::new();
    if let Some(year) = content.year {
        numbers.push(format!("{year:.0}"));
    }
    if let Some(runtime) = content.runtime_minutes {
        numbers.push(format!("{runtime:.0} min"));
    }
    let details = [
        user_detail,
        if movie_row == 0 {
            format!("{title} had no ratings in training: scored from its content")
        } else {
            format!("{title} as the model learned it from its ratings")
        },
        if content.genres.is_empty() { "no genres".to_string() } else { content.genres.join(", ") },
        title.clone(),
        known_people(&content.directors, &model.vocabulary.directors, config.max_directors)?,
        known_people(&content.actors, &model.vocabulary.actors, config.max_actors)?,
        if numbers.is_empty() { "unknown".to_string() } else { numbers.join(", ") },
    ];
    let mut rows: Vec<Part> = vec![
        ("global bias".into(), "the model's overall rating level".into(), parts.global_bias),
        ("baseline".into(), "the network's output for an unknown user and a movie without features".into(), parts.baseline),
        ("user bias".into(), format!("user {user_id} rates {} average", direction(parts.user_bias)), parts.user_bias),
        ("movie bias".into(), format!("{title} is rated {} average", direction(parts.movie_bias)), parts.movie_bias),
    ];
    rows.extend(GROUPS.iter().zip(details).zip(parts.groups).map(|((group, detail), value)| (group.to_string(), detail, value)));
    if config.autoencoder_rank.is_some() {
        rows.push((
            "autoencoder".into(),
            "the item autoencoder's reconstruction of the user's ratings, blended in where both are known".into(),
            parts.autoencoder,
        ));
    }
    Ok(rows)
}

/// Why the active model predicts what it predicts for `user_id` and `movie_id`: one row per part — global bias,
/// baseline, user bias, movie bias, then the user's and the movie's learned embeddings, genres, title, directors,
/// actors, year and runtime, and the autoencoder blend — with a short detail (the user's rated movies closest to
/// this one, the people by name, …) and its contribution. Contributions add up to the raw score, which
/// `recsys_predict` clips to the rating scale (for the same vector: ratings the model never saw are folded in as
/// `recsys_predict` folds them): biases and the blend are exact terms, the network's non-linear rest
/// is split by exact Shapley values over the seven feature groups (an absent group is "unknown"). NULL → no rows;
/// a movie not in recsys.movies → 42704.
#[pg_extern(stable, parallel_safe)]
fn recsys_explain(
    user_id: Option<i32>,
    movie_id: Option<i32>,
) -> TableIterator<'static, (name!(component, String), name!(detail, String), name!(contribution, f32))> {
    let (Some(user_id), Some(movie_id)) = (user_id, movie_id) else { return TableIterator::new(Vec::new()) };
    TableIterator::new(explain(user_id, movie_id).or_raise())
}
