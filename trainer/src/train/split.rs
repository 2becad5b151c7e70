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

/// Test = the ratings whose (user, movie) pairs are listed in `path` (comma- or tab-separated, first two columns
/// user and movie ids, an optional header: the anchor harness's `test.csv`, ML-100K's `u1.test`); train = all
/// other ratings.
pub fn from_test_file(ratings: &Ratings, path: &std::path::Path) -> anyhow::Result<Split> {
    use anyhow::Context;
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut pairs = HashSet::new();
    for (index, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let mut fields = line.split([',', '\t']);
        let mut id = || -> anyhow::Result<i32> { Ok(fields.next().context("missing field")?.trim().parse()?) };
        let pair = (id(), id());
        match pair {
            (Ok(user), Ok(movie)) => pairs.insert((user, movie)),
            _ if index == 0 => false,
            _ => anyhow::bail!("{}:{}: expected user_id,movie_id,…", path.display(), index + 1),
        };
    }
    let (test, train): (Vec<usize>, Vec<usize>) = (0..ratings.len()).partition(|i| pairs.contains(&(ratings.users[*i], ratings.movies[*i])));
    let found: HashSet<(i32, i32)> = test.iter().map(|i| (ratings.users[*i], ratings.movies[*i])).collect();
    if found.len() < pairs.len() {
        eprintln!("note: {} of the {} pairs in {} are not in recsys.ratings", pairs.len() - found.len(), pairs.len(), path.display());
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
    fn test_pairs_are_read_from_csv_with_a_header_or_from_tab_separated_files() {
        let all = ratings(1_000);
        let dir = std::env::temp_dir().join(format!("recsys-split-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in [("test.csv", "user_id,movie_id,rating\n1,1,4\n2,2,3\n"), ("u1.test", "1\t1\t4\t881250949\n2\t2\t3\t881250949\n")] {
            std::fs::write(dir.join(name), text).unwrap();
            let split = from_test_file(&all, &dir.join(name)).unwrap();
            assert!(
                split.test.len() > 0 && split.test.users.iter().zip(&split.test.movies).all(|(u, m)| (u, m) == (&1, &1) || (u, m) == (&2, &2)),
                "{name}"
            );
            assert_eq!(split.test.len() + split.train.len(), 1_000);
        }
        std::fs::write(dir.join("bad.csv"), "user_id,movie_id\n1,1\nx,2\n").unwrap();
        assert!(from_test_file(&all, &dir.join("bad.csv")).err().is_some_and(|e| e.to_string().contains("bad.csv:3")));
        std::fs::remove_dir_all(&dir).unwrap();
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
