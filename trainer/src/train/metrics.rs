//! Accuracy and ranking metrics, and the baselines every model is compared with on the same split:
//! global mean, user mean, and the regularised bias baseline (global + user + movie biases, as Surprise's
//! BaselineOnly with ALS: reg_i = 10, reg_u = 15, 10 iterations).
use super::data::Ratings;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Accuracy {
    pub rmse: f64,
    pub mae: f64,
    pub count: usize,
}

/// RMSE and MAE of predictions clipped to [low, high].
pub fn accuracy(predictions: &[f32], truth: &[f32], low: f64, high: f64) -> Accuracy {
    let (mut squared, mut absolute) = (0.0, 0.0);
    for (p, t) in predictions.iter().zip(truth) {
        let error = (*p as f64).clamp(low, high) - *t as f64;
        squared += error * error;
        absolute += error.abs();
    }
    let n = truth.len().max(1) as f64;
    Accuracy { rmse: (squared / n).sqrt(), mae: absolute / n, count: truth.len() }
}

/// Global mean, per-user means and regularised user/movie biases fitted on training ratings.
pub struct Baselines {
    pub global_mean: f64,
    user_mean: HashMap<i32, f64>,
    user_bias: HashMap<i32, f64>,
    movie_bias: HashMap<i32, f64>,
}

impl Baselines {
    pub fn fit(train: &Ratings) -> Self {
        let global_mean = train.mean();
        let mut sums: HashMap<i32, (f64, usize)> = HashMap::new();
        for (user, value) in train.users.iter().zip(&train.values) {
            let entry = sums.entry(*user).or_default();
            entry.0 += *value as f64;
            entry.1 += 1;
        }
        let user_mean = sums.iter().map(|(u, (s, n))| (*u, s / *n as f64)).collect();
        let (mut user_bias, mut movie_bias): (HashMap<i32, f64>, HashMap<i32, f64>) = (HashMap::new(), HashMap::new());
        for _ in 0..10 {
            movie_bias = offsets(&train.movies, &train.users, &train.values, global_mean, &user_bias, 10.0);
            user_bias = offsets(&train.users, &train.movies, &train.values, global_mean, &movie_bias, 15.0);
        }
        Self { global_mean, user_mean, user_bias, movie_bias }
    }

    pub fn predict_global(&self, test: &Ratings) -> Vec<f32> {
        vec![self.global_mean as f32; test.len()]
    }

    pub fn predict_user_mean(&self, test: &Ratings) -> Vec<f32> {
        test.users.iter().map(|u| *self.user_mean.get(u).unwrap_or(&self.global_mean) as f32).collect()
    }

    pub fn predict_bias(&self, test: &Ratings) -> Vec<f32> {
        (0..test.len())
            .map(|i| {
                (self.global_mean + self.user_bias.get(&test.users[i]).unwrap_or(&0.0) + self.movie_bias.get(&test.movies[i]).unwrap_or(&0.0)) as f32
            })
            .collect()
    }
}

/// One alternating least-squares half-step: per key, the regularised mean of what the global mean and the other
/// side's biases leave unexplained.
fn offsets(keys: &[i32], other_keys: &[i32], values: &[f32], mean: f64, other: &HashMap<i32, f64>, regularisation: f64) -> HashMap<i32, f64> {
    let mut sums: HashMap<i32, (f64, f64)> = HashMap::new();
    for ((key, other_key), value) in keys.iter().zip(other_keys).zip(values) {
        let entry = sums.entry(*key).or_default();
        entry.0 += *value as f64 - mean - other.get(other_key).unwrap_or(&0.0);
        entry.1 += 1.0;
    }
    sums.into_iter().map(|(key, (sum, count))| (key, sum / (regularisation + count))).collect()
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Ranking {
    pub recall_at_10: f64,
    pub ndcg_at_10: f64,
    pub users: usize,
}

/// Recall@10 (hits over min(10, relevant), as in Liang et al. 2018) and NDCG@10 of top-10 lists over movies a user
/// has not rated in training, against the user's test ratings ≥ `relevant_from`. `top10` returns a user's ten best unrated movie ids.
pub fn ranking(test: &Ratings, relevant_from: f32, users: &[i32], mut top10: impl FnMut(i32) -> Vec<i32>) -> Ranking {
    let mut relevant: HashMap<i32, HashSet<i32>> = HashMap::new();
    for i in 0..test.len() {
        if test.values[i] >= relevant_from {
            relevant.entry(test.users[i]).or_default().insert(test.movies[i]);
        }
    }
    let (mut recall, mut ndcg, mut counted) = (0.0, 0.0, 0);
    for user in users {
        let Some(wanted) = relevant.get(user) else { continue };
        let list = top10(*user);
        let gains: Vec<f64> = list.iter().enumerate().filter(|(_, m)| wanted.contains(m)).map(|(rank, _)| 1.0 / ((rank + 2) as f64).log2()).collect();
        let ideal: f64 = (0..wanted.len().min(10)).map(|rank| 1.0 / ((rank + 2) as f64).log2()).sum();
        recall += gains.len() as f64 / wanted.len().min(10) as f64;
        ndcg += gains.iter().sum::<f64>() / ideal;
        counted += 1;
    }
    let n = counted.max(1) as f64;
    Ranking { recall_at_10: recall / n, ndcg_at_10: ndcg / n, users: counted }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accuracy_clips_and_averages() {
        let a = accuracy(&[6.0, 3.0], &[5.0, 4.0], 0.5, 5.0);
        assert!((a.rmse - (0.5f64).sqrt()).abs() < 1e-9 && (a.mae - 0.5).abs() < 1e-9);
    }

    #[test]
    fn bias_baseline_learns_user_and_movie_offsets() {
        let mut train = Ratings::default();
        for user in 0..50 {
            for movie in 0..20 {
                train.users.push(user);
                train.movies.push(movie);
                train.values.push(if movie < 10 { 4.5 } else { 2.5 });
                train.rated_at.push(0);
            }
        }
        let baselines = Baselines::fit(&train);
        let probe = Ratings { users: vec![1, 1], movies: vec![0, 15], values: vec![4.5, 2.5], rated_at: vec![0, 0] };
        let bias = accuracy(&baselines.predict_bias(&probe), &probe.values, 0.5, 5.0);
        let global = accuracy(&baselines.predict_global(&probe), &probe.values, 0.5, 5.0);
        assert!(bias.rmse < 0.2 && global.rmse > 0.9, "shrunk towards 0 by the regularisation: {bias:?} {global:?}");
    }

    #[test]
    fn ranking_scores_hits_by_position() {
        let test = Ratings { users: vec![1, 1, 2], movies: vec![10, 11, 10], values: vec![5.0, 4.0, 2.0], rated_at: vec![0; 3] };
        let r = ranking(&test, 4.0, &[1, 2], |_| vec![11, 99, 10]);
        assert_eq!(r.users, 1);
        assert!((r.recall_at_10 - 1.0).abs() < 1e-9);
        let expected = (1.0 + 1.0 / 4f64.log2()) / (1.0 + 1.0 / 3f64.log2());
        assert!((r.ndcg_at_10 - expected).abs() < 1e-9);
    }
}
