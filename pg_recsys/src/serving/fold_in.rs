//! Fold-in in a backend: which vector scores a user. A user with ratings the active model never saw
//! (`recsys.rating_unseen`: loaded after its training data was read, or all ratings of a user it was trained without)
//! is scored with their embedding and bias refitted to those ratings (`recsys_model`'s fold-in); the fitted vector is
//! kept (in `state`) per (user, their new ratings' count, latest load number and sum), so a user without new ratings
//! costs one index lookup per statement. Nothing is written.
use super::freshness::VisibleData;
use super::model::LoadedModel;
use crate::error::RecsysError;
use pgrx::prelude::*;
use pgrx::spi::OwnedPreparedStatement;
use pgrx::PgOid;
use recsys_model::scoring::{FoldInOptions, FoldedUser};
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
pub type RatingsKey = (i64, u64, u64);

/// A kept answer: under which visible data it was checked, for which new ratings it was fitted.
struct KeptVector {
    checked_with: Option<VisibleData>,
    key: RatingsKey,
    vector: UserVector,
}

/// The vectors of users of one loaded model, fitted with one `recsys.fold_in_l2`; bounded (cleared when full).
#[derive(Default)]
pub struct FoldedUsers {
    l2_bits: u64,
    users: HashMap<i32, KeptVector>,
}

impl FoldedUsers {
    fn kept(&self, user_id: i32) -> Option<&KeptVector> {
        self.users.get(&user_id).filter(|_| self.l2_bits == crate::guc::fold_in_l2().to_bits())
    }

    /// The vector kept for `user_id` when it was checked under `visible` (the running statement's key).
    pub fn checked(&self, user_id: i32, visible: Option<VisibleData>) -> Option<UserVector> {
        let kept = self.kept(user_id)?;
        (kept.checked_with.is_some() && kept.checked_with == visible).then(|| kept.vector.clone())
    }

    /// The vector kept for `user_id` when it was fitted to the new ratings `key` identifies.
    pub fn fitted(&self, user_id: i32, key: RatingsKey) -> Option<UserVector> {
        let kept = self.kept(user_id)?;
        (kept.key == key).then(|| kept.vector.clone())
    }

    /// Keeps `vector` for `user_id`, checked under `visible` with new ratings `key`.
    pub fn keep(&mut self, user_id: i32, visible: Option<VisibleData>, key: RatingsKey, vector: UserVector) {
        let l2_bits = crate::guc::fold_in_l2().to_bits();
        if self.l2_bits != l2_bits || self.users.len() >= CACHED_USERS {
            *self = FoldedUsers { l2_bits, users: HashMap::new() };
        }
        self.users.insert(user_id, KeptVector { checked_with: visible, key, vector });
    }
}

/// A user's ratings the model never saw (catalogue position, rating), how many of theirs it did see, and the key
/// that identifies the new ones.
pub struct NewRatings {
    /// Ratings of the user the model was trained on.
    pub reflected: usize,
    /// The new ratings of movies in the catalogue.
    pub observed: Vec<(usize, f32)>,
    /// Count, latest load number and sum of the new ratings.
    pub key: RatingsKey,
}

/// The new-ratings query planned once per backend, and whether it is the load-number form (its names are
/// schema-qualified, so the plan does not depend on the search_path; Postgres replans it when the tables change).
pub type NewRatingsPlan = (bool, OwnedPreparedStatement);

/// Whether the database holds a rating the model has not seen (the answer holds for one statement's snapshot): when
/// it does not, a user the model was trained with is scored by their trained row without reading their ratings.
pub fn any_rating_unseen(model: &LoadedModel) -> Result<bool, RecsysError> {
    Ok(match (model.loaded_until, model.trained_until) {
        (Some(loaded_until), _) => Spi::connect(|client| client.select(LAST_LOAD, Some(1), &[])?.first().get_one::<i64>())
            .map_err(RecsysError::spi("looking for ratings loaded after the model's training data"))?
            .is_some_and(|last| last > loaded_until),
        (None, Some(trained_until)) => Spi::connect(|client| client.select(NEWEST_RATING, Some(1), &[])?.first().get_one::<f64>())
            .map_err(RecsysError::spi("looking for ratings newer than the model"))?
            .is_some_and(|newest| newest > trained_until as f64),
        (None, None) => false,
    })
}

/// Whether the vector of the user in model row `row` comes from the model alone: fold-in is off, or the model cannot
/// tell which ratings it saw (else their new ratings decide).
pub fn without_fold_in(model: &LoadedModel, row: usize) -> bool {
    let knows_its_data = model.loaded_until.is_some() || model.trained_until.is_some();
    !crate::guc::fold_in() || (row != 0 && !knows_its_data)
}

/// Reads the ratings `model` never saw of `user_id` (model row `row`; every rating of a user it was trained without)
/// with `plan` (None: planned here), in its load-number form when `by_load`; gives the plan back for the next call.
pub fn read_new_ratings(
    model: &LoadedModel,
    user_id: i32,
    row: usize,
    by_load: bool,
    plan: Option<NewRatingsPlan>,
) -> Result<(NewRatings, NewRatingsPlan), RecsysError> {
    let (cutoff, loaded_until) = match row {
        0 => (None, None),
        _ => (model.trained_until.map(|seconds| seconds as f64), model.loaded_until),
    };
    let ((reflected, movies, ratings, latest, sum), plan) = Spi::connect(|client| {
        let plan = match plan {
            Some((planned_by_load, plan)) if planned_by_load == by_load => plan,
            _ => {
                let query = if by_load { NEW_RATINGS } else { NEW_RATINGS_BY_TIME };
                client.prepare(query, &[PgOid::from(pg_sys::INT4OID), PgOid::from(pg_sys::FLOAT8OID), PgOid::from(pg_sys::INT8OID)])?.keep()
            }
        };
        let row = client.select(&plan, Some(1), &[user_id.into(), cutoff.into(), loaded_until.into()])?.first();
        let values = (row.get::<i64>(1)?, row.get::<Vec<i32>>(2)?, row.get::<Vec<f32>>(3)?, row.get::<f64>(4)?, row.get::<f64>(5)?);
        Ok::<_, pgrx::spi::Error>((values, (by_load, plan)))
    })
    .map_err(RecsysError::spi("reading the user's new ratings"))?;
    let observed: Vec<(usize, f32)> = movies
        .unwrap_or_default()
        .iter()
        .zip(ratings.unwrap_or_default())
        .filter_map(|(movie, rating)| Some((*model.movie_index.get(movie)?, rating)))
        .collect();
    let key = (observed.len() as i64, latest.unwrap_or(0.0).to_bits(), sum.unwrap_or(0.0).to_bits());
    let reflected = if row == 0 { 0 } else { reflected.unwrap_or(0) as usize };
    Ok((NewRatings { reflected, observed, key }, plan))
}

/// The vector that scores the user in model row `row` given their new ratings: the trained row when there are none,
/// else the row refitted to them (with its first-layer part).
pub fn fit(model: &LoadedModel, row: usize, new: &NewRatings) -> Result<UserVector, RecsysError> {
    if new.observed.is_empty() {
        return Ok(UserVector::Row(row));
    }
    let start = model.scorer.trained_user(row)?;
    let folded = model.scorer.fold_in(&start, new.reflected, &new.observed, options())?;
    let first_layer = Rc::from(model.scorer.folded_first_layer(&folded));
    Ok(UserVector::Folded(Rc::new(folded), first_layer))
}

/// The options every fold-in of this session uses (`recsys.fold_in_l2`).
pub fn options() -> FoldInOptions {
    FoldInOptions { l2_per_rating: crate::guc::fold_in_l2() as f32, ..FoldInOptions::default() }
}

/// A vector fitted to `ratings` (catalogue position, rating) from the average user, for a visitor the model has
/// never seen and who is not stored (`recsys_recommend_for`).
pub fn visitor_vector(model: &LoadedModel, ratings: &[(usize, f32)]) -> Result<FoldedUser, RecsysError> {
    let start = model.scorer.trained_user(0)?;
    Ok(model.scorer.fold_in(&start, 0, ratings, options())?)
}
