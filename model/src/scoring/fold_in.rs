//! Fold-in: a user's embedding row and bias fitted at query time to ratings the model never saw, with the network
//! frozen. Regularised Gauss–Newton on (embedding, bias) in plain Rust: each rating's score and its gradient come from
//! `raw_scores` over a `FoldedPair` (the head is piecewise linear in the embedding, so a few steps converge), and a
//! (d+1)×(d+1) solve. The prior pulls towards the trained row (or the unknown user's zero row) with
//! an L2 weight per rating, counted over old and new ratings. The autoencoder's user part is kept.
use super::core::{raw_scores, AutoencoderTerms, ScoringTables};
use super::matrix::{Layer, Matrix};
use super::passes::{FoldedPair, Linearised};
use super::CatalogueScorer;
use crate::ModelError;
use tch::Tensor;

/// A user's vector fitted at query time: embedding and bias; everything else of the user (the autoencoder's user
/// part) comes from `row`.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldedUser {
    /// The user's row in the model (0: a user the model has never seen).
    pub row: usize,
    /// The fitted embedding, user_dim wide.
    pub embedding: Vec<f32>,
    /// The fitted user bias.
    pub bias: f32,
}

/// How strongly fold-in holds on to the starting vector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoldInOptions {
    /// L2 weight per rating on the distance from the starting vector, counted over the ratings the trained row
    /// reflects, the new ones and `prior_ratings`. The default, 2, is `scripts/bench.sh fold-in`'s best on
    /// ml-latest-small; the trainer's own 0.05 over-fits a handful of ratings.
    pub l2_per_rating: f32,
    /// Ratings' worth of prior a user the model never saw starts with (the zero row).
    pub prior_ratings: f32,
    /// Gauss–Newton steps at most.
    pub steps: usize,
}

impl Default for FoldInOptions {
    fn default() -> Self {
        Self { l2_per_rating: 2.0, prior_ratings: 5.0, steps: 6 }
    }
}

impl CatalogueScorer {
    /// Width of the user embedding.
    pub fn user_dim(&self) -> usize {
        self.tables.user_layer.inputs
    }

    /// The trained vector of user `row` as a `FoldedUser` (nothing fitted yet).
    pub fn trained_user(&self, row: usize) -> Result<FoldedUser, ModelError> {
        let embedding = self
            .tables
            .user_embedding
            .row(row, self.user_dim())
            .ok_or_else(|| ModelError::InvalidArgument(format!("user row {row} is outside the model")))?;
        Ok(FoldedUser { row, embedding: embedding.to_vec(), bias: self.tables.user_bias.value(row)? })
    }

    /// The raw score of `user` for catalogue `position` (`raw_scores` over a `FoldedPair`) and, when
    /// `with_gradient`, its gradient with respect to [embedding; bias] (else empty).
    fn evaluate(&self, user: &FoldedUser, user_first: &[f32], position: usize, with_gradient: bool) -> Result<Linearised, ModelError> {
        let movie_part = self
            .movie_part(position)
            .ok_or_else(|| ModelError::InvalidArgument(format!("catalogue position {position} is outside the {} movies", self.movies)))?;
        let pass = FoldedPair { row: user.row, embedding: &user.embedding, bias: user.bias, user_first, movie_part, position, with_gradient };
        raw_scores(&self.tables, &pass)
    }

    fn linearise(&self, user: &FoldedUser, user_first: &[f32], position: usize) -> Result<Linearised, ModelError> {
        self.evaluate(user, user_first, position, true)
    }

    /// The raw score of a folded user for a position, without its gradient (a third of `linearise`'s work).
    fn folded_score(&self, user: &FoldedUser, user_first: &[f32], position: usize) -> Result<f32, ModelError> {
        Ok(self.evaluate(user, user_first, position, false)?.score)
    }

    /// The raw score of a folded user for a catalogue position.
    pub fn raw_score_folded(&self, user: &FoldedUser, position: usize) -> Result<f32, ModelError> {
        self.raw_score_folded_with(user, &self.folded_first_layer(user), position)
    }

    /// The head's first-layer part of a folded user's embedding, for scoring many of its pairs one at a time
    /// (`raw_score_folded_with`) without computing it for each.
    pub fn folded_first_layer(&self, user: &FoldedUser) -> Box<[f32]> {
        self.tables.user_layer.apply_boxed(&user.embedding)
    }

    /// `raw_score_folded` with the user's first-layer part (`folded_first_layer`) already computed.
    pub fn raw_score_folded_with(&self, user: &FoldedUser, first_layer: &[f32], position: usize) -> Result<f32, ModelError> {
        self.folded_score(user, first_layer, position)
    }

    /// `start` refitted to `ratings` (catalogue position, rating) by regularised Gauss–Newton, pulled towards
    /// `start` with the weight of `reflected` ratings (those `start` was trained on; 0 for an unknown user).
    pub fn fold_in(&self, start: &FoldedUser, reflected: usize, ratings: &[(usize, f32)], options: FoldInOptions) -> Result<FoldedUser, ModelError> {
        let width = self.user_dim() + 1;
        let prior = f64::from(options.l2_per_rating) * ((reflected + ratings.len()) as f64 + f64::from(options.prior_ratings));
        let anchor: Vec<f64> = start.embedding.iter().map(|v| f64::from(*v)).chain([f64::from(start.bias)]).collect();
        let mut current = start.clone();
        let objective = |user: &FoldedUser| -> Result<f64, ModelError> {
            let first = self.tables.user_layer.apply_boxed(&user.embedding);
            let mut total = 0.0;
            for (position, rating) in ratings {
                total += f64::from(rating - self.folded_score(user, &first, *position)?).powi(2);
            }
            let parameters = user.embedding.iter().chain([&user.bias]);
            Ok(total + prior * parameters.zip(&anchor).map(|(v, a)| (f64::from(*v) - a).powi(2)).sum::<f64>())
        };
        let mut best = objective(&current)?;
        for _ in 0..options.steps {
            let first = self.tables.user_layer.apply_boxed(&current.embedding);
            let mut normal = vec![0f64; width * width];
            let mut rhs = vec![0f64; width];
            for (position, rating) in ratings {
                let point = self.linearise(&current, &first, *position)?;
                let residual = f64::from(rating - point.score);
                for (i, gi) in point.gradient.iter().enumerate() {
                    rhs[i] += f64::from(*gi) * residual;
                    for (j, gj) in point.gradient.iter().enumerate().skip(i) {
                        normal[i * width + j] += f64::from(*gi) * f64::from(*gj);
                    }
                }
            }
            let parameters: Vec<f64> = current.embedding.iter().chain([&current.bias]).map(|v| f64::from(*v)).collect();
            for i in 0..width {
                normal[i * width + i] += prior;
                rhs[i] -= prior * (parameters[i] - anchor[i]);
                for j in 0..i {
                    normal[i * width + j] = normal[j * width + i];
                }
            }
            let step = solve_positive_definite(&mut normal, rhs, width)?;
            let mut scale = 1.0;
            let mut improved = false;
            for _ in 0..4 {
                let candidate = FoldedUser {
                    row: current.row,
                    embedding: parameters[..width - 1].iter().zip(&step).map(|(p, s)| (p + scale * s) as f32).collect(),
                    bias: (parameters[width - 1] + scale * step[width - 1]) as f32,
                };
                let value = objective(&candidate)?;
                if value < best {
                    (current, best, improved) = (candidate, value, true);
                    break;
                }
                scale /= 2.0;
            }
            if !improved || step.iter().map(|s| s * s).sum::<f64>().sqrt() * scale < 1e-5 {
                break;
            }
        }
        Ok(current)
    }
}

/// Solves `matrix · x = rhs` for a symmetric positive definite `matrix` (n × n, row-major) by Cholesky.
fn solve_positive_definite(matrix: &mut [f64], mut rhs: Vec<f64>, n: usize) -> Result<Vec<f64>, ModelError> {
    for j in 0..n {
        let mut diagonal = matrix[j * n + j];
        for k in 0..j {
            diagonal -= matrix[j * n + k].powi(2);
        }
        if diagonal <= 0.0 || !diagonal.is_finite() {
            return Err(ModelError::InvalidArgument("fold-in: the normal equations are not positive definite".into()));
        }
        let pivot = diagonal.sqrt();
        matrix[j * n + j] = pivot;
        for i in j + 1..n {
            let mut value = matrix[i * n + j];
            for k in 0..j {
                value -= matrix[i * n + k] * matrix[j * n + k];
            }
            matrix[i * n + j] = value / pivot;
        }
    }
    for i in 0..n {
        for k in 0..i {
            rhs[i] -= matrix[i * n + k] * rhs[k];
        }
        rhs[i] /= matrix[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            rhs[i] -= matrix[k * n + i] * rhs[k];
        }
        rhs[i] /= matrix[i * n + i];
    }
    Ok(rhs)
}

fn shared(matrix: &Matrix) -> Matrix {
    Matrix { tensor: matrix.tensor.shallow_clone() }
}

fn shared_layer(layer: &Layer) -> Layer {
    Layer::new(shared(&layer.weight), shared(&layer.bias))
}

impl ScoringTables {
    /// These tables with the user side replaced by `users` (row i = `users[i]`; the autoencoder's user part taken
    /// from each user's model row); the movie side and the layers are shared, not copied.
    pub(crate) fn for_users(&self, users: &[FoldedUser], user_dim: usize) -> Result<ScoringTables, ModelError> {
        if let Some(bad) = users.iter().find(|u| u.embedding.len() != user_dim) {
            return Err(ModelError::InvalidArgument(format!("a folded user has {} values, the model's users {user_dim}", bad.embedding.len())));
        }
        let flat: Vec<f32> = users.iter().flat_map(|u| u.embedding.iter().copied()).collect();
        let biases: Vec<f32> = users.iter().map(|u| u.bias).collect();
        let rows = Tensor::f_from_slice(&users.iter().map(|u| u.row as i64).collect::<Vec<i64>>())?;
        let autoencoder = match &self.autoencoder {
            Some(terms) => Some(AutoencoderTerms {
                user_weight: Matrix::copy(&terms.user_weight.tensor.f_index_select(0, &rows)?)?,
                user_bias: Matrix::copy(&terms.user_bias.tensor.f_index_select(0, &rows)?)?,
                user_known: Matrix::copy(&terms.user_known.tensor.f_index_select(0, &rows)?)?,
                movie_code: shared(&terms.movie_code),
                movie_known: shared(&terms.movie_known),
                blend: terms.blend,
            }),
            None => None,
        };
        Ok(ScoringTables {
            user_embedding: Matrix::copy(&Tensor::f_from_slice(&flat)?.f_view([users.len() as i64, user_dim as i64])?)?,
            user_layer: shared_layer(&self.user_layer),
            movie_inputs: shared(&self.movie_inputs),
            movie_layer: shared_layer(&self.movie_layer),
            hidden: self.hidden.iter().map(shared_layer).collect(),
            output: shared_layer(&self.output),
            user_bias: Matrix::copy(&Tensor::f_from_slice(&biases)?)?,
            movie_bias: shared(&self.movie_bias),
            movie_vectors: self.movie_vectors.as_ref().map(shared),
            autoencoder,
        })
    }
}

#[cfg(all(test, feature = "train"))]
mod tests {
    use super::*;
    use crate::network::tests::{content, small_config};
    use crate::HybridRecommender;
    use tch::{nn, Device};

    fn scorer(autoencoder: Option<i64>) -> (nn::VarStore, CatalogueScorer) {
        tch::manual_seed(11);
        let store = nn::VarStore::new(Device::Cpu);
        let config = crate::ModelConfig { autoencoder_rank: autoencoder, dot_product: true, ..small_config() };
        let network = HybridRecommender::new(&store.root(), &config);
        if let Some(tables) = &network.autoencoder {
            crate::train::autoencoder::tests::fill_randomly(tables);
        }
        let inputs = content(4, &config);
        let scorer = network.catalogue_scorer(&Tensor::from_slice(&[1i64, 2, 0, 4]), &network.encode_content(&inputs).unwrap()).unwrap();
        (store, scorer)
    }

    #[test]
    fn the_gradient_is_the_scores_derivative() {
        for autoencoder in [None, Some(3)] {
            let (_store, scorer) = scorer(autoencoder);
            let user = scorer.trained_user(2).unwrap();
            let first = scorer.tables.user_layer.apply_boxed(&user.embedding);
            for position in 0..4 {
                let point = scorer.linearise(&user, &first, position).unwrap();
                for coordinate in 0..=user.embedding.len() {
                    let step = 1e-2f32;
                    let moved = |sign: f32| {
                        let mut moved = user.clone();
                        match moved.embedding.get_mut(coordinate) {
                            Some(value) => *value += sign * step,
                            None => moved.bias += sign * step,
                        }
                        scorer.raw_score_folded(&moved, position).unwrap()
                    };
                    let numeric = (moved(1.0) - moved(-1.0)) / (2.0 * step);
                    assert!(
                        (numeric - point.gradient[coordinate]).abs() < 2e-2,
                        "movie {position}, coordinate {coordinate}: {numeric} vs {}",
                        point.gradient[coordinate]
                    );
                }
            }
        }
    }

    #[test]
    fn folding_in_fits_the_ratings_and_nothing_moves_without_them() {
        let (_store, scorer) = scorer(Some(3));
        let unknown = scorer.trained_user(0).unwrap();
        assert_eq!(scorer.fold_in(&unknown, 0, &[], FoldInOptions::default()).unwrap(), unknown, "no ratings, no change");
        let ratings: Vec<(usize, f32)> = (0..4).map(|position| (position, scorer.raw_score(3, position).unwrap() + 0.8)).collect();
        let error = |user: &FoldedUser| ratings.iter().map(|(p, r)| (r - scorer.raw_score_folded(user, *p).unwrap()).powi(2)).sum::<f32>();
        let loose = FoldInOptions { l2_per_rating: 1e-3, ..FoldInOptions::default() };
        let folded = scorer.fold_in(&unknown, 0, &ratings, loose).unwrap();
        assert!(error(&folded) < 0.1 * error(&unknown), "fitted: {} vs {}", error(&folded), error(&unknown));
        let firm = scorer.fold_in(&unknown, 10_000, &ratings, FoldInOptions::default()).unwrap();
        let moved = |user: &FoldedUser| {
            user.embedding.iter().zip(&unknown.embedding).map(|(a, b)| (a - b).abs()).sum::<f32>() + (user.bias - unknown.bias).abs()
        };
        assert!(moved(&firm) < 0.1 * moved(&folded), "a start backed by many ratings moves less: {} vs {}", moved(&firm), moved(&folded));
    }
}
