//! Ending Postgres child processes without libtorch's C++ static destructors, which cost ~60–95 ms of CPU
//! per process exit and free nothing the kernel would not reclaim.
use pgrx::pg_sys;
use std::ffi::{c_int, c_void};

extern "C" {
    /// glibc's `on_exit`: like `atexit`, but the handler receives the exit status.
    fn on_exit(function: extern "C" fn(c_int, *mut c_void), argument: *mut c_void) -> c_int;
}

/// Registers the exit handler. Called from `_PG_init`, after libtorch's own static initialisers have run and
/// registered their destructors; exit handlers run in reverse order, so ours runs before those destructors.
/// Postgres has already run all its `on_proc_exit`/`on_shmem_exit` callbacks by the time `exit()` gets here.
pub fn install_fast_exit() {
    // SAFETY: registering a plain function with no argument.
    unsafe {
        on_exit(leave_without_static_destructors, std::ptr::null_mut());
    }
}

extern "C" fn leave_without_static_destructors(status: c_int, _argument: *mut c_void) {
    // SAFETY: reading process globals and leaving the process; stdio is flushed first because `_exit` does not.
    unsafe {
        let is_postmaster = libc::getpid() == pg_sys::PostmasterPid;
        if is_postmaster || !crate::guc::fast_exit() {
            return;
        }
        libc::fflush(std::ptr::null_mut());
        libc::_exit(status);
    }
}
