//! Introspection: what is loaded in this backend (extension, libtorch, threads, model) and a libtorch self-check.
use crate::error::{OrRaise, RecsysError};
use crate::torch_runtime;
use pgrx::prelude::*;

/// One row describing this backend's pg_recsys runtime: extension version, the libtorch version libtorch
/// reports about itself, the intra-op thread count it actually uses (after `recsys.torch_threads`), whether
/// the library was preloaded, and whether a model is loaded in this backend (and its version).
#[allow(clippy::type_complexity)] // pgrx reads the column names from the inline `name!` tuple
#[pg_extern(stable, parallel_safe)]
fn recsys_version_info() -> TableIterator<
    'static,
    (
        name!(extension_version, String),
        name!(libtorch_version, Option<String>),
        name!(torch_threads, i32),
        name!(preloaded, bool),
        name!(model_loaded, bool),
        name!(model_version, Option<i64>),
    ),
> {
    let _float_mode = torch_runtime::prepare().or_raise();
    let row = (
        env!("CARGO_PKG_VERSION").to_string(),
        recsys_model::runtime::libtorch_version(),
        recsys_model::runtime::intra_op_threads(),
        torch_runtime::loaded_by_preload(),
        crate::serving::state::cached_version().is_some(),
        crate::serving::state::cached_version(),
    );
    TableIterator::once(row)
}

/// Multiplies two `matrix_size`×`matrix_size` matrices of ones with libtorch in this backend and returns the
/// sum of the product (`matrix_size`³). Sizes of a few hundred and up use `recsys.torch_threads` threads: a
/// quick check that libtorch and OpenMP work in backends forked from the postmaster.
#[pg_extern(volatile, parallel_safe)]
fn recsys_torch_matmul_check(matrix_size: default!(i32, 1024)) -> f64 {
    if !(1..=4096).contains(&matrix_size) {
        RecsysError::invalid_parameter(format!("matrix_size must be between 1 and 4096, got {matrix_size}"), "Pass a size such as 1024.").raise();
    }
    let _float_mode = torch_runtime::prepare().or_raise();
    recsys_model::runtime::matmul_probe(i64::from(matrix_size)).or_raise()
}
