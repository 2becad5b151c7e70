//! Writing synthetic data in the formats the importers read: a MovieLens CSV release (movies.csv, ratings.csv,
//! links.csv), an ML-1M style release (movies.dat, ratings.dat, users.dat; Latin-1) and IMDb TSV files.
//! IMDb-style ids are synthetic (tt9xxxxxxx / nm9xxxxxxx, a range IMDb has not reached), never real ones.
use super::catalogue::CatalogueMovie;
use super::taste::{SyntheticRating, SyntheticUser};
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

const SYNTHETIC_ID_BASE: u64 = 90_000_000;

pub fn synthetic_tconst(movie_id: i32) -> String {
    format!("tt{}", SYNTHETIC_ID_BASE + movie_id as u64)
}

fn create(dir: &Path, name: &str) -> Result<BufWriter<File>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(crate::import::source::synthetic_name(name));
    Ok(BufWriter::with_capacity(1 << 20, File::create(&path).with_context(|| format!("cannot create {}", path.display()))?))
}

/// "The Godfather" → "Godfather, The": the MovieLens convention the importer undoes.
fn movielens_title(movie: &CatalogueMovie) -> String {
    let title = match movie.title.split_once(' ') {
        Some((article @ ("The" | "A" | "An"), rest)) if !rest.is_empty() => format!("{rest}, {article}"),
        _ => movie.title.clone(),
    };
    format!("{title} ({})", movie.year)
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn genre_list(movie: &CatalogueMovie) -> String {
    if movie.genres.is_empty() {
        "(no genres listed)".to_string()
    } else {
        movie.genres.join("|")
    }
}

pub fn movielens_csv_catalogue(dir: &Path, movies: &[CatalogueMovie]) -> Result<()> {
    let mut out = create(dir, "movies.csv")?;
    writeln!(out, "movieId,title,genres")?;
    for (index, movie) in movies.iter().enumerate() {
        writeln!(out, "{},{},{}", index + 1, csv_field(&movielens_title(movie)), genre_list(movie))?;
    }
    out.flush()?;
    let mut links = create(dir, "links.csv")?;
    writeln!(links, "movieId,imdbId,tmdbId")?;
    for index in 0..movies.len() {
        let movie_id = index as i32 + 1;
        writeln!(links, "{movie_id},{},", &synthetic_tconst(movie_id)[2..])?;
    }
    Ok(links.flush()?)
}

/// Opens ratings.csv (CSV release) or ratings.dat (ML-1M style) and returns a per-rating writer.
pub fn ratings_writer(dir: &Path, dat: bool) -> Result<impl FnMut(&SyntheticRating) -> std::io::Result<()>> {
    let mut out = create(dir, if dat { "ratings.dat" } else { "ratings.csv" })?;
    if !dat {
        writeln!(out, "userId,movieId,rating,timestamp")?;
    }
    Ok(move |r: &SyntheticRating| {
        if dat {
            writeln!(out, "{}::{}::{}::{}", r.user_id, r.movie_id, r.rating as i32, r.timestamp)
        } else {
            writeln!(out, "{},{},{:.1},{}", r.user_id, r.movie_id, r.rating, r.timestamp)
        }
    })
}

fn write_latin1(out: &mut impl Write, text: &str) -> Result<()> {
    let mut bytes = Vec::with_capacity(text.len());
    for c in text.chars() {
        if (c as u32) > 0xFF {
            bail!("{text:?} cannot be written in Latin-1");
        }
        bytes.push(c as u32 as u8);
    }
    Ok(out.write_all(&bytes)?)
}

pub fn movielens_dat_catalogue(dir: &Path, movies: &[CatalogueMovie], users: &[SyntheticUser]) -> Result<()> {
    let mut out = create(dir, "movies.dat")?;
    for (index, movie) in movies.iter().enumerate() {
        write_latin1(&mut out, &format!("{}::{}::{}\n", index + 1, movielens_title(movie), genre_list(movie)))?;
    }
    out.flush()?;
    let mut out = create(dir, "users.dat")?;
    for user in users {
        writeln!(out, "{}::{}::{}::{}::{}", user.user_id, user.gender, user.age, user.occupation, user.zip_code)?;
    }
    Ok(out.flush()?)
}

/// IMDb's genre names for the MovieLens ones that differ.
fn imdb_genre(genre: &str) -> &str {
    match genre {
        "Children" => "Family",
        other => other,
    }
}

pub fn imdb_files(dir: &Path, movies: &[CatalogueMovie]) -> Result<()> {
    let mut people: BTreeMap<&str, u64> = BTreeMap::new();
    for movie in movies {
        for person in movie.directors.iter().chain(&movie.actors) {
            people.entry(person.as_str()).or_insert(0);
        }
    }
    for (index, id) in people.values_mut().enumerate() {
        *id = SYNTHETIC_ID_BASE + index as u64 + 1;
    }
    let nconst = |name: &str| format!("nm{}", people[name]);
    let mut basics = create(dir, "title.basics.tsv")?;
    let mut crew = create(dir, "title.crew.tsv")?;
    let mut principals = create(dir, "title.principals.tsv")?;
    writeln!(basics, "tconst\ttitleType\tprimaryTitle\toriginalTitle\tisAdult\tstartYear\tendYear\truntimeMinutes\tgenres")?;
    writeln!(crew, "tconst\tdirectors\twriters")?;
    writeln!(principals, "tconst\tordering\tnconst\tcategory\tjob\tcharacters")?;
    for (index, movie) in movies.iter().enumerate() {
        let tconst = synthetic_tconst(index as i32 + 1);
        let mut genres: Vec<&str> = movie.genres.iter().map(|g| imdb_genre(g)).collect();
        genres.sort();
        genres.dedup();
        genres.truncate(3);
        let genres = if genres.is_empty() { "\\N".to_string() } else { genres.join(",") };
        writeln!(basics, "{tconst}\tmovie\t{0}\t{0}\t0\t{1}\t\\N\t{2}\t{genres}", movie.title, movie.year, movie.runtime_minutes)?;
        let directors: Vec<String> = movie.directors.iter().map(|d| nconst(d)).collect();
        writeln!(crew, "{tconst}\t{}\t\\N", if directors.is_empty() { "\\N".to_string() } else { directors.join(",") })?;
        let credits = movie.actors.iter().map(|a| (a, "actor")).chain(movie.directors.iter().map(|d| (d, "director")));
        for (ordering, (person, category)) in credits.enumerate() {
            writeln!(principals, "{tconst}\t{}\t{}\t{category}\t\\N\t\\N", ordering + 1, nconst(person))?;
        }
    }
    let mut names = create(dir, "name.basics.tsv")?;
    writeln!(names, "nconst\tprimaryName\tbirthYear\tdeathYear\tprimaryProfession\tknownForTitles")?;
    for (name, id) in &people {
        writeln!(names, "nm{id}\t{name}\t\\N\t\\N\t\\N\t\\N")?;
    }
    for mut file in [basics, crew, principals, names] {
        file.flush()?;
    }
    Ok(())
}
