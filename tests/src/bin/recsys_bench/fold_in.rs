//! Fold-in on ml-latest-small. `fold-in`: held-out users given 5/10/20 ratings (earliest first, and at random), scored
//! with fold-in, without it, by a retrained model and as visitors (RMSE, Recall@10 beside popularity), and the latency
//! fold-in adds. `fold-in-week`: the data's last week
//! predicted rating by rating with and without the user's earlier last-week ratings folded in.
use super::import_benchmarks::trainer_in;
use anyhow::{ensure, Result};
use postgres::{Client, NoTls};
use recsys_integration_tests::{Loading, TempCluster};
use std::time::{Duration, Instant};

/// Ratings a held-out user gives before the rest is predicted.
const GIVEN: [i64; 3] = [5, 10, 20];

fn train(cluster: &TempCluster) -> Result<(i64, f64)> {
    let started = Instant::now();
    let output = trainer_in(cluster, "bench", &["train", "--activate", "--skip-cold-start"]).output()?;
    ensure!(output.status.success(), "trainer train failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut db = Client::connect(&cluster.connection_string("postgres", "bench"), NoTls)?;
    let version: i64 = db.query_one("SELECT max(version) FROM recsys.models", &[])?.get(0);
    Ok((version, started.elapsed().as_secs_f64()))
}

/// The orders in which a held-out user gives ratings: (name, column of `public.held_out` numbering them).
const ORDERS: [(&str, &str); 2] = [("earliest first", "seq"), ("at random", "seq_random")];

/// Relevant movies of each held-out user: rated ≥ 4 after the first `given` in `order`.
fn relevant_sql(order: &str) -> String {
    format!("relevant AS (SELECT user_id, movie_id FROM public.held_out WHERE {order} > $1 AND rating >= 4)")
}

/// Mean Recall@10 (hits over min(10, relevant), as in the protocol) of the lists `list_sql` returns for each
/// held-out user `u.user_id` with relevant movies.
fn recall_of(db: &mut Client, given: i64, order: &str, list_sql: &str) -> Result<f64> {
    let sql = format!(
        "WITH {} SELECT avg(hits::float8 / least(10, total)) FROM (
             SELECT u.user_id,
                    (SELECT count(*) FROM ({list_sql}) t JOIN relevant r ON r.user_id = u.user_id AND r.movie_id = t.movie_id) AS hits,
                    (SELECT count(*) FROM relevant r WHERE r.user_id = u.user_id) AS total
             FROM (SELECT DISTINCT user_id FROM relevant) u) per_user",
        relevant_sql(order)
    );
    Ok(db.query_one(&sql, &[&given])?.get(0))
}

/// RMSE over the held-out users' ratings after the first `given` in `order`, and Recall@10 of their
/// `recsys_recommend` lists against those rated ≥ 4, with fold-in on or off.
fn evaluate(db: &mut Client, given: i64, order: &str, fold_in: bool) -> Result<(f64, f64)> {
    db.batch_execute(&format!("SET recsys.fold_in = {fold_in}"))?;
    let sql = format!("SELECT sqrt(avg((recsys.recsys_predict(user_id, movie_id) - rating)::float8 ^ 2)) FROM public.held_out WHERE {order} > $1");
    let rmse: f64 = db.query_one(&sql, &[&given])?.get(0);
    let recall = recall_of(db, given, order, "SELECT movie_id FROM recsys.recsys_recommend(u.user_id, 10)")?;
    db.batch_execute("RESET recsys.fold_in")?;
    Ok((rmse, recall))
}

/// Recall@10 of the same users as visitors (`recsys_recommend_for` with their first `given` ratings in `order`) and
/// of the 10 most-rated movies each has not rated.
fn visitor_and_popularity(db: &mut Client, given: i64, order: &str) -> Result<(f64, f64)> {
    let visitor = recall_of(
        db,
        given,
        order,
        &format!(
            "SELECT movie_id FROM recsys.recsys_recommend_for(
                 (SELECT array_agg(h.movie_id ORDER BY h.{order}) FROM public.held_out h WHERE h.user_id = u.user_id AND h.{order} <= $1),
                 (SELECT array_agg(h.rating ORDER BY h.{order}) FROM public.held_out h WHERE h.user_id = u.user_id AND h.{order} <= $1), 10)"
        ),
    )?;
    let popularity = recall_of(
        db,
        given,
        order,
        "SELECT p.movie_id FROM (SELECT movie_id, count(*) AS raters FROM recsys.ratings GROUP BY movie_id) p
         WHERE NOT EXISTS (SELECT 1 FROM recsys.ratings r WHERE r.user_id = u.user_id AND r.movie_id = p.movie_id)
         ORDER BY p.raters DESC, p.movie_id LIMIT 10",
    )?;
    Ok((visitor, popularity))
}

/// What the data allows a per-user offset on top of the average user's predictions: RMSE over the ratings after the
/// first `given` of (a) the offset fitted to the given ratings (their mean residual, shrunk by `OFFSET_SHRINKAGE`
/// ratings) and (b) the oracle offset, the mean residual of the very ratings predicted (no method can know it).
fn offset_references(db: &mut Client, given: i64) -> Result<(f64, f64)> {
    db.batch_execute("SET recsys.fold_in = false")?;
    let row = db.query_one(
        "WITH p AS (SELECT user_id, seq, rating, recsys.recsys_predict(user_id, movie_id) AS predicted FROM public.held_out),
              offsets AS (SELECT user_id,
                                 sum(rating - predicted) FILTER (WHERE seq <= $1) / (count(*) FILTER (WHERE seq <= $1) + $2::float8) AS fitted,
                                 avg(rating - predicted) FILTER (WHERE seq > $1) AS oracle
                          FROM p GROUP BY user_id)
         SELECT sqrt(avg((p.predicted + o.fitted - p.rating)::float8 ^ 2)), sqrt(avg((p.predicted + o.oracle - p.rating)::float8 ^ 2))
         FROM p JOIN offsets o USING (user_id) WHERE p.seq > $1",
        &[&given, &OFFSET_SHRINKAGE],
    )?;
    db.batch_execute("RESET recsys.fold_in")?;
    Ok((row.get(0), row.get(1)))
}

/// Pseudo-ratings of prior on the fitted offset (the usual shrinkage of a user bias, as in Koren's baseline).
const OFFSET_SHRINKAGE: f64 = 10.0;

fn p50_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

pub fn fold_in() -> Result<()> {
    let (cluster, mut db) = imported_cluster("bench-fold-in")?;
    db.batch_execute(
        "CREATE TABLE public.held_out AS
             SELECT r.*, row_number() OVER (PARTITION BY user_id ORDER BY rated_at, movie_id) AS seq,
                    row_number() OVER (PARTITION BY user_id ORDER BY pg_catalog.hashint4(movie_id # user_id), movie_id) AS seq_random
             FROM recsys.ratings r
             WHERE user_id % 10 = 3 AND user_id IN (SELECT user_id FROM recsys.ratings GROUP BY user_id HAVING count(*) >= 40);
         DELETE FROM recsys.ratings r USING public.held_out h WHERE r.user_id = h.user_id AND r.movie_id = h.movie_id;",
    )?;
    db.batch_execute("VACUUM ANALYZE")?;
    let counts = db.query_one("SELECT count(DISTINCT user_id), count(*) FROM public.held_out", &[])?;
    let (users, ratings): (i64, i64) = (counts.get(0), counts.get(1));
    let (base, seconds) = train(&cluster)?;
    println!("held out {users} users ({ratings} ratings); model {base} trained without them in {seconds:.1} s (trainer train --skip-cold-start)");
    println!("fold-in prior (recsys.fold_in_l2) against the held-out users given 10 ratings, model {base}:");
    db.execute("INSERT INTO recsys.ratings SELECT user_id, movie_id, rating, rated_at FROM public.held_out WHERE seq <= 10", &[])?;
    for l2 in [0.05, 0.5, 1.0, 2.0, 3.0, 5.0] {
        db.batch_execute(&format!("SET recsys.fold_in_l2 = {l2}"))?;
        let (rmse, recall) = evaluate(&mut db, 10, "seq", true)?;
        println!("  recsys.fold_in_l2 = {l2}: RMSE {rmse:.4}, Recall@10 {recall:.4}");
    }
    db.batch_execute("RESET recsys.fold_in_l2")?;
    db.execute("DELETE FROM recsys.ratings r USING public.held_out h WHERE r.user_id = h.user_id AND r.movie_id = h.movie_id", &[])?;
    let mut references = Vec::new();
    println!("| ratings given | RMSE fold-in | RMSE average user | RMSE retrained | Recall@10 fold-in | average user | retrained | fold-in / retrained | visitor (recsys_recommend_for) | popularity |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (order_name, order) in ORDERS {
        for given in GIVEN {
            let insert = format!("INSERT INTO recsys.ratings SELECT user_id, movie_id, rating, rated_at FROM public.held_out WHERE {order} <= $1");
            db.execute(&insert, &[&given])?;
            let folded = evaluate(&mut db, given, order, true)?;
            let fallback = evaluate(&mut db, given, order, false)?;
            let (visitor, popularity) = visitor_and_popularity(&mut db, given, order)?;
            if order == "seq" {
                references.push((given, offset_references(&mut db, given)?, fallback.0));
            }
            let (retrained_version, _) = train(&cluster)?;
            let mut fresh = Client::connect(&cluster.connection_string("postgres", "bench"), NoTls)?;
            let retrained = evaluate(&mut fresh, given, order, false)?;
            db.query_one("SELECT recsys.recsys_activate($1)", &[&base])?;
            db.execute("DELETE FROM recsys.ratings r USING public.held_out h WHERE r.user_id = h.user_id AND r.movie_id = h.movie_id", &[])?;
            println!(
                "| {given}, {order_name} | {:.4} | {:.4} | {:.4} (v{retrained_version}) | {:.4} | {:.4} | {:.4} | {:.0} % | {visitor:.4} | {popularity:.4} |",
                folded.0,
                fallback.0,
                retrained.0,
                folded.1,
                fallback.1,
                retrained.1,
                100.0 * folded.1 / retrained.1.max(f64::MIN_POSITIVE)
            );
        }
    }

    println!("what a per-user offset on the average user's predictions reaches (RMSE; the oracle knows the predicted ratings' own mean):");
    for (given, (fitted, oracle), fallback) in references {
        println!(
            "  {given} given: offset fitted to them {fitted:.4} ({:+.1} % against the average user), oracle offset {oracle:.4} ({:+.1} %)",
            (fitted / fallback - 1.0) * 100.0,
            (oracle / fallback - 1.0) * 100.0
        );
    }

    let user: i32 = db.query_one("SELECT min(user_id) FROM public.held_out", &[])?.get(0);
    db.execute(
        "INSERT INTO recsys.ratings SELECT user_id, movie_id, rating, rated_at FROM public.held_out WHERE user_id = $1 AND seq <= 20",
        &[&user],
    )?;
    let mut timed = |fold_in: bool, fresh_each: bool| -> Result<Vec<Duration>> {
        db.batch_execute(&format!("SET recsys.fold_in = {fold_in}"))?;
        let mut samples = Vec::new();
        for round in 0..50 {
            if fresh_each {
                db.execute("UPDATE recsys.ratings SET rated_at = rated_at + make_interval(secs => $2) WHERE user_id = $1 AND movie_id = (SELECT movie_id FROM public.held_out WHERE user_id = $1 AND seq = 1)", &[&user, &(round as f64 + 1.0)])?;
            }
            let started = Instant::now();
            db.query("SELECT * FROM recsys.recsys_recommend($1, 10)", &[&user])?;
            samples.push(started.elapsed());
        }
        Ok(samples)
    };
    let off = p50_ms(timed(false, false)?);
    let cached = p50_ms(timed(true, false)?);
    let refitted = p50_ms(timed(true, true)?);
    println!(
        "recsys_recommend(user, 10) for a user with 20 new ratings, 9,742 movies: fold-in off p50 {off:.2} ms; on, vector cached {cached:.2} ms; on, refitted every call (a rating changed) {refitted:.2} ms"
    );
    Ok(())
}

/// A cluster whose database `bench` holds ml-latest-small with IMDb metadata.
fn imported_cluster(name: &str) -> Result<(TempCluster, Client)> {
    let shared = super::training::shared_data();
    ensure!(shared.join("ml-latest-small/ratings.csv").is_file(), "ml-latest-small not found under {} (set RECSYS_SHARED_DATA)", shared.display());
    let cluster = TempCluster::start(name, Loading::Preloaded, &[])?;
    let db = cluster.fresh_database("bench")?;
    for args in [
        ["import", "movielens", &shared.join("ml-latest-small").display().to_string()],
        ["import", "imdb", &shared.join("imdb").display().to_string()],
    ] {
        let output = trainer_in(&cluster, "bench", &args).output()?;
        ensure!(output.status.success(), "trainer {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok((cluster, db))
}

/// Known users' ratings of the data's last week, the model trained on everything before: each is predicted before
/// it is stored, with the user's earlier last-week ratings folded in or not.
pub fn prospective_week() -> Result<()> {
    let (cluster, mut db) = imported_cluster("bench-fold-in-week")?;
    db.batch_execute(
        "CREATE TABLE public.last_week AS SELECT * FROM recsys.ratings WHERE rated_at > (SELECT max(rated_at) - interval '7 days' FROM recsys.ratings);
         DELETE FROM recsys.ratings r USING public.last_week w WHERE r.user_id = w.user_id AND r.movie_id = w.movie_id;",
    )?;
    let (version, _) = train(&cluster)?;
    let week: Vec<(i32, i32, f32)> = db
        .query(
            "SELECT user_id, movie_id, rating FROM public.last_week
             WHERE user_id IN (SELECT user_id FROM recsys.ratings) ORDER BY rated_at, user_id, movie_id",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let (mut with, mut without) = (0.0, 0.0);
    for (user, movie, rating) in &week {
        for (fold_in, sum) in [(true, &mut with), (false, &mut without)] {
            db.batch_execute(&format!("SET recsys.fold_in = {fold_in}"))?;
            let predicted: f32 = db.query_one("SELECT recsys.recsys_predict($1::int, $2::int)", &[user, movie])?.get(0);
            *sum += f64::from(predicted - rating).powi(2);
        }
        db.execute(
            "INSERT INTO recsys.ratings SELECT user_id, movie_id, rating, rated_at FROM public.last_week WHERE user_id = $1 AND movie_id = $2",
            &[user, movie],
        )?;
    }
    let n = week.len().max(1) as f64;
    println!(
        "prospective: {} ratings of the data's last week by {} known users, model {version} trained on everything before; each predicted before it is stored: RMSE with fold-in of the user's earlier last-week ratings {:.4}, without {:.4}",
        week.len(),
        week.iter().map(|w| w.0).collect::<std::collections::HashSet<_>>().len(),
        (with / n).sqrt(),
        (without / n).sqrt()
    );
    Ok(())
}
