//! `trainer import imdb`: matches the IMDb files against the movies in the database and merges runtime, year,
//! genres (for movies that have none), people and credits in one transaction. Credits of matched movies are
//! replaced, so re-imports do not duplicate anything.
use super::copy::CopyWriter;
use super::imdb::{self, KnownMovie};
use super::movielens::BadLinePolicy;
use anyhow::{Context, Result};
use postgres::types::Type;
use postgres::Client;
use std::path::Path;
use std::time::Instant;

const STAGING: &str = "
CREATE TEMP TABLE stage_titles (movie_id integer, imdb_id text, runtime_minutes integer, year integer, genres text[]) ON COMMIT DROP;
CREATE TEMP TABLE stage_persons (nconst text, name text) ON COMMIT DROP;
CREATE TEMP TABLE stage_credits (movie_id integer, nconst text, role text, billing_order smallint, characters text[]) ON COMMIT DROP;
";

const MERGE: &str = "
UPDATE recsys.movies m SET runtime_minutes = COALESCE(s.runtime_minutes, m.runtime_minutes),
       year = COALESCE(m.year, s.year), imdb_id = COALESCE(m.imdb_id, s.imdb_id)
FROM stage_titles s WHERE m.movie_id = s.movie_id;
INSERT INTO recsys.genres (name) SELECT DISTINCT unnest(genres) FROM stage_titles ORDER BY 1 ON CONFLICT (name) DO NOTHING;
INSERT INTO recsys.movie_genres (movie_id, genre_id)
SELECT DISTINCT s.movie_id, g.genre_id FROM stage_titles s CROSS JOIN LATERAL unnest(s.genres) AS x(name)
JOIN recsys.genres g ON g.name = x.name
WHERE NOT EXISTS (SELECT 1 FROM recsys.movie_genres mg WHERE mg.movie_id = s.movie_id);
INSERT INTO recsys.persons AS p (name, imdb_nconst) SELECT name, nconst FROM stage_persons ORDER BY nconst
ON CONFLICT (imdb_nconst) DO UPDATE SET name = EXCLUDED.name;
DELETE FROM recsys.movie_persons mp USING stage_titles s WHERE mp.movie_id = s.movie_id;
INSERT INTO recsys.movie_persons (movie_id, person_id, role, billing_order, characters)
SELECT c.movie_id, p.person_id, c.role, c.billing_order, c.characters
FROM stage_credits c JOIN recsys.persons p ON p.imdb_nconst = c.nconst;
";

#[derive(Debug, Default)]
pub struct ImdbReport {
    pub movies_in_database: usize,
    pub matched_titles: usize,
    pub matched_by_title: usize,
    pub persons: usize,
    pub credits: usize,
    pub credits_without_name: usize,
    pub skipped_lines: u64,
    pub seconds: f64,
}

pub fn import(client: &mut Client, dir: &Path, skip_bad_lines: bool) -> Result<ImdbReport> {
    let started = Instant::now();
    super::require_schema(client)?;
    let files = imdb::locate(dir)?;
    let movies: Vec<KnownMovie> = client
        .query("SELECT movie_id, imdb_id, title, year FROM recsys.movies", &[])?
        .iter()
        .map(|row| KnownMovie { movie_id: row.get(0), imdb_id: row.get(1), title: row.get(2), year: row.get(3) })
        .collect();
    let mut policy = BadLinePolicy { skip: skip_bad_lines, ..Default::default() };
    let data = imdb::read(&files, &movies, &mut policy)?;
    let mut report = ImdbReport {
        movies_in_database: movies.len(),
        matched_titles: data.titles.len(),
        matched_by_title: data.matched_by_title,
        persons: data.names.len(),
        skipped_lines: policy.skipped,
        ..Default::default()
    };
    if let Some(first) = &policy.first_skipped {
        eprintln!("skipped {} bad lines (--skip-bad-lines); first: {first}", policy.skipped);
    }

    let mut transaction = client.transaction()?;
    transaction.batch_execute(STAGING)?;
    {
        let mut copy = CopyWriter::start(
            &mut transaction,
            "stage_titles (movie_id, imdb_id, runtime_minutes, year, genres)",
            &[Type::INT4, Type::TEXT, Type::INT4, Type::INT4, Type::TEXT_ARRAY],
        )?;
        for title in &data.titles {
            copy.row(&[&title.movie_id, &title.tconst, &title.runtime_minutes, &title.year, &title.genres])?;
        }
        copy.finish()?;
    }
    {
        let mut copy = CopyWriter::start(&mut transaction, "stage_persons (nconst, name)", &[Type::TEXT, Type::TEXT])?;
        for (nconst, name) in &data.names {
            copy.row(&[nconst, name])?;
        }
        copy.finish()?;
    }
    {
        let mut copy = CopyWriter::start(
            &mut transaction,
            "stage_credits (movie_id, nconst, role, billing_order, characters)",
            &[Type::INT4, Type::TEXT, Type::TEXT, Type::INT2, Type::TEXT_ARRAY],
        )?;
        for ((movie_id, nconst, role), credit) in &data.credits {
            if !data.names.contains_key(nconst) {
                report.credits_without_name += 1;
                continue;
            }
            let characters = (!credit.characters.is_empty()).then_some(&credit.characters);
            copy.row(&[movie_id, nconst, &role.as_str(), &credit.billing_order, &characters])?;
            report.credits += 1;
        }
        copy.finish()?;
    }
    transaction.batch_execute(MERGE).context("merging IMDb data")?;
    transaction.commit()?;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
