//! Top-k movies per user over a catalogue. In bfloat16, every candidate is pre-scored in one fast pass, then every
//! candidate whose pre-score lies within `RESCORE_MARGIN` of the k-th best is rescored exactly in float32: the
//! result (movies, order, scores) is the float32 one whenever the bfloat16 error stays below half the margin. For
//! large catalogues, two-stage ranking pre-scores with a cheap approximation instead and rescores the best few
//! hundred candidates exactly (`Retrieval::TwoStage`).
use crate::preference::{PreferenceScorer, PreferenceUser};
use crate::scoring::{CatalogueScorer, FoldedUser, Precision};
use crate::ModelError;

/// Rating points below the k-th best bfloat16 pre-score that a candidate may lie and still be rescored exactly.
/// The largest bfloat16 error measured on trained models is a small fraction of it (`recsys_bench serving`).
pub const RESCORE_MARGIN: f32 = 0.1;

/// The `k` best of `candidates` (catalogue positions) by `scores`, best first; ties go to the lower `ids` entry.
/// A short list out of many candidates is kept in a bounded heap whose worst entry most candidates lose to in one
/// comparison; a long one is selected in place.
pub fn top_k(scores: &[f32], ids: &[i32], mut candidates: Vec<usize>, k: usize) -> Vec<usize> {
    let better = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(ids[*a].cmp(&ids[*b]));
    let k = k.min(candidates.len());
    if k == 0 {
        return Vec::new();
    }
    if k.saturating_mul(HEAP_SHARE) < candidates.len() {
        return best_in_heap(scores, ids, &candidates, k);
    }
    if k < candidates.len() {
        candidates.select_nth_unstable_by(k - 1, better);
    }
    candidates.truncate(k);
    candidates.sort_by(better);
    candidates
}

/// Below one list entry per this many candidates, `top_k` keeps a heap instead of selecting in place.
const HEAP_SHARE: usize = 16;

/// The `k` best of a short list of catalogue `positions` with their `scores` (same order), as indices into the
/// list, best first; ties go to the lower id (`ids` by catalogue position).
pub(crate) fn top_k_of(positions: &[usize], scores: &[f32], ids: &[i32], k: usize) -> Vec<usize> {
    let list_ids: Vec<i32> = positions.iter().map(|p| ids[*p]).collect();
    top_k(scores, &list_ids, (0..positions.len()).collect(), k)
}

/// A candidate in `best_in_heap`: ordered worst-last by (score descending, id ascending), so the heap's top is the
/// worst of the kept.
#[derive(Clone, Copy)]
struct Kept {
    score: f32,
    id: i32,
    position: usize,
}

impl Kept {
    fn order(&self, other: &Self) -> std::cmp::Ordering {
        other.score.total_cmp(&self.score).then(self.id.cmp(&other.id))
    }
}

impl PartialEq for Kept {
    fn eq(&self, other: &Self) -> bool {
        self.order(other).is_eq()
    }
}

impl Eq for Kept {}

impl PartialOrd for Kept {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Kept {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order(other)
    }
}

/// The `k` best of `candidates`, best first, through a heap of at most `k` entries (1 ≤ `k` ≤ candidates).
fn best_in_heap(scores: &[f32], ids: &[i32], candidates: &[usize], k: usize) -> Vec<usize> {
    let mut heap = std::collections::BinaryHeap::with_capacity(k + 1);
    for &position in candidates {
        let entry = Kept { score: scores[position], id: ids[position], position };
        if heap.len() < k {
            heap.push(entry);
        } else if let Some(mut worst) = heap.peek_mut() {
            if entry < *worst {
                *worst = entry;
            }
        }
    }
    heap.into_sorted_vec().into_iter().map(|kept| kept.position).collect()
}

/// One user's ranking: (catalogue position, predicted rating clipped to the scale), best first.
pub type Ranking = Vec<(usize, f32)>;

/// Where a ranking's exactly scored candidates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retrieval {
    /// Every allowed movie is pre-scored by the full model (in `RankOptions::precision`).
    Exhaustive,
    /// The `candidates` allowed movies with the best approximate scores (exact terms plus a low-rank head,
    /// `CatalogueScorer::approximate_catalogue`) are scored exactly in float32; the rest never reach the head.
    TwoStage {
        /// Candidates per user (at least k).
        candidates: usize,
    },
}

/// How to rank: list length, arithmetic of the exhaustive pass, and where candidates come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RankOptions {
    /// Movies per user.
    pub k: usize,
    /// Arithmetic of the exhaustive pre-scoring pass.
    pub precision: Precision,
    /// Exhaustive or two-stage.
    pub retrieval: Retrieval,
}

/// The `k` best candidates of each user row by exact raw (unclipped) score; the returned ratings are clipped to the
/// rating scale afterwards, so candidates scoring above the scale keep the model's order instead of tying.
/// `candidates(i)` lists the catalogue positions user `i` may get; `ids` are the movie ids per position (tie-break:
/// lower id first).
pub fn rank_users(
    scorer: &CatalogueScorer,
    user_rows: &[i64],
    candidates: impl Fn(usize) -> Vec<usize>,
    ids: &[i32],
    options: RankOptions,
) -> Result<Vec<Ranking>, ModelError> {
    let exact = |users: &[i64], positions: &[i64]| {
        let rows: Vec<i64> = users.iter().map(|i| user_rows[*i as usize]).collect();
        scorer.score_pairs(&rows, positions)
    };
    let first_stage = match options.retrieval {
        Retrieval::Exhaustive => scorer.score_catalogue(user_rows, options.precision)?,
        Retrieval::TwoStage { .. } => scorer.approximate_catalogue(user_rows)?,
    };
    rank(scorer, first_stage, exact, candidates, ids, options)
}

/// `rank_users` for users fitted at query time (fold-in).
pub fn rank_folded_users(
    scorer: &CatalogueScorer,
    users: &[FoldedUser],
    candidates: impl Fn(usize) -> Vec<usize>,
    ids: &[i32],
    options: RankOptions,
) -> Result<Vec<Ranking>, ModelError> {
    let exact = |index: &[i64], positions: &[i64]| scorer.score_pairs_folded(users, index, positions);
    let first_stage = match options.retrieval {
        Retrieval::Exhaustive => scorer.score_catalogue_folded(users, options.precision)?,
        Retrieval::TwoStage { .. } => scorer.approximate_catalogue_folded(users)?,
    };
    rank(scorer, first_stage, exact, candidates, ids, options)
}

/// Top-k per user from `first_stage` [users, movies] scores: exact when exhaustive in float32, else each user's
/// pool (bfloat16: within `RESCORE_MARGIN` of the k-th best; two-stage: the best candidates) rescored by
/// `exact(user indexes, positions)`.
fn rank(
    scorer: &CatalogueScorer,
    first_stage: tch::Tensor,
    exact: impl Fn(&[i64], &[i64]) -> Result<Vec<f32>, ModelError>,
    candidates: impl Fn(usize) -> Vec<usize>,
    ids: &[i32],
    options: RankOptions,
) -> Result<Vec<Ranking>, ModelError> {
    let (movies, k) = (scorer.movies(), options.k);
    let scores: Vec<f32> = Vec::try_from(first_stage.f_flatten(0, -1)?)?;
    let per_user = scores.chunks_exact(movies.max(1));
    let pool_of = |approximate: &[f32], allowed: Vec<usize>| match options.retrieval {
        Retrieval::TwoStage { candidates } => top_k(approximate, ids, allowed, candidates.max(k)),
        Retrieval::Exhaustive => {
            let Some(kth) = top_k(approximate, ids, allowed.clone(), k).last().map(|p| approximate[*p]) else { return Vec::new() };
            allowed.into_iter().filter(|p| approximate[*p] >= kth - RESCORE_MARGIN).collect()
        }
    };
    if options.retrieval == Retrieval::Exhaustive && options.precision == Precision::Float32 {
        return Ok(per_user
            .enumerate()
            .map(|(user, user_scores)| top_k(user_scores, ids, candidates(user), k).into_iter().map(|p| (p, scorer.rating(user_scores[p]))).collect())
            .collect());
    }
    let pools: Vec<Vec<usize>> = per_user.enumerate().map(|(user, approximate)| pool_of(approximate, candidates(user))).collect();
    let pair_users: Vec<i64> = pools.iter().enumerate().flat_map(|(user, pool)| std::iter::repeat_n(user as i64, pool.len())).collect();
    let pair_positions: Vec<i64> = pools.iter().flatten().map(|p| *p as i64).collect();
    let exact = exact(&pair_users, &pair_positions)?;
    let mut offset = 0;
    Ok(pools
        .into_iter()
        .map(|pool| {
            let pool_scores = &exact[offset..offset + pool.len()];
            offset += pool.len();
            top_k_of(&pool, pool_scores, ids, k).into_iter().map(|i| (pool[i], scorer.rating(pool_scores[i]))).collect()
        })
        .collect())
}

/// Candidates beyond k, by preference score, whose predicted rating is computed when a list's order blends it in
/// (the rating head runs for k + 90 pairs per list, never over the whole catalogue).
pub const BLEND_POOL_EXTRA: usize = 90;

/// Whose ratings the rating head predicts: trained user rows, or users fitted at query time.
#[derive(Clone, Copy)]
pub enum RatingUsers<'a> {
    /// User rows of the model.
    Rows(&'a [i64]),
    /// Users folded in at query time.
    Folded(&'a [FoldedUser]),
}

impl RatingUsers<'_> {
    fn exact(&self, scorer: &CatalogueScorer, index: &[i64], positions: &[i64]) -> Result<Vec<f32>, ModelError> {
        match self {
            Self::Rows(rows) => scorer.score_pairs(&index.iter().map(|i| rows[*i as usize]).collect::<Vec<_>>(), positions),
            Self::Folded(users) => scorer.score_pairs_folded(users, index, positions),
        }
    }
}

/// The `k` best candidates of each user by the order the trainer chose on validation: the preference score of the
/// user (`vectors[i]`, from the movies they rated), exact over the whole catalogue (a dot product per movie and the
/// item neighbourhood's sum), plus `preference.blend()` times the exact raw predicted rating of the best `k + BLEND_POOL_EXTRA` by
/// preference (with a blend of 0, of the k returned only). The returned score is the predicted rating, clipped to
/// the scale. Ties go to the lower movie id. The rating head never runs over the catalogue, so precision does not
/// apply; two-stage retrieval takes a few users' preference pools from an int8 pre-pass with exact rescoring
/// (`preference_pools`): the same lists up to float32 rounding of near-equal scores.
pub fn rank_by_preference(
    scorer: &CatalogueScorer,
    preference: &PreferenceScorer,
    users: RatingUsers<'_>,
    vectors: &[PreferenceUser],
    candidates: impl Fn(usize) -> Vec<usize>,
    ids: &[i32],
    options: RankOptions,
) -> Result<Vec<Ranking>, ModelError> {
    let (movies, k, blend) = (preference.movies(), options.k, preference.blend());
    if movies != scorer.movies() {
        return Err(ModelError::InvalidArgument(format!("{movies} preference movies for a catalogue of {}", scorer.movies())));
    }
    let pool_size = if blend == 0.0 { k } else { k + BLEND_POOL_EXTRA };
    let scored_pools = preference_pools(preference, vectors, &candidates, ids, pool_size, options.retrieval)?;
    let pools: Vec<Vec<usize>> = scored_pools.iter().map(|pool| pool.iter().map(|(p, _)| *p).collect()).collect();
    let pair_users: Vec<i64> = pools.iter().enumerate().flat_map(|(user, pool)| std::iter::repeat_n(user as i64, pool.len())).collect();
    let pair_positions: Vec<i64> = pools.iter().flatten().map(|p| *p as i64).collect();
    let ratings = users.exact(scorer, &pair_users, &pair_positions)?;
    let mut offset = 0;
    Ok(pools
        .into_iter()
        .enumerate()
        .map(|(user, pool)| {
            let pool_ratings = &ratings[offset..offset + pool.len()];
            offset += pool.len();
            let order: Vec<f32> = scored_pools[user].iter().zip(pool_ratings).map(|((_, preference), r)| preference + blend * r).collect();
            top_k_of(&pool, &order, ids, k).into_iter().map(|i| (pool[i], scorer.rating(pool_ratings[i]))).collect()
        })
        .collect())
}

/// Users per call up to which a two-stage preference order takes each user's pool from the int8 pre-pass
/// (`PreferenceScorer::pool_candidates`, memory-bound reads of a quarter of the bytes); more users share one
/// float32 matrix product over the catalogue instead, which is compute-bound and faster per user.
pub const PRESCAN_MAX_USERS: usize = 4;

/// Each user's `pool` best candidates by preference score with those scores, best first (ties: lower id first):
/// from one float32 matrix product over the catalogue, or with two-stage retrieval and at most
/// `PRESCAN_MAX_USERS` users from the int8 pre-pass with exact rescoring (the same pool: its bound is proven).
fn preference_pools(
    preference: &PreferenceScorer,
    vectors: &[PreferenceUser],
    candidates: &impl Fn(usize) -> Vec<usize>,
    ids: &[i32],
    pool: usize,
    retrieval: Retrieval,
) -> Result<Vec<Vec<(usize, f32)>>, ModelError> {
    let best = |scored: Vec<(usize, f32)>| -> Vec<(usize, f32)> {
        let (positions, scores): (Vec<usize>, Vec<f32>) = scored.iter().copied().unzip();
        top_k_of(&positions, &scores, ids, pool).into_iter().map(|i| scored[i]).collect()
    };
    if matches!(retrieval, Retrieval::TwoStage { .. }) && vectors.len() <= PRESCAN_MAX_USERS {
        return vectors.iter().enumerate().map(|(user, vector)| Ok(best(preference.pool_candidates(vector, &candidates(user), pool)?))).collect();
    }
    let movies = preference.movies();
    let preferences: Vec<f32> = Vec::try_from(preference.scores(vectors)?.f_flatten(0, -1)?)?;
    Ok(preferences
        .chunks_exact(movies.max(1))
        .enumerate()
        .map(|(user, scores)| top_k(scores, ids, candidates(user), pool).into_iter().map(|p| (p, scores[p])).collect())
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

    #[test]
    fn the_heap_and_the_full_sort_pick_the_same_list() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..200 {
            let movies = 50 + (next() % 3000) as usize;
            let scores: Vec<f32> = (0..movies).map(|_| (next() % 40) as f32 / 8.0 - 2.0).collect();
            let ids: Vec<i32> = (0..movies).map(|m| (m as i32 * 7919) % 100_003).collect();
            let candidates: Vec<usize> = (0..movies).filter(|_| next() % 5 != 0).collect();
            let k = 1 + (next() % 120) as usize;
            let mut sorted = candidates.clone();
            sorted.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(ids[*a].cmp(&ids[*b])));
            sorted.truncate(k);
            assert_eq!(top_k(&scores, &ids, candidates.clone(), k), sorted, "round {round}: {movies} movies, k {k}");
            assert_eq!(best_in_heap(&scores, &ids, &candidates, k.min(candidates.len())), sorted, "round {round}, the heap itself");
        }
    }
}
