//! pg_recsys: the extension's entry point. Declares the module, runs `_PG_init` (GUCs, exit handling) and
//! wires the SQL surface in `api/`. All model logic lives in the `recsys_model` crate.
use pgrx::prelude::*;

mod api;
mod batch;
mod drop_guard;
mod error;
mod exit;
mod guc;
mod registry;
mod serving;
mod torch_runtime;

::pgrx::pg_module_magic!(name, version);

pgrx::extension_sql_file!("../sql/schema.sql", name = "schema", bootstrap);
pgrx::extension_sql_file!("../sql/ratings_primary_key.sql", name = "ratings_primary_key", requires = ["schema"]);
pgrx::extension_sql_file!("../sql/ratings_references.sql", name = "ratings_references", requires = ["ratings_primary_key"]);
pgrx::extension_sql_file!("../sql/ratings_loaded_index.sql", name = "ratings_loaded_index", requires = ["ratings_references"]);
pgrx::extension_sql_file!("../sql/drop_guard.sql", name = "drop_guard", requires = ["ratings_loaded_index"]);
pgrx::extension_sql_file!("../sql/operations.sql", name = "operations", finalize);

/// Runs once per process that loads the library: in the postmaster with `shared_preload_libraries`, else in the
/// backend that first uses it. Must never start libtorch threads (forked backends would hang in OpenMP).
#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    // Errors reach clients with their message, SQLSTATE and hint; a Rust backtrace (captured when the server's
    // environment has RUST_BACKTRACE set) would be sent as a 30-line DETAIL of internals.
    std::env::set_var("RUST_LIB_BACKTRACE", "0");
    guc::register();
    // SAFETY: read-only access to a Postgres global while the library is being loaded.
    let preloading = unsafe { pg_sys::process_shared_preload_libraries_in_progress };
    torch_runtime::record_load_mode(preloading);
    exit::install_fast_exit();
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    #[pg_test]
    fn version_info_reports_libtorch_2_4_0() {
        let version = Spi::get_one::<String>("SELECT libtorch_version FROM recsys.recsys_version_info()").unwrap();
        assert_eq!(version.as_deref(), Some("2.4.0"));
    }

    #[pg_test]
    fn torch_threads_follow_the_guc() {
        Spi::run("SET recsys.torch_threads = 2").unwrap();
        let threads = Spi::get_one::<i32>("SELECT torch_threads FROM recsys.recsys_version_info()").unwrap();
        assert_eq!(threads, Some(2));
        Spi::run("RESET recsys.torch_threads").unwrap();
        let threads = Spi::get_one::<i32>("SELECT torch_threads FROM recsys.recsys_version_info()").unwrap();
        assert_eq!(threads, Some(1));
    }

    #[pg_test]
    fn matmul_check_runs_libtorch_in_the_backend() {
        Spi::run("SET recsys.torch_threads = 2").unwrap();
        let total = Spi::get_one::<f64>("SELECT recsys.recsys_torch_matmul_check(256)").unwrap();
        assert_eq!(total, Some(256f64.powi(3)));
    }

    #[pg_test(error = "matrix_size must be between 1 and 4096, got 0")]
    fn matmul_check_rejects_a_bad_size() {
        Spi::run("SELECT recsys.recsys_torch_matmul_check(0)").unwrap();
    }

    #[pg_test(error = "0 is outside the valid range for parameter \"recsys.torch_threads\" (1 .. 64)")]
    fn torch_threads_guc_has_bounds() {
        Spi::run("SET recsys.torch_threads = 0").unwrap();
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec![]
    }
}
