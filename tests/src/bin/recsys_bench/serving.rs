//! Serving benchmarks: the installed extension answering SQL. `serving`: a model the trainer registered on the
//! ML-1M-shaped synthetic set (one training epoch and three of the item autoencoder, which serving blends in: speed,
//! not accuracy, is measured here); `recommend-mls`: a model trained with every default on ml-latest-small.
use super::import_benchmarks::{ensure_ml1m_shaped, trainer_in};
use anyhow::Result;
use postgres::{Client, NoTls};
use recsys_integration_tests::{Loading, TempCluster};
use std::path::Path;
use std::time::{Duration, Instant};

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// One training epoch and three of the autoencoder: a model to measure speed with, quickly.
const QUICK_TRAINING: &[&str] = &["train", "--activate", "--epochs", "1", "--skip-cold-start", "--ranking-users", "10", "--autoencoder-epochs", "3"];

/// A preloaded cluster whose database `bench` holds the given data and an active model trained by `training`.
fn trained_cluster(name: &str, movielens: &Path, imdb: &Path, training: &[&str]) -> Result<(TempCluster, Client)> {
    let cluster = TempCluster::start(name, Loading::Preloaded, &[])?;
    let db = cluster.fresh_database("bench")?;
    let (movielens, imdb) = (movielens.display().to_string(), imdb.display().to_string());
    for args in [vec!["import", "movielens", movielens.as_str()], vec!["import", "imdb", imdb.as_str()], training.to_vec()] {
        let status = trainer_in(&cluster, "bench", &args.iter().map(|s| s.as_ref()).collect::<Vec<&str>>()).output()?;
        anyhow::ensure!(status.status.success(), "trainer {args:?} failed: {}", String::from_utf8_lossy(&status.stderr));
    }
    Ok((cluster, db))
}

pub fn serving() -> Result<()> {
    let data = ensure_ml1m_shaped()?;
    let (cluster, mut db) = trained_cluster("bench-serving", &data.join("movielens"), &data.join("imdb"), QUICK_TRAINING)?;
    let started = Instant::now();
    db.query_one("SELECT recsys.recsys_predict(1, 1)", &[])?;
    println!("model load in a backend (first call): {:.1} ms", ms(started.elapsed()));
    for round in 0..2 {
        let started = Instant::now();
        db.query_one(
            "SELECT count(recsys.recsys_predict(user_id, movie_id)) FROM (SELECT user_id, movie_id FROM recsys.ratings LIMIT 100000) r",
            &[],
        )?;
        let seconds = started.elapsed().as_secs_f64();
        println!("recsys_predict over 100,000 rating rows (run {}): {seconds:.2} s = {:.0} rows/s", round + 1, 100_000.0 / seconds);
    }
    let recommend: Vec<Duration> = (1..=200)
        .map(|user: i32| {
            let started = Instant::now();
            db.query("SELECT * FROM recsys.recsys_recommend($1, 10)", &[&(user * 29 % 6040 + 1)]).map(|_| started.elapsed())
        })
        .collect::<Result<_, _>>()?;
    println!("recsys_recommend(user, 10) over 3,706 movies: p50 {:.2} ms (200 users)", ms(median(recommend)));
    super::similar::latencies(&mut db, "3,706 movies, 6,040 users (ML-1M shape)")?;
    for threads in [1, 2] {
        db.batch_execute(&format!("SET recsys.torch_threads = {threads}"))?;
        let fresh_titles: Vec<Duration> = (0..50)
            .map(|i| {
                let started = Instant::now();
                let title = format!("A Never Seen Title Number {i} With {threads} Threads");
                db.query_one("SELECT recsys.recsys_predict_new(1, $1, ARRAY['Drama'], NULL, NULL, 120, 2024)", &[&title]).map(|_| started.elapsed())
            })
            .collect::<Result<_, _>>()?;
        println!(
            "recsys_predict_new with a new title, {threads} thread(s): p50 {:.2} ms (50 titles, MiniLM loaded by the first)",
            ms(median(fresh_titles))
        );
    }
    db.batch_execute("RESET recsys.torch_threads")?;
    for threads in [1, 2] {
        let started = Instant::now();
        db.batch_execute(&format!("CALL recsys.recsys_refresh_batch(10, {threads})"))?;
        let rows: i64 = db.query_one("SELECT count(*) FROM recsys.batch_recommendations", &[])?.get(0);
        println!("CALL recsys_refresh_batch(10) with {threads} libtorch thread(s): {:.2} s ({rows} rows)", started.elapsed().as_secs_f64());
    }
    let mut first_calls = Vec::new();
    let (mut private_kb, mut with_minilm_kb) = (Vec::new(), Vec::new());
    let mut open_connections = Vec::new();
    for connection in 0..10 {
        let started = Instant::now();
        let mut client = Client::connect(&cluster.connection_string("postgres", "bench"), NoTls)?;
        client.query_one("SELECT recsys.recsys_predict(1, 1)", &[])?;
        first_calls.push(started.elapsed());
        let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[])?.get(0);
        private_kb.push(super::memory::backend_memory(pid)?.private_kb);
        let title = format!("Another Never Seen Title {connection}");
        client.query_one("SELECT recsys.recsys_predict_new(1, $1, ARRAY['Drama'], NULL, NULL, 120, 2024)", &[&title])?;
        with_minilm_kb.push(super::memory::backend_memory(pid)?.private_kb);
        open_connections.push(client);
    }
    let mut patched = Vec::new();
    let mut reencoded = Vec::new();
    for round in 0..5 {
        db.batch_execute(&format!("UPDATE recsys.movies SET runtime_minutes = runtime_minutes + 1 WHERE movie_id = {}", round + 1))?;
        let started = Instant::now();
        open_connections[0].query_one("SELECT recsys.recsys_predict(1, 1)", &[])?;
        patched.push(started.elapsed());
        let started = Instant::now();
        Client::connect(&cluster.connection_string("postgres", "bench"), NoTls)?.query_one("SELECT recsys.recsys_predict(1, 1)", &[])?;
        reencoded.push(started.elapsed());
    }
    println!(
        "after an edit of one movie: next statement of an open connection (re-encodes that movie) p50 {:.1} ms; a new connection (encodes the whole catalogue) p50 {:.1} ms",
        ms(median(patched)),
        ms(median(reencoded))
    );
    let p50_mb = |mut kb: Vec<u64>| {
        kb.sort();
        kb[kb.len() / 2] / 1024
    };
    println!("new connection + first recsys_predict: p50 {:.1} ms", ms(median(first_calls)));
    println!(
        "backend private memory (Private_Clean + Private_Dirty), p50 of 10 open connections: {} MB with the model loaded, {} MB once recsys_predict_new has used MiniLM (its weights are pages of one file every backend maps)",
        p50_mb(private_kb),
        p50_mb(with_minilm_kb)
    );
    Ok(())
}

/// `recsys_recommend` latency on ml-latest-small (9.7k movies) with IMDb metadata, read from `RECSYS_SHARED_DATA`
/// (default: ../shared/data next to the checkout; never copied into the project).
pub fn recommend_mls() -> Result<()> {
    let shared = std::env::var_os("RECSYS_SHARED_DATA")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    anyhow::ensure!(
        shared.join("ml-latest-small/ratings.csv").is_file(),
        "ml-latest-small not found under {} (set RECSYS_SHARED_DATA)",
        shared.display()
    );
    let (_cluster, mut db) = trained_cluster("bench-mls", &shared.join("ml-latest-small"), &shared.join("imdb"), &["train", "--activate"])?;
    let movies: i64 = db.query_one("SELECT count(*) FROM recsys.movies", &[])?.get(0);
    let users: Vec<i32> = db.query("SELECT user_id FROM recsys.users ORDER BY user_id LIMIT 200", &[])?.iter().map(|r| r.get(0)).collect();
    let mut lists: Vec<Vec<Vec<(i32, f32)>>> = Vec::new();
    for exact in [true, false] {
        for threads in [1, 2] {
            db.batch_execute(&format!(
                "SET recsys.torch_threads = {threads}; SET recsys.bfloat16 = {}; SELECT * FROM recsys.recsys_recommend(1, 10)",
                !exact
            ))?;
            let mut samples = Vec::new();
            let mut results = Vec::new();
            for user in &users {
                let started = Instant::now();
                let rows = db.query("SELECT movie_id, score FROM recsys.recsys_recommend($1, 10)", &[user])?;
                samples.push(started.elapsed());
                results.push(rows.iter().map(|r| (r.get(0), r.get(1))).collect());
            }
            let ranking = if exact { "float32" } else { "bfloat16 + exact rescoring" };
            println!(
                "recsys_recommend(user, 10) over {movies} movies (ml-latest-small), {ranking}, {threads} thread(s): p50 {:.2} ms ({} users)",
                ms(median(samples)),
                users.len()
            );
            lists.push(results);
        }
    }
    let movies_of = |list: &Vec<(i32, f32)>| list.iter().map(|(movie, _)| *movie).collect::<Vec<i32>>();
    let differing = lists[0].iter().zip(&lists[3]).filter(|(exact, fast)| movies_of(exact) != movies_of(fast)).count();
    let score_gap = lists[0].iter().flatten().zip(lists[3].iter().flatten()).map(|(a, b)| (a.1 - b.1).abs()).fold(0.0f32, f32::max);
    println!(
        "users whose top-10 movies or order differ between float32 and bfloat16 ranking: {differing} of {}; largest score difference {score_gap:.1e}",
        users.len()
    );
    db.batch_execute("RESET recsys.torch_threads; RESET recsys.bfloat16")?;
    let fresh_titles: Vec<Duration> = (0..50)
        .map(|i| {
            let started = Instant::now();
            db.query_one(
                "SELECT recsys.recsys_predict_new(1, $1, ARRAY['Drama'], NULL, NULL, 120, 2024)",
                &[&format!("A Never Seen Title Number {i}")],
            )
            .map(|_| started.elapsed())
        })
        .collect::<Result<_, _>>()?;
    println!("recsys_predict_new with a new title: p50 {:.2} ms (50 titles, MiniLM loaded by the first)", ms(median(fresh_titles)));
    for threads in [1, 2] {
        let started = Instant::now();
        db.batch_execute(&format!("CALL recsys.recsys_refresh_batch(10, {threads})"))?;
        let rows: i64 = db.query_one("SELECT count(*) FROM recsys.batch_recommendations", &[])?.get(0);
        println!("CALL recsys_refresh_batch(10) with {threads} libtorch thread(s): {:.2} s ({rows} rows)", started.elapsed().as_secs_f64());
    }
    super::similar::latencies(&mut db, &format!("{movies} movies (ml-latest-small)"))?;
    super::similar::famous_films(&mut db)?;
    Ok(())
}
