//! The ranking half of the hybrid: which movies a user would pick, beside the rating head's how much they would like
//! them. A user is the normalised sum of the input vectors of the movies they rated; a movie's preference score is
//! its output vector · that user plus its bias. Both vectors are a movie's own row plus a projection of its content
//! vector (the content encoder's), so a movie without ratings is ranked from its genres, title, people and year, and
//! a user's newest ratings or a visitor's count as soon as they exist. Fitted by `train::preference`.
mod neighbours;
mod prescan;

pub(crate) use self::neighbours::CatalogueNeighbours;
use self::prescan::{ExactTerms, QuantisedOutputs};
pub use crate::config::{Positives, PreferenceConfig, Representation};
use crate::network::{normalise_user, HybridRecommender};
use crate::scoring::similarity::{nearest, normalised};
use crate::scoring::Matrix;
use crate::ModelError;
use std::cell::OnceCell;
use tch::{Kind, Tensor};

/// A user as the preference part sees them: the catalogue positions they rated (with the ratings) and the vector
/// made from them.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferenceUser {
    /// The user's preference vector.
    pub vector: Vec<f32>,
    /// The catalogue positions the user rated, with the ratings.
    pub rated: Vec<(usize, f32)>,
}

/// The preference scores over a catalogue (by catalogue position): what ranks lists.
pub struct PreferenceScorer {
    inputs: Tensor,
    outputs: Tensor,
    bias: Tensor,
    blend: f32,
    neighbours: Option<CatalogueNeighbours>,
    movies: usize,
    similar_movies: Representation,
    representations: OnceCell<Matrix>,
    users: Option<Tensor>,
    user_table: OnceCell<Matrix>,
    similar_users: Representation,
    quantised: OnceCell<QuantisedOutputs>,
}

impl PreferenceScorer {
    /// Number of catalogue positions.
    pub fn movies(&self) -> usize {
        self.movies
    }

    /// The weight of the raw predicted rating in a list's order (0: the preference score alone).
    pub fn blend(&self) -> f32 {
        self.blend
    }

    /// The weight of the item-neighbourhood score in the preference score (0 without a neighbourhood).
    pub fn neighbour_weight(&self) -> f32 {
        self.neighbours.as_ref().map_or(0.0, |n| n.weight)
    }

    /// Width of a user's preference vector.
    pub fn dim(&self) -> usize {
        self.inputs.size()[1] as usize
    }

    /// The user who rated the catalogue positions of `rated` (position, rating) (positions outside the catalogue are
    /// an error; an empty history gives the zero vector: the biases alone, a popularity-like order).
    pub fn user(&self, rated: &[(usize, f32)]) -> Result<PreferenceUser, ModelError> {
        if let Some((bad, _)) = rated.iter().find(|(p, _)| *p >= self.movies) {
            return Err(ModelError::InvalidArgument(format!("catalogue position {bad} is outside the {} movies", self.movies)));
        }
        if rated.is_empty() {
            return Ok(PreferenceUser { vector: vec![0.0; self.dim()], rated: Vec::new() });
        }
        let index = Tensor::f_from_slice(&rated.iter().map(|(p, _)| *p as i64).collect::<Vec<_>>())?;
        let sum = self.inputs.f_index_select(0, &index)?.f_sum_dim_intlist([0i64].as_slice(), true, Kind::Float)?;
        let vector = normalise_user(&sum, &Tensor::f_from_slice(&[rated.len() as f32])?)?;
        Ok(PreferenceUser { vector: Vec::<f32>::try_from(vector.f_flatten(0, -1)?)?, rated: rated.to_vec() })
    }

    /// [users, movies]: each user's preference score for every catalogue movie: output vector · user vector + bias,
    /// plus the neighbourhood's weight times the user's neighbourhood score.
    pub fn scores(&self, users: &[PreferenceUser]) -> Result<Tensor, ModelError> {
        let dim = self.dim();
        if let Some(bad) = users.iter().find(|u| u.vector.len() != dim) {
            return Err(ModelError::InvalidArgument(format!("a user vector of width {} for preference vectors of width {dim}", bad.vector.len())));
        }
        let flat: Vec<f32> = users.iter().flat_map(|u| u.vector.iter()).copied().collect();
        let matrix = Tensor::f_from_slice(&flat)?.f_reshape([users.len() as i64, dim as i64])?;
        let scores = tch::no_grad(|| matrix.f_matmul(&self.outputs.f_tr()?)?.f_add(&self.bias.f_unsqueeze(0)?))?;
        match &self.neighbours {
            Some(neighbours) if neighbours.weight != 0.0 => {
                let flat: Vec<f32> = users.iter().flat_map(|u| neighbours.scores(&u.rated)).collect();
                let nearby = Tensor::f_from_slice(&flat)?.f_reshape([users.len() as i64, self.movies as i64])?;
                Ok(scores.f_add(&nearby.f_mul_scalar(f64::from(neighbours.weight))?)?)
            }
            _ => Ok(scores),
        }
    }

    /// The `candidates` (catalogue positions) that could be among the `pool` best preference scores of `user`, with
    /// their exact scores (the same terms as `scores`, summed in plain Rust), in candidate order: an int8 pass over
    /// the candidates with a proven error bound, then exact scores for every candidate whose bound reaches the pool.
    /// The int8 output vectors are made on first use (a quarter of the float32 table's memory).
    pub fn pool_candidates(&self, user: &PreferenceUser, candidates: &[usize], pool: usize) -> Result<Vec<(usize, f32)>, ModelError> {
        if user.vector.len() != self.dim() {
            return Err(ModelError::InvalidArgument(format!(
                "a user vector of width {} for preference vectors of width {}",
                user.vector.len(),
                self.dim()
            )));
        }
        if let Some(bad) = candidates.iter().find(|p| **p >= self.movies) {
            return Err(ModelError::InvalidArgument(format!("catalogue position {bad} is outside the {} movies", self.movies)));
        }
        let (outputs, bias) = (Matrix::share(&self.outputs)?, Matrix::share(&self.bias)?);
        let quantised = self.quantised.get_or_init(|| QuantisedOutputs::of(outputs.as_slice(), self.dim()));
        let nearby: Option<Vec<f32>> = match &self.neighbours {
            Some(neighbours) if neighbours.weight != 0.0 => {
                let mut scores = neighbours.scores(&user.rated);
                scores.iter_mut().for_each(|s| *s *= neighbours.weight);
                Some(scores)
            }
            _ => None,
        };
        let exact = ExactTerms { outputs: outputs.as_slice(), bias: bias.as_slice(), nearby: nearby.as_deref() };
        Ok(prescan::pool_candidates(quantised, &exact, &user.vector, candidates, pool))
    }

    /// [movies, dim]: every catalogue movie's output vector.
    pub fn output_vectors(&self) -> &Tensor {
        &self.outputs
    }

    /// Whether the trainer chose this part's vectors for similar movies (else the rating network's representation).
    pub fn serves_similar_movies(&self) -> bool {
        self.similar_movies == Representation::Preference
    }

    /// The `k` catalogue positions nearest to `position` by the cosine of their input and output vectors side by
    /// side, among those `allowed` accepts (never `position` itself), nearest first, with their cosine similarity.
    pub fn similar_movies(&self, position: usize, k: usize, allowed: impl Fn(usize) -> bool) -> Result<Vec<(usize, f32)>, ModelError> {
        let table = match self.representations.get() {
            Some(table) => table,
            None => {
                let table = normalised(self.inputs.shallow_clone(), Some(&Matrix::copy(&self.outputs)?))?;
                self.representations.get_or_init(|| table)
            }
        };
        nearest(table, position, k, |candidate| candidate != position && allowed(candidate))
    }

    /// Whether the network stores every trained user's preference vector.
    pub fn has_user_vectors(&self) -> bool {
        self.users.is_some()
    }

    /// Whether the trainer chose the stored user vectors for similar users (else the rating network's representation).
    pub fn serves_similar_users(&self) -> bool {
        self.similar_users == Representation::Preference && self.users.is_some()
    }

    /// The `k` user rows nearest to `row` by the cosine of their stored preference vectors (never `row` itself nor row
    /// 0, the unknown user), nearest first; an error without stored user vectors.
    pub fn similar_users(&self, row: usize, k: usize) -> Result<Vec<(usize, f32)>, ModelError> {
        let users = self.users.as_ref().ok_or_else(|| ModelError::InvalidArgument("the network stores no user preference vectors".into()))?;
        let table = match self.user_table.get() {
            Some(table) => table,
            None => {
                let table = normalised(users.shallow_clone(), None)?;
                self.user_table.get_or_init(|| table)
            }
        };
        nearest(table, row, k, |candidate| candidate != row && candidate != 0)
    }
}

impl HybridRecommender {
    /// The preference scorer over a catalogue of `movie_rows` (0: a movie without ratings) with encoded `content`,
    /// or `None` for a network trained before the preference objective.
    pub fn preference_scorer(&self, movie_rows: &Tensor, content: &Tensor) -> Result<Option<PreferenceScorer>, ModelError> {
        let Some(tables) = &self.preference else { return Ok(None) };
        let vectors = tch::no_grad(|| tables.vectors(movie_rows, content, None))?;
        let blend = tables.blend.f_double_value(&[0])? as f32;
        let rows: Vec<i64> = Vec::try_from(movie_rows)?;
        let input = self.config.preference.map(|p| p.neighbour_input).unwrap_or_default();
        let rating_max = self.config.rating_max as f32;
        let neighbours = tables.neighbours.as_ref().map(|n| CatalogueNeighbours::over(n, &rows, input, rating_max)).transpose()?;
        Ok(Some(PreferenceScorer {
            neighbours,
            movies: movie_rows.size()[0] as usize,
            inputs: vectors.inputs.f_contiguous()?,
            outputs: vectors.outputs.f_contiguous()?,
            bias: vectors.bias.f_contiguous()?,
            blend,
            similar_movies: self.config.preference.map(|p| p.similar_movies).unwrap_or_default(),
            representations: OnceCell::new(),
            users: tables.users.as_ref().map(Tensor::shallow_clone),
            user_table: OnceCell::new(),
            similar_users: self.config.preference.map(|p| p.similar_users).unwrap_or_default(),
            quantised: OnceCell::new(),
        }))
    }
}

#[cfg(all(test, feature = "train"))]
mod tests;
