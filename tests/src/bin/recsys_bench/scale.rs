//! `recsys_bench scale`: the whole pipeline at the ML-1M and the ML-25M shape side by side — `trainer synth`, import,
//! the default training command (per phase and per epoch), model load, recsys_recommend exhaustive and
//! two-stage with recall@10, recsys_predict throughput, recsys_predict_new, the batch refresh — as one table.
use super::import_benchmarks::{bench_data_dir, measured, measured_with_stderr, trainer_in};
use anyhow::Result;
use postgres::Client;
use recsys_integration_tests::{trainer_binary, Loading, TempCluster};
use std::process::Command;
use std::time::{Duration, Instant};

/// The training the table measures: the README's command, `trainer train --activate`, whose defaults adapt to the
/// data's size (`trainer/src/train/sizing.rs`). `RECSYS_SCALE_EPOCHS` (e.g. 1, to measure serving only) instead
/// bounds both the rating network and the preference part to that many epochs, with one run and no autoencoder.
fn training_args(epochs: Option<&str>) -> Vec<&str> {
    match epochs {
        None => vec!["train", "--activate"],
        Some(epochs) => vec![
            "train",
            "--activate",
            "--epochs",
            epochs,
            "--preference-epochs",
            epochs,
            "--skip-cold-start",
            "--no-refit",
            "--ranking-users",
            "10",
            "--autoencoder-hidden",
            "0",
        ],
    }
}

/// One row of the table: what was measured and its value per shape.
type Row = (String, Vec<String>);

fn percentile(mut samples: Vec<Duration>, share: f64) -> f64 {
    samples.sort();
    samples[((samples.len() - 1) as f64 * share).round() as usize].as_secs_f64() * 1000.0
}

/// (p50, p99) in ms of `sql` run once per user, and the movie lists it returned.
fn latencies(db: &mut Client, sql: &str, users: &[i32]) -> Result<(f64, f64, Vec<Vec<i32>>)> {
    let mut samples = Vec::new();
    let mut lists = Vec::new();
    for user in users {
        let started = Instant::now();
        let rows = db.query(sql, &[user])?;
        samples.push(started.elapsed());
        lists.push(rows.iter().map(|r| r.get::<_, i32>(0)).collect());
    }
    Ok((percentile(samples.clone(), 0.5), percentile(samples, 0.99), lists))
}

/// The memory of `db`'s backend.
fn backend_memory(db: &mut Client) -> Result<super::memory::BackendMemory> {
    let pid: i32 = db.query_one("SELECT pg_backend_pid()", &[])?.get(0);
    super::memory::backend_memory(pid)
}

/// The first backend's memory: private, of which the shared files' pages it alone touched, and beside it the pages of
/// the server's shared memory (buffers) it alone touched.
fn first_backend_memory(db: &mut Client) -> Result<String> {
    let memory = backend_memory(db)?;
    Ok(format!(
        "{} MB (of which shared-file pages {} MB); server shared memory only it touched {} MB",
        memory.private_mb(),
        memory.shared_file_kb / 1024,
        memory.server_shared_kb / 1024
    ))
}

/// Private memory (MB) of three more backends, each after loading the model and after 20 recommendations in each
/// of `modes` (`recsys.retrieval` values): the medians, loaded and ranked. With `recsys.shared_tables` they map the
/// files the first backend wrote.
fn other_backends(cluster: &TempCluster, users: &[i32], modes: &[&str]) -> Result<(u64, u64)> {
    let mut backends = Vec::new();
    let (mut loaded, mut ranked) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let mut db = Client::connect(&cluster.connection_string("postgres", "bench"), postgres::NoTls)?;
        db.query_one("SELECT recsys.recsys_predict(1, 1)", &[])?;
        loaded.push(backend_memory(&mut db)?.private_mb());
        for mode in modes {
            db.batch_execute(&format!("SET recsys.retrieval = {mode}"))?;
            latencies(&mut db, "SELECT movie_id FROM recsys.recsys_recommend($1, 10)", &users[..20])?;
        }
        ranked.push(backend_memory(&mut db)?.private_mb());
        backends.push(db);
    }
    loaded.sort();
    ranked.sort();
    Ok((loaded[1], ranked[1]))
}

/// `other_backends` (two-stage) after `movies` of the catalogue were renamed and one movie added since the stored
/// snapshot: new backends patch the snapshot with the changed movies instead of encoding the catalogue.
fn backends_after_catalogue_change(cluster: &TempCluster, db: &mut Client, users: &[i32], movies: &[i32]) -> Result<(u64, u64)> {
    db.execute("UPDATE recsys.movies SET title = title || ' (restored)' WHERE movie_id = ANY($1)", &[&movies])?;
    db.batch_execute(
        "INSERT INTO recsys.movies (movie_id, title, year, runtime_minutes) VALUES (2000000000, 'A Film Added After Training', 2026, 97)",
    )?;
    other_backends(cluster, users, &["two_stage"])
}

/// `recsys_predict` throughput over one million (user, movie) rows of recsys.ratings, the same rows on every call of
/// a session (kept in a temporary table on the first: heap order changes with a re-import, and with it the share of
/// rows whose users have ratings newer than the model, whom each call folds in).
fn predict_rows_per_second(db: &mut Client) -> Result<f64> {
    db.batch_execute("CREATE TEMP TABLE IF NOT EXISTS predict_sample AS SELECT user_id, movie_id FROM recsys.ratings LIMIT 1000000")?;
    let started = Instant::now();
    let sql = "SELECT count(recsys.recsys_predict(user_id, movie_id)) FROM predict_sample";
    let rows: i64 = db.query_one(sql, &[])?.get(0);
    Ok(rows as f64 / started.elapsed().as_secs_f64())
}

/// Size of this database's shared table files (`recsys.shared_tables`).
fn shared_files_mb(db: &mut Client) -> Result<u64> {
    let row =
        db.query_one("SELECT current_setting('data_directory'), (SELECT oid::int8 FROM pg_database WHERE datname = current_database())", &[])?;
    let (data_dir, oid): (String, i64) = (row.get(0), row.get(1));
    let mut bytes = 0;
    for entry in std::fs::read_dir(format!("{data_dir}/pg_recsys"))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("model-{oid}-")) || name.starts_with(&format!("catalogue-{oid}-")) {
            bytes += entry.metadata()?.len();
        }
    }
    Ok(bytes / (1024 * 1024))
}

/// Every figure of one shape, in the table's row order.
fn measure(shape: &str) -> Result<Vec<(String, String)>> {
    let mut figures = Vec::new();
    let mut add = |name: &str, value: String| {
        println!("  {shape}: {name}: {value}");
        figures.push((name.to_string(), value));
    };
    let data = bench_data_dir().join(format!("scale-{shape}"));
    if !data.join("movielens/ratings.synthetic.dat").is_file() {
        let (seconds, peak, _) = measured(Command::new(trainer_binary()).args(["synth", "--format", "dat", "--shape", shape, "--out"]).arg(&data))?;
        add("trainer synth", format!("{seconds:.0} s, {peak:.0} MB"));
    } else {
        add("trainer synth", "(cached)".into());
    }
    let cluster = TempCluster::start(&format!("bench-scale-{shape}"), Loading::Preloaded, &["shared_buffers=2GB", "max_wal_size=8GB"])?;
    let mut db = cluster.fresh_database("bench")?;
    let (movielens, imdb) = (data.join("movielens").display().to_string(), data.join("imdb").display().to_string());
    let (seconds, peak, _) = measured(&mut trainer_in(&cluster, "bench", &["import", "movielens", &movielens]))?;
    add("import movielens (first)", format!("{seconds:.0} s, {peak:.0} MB"));
    let (seconds, peak, _) = measured(&mut trainer_in(&cluster, "bench", &["import", "movielens", &movielens]))?;
    add("re-import, nothing new", format!("{seconds:.0} s, {peak:.0} MB"));
    let (seconds, peak, _) = measured(&mut trainer_in(&cluster, "bench", &["import", "imdb", &imdb]))?;
    add("import imdb", format!("{seconds:.0} s, {peak:.0} MB"));
    let epochs = std::env::var("RECSYS_SCALE_EPOCHS").ok();
    let (seconds, peak, report) = measured_with_stderr(&mut trainer_in(&cluster, "bench", &training_args(epochs.as_deref())))?;
    add(
        &match epochs.as_deref() {
            None => "trainer train --activate, the defaults (wall, peak RSS)".to_string(),
            Some(epochs) => format!("trainer train, {epochs} epochs at most (wall, peak RSS)"),
        },
        format!("{seconds:.0} s, {:.1} GB", peak / 1024.0),
    );
    add("  batch size, learning rate", report.lines().find_map(|l| l.strip_prefix("batch size ")).unwrap_or("-").to_string());
    let epochs = super::training::epoch_seconds(&report);
    let mean = epochs.iter().sum::<f64>() / epochs.len().max(1) as f64;
    let last = report.lines().rev().find_map(|l| l.split("validation RMSE ").nth(1)?.split_whitespace().next()).unwrap_or("-");
    add("  epochs run, mean epoch, last validation RMSE", format!("{}, {mean:.0} s, {last}", epochs.len()));
    let preference = report.lines().find(|l| l.trim_start().starts_with("preference: best epoch"));
    add("  preference part (in the hold-out run)", preference.and_then(|l| l.rsplit(") ").next()).unwrap_or("-").to_string());
    let sized = report.lines().find_map(|l| l.split(" ratings): ").nth(1)?.split(" (flags override").next().map(str::to_string));
    add("  defaults chosen for the data's size", sized.unwrap_or_else(|| "all (not large data)".into()));
    let phases = [
        "load data",
        "title embeddings",
        "hold-out run",
        "ranking metrics",
        "cold-start run",
        "cold-start ranking",
        "refit on all ratings",
        "registration",
    ];
    for phase in phases {
        let line = report.lines().find_map(|l| l.trim().strip_prefix(&format!("[{phase}: "))?.strip_suffix(']').map(str::to_string));
        add(&format!("  phase: {phase}"), line.unwrap_or_else(|| "-".into()));
    }

    let started = Instant::now();
    db.query_one("SELECT recsys.recsys_predict(1, 1)", &[])?;
    add("model load (first call)", format!("{:.0} ms", started.elapsed().as_secs_f64() * 1000.0));
    add("backend private memory, model loaded", first_backend_memory(&mut db)?);
    let users: Vec<i32> =
        db.query("SELECT user_id FROM recsys.users ORDER BY pg_catalog.hashint4(user_id) LIMIT 200", &[])?.iter().map(|r| r.get(0)).collect();
    let recommend = "SELECT movie_id FROM recsys.recsys_recommend($1, 10)";
    db.batch_execute("SET recsys.retrieval = exhaustive")?;
    let (p50, p99, exhaustive) = latencies(&mut db, recommend, &users)?;
    add("recsys_recommend exhaustive p50 / p99", format!("{p50:.1} / {p99:.1} ms"));
    db.batch_execute("SET recsys.retrieval = two_stage")?;
    let started = Instant::now();
    db.query(recommend, &[&users[0]])?;
    add("two-stage fit (first two-stage call)", format!("{:.0} ms", started.elapsed().as_secs_f64() * 1000.0));
    let (p50, p99, two_stage) = latencies(&mut db, recommend, &users)?;
    add("recsys_recommend two-stage p50 / p99", format!("{p50:.1} / {p99:.1} ms"));
    let hits: usize = two_stage.iter().zip(&exhaustive).map(|(t, e)| t.iter().filter(|m| e.contains(m)).count()).sum();
    let total: usize = exhaustive.iter().map(Vec::len).sum();
    add("two-stage recall@10 vs exhaustive", format!("{:.3} ({} users)", hits as f64 / total.max(1) as f64, users.len()));
    add("backend private memory after both", first_backend_memory(&mut db)?);
    db.batch_execute("RESET recsys.retrieval")?;
    let (loaded, ranked) = other_backends(&cluster, &users, &["exhaustive", "two_stage"])?;
    add("3 more backends: private memory loaded / after rankings (median)", format!("{loaded} / {ranked} MB"));
    add("shared table files under $PGDATA/pg_recsys", format!("{} MB", shared_files_mb(&mut db)?));
    let movies: Vec<i32> =
        db.query("SELECT movie_id FROM recsys.movies ORDER BY pg_catalog.hashint4(movie_id) LIMIT 50", &[])?.iter().map(|r| r.get(0)).collect();
    let (loaded, ranked) = backends_after_catalogue_change(&cluster, &mut db, &users, &movies)?;
    add(
        "3 new backends after 50 titles renamed and 1 movie added: private memory loaded / after rankings (median)",
        format!("{loaded} / {ranked} MB"),
    );
    db.query("SELECT recsys.recsys_similar_movies($1, 10)", &[&movies[0]])?;
    let (p50, _, _) = latencies(&mut db, "SELECT movie_id FROM recsys.recsys_similar_movies($1, 10)", &movies)?;
    add("recsys_similar_movies(movie, 10) p50", format!("{p50:.1} ms"));
    db.query("SELECT recsys.recsys_similar_users($1, 10)", &[&users[0]])?;
    let (p50, _, _) = latencies(&mut db, "SELECT user_id FROM recsys.recsys_similar_users($1, 10)", &users[..50])?;
    add("recsys_similar_users(user, 10) p50", format!("{p50:.1} ms"));

    add("recsys_predict over 1M rating rows, none newer than the model", format!("{:.0} rows/s", predict_rows_per_second(&mut db)?));
    let mut samples = Vec::new();
    for title in 0..30 {
        let started = Instant::now();
        let sql = "SELECT recsys.recsys_predict_new(1, $1, ARRAY['Drama'], NULL, NULL, 120, 2024)";
        db.query_one(sql, &[&format!("A Never Seen Title Number {title}")])?;
        samples.push(started.elapsed());
    }
    let p50 = percentile(samples, 0.5);
    add("recsys_predict_new p50", format!("{p50:.1} ms"));
    let (next_week, added) = super::next_week::next_week_release(&data)?;
    let (seconds, peak, _) = measured(&mut trainer_in(&cluster, "bench", &["import", "movielens", &next_week.display().to_string()]))?;
    add("re-import, next week (1 % new ratings)", format!("{seconds:.0} s, {peak:.0} MB ({added} new rows)"));
    add("recsys_predict over 1M rating rows, 1 % of ratings newer than the model", format!("{:.0} rows/s", predict_rows_per_second(&mut db)?));
    for settings in ["RESET recsys.retrieval", "SET recsys.retrieval = two_stage"] {
        let started = Instant::now();
        db.batch_execute(&format!("{settings}; CALL recsys.recsys_refresh_batch(10, 2)"))?;
        let row = db.query_one(
            "SELECT recommendations, details->>'retrieval' FROM recsys.quality_log WHERE kind = 'refresh' ORDER BY run_id DESC LIMIT 1",
            &[],
        )?;
        let (rows, retrieval): (i64, String) = (row.get(0), row.get(1));
        add(&format!("CALL recsys_refresh_batch(10), 2 threads, {retrieval}"), format!("{:.0} s, {rows} rows", started.elapsed().as_secs_f64()));
        if retrieval != "exhaustive" {
            break;
        }
    }
    Ok(figures)
}

/// Runs both shapes (ML-1M first; `RECSYS_SCALE_SHAPES=ml-1m` for one) and prints the table.
pub fn scale() -> Result<()> {
    let chosen = std::env::var("RECSYS_SCALE_SHAPES").unwrap_or_else(|_| "ml-1m,ml-25m".into());
    let shapes: Vec<&str> = chosen.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let mut rows: Vec<Row> = Vec::new();
    for (column, shape) in shapes.iter().copied().enumerate() {
        for (name, value) in measure(shape)? {
            match rows.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(value),
                None => rows.push((name, std::iter::repeat_n(String::new(), column).chain([value]).collect())),
            }
        }
    }
    let described = |shape: &str| match shape {
        "ml-1m" => "ML-1M shape (6,040 users, 3,706 movies, 1.0M ratings)".to_string(),
        "ml-25m" => "ML-25M shape (162,541 users, 62,423 movies, 25.0M ratings)".to_string(),
        other => other.to_string(),
    };
    println!("\n| what | {} |", shapes.iter().map(|s| described(s)).collect::<Vec<_>>().join(" | "));
    println!("|---|{}", "---|".repeat(shapes.len()));
    for (name, mut values) in rows {
        values.resize(shapes.len(), "not run".into());
        println!("| {name} | {} |", values.join(" | "));
    }
    Ok(())
}
