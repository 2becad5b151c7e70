//! What the choices made on the validation share have in common: users' rating histories, the validation users a
//! choice is checked on, and the quality of one list against what a user liked.

/// A user's ratings as (movie row ≥ 1, rating): one list per user row.
pub type Histories = Vec<Vec<(i64, f32)>>;

/// The validation users a choice is made on: their rows and the movie rows they liked in validation.
#[derive(Clone, Copy)]
pub(crate) struct CheckedUsers<'a> {
    pub(crate) fit: &'a Histories,
    pub(crate) rows: &'a [usize],
    pub(crate) relevant: &'a [Vec<i64>],
}

/// The mean of Recall@10 (hits over min(10, relevant)) and binary NDCG@10 of one list of movie rows.
pub(crate) fn list_quality(list: &[i64], relevant: &[i64]) -> f64 {
    let ideal: f64 = (0..relevant.len().min(10)).map(|rank| 1.0 / ((rank + 2) as f64).log2()).sum();
    let gains: Vec<f64> = list.iter().enumerate().filter(|(_, m)| relevant.contains(m)).map(|(rank, _)| 1.0 / ((rank + 2) as f64).log2()).collect();
    let recall = gains.len() as f64 / relevant.len().clamp(1, 10) as f64;
    (recall + gains.iter().sum::<f64>() / ideal.max(f64::MIN_POSITIVE)) / 2.0
}
