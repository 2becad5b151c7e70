//! The pair passes of `core::raw_scores`: one pair in plain Rust, one folded user's pair with the score's gradient
//! (fold-in), and tensor passes (a pair list, or each of some user rows with every catalogue movie) as libtorch
//! operations, with the head in float32 or bfloat16.
use super::core::{Arithmetic, PairPass, ScoringTables};
use super::matrix::{dot, Layer, Matrix};
use crate::ModelError;
use tch::{Kind, Tensor};

/// One (user row, catalogue position) pair, with its first-layer parts already computed.
pub(crate) struct OnePair<'a> {
    pub(crate) row: usize,
    pub(crate) position: usize,
    pub(crate) user_part: &'a [f32],
    pub(crate) movie_part: &'a [f32],
}

impl PairPass for OnePair<'_> {
    type Scores = f32;

    fn head(&self, tables: &ScoringTables) -> Result<f32, ModelError> {
        head_output(tables, self.user_part, self.movie_part)
    }

    fn biases(&self, user_bias: &Matrix, movie_bias: &Matrix) -> Result<f32, ModelError> {
        Ok(user_bias.value(self.row)? + movie_bias.value(self.position)?)
    }

    fn user_dot_movie(&self, user: &Matrix, movie: &Matrix) -> Result<f32, ModelError> {
        let width = user.width();
        match (user.row(self.row, width), movie.row(self.position, width)) {
            (Some(user), Some(movie)) => Ok(dot(user, movie)),
            _ => Err(ModelError::InvalidArgument(format!("pair ({}, {}) is outside the tables", self.row, self.position))),
        }
    }

    fn user_times_movie(&self, user: &Matrix, movie: &Matrix) -> Result<f32, ModelError> {
        Ok(user.value(self.row)? * movie.value(self.position)?)
    }

    fn user_only(&self, user: &Matrix) -> Result<f32, ModelError> {
        user.value(self.row)
    }
}

/// The head's output for one pair from its first-layer parts, in plain Rust (two buffers swapped layer by layer).
fn head_output(tables: &ScoringTables, user_part: &[f32], movie_part: &[f32]) -> Result<f32, ModelError> {
    let mut x: Vec<f32> = user_part.iter().zip(movie_part).map(|(u, m)| (u + m).max(0.0)).collect();
    let mut y = Vec::with_capacity(x.len());
    for layer in &tables.hidden {
        layer.apply(&x, &mut y, true);
        std::mem::swap(&mut x, &mut y);
    }
    tables.output.apply(&x, &mut y, false);
    y.first().copied().ok_or_else(|| ModelError::InvalidArgument("the head's output layer has no unit".into()))
}

/// A score and its gradient with respect to a folded user's [embedding; bias] (empty: zero, or not asked for).
pub(crate) struct Linearised {
    pub(crate) score: f32,
    pub(crate) gradient: Vec<f32>,
}

impl Linearised {
    fn constant(score: f32) -> Self {
        Self { score, gradient: Vec::new() }
    }
}

impl Arithmetic for Linearised {
    fn plus(&self, other: &Self) -> Result<Self, ModelError> {
        let gradient = match (self.gradient.is_empty(), other.gradient.is_empty()) {
            (true, _) => other.gradient.clone(),
            (_, true) => self.gradient.clone(),
            _ => self.gradient.iter().zip(&other.gradient).map(|(a, b)| a + b).collect(),
        };
        Ok(Self { score: self.score + other.score, gradient })
    }

    fn affine(&self, scale: f32, offset: f32) -> Result<Self, ModelError> {
        Ok(Self { score: scale * self.score + offset, gradient: self.gradient.iter().map(|g| scale * g).collect() })
    }

    fn where_known(&self, known: &Self, replacement: &Self) -> Result<Self, ModelError> {
        let chosen = if known.score != 0.0 { replacement } else { self };
        Ok(Self { score: chosen.score, gradient: chosen.gradient.clone() })
    }
}

/// One pair of a folded user (its embedding and bias fitted at query time, everything else from its model row) with
/// a catalogue position; with `with_gradient`, each term also carries its derivative by [embedding; bias].
pub(crate) struct FoldedPair<'a> {
    /// The user's model row (its autoencoder part).
    pub(crate) row: usize,
    /// The fitted embedding and bias.
    pub(crate) embedding: &'a [f32],
    pub(crate) bias: f32,
    /// The head's first-layer part of `user.embedding`.
    pub(crate) user_first: &'a [f32],
    pub(crate) movie_part: &'a [f32],
    pub(crate) position: usize,
    pub(crate) with_gradient: bool,
}

impl FoldedPair<'_> {
    fn outside(&self) -> ModelError {
        ModelError::InvalidArgument(format!("pair ({}, {}) is outside the tables", self.row, self.position))
    }

    /// A gradient that is `value` on the bias and zero on the embedding (empty without `with_gradient`).
    fn bias_gradient(&self, value: f32) -> Vec<f32> {
        if !self.with_gradient {
            return Vec::new();
        }
        let mut gradient = vec![0.0; self.embedding.len() + 1];
        gradient[self.embedding.len()] = value;
        gradient
    }
}

impl PairPass for FoldedPair<'_> {
    type Scores = Linearised;

    fn head(&self, tables: &ScoringTables) -> Result<Linearised, ModelError> {
        if !self.with_gradient {
            return Ok(Linearised::constant(head_output(tables, self.user_first, self.movie_part)?));
        }
        let mut activations: Vec<Vec<f32>> = vec![self.user_first.iter().zip(self.movie_part).map(|(u, m)| (u + m).max(0.0)).collect()];
        for layer in &tables.hidden {
            let mut next = Vec::new();
            layer.apply(activations.last().ok_or_else(|| self.outside())?, &mut next, true);
            activations.push(next);
        }
        let output_weights = tables.output.weight.as_slice();
        let score = dot(output_weights, activations.last().ok_or_else(|| self.outside())?) + tables.output.bias.value(0)?;
        let mut upstream = output_weights.to_vec();
        for (layer, (inputs, outputs)) in tables.hidden.iter().zip(activations.iter().zip(activations.iter().skip(1))).rev() {
            mask_inactive(&mut upstream, outputs);
            upstream = transposed_times(layer, &upstream, inputs.len());
        }
        mask_inactive(&mut upstream, &activations[0]);
        let mut gradient = transposed_times(&tables.user_layer, &upstream, self.embedding.len());
        gradient.push(0.0);
        Ok(Linearised { score, gradient })
    }

    fn biases(&self, _user_bias: &Matrix, movie_bias: &Matrix) -> Result<Linearised, ModelError> {
        Ok(Linearised { score: self.bias + movie_bias.value(self.position)?, gradient: self.bias_gradient(1.0) })
    }

    fn embedding_dot_movie(&self, _user_embedding: &Matrix, movie_vectors: &Matrix) -> Result<Linearised, ModelError> {
        let vector = movie_vectors.row(self.position, self.embedding.len()).ok_or_else(|| self.outside())?;
        let gradient = if self.with_gradient { vector.iter().copied().chain([0.0]).collect() } else { Vec::new() };
        Ok(Linearised { score: dot(self.embedding, vector), gradient })
    }

    fn user_dot_movie(&self, user: &Matrix, movie: &Matrix) -> Result<Linearised, ModelError> {
        let width = user.width();
        match (user.row(self.row, width), movie.row(self.position, width)) {
            (Some(user), Some(movie)) => Ok(Linearised::constant(dot(user, movie))),
            _ => Err(self.outside()),
        }
    }

    fn user_times_movie(&self, user: &Matrix, movie: &Matrix) -> Result<Linearised, ModelError> {
        Ok(Linearised::constant(user.value(self.row)? * movie.value(self.position)?))
    }

    fn user_only(&self, user: &Matrix) -> Result<Linearised, ModelError> {
        Ok(Linearised::constant(user.value(self.row)?))
    }
}

fn mask_inactive(gradient: &mut [f32], activation: &[f32]) {
    gradient.iter_mut().zip(activation).for_each(|(g, a)| {
        if *a <= 0.0 {
            *g = 0.0;
        }
    });
}

/// layer.weightᵀ · upstream: [inputs].
fn transposed_times(layer: &Layer, upstream: &[f32], inputs: usize) -> Vec<f32> {
    let mut out = vec![0f32; inputs];
    for (row, g) in layer.weight.as_slice().chunks_exact(layer.inputs).zip(upstream) {
        if *g != 0.0 {
            out.iter_mut().zip(row).for_each(|(o, w)| *o += g * w);
        }
    }
    out
}

/// Which catalogue positions a tensor pass pairs with its user rows.
pub(crate) enum Columns {
    /// Every catalogue position for each row: scores [rows, movies].
    Every,
    /// (rows[i], positions[i]): scores [pairs].
    Listed(Tensor),
    /// (rows[i], i): the catalogue is the pair list's own movies; scores [pairs].
    Aligned,
}

/// Pairs scored by libtorch operations.
pub(crate) struct TensorPass {
    rows: Tensor,
    columns: Columns,
    /// The first layer's user part per row [rows, width] and movie part per column, in the head's arithmetic.
    user_first: Tensor,
    movie_first: Tensor,
    /// (weight, bias) of the head's layers after the first, then of its output layer, in the head's arithmetic.
    layers: Vec<(Tensor, Tensor)>,
}

impl TensorPass {
    /// `rows` int64 user rows; `movie_table` [movies, width] the first layer's movie part of every catalogue position and
    /// `layers` the rest of the head, both in the head's arithmetic (float32 or bfloat16).
    pub(crate) fn new(
        tables: &ScoringTables,
        rows: Tensor,
        columns: Columns,
        movie_table: &Tensor,
        layers: Vec<(Tensor, Tensor)>,
    ) -> Result<Self, ModelError> {
        let user_first = tables.user_embedding.tensor.f_index_select(0, &rows)?.f_matmul(&tables.user_layer.weight.tensor.f_tr()?)?;
        let movie_first = match &columns {
            Columns::Listed(positions) => movie_table.f_index_select(0, positions)?,
            Columns::Every | Columns::Aligned => movie_table.shallow_clone(),
        };
        Ok(Self { user_first: user_first.f_to_kind(movie_table.kind())?, movie_first, rows, columns, layers })
    }

    fn user_side(&self, user: &Matrix) -> Result<Tensor, ModelError> {
        let selected = user.tensor.f_index_select(0, &self.rows)?;
        Ok(match self.columns {
            Columns::Every => selected.f_unsqueeze(1)?,
            Columns::Listed(_) | Columns::Aligned => selected,
        })
    }

    fn movie_side(&self, movie: &Matrix) -> Result<Tensor, ModelError> {
        Ok(match &self.columns {
            Columns::Every => movie.tensor.f_unsqueeze(0)?,
            Columns::Listed(positions) => movie.tensor.f_index_select(0, positions)?,
            Columns::Aligned => movie.tensor.shallow_clone(),
        })
    }
}

impl PairPass for TensorPass {
    type Scores = Tensor;

    fn head(&self, _tables: &ScoringTables) -> Result<Tensor, ModelError> {
        let width = self.user_first.size()[1];
        let (mut x, shape) = match self.columns {
            Columns::Every => {
                let shape = vec![self.user_first.size()[0], self.movie_first.size()[0]];
                (self.user_first.f_unsqueeze(1)?.f_add(&self.movie_first.f_unsqueeze(0)?)?.f_view([-1, width])?, shape)
            }
            Columns::Listed(_) | Columns::Aligned => (self.user_first.f_add(&self.movie_first)?, vec![-1]),
        };
        let _ = x.f_relu_()?;
        let ((weight, bias), hidden) = self.layers.split_last().ok_or_else(|| ModelError::InvalidArgument("the head has no output layer".into()))?;
        for (weight, bias) in hidden {
            x = x.f_linear(weight, Some(bias))?;
            let _ = x.f_relu_()?;
        }
        Ok(x.f_linear(weight, Some(bias))?.f_to_kind(Kind::Float)?.f_view(shape.as_slice())?)
    }

    fn biases(&self, user_bias: &Matrix, movie_bias: &Matrix) -> Result<Tensor, ModelError> {
        Ok(self.user_side(user_bias)?.f_add(&self.movie_side(movie_bias)?)?)
    }

    fn user_dot_movie(&self, user: &Matrix, movie: &Matrix) -> Result<Tensor, ModelError> {
        let users = user.tensor.f_index_select(0, &self.rows)?;
        Ok(match self.columns {
            Columns::Every => users.f_matmul(&movie.tensor.f_tr()?)?,
            Columns::Listed(_) | Columns::Aligned => {
                users.f_mul(&self.movie_side(movie)?)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?
            }
        })
    }

    fn user_times_movie(&self, user: &Matrix, movie: &Matrix) -> Result<Tensor, ModelError> {
        Ok(self.user_side(user)?.f_mul(&self.movie_side(movie)?)?)
    }

    fn user_only(&self, user: &Matrix) -> Result<Tensor, ModelError> {
        self.user_side(user)
    }
}
