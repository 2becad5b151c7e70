//! `trainer import movielens`: parses a MovieLens release and merges it into the recsys tables in one
//! transaction (COPY into temporary staging tables, then set-based upserts). Re-imports add new rows and keep
//! the latest rating per user and movie, sending the server only the rows that can change something
//! (`rating_digest`); a failure leaves the database as it was.
use super::copy::{epoch_seconds, CopyWriter};
use super::movielens::{self, BadLinePolicy, MovieLensFiles, RatingRecord};
use super::rating_digest::{self, Digest};
use anyhow::{bail, Context, Result};
use postgres::types::Type;
use postgres::{Client, Transaction};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

const STAGING: &str = "
CREATE TEMP TABLE stage_movies (movie_id integer, title text, year integer, imdb_id text, tmdb_id integer) ON COMMIT DROP;
CREATE TEMP TABLE stage_movie_genres (movie_id integer, genre text) ON COMMIT DROP;
CREATE TEMP TABLE stage_users (user_id integer, gender text, age integer, occupation text, zip_code text) ON COMMIT DROP;
CREATE TEMP TABLE stage_ratings (user_id integer, movie_id integer, rating real, rated_at timestamptz) ON COMMIT DROP;
";

/// Movies and genres merged so that an unchanged movie is not written at all (a write would bump the catalogue
/// version and make every backend re-encode the movie): updates only where a value differs, genre links replaced
/// only for movies whose set of genres differs.
const MERGE_MOVIES: &str = "
INSERT INTO recsys.movies AS m (movie_id, title, year, imdb_id, tmdb_id)
SELECT movie_id, title, year, imdb_id, tmdb_id FROM stage_movies
ON CONFLICT (movie_id) DO UPDATE SET title = EXCLUDED.title, year = COALESCE(EXCLUDED.year, m.year),
    imdb_id = COALESCE(EXCLUDED.imdb_id, m.imdb_id), tmdb_id = COALESCE(EXCLUDED.tmdb_id, m.tmdb_id)
WHERE (m.title, m.year, m.imdb_id, m.tmdb_id) IS DISTINCT FROM
      (EXCLUDED.title, COALESCE(EXCLUDED.year, m.year), COALESCE(EXCLUDED.imdb_id, m.imdb_id), COALESCE(EXCLUDED.tmdb_id, m.tmdb_id));
INSERT INTO recsys.genres (name) SELECT DISTINCT genre FROM stage_movie_genres ORDER BY 1 ON CONFLICT (name) DO NOTHING;
CREATE TEMP TABLE stage_genre_changes ON COMMIT DROP AS
WITH wanted AS (SELECT sg.movie_id, array_agg(DISTINCT g.genre_id ORDER BY g.genre_id) AS ids
                FROM stage_movie_genres sg JOIN recsys.genres g ON g.name = sg.genre GROUP BY sg.movie_id),
     stored AS (SELECT mg.movie_id, array_agg(mg.genre_id ORDER BY mg.genre_id) AS ids
                FROM recsys.movie_genres mg JOIN stage_movies s ON s.movie_id = mg.movie_id GROUP BY mg.movie_id)
SELECT s.movie_id FROM stage_movies s LEFT JOIN wanted w ON w.movie_id = s.movie_id LEFT JOIN stored st ON st.movie_id = s.movie_id
WHERE w.ids IS DISTINCT FROM st.ids;
DELETE FROM recsys.movie_genres mg USING stage_genre_changes c WHERE mg.movie_id = c.movie_id;
INSERT INTO recsys.movie_genres (movie_id, genre_id)
SELECT DISTINCT s.movie_id, g.genre_id FROM stage_movie_genres s JOIN recsys.genres g ON g.name = s.genre
WHERE s.movie_id IN (SELECT movie_id FROM stage_genre_changes);
";

const MERGE_USERS: &str = "
INSERT INTO recsys.users AS u (user_id, gender, age, occupation, zip_code)
SELECT user_id, gender, age, occupation, zip_code FROM stage_users
ON CONFLICT (user_id) DO UPDATE SET gender = EXCLUDED.gender, age = EXCLUDED.age, occupation = EXCLUDED.occupation, zip_code = EXCLUDED.zip_code
WHERE (u.gender, u.age, u.occupation, u.zip_code) IS DISTINCT FROM (EXCLUDED.gender, EXCLUDED.age, EXCLUDED.occupation, EXCLUDED.zip_code);
";

const UNKNOWN_MOVIES: &str = "
SELECT id FROM unnest($1::integer[]) AS id WHERE NOT EXISTS (SELECT 1 FROM recsys.movies m WHERE m.movie_id = id) ORDER BY id LIMIT 5";
const USERS_FROM_RATINGS: &str =
    "INSERT INTO recsys.users (user_id) SELECT id FROM unnest($1::integer[]) AS id ORDER BY id ON CONFLICT (user_id) DO NOTHING";

const MERGE_RATINGS: &str = "
INSERT INTO recsys.ratings AS r (user_id, movie_id, rating, rated_at)
SELECT DISTINCT ON (user_id, movie_id) user_id, movie_id, rating, rated_at
FROM stage_ratings ORDER BY user_id, movie_id, rated_at DESC
ON CONFLICT (user_id, movie_id) DO UPDATE SET rating = EXCLUDED.rating, rated_at = EXCLUDED.rated_at
WHERE EXCLUDED.rated_at >= r.rated_at AND (EXCLUDED.rating, EXCLUDED.rated_at) IS DISTINCT FROM (r.rating, r.rated_at)";

/// First import into an empty ratings table: ratings are copied straight into the table with its constraints and
/// secondary indexes dropped, which are rebuilt once afterwards (several times faster than maintaining them row by
/// row) with the extension's own statements (`recsys_contract::RATINGS_PRIMARY_KEY`, `RATINGS_REFERENCES`); the
/// integration tests compare the definitions after a bulk import with a fresh extension's.
const BULK_PREPARE: &str = "
SET LOCAL maintenance_work_mem = '512MB';
LOCK TABLE recsys.ratings IN ACCESS EXCLUSIVE MODE;
ALTER TABLE recsys.ratings DROP CONSTRAINT ratings_user_id_fkey, DROP CONSTRAINT ratings_movie_id_fkey, DROP CONSTRAINT ratings_pkey;
DROP INDEX recsys.ratings_movie_idx, recsys.ratings_rated_at_idx;
";
/// Whether recsys.ratings has its load-number index (0.7.0 and later; a database not yet updated has none), which the
/// bulk import then drops and rebuilds like the others.
const LOADED_INDEX_EXISTS: &str = "SELECT pg_catalog.to_regclass('recsys.ratings_loaded_idx') IS NOT NULL";
const BULK_KEEP_LATEST: &str = "
DELETE FROM recsys.ratings r USING recsys.ratings newer
WHERE r.user_id = newer.user_id AND r.movie_id = newer.movie_id AND (r.rated_at, r.ctid) < (newer.rated_at, newer.ctid)";

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
        let mut copy = CopyWriter::start(
            &mut transaction,
            "stage_movies (movie_id, title, year, imdb_id, tmdb_id)",
            &[Type::INT4, Type::TEXT, Type::INT4, Type::TEXT, Type::INT4],
        )?;
        for movie in &movies {
            let link = links.get(&movie.movie_id);
            copy.row(&[&movie.movie_id, &movie.title, &movie.year, &link.and_then(|l| l.imdb_id.as_ref()), &link.and_then(|l| l.tmdb_id)])?;
        }
        copy.finish()?;
    }
    {
        let mut copy = CopyWriter::start(&mut transaction, "stage_movie_genres (movie_id, genre)", &[Type::INT4, Type::TEXT])?;
        for movie in &movies {
            for genre in &movie.genres {
                copy.row(&[&movie.movie_id, genre])?;
            }
        }
        copy.finish()?;
    }
    {
        let mut copy = CopyWriter::start(
            &mut transaction,
            "stage_users (user_id, gender, age, occupation, zip_code)",
            &[Type::INT4, Type::TEXT, Type::INT4, Type::TEXT, Type::TEXT],
        )?;
        for user in &users {
            copy.row(&[&user.user_id, &user.gender, &user.age, &user.occupation, &user.zip_code])?;
        }
        copy.finish()?;
    }
    transaction.batch_execute(MERGE_MOVIES).context("merging movies")?;
    transaction.batch_execute(MERGE_USERS).context("merging users")?;
    let before: i64 = transaction.query_one("SELECT count(*) FROM recsys.ratings", &[])?.get(0);
    let bulk = before == 0;
    let load_index = bulk && transaction.query_one(LOADED_INDEX_EXISTS, &[])?.get::<_, bool>(0);
    let seen = if bulk {
        transaction.batch_execute(BULK_PREPARE)?;
        if load_index {
            transaction.batch_execute("DROP INDEX recsys.ratings_loaded_idx")?;
        }
        copy_ratings(&mut transaction, &files, &mut policy)?
    } else {
        copy_changed_ratings(&mut transaction, &files, &mut policy)?
    };
    report.ratings_read = seen.rows;
    report.skipped_lines = policy.skipped;
    if let Some(first) = &policy.first_skipped {
        eprintln!("skipped {} bad lines (--skip-bad-lines); first: {first}", policy.skipped);
    }
    let user_ids: Vec<i32> = seen.users.into_iter().collect();
    transaction.execute(USERS_FROM_RATINGS, &[&user_ids])?;
    let movie_ids: Vec<i32> = seen.movies.keys().copied().collect();
    let unknown = transaction.query(UNKNOWN_MOVIES, &[&movie_ids])?;
    if !unknown.is_empty() {
        let ids: Vec<String> = unknown.iter().map(|row| row.get::<_, i32>(0)).map(|id| format!("{id} ({} ratings)", seen.movies[&id])).collect();
        bail!("ratings refer to movies that are in no movie file and not in the database: {}; nothing was imported", ids.join(", "));
    }
    let affected = if bulk {
        finish_bulk_load(&mut transaction, load_index)?;
        0
    } else {
        transaction.execute(MERGE_RATINGS, &[]).context("merging ratings")? as i64
    };
    let after: i64 = transaction.query_one("SELECT count(*) FROM recsys.ratings", &[])?.get(0);
    report.ratings_new = after - before;
    report.ratings_updated = (affected - report.ratings_new).max(0);
    transaction.commit()?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Rebuilds the ratings table's keys and indexes after a bulk copy; duplicate (user, movie) pairs in the input
/// keep their latest rating.
fn finish_bulk_load(transaction: &mut Transaction<'_>, load_index: bool) -> Result<()> {
    let mut attempt = transaction.transaction()?;
    match attempt.batch_execute(recsys_contract::RATINGS_PRIMARY_KEY) {
        Ok(()) => attempt.commit()?,
        Err(error) if error.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) => {
            attempt.rollback()?;
            transaction.batch_execute(BULK_KEEP_LATEST)?;
            transaction.batch_execute(recsys_contract::RATINGS_PRIMARY_KEY)?;
        }
        Err(error) => return Err(error.into()),
    }
    transaction.batch_execute(recsys_contract::RATINGS_REFERENCES).context("rebuilding the ratings indexes")?;
    if load_index {
        transaction.batch_execute(recsys_contract::RATINGS_LOADED_INDEX).context("rebuilding the load-number index")?;
    }
    Ok(())
}

const RATING_COLUMNS: [Type; 4] = [Type::INT4, Type::INT4, Type::FLOAT4, Type::TIMESTAMPTZ];
const STAGED_RATINGS: &str = "stage_ratings (user_id, movie_id, rating, rated_at)";

/// One rating as a row of a COPY into `RATING_COLUMNS`.
fn write_rating(copy: &mut CopyWriter<'_>, rating: &RatingRecord) -> Result<()> {
    copy.row(&[&rating.user_id, &rating.movie_id, &rating.rating, &epoch_seconds(rating.timestamp)])
}

/// Streams the ratings file into the ratings table itself (first, bulk import), collecting the ids it refers to so
/// that the server need not scan the rows again.
fn copy_ratings(transaction: &mut Transaction<'_>, files: &MovieLensFiles, policy: &mut BadLinePolicy) -> Result<SeenIds> {
    let mut copy = CopyWriter::start(transaction, "recsys.ratings (user_id, movie_id, rating, rated_at)", &RATING_COLUMNS)?;
    let mut seen = SeenIds::default();
    movielens::for_each_rating(files, policy, |rating| {
        seen.add(&rating);
        write_rating(&mut copy, &rating)
    })?;
    copy.finish()?;
    Ok(seen)
}

/// Re-import: streams into the staging table only the rows that can change something (`rating_digest`): every row
/// newer than its user's newest stored rating (or of a user not stored), and — in a second pass over the file, only
/// when there are such users — the older rows of users whose older rows do not reproduce their stored ratings
/// exactly. Merging what is sent changes the ratings exactly as merging every row of the file would.
fn copy_changed_ratings(transaction: &mut Transaction<'_>, files: &MovieLensFiles, policy: &mut BadLinePolicy) -> Result<SeenIds> {
    let started = Instant::now();
    let stored = rating_digest::stored(&transaction.query(rating_digest::STORED_DIGESTS, &[]).context("summarising the stored ratings")?);
    eprintln!("  summarised the stored ratings of {} users in {:.2} s", stored.len(), started.elapsed().as_secs_f64());
    let is_older = |rating: &RatingRecord| stored.get(&rating.user_id).is_some_and(|s| rating.timestamp as f64 <= s.newest);
    let mut older: HashMap<i32, Digest> = HashMap::new();
    let mut seen = SeenIds::default();
    let mut sent = 0u64;
    let mut copy = CopyWriter::start(transaction, STAGED_RATINGS, &RATING_COLUMNS)?;
    movielens::for_each_rating(files, policy, |rating| {
        seen.add(&rating);
        if is_older(&rating) {
            older.entry(rating.user_id).or_default().add(rating.movie_id, rating.rating, rating.timestamp);
            return Ok(());
        }
        sent += 1;
        write_rating(&mut copy, &rating)
    })?;
    copy.finish()?;
    let differing: HashSet<i32> =
        older.iter().filter(|(user, digest)| stored.get(user).is_some_and(|s| s.digest != **digest)).map(|(user, _)| *user).collect();
    let mut resent = 0u64;
    if !differing.is_empty() {
        let mut copy = CopyWriter::start(transaction, STAGED_RATINGS, &RATING_COLUMNS)?;
        let mut already_reported = BadLinePolicy { skip: true, ..Default::default() };
        movielens::for_each_rating(files, &mut already_reported, |rating| {
            if !differing.contains(&rating.user_id) || !is_older(&rating) {
                return Ok(());
            }
            resent += 1;
            write_rating(&mut copy, &rating)
        })?;
        copy.finish()?;
    }
    eprintln!(
        "  re-import: {sent} rows newer than their user's stored ratings; {} users whose older rows differ ({resent} rows); {} rows unchanged, not sent",
        differing.len(),
        seen.rows - sent - resent
    );
    Ok(seen)
}

/// What the ratings file referred to: users, and movies with their rating counts.
#[derive(Default)]
struct SeenIds {
    rows: u64,
    users: HashSet<i32>,
    movies: HashMap<i32, u64>,
}

impl SeenIds {
    fn add(&mut self, rating: &RatingRecord) {
        self.rows += 1;
        self.users.insert(rating.user_id);
        *self.movies.entry(rating.movie_id).or_insert(0) += 1;
    }
}
