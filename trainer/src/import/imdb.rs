//! Streaming the official IMDb TSV files (`title.basics`, `title.crew`, `title.principals`, `name.basics`; plain or
//! .gz; UTF-8, `\N` for null, no quoting) and keeping only what concerns movies already in the database. Memory
//! grows with the matched movies and their people, never with the file size.
use super::movielens::BadLinePolicy;
use super::progress::FileProgress;
use super::source::{find_file, Encoding, LineSource};
use super::title_text::normalise_for_matching;
use anyhow::{bail, Result};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

pub struct ImdbFiles {
    pub basics: PathBuf,
    pub crew: PathBuf,
    pub principals: PathBuf,
    pub names: PathBuf,
}

/// A movie of the database as the matcher sees it.
pub struct KnownMovie {
    pub movie_id: i32,
    pub imdb_id: Option<String>,
    pub title: String,
    pub year: Option<i32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MatchedTitle {
    pub movie_id: i32,
    pub tconst: String,
    pub runtime_minutes: Option<i32>,
    pub year: Option<i32>,
    pub genres: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Director,
    Actor,
    Writer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Director => "director",
            Role::Actor => "actor",
            Role::Writer => "writer",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credit {
    pub billing_order: Option<i16>,
    pub characters: Vec<String>,
}

/// Everything the IMDb files say about the database's movies.
#[derive(Default)]
pub struct ImdbData {
    pub titles: Vec<MatchedTitle>,
    pub credits: HashMap<(i32, String, Role), Credit>,
    pub names: HashMap<String, String>,
    pub matched_by_title: usize,
}

pub fn locate(dir: &Path) -> Result<ImdbFiles> {
    let find = |name: &str| {
        find_file(dir, name)
            .ok_or_else(|| anyhow::anyhow!("{} is missing {name} (or {name}.gz), one of the four IMDb files this import needs", dir.display()))
    };
    Ok(ImdbFiles {
        basics: find("title.basics.tsv")?,
        crew: find("title.crew.tsv")?,
        principals: find("title.principals.tsv")?,
        names: find("name.basics.tsv")?,
    })
}

fn null(field: &str) -> Option<&str> {
    (field != "\\N" && !field.is_empty()).then_some(field)
}

/// Reads a TSV file, checking its header's first columns, and hands each data row's fields to `row`.
fn for_each_row(path: &Path, header: &[&str], policy: &mut BadLinePolicy, mut row: impl FnMut(&[&str]) -> Result<(), String>) -> Result<()> {
    let mut source = LineSource::open(path, Encoding::Utf8)?;
    let mut line = String::new();
    if !source.next_line(&mut line)? || !line.split('\t').zip(header).all(|(found, expected)| found == *expected) {
        bail!(source.bad_line(format!("not an IMDb file: the header should start with {}", header.join("\\t"))));
    }
    let mut progress = FileProgress::start(&source);
    while source.next_line(&mut line)? {
        let fields: Vec<&str> = line.split('\t').collect();
        let outcome = if fields.len() != header.len() {
            Err(format!("expected {} tab-separated fields, found {}", header.len(), fields.len()))
        } else {
            row(&fields)
        };
        if let Err(message) = outcome {
            policy.handle(source.bad_line(message))?;
        }
        progress.tick();
    }
    progress.finish();
    Ok(())
}

fn parse_optional_int<T: std::str::FromStr>(field: &str, what: &str) -> Result<Option<T>, String> {
    null(field).map(|value| value.parse().map_err(|_| format!("{what} {value:?} is not an integer"))).transpose()
}

/// Parses the four files for the given movies: by IMDb id, or by normalised title and year for movies without one.
pub fn read(files: &ImdbFiles, movies: &[KnownMovie], policy: &mut BadLinePolicy) -> Result<ImdbData> {
    let mut by_tconst: HashMap<&str, Vec<i32>> = HashMap::new();
    for movie in movies {
        if let Some(id) = movie.imdb_id.as_deref() {
            by_tconst.entry(id).or_default().push(movie.movie_id);
        }
    }
    let mut by_title: HashMap<(String, i32), Option<i32>> = HashMap::new();
    for movie in movies.iter().filter(|m| m.imdb_id.is_none()) {
        if let Some(year) = movie.year {
            by_title.entry((normalise_for_matching(&movie.title), year)).and_modify(|slot| *slot = None).or_insert(Some(movie.movie_id));
        }
    }
    let mut data = ImdbData::default();
    let mut matched: HashMap<String, Vec<i32>> = HashMap::new();
    let mut claimed: HashSet<i32> = HashSet::new();
    let header = ["tconst", "titleType", "primaryTitle", "originalTitle", "isAdult", "startYear", "endYear", "runtimeMinutes", "genres"];
    for_each_row(&files.basics, &header, policy, |f| {
        let year = parse_optional_int::<i32>(f[5], "startYear")?;
        let runtime = parse_optional_int::<i32>(f[7], "runtimeMinutes")?.filter(|minutes| *minutes > 0);
        let movie_ids: Vec<i32> = match by_tconst.get(f[0]) {
            Some(ids) => ids.clone(),
            None if matches!(f[1], "movie" | "tvMovie" | "video") && !by_title.is_empty() => year
                .and_then(|year| [f[2], f[3]].iter().find_map(|title| by_title.get(&(normalise_for_matching(title), year)).copied().flatten()))
                .into_iter()
                .collect(),
            None => Vec::new(),
        };
        let movie_ids: Vec<i32> = movie_ids.into_iter().filter(|id| claimed.insert(*id)).collect();
        if movie_ids.is_empty() {
            return Ok(());
        }
        if !by_tconst.contains_key(f[0]) {
            data.matched_by_title += 1;
        }
        let genres: Vec<String> = null(f[8]).map(|g| g.split(',').map(str::to_string).collect()).unwrap_or_default();
        for &movie_id in &movie_ids {
            data.titles.push(MatchedTitle { movie_id, tconst: f[0].to_string(), runtime_minutes: runtime, year, genres: genres.clone() });
        }
        matched.insert(f[0].to_string(), movie_ids);
        Ok(())
    })?;

    let mut add_credit = |movie_id: i32, nconst: &str, role: Role, billing: Option<i16>, characters: Vec<String>| {
        let credit = data.credits.entry((movie_id, nconst.to_string(), role)).or_default();
        credit.billing_order = match (credit.billing_order, billing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        credit.characters.extend(characters);
    };
    for_each_row(&files.crew, &["tconst", "directors", "writers"], policy, |f| {
        let Some(movie_ids) = matched.get(f[0]) else { return Ok(()) };
        for &movie_id in movie_ids {
            for (field, role) in [(f[1], Role::Director), (f[2], Role::Writer)] {
                for nconst in null(field).into_iter().flat_map(|list| list.split(',')) {
                    add_credit(movie_id, nconst, role, None, Vec::new());
                }
            }
        }
        Ok(())
    })?;
    for_each_row(&files.principals, &["tconst", "ordering", "nconst", "category", "job", "characters"], policy, |f| {
        let Some(movie_ids) = matched.get(f[0]) else { return Ok(()) };
        let role = match f[3] {
            "actor" | "actress" | "self" => Role::Actor,
            "director" => Role::Director,
            "writer" => Role::Writer,
            _ => return Ok(()),
        };
        let ordering = parse_optional_int::<i16>(f[1], "ordering")?;
        let characters = match null(f[5]) {
            Some(json) => serde_json::from_str::<Vec<String>>(json).map_err(|_| format!("characters {json:?} is not a JSON array of strings"))?,
            None => Vec::new(),
        };
        for &movie_id in movie_ids {
            add_credit(movie_id, f[2], role, if role == Role::Actor { ordering } else { None }, characters.clone());
        }
        Ok(())
    })?;

    let wanted: HashSet<&str> = data.credits.keys().map(|(_, nconst, _)| nconst.as_str()).collect();
    let mut names = HashMap::new();
    for_each_row(&files.names, &["nconst", "primaryName", "birthYear", "deathYear", "primaryProfession", "knownForTitles"], policy, |f| {
        if wanted.contains(f[0]) {
            if let Some(name) = null(f[1]) {
                names.insert(f[0].to_string(), name.to_string());
            }
        }
        Ok(())
    })?;
    data.names = names;
    Ok(data)
}
