//! Registering a trained artefact as a new model version: one INSERT (and, with `--activate`, the status
//! switch) in one transaction, so a trainer stopped at any moment leaves no half-registered version.
use anyhow::{Context, Result};
use postgres::Client;
use recsys_model::Artefact;

const INSERT: &str = "
INSERT INTO recsys.models (params, metrics, fingerprint, manifest, weights)
VALUES ($1, $2, $3, $4, $5) RETURNING version";

/// The extension's activation (it checks that the version loads and records the rollback target).
const ACTIVATE: &str = "SELECT recsys.recsys_activate($1)";

pub fn register(client: &mut Client, artefact: &Artefact, activate: bool) -> Result<i64> {
    let manifest: serde_json::Value = serde_json::from_str(&artefact.manifest_json()?)?;
    let fingerprint = serde_json::to_value(&artefact.manifest.fingerprint)?;
    let mut transaction = client.transaction()?;
    let version: i64 = transaction
        .query_one(INSERT, &[&artefact.manifest.params, &artefact.manifest.metrics, &fingerprint, &manifest, &artefact.weights])
        .context("registering the model version")?
        .get(0);
    if activate {
        transaction.query_one(ACTIVATE, &[&version]).context("activating the new version")?;
    }
    transaction.commit()?;
    Ok(version)
}
