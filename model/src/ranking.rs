//! Top-k movies per user over a catalogue. In bfloat16, every candidate is pre-scored in one fast pass, then every
//! candidate whose pre-score lies within `RESCORE_MARGIN` of the k-th best is rescored exactly in float32: the
//! result (movies, order, scores) is the float32 one whenever the bfloat16 error stays below half the margin.
use crate::scoring::{CatalogueScorer, FoldedUser, Precision};
use crate::ModelError;

/// Rating points below the k-th best bfloat16 pre-score that a candidate may lie and still be rescored exactly.
/// The largest bfloat16 error measured on trained models is a small fraction of it (`recsys_bench serving`).
pub const RESCORE_MARGIN: f32 = 0.1;

/// The `k` best of `candidates` (catalogue positions) by `scores`, best first; ties go to the lower `ids` entry.
pub fn top_k(scores: &[f32], ids: &[i32], mut candidates: Vec<usize>, k: usize) -> Vec<usize> {
    let better = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(ids[*a].cmp(&ids[*b]));
    let k = k.min(candidates.len());
    if k > 0 && k < candidates.len() {
        candidates.select_nth_unstable_by(k - 1, better);
    }
    candidates.truncate(k);
    candidates.sort_by(better);
    candidates
}

/// One user's ranking: (catalogue position, predicted rating clipped to the scale), best first.
pub type Ranking = Vec<(usize, f32)>;

/// The `k` best candidates of each user row by exact raw (unclipped) score; the returned ratings are clipped to the
/// rating scale afterwards, so candidates scoring above the scale keep the model's order instead of tying.
/// `candidates(i)` lists the catalogue positions user `i` may get; `ids` are the movie ids per position (tie-break:
/// lower id first).
pub fn rank_users(
    scorer: &CatalogueScorer,
    user_rows: &[i64],
    candidates: impl Fn(usize) -> Vec<usize>,
    ids: &[i32],
    k: usize,
    precision: Precision,
) -> Result<Vec<Ranking>, ModelError> {
    let exact = |users: &[i64], positions: &[i64]| {
        let rows: Vec<i64> = users.iter().map(|i| user_rows[*i as usize]).collect();
        scorer.score_pairs(&rows, positions)
    };
    rank(scorer, scorer.score_catalogue(user_rows, precision)?, exact, candidates, ids, k, precision)
}

/// `rank_users` for users fitted at query time (fold-in).
pub fn rank_folded_users(
    scorer: &CatalogueScorer,
    users: &[FoldedUser],
    candidates: impl Fn(usize) -> Vec<usize>,
    ids: &[i32],
    k: usize,
    precision: Precision,
) -> Result<Vec<Ranking>, ModelError> {
    let exact = |index: &[i64], positions: &[i64]| scorer.score_pairs_folded(users, index, positions);
    rank(scorer, scorer.score_catalogue_folded(users, precision)?, exact, candidates, ids, k, precision)
}

/// Top-k per user from `catalogue` [users, movies] scores in `precision`; in bfloat16 the close candidates are
/// rescored by `exact(user indexes, positions)`.
fn rank(
    scorer: &CatalogueScorer,
    catalogue: tch::Tensor,
    exact: impl Fn(&[i64], &[i64]) -> Result<Vec<f32>, ModelError>,
    candidates: impl Fn(usize) -> Vec<usize>,
    ids: &[i32],
    k: usize,
    precision: Precision,
) -> Result<Vec<Ranking>, ModelError> {
    let movies = scorer.movies();
    let scores: Vec<f32> = Vec::try_from(catalogue.f_flatten(0, -1)?)?;
    let per_user = scores.chunks_exact(movies.max(1));
    if precision == Precision::Float32 {
        return Ok(per_user
            .enumerate()
            .map(|(user, user_scores)| top_k(user_scores, ids, candidates(user), k).into_iter().map(|p| (p, scorer.rating(user_scores[p]))).collect())
            .collect());
    }
    let pools: Vec<Vec<usize>> = per_user
        .enumerate()
        .map(|(user, approximate)| {
            let pool = candidates(user);
            let Some(kth) = top_k(approximate, ids, pool.clone(), k).last().map(|p| approximate[*p]) else { return Vec::new() };
            pool.into_iter().filter(|p| approximate[*p] >= kth - RESCORE_MARGIN).collect()
        })
        .collect();
    let pair_users: Vec<i64> = pools.iter().enumerate().flat_map(|(user, pool)| std::iter::repeat_n(user as i64, pool.len())).collect();
    let pair_positions: Vec<i64> = pools.iter().flatten().map(|p| *p as i64).collect();
    let exact = exact(&pair_users, &pair_positions)?;
    let mut offset = 0;
    Ok(pools
        .into_iter()
        .map(|pool| {
            let pool_scores = &exact[offset..offset + pool.len()];
            offset += pool.len();
            let pool_ids: Vec<i32> = pool.iter().map(|p| ids[*p]).collect();
            top_k(pool_scores, &pool_ids, (0..pool.len()).collect(), k).into_iter().map(|i| (pool[i], scorer.rating(pool_scores[i]))).collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_score_then_id() {
        let scores = [1.0, 3.0, 2.0, 3.0, 0.5];
        let ids = [10, 40, 30, 20, 50];
        assert_eq!(top_k(&scores, &ids, vec![0, 1, 2, 3, 4], 3), [3, 1, 2]);
        assert_eq!(top_k(&scores, &ids, vec![0, 4], 10), [0, 4]);
        assert!(top_k(&scores, &ids, vec![], 3).is_empty());
    }
}
