//! Registering a trained artefact as a new model version: one INSERT (and, with `--activate`, the status
//! switch) in one transaction, so a trainer stopped at any moment leaves no half-registered version.
use anyhow::{Context, Result};
use postgres::Client;
use recsys_model::Artefact;

/// The extension's activation (it checks that the version loads and records the rollback target).
const ACTIVATE: &str = "SELECT recsys.recsys_activate($1)";

pub fn register(client: &mut Client, artefact: &Artefact, activate: bool) -> Result<i64> {
    let manifest: serde_json::Value = serde_json::from_str(&artefact.manifest_json()?)?;
    let mut transaction = client.transaction()?;
    let version: i64 =
        transaction.query_one(recsys_contract::REGISTER_MODEL, &[&manifest, &artefact.weights]).context("registering the model version")?.get(0);
    if activate {
        transaction.query_one(ACTIVATE, &[&version]).context("activating the new version")?;
    }
    transaction.commit()?;
    Ok(version)
}

const LOG_TRAINING: &str = "
INSERT INTO recsys.quality_log (kind, model_version, started_at, finished_at, duration_seconds, prospective_rmse, prospective_ratings, details)
VALUES ('train', $1, now() - make_interval(secs => $2), now(), $2, $3, $4, $5)";

/// Records a training run in recsys.quality_log: the registered version, how long it took, and the previously
/// active model's RMSE on the ratings that arrived after its training data.
pub fn log_training(
    client: &mut Client,
    version: i64,
    seconds: f64,
    prospective_rmse: Option<f64>,
    prospective_ratings: i64,
    details: &serde_json::Value,
) -> Result<()> {
    client
        .execute(LOG_TRAINING, &[&version, &seconds, &prospective_rmse, &prospective_ratings, details])
        .context("recording the run in recsys.quality_log")?;
    Ok(())
}
