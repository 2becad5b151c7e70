//! The model registry seen from SQL: reading a version's artefact, validating it before it can become active,
//! activation with a rollback chain (`previous_version`), and registering an artefact read from a server directory.
//! Only the activation functions write; they run in the caller's transaction.
use crate::error::RecsysError;
use crate::serving::artefact::read_artefact;
use crate::serving::catalogue::{self, EncodedCatalogue};
use crate::serving::state;
use pgrx::prelude::*;
use recsys_model::Artefact;
use std::path::Path;

/// Builds the network of `version` (so that a version that cannot serve is never activated) and stores the
/// serving snapshot of the current catalogue that backends load it with.
fn prepare_to_serve(version: i64) -> Result<(), RecsysError> {
    let _float_mode = crate::torch_runtime::prepare()?;
    let artefact = read_artefact(version)?;
    let (_store, network) = artefact.build().map_err(|e| RecsysError::corrupt_model(version, e))?;
    state::require_current_schema()?;
    let catalogue_version = catalogue::catalogue_version()?;
    EncodedCatalogue::compute(&network, &artefact.manifest.vocabulary, state::embed_titles)?.write_snapshot(version, catalogue_version)
}

/// Key of the transaction-level advisory lock that serialises activations and rollbacks.
const ACTIVATION_LOCK_KEY: i64 = 0x7265_6373_7973_0002;

/// Waits for any other activation or rollback to commit (a transaction-level advisory lock): without it two
/// concurrent activations could both read the same active version and lose the rollback target, or both find no
/// active row and collide on the unique index.
fn serialise_activations() -> Result<(), RecsysError> {
    Spi::connect_mut(|client| {
        client.update("SELECT pg_catalog.pg_advisory_xact_lock($1::pg_catalog.int8)", Some(1), &[ACTIVATION_LOCK_KEY.into()]).map(|_| ())
    })
    .map_err(RecsysError::spi("waiting for another activation"))
}

/// The active version and the version it replaced, locking the active row against concurrent activations.
fn active_with_previous() -> Result<Option<(i64, Option<i64>)>, RecsysError> {
    serialise_activations()?;
    Spi::connect_mut(|client| -> Result<Option<(i64, Option<i64>)>, pgrx::spi::Error> {
        let table = client.update(
            "SELECT version, previous_version FROM recsys.models WHERE status OPERATOR(pg_catalog.=) 'active' FOR UPDATE",
            Some(1),
            &[],
        )?;
        if table.is_empty() {
            return Ok(None);
        }
        let row = table.first();
        let previous = row.get::<i64>(2)?;
        Ok(row.get::<i64>(1)?.map(|version| (version, previous)))
    })
    .map_err(RecsysError::spi("reading the active model"))
}

/// Makes `version` the only active version; `previous_version`: Some(target) records the rollback target
/// (Some(None) clears it), None keeps the version's own.
fn switch_to(version: i64, previous_version: Option<Option<i64>>) -> Result<(), RecsysError> {
    Spi::connect_mut(|client| -> Result<(), pgrx::spi::Error> {
        client.update("UPDATE recsys.models SET status = 'retired' WHERE status OPERATOR(pg_catalog.=) 'active'", None, &[])?;
        client.update(
            "UPDATE recsys.models SET status = 'active', activated_at = pg_catalog.now(),
                    previous_version = CASE WHEN $2::pg_catalog.bool THEN $3::pg_catalog.int8 ELSE previous_version END
             WHERE version OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
            None,
            &[version.into(), previous_version.is_some().into(), previous_version.flatten().into()],
        )?;
        Ok(())
    })
    .map_err(RecsysError::spi(format!("activating model version {version}")))
}

/// Makes `version` the active model after checking that it loads; the replaced version becomes the rollback target.
/// Activating the active version again only rebuilds its snapshot (to pick up changed movie metadata).
pub fn activate(version: i64) -> Result<i64, RecsysError> {
    RecsysError::refuse_on_standby("recsys_activate")?;
    let current = active_with_previous()?;
    prepare_to_serve(version)?;
    if current.is_some_and(|(active, _)| active == version) {
        return Ok(version);
    }
    switch_to(version, Some(current.map(|(active, _)| active)))?;
    Ok(version)
}

/// Re-activates the version that the active one replaced, keeping that version's own rollback target.
pub fn rollback() -> Result<i64, RecsysError> {
    RecsysError::refuse_on_standby("recsys_rollback")?;
    let (_, previous) = active_with_previous()?.ok_or(RecsysError::NoActiveModel)?;
    let previous = previous.ok_or(RecsysError::NothingToRollBack)?;
    prepare_to_serve(previous)?;
    switch_to(previous, None)?;
    Ok(previous)
}

fn require_server_file_access() -> Result<(), RecsysError> {
    let allowed = Spi::get_one::<bool>("SELECT pg_catalog.pg_has_role(CURRENT_USER, 'pg_read_server_files', 'MEMBER')")
        .map_err(RecsysError::spi("checking privileges"))?;
    if allowed == Some(true) {
        return Ok(());
    }
    Err(RecsysError::InsufficientPrivilege {
        message: "loading a model artefact from a server file requires the privileges of pg_read_server_files".into(),
        hint: "Ask a superuser to GRANT pg_read_server_files to your role, or register the model with trainer train.".into(),
    })
}

/// Registers the artefact in server directory `dir` (manifest.json + weights.safetensors) as a new version after
/// checking that it loads; returns the new version, active when `activate`.
pub fn load_from_dir(dir: &str, activate_it: bool) -> Result<i64, RecsysError> {
    RecsysError::refuse_on_standby("recsys_load_artefact")?;
    require_server_file_access()?;
    if !Path::new(dir).is_absolute() {
        return Err(RecsysError::invalid_parameter(
            format!("artefact path must be absolute, got \"{dir}\""),
            "Pass the directory written by trainer train --out, e.g. '/srv/models/v7'.",
        ));
    }
    let _float_mode = crate::torch_runtime::prepare()?;
    let artefact = Artefact::load_dir(Path::new(dir))?;
    artefact.build()?;
    let manifest = artefact.manifest_json()?;
    let version = Spi::connect_mut(|client| -> Result<Option<i64>, pgrx::spi::Error> {
        let table = client.update(recsys_contract::REGISTER_MODEL, Some(1), &[manifest.into(), artefact.weights.clone().into()])?;
        table.first().get::<i64>(1)
    })
    .map_err(RecsysError::spi(format!("registering the artefact in {dir}")))?
    .ok_or_else(|| RecsysError::internal("INSERT returned no version"))?;
    if activate_it {
        activate(version)?;
    }
    Ok(version)
}
