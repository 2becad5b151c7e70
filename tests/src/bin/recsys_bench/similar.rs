//! Nearest-neighbour figures: `recsys_similar_movies` / `recsys_similar_users` latency on a cluster a bench already
//! trained, and (on ml-latest-small) the neighbours of a few famous films, what a user would look at first.
use anyhow::Result;
use postgres::Client;
use std::time::{Duration, Instant};

fn p50_ms(mut samples: Vec<Duration>) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

/// p50 of `recsys_similar_movies(movie, 10)` and `recsys_similar_users(user, 10)` over 200 movies and 200 users
/// (after one warm-up call builds the representation tables), and of `recsys_explain(user, movie)` over 200 pairs.
pub fn latencies(db: &mut Client, shape: &str) -> Result<()> {
    let movies: Vec<i32> = db.query("SELECT movie_id FROM recsys.movies ORDER BY movie_id LIMIT 200", &[])?.iter().map(|r| r.get(0)).collect();
    let users: Vec<i32> = db.query("SELECT user_id FROM recsys.users ORDER BY user_id LIMIT 200", &[])?.iter().map(|r| r.get(0)).collect();
    for (function, ids) in [("recsys_similar_movies", &movies), ("recsys_similar_users", &users)] {
        let sql = format!("SELECT * FROM recsys.{function}($1, 10)");
        db.query(&sql, &[&ids[0]])?;
        let samples = ids
            .iter()
            .map(|id| {
                let started = Instant::now();
                db.query(&sql, &[id]).map(|_| started.elapsed())
            })
            .collect::<Result<Vec<_>, _>>()?;
        println!("{function}(id, 10), {shape}: p50 {:.2} ms ({} ids)", p50_ms(samples), ids.len());
    }
    let explained = users
        .iter()
        .zip(&movies)
        .map(|(user, movie)| {
            let started = Instant::now();
            db.query("SELECT * FROM recsys.recsys_explain($1, $2)", &[user, movie]).map(|_| started.elapsed())
        })
        .collect::<Result<Vec<_>, _>>()?;
    println!("recsys_explain(user, movie), {shape}: p50 {:.2} ms ({} pairs)", p50_ms(explained), users.len());
    Ok(())
}

/// The five nearest movies of a few famous films, by title.
pub fn famous_films(db: &mut Client) -> Result<()> {
    let famous =
        [("Toy Story", 1995), ("The Matrix", 1999), ("Pulp Fiction", 1994), ("The Godfather", 1972), ("Finding Nemo", 2003), ("The Notebook", 2004)];
    for (title, year) in famous {
        let Some(row) = db.query_opt("SELECT movie_id FROM recsys.movies WHERE title = $1 AND year = $2", &[&title, &year])? else {
            println!("{title} ({year}): not in the catalogue");
            continue;
        };
        let movie: i32 = row.get(0);
        let neighbours: Vec<String> = db
            .query("SELECT title, similarity FROM recsys.recsys_similar_movies($1, 5)", &[&movie])?
            .iter()
            .map(|r| format!("{} ({:.2})", r.get::<_, String>(0), r.get::<_, f32>(1)))
            .collect();
        println!("| {title} ({year}) | {} |", neighbours.join("; "));
    }
    Ok(())
}
