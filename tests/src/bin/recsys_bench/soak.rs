//! The fault-and-load soak: pgbench readers (predict, recommend, the BI report) on loopback sockets for a bounded
//! time while another session refreshes the batch and switches the active model every 10 s; prints throughput,
//! failed transactions and latency percentiles, and checks that the batch stayed complete and single-version.
use anyhow::{ensure, Context, Result};
use postgres::{Client, NoTls};
use recsys_integration_tests::{Loading, TempCluster};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENTS: u32 = 16;
const SECONDS: u64 = 60;
const K: i32 = 10;

const READER_SCRIPT: &str = "\\set u random(1, :users)
\\set m random(1, :movies)
SELECT recsys.recsys_predict(:u, :m);
SELECT count(*) FROM recsys.recsys_recommend(:u, 10);
SELECT count(*) FROM recsys.recommendations_report WHERE user_id = :u;
";

/// Refreshes and activations every 10 s until `stop`; returns (refreshes, activations, errors).
fn churn(connection: String, stop: Arc<AtomicBool>) -> Result<(u32, u32, Vec<String>)> {
    let mut admin = Client::connect(&connection, NoTls)?;
    let (mut refreshes, mut activations, mut errors) = (0, 0, Vec::new());
    let mut next = 1i64;
    while !stop.load(Ordering::Relaxed) {
        match admin.batch_execute(&format!("CALL recsys.recsys_refresh_batch({K})")) {
            Ok(()) => refreshes += 1,
            Err(error) => errors.push(format!("refresh: {error}")),
        }
        next = 3 - next;
        match admin.query_one("SELECT recsys.recsys_activate($1)", &[&next]) {
            Ok(_) => activations += 1,
            Err(error) => errors.push(format!("activate: {error}")),
        }
        let pause = Instant::now();
        while pause.elapsed() < Duration::from_secs(10) && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok((refreshes, activations, errors))
}

fn percentile(sorted: &[u64], share: f64) -> f64 {
    sorted.get(((sorted.len() as f64 - 1.0) * share).round() as usize).copied().unwrap_or(0) as f64 / 1000.0
}

pub fn soak() -> Result<()> {
    let cluster = TempCluster::start("bench-soak", Loading::Preloaded, &["max_connections=64"])?;
    let mut db = cluster.trained_demo_database("soak")?;
    cluster.quick_train("soak", &["--seed", "11"])?;
    db.batch_execute(&format!("CALL recsys.recsys_refresh_batch({K})"))?;
    let users: i32 = db.query_one("SELECT max(user_id) FROM recsys.users", &[])?.get(0);
    let movies: i32 = db.query_one("SELECT max(movie_id) FROM recsys.movies", &[])?.get(0);
    let work = std::env::temp_dir().join(format!("recsys-soak-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    std::fs::write(work.join("reader.sql"), READER_SCRIPT)?;

    let stop = Arc::new(AtomicBool::new(false));
    let churner = {
        let (connection, stop) = (cluster.connection_string("postgres", "soak"), Arc::clone(&stop));
        std::thread::spawn(move || churn(connection, stop))
    };
    let (socket, port) = cluster.socket_and_port();
    let output = std::process::Command::new("/usr/lib/postgresql/15/bin/pgbench")
        .args(["-n", "-c", &CLIENTS.to_string(), "-j", "2", "-T", &SECONDS.to_string(), "-l", "--log-prefix"])
        .arg(work.join("latency"))
        .args(["-D", &format!("users={users}"), "-D", &format!("movies={movies}"), "-f"])
        .arg(work.join("reader.sql"))
        .arg("-h")
        .arg(&socket)
        .args(["-p", &port.to_string(), "-U", "postgres", "soak"])
        .current_dir(&work)
        .output()
        .context("running pgbench")?;
    stop.store(true, Ordering::Relaxed);
    let (refreshes, activations, errors) = churner.join().map_err(|_| anyhow::anyhow!("the churn thread panicked"))??;
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    ensure!(output.status.success(), "pgbench failed: {report}{}", String::from_utf8_lossy(&output.stderr));

    let mut latencies: Vec<u64> = Vec::new();
    for entry in std::fs::read_dir(&work)? {
        let path = entry?.path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("latency")) {
            latencies.extend(std::fs::read_to_string(&path)?.lines().filter_map(|l| l.split_whitespace().nth(2)?.parse::<u64>().ok()));
        }
    }
    latencies.sort_unstable();
    std::fs::remove_dir_all(&work)?;
    let line = |key: &str| report.lines().find(|l| l.starts_with(key)).unwrap_or("").trim().to_string();
    println!("soak: {CLIENTS} pgbench clients × {SECONDS} s (predict + recommend + BI report per transaction), refresh and activation every 10 s");
    println!("  {}", line("tps"));
    println!("  {}", line("number of failed transactions"));
    println!(
        "  {} transactions; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0)
    );
    println!(
        "  {refreshes} refreshes and {activations} activations during the run; {} errors{}",
        errors.len(),
        errors.first().map(|e| format!(" (first: {e})")).unwrap_or_default()
    );
    let batch = db.query_one(
        "SELECT count(DISTINCT model_version), count(*), (SELECT count(*) FROM recsys.users) * $1::bigint,
                count(*) FILTER (WHERE rank > $1::bigint) FROM recsys.batch_recommendations",
        &[&i64::from(K)],
    )?;
    let (versions, rows, expected, out_of_range): (i64, i64, i64, i64) = (batch.get(0), batch.get(1), batch.get(2), batch.get(3));
    println!(
        "  batch afterwards: {rows} rows for {expected} expected, {versions} model version(s), {out_of_range} ranks above k: {}",
        if versions == 1 && rows == expected && out_of_range == 0 { "complete and single-version" } else { "NOT complete or mixed" }
    );
    Ok(())
}
