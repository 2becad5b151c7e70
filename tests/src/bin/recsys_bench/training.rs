//! Training benchmarks: `trainer train` as a child process on a throwaway cluster. `training`: the whole default
//! `trainer train` on ml-latest-small (real data from `RECSYS_SHARED_DATA`; titles computed, then cached) with the
//! time of every phase, the PyTorch replica on the same data in the same run (when the anchor harness's venv exists),
//! then 10 bare epochs and the whole default run over the ML-1M-shaped synthetic set; `accuracy`: ml-latest-small and
//! ML-100K with IMDb metadata, on the anchor harness's splits when they exist; `refit`: the weekly cycle on
//! ml-latest-small split by time, the served model refitted on all ratings or not, scored on the newer ratings;
//! `step-settings`: the automatic batch size and precision against float32 and against batches of 256.
use super::import_benchmarks::{ensure_ml1m_shaped, measured_with_stderr, trainer_in};
use anyhow::{ensure, Result};
use recsys_integration_tests::{Loading, TempCluster};
use std::path::{Path, PathBuf};

/// Imports the data, then vacuums and analyses it so that autovacuum does not compete with the timed training.
fn import(cluster: &TempCluster, database: &str, movielens: &Path, imdb: &Path, links: Option<&Path>) -> Result<()> {
    let mut client = cluster.fresh_database(database)?;
    let mut movielens_args = vec!["import".to_string(), "movielens".into(), movielens.display().to_string()];
    if let Some(links) = links {
        movielens_args.extend(["--links".into(), links.display().to_string()]);
    }
    for args in [movielens_args, vec!["import".into(), "imdb".into(), imdb.display().to_string()]] {
        let output = trainer_in(cluster, database, &args.iter().map(String::as_str).collect::<Vec<_>>()).output()?;
        ensure!(output.status.success(), "trainer {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    client.batch_execute("VACUUM ANALYZE")?;
    Ok(())
}

/// Runs `trainer train --no-register` with `args`; prints the lines of its report that matter here, wall time and
/// peak RSS.
fn train(cluster: &TempCluster, database: &str, label: &str, args: &[&str]) -> Result<String> {
    let mut all = vec!["train", "--no-register"];
    all.extend_from_slice(args);
    run_trainer(cluster, database, label, &all)
}

/// Runs the trainer with exactly `args` (e.g. the default `train --activate`), printing its report's key lines, every
/// phase's time, the wall time and peak RSS; returns the whole report.
fn run_trainer(cluster: &TempCluster, database: &str, label: &str, args: &[&str]) -> Result<String> {
    let (seconds, peak_mb, report) = measured_with_stderr(&mut trainer_in(cluster, database, args))?;
    println!("== {label}: trainer {}", args.join(" "));
    let wanted = [
        "title embeddings",
        "epoch ",
        "autoencoder:",
        "preference:",
        "similar movies:",
        "similar users:",
        "training on",
        "batch size",
        "hold-out",
        "cold-start movies",
        "hybrid model",
        "bias baseline",
        "user mean",
        "Recall@10",
        "popularity",
        "refit",
        "phases:",
        "registered",
    ];
    for line in report.lines().filter(|line| wanted.iter().any(|w| line.contains(w))) {
        println!("   {}", line.trim_end());
    }
    println!("   wall {seconds:.1} s, peak RSS {peak_mb:.0} MB");
    Ok(report)
}

/// Seconds of each "epoch n/m" line of the hold-out run (the first run of a report).
pub(crate) fn epoch_seconds(report: &str) -> Vec<f64> {
    let mut seconds = Vec::new();
    for line in report.lines().filter(|l| l.trim_start().starts_with("epoch ") && l.ends_with("ratings/s")) {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let epoch: usize = tokens.get(1).and_then(|e| e.split('/').next()).and_then(|e| e.parse().ok()).unwrap_or(0);
        if epoch == 1 && !seconds.is_empty() {
            break;
        }
        if let Some(value) = tokens.len().checked_sub(4).and_then(|i| tokens[i].parse().ok()) {
            seconds.push(value);
        }
    }
    seconds
}

/// The anchor harness's PyTorch replica of the seed model trained on its `mls_random` split (10 epochs, 2 threads),
/// when its venv exists: per-epoch seconds and ratings/s.
fn replica_epochs(shared: &Path) -> Result<Option<(Vec<f64>, f64)>> {
    let anchors = shared.join("../anchors");
    let python = std::env::var_os("ANCHORS_PYTHON").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp/anchors-venv/bin/python"));
    if !python.is_file() || !anchors.join("seed_replica.py").is_file() {
        println!(
            "== PyTorch replica: skipped (no interpreter at {}; run ../shared/anchors/run_all.sh once, or set ANCHORS_PYTHON)",
            python.display()
        );
        return Ok(None);
    }
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-anchors");
    let run = |args: &[&str]| -> Result<String> {
        let output = std::process::Command::new(&python)
            .args(args)
            .current_dir(&anchors)
            .env("ANCHORS_DATA_DIR", shared)
            .env("ANCHORS_OUT_DIR", &out)
            .env("HF_HUB_OFFLINE", "1")
            .env("TRANSFORMERS_OFFLINE", "1")
            .env("PYTHONWARNINGS", "ignore")
            .output()?;
        ensure!(output.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    };
    if !out.join("splits/mls_random/train.csv").is_file() {
        run(&["splits.py", "--seed", "12345"])?;
    }
    let report = run(&["seed_replica.py", "--splits", "mls_random", "--epochs", "10", "--threads", "2"])?;
    let seconds: Vec<f64> = report
        .lines()
        .filter(|l| l.contains(" epoch ") && l.contains("train MSE"))
        .filter_map(|l| l.split_whitespace().last()?.trim_end_matches('s').parse().ok())
        .collect();
    let train_rows = std::fs::read_to_string(out.join("splits/mls_random/train.csv"))?.lines().count().saturating_sub(1);
    let mean = seconds.iter().sum::<f64>() / seconds.len().max(1) as f64;
    println!("== PyTorch replica (anchor harness, mls_random split, {train_rows} training ratings, 10 epochs, 2 threads)");
    println!("   epochs: {}", seconds.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(" "));
    println!("   mean {mean:.2} s per epoch = {:.0} ratings/s", train_rows as f64 / mean);
    Ok(Some((seconds, train_rows as f64 / mean)))
}

/// The whole default `trainer train --activate` on ml-latest-small, with titles computed and then cached, beside the
/// PyTorch replica's epochs on the same data.
fn real_data_training() -> Result<()> {
    let shared = shared_data();
    ensure!(shared.join("ml-latest-small/ratings.csv").is_file(), "ml-latest-small not found under {} (set RECSYS_SHARED_DATA)", shared.display());
    let cluster = TempCluster::start("bench-training-mls", Loading::Preloaded, &[])?;
    import(&cluster, "mls", &shared.join("ml-latest-small"), &shared.join("imdb"), None)?;
    run_trainer(&cluster, "mls", "ml-latest-small, default run, titles not yet cached", &["train", "--activate"])?;
    let report = run_trainer(&cluster, "mls", "ml-latest-small, default run, titles cached", &["train", "--activate"])?;
    let ours = epoch_seconds(&report);
    let fitted: f64 =
        report.lines().find(|l| l.starts_with("hold-out run: training on")).and_then(|l| l.split_whitespace().nth(4)?.parse().ok()).unwrap_or(0.0)
            * 0.95;
    let mean = ours.iter().sum::<f64>() / ours.len().max(1) as f64;
    let slowest_ratio = ours.iter().cloned().fold(0.0, f64::max) / ours.first().copied().unwrap_or(1.0);
    println!(
        "   hold-out run epochs: {} (slowest / first {slowest_ratio:.2}); mean {mean:.2} s = {:.0} ratings/s",
        ours.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(" "),
        fitted / mean
    );
    if let Some((_, replica_rate)) = replica_epochs(&shared)? {
        println!("   per epoch, pg_recsys vs the PyTorch replica: {:.2}x the replica's ratings/s", fitted / mean / replica_rate);
    }
    Ok(())
}

pub fn training() -> Result<()> {
    real_data_training()?;
    let data = ensure_ml1m_shaped()?;
    let cluster = TempCluster::start("bench-training", Loading::Preloaded, &[])?;
    import(&cluster, "bench", &data.join("movielens"), &data.join("imdb"), None)?;
    let common = ["--skip-cold-start", "--ranking-users", "100", "--validation-fraction", "0"];
    let mut ten_epochs = common.to_vec();
    ten_epochs.extend(["--epochs", "10", "--threads", "2"]);
    train(&cluster, "bench", "ML-1M-shaped synthetic set, 10 epochs, 2 gradient workers", &ten_epochs)?;
    run_trainer(
        &cluster,
        "bench",
        "same set, the whole default run (hold-out run, autoencoder, ranking, cold-start run, refit, registration)",
        &["train", "--activate"],
    )?;
    let mut one_thread = common.to_vec();
    one_thread.extend(["--epochs", "1", "--threads", "1"]);
    train(&cluster, "bench", "same set, 1 epoch, 1 gradient worker", &one_thread).map(|_| ())
}

/// `step-settings`: three epochs over the ML-1M-shaped set with the automatic batch size and precision, the same in
/// float32, and batches of 256 in float32 (the settings before they followed the data), in two interleaved rounds:
/// mean seconds per epoch and test RMSE of each.
pub fn step_settings() -> Result<()> {
    let data = ensure_ml1m_shaped()?;
    let cluster = TempCluster::start("bench-step-settings", Loading::Preloaded, &[])?;
    import(&cluster, "bench", &data.join("movielens"), &data.join("imdb"), None)?;
    let common = ["--epochs", "3", "--skip-cold-start", "--autoencoder-hidden", "0", "--ranking-users", "100"];
    let settings: [(&str, &[&str]); 3] = [
        ("batch 256, float32", &["--batch-size", "256", "--precision", "float32"]),
        ("automatic batch, float32", &["--precision", "float32"]),
        ("automatic batch and precision (the default)", &[]),
    ];
    let mut summary = Vec::new();
    for round in 1..=2 {
        for (label, flags) in settings {
            let mut args = common.to_vec();
            args.extend_from_slice(flags);
            let report = train(&cluster, "bench", &format!("round {round}, {label}"), &args)?;
            let seconds = epoch_seconds(&report);
            let rmse = report.lines().find_map(|l| l.trim().strip_prefix("hybrid model")?.split_whitespace().nth(1)?.parse::<f64>().ok());
            summary.push((label, round, seconds.iter().sum::<f64>() / seconds.len().max(1) as f64, rmse));
        }
    }
    println!("| settings | round | mean epoch (s) | test RMSE |");
    println!("|---|---|---|---|");
    for (label, round, mean, rmse) in summary {
        println!("| {label} | {round} | {mean:.1} | {} |", rmse.map_or("-".into(), |r| format!("{r:.4}")));
    }
    Ok(())
}

pub(crate) fn shared_data() -> PathBuf {
    std::env::var_os("RECSYS_SHARED_DATA").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

pub fn accuracy() -> Result<()> {
    let shared = shared_data();
    ensure!(shared.join("ml-latest-small/ratings.csv").is_file(), "ml-latest-small not found under {} (set RECSYS_SHARED_DATA)", shared.display());
    let splits = std::env::var_os("RECSYS_ANCHOR_SPLITS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp/anchors-out/splits"));
    let cluster = TempCluster::start("bench-accuracy", Loading::Preloaded, &[])?;
    import(&cluster, "mls", &shared.join("ml-latest-small"), &shared.join("imdb"), None)?;
    let (random, cold) = (splits.join("mls_random/test.csv"), splits.join("mls_coldmovie/test.csv"));
    let (random, cold) = (random.display().to_string(), cold.display().to_string());
    if splits.join("mls_random/test.csv").is_file() && splits.join("mls_coldmovie/test.csv").is_file() {
        train(
            &cluster,
            "mls",
            "ml-latest-small, the anchor harness's mls_random and mls_coldmovie splits",
            &["--test-ratings", &random, "--cold-test-ratings", &cold, "--ranking-users", "100000"],
        )?;
    } else {
        println!(
            "(no anchor splits under {}: run ../shared/anchors/run_all.sh or set RECSYS_ANCHOR_SPLITS; using the trainer's own splits)",
            splits.display()
        );
        train(&cluster, "mls", "ml-latest-small, the trainer's random and cold-movie splits", &["--ranking-users", "100000"])?;
    }
    let ml100k = shared.join("ml-100k");
    import(&cluster, "ml100k", &ml100k, &shared.join("imdb"), Some(&ml100k.join("ml100k_to_imdb.csv")))?;
    let u1 = ml100k.join("u1.test").display().to_string();
    train(&cluster, "ml100k", "ML-100K u1.base / u1.test", &["--test-ratings", &u1, "--skip-cold-start", "--ranking-users", "100000"]).map(|_| ())
}

/// The weekly cycle on ml-latest-small split by time: models trained on the ratings before the last `share` of
/// them (by time), with and without the refit on all ratings, scored through `recsys_predict` on the newer ratings
/// (prospective RMSE), and the cost of each run.
pub fn refit() -> Result<()> {
    let shared = shared_data();
    ensure!(shared.join("ml-latest-small/ratings.csv").is_file(), "ml-latest-small not found under {} (set RECSYS_SHARED_DATA)", shared.display());
    let cluster = TempCluster::start("bench-refit", Loading::Preloaded, &[])?;
    import(&cluster, "mls", &shared.join("ml-latest-small"), &shared.join("imdb"), None)?;
    let mut db = postgres::Client::connect(&cluster.connection_string("postgres", "mls"), postgres::NoTls)?;
    let warm_up = trainer_in(
        &cluster,
        "mls",
        &["train", "--no-register", "--epochs", "1", "--skip-cold-start", "--autoencoder-hidden", "0", "--ranking-users", "10"],
    )
    .output()?;
    ensure!(warm_up.status.success(), "embedding the titles failed: {}", String::from_utf8_lossy(&warm_up.stderr));
    println!("ml-latest-small split by time; trained on the older ratings, scored on the newer (prospective RMSE through recsys_predict); titles cached, no cold-start run");
    println!(
        "{:>12} {:>9} {:>9} {:>16} {:>13} {:>10} {:>10}",
        "newer share", "newer", "older", "no refit RMSE", "refit RMSE", "no refit s", "refit s"
    );
    for share in [0.05f64, 0.1] {
        db.batch_execute("DROP TABLE IF EXISTS newer; TRUNCATE recsys.models CASCADE")?;
        let cutoff: f64 = db
            .query_one(
                "SELECT extract(epoch FROM percentile_disc($1::float8) WITHIN GROUP (ORDER BY rated_at))::float8 FROM recsys.ratings",
                &[&(1.0 - share)],
            )?
            .get(0);
        db.execute("CREATE TABLE newer AS SELECT * FROM recsys.ratings WHERE rated_at > to_timestamp($1)", &[&cutoff])?;
        db.batch_execute("DELETE FROM recsys.ratings r USING newer n WHERE r.user_id = n.user_id AND r.movie_id = n.movie_id")?;
        let older: i64 = db.query_one("SELECT count(*) FROM recsys.ratings", &[])?.get(0);
        let newer: i64 = db.query_one("SELECT count(*) FROM newer", &[])?.get(0);
        let mut results = Vec::new();
        for flags in [&["train", "--no-refit", "--skip-cold-start"][..], &["train", "--skip-cold-start"][..]] {
            let started = std::time::Instant::now();
            let output = trainer_in(&cluster, "mls", flags).output()?;
            ensure!(output.status.success(), "trainer {flags:?} failed: {}", String::from_utf8_lossy(&output.stderr));
            let seconds = started.elapsed().as_secs_f64();
            let version: i64 = db.query_one("SELECT max(version) FROM recsys.models", &[])?.get(0);
            db.execute("SELECT recsys.recsys_activate($1)", &[&version])?;
            let rmse: f64 = db.query_one("SELECT sqrt(avg((recsys.recsys_predict(user_id, movie_id) - rating)::float8 ^ 2)) FROM newer", &[])?.get(0);
            results.push((rmse, seconds));
        }
        db.batch_execute("INSERT INTO recsys.ratings SELECT * FROM newer")?;
        println!(
            "{:>11.0}% {newer:>9} {older:>9} {:>16.4} {:>13.4} {:>10.1} {:>10.1}",
            share * 100.0,
            results[0].0,
            results[1].0,
            results[0].1,
            results[1].1
        );
    }
    Ok(())
}
