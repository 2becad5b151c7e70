//! The "next week" release of a synthetic MovieLens set for `recsys_bench scale`: the same movies and users, every
//! rating of the set, then 1 % more ratings dated in the week after its newest one — users drawn as often as they
//! rate, movies as often as they are rated (some of the pairs are re-ratings) — as a weekly export would hold them.
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// One new rating per this many rows of the set.
const ROWS_PER_NEW_RATING: u64 = 100;

/// Writes (once) the next-week release of the `.dat` set in `data/movielens` to `data/next-week`; returns its directory
/// and how many new ratings it adds.
pub fn next_week_release(data: &Path) -> Result<(PathBuf, u64)> {
    let (source, target) = (data.join("movielens"), data.join("next-week"));
    let done = target.join("complete");
    if done.is_file() {
        return Ok((target, std::fs::read_to_string(&done)?.trim().parse()?));
    }
    std::fs::create_dir_all(&target)?;
    for file in ["movies.synthetic.dat", "users.synthetic.dat"] {
        std::fs::copy(source.join(file), target.join(file)).with_context(|| format!("copying {file}"))?;
    }
    let reader = BufReader::new(std::fs::File::open(source.join("ratings.synthetic.dat"))?);
    let mut writer = BufWriter::new(std::fs::File::create(target.join("ratings.synthetic.dat"))?);
    let mut drawn: Vec<(i64, i64)> = Vec::new();
    let mut recent_movies = [0i64; 64];
    let mut newest = 0i64;
    for (row, line) in reader.lines().enumerate() {
        let line = line?;
        writeln!(writer, "{line}")?;
        let fields: Vec<i64> = line.split("::").filter_map(|f| f.trim().parse().ok()).collect();
        let [user, movie, _, at] = fields[..] else { continue };
        newest = newest.max(at);
        recent_movies[row % recent_movies.len()] = movie;
        if row as u64 % ROWS_PER_NEW_RATING == ROWS_PER_NEW_RATING - 1 {
            drawn.push((user, recent_movies[(row * 37 + 11) % recent_movies.len()]));
        }
    }
    for (k, (user, movie)) in drawn.iter().enumerate() {
        let (rating, at) = (1 + (k * 7 + 3) % 5, newest + 1 + (k as i64 * 7 * 24 * 3600) / drawn.len() as i64);
        writeln!(writer, "{user}::{movie}::{rating}::{at}")?;
    }
    writer.flush()?;
    std::fs::write(&done, drawn.len().to_string())?;
    Ok((target, drawn.len() as u64))
}
