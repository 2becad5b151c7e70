//! The users a batch refresh (or one shard of it) covers, read a chunk at a time in user-id order with the ratings
//! the refresh needs: which movies to leave out, and for fold-in the ratings the model never saw.
use crate::error::RecsysError;
use crate::serving::model::LoadedModel;
use pgrx::prelude::*;

/// The shard condition on a user-id column, as SQL text at compile time: users whose id modulo `$2` (shards) is `$1`
/// (the shard; ids of any sign).
macro_rules! in_shard {
    ($column:literal) => {
        concat!(
            "((",
            $column,
            "::pg_catalog.int8 OPERATOR(pg_catalog.%) $2::pg_catalog.int8 OPERATOR(pg_catalog.+) $2::pg_catalog.int8)",
            " OPERATOR(pg_catalog.%) $2::pg_catalog.int8 OPERATOR(pg_catalog.=) $1::pg_catalog.int8)"
        )
    };
}

pub(super) use in_shard;

/// Which users a refresh covers: `shard` of `shards` (0 of 1: every user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// This shard, 0-based.
    pub index: i32,
    /// How many shards the users are split into.
    pub count: i32,
}

impl Shard {
    /// Every user.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    pub(super) fn arguments(self) -> [pgrx::datum::DatumWithOid<'static>; 2] {
        [i64::from(self.index).into(), i64::from(self.count).into()]
    }
}

/// A user to refresh: the catalogue positions they rated with the ratings, and for fold-in the ratings the model never saw
/// (`recsys.rating_unseen`; all of them for a user it was trained without) and how many it did.
pub struct UserRatings {
    pub user_id: i32,
    pub rated: Vec<(usize, f32)>,
    pub unseen: Vec<(usize, f32)>,
    pub reflected: usize,
}

/// How many users of `shard` recsys.users holds.
pub fn count(shard: Shard) -> Result<i64, RecsysError> {
    let sql = concat!("SELECT pg_catalog.count(*) FROM recsys.users WHERE ", in_shard!("user_id"));
    Spi::get_one_with_args::<i64>(sql, &shard.arguments()).map(Option::unwrap_or_default).map_err(RecsysError::spi("counting users"))
}

/// Deletes batch rows of `shard`'s users who are no longer in recsys.users.
pub fn delete_departed(shard: Shard) -> Result<(), RecsysError> {
    let sql = concat!(
        "DELETE FROM recsys.batch_recommendations b WHERE ",
        in_shard!("b.user_id"),
        " AND NOT EXISTS (SELECT FROM recsys.users u WHERE u.user_id OPERATOR(pg_catalog.=) b.user_id)"
    );
    Spi::connect_mut(|client| client.update(sql, None, &shard.arguments()).map(|_| ())).map_err(RecsysError::spi("deleting departed users' rows"))
}

/// The users of a shard after `$4` with their ratings and, per rating, whether the model has not seen it
/// (`$unseen`, over `$3` the model's newest training rating time and `$6` its last load number).
macro_rules! users_with_ratings {
    ($unseen:literal) => {
        concat!(
            "SELECT u.user_id, r.movies, r.ratings, r.after_training FROM recsys.users u
             LEFT JOIN LATERAL (SELECT pg_catalog.array_agg(movie_id ORDER BY movie_id) AS movies,
                                       pg_catalog.array_agg(rating::pg_catalog.float4 ORDER BY movie_id) AS ratings,
                                       pg_catalog.array_agg(",
            $unseen,
            " ORDER BY movie_id) AS after_training
                                FROM recsys.ratings r WHERE r.user_id OPERATOR(pg_catalog.=) u.user_id) r ON true
             WHERE ($4::pg_catalog.int4 IS NULL OR u.user_id OPERATOR(pg_catalog.>) $4::pg_catalog.int4) AND ",
            in_shard!("u.user_id"),
            " ORDER BY u.user_id LIMIT $5"
        )
    };
}

/// The next (at most) `limit` users of `shard` with an id above `after` (None: from the first), in id order.
pub fn next_chunk(model: &LoadedModel, shard: Shard, after: Option<i32>, limit: i64) -> Result<Vec<UserRatings>, RecsysError> {
    let cutoff = model.trained_until.map(|seconds| seconds as f64);
    let sql = if crate::serving::state::has_load_numbers()? {
        users_with_ratings!("recsys.rating_unseen(loaded, rated_at, $6::pg_catalog.int8, $3::pg_catalog.float8)")
    } else {
        users_with_ratings!("($3::pg_catalog.float8 IS NULL OR rated_at OPERATOR(pg_catalog.>) pg_catalog.to_timestamp($3::pg_catalog.float8))")
    };
    let [shard_index, shard_count] = shard.arguments();
    let fold_in = crate::guc::fold_in();
    Spi::connect(|client| -> Result<Vec<UserRatings>, pgrx::spi::Error> {
        let mut users = Vec::new();
        for row in client.select(sql, None, &[shard_index, shard_count, cutoff.into(), after.into(), limit.into(), model.loaded_until.into()])? {
            let user_id = row.get::<i32>(1)?.unwrap_or_default();
            let (movies, ratings, after) = (
                row.get::<Vec<i32>>(2)?.unwrap_or_default(),
                row.get::<Vec<f32>>(3)?.unwrap_or_default(),
                row.get::<Vec<bool>>(4)?.unwrap_or_default(),
            );
            let known = model.vocabulary.user_row(user_id) != 0;
            let mut user = UserRatings { user_id, rated: Vec::with_capacity(movies.len()), unseen: Vec::new(), reflected: 0 };
            for ((movie, rating), after) in movies.iter().zip(ratings).zip(after) {
                let Some(position) = model.movie_index.get(movie).copied() else { continue };
                user.rated.push((position, rating));
                match fold_in && (!known || (after && (model.loaded_until.is_some() || model.trained_until.is_some()))) {
                    true => user.unseen.push((position, rating)),
                    false => user.reflected += 1,
                }
            }
            users.push(user);
        }
        Ok(users)
    })
    .map_err(RecsysError::spi("reading users and their ratings"))
}
