//! The batch refresh from SQL; `CALL recsys_refresh_batch(k)` (sql/operations.sql) wraps this function.
use crate::batch;
use crate::error::OrRaise;
use pgrx::prelude::*;

/// The row `recsys_refresh_batch_now` returns.
type Summary = (i64, i64, i64, f64, Option<f64>, Option<f64>, f64);

fn run(k: Option<i32>, threads: Option<i32>, shard: batch::Shard) -> Summary {
    let threads = threads.unwrap_or_else(crate::guc::torch_threads);
    let s = batch::refresh(k.unwrap_or(10), threads, shard).or_raise();
    (s.model_version, s.users, s.recommendations, s.catalogue_coverage, s.changed_share, s.prospective_rmse, s.seconds)
}

/// Recomputes recsys.batch_recommendations: the `k` best unrated movies for every user in recsys.users with the
/// active model, stamped with its version and the time, and records a row in recsys.quality_log. Runs in the
/// caller's transaction, so readers see the previous batch until it commits. `threads` libtorch threads (NULL:
/// recsys.torch_threads). `shard` of `shards` refreshes only the users whose id modulo `shards` is `shard`, so that
/// separate sessions (or nodes) can refresh the shards of one batch side by side. Users are read, scored and
/// written `recsys.refresh_users_per_round` at a time, with a NOTICE at every tenth. The same or a whole refresh
/// running → 55P03; k outside 1..1000 or a shard outside 0..shards-1 → 22023; no active model → 55000.
#[allow(clippy::type_complexity)] // pgrx reads the column names from the inline `name!` tuple
#[pg_extern(volatile, parallel_unsafe, name = "recsys_refresh_batch_now")]
fn recsys_refresh_batch_by_shard(
    k: default!(Option<i32>, 10),
    threads: default!(Option<i32>, "NULL"),
    shard: default!(Option<i32>, 0),
    shards: default!(Option<i32>, 1),
) -> TableIterator<
    'static,
    (
        name!(model_version, i64),
        name!(users, i64),
        name!(recommendations, i64),
        name!(catalogue_coverage, f64),
        name!(changed_share, Option<f64>),
        name!(prospective_rmse, Option<f64>),
        name!(seconds, f64),
    ),
> {
    TableIterator::once(run(k, threads, batch::Shard { index: shard.unwrap_or(0), count: shards.unwrap_or(1) }))
}

/// The 0.4.0 form (every user), kept as a C symbol so that a 0.4.0 schema keeps refreshing with this library until
/// `ALTER EXTENSION pg_recsys UPDATE`; not part of the current schema (which names the columns).
#[allow(clippy::type_complexity)] // pgrx reads the row type from the inline tuple
#[pg_extern(volatile, parallel_unsafe, sql = false)]
fn recsys_refresh_batch_now(k: Option<i32>, threads: Option<i32>) -> TableIterator<'static, (i64, i64, i64, f64, Option<f64>, Option<f64>, f64)> {
    TableIterator::once(run(k, threads, batch::Shard::ALL))
}
