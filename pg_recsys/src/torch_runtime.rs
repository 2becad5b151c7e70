//! libtorch inside a backend: applies `recsys.torch_threads` lazily (never in the postmaster, whose forked
//! children would hang in OpenMP), flushes subnormal floats around the model's computations only, and remembers
//! how the library was loaded.
use crate::error::RecsysError;
use recsys_model::float_mode::FlushToZeroGuard;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static LOADED_BY_PRELOAD: AtomicBool = AtomicBool::new(false);
static APPLIED_THREADS: AtomicI32 = AtomicI32::new(0);

/// Remembers whether `_PG_init` ran during `shared_preload_libraries` processing.
pub fn record_load_mode(preloading: bool) {
    LOADED_BY_PRELOAD.store(preloading, Ordering::Relaxed);
}

/// Whether the library was loaded by `shared_preload_libraries` (inherited by every forked backend).
pub fn loaded_by_preload() -> bool {
    LOADED_BY_PRELOAD.load(Ordering::Relaxed)
}

/// Makes libtorch use the session's `recsys.torch_threads` and turns flush-to-zero on until the returned guard
/// drops; call before any tensor work in a SQL function and keep the guard for the whole computation. Subnormal
/// floats make products ~8× slower; the backend's own float arithmetic sees its previous mode again afterwards.
/// Cheap when nothing changed: one atomic load, a comparison and two MXCSR accesses.
pub fn prepare() -> Result<FlushToZeroGuard, RecsysError> {
    let guard = FlushToZeroGuard::enter();
    let wanted = crate::guc::torch_threads();
    if APPLIED_THREADS.load(Ordering::Relaxed) != wanted {
        recsys_model::runtime::set_intra_op_threads(wanted)?;
        APPLIED_THREADS.store(wanted, Ordering::Relaxed);
    }
    Ok(guard)
}

/// Runs libtorch with `threads` intra-op threads for this backend (e.g. for a batch refresh), with flush-to-zero
/// until the guard drops; the next `prepare` goes back to the session's `recsys.torch_threads`.
pub fn use_threads(threads: i32) -> Result<FlushToZeroGuard, RecsysError> {
    let guard = FlushToZeroGuard::enter();
    recsys_model::runtime::set_intra_op_threads(threads)?;
    APPLIED_THREADS.store(threads, Ordering::Relaxed);
    Ok(guard)
}
