//! `trainer import movielens`: parses a MovieLens release and merges it into the recsys tables in one
//! transaction (COPY into temporary staging tables, then set-based upserts). Re-imports add new rows and keep
//! the latest rating per user and movie; a failure leaves the database as it was.
use super::copy::CopyWriter;
use super::movielens::{self, BadLinePolicy, MovieLensFiles};
use anyhow::{bail, Context, Result};
use postgres::{Client, Transaction};
use std::path::Path;
use std::time::Instant;

const STAGING: &str = "
CREATE TEMP TABLE stage_movies (movie_id integer, title text, year integer, imdb_id text, tmdb_id integer) ON COMMIT DROP;
CREATE TEMP TABLE stage_movie_genres (movie_id integer, genre text) ON COMMIT DROP;
CREATE TEMP TABLE stage_users (user_id integer, gender text, age integer, occupation text, zip_code text) ON COMMIT DROP;
CREATE TEMP TABLE stage_ratings (user_id integer, movie_id integer, rating real, epoch bigint) ON COMMIT DROP;
";

const MERGE_MOVIES: &str = "
INSERT INTO recsys.movies AS m (movie_id, title, year, imdb_id, tmdb_id)
SELECT movie_id, title, year, imdb_id, tmdb_id FROM stage_movies
ON CONFLICT (movie_id) DO UPDATE SET title = EXCLUDED.title, year = COALESCE(EXCLUDED.year, m.year),
    imdb_id = COALESCE(EXCLUDED.imdb_id, m.imdb_id), tmdb_id = COALESCE(EXCLUDED.tmdb_id, m.tmdb_id);
INSERT INTO recsys.genres (name) SELECT DISTINCT genre FROM stage_movie_genres ORDER BY 1 ON CONFLICT (name) DO NOTHING;
DELETE FROM recsys.movie_genres mg USING stage_movies s WHERE mg.movie_id = s.movie_id;
INSERT INTO recsys.movie_genres (movie_id, genre_id)
SELECT DISTINCT s.movie_id, g.genre_id FROM stage_movie_genres s JOIN recsys.genres g ON g.name = s.genre;
";

const MERGE_USERS: &str = "
INSERT INTO recsys.users AS u (user_id, gender, age, occupation, zip_code)
SELECT user_id, gender, age, occupation, zip_code FROM stage_users
ON CONFLICT (user_id) DO UPDATE SET gender = EXCLUDED.gender, age = EXCLUDED.age, occupation = EXCLUDED.occupation, zip_code = EXCLUDED.zip_code;
INSERT INTO recsys.users (user_id) SELECT DISTINCT user_id FROM stage_ratings ORDER BY 1 ON CONFLICT (user_id) DO NOTHING;
";

const UNKNOWN_RATED_MOVIES: &str = "
SELECT s.movie_id, count(*) FROM stage_ratings s LEFT JOIN recsys.movies m ON m.movie_id = s.movie_id
WHERE m.movie_id IS NULL GROUP BY s.movie_id ORDER BY s.movie_id LIMIT 5";

const MERGE_RATINGS: &str = "
INSERT INTO recsys.ratings AS r (user_id, movie_id, rating, rated_at)
SELECT DISTINCT ON (user_id, movie_id) user_id, movie_id, rating, to_timestamp(epoch)
FROM stage_ratings ORDER BY user_id, movie_id, epoch DESC
ON CONFLICT (user_id, movie_id) DO UPDATE SET rating = EXCLUDED.rating, rated_at = EXCLUDED.rated_at
WHERE EXCLUDED.rated_at >= r.rated_at";

/// What an import changed.
#[derive(Debug, Default)]
pub struct MovieLensReport {
    pub movies: u64,
    pub users: u64,
    pub ratings_read: u64,
    pub ratings_new: i64,
    pub ratings_updated: i64,
    pub skipped_lines: u64,
    pub seconds: f64,
}

pub fn import(client: &mut Client, dir: &Path, links: Option<&Path>, skip_bad_lines: bool) -> Result<MovieLensReport> {
    let started = Instant::now();
    super::require_schema(client)?;
    let files = movielens::locate(dir, links)?;
    eprintln!("MovieLens {:?} release in {}", files.release, dir.display());
    let mut policy = BadLinePolicy { skip: skip_bad_lines, ..Default::default() };
    let movies = movielens::read_movies(&files, &mut policy)?;
    let links = files.links.as_deref().map(|path| movielens::read_links(path, &mut policy)).transpose()?.unwrap_or_default();
    let users = movielens::read_users(&files, &mut policy)?;

    let mut transaction = client.transaction()?;
    transaction.batch_execute(STAGING)?;
    let mut report = MovieLensReport { movies: movies.len() as u64, users: users.len() as u64, ..Default::default() };
    {
        let mut copy = CopyWriter::start(&mut transaction, "stage_movies (movie_id, title, year, imdb_id, tmdb_id)")?;
        for movie in &movies {
            let link = links.get(&movie.movie_id);
            copy.row(&[&movie.movie_id, &movie.title, &movie.year, &link.and_then(|l| l.imdb_id.as_ref()), &link.and_then(|l| l.tmdb_id)])?;
        }
        copy.finish()?;
    }
    {
        let mut copy = CopyWriter::start(&mut transaction, "stage_movie_genres (movie_id, genre)")?;
        for movie in &movies {
            for genre in &movie.genres {
                copy.row(&[&movie.movie_id, genre])?;
            }
        }
        copy.finish()?;
    }
    {
        let mut copy = CopyWriter::start(&mut transaction, "stage_users (user_id, gender, age, occupation, zip_code)")?;
        for user in &users {
            copy.row(&[&user.user_id, &user.gender, &user.age, &user.occupation, &user.zip_code])?;
        }
        copy.finish()?;
    }
    report.ratings_read = stage_ratings(&mut transaction, &files, &mut policy)?;
    report.skipped_lines = policy.skipped;
    if let Some(first) = &policy.first_skipped {
        eprintln!("skipped {} bad lines (--skip-bad-lines); first: {first}", policy.skipped);
    }

    transaction.batch_execute(MERGE_MOVIES).context("merging movies")?;
    transaction.batch_execute(MERGE_USERS).context("merging users")?;
    let unknown = transaction.query(UNKNOWN_RATED_MOVIES, &[])?;
    if !unknown.is_empty() {
        let ids: Vec<String> = unknown.iter().map(|row| format!("{} ({} ratings)", row.get::<_, i32>(0), row.get::<_, i64>(1))).collect();
        bail!("ratings refer to movies that are in no movie file and not in the database: {}; nothing was imported", ids.join(", "));
    }
    let before: i64 = transaction.query_one("SELECT count(*) FROM recsys.ratings", &[])?.get(0);
    let affected = transaction.execute(MERGE_RATINGS, &[]).context("merging ratings")? as i64;
    let after: i64 = transaction.query_one("SELECT count(*) FROM recsys.ratings", &[])?.get(0);
    report.ratings_new = after - before;
    report.ratings_updated = affected - report.ratings_new;
    transaction.commit()?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn stage_ratings(transaction: &mut Transaction<'_>, files: &MovieLensFiles, policy: &mut BadLinePolicy) -> Result<u64> {
    let mut copy = CopyWriter::start(transaction, "stage_ratings (user_id, movie_id, rating, epoch)")?;
    movielens::for_each_rating(files, policy, |rating| copy.row(&[&rating.user_id, &rating.movie_id, &rating.rating, &rating.timestamp]))?;
    copy.finish()
}
