//! Fold-in in a backend: which vector scores a user. A user with ratings the active model never saw
//! (`recsys.rating_unseen`: loaded after its training data was read, or all ratings of a user it was trained without)
//! is scored with their embedding and bias refitted to those ratings (`recsys_model`'s fold-in); the fitted vector is
//! cached per (user, their new ratings' count, latest load number and sum), so a user without new ratings costs one
//! index lookup per statement. Nothing is written.
use super::cache::LoadedModel;
use super::freshness::{self, VisibleData};
use crate::error::RecsysError;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::PgOid;
use recsys_model::scoring::{FoldInOptions, FoldedUser};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

/// Users whose folded vectors a backend keeps (cleared when full).
const CACHED_USERS: usize = 10_000;

/// The user's ratings the model never saw, and how many it did, in one pass over the user's ratings.
macro_rules! new_ratings {
    ($is_new:literal, $latest:literal) => {
        concat!(
            "SELECT pg_catalog.count(*) FILTER (WHERE NOT is_new),
                pg_catalog.array_agg(movie_id ORDER BY movie_id) FILTER (WHERE is_new),
                pg_catalog.array_agg(rating::pg_catalog.float4 ORDER BY movie_id) FILTER (WHERE is_new),
                pg_catalog.max(latest) FILTER (WHERE is_new),
                pg_catalog.sum(rating::pg_catalog.float8) FILTER (WHERE is_new)
             FROM (SELECT movie_id, rating, ",
            $latest,
            " AS latest, ",
            $is_new,
            " AS is_new FROM recsys.ratings WHERE user_id OPERATOR(pg_catalog.=) $1::pg_catalog.int4) r"
        )
    };
}

/// The user's ratings the model never saw (`recsys.rating_unseen`), and how many it did, in one pass over the
/// user's ratings. `$1` user, `$2` the model's newest training rating time, `$3` its last load number.
const NEW_RATINGS: &str =
    new_ratings!("recsys.rating_unseen(loaded, rated_at, $3::pg_catalog.int8, $2::pg_catalog.float8)", "loaded::pg_catalog.float8");

/// The same in a database not yet updated to 0.7.0 (no load numbers): ratings given after the newest training
/// rating (`$3` unused).
const NEW_RATINGS_BY_TIME: &str = new_ratings!(
    "($2::pg_catalog.float8 IS NULL OR rated_at OPERATOR(pg_catalog.>) pg_catalog.to_timestamp($2::pg_catalog.float8))",
    "EXTRACT(EPOCH FROM rated_at)::pg_catalog.float8"
);

/// The last load number given to a rating (the sequence's state, read without waiting for anyone): when it is not
/// above a model's `loaded_until`, no rating is new to that model.
const LAST_LOAD: &str = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM recsys.rating_loads";

/// Unix seconds of the newest rating: one probe of the rated_at index per statement (max() reads the index's end
/// whatever the table's statistics say; a filtered EXISTS would scan the whole table before its first ANALYZE).
const NEWEST_RATING: &str = "SELECT EXTRACT(EPOCH FROM pg_catalog.max(rated_at))::pg_catalog.float8 FROM recsys.ratings";

/// The vector that scores a user: the model's row, or one refitted to ratings the model never saw.
#[derive(Clone)]
pub enum UserVector {
    /// The trained row (0: the average user).
    Row(usize),
    /// A vector fitted at query time, and the head's first-layer part of its embedding (computed once per fit, so a
    /// statement scoring many of the user's rows does not repeat it).
    Folded(Rc<FoldedUser>, Rc<[f32]>),
}

/// Identifies a user's new ratings: their count, latest load number and sum.
type RatingsKey = (i64, u64, u64);

/// A cached answer: under which visible data it was checked, for which new ratings it was fitted.
struct CachedVector {
    checked_with: Option<VisibleData>,
    key: RatingsKey,
    vector: UserVector,
}

/// This backend's users' vectors, for one (model version, catalogue version, fold-in L2 bits): another starts empty.
#[derive(Default)]
struct FoldedUsers {
    model: (i64, i64, u64),
    users: HashMap<i32, CachedVector>,
}

/// Whether a statement saw ratings newer than a model version's training data.
type NewerAnswer = (VisibleData, i64, bool);

thread_local! {
    static FOLDED: RefCell<FoldedUsers> = RefCell::new(FoldedUsers::default());
    static NEWER_THAN_MODEL: RefCell<Option<NewerAnswer>> = const { RefCell::new(None) };
    /// `NEW_RATINGS` (or `NEW_RATINGS_BY_TIME`, the bool) planned once per backend (its names are schema-qualified,
    /// so the plan does not depend on the search_path; Postgres replans it when the tables change).
    static NEW_RATINGS_PLAN: RefCell<Option<(bool, OwnedPreparedStatement)>> = const { RefCell::new(None) };
}

/// Whether this statement may see a rating the model has not seen (asked once per statement and model): when it
/// cannot, a user the model was trained with is scored by their trained row without reading their ratings.
fn any_rating_unseen(model: &LoadedModel, visible: Option<VisibleData>) -> Result<bool, RecsysError> {
    if let Some((checked, version, answer)) = NEWER_THAN_MODEL.with(|cell| *cell.borrow()) {
        if Some(checked) == visible && version == model.version {
            return Ok(answer);
        }
    }
    let answer = match (model.loaded_until, model.trained_until) {
        (Some(loaded_until), _) => Spi::connect(|client| client.select(LAST_LOAD, Some(1), &[])?.first().get_one::<i64>())
            .map_err(RecsysError::spi("looking for ratings loaded after the model's training data"))?
            .is_some_and(|last| last > loaded_until),
        (None, Some(trained_until)) => Spi::connect(|client| client.select(NEWEST_RATING, Some(1), &[])?.first().get_one::<f64>())
            .map_err(RecsysError::spi("looking for ratings newer than the model"))?
            .is_some_and(|newest| newest > trained_until as f64),
        (None, None) => false,
    };
    NEWER_THAN_MODEL.with(|cell| *cell.borrow_mut() = visible.map(|visible| (visible, model.version, answer)));
    Ok(answer)
}

fn cache_key(model: &LoadedModel) -> (i64, i64, u64) {
    (model.version, model.catalogue_version, crate::guc::fold_in_l2().to_bits())
}

/// The cached entry of `user_id` under `model`, if it passes `keep`.
fn cached(model: &LoadedModel, user_id: i32, keep: impl Fn(&CachedVector) -> bool) -> Option<UserVector> {
    FOLDED.with(|folded| {
        let folded = folded.borrow();
        (folded.model == cache_key(model)).then(|| folded.users.get(&user_id).filter(|c| keep(c)).map(|c| c.vector.clone())).flatten()
    })
}

/// The options every fold-in of this session uses (`recsys.fold_in_l2`).
pub fn options() -> FoldInOptions {
    FoldInOptions { l2_per_rating: crate::guc::fold_in_l2() as f32, ..FoldInOptions::default() }
}

/// The vector that scores `user_id` in this statement.
pub fn user_vector(model: &LoadedModel, user_id: i32) -> Result<UserVector, RecsysError> {
    let row = model.vocabulary.user_row(user_id) as usize;
    let knows_its_data = model.loaded_until.is_some() || model.trained_until.is_some();
    if !crate::guc::fold_in() || (row != 0 && !knows_its_data) {
        return Ok(UserVector::Row(row));
    }
    let visible = freshness::visible_data();
    if let Some(hit) = cached(model, user_id, |c| c.checked_with.is_some() && c.checked_with == visible) {
        return Ok(hit);
    }
    if row != 0 && !any_rating_unseen(model, visible)? {
        return Ok(UserVector::Row(row));
    }
    // Every rating of a user the model was trained without is new to it.
    let (cutoff, loaded_until) = match row {
        0 => (None, None),
        _ => (model.trained_until.map(|seconds| seconds as f64), model.loaded_until),
    };
    let by_load = super::catalogue::has_load_numbers()?;
    let (reflected, movies, ratings, latest, sum) = Spi::connect(|client| {
        let plan = match NEW_RATINGS_PLAN.with(|cell| cell.borrow_mut().take()) {
            Some((planned_by_load, plan)) if planned_by_load == by_load => plan,
            _ => {
                let query = if by_load { NEW_RATINGS } else { NEW_RATINGS_BY_TIME };
                client.prepare(query, &[PgOid::from(pg_sys::INT4OID), PgOid::from(pg_sys::FLOAT8OID), PgOid::from(pg_sys::INT8OID)])?.keep()
            }
        };
        let row = client.select(&plan, Some(1), &[user_id.into(), cutoff.into(), loaded_until.into()])?.first();
        let values = (row.get::<i64>(1)?, row.get::<Vec<i32>>(2)?, row.get::<Vec<f32>>(3)?, row.get::<f64>(4)?, row.get::<f64>(5)?);
        NEW_RATINGS_PLAN.with(|cell| *cell.borrow_mut() = Some((by_load, plan)));
        Ok::<_, pgrx::spi::Error>(values)
    })
    .map_err(RecsysError::spi("reading the user's new ratings"))?;
    let observed: Vec<(usize, f32)> = movies
        .unwrap_or_default()
        .iter()
        .zip(ratings.unwrap_or_default())
        .filter_map(|(movie, rating)| Some((*model.movie_index.get(movie)?, rating)))
        .collect();
    let key = (observed.len() as i64, latest.unwrap_or(0.0).to_bits(), sum.unwrap_or(0.0).to_bits());
    let vector = match cached(model, user_id, |c| c.key == key) {
        Some(vector) => vector,
        None if observed.is_empty() => UserVector::Row(row),
        None => {
            let start = model.scorer.trained_user(row)?;
            let reflected = if row == 0 { 0 } else { reflected.unwrap_or(0) as usize };
            let folded = model.scorer.fold_in(&start, reflected, &observed, options())?;
            let first_layer = Rc::from(model.scorer.folded_first_layer(&folded));
            UserVector::Folded(Rc::new(folded), first_layer)
        }
    };
    FOLDED.with(|folded| {
        let mut folded = folded.borrow_mut();
        if folded.model != cache_key(model) || folded.users.len() >= CACHED_USERS {
            *folded = FoldedUsers { model: cache_key(model), users: HashMap::new() };
        }
        folded.users.insert(user_id, CachedVector { checked_with: visible, key, vector: vector.clone() });
    });
    Ok(vector)
}

/// A vector fitted to `ratings` (catalogue position, rating) from the average user, for a visitor the model has
/// never seen and who is not stored (`recsys_recommend_for`).
pub fn visitor_vector(model: &LoadedModel, ratings: &[(usize, f32)]) -> Result<FoldedUser, RecsysError> {
    let start = model.scorer.trained_user(0)?;
    Ok(model.scorer.fold_in(&start, 0, ratings, options())?)
}
