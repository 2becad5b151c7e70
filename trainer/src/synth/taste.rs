//! The latent taste model behind synthetic ratings. Users belong to taste clusters with genre and people
//! affinities plus personal noise; movies have a quality and a long-tailed popularity. Users mostly rate what is
//! popular and what they like (ratings are missing not at random, as in MovieLens), so a model has real
//! collaborative and content structure to find.
use super::catalogue::{CatalogueMovie, GENRES};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Normal, WeightedAliasIndex};
use std::collections::{HashMap, HashSet};

const CLUSTERS: usize = 12;
const GLOBAL_MEAN: f64 = 3.55;

#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticUser {
    pub user_id: i32,
    pub gender: &'static str,
    pub age: i32,
    pub occupation: usize,
    pub zip_code: String,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyntheticRating {
    pub user_id: i32,
    pub movie_id: i32,
    pub rating: f32,
    pub timestamp: i64,
}

pub struct RatingPlan {
    pub users: usize,
    pub ratings: usize,
    pub min_ratings_per_user: usize,
    pub whole_stars: bool,
    pub first_timestamp: i64,
    pub first_user_id: i32,
}

struct Cluster {
    genre_affinity: [f64; GENRES.len()],
    people_affinity: HashMap<String, f64>,
}

/// Per-movie latent facts shared by all users.
struct MovieLatents {
    quality: f64,
    genres: Vec<usize>,
    people: Vec<String>,
}

pub fn generate_users(plan: &RatingPlan, rng: &mut ChaCha8Rng) -> Vec<SyntheticUser> {
    const AGES: [i32; 7] = [1, 18, 25, 35, 45, 50, 56];
    (0..plan.users)
        .map(|index| SyntheticUser {
            user_id: plan.first_user_id + index as i32,
            gender: if rng.gen_bool(0.72) { "M" } else { "F" },
            age: AGES[rng.gen_range(0..AGES.len())],
            occupation: rng.gen_range(0..21),
            zip_code: format!("{:05}", rng.gen_range(1000..99999)),
        })
        .collect()
}

/// Generates ratings for `plan.users` users over `movies` (movie ids are 1-based positions in `movies`).
pub fn generate_ratings(movies: &[CatalogueMovie], plan: &RatingPlan, rng: &mut ChaCha8Rng, mut sink: impl FnMut(SyntheticRating)) {
    let people: Vec<String> =
        movies.iter().flat_map(|m| m.directors.iter().chain(&m.actors)).cloned().collect::<HashSet<_>>().into_iter().collect::<Vec<_>>();
    let mut people = people;
    people.sort();
    let affinity = Normal::new(0.0, 0.55).expect("valid normal");
    let clusters: Vec<Cluster> = (0..CLUSTERS)
        .map(|_| {
            let genre_affinity = std::array::from_fn(|_| affinity.sample(rng));
            let mut people_affinity = HashMap::new();
            for person in &people {
                if rng.gen_bool(0.3) {
                    people_affinity.insert(person.clone(), affinity.sample(rng) * 1.2);
                }
            }
            Cluster { genre_affinity, people_affinity }
        })
        .collect();
    let quality = Normal::new(0.0, 0.45).expect("valid normal");
    let latents: Vec<MovieLatents> = movies
        .iter()
        .map(|m| MovieLatents {
            quality: quality.sample(rng),
            genres: m.genres.iter().filter_map(|g| GENRES.iter().position(|known| known == g)).collect(),
            people: m.directors.iter().chain(m.actors.iter().take(3)).cloned().collect(),
        })
        .collect();
    let mut ranks: Vec<usize> = (0..movies.len()).collect();
    for i in (1..ranks.len()).rev() {
        ranks.swap(i, rng.gen_range(0..=i));
    }
    let popularity: Vec<f64> = ranks.iter().map(|rank| 1.0 / ((*rank as f64) + 8.0).powf(0.95)).collect();
    let popular = WeightedAliasIndex::new(popularity).expect("positive weights");

    let noise = Normal::new(0.0, 0.55).expect("valid normal");
    let user_bias = Normal::new(0.0, 0.35).expect("valid normal");
    let personal = Normal::new(0.0, 0.25).expect("valid normal");
    let targets = ratings_per_user(plan, movies.len(), rng);
    for (index, &wanted) in targets.iter().enumerate() {
        let user_id = plan.first_user_id + index as i32;
        let cluster = &clusters[rng.gen_range(0..CLUSTERS)];
        let own_genres: [f64; GENRES.len()] = std::array::from_fn(|g| cluster.genre_affinity[g] + personal.sample(rng));
        let bias = user_bias.sample(rng);
        let preference = |movie: usize| -> f64 {
            let latent = &latents[movie];
            let genre =
                if latent.genres.is_empty() { 0.0 } else { latent.genres.iter().map(|g| own_genres[*g]).sum::<f64>() / latent.genres.len() as f64 };
            let people: f64 = latent.people.iter().filter_map(|p| cluster.people_affinity.get(p)).sum();
            latent.quality + genre + 0.6 * people
        };
        let start = plan.first_timestamp + rng.gen_range(0..3 * 365 * 86_400);
        let mut chosen = HashSet::with_capacity(wanted);
        let mut attempts = 0;
        while chosen.len() < wanted && attempts < wanted * 400 {
            attempts += 1;
            let movie = popular.sample(rng);
            let accept = 1.0 / (1.0 + (-2.0 * preference(movie)).exp());
            if chosen.contains(&movie) || !rng.gen_bool(accept.clamp(0.02, 1.0)) {
                continue;
            }
            chosen.insert(movie);
            let score = GLOBAL_MEAN + bias + preference(movie) + noise.sample(rng);
            let rating = if plan.whole_stars { score.round().clamp(1.0, 5.0) } else { (score * 2.0).round().clamp(1.0, 10.0) / 2.0 };
            sink(SyntheticRating { user_id, movie_id: movie as i32 + 1, rating: rating as f32, timestamp: start + rng.gen_range(0..90 * 86_400) });
        }
    }
}

/// How many movies each user rates: long-tailed (log-normal) activity scaled so that the counts add up to
/// `plan.ratings` exactly, each between `plan.min_ratings_per_user` and 60 % of the catalogue.
fn ratings_per_user(plan: &RatingPlan, movies: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let max_per_user = (movies * 3 / 5).max(plan.min_ratings_per_user).max(1);
    let floor = plan.min_ratings_per_user.min(max_per_user);
    let activity = LogNormal::new(0.0, 1.0).expect("valid lognormal");
    let weights: Vec<f64> = (0..plan.users).map(|_| activity.sample(rng)).collect();
    let mut counts = vec![floor; plan.users];
    let mut remaining = plan.ratings.saturating_sub(floor * plan.users).min((max_per_user - floor) * plan.users);
    while remaining > 0 {
        let open: f64 = weights.iter().zip(&counts).filter(|(_, c)| **c < max_per_user).map(|(w, _)| w).sum();
        let before = remaining;
        for (count, weight) in counts.iter_mut().zip(&weights) {
            if remaining == 0 {
                break;
            }
            let share = ((before as f64 * weight / open).floor() as usize).max(1).min(max_per_user - *count).min(remaining);
            *count += share;
            remaining -= share;
        }
    }
    counts
}
