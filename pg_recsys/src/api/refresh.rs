//! The batch refresh from SQL; `CALL recsys_refresh_batch(k)` (sql/operations.sql) wraps this function.
use crate::batch;
use crate::error::OrRaise;
use pgrx::prelude::*;

/// Recomputes recsys.batch_recommendations: the `k` best unrated movies for every user in recsys.users with the
/// active model, stamped with its version and the time, and records a row in recsys.quality_log. Runs in the
/// caller's transaction, so readers see the previous batch until it commits. `threads` libtorch threads (NULL:
/// recsys.torch_threads). Another refresh running → 55P03; k outside 1..1000 → 22023; no active model → 55000.
#[allow(clippy::type_complexity)] // pgrx reads the column names from the inline `name!` tuple
#[pg_extern(volatile, parallel_unsafe)]
fn recsys_refresh_batch_now(
    k: default!(Option<i32>, 10),
    threads: default!(Option<i32>, "NULL"),
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
    let threads = threads.unwrap_or_else(crate::guc::torch_threads);
    let s = batch::refresh(k.unwrap_or(10), threads).or_raise();
    TableIterator::once((s.model_version, s.users, s.recommendations, s.catalogue_coverage, s.changed_share, s.prospective_rmse, s.seconds))
}
