//! `recsys_bench`: prints pg_recsys performance figures measured on throwaway clusters with the installed
//! extension. Figures only; nothing here asserts a timing.
//!   recsys_bench backend      connection cost with and without preload, with and without fast exit
//!   recsys_bench import       `trainer synth` ML-1M-shaped data, then `trainer import`: ratings/s and peak RSS
//!   recsys_bench imdb-large   `trainer import imdb` over a generated ~1 GB title.principals.tsv.gz: peak RSS
//!   recsys_bench serving      recsys_predict rows/s, recsys_recommend, recsys_similar_* and recsys_predict_new latency,
//!                             new connections, catalogue edits, backend memory
//!   recsys_bench recommend-mls  recsys_recommend and recsys_similar_* on ml-latest-small's 9,742 movies
//!   recsys_bench training     the default run on ml-latest-small (per phase) beside the PyTorch replica, then
//!                             10 epochs and the default run over the ML-1M-shaped set: wall time, peak RSS
//!   recsys_bench accuracy     RMSE/MAE/ranking on ml-latest-small (random and cold-movie splits) and ML-100K u1
//!   recsys_bench refit        prospective RMSE on ml-latest-small split by time, served model refitted or not
//!   recsys_bench step-settings  the automatic batch size and bfloat16 against float32 and batches of 256 (ML-1M shape)
//!   recsys_bench soak         16 pgbench readers for 60 s while the batch is refreshed and the model switched
//!   recsys_bench fold-in      held-out users of ml-latest-small given 5/10/20 ratings: fold-in vs the average user vs
//!                             a retrained model (RMSE, Recall@10), and the latency fold-in adds
//!   recsys_bench fold-in-week the data's last week predicted with and without fold-in (prospective RMSE)
//!   recsys_bench scale        the whole pipeline at the ML-1M and ML-25M shapes side by side (one table)
use anyhow::{bail, Result};
use postgres::{Client, NoTls};
use recsys_integration_tests::{Loading, TempCluster};
use std::time::{Duration, Instant};

mod fold_in;
mod import_benchmarks;
mod latency;
mod memory;
mod next_week;
mod scale;
mod serving;
mod similar;
mod soak;
mod training;

const CONNECTIONS: usize = 30;

fn main() -> Result<()> {
    match std::env::args().nth(1).as_deref().unwrap_or("backend") {
        "backend" => backend(),
        "import" => import_benchmarks::movielens(),
        "imdb-large" => import_benchmarks::imdb_large(),
        "serving" => serving::serving(),
        "recommend-mls" => serving::recommend_mls(),
        "recommend-p50" => latency::recommend_p50(),
        "training" => training::training(),
        "accuracy" => training::accuracy(),
        "refit" => training::refit(),
        "step-settings" => training::step_settings(),
        "soak" => soak::soak(),
        "fold-in" => fold_in::fold_in(),
        "fold-in-week" => fold_in::prospective_week(),
        "scale" => scale::scale(),
        other => {
            bail!("unknown benchmark {other:?}; available: backend, import, imdb-large, serving, recommend-mls, recommend-p50, training, accuracy, refit, step-settings, soak, fold-in, fold-in-week, scale")
        }
    }
}

fn backend() -> Result<()> {
    println!("connection cost, {CONNECTIONS} connections per row, each: connect, recsys_version_info() twice, disconnect");
    println!(
        "{:<10} {:<10} {:>11} {:>15} {:>15} {:>13} {:>13} {:>16}",
        "loading", "fast_exit", "connect p50", "1st call p50", "2nd call p50", "backend RSS", "private", "exit+run CPU/conn"
    );
    for loading in [Loading::Preloaded, Loading::OnDemand] {
        let cluster = TempCluster::start("bench-backend", loading, &[])?;
        cluster.connect()?.batch_execute("CREATE EXTENSION pg_recsys")?;
        for fast_exit in [true, false] {
            let row = measure_connections(&cluster, fast_exit)?;
            println!(
                "{:<10} {:<10} {:>11} {:>15} {:>15} {:>10} MB {:>10} MB {:>13} ms",
                format!("{loading:?}"),
                if fast_exit { "on" } else { "off" },
                millis(row.connect),
                millis(row.first_call),
                millis(row.second_call),
                row.rss_kb / 1024,
                row.private_kb / 1024,
                format!("{:.1}", row.child_cpu_ms_per_connection)
            );
        }
    }
    Ok(())
}

struct ConnectionFigures {
    connect: Duration,
    first_call: Duration,
    second_call: Duration,
    rss_kb: u64,
    private_kb: u64,
    child_cpu_ms_per_connection: f64,
}

fn measure_connections(cluster: &TempCluster, fast_exit: bool) -> Result<ConnectionFigures> {
    let options = if fast_exit { "" } else { " options='-c recsys.fast_exit=off'" };
    let connection_string = format!("{}{options}", cluster.connection_string("postgres", "postgres"));
    let postmaster = cluster.postmaster_pid()?;
    let (mut connects, mut firsts, mut seconds) = (Vec::new(), Vec::new(), Vec::new());
    let (mut rss_kb, mut private_kb) = (0, 0);
    let cpu_before = children_cpu_ms(postmaster)?;
    for _ in 0..CONNECTIONS {
        let started = Instant::now();
        let mut client = Client::connect(&connection_string, NoTls)?;
        connects.push(started.elapsed());
        for timings in [&mut firsts, &mut seconds] {
            let started = Instant::now();
            client.query_one("SELECT libtorch_version FROM recsys.recsys_version_info()", &[])?;
            timings.push(started.elapsed());
        }
        let backend: i32 = client.query_one("SELECT pg_backend_pid()", &[])?.get(0);
        let memory = memory::backend_memory(backend)?;
        (rss_kb, private_kb) = (memory.rss_kb, memory.private_kb);
        drop(client);
    }
    std::thread::sleep(Duration::from_millis(500));
    let cpu_after = children_cpu_ms(postmaster)?;
    Ok(ConnectionFigures {
        connect: median(connects),
        first_call: median(firsts),
        second_call: median(seconds),
        rss_kb,
        private_kb,
        child_cpu_ms_per_connection: (cpu_after - cpu_before) / CONNECTIONS as f64,
    })
}

/// CPU time (user + system) of the postmaster's exited and reaped children, in milliseconds.
fn children_cpu_ms(pid: i32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after_name = &stat[stat.rfind(')').unwrap_or(0) + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields[13].parse::<f64>()? + fields[14].parse::<f64>()?;
    // SAFETY: sysconf has no preconditions.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Ok(ticks * 1000.0 / ticks_per_second)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn millis(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}
