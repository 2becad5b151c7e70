//! Import benchmarks: the trainer binary run as a child process on a throwaway cluster, timed, with its peak RSS.
use anyhow::{bail, Result};
use flate2::write::GzEncoder;
use flate2::Compression;
use recsys_integration_tests::{trainer_binary, Loading, TempCluster};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

pub fn bench_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-data")
}

/// Runs a command to completion; returns wall seconds, peak RSS in MB and standard output.
pub fn measured(command: &mut Command) -> Result<(f64, f64, String)> {
    run_measured(command, false)
}

/// Same, returning standard output followed by standard error (where the trainer reports its progress).
pub fn measured_with_stderr(command: &mut Command) -> Result<(f64, f64, String)> {
    run_measured(command, true)
}

fn run_measured(command: &mut Command, capture_stderr: bool) -> Result<(f64, f64, String)> {
    let started = Instant::now();
    command.stdout(std::process::Stdio::piped());
    if capture_stderr {
        command.stderr(std::process::Stdio::piped());
    }
    let child = command.spawn()?;
    let pid = child.id() as i32;
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(child.stdout.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let stderr = read(child.stderr.map(|p| Box::new(p) as Box<dyn std::io::Read + Send>));
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child process, which nothing else reaps.
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } < 0 {
        bail!("wait4 failed");
    }
    let text = stdout.join().unwrap_or_default() + &stderr.join().unwrap_or_default();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{command:?} failed: {text}");
    }
    Ok((started.elapsed().as_secs_f64(), usage.ru_maxrss as f64 / 1024.0, text))
}

pub fn trainer_in(cluster: &TempCluster, database: &str, args: &[&str]) -> Command {
    let (socket, port) = cluster.socket_and_port();
    let mut command = Command::new(trainer_binary());
    command.args(args).env("PGHOST", socket).env("PGPORT", port.to_string()).env("PGUSER", "postgres").env("PGDATABASE", database);
    command
}

/// The ML-1M-shaped synthetic set under target/bench-data, generated on first use.
pub fn ensure_ml1m_shaped() -> Result<PathBuf> {
    let data = bench_data_dir().join("ml1m-shaped");
    if !data.join("movielens/ratings.synthetic.dat").is_file() {
        let (seconds, _, text) = measured(Command::new(trainer_binary()).args(["synth", "--format", "dat", "--out"]).arg(&data))?;
        print!("synth: {text}");
        println!("synth: {seconds:.2} s");
    }
    Ok(data)
}

pub fn movielens() -> Result<()> {
    let data = ensure_ml1m_shaped()?;
    let cluster = TempCluster::start("bench-import", Loading::Preloaded, &[])?;
    cluster.fresh_database("bench")?;
    let movielens = data.join("movielens").display().to_string();
    let imdb = data.join("imdb").display().to_string();
    for (label, args) in [
        ("first import (bulk)", vec!["import", "movielens", &movielens]),
        ("re-import (merge)", vec!["import", "movielens", &movielens]),
        ("imdb", vec!["import", "imdb", &imdb]),
    ] {
        let (seconds, rss, text) = measured(&mut trainer_in(&cluster, "bench", &args))?;
        println!("{label:<22} {seconds:>6.2} s  peak RSS {rss:>6.1} MB  | {}", text.trim());
    }
    Ok(())
}

/// Writes a title.principals.tsv.gz of about `target_bytes` compressed, whose first rows credit the bench movies
/// and the rest credit titles no database has.
fn write_large_principals(path: &Path, target_bytes: u64) -> Result<()> {
    let file = std::fs::File::create(path)?;
    let mut out = GzEncoder::new(BufWriter::with_capacity(1 << 20, file), Compression::fast());
    writeln!(out, "tconst\tordering\tnconst\tcategory\tjob\tcharacters")?;
    let mut row: u64 = 0;
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    loop {
        for _ in 0..100_000 {
            let title = 10_000_000 + row / 10;
            let (person, character, job) = (next() % 9_999_999, next(), next() % 100_000);
            writeln!(out, "tt{title}\t{}\tnm{person:07}\tactor\tjob{job}\t[\"Character {character:x}\"]", row % 10 + 1)?;
            row += 1;
        }
        out.flush()?;
        if out.get_ref().get_ref().metadata()?.len() >= target_bytes {
            break;
        }
    }
    out.finish()?.flush()?;
    Ok(())
}

pub fn imdb_large() -> Result<()> {
    let dir = bench_data_dir().join("imdb-large");
    std::fs::create_dir_all(&dir)?;
    let principals = dir.join("title.principals.tsv.gz");
    if !principals.is_file() {
        let started = Instant::now();
        write_large_principals(&principals, 1 << 30)?;
        println!("generated {} ({} MB) in {:.1} s", principals.display(), principals.metadata()?.len() >> 20, started.elapsed().as_secs_f64());
    }
    std::fs::write(dir.join("title.basics.tsv"), "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\truntimeMinutes\tgenres\ntt10000000\tmovie\tBench Movie\tBench Movie\t0\t2001\t\\N\t100\tDrama\n")?;
    std::fs::write(dir.join("title.crew.tsv"), "tconst\tdirectors\twriters\ntt10000000\tnm0000001\t\\N\n")?;
    std::fs::write(
        dir.join("name.basics.tsv"),
        "nconst\tprimaryName\tbirthYear\tdeathYear\tprimaryProfession\tknownForTitles\nnm0000001\tBench Director\t\\N\t\\N\tdirector\t\\N\n",
    )?;
    let cluster = TempCluster::start("bench-imdb", Loading::Preloaded, &[])?;
    let mut db = cluster.fresh_database("bench")?;
    db.batch_execute("INSERT INTO recsys.movies (movie_id, title, year, imdb_id) VALUES (1, 'Bench Movie', 2001, 'tt10000000')")?;
    let (seconds, rss, text) = measured(&mut trainer_in(&cluster, "bench", &["import", "imdb", &dir.display().to_string()]))?;
    println!(
        "imdb import over {} MB of title.principals.tsv.gz: {seconds:.1} s, peak RSS {rss:.1} MB | {}",
        principals.metadata()?.len() >> 20,
        text.trim()
    );
    Ok(())
}
