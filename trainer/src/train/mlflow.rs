//! A training run written in MLflow's file-store layout (what `mlflow.set_tracking_uri("file:DIR")` reads), so a
//! team's existing MLflow UI lists every run: parameters, per-epoch loss and validation RMSE, final metrics, the
//! model version as a tag and the artefact's files. The registry in recsys.models stays the source of truth.
use anyhow::{bail, Context, Result};
use recsys_model::Artefact;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The experiment every run goes to.
const EXPERIMENT: &str = "pg_recsys";

/// Where to write runs: `--mlflow DIR`, else `MLFLOW_TRACKING_URI` when it is a `file:` URI; `None` otherwise (a
/// remote tracking server is not written to: a warning says so).
pub fn tracking_dir(flag: Option<&Path>) -> Option<PathBuf> {
    if let Some(dir) = flag {
        return Some(dir.to_path_buf());
    }
    let uri = std::env::var("MLFLOW_TRACKING_URI").ok()?;
    match uri.strip_prefix("file://").or_else(|| uri.strip_prefix("file:")) {
        Some(path) => Some(PathBuf::from(path)),
        None => {
            eprintln!("warning: MLFLOW_TRACKING_URI={uri} is not a file: URI; the trainer writes runs only to a file store (--mlflow DIR)");
            None
        }
    }
}

/// One finished run to write.
pub struct Run<'a> {
    /// Unix milliseconds when training started.
    pub started_ms: u128,
    /// The registered version, when there is one.
    pub model_version: Option<i64>,
    /// Whether the version was made active.
    pub activated: bool,
    /// Training parameters and the network's configuration (nested JSON, flattened to `a.b` keys).
    pub params: Value,
    /// Final metrics (numeric leaves are logged, arrays skipped).
    pub metrics: Value,
    /// Per-epoch series: (metric name, [(epoch, value)]).
    pub series: Vec<(String, Vec<(usize, f64)>)>,
    /// The artefact, written under the run's artifacts/model.
    pub artefact: Option<&'a Artefact>,
}

fn now_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0)
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Leaves of `value` as (`a.b.c`, value), numbers and strings and booleans; arrays and nulls skipped.
fn flatten(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let name = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                flatten(&name, inner, out);
            }
        }
        Value::Array(_) | Value::Null => {}
        leaf => out.push((prefix.to_string(), leaf.clone())),
    }
}

/// The directory of the `pg_recsys` experiment under `root`, created (with MLflow's default experiment 0) when missing.
fn experiment(root: &Path) -> Result<(String, PathBuf)> {
    let mut highest = 0u64;
    if root.is_dir() {
        for entry in std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))? {
            let path = entry?.path();
            let Some(id) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<u64>().ok()) else { continue };
            highest = highest.max(id);
            let meta = std::fs::read_to_string(path.join("meta.yaml")).unwrap_or_default();
            if meta.lines().any(|line| line.trim() == format!("name: {EXPERIMENT}")) {
                return Ok((id.to_string(), path));
            }
        }
    }
    let created = now_ms();
    let meta = |id: &str, name: &str| {
        format!(
            "artifact_location: file://{}\ncreation_time: {created}\nexperiment_id: '{id}'\nlast_update_time: {created}\nlifecycle_stage: active\nname: {name}\n",
            root.join(id).display()
        )
    };
    if !root.join("0/meta.yaml").is_file() {
        write(&root.join("0/meta.yaml"), &meta("0", "Default"))?;
    }
    let id = (highest + 1).to_string();
    write(&root.join(&id).join("meta.yaml"), &meta(&id, EXPERIMENT))?;
    Ok((id.clone(), root.join(id)))
}

/// Writes `run` under `root` (an MLflow file store, created if needed) and returns its run id.
pub fn record(root: &Path, run: &Run) -> Result<String> {
    if root.exists() && !root.is_dir() {
        bail!("--mlflow {} is not a directory", root.display());
    }
    let root = std::path::absolute(root).with_context(|| format!("resolving {}", root.display()))?;
    let (experiment_id, experiment_dir) = experiment(&root)?;
    let ended = now_ms();
    let digest = Sha256::digest(format!("{} {} {ended} {:?}", std::process::id(), run.started_ms, run.model_version));
    let run_id: String = digest[..16].iter().map(|byte| format!("{byte:02x}")).collect();
    let run_dir = experiment_dir.join(&run_id);
    let run_name = match run.model_version {
        Some(version) => format!("pg_recsys version {version}"),
        None => "pg_recsys (not registered)".to_string(),
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let mut params = Vec::new();
    flatten("", &run.params, &mut params);
    for (key, value) in params {
        let text = match value {
            Value::String(text) => text,
            other => other.to_string(),
        };
        write(&run_dir.join("params").join(key), &text)?;
    }
    let mut metrics = Vec::new();
    flatten("", &run.metrics, &mut metrics);
    for (key, value) in metrics {
        if let Some(number) = value.as_f64() {
            write(&run_dir.join("metrics").join(key), &format!("{ended} {number} 0\n"))?;
        }
    }
    for (name, points) in &run.series {
        let lines: String = points.iter().map(|(step, value)| format!("{ended} {value} {step}\n")).collect();
        write(&run_dir.join("metrics").join(name), &lines)?;
    }
    let mut tags = vec![
        ("mlflow.runName", run_name.clone()),
        ("mlflow.user", user.clone()),
        ("mlflow.source.name", "trainer train".to_string()),
        ("mlflow.source.type", "LOCAL".to_string()),
        ("pg_recsys.activated", run.activated.to_string()),
    ];
    if let Some(version) = run.model_version {
        tags.push(("pg_recsys.model_version", version.to_string()));
    }
    for (key, value) in tags {
        write(&run_dir.join("tags").join(key), &value)?;
    }
    if let Some(artefact) = run.artefact {
        let model_dir = run_dir.join("artifacts/model");
        std::fs::create_dir_all(&model_dir)?;
        artefact.save_dir(&model_dir)?;
    }
    write(
        &run_dir.join("meta.yaml"),
        &format!(
            "artifact_uri: file://{artifacts}\nend_time: {ended}\nentry_point_name: ''\nexperiment_id: '{experiment_id}'\nlifecycle_stage: active\nrun_id: {run_id}\nrun_name: {run_name}\nrun_uuid: {run_id}\nsource_name: ''\nsource_type: 4\nsource_version: ''\nstart_time: {start}\nstatus: 3\ntags: []\nuser_id: {user}\n",
            artifacts = run_dir.join("artifacts").display(),
            start = run.started_ms,
        ),
    )?;
    Ok(run_id)
}
