//! Parsing MovieLens releases, detected from the files in a directory: ML-100K (`u.data`, `u.item`, `u.user`),
//! ML-1M/ML-10M (`ratings.dat`, `movies.dat`, `users.dat`) and the CSV releases (`ratings.csv`, `movies.csv`,
//! `links.csv`). Pure parsing: records go to callbacks, the database side lives in `load.rs`.
pub use super::rating_lines::RatingRecord;
use super::rating_lines::{for_each_rating_line, RatingLayout};
use super::source::{find_file, BadLine, Encoding, LineSource};
use super::title_text::parse_movielens_title;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    Ml100k,
    Dat,
    Csv,
}

#[derive(Debug)]
pub struct MovieLensFiles {
    pub release: Release,
    pub movies: PathBuf,
    pub ratings: Option<PathBuf>,
    pub users: Option<PathBuf>,
    pub links: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MovieRecord {
    pub movie_id: i32,
    pub title: String,
    pub year: Option<i32>,
    pub genres: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub user_id: i32,
    pub gender: Option<String>,
    pub age: Option<i32>,
    pub occupation: Option<String>,
    pub zip_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinkRecord {
    pub movie_id: i32,
    pub imdb_id: Option<String>,
    pub tmdb_id: Option<i32>,
}

/// Stops at the first bad line, or (with `--skip-bad-lines`) counts and skips it.
#[derive(Debug, Default)]
pub struct BadLinePolicy {
    pub skip: bool,
    pub skipped: u64,
    pub first_skipped: Option<String>,
}

impl BadLinePolicy {
    pub fn handle(&mut self, error: BadLine) -> Result<()> {
        if !self.skip {
            bail!(error);
        }
        self.skipped += 1;
        self.first_skipped.get_or_insert_with(|| error.to_string());
        Ok(())
    }
}

/// ML-1M occupation codes (README of ML-1M).
const ML1M_OCCUPATIONS: [&str; 21] = [
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
];

/// ML-100K's genre flag columns, in order (`u.genre`).
const ML100K_GENRES: [&str; 19] = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
];

/// Finds the release's files in `dir`; `links_override` supplies a links.csv from another release (ML-1M has none).
pub fn locate(dir: &Path, links_override: Option<&Path>) -> Result<MovieLensFiles> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let links = match links_override {
        Some(path) if path.is_file() => Some(path.to_path_buf()),
        Some(path) => bail!("links file {} does not exist", path.display()),
        None => find_file(dir, "links.csv"),
    };
    let (release, movies, ratings, users) = if let Some(movies) = find_file(dir, "u.item") {
        (Release::Ml100k, movies, find_file(dir, "u.data"), find_file(dir, "u.user"))
    } else if let Some(movies) = find_file(dir, "movies.dat") {
        (Release::Dat, movies, find_file(dir, "ratings.dat"), find_file(dir, "users.dat"))
    } else if let Some(movies) = find_file(dir, "movies.csv") {
        (Release::Csv, movies, find_file(dir, "ratings.csv"), None)
    } else {
        bail!("no MovieLens movie file in {} (expected u.item, movies.dat or movies.csv)", dir.display());
    };
    Ok(MovieLensFiles { release, movies, ratings, users, links })
}

impl Release {
    pub fn encoding(self) -> Encoding {
        match self {
            Release::Ml100k | Release::Dat => Encoding::Latin1,
            Release::Csv => Encoding::Utf8,
        }
    }

    /// The layout of the release's movie and user files.
    fn layout(self) -> Layout {
        match self {
            Release::Ml100k => Layout::Pipe,
            Release::Dat => Layout::DoubleColon,
            Release::Csv => Layout::Csv,
        }
    }
}

/// How the fields of one file are separated; CSV files also have a header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    Pipe,
    Tab,
    DoubleColon,
    Csv,
}

impl Layout {
    fn split(self, line: &str) -> Result<Vec<String>, String> {
        match self {
            Layout::Pipe => Ok(line.split('|').map(str::to_string).collect()),
            Layout::Tab => Ok(line.split('\t').map(str::to_string).collect()),
            Layout::DoubleColon => Ok(line.split("::").map(str::to_string).collect()),
            Layout::Csv => unreachable!("CSV files are read as records (for_each_csv_record), not as lines"),
        }
    }
}

fn parse_int<T: std::str::FromStr>(field: &str, what: &str) -> Result<T, String> {
    field.trim().parse().map_err(|_| format!("{what} {field:?} is not an integer"))
}

fn expect_fields(fields: &[String], at_least: usize, what: &str) -> Result<(), String> {
    if fields.len() < at_least {
        return Err(format!("expected {at_least} fields for {what}, found {}", fields.len()));
    }
    Ok(())
}

/// Reads the records of a file (skipping the header of CSV files), handing each record's fields to `parse`.
fn for_each_line<T>(
    path: &Path,
    layout: Layout,
    encoding: Encoding,
    policy: &mut BadLinePolicy,
    mut parse: impl FnMut(&[String]) -> Result<T, String>,
    mut sink: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    if layout == Layout::Csv {
        return for_each_csv_record(path, policy, parse, sink);
    }
    let mut source = LineSource::open(path, encoding)?;
    let mut line = String::new();
    let mut progress = super::progress::FileProgress::start(&source);
    while source.next_line(&mut line)? {
        if line.trim().is_empty() {
            continue;
        }
        match layout.split(&line).and_then(|fields| parse(&fields)) {
            Ok(record) => sink(record)?,
            Err(message) => policy.handle(source.bad_line(message))?,
        }
        progress.tick();
    }
    progress.finish();
    Ok(())
}

/// Reads a UTF-8 CSV file with a header line as RFC 4180 records (the `csv` crate: quoted fields may hold commas,
/// doubled quotes and line breaks), handing each record's fields to `parse`; a record that is not valid UTF-8 or
/// does not parse is a bad line at the line it starts on.
fn for_each_csv_record<T>(
    path: &Path,
    policy: &mut BadLinePolicy,
    mut parse: impl FnMut(&[String]) -> Result<T, String>,
    mut sink: impl FnMut(T) -> Result<()>,
) -> Result<()> {
    let source = LineSource::open(path, Encoding::Utf8)?;
    let mut progress = super::progress::FileProgress::start(&source);
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(source.into_reader());
    let mut record = csv::StringRecord::new();
    let bad = |line: u64, message: String| BadLine { file: path.to_path_buf(), line, message };
    loop {
        let result = reader.read_record(&mut record);
        let line = record.position().map_or_else(|| reader.position().line(), |start| start.line());
        match result {
            Ok(false) => break,
            Ok(true) if record.iter().all(|field| field.trim().is_empty()) => continue,
            Ok(true) => match parse(&record.iter().map(str::to_string).collect::<Vec<_>>()) {
                Ok(parsed) => sink(parsed)?,
                Err(message) => policy.handle(bad(line, message))?,
            },
            Err(error) if error.is_io_error() => return Err(anyhow::Error::new(error).context(format!("reading {}", path.display()))),
            Err(error) if matches!(error.kind(), csv::ErrorKind::Utf8 { .. }) => {
                policy.handle(bad(line, "not valid UTF-8 (is this a Latin-1 file from an older MovieLens release?)".into()))?
            }
            Err(error) => policy.handle(bad(line, format!("not a CSV record: {error}")))?,
        }
        progress.tick();
    }
    progress.finish();
    Ok(())
}

pub fn read_movies(files: &MovieLensFiles, policy: &mut BadLinePolicy) -> Result<Vec<MovieRecord>> {
    let release = files.release;
    let mut movies = Vec::new();
    let parse = |fields: &[String]| -> Result<MovieRecord, String> {
        let (id, raw_title, genres) = match release {
            Release::Ml100k => {
                expect_fields(fields, 5 + ML100K_GENRES.len(), "u.item")?;
                let flags = &fields[5..5 + ML100K_GENRES.len()];
                let genres = flags
                    .iter()
                    .zip(ML100K_GENRES)
                    .filter(|(flag, name)| flag.trim() == "1" && *name != "unknown")
                    .map(|(_, name)| name.to_string())
                    .collect();
                (&fields[0], fields[1].as_str(), genres)
            }
            Release::Dat | Release::Csv => {
                expect_fields(fields, 3, "a movie")?;
                let genres =
                    fields[2].split('|').map(str::trim).filter(|g| !g.is_empty() && *g != "(no genres listed)").map(str::to_string).collect();
                (&fields[0], fields[1].as_str(), genres)
            }
        };
        let movie_id = parse_int(id, "movie id")?;
        let mut parsed = parse_movielens_title(raw_title);
        if parsed.title.is_empty() {
            return Err(format!("movie {movie_id} has no title"));
        }
        if parsed.year.is_none() && release == Release::Ml100k {
            parsed.year = fields[2].rsplit('-').next().and_then(|y| y.parse().ok());
        }
        Ok(MovieRecord { movie_id, title: parsed.title, year: parsed.year, genres })
    };
    for_each_line(&files.movies, release.layout(), release.encoding(), policy, parse, |movie| {
        movies.push(movie);
        Ok(())
    })?;
    Ok(movies)
}

pub fn read_users(files: &MovieLensFiles, policy: &mut BadLinePolicy) -> Result<Vec<UserRecord>> {
    let Some(path) = &files.users else { return Ok(Vec::new()) };
    let release = files.release;
    let parse = |fields: &[String]| -> Result<UserRecord, String> {
        expect_fields(fields, 5, "a user")?;
        let non_empty = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        let (id, gender, age, occupation, zip) = match release {
            Release::Ml100k => (&fields[0], &fields[2], &fields[1], non_empty(&fields[3]), &fields[4]),
            _ => {
                let code: usize = parse_int(&fields[3], "occupation code")?;
                let occupation = ML1M_OCCUPATIONS.get(code).ok_or(format!("unknown occupation code {code}"))?;
                (&fields[0], &fields[1], &fields[2], Some(occupation.to_string()), &fields[4])
            }
        };
        let gender = non_empty(gender).map(|g| g.to_uppercase());
        if gender.as_deref().is_some_and(|g| g != "M" && g != "F") {
            return Err(format!("gender {:?} is neither M nor F", fields[1]));
        }
        Ok(UserRecord { user_id: parse_int(id, "user id")?, gender, age: Some(parse_int(age, "age")?), occupation, zip_code: non_empty(zip) })
    };
    let mut users = Vec::new();
    for_each_line(path, release.layout(), release.encoding(), policy, parse, |user| {
        users.push(user);
        Ok(())
    })?;
    Ok(users)
}

/// Reads a links file: the first column is the movie id; the IMDb and TMDb columns are found by header name
/// (`imdbId`/`imdb_id`, `tmdbId`/`tmdb_id`), so MovieLens' links.csv and mapping files such as ML-100K → IMDb both work.
pub fn read_links(path: &Path, policy: &mut BadLinePolicy) -> Result<HashMap<i32, LinkRecord>> {
    let mut header = csv::ReaderBuilder::new().from_reader(LineSource::open(path, Encoding::Utf8)?.into_reader());
    let columns: Vec<String> = header.headers()?.iter().map(|c| c.trim().to_ascii_lowercase().replace('_', "")).collect();
    if columns.iter().all(|c| c.is_empty()) {
        bail!("{} is empty", path.display());
    }
    let Some(imdb_column) = columns.iter().position(|c| c == "imdbid") else {
        bail!(BadLine { file: path.to_path_buf(), line: 1, message: "links file header has no imdbId column".into() });
    };
    let tmdb_column = columns.iter().position(|c| c == "tmdbid");
    let parse = |fields: &[String]| -> Result<LinkRecord, String> {
        expect_fields(fields, imdb_column + 1, "a link")?;
        let imdb = fields[imdb_column].trim();
        let imdb_id = if imdb.is_empty() {
            None
        } else {
            let number: u64 = parse_int(imdb.trim_start_matches("tt"), "imdbId")?;
            Some(format!("tt{number:07}"))
        };
        let tmdb_id =
            tmdb_column.and_then(|c| fields.get(c)).map(|f| f.trim()).filter(|f| !f.is_empty()).map(|f| parse_int(f, "tmdbId")).transpose()?;
        Ok(LinkRecord { movie_id: parse_int(&fields[0], "movie id")?, imdb_id, tmdb_id })
    };
    let mut links = HashMap::new();
    for_each_line(path, Layout::Csv, Encoding::Utf8, policy, parse, |link| {
        links.insert(link.movie_id, link);
        Ok(())
    })?;
    Ok(links)
}

/// Streams the ratings file to `sink`, one validated rating at a time.
pub fn for_each_rating(files: &MovieLensFiles, policy: &mut BadLinePolicy, sink: impl FnMut(RatingRecord) -> Result<()>) -> Result<()> {
    let Some(path) = &files.ratings else { return Ok(()) };
    let release = files.release;
    let layout = if release == Release::Ml100k { Layout::Tab } else { release.layout() };
    let parse = |fields: &[String]| -> Result<RatingRecord, String> {
        if fields.len() != 4 {
            return Err(format!("expected 4 fields for a rating (user, movie, rating, timestamp), found {}", fields.len()));
        }
        let rating: f32 = fields[2].trim().parse().map_err(|_| format!("rating {:?} is not a number", fields[2]))?;
        if !(0.5..=5.0).contains(&rating) || (rating * 2.0).fract() != 0.0 {
            return Err(format!("rating {rating} is not a half-star value between 0.5 and 5"));
        }
        Ok(RatingRecord {
            user_id: parse_int(&fields[0], "user id")?,
            movie_id: parse_int(&fields[1], "movie id")?,
            rating,
            timestamp: parse_int(&fields[3], "timestamp")?,
        })
    };
    let general = |line: &str| match layout {
        Layout::Csv => csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(line.as_bytes())
            .records()
            .next()
            .ok_or_else(|| "an empty CSV record".to_string())?
            .map_err(|e| format!("not a CSV record: {e}"))
            .and_then(|record| parse(&record.iter().map(str::to_string).collect::<Vec<_>>())),
        _ => layout.split(line).and_then(|fields| parse(&fields)),
    };
    let separator: &[u8] = match layout {
        Layout::Pipe => b"|",
        Layout::Tab => b"\t",
        Layout::DoubleColon => b"::",
        Layout::Csv => b",",
    };
    let source = LineSource::open(path, release.encoding())?;
    let layout = RatingLayout { separator, header: layout == Layout::Csv };
    for_each_rating_line(source, path, layout, |bad| policy.handle(bad), general, sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_csv(text: &str) -> (Vec<Vec<String>>, BadLinePolicy) {
        let dir = std::env::temp_dir().join(format!("recsys-csv-{}-{}", std::process::id(), text.len()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("movies.csv");
        std::fs::write(&path, text).unwrap();
        let (mut records, mut policy) = (Vec::new(), BadLinePolicy { skip: true, ..Default::default() });
        let parse = |fields: &[String]| if fields[0] == "bad" { Err("bad record".to_string()) } else { Ok(fields.to_vec()) };
        for_each_line(&path, Layout::Csv, Encoding::Utf8, &mut policy, parse, |r| {
            records.push(r);
            Ok(())
        })
        .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        (records, policy)
    }

    #[test]
    fn csv_records_follow_rfc_4180_including_quoted_line_breaks() {
        let text = "movieId,title,genres\n1,Toy Story (1995),Animation\n11,\"American President, The (1995)\",Comedy|Drama\n\
                    5,\"Say \"\"Hi\"\" (2001)\",Drama\n7,\"Two\nLines (1999)\",Drama\nbad,x,y\n8,Last (2000),Drama\n";
        let (records, policy) = read_csv(text);
        let titles: Vec<&str> = records.iter().map(|r| r[1].as_str()).collect();
        assert_eq!(titles, ["Toy Story (1995)", "American President, The (1995)", "Say \"Hi\" (2001)", "Two\nLines (1999)", "Last (2000)"]);
        assert_eq!(policy.skipped, 1);
        assert!(
            policy.first_skipped.as_deref().unwrap_or("").contains(":7: bad record"),
            "the bad record starts on line 7: {:?}",
            policy.first_skipped
        );
    }
}
