//! Model management from SQL: activate a registered version, roll back, register an artefact from a server
//! directory. Admin only (EXECUTE is granted to recsys_admin, see sql/operations.sql).
use crate::error::OrRaise;
use crate::registry;
use pgrx::prelude::*;

/// Makes model `version` the active one, after loading it once to prove it can serve; the replaced version is
/// remembered for `recsys_rollback()`. Every backend switches on its next statement. Returns `version`. Also
/// stores the version's serving snapshot of the catalogue; calling it for the active version just rebuilds that.
/// Unknown version → 42704; an artefact that cannot be loaded → XX001 (the active model stays).
#[pg_extern(volatile, strict, parallel_unsafe)]
fn recsys_activate(version: i64) -> i64 {
    registry::activate(version).or_raise()
}

/// Re-activates the version that the active one replaced and returns it; repeated calls walk further back.
/// No active model → 55000; the active version replaced nothing → 55000.
#[pg_extern(volatile, parallel_unsafe)]
fn recsys_rollback() -> i64 {
    registry::rollback().or_raise()
}

/// Registers the artefact in server directory `path` (as written by `trainer train --out`) as a new version,
/// active when `activate`; returns the version. Needs the privileges of pg_read_server_files (42501 otherwise);
/// a missing file → 58P01, a corrupt artefact → XX001, a relative path → 22023.
#[pg_extern(volatile, strict, parallel_unsafe)]
fn recsys_load_artefact(path: &str, activate: default!(bool, false)) -> i64 {
    registry::load_from_dir(path, activate).or_raise()
}
