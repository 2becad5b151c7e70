//! Deterministic evaluation splits: a random hold-out of ratings, and a cold-start split that holds out a share
//! of movies entirely (every rating of those movies is test, none is training).
use super::data::Ratings;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

pub struct Split {
    pub train: Ratings,
    pub test: Ratings,
}

/// Holds out `fraction` of the ratings at random.
pub fn random_holdout(ratings: &Ratings, fraction: f64, seed: u64) -> Split {
    let mut order: Vec<usize> = (0..ratings.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let test_count = ((ratings.len() as f64) * fraction).round() as usize;
    let (test, train) = order.split_at(test_count);
    let (mut train, mut test) = (train.to_vec(), test.to_vec());
    train.sort_unstable();
    test.sort_unstable();
    Split { train: ratings.subset(&train), test: ratings.subset(&test) }
}

/// Holds out `fraction` of the rated movies with all their ratings.
pub fn cold_movies(ratings: &Ratings, fraction: f64, seed: u64) -> Split {
    let mut movies: Vec<i32> = ratings.movies.iter().copied().collect::<HashSet<_>>().into_iter().collect();
    movies.sort_unstable();
    movies.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ 0xC01D));
    let held: HashSet<i32> = movies.iter().take(((movies.len() as f64) * fraction).round() as usize).copied().collect();
    let (test, train): (Vec<usize>, Vec<usize>) = (0..ratings.len()).partition(|i| held.contains(&ratings.movies[*i]));
    Split { train: ratings.subset(&train), test: ratings.subset(&test) }
}

/// Test = the ratings whose (user, movie) pairs are listed in `path` (CSV with a header whose first two columns
/// are user and movie ids, e.g. the anchor harness's `test.csv`); train = all other ratings.
pub fn from_test_file(ratings: &Ratings, path: &std::path::Path) -> anyhow::Result<Split> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut pairs = HashSet::new();
    for (index, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let mut fields = line.split(',');
        let mut id = || -> anyhow::Result<i32> { Ok(fields.next().context("missing field")?.trim().parse()?) };
        let pair = (id(), id());
        match pair {
            (Ok(user), Ok(movie)) => pairs.insert((user, movie)),
            _ => anyhow::bail!("{}:{}: expected user_id,movie_id,…", path.display(), index + 1),
        };
    }
    let (test, train): (Vec<usize>, Vec<usize>) = (0..ratings.len()).partition(|i| pairs.contains(&(ratings.users[*i], ratings.movies[*i])));
    if test.len() != pairs.len() {
        eprintln!("note: {} of the {} pairs in {} are not in recsys.ratings", pairs.len() - test.len(), pairs.len(), path.display());
    }
    Ok(Split { train: ratings.subset(&train), test: ratings.subset(&test) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratings(n: usize) -> Ratings {
        Ratings {
            users: (0..n).map(|i| (i % 17) as i32).collect(),
            movies: (0..n).map(|i| (i % 29) as i32).collect(),
            values: vec![3.0; n],
            rated_at: vec![0; n],
        }
    }

    #[test]
    fn random_holdout_is_reproducible_and_disjoint() {
        let all = ratings(1_000);
        let (a, b) = (random_holdout(&all, 0.1, 7), random_holdout(&all, 0.1, 7));
        assert_eq!((a.test.len(), a.train.len()), (100, 900));
        assert_eq!(a.test.users, b.test.users);
        assert_ne!(random_holdout(&all, 0.1, 8).test.movies, a.test.movies);
    }

    #[test]
    fn cold_movies_never_appear_in_training() {
        let split = cold_movies(&ratings(1_000), 0.1, 3);
        let train: HashSet<i32> = split.train.movies.iter().copied().collect();
        assert!(!split.test.movies.is_empty());
        assert!(split.test.movies.iter().all(|m| !train.contains(m)));
        assert_eq!(split.test.movies.iter().collect::<HashSet<_>>().len(), 3);
    }
}
