//! How the previous batch did, measured when the next refresh replaces it: each user's top-10 list against the
//! movies the user rated 4 or more after the list was written (Recall@10 over min(10, such ratings), and the share
//! of those users with at least one hit), beside the chart of the 10 most-rated movies the user had not rated then,
//! on the same ratings. Recorded in recsys.quality_log by the refresh (`quality_history` shows it).
use super::users::{in_shard, Shard};
use crate::error::RecsysError;
use pgrx::prelude::*;

/// The previous batch's lists and the popularity chart against the ratings that arrived after the lists.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Outcome {
    /// Users with a rating of 4 or more newer than their list.
    pub users: i64,
    /// Mean Recall@10 of the lists over those users.
    pub recall_at_10: Option<f64>,
    /// Share of those users whose list held one of those movies.
    pub hit_rate: Option<f64>,
    /// The same two figures for the popularity chart.
    pub popularity_recall_at_10: Option<f64>,
    pub popularity_hit_rate: Option<f64>,
}

/// Users' lists as the batch holds them, the liked ratings that arrived after each list, and each such user's
/// popularity chart (from the ratings before the first list was written). $1/$2: the shard.
const OUTCOME: &str = concat!(
    "WITH listed AS (
        SELECT b.user_id, b.movie_id, b.generated_at FROM recsys.batch_recommendations b
        WHERE b.rank OPERATOR(pg_catalog.<=) 10 AND ",
    in_shard!("b.user_id"),
    "),
     written AS (SELECT user_id, pg_catalog.min(generated_at) AS at FROM listed GROUP BY user_id),
     arrived AS (
        SELECT r.user_id, r.movie_id, w.at FROM recsys.ratings r JOIN written w ON w.user_id OPERATOR(pg_catalog.=) r.user_id
        WHERE r.rated_at OPERATOR(pg_catalog.>) w.at AND r.rating OPERATOR(pg_catalog.>=) 4),
     chart AS (
        SELECT r.movie_id, pg_catalog.count(*) AS n FROM recsys.ratings r
        WHERE r.rated_at OPERATOR(pg_catalog.<=) (SELECT pg_catalog.min(at) FROM written)
        GROUP BY r.movie_id ORDER BY n DESC, r.movie_id LIMIT 1000),
     popular AS (
        SELECT u.user_id, p.movie_id FROM (SELECT DISTINCT user_id, at FROM arrived) u CROSS JOIN LATERAL (
            SELECT c.movie_id FROM chart c
            WHERE NOT EXISTS (SELECT FROM recsys.ratings o WHERE o.user_id OPERATOR(pg_catalog.=) u.user_id
                                AND o.movie_id OPERATOR(pg_catalog.=) c.movie_id AND o.rated_at OPERATOR(pg_catalog.<=) u.at)
            ORDER BY c.n DESC, c.movie_id LIMIT 10) p),
     per_user AS (
        SELECT a.user_id, pg_catalog.count(*) AS relevant,
               pg_catalog.count(l.movie_id) AS hits, pg_catalog.count(p.movie_id) AS popular_hits
        FROM arrived a
        LEFT JOIN listed l ON l.user_id OPERATOR(pg_catalog.=) a.user_id AND l.movie_id OPERATOR(pg_catalog.=) a.movie_id
        LEFT JOIN popular p ON p.user_id OPERATOR(pg_catalog.=) a.user_id AND p.movie_id OPERATOR(pg_catalog.=) a.movie_id
        GROUP BY a.user_id)
     SELECT pg_catalog.count(*),
            pg_catalog.avg(hits::pg_catalog.float8 OPERATOR(pg_catalog./) LEAST(relevant, 10)::pg_catalog.float8),
            pg_catalog.avg((hits OPERATOR(pg_catalog.>) 0)::pg_catalog.int4::pg_catalog.float8),
            pg_catalog.avg(popular_hits::pg_catalog.float8 OPERATOR(pg_catalog./) LEAST(relevant, 10)::pg_catalog.float8),
            pg_catalog.avg((popular_hits OPERATOR(pg_catalog.>) 0)::pg_catalog.int4::pg_catalog.float8)
     FROM per_user"
);

/// Whether recsys.quality_log has the outcome's columns (a database not yet updated to 0.7.0 has not).
const HAS_OUTCOME_COLUMNS: &str = "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute
    WHERE attrelid OPERATOR(pg_catalog.=) 'recsys.quality_log'::pg_catalog.regclass
      AND attname OPERATOR(pg_catalog.=) 'previous_batch_users' AND NOT attisdropped)";

/// The previous batch's outcome for `shard`'s users (read before the refresh replaces their rows); `None` where the
/// schema has no place for it (before `ALTER EXTENSION pg_recsys UPDATE` to 0.7.0).
pub fn previous_batch(shard: Shard) -> Result<Option<Outcome>, RecsysError> {
    let recorded = Spi::get_one::<bool>(HAS_OUTCOME_COLUMNS).map_err(RecsysError::spi("reading recsys.quality_log's columns"))?;
    if recorded != Some(true) {
        return Ok(None);
    }
    Spi::connect(|client| -> Result<Option<Outcome>, pgrx::spi::Error> {
        let table = client.select(OUTCOME, Some(1), &shard.arguments())?;
        let row = table.first();
        Ok(Some(Outcome {
            users: row.get::<i64>(1)?.unwrap_or_default(),
            recall_at_10: row.get::<f64>(2)?,
            hit_rate: row.get::<f64>(3)?,
            popularity_recall_at_10: row.get::<f64>(4)?,
            popularity_hit_rate: row.get::<f64>(5)?,
        }))
    })
    .map_err(RecsysError::spi("measuring the previous batch against the ratings that arrived after it"))
}
