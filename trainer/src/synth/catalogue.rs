//! Movie catalogues for synthetic data: the hand-written demo catalogue (`seeds/catalogue.tsv`: title, year,
//! runtime, genres, directors, actors — public facts) or a generated one of any size for benchmarks.
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::path::Path;

/// The MovieLens genre vocabulary.
pub const GENRES: [&str; 18] = [
    "Action",
    "Adventure",
    "Animation",
    "Children",
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

#[derive(Debug, Clone, PartialEq)]
pub struct CatalogueMovie {
    pub title: String,
    pub year: i32,
    pub runtime_minutes: i32,
    pub genres: Vec<String>,
    pub directors: Vec<String>,
    pub actors: Vec<String>,
}

pub fn read_catalogue(path: &Path) -> Result<Vec<CatalogueMovie>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read catalogue {}", path.display()))?;
    let mut movies = Vec::new();
    for (index, line) in text.lines().enumerate().skip(1).filter(|(_, line)| !line.trim().is_empty()) {
        let fields: Vec<&str> = line.split('\t').collect();
        let at = || format!("{}:{}", path.display(), index + 1);
        if fields.len() != 6 {
            bail!("{}: expected 6 tab-separated fields (title, year, runtime, genres, directors, actors), found {}", at(), fields.len());
        }
        let list = |field: &str| field.split('|').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect::<Vec<_>>();
        let genres = list(fields[3]);
        if let Some(unknown) = genres.iter().find(|g| !GENRES.contains(&g.as_str())) {
            bail!("{}: unknown genre {unknown:?}", at());
        }
        movies.push(CatalogueMovie {
            title: fields[0].to_string(),
            year: fields[1].parse().with_context(at)?,
            runtime_minutes: fields[2].parse().with_context(at)?,
            genres,
            directors: list(fields[4]),
            actors: list(fields[5]),
        });
    }
    Ok(movies)
}

const TITLE_ADJECTIVES: [&str; 24] = [
    "Silent", "Crimson", "Last", "Hidden", "Broken", "Golden", "Distant", "Wild", "Secret", "Endless", "Burning", "Frozen", "Lonely", "Electric",
    "Midnight", "Savage", "Gentle", "Restless", "Fallen", "Northern", "Hollow", "Bright", "Iron", "Velvet",
];
const TITLE_NOUNS: [&str; 24] = [
    "Harbor",
    "Empire",
    "River",
    "Garden",
    "Station",
    "Kingdom",
    "Summer",
    "Machine",
    "Promise",
    "Frontier",
    "Orchard",
    "Signal",
    "Voyage",
    "Carnival",
    "Witness",
    "Horizon",
    "Labyrinth",
    "Lighthouse",
    "Orchestra",
    "Desert",
    "Archive",
    "Comet",
    "Citadel",
    "Meadow",
];
const FIRST_NAMES: [&str; 20] = [
    "Ada", "Bruno", "Clara", "Dmitri", "Elena", "Felix", "Greta", "Hiro", "Ines", "Jonas", "Kemal", "Lena", "Marco", "Nadia", "Oskar", "Priya",
    "Quentin", "Rosa", "Sven", "Talia",
];
const LAST_NAMES: [&str; 20] = [
    "Abbott",
    "Brandt",
    "Castillo",
    "Duval",
    "Eriksen",
    "Fontaine",
    "Gallo",
    "Hartmann",
    "Ivanova",
    "Jansen",
    "Kowalski",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quinn",
    "Rossi",
    "Sato",
    "Varga",
];

/// A synthetic person name; distinct for every index (a numeral suffix once the name pairs run out).
fn person_name(index: usize) -> String {
    let pairs = FIRST_NAMES.len() * LAST_NAMES.len();
    let base = format!("{} {}", FIRST_NAMES[index % FIRST_NAMES.len()], LAST_NAMES[(index / FIRST_NAMES.len()) % LAST_NAMES.len()]);
    if index < pairs {
        base
    } else {
        format!("{base} {}", index / pairs + 1)
    }
}

/// A generated catalogue: synthetic titles and people, genre mixes, release years and runtimes shaped like MovieLens.
pub fn generate_catalogue(movies: usize, rng: &mut ChaCha8Rng) -> Vec<CatalogueMovie> {
    let directors = (movies / 6).max(2);
    let actors = (movies * 3 / 2).max(4);
    let runtime = Normal::new(108.0, 20.0).expect("valid normal");
    (0..movies)
        .map(|index| {
            let genre_count = rng.gen_range(1..=3);
            let mut genres: Vec<String> = GENRES.choose_multiple(rng, genre_count).map(|g| g.to_string()).collect();
            genres.sort();
            let title = format!(
                "The {} {} {}",
                TITLE_ADJECTIVES[rng.gen_range(0..TITLE_ADJECTIVES.len())],
                TITLE_NOUNS[rng.gen_range(0..TITLE_NOUNS.len())],
                index + 1
            );
            let year = 2023 - (rng.gen::<f64>().powf(1.8) * 100.0) as i32;
            let director = person_name(rng.gen_range(0..directors));
            let mut cast: Vec<String> = Vec::with_capacity(3);
            for _ in 0..3 {
                let actor = person_name(directors + rng.gen_range(0..actors));
                if !cast.contains(&actor) {
                    cast.push(actor);
                }
            }
            CatalogueMovie {
                title,
                year,
                runtime_minutes: Distribution::<f64>::sample(&runtime, rng).clamp(60.0, 240.0) as i32,
                genres,
                directors: vec![director],
                actors: cast,
            }
        })
        .collect()
}
