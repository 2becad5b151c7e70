//! Why a pair scores what it scores: the raw (unclipped) score split into parts that add up to it. Additive terms
//! are exact (global, user and movie biases; the autoencoder blend as blended − hybrid). The hybrid network's
//! non-linear rest is attributed by exact Shapley values over seven feature groups — the user's embedding, the
//! movie's embedding, genres, title, directors, actors, year and runtime — against a baseline where each absent
//! group is "unknown" (embedding row 0, no genres, a zero title vector, no people, average year and runtime). All
//! 2⁷ = 128 coalitions run as one batched forward; Shapley's efficiency makes the parts sum to the score.
use crate::network::{ContentInputs, HybridRecommender};
use crate::scoring::FoldedUser;
use crate::ModelError;
use tch::{Kind, Tensor};

/// The feature groups the network's non-linear part is attributed to, in `Explanation::groups` order.
pub const GROUPS: [&str; 7] = ["user", "movie", "genres", "title", "directors", "actors", "year and runtime"];
const PLAYERS: usize = GROUPS.len();

/// A raw score split into parts; `total()` adds them up to `raw` (within float rounding).
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The raw (unclipped) score of the pair.
    pub raw: f32,
    /// The global bias (the training data's mean rating at initialisation, then learned); 0 without biases.
    pub global_bias: f32,
    /// The rest of the network's output for an unknown user and a featureless movie.
    pub baseline: f32,
    /// The user's bias and the movie's bias (0 without biases or for unknown rows).
    pub user_bias: f32,
    /// See `user_bias`.
    pub movie_bias: f32,
    /// Shapley value of each group of `GROUPS`, biases excluded (they are reported on their own).
    pub groups: [f32; PLAYERS],
    /// What the item autoencoder's blend adds on a pair both know (blended − hybrid score); 0 otherwise.
    pub autoencoder: f32,
}

impl Explanation {
    /// The sum of every part: the raw score, up to float rounding.
    pub fn total(&self) -> f32 {
        self.global_bias + self.baseline + self.user_bias + self.movie_bias + self.groups.iter().sum::<f32>() + self.autoencoder
    }
}

/// Shapley weight of a coalition of `size` players that a player joins: size! (n − size − 1)! / n!.
fn shapley_weight(size: usize) -> f64 {
    let factorial = |k: usize| (1..=k).map(|x| x as f64).product::<f64>();
    factorial(size) * factorial(PLAYERS - size - 1) / factorial(PLAYERS)
}

/// Each row of `actual` (one row) or of its baseline (zeros of the same shape and kind), as `present` says per row.
fn rows_where(present: &[bool], actual: &Tensor) -> Result<Tensor, ModelError> {
    let both = Tensor::f_cat(&[&actual.f_zeros_like()?, actual], 0)?;
    let index: Vec<i64> = present.iter().map(|p| i64::from(*p)).collect();
    Ok(both.f_index_select(0, &Tensor::f_from_slice(&index)?)?)
}

impl HybridRecommender {
    /// The parts of the raw score of user row `user_row` for the movie with embedding row `movie_row` (0 when the
    /// model has none) and raw content `content` (one row).
    pub fn explain(&self, user_row: i64, movie_row: i64, content: &ContentInputs) -> Result<Explanation, ModelError> {
        self.explain_user(&self.trained_user(user_row)?, movie_row, content)
    }

    /// User row `row`'s trained embedding and bias (0 without biases) as a vector.
    fn trained_user(&self, row: i64) -> Result<FoldedUser, ModelError> {
        let index = usize::try_from(row).map_err(|_| ModelError::InvalidArgument(format!("user row {row}")))?;
        let bias = if self.config.use_biases { self.user_bias.f_get(row)?.f_double_value(&[0])? as f32 } else { 0.0 };
        Ok(FoldedUser { row: index, embedding: Vec::try_from(self.user_embedding.f_get(row)?)?, bias })
    }

    /// `explain` for a user given as a vector (a fold-in result: the user's own row supplies the autoencoder part).
    pub fn explain_user(&self, user: &FoldedUser, movie_row: i64, content: &ContentInputs) -> Result<Explanation, ModelError> {
        if content.rows() != 1 {
            return Err(ModelError::InvalidArgument(format!("explain takes one movie's content, got {} rows", content.rows())));
        }
        tch::no_grad(|| {
            let coalitions = 1usize << PLAYERS;
            let has = |player: usize| (0..coalitions).map(|mask| mask & (1 << player) != 0).collect::<Vec<bool>>();
            let ids = |player: usize, row: i64| Tensor::f_from_slice(&has(player).iter().map(|p| if *p { row } else { 0 }).collect::<Vec<i64>>());
            let users = [self.trained_user(0)?, user.clone()];
            let inputs = ContentInputs {
                genres: rows_where(&has(2), &content.genres)?,
                titles: rows_where(&has(3), &content.titles)?,
                directors: rows_where(&has(4), &content.directors)?,
                actors: rows_where(&has(5), &content.actors)?,
                numeric: rows_where(&has(6), &content.numeric)?,
            };
            let encoded = self.encode_content(&inputs)?;
            let values: Vec<f32> = Vec::try_from(self.raw_scores_for_vectors(&users, &ids(0, 1)?, &ids(1, movie_row)?, &encoded, false)?)?;
            let mut groups = [0f32; PLAYERS];
            for (player, value) in groups.iter_mut().enumerate() {
                let bit = 1 << player;
                let sum: f64 = (0..coalitions)
                    .filter(|mask| mask & bit == 0)
                    .map(|mask: usize| shapley_weight(mask.count_ones() as usize) * f64::from(values[mask | bit] - values[mask]))
                    .sum();
                *value = sum as f32;
            }
            let full = coalitions - 1;
            let pair = |row: i64| Tensor::f_from_slice(&[row]);
            let blended = self.raw_scores_for_vectors(&users, &pair(1)?, &pair(movie_row)?, &encoded.f_get(full as i64)?.f_unsqueeze(0)?, true)?;
            let raw = blended.f_double_value(&[0])? as f32;
            let scalar = |table: &Tensor, row: i64| -> Result<f32, ModelError> {
                Ok(table.f_get(row)?.f_to_kind(Kind::Float)?.f_sum(Kind::Float)?.f_double_value(&[])? as f32)
            };
            let (global_bias, user_bias, movie_bias) = if self.config.use_biases {
                (scalar(&self.global_bias, 0)?, user.bias, scalar(&self.movie_bias, movie_row)?)
            } else {
                (0.0, 0.0, 0.0)
            };
            groups[0] -= user_bias;
            groups[1] -= movie_bias;
            let autoencoder = if self.autoencoder.is_some() { raw - values[full] } else { 0.0 };
            Ok(Explanation { raw, global_bias, baseline: values[0] - global_bias, user_bias, movie_bias, groups, autoencoder })
        })
    }
}

#[cfg(all(test, feature = "train"))]
mod tests {
    use super::*;
    use crate::network::tests::{content, small_config};
    use tch::{nn, Device};

    #[test]
    fn the_parts_add_up_to_the_raw_score_in_every_configuration() {
        for (dot_product, autoencoder, title_rank) in [(false, None, None), (true, None, None), (true, Some(2), Some(3)), (false, Some(3), None)] {
            tch::manual_seed(7);
            let store = nn::VarStore::new(Device::Cpu);
            let mut config = small_config();
            (config.dot_product, config.autoencoder_rank, config.title_rank) = (dot_product, autoencoder, title_rank);
            let network = HybridRecommender::new(&store.root(), &config);
            if let Some(tables) = &network.autoencoder {
                crate::train::autoencoder::tests::fill_randomly(tables);
                tch::no_grad(|| {
                    let _ = tables.user_known.get(1).fill_(1.0);
                    let _ = tables.movie_known.get(1).fill_(1.0);
                });
            }
            let inputs = content(1, &config);
            let mut blended_somewhere = false;
            for (user, movie) in [(1i64, 1i64), (2, 3), (0, 2), (3, 0), (0, 0)] {
                let explanation = network.explain(user, movie, &inputs).unwrap();
                let raw = network
                    .raw_scores_for_rows(&Tensor::from_slice(&[user]), &Tensor::from_slice(&[movie]), &network.encode_content(&inputs).unwrap())
                    .unwrap()
                    .double_value(&[0]) as f32;
                assert!((explanation.raw - raw).abs() < 1e-6, "the explained score is the network's: {} vs {raw}", explanation.raw);
                assert!(
                    (explanation.total() - raw).abs() < 1e-4,
                    "{config:?} ({user}, {movie}): parts {explanation:?} sum to {}, not {raw}",
                    explanation.total()
                );
                if user == 0 {
                    assert!(explanation.groups[0].abs() < 1e-6 && explanation.user_bias == 0.0, "an unknown user is the baseline: {explanation:?}");
                }
                if autoencoder.is_none() {
                    assert_eq!(explanation.autoencoder, 0.0);
                }
                blended_somewhere |= explanation.autoencoder != 0.0;
            }
            assert_eq!(blended_somewhere, autoencoder.is_some(), "the blend is its own part where the autoencoder knows the pair");
        }
    }

    #[test]
    fn a_folded_users_parts_add_up_to_its_score() {
        tch::manual_seed(5);
        let store = nn::VarStore::new(Device::Cpu);
        let config = crate::ModelConfig { dot_product: true, autoencoder_rank: Some(2), ..small_config() };
        let network = HybridRecommender::new(&store.root(), &config);
        crate::train::autoencoder::tests::fill_randomly(network.autoencoder.as_ref().unwrap());
        let inputs = content(1, &config);
        let folded = FoldedUser { row: 2, embedding: (0..config.user_dim).map(|i| (i as f32 * 0.37).sin()).collect(), bias: 0.4 };
        let explanation = network.explain_user(&folded, 3, &inputs).unwrap();
        let scorer = network.catalogue_scorer(&Tensor::from_slice(&[3i64]), &network.encode_content(&inputs).unwrap()).unwrap();
        let raw = scorer.raw_score_folded(&folded, 0).unwrap();
        assert!((explanation.raw - raw).abs() < 1e-5 && (explanation.total() - raw).abs() < 1e-4, "{explanation:?} vs {raw}");
        assert_eq!(explanation.user_bias, 0.4);
    }

    #[test]
    fn a_group_the_network_ignores_gets_nothing_and_content_groups_get_something() {
        tch::manual_seed(3);
        let store = nn::VarStore::new(Device::Cpu);
        let config = small_config();
        let network = HybridRecommender::new(&store.root(), &config);
        let genres = config.cardinalities.genres;
        tch::no_grad(|| {
            let _ = network.content_encoder.layers[0].weight.narrow(1, 0, genres).fill_(0.0);
        });
        let explanation = network.explain(1, 2, &content(1, &config)).unwrap();
        assert!(explanation.groups[2].abs() < 1e-6, "genres have no weight, so no part: {explanation:?}");
        assert!(explanation.groups[3].abs() > 1e-6 && explanation.groups[5].abs() > 1e-6, "title and actors do count: {explanation:?}");
    }
}
