//! `recsys_bench recommend-p50`: `recsys_recommend(user, 10)` latency on an existing database (`RECSYS_BENCH_DATABASE`
//! on the server the PG* variables name, e.g. a cluster holding the ML-25M shape), timed inside the server so client round trips do not
//! count; run it once per build to compare builds in interleaved rounds.
use anyhow::{Context, Result};
use postgres::{Client, NoTls};

/// Users each run lists for: the first of `recsys.users` by `hashint4(user_id)`, a fixed spread-out sample.
const USERS: i32 = 400;

/// One run in a new session: two warm-up calls, then the p50 over `USERS` users, timed with `clock_timestamp()`.
const RUN: &str = "DO $$ DECLARE u int; t0 timestamptz; ts float8[] := '{}'; BEGIN
  FOR u IN SELECT user_id FROM recsys.users ORDER BY pg_catalog.hashint4(user_id) LIMIT %USERS% LOOP
    t0 := pg_catalog.clock_timestamp(); PERFORM * FROM recsys.recsys_recommend(u, 10);
    ts := ts || extract(epoch FROM pg_catalog.clock_timestamp() - t0) * 1000; END LOOP;
  PERFORM pg_catalog.set_config('recsys_bench.p50', (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY x) FROM unnest(ts) x)::text, false);
END $$";

fn connection_string() -> String {
    let variable = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_string());
    format!(
        "host={} port={} user={} dbname={}",
        variable("PGHOST", "/var/run/postgresql"),
        variable("PGPORT", "5432"),
        variable("PGUSER", "postgres"),
        variable("RECSYS_BENCH_DATABASE", "recsys")
    )
}

/// Prints the catalogue size and the p50 of `RECSYS_BENCH_RUNS` runs (default 2), each in a new session.
pub fn recommend_p50() -> Result<()> {
    let runs: usize = std::env::var("RECSYS_BENCH_RUNS").ok().map(|r| r.parse()).transpose().context("RECSYS_BENCH_RUNS")?.unwrap_or(2);
    for run in 1..=runs {
        let mut db = Client::connect(&connection_string(), NoTls).context("connecting with the PG* variables")?;
        let movies: i64 = db.query_one("SELECT count(*) FROM recsys.movies", &[])?.get(0);
        let first: i32 = db.query_one("SELECT min(user_id) FROM recsys.users", &[])?.get(0);
        for _ in 0..2 {
            db.query("SELECT * FROM recsys.recsys_recommend($1, 10)", &[&first])?;
        }
        db.batch_execute(&RUN.replace("%USERS%", &USERS.to_string()))?;
        let p50: String = db.query_one("SELECT pg_catalog.current_setting('recsys_bench.p50')", &[])?.get(0);
        println!("run {run}: recsys_recommend(user, 10) over {movies} movies, {USERS} users: p50 {:.2} ms", p50.parse::<f64>()?);
    }
    Ok(())
}
