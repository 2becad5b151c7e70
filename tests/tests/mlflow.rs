//! `trainer train --mlflow DIR` (and `MLFLOW_TRACKING_URI=file:DIR`) writes each run in MLflow's file-store layout:
//! read back here by the real MLflow client (mlflow-skinny from PyPI, in the virtualenv scripts/bootstrap.sh makes).
use recsys_integration_tests::{shared_cluster, Loading, ScratchDir};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python of the virtualenv holding the MLflow client.
fn mlflow_python() -> PathBuf {
    let venv = std::env::var_os("RECSYS_MLFLOW_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.deps/mlflow-venv"));
    let python = venv.join("bin/python");
    assert!(python.is_file(), "{} missing: run scripts/bootstrap.sh", python.display());
    python
}

/// Every run of the pg_recsys experiment under `store`, as the MLflow client reads it.
fn runs_read_by_mlflow(store: &Path) -> Vec<Value> {
    const READER: &str = r#"
import json, sys, mlflow
from mlflow.tracking import MlflowClient
mlflow.set_tracking_uri("file:" + sys.argv[1])
experiment = mlflow.get_experiment_by_name("pg_recsys")
client = MlflowClient()
runs = mlflow.search_runs(experiment_ids=[experiment.experiment_id], output_format="list", order_by=["attributes.start_time ASC"])
print(json.dumps([{
    "status": run.info.status, "name": run.info.run_name, "params": run.data.params, "metrics": run.data.metrics,
    "tags": run.data.tags, "loss_steps": [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")],
    "artifacts": [a.path for a in client.list_artifacts(run.info.run_id, "model")],
} for run in runs]))
"#;
    let output = Command::new(mlflow_python()).args(["-c", READER]).arg(store).output().unwrap();
    assert!(output.status.success(), "the MLflow client failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn training_runs_are_listed_by_the_mlflow_client_with_params_metrics_and_artefact() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = cluster.demo_database("mlflow").unwrap();
    let scratch = ScratchDir::new("mlflow").unwrap();
    let store = scratch.0.join("mlruns");
    let store_arg = store.display().to_string();
    cluster.quick_train("mlflow", &["--activate", "--mlflow", &store_arg]).unwrap();
    let output = cluster
        .trainer_command("mlflow", &["train", "--epochs", "3", "--skip-cold-start", "--ranking-users", "10", "--no-refit"])
        .env("MLFLOW_TRACKING_URI", format!("file:{store_arg}"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let runs = runs_read_by_mlflow(&store);
    assert_eq!(runs.len(), 2, "both runs are listed: {runs:#?}");
    for (run, (version, epochs)) in runs.iter().zip([(1, 2), (2, 3)]) {
        assert_eq!(run["status"], "FINISHED");
        assert_eq!(run["tags"]["pg_recsys.model_version"], version.to_string(), "{run:#?}");
        assert_eq!(run["name"], format!("pg_recsys version {version}"));
        assert_eq!(run["params"]["train.fit.epochs"], epochs.to_string());
        assert_eq!(run["params"]["config.user_dim"], "64");
        assert_eq!(run["params"]["train.fit.batch_size"], "256", "the batch size the fit chose for a small training set");
        let stored: f64 = db
            .query_one("SELECT (metrics #>> '{random_holdout,model,rmse}')::float8 FROM recsys.models WHERE version = $1", &[&(version as i64)])
            .unwrap()
            .get(0);
        let logged = run["metrics"]["random_holdout.model.rmse"].as_f64().expect("the hold-out RMSE is a metric");
        assert!((logged - stored).abs() < 1e-9, "the run's RMSE is the registry's: {logged} vs {stored}");
        let steps: Vec<i64> = run["loss_steps"].as_array().unwrap().iter().map(|s| s.as_i64().unwrap()).collect();
        assert!(steps.len() >= epochs.min(2) && steps.windows(2).all(|w| w[0] < w[1]), "one training loss per epoch: {steps:?}");
        assert!(!run["artifacts"].as_array().unwrap().is_empty(), "the artefact's files are the run's artifacts: {run:#?}");
    }
    assert_eq!(runs[0]["tags"]["pg_recsys.activated"], "true");
    assert_eq!(runs[1]["tags"]["pg_recsys.activated"], "false");
}
