//! Training benchmarks: `trainer train` as a child process on a throwaway cluster. `training`: 10 epochs over the
//! ML-1M-shaped synthetic set (ratings/s per epoch, wall time, peak RSS), without and with the validation share and
//! the item autoencoder; `accuracy`: ml-latest-small and ML-100K with IMDb metadata from `RECSYS_SHARED_DATA`, on
//! the anchor harness's splits when they exist.
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

/// Runs `trainer train` with `args`; prints the lines of its report that matter here, wall time and peak RSS.
fn train(cluster: &TempCluster, database: &str, label: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["train", "--no-register"];
    all.extend_from_slice(args);
    let (seconds, peak_mb, report) = measured_with_stderr(&mut trainer_in(cluster, database, &all))?;
    println!("== {label}: trainer {}", all.join(" "));
    let wanted = ["title embeddings", "epoch ", "autoencoder:", "training on", "hold-out", "cold-start movies", "hybrid model", "bias baseline", "user mean", "Recall@10"];
    for line in report.lines().filter(|line| wanted.iter().any(|w| line.contains(w))) {
        println!("   {}", line.trim_end());
    }
    println!("   wall {seconds:.1} s, peak RSS {peak_mb:.0} MB");
    Ok(())
}

pub fn training() -> Result<()> {
    let data = ensure_ml1m_shaped()?;
    let cluster = TempCluster::start("bench-training", Loading::Preloaded, &[])?;
    import(&cluster, "bench", &data.join("movielens"), &data.join("imdb"), None)?;
    let common = ["--skip-cold-start", "--ranking-users", "100", "--validation-fraction", "0"];
    let mut ten_epochs = common.to_vec();
    ten_epochs.extend(["--epochs", "10", "--threads", "2"]);
    train(&cluster, "bench", "ML-1M-shaped synthetic set, 10 epochs, 2 gradient workers", &ten_epochs)?;
    let defaults = ["--skip-cold-start", "--ranking-users", "100", "--epochs", "10", "--threads", "2"];
    train(&cluster, "bench", "same set with the defaults: 5 % validation share, then the item autoencoder", &defaults)?;
    let mut one_thread = common.to_vec();
    one_thread.extend(["--epochs", "1", "--threads", "1"]);
    train(&cluster, "bench", "same set, 1 epoch, 1 gradient worker", &one_thread)
}

fn shared_data() -> PathBuf {
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
        train(&cluster, "mls", "ml-latest-small, the anchor harness's mls_random and mls_coldmovie splits", &["--test-ratings", &random, "--cold-test-ratings", &cold])?;
    } else {
        println!("(no anchor splits under {}: run ../shared/anchors/run_all.sh or set RECSYS_ANCHOR_SPLITS; using the trainer's own splits)", splits.display());
        train(&cluster, "mls", "ml-latest-small, the trainer's random and cold-movie splits", &[])?;
    }
    let ml100k = shared.join("ml-100k");
    import(&cluster, "ml100k", &ml100k, &shared.join("imdb"), Some(&ml100k.join("ml100k_to_imdb.csv")))?;
    let u1 = ml100k.join("u1.test").display().to_string();
    train(&cluster, "ml100k", "ML-100K u1.base / u1.test", &["--test-ratings", &u1, "--skip-cold-start"])
}
