//! The order's weights, chosen on the validation share after the preference part is fitted: how a user's rated movies
//! count in the item-neighbourhood score (`NeighbourInput`), the neighbourhood's weight, and the weight of the raw
//! predicted rating; each combination ranks the validation users' lists as `rank_by_preference` does.
use super::validation::{list_quality, CheckedUsers};
use crate::config::NeighbourInput;
use crate::network::HybridRecommender;
use crate::preference::CatalogueNeighbours;
use crate::ranking::{top_k, BLEND_POOL_EXTRA};
use crate::ModelError;
use std::collections::{BTreeSet, HashMap};
use tch::Tensor;

/// Weights of the raw predicted rating tried in the order (preference scores are log-odds; ratings are stars).
pub const BLEND_WEIGHTS: [f32; 9] = [0.0, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0];
/// Weights of the item-neighbourhood score tried in the preference score (its sums of item-item weights are small
/// beside log-odds).
pub const NEIGHBOUR_WEIGHTS: [f32; 12] = [0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 100.0];
/// The ways of counting rated movies in the neighbourhood score that are tried (the first wins ties).
const NEIGHBOUR_INPUTS: [NeighbourInput; 2] = [NeighbourInput::Rated, NeighbourInput::LikedTwice];

/// The order taken when there is no validation share to choose on (`--validation-fraction 0`): of the combinations
/// tried, the one with the best mean of (its quality / the best quality) over the validation shares of ml-latest-small
/// random and ML-100K u1 (0.988 of the best on each; the preference part alone reached 0.78 and 0.89,
/// docs/benchmarks.md). Without a neighbourhood its weight is 0.
pub const UNVALIDATED_ORDER: BlendTried =
    BlendTried { neighbour_input: NeighbourInput::LikedTwice, neighbour_weight: 15.0, rating_weight: 2.0, quality: f64::NAN };

/// Pairs the rating head scores at once while the blend is chosen (the first layer's activations: 64 MB at 256 wide).
const PAIRS_PER_PASS: usize = 65_536;

/// Each validation user's preference scores over every trained movie, for a subset of users (in chunks of 256).
pub(super) type PreferenceScores<'a> = &'a dyn Fn(&[usize]) -> Result<Vec<Tensor>, ModelError>;

/// One combination tried: the neighbourhood's input and weight, the rating's weight, and the mean of validation
/// Recall@10 and NDCG@10 it reached.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct BlendTried {
    /// How rated movies counted in the neighbourhood score.
    pub neighbour_input: NeighbourInput,
    /// The neighbourhood's weight.
    pub neighbour_weight: f32,
    /// The predicted rating's weight.
    pub rating_weight: f32,
    /// Mean of Recall@10 and NDCG@10 over the users checked.
    pub quality: f64,
}

/// The combination `choose_blend` chose, every combination it tried, and the users it used.
pub(super) struct BlendChoice {
    pub(super) chosen: BlendTried,
    pub(super) tried: Vec<BlendTried>,
    pub(super) users: usize,
}

/// A validation user's pools under every (input, neighbourhood weight): their best candidates with that order's score.
type Pools = Vec<Vec<(usize, f32)>>;

impl HybridRecommender {
    /// The combination that orders the `checked` validation users' lists best by the mean of Recall@10 and NDCG@10
    /// (ties: the earlier tried: fewer liked counts, smaller weights); each list is the user's best
    /// `10 + BLEND_POOL_EXTRA` candidates by preference + neighbourhood, reordered with the predicted rating. With no
    /// users to check, `UNVALIDATED_ORDER`.
    pub(super) fn choose_blend(
        &self,
        rows: &Tensor,
        content: &Tensor,
        checked: &CheckedUsers<'_>,
        validate: PreferenceScores<'_>,
    ) -> Result<BlendChoice, ModelError> {
        let CheckedUsers { fit, rows: subset, relevant } = *checked;
        let count = subset.len();
        let tables = self.preference.as_ref().and_then(|t| t.neighbours.as_ref());
        if subset.is_empty() {
            let chosen = match tables {
                Some(_) => UNVALIDATED_ORDER,
                None => BlendTried { neighbour_input: NeighbourInput::Rated, neighbour_weight: 0.0, ..UNVALIDATED_ORDER },
            };
            return Ok(BlendChoice { chosen, tried: Vec::new(), users: 0 });
        }
        let alone = BlendTried { neighbour_input: NeighbourInput::Rated, neighbour_weight: 0.0, rating_weight: 0.0, quality: 0.0 };
        let scorer = self.catalogue_scorer(rows, content)?;
        let row_list: Vec<i64> = Vec::try_from(rows)?;
        let rating_max = self.config.rating_max as f32;
        let neighbourhoods = match tables {
            Some(tables) => NEIGHBOUR_INPUTS
                .iter()
                .map(|input| CatalogueNeighbours::over(tables, &row_list, *input, rating_max))
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let movies = scorer.movies();
        let ids: Vec<i32> = (0..movies as i32).collect();
        let mut users = Vec::with_capacity(count);
        for (chunk, scores) in subset.chunks(256).zip(validate(subset)?) {
            let values: Vec<f32> = Vec::try_from(scores.f_flatten(0, -1)?)?;
            for (user, row) in chunk.iter().zip(values.chunks_exact(movies.max(1))) {
                let rated: Vec<(usize, f32)> = fit[*user].iter().map(|(m, r)| ((*m - 1) as usize, *r)).collect();
                let nearby: Vec<Vec<f32>> = neighbourhoods.iter().map(|n| n.scores(&rated)).collect();
                users.push((*user, rated, row.to_vec(), nearby));
            }
        }
        let mut orders = vec![(NeighbourInput::Rated, 0usize, 0.0f32)];
        for (index, input) in NEIGHBOUR_INPUTS.iter().enumerate().take(neighbourhoods.len()) {
            orders.extend(NEIGHBOUR_WEIGHTS[1..].iter().map(|gamma| (*input, index, *gamma)));
        }
        let mut pools_by_order: Vec<Pools> = Vec::with_capacity(orders.len());
        for (_, index, gamma) in &orders {
            let mut pools = Vec::with_capacity(count);
            for (_, rated, preference, nearby) in &users {
                let near = nearby.get(*index);
                let first: Vec<f32> =
                    preference.iter().enumerate().map(|(p, v)| v + gamma * near.and_then(|n| n.get(p)).copied().unwrap_or(0.0)).collect();
                let mut allowed = vec![true; movies];
                rated.iter().for_each(|(p, _)| allowed[*p] = false);
                let pool = top_k(&first, &ids, (0..movies).filter(|m| allowed[*m]).collect(), 10 + BLEND_POOL_EXTRA);
                pools.push(pool.into_iter().map(|p| (p, first[p])).collect::<Vec<_>>());
            }
            pools_by_order.push(pools);
        }
        let ratings = self.pool_ratings(&scorer, &users.iter().map(|(user, ..)| *user as i64).collect::<Vec<_>>(), &pools_by_order)?;
        let mut tried = Vec::new();
        for ((input, _, gamma), pools) in orders.iter().zip(&pools_by_order) {
            for weight in BLEND_WEIGHTS {
                let mut quality = 0.0;
                for (index, (pool, relevant)) in pools.iter().zip(relevant).enumerate() {
                    let order: Vec<f32> = pool.iter().map(|(p, preference)| preference + weight * ratings[index][p]).collect();
                    let pool_ids: Vec<i32> = pool.iter().map(|(p, _)| *p as i32).collect();
                    let top = top_k(&order, &pool_ids, (0..pool.len()).collect(), 10);
                    let list: Vec<i64> = top.iter().map(|i| pool[*i].0 as i64 + 1).collect();
                    quality += list_quality(&list, relevant);
                }
                let quality = quality / pools.len() as f64;
                tried.push(BlendTried { neighbour_input: *input, neighbour_weight: *gamma, rating_weight: weight, quality });
            }
        }
        let chosen =
            tried.iter().fold(BlendTried { quality: f64::NEG_INFINITY, ..alone }, |best, t| if t.quality > best.quality + 1e-9 { *t } else { best });
        Ok(BlendChoice { chosen, tried, users: count })
    }

    /// The raw predicted rating of every (user, position) in any of the pools, scored in batched passes of at most
    /// `PAIRS_PER_PASS` pairs: per user index, position → rating.
    fn pool_ratings(
        &self,
        scorer: &crate::scoring::CatalogueScorer,
        user_rows: &[i64],
        pools_by_order: &[Pools],
    ) -> Result<Vec<HashMap<usize, f32>>, ModelError> {
        let mut wanted: Vec<BTreeSet<usize>> = vec![Default::default(); user_rows.len()];
        for pools in pools_by_order {
            for (user, pool) in pools.iter().enumerate() {
                wanted[user].extend(pool.iter().map(|(p, _)| *p));
            }
        }
        let pairs: Vec<(usize, usize)> = wanted.iter().enumerate().flat_map(|(user, set)| set.iter().map(move |p| (user, *p))).collect();
        let mut ratings = vec![HashMap::new(); user_rows.len()];
        for chunk in pairs.chunks(PAIRS_PER_PASS) {
            let rows: Vec<i64> = chunk.iter().map(|(user, _)| user_rows[*user]).collect();
            let positions: Vec<i64> = chunk.iter().map(|(_, p)| *p as i64).collect();
            for ((user, position), rating) in chunk.iter().zip(scorer.score_pairs(&rows, &positions)?) {
                ratings[*user].insert(*position, rating);
            }
        }
        Ok(ratings)
    }
}
