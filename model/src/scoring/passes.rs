//! The pair passes of `core::raw_scores`: one pair in plain Rust, and tensor passes (a pair list, or each of some
//! user rows with every catalogue movie) as libtorch operations, with the head in float32 or bfloat16.
use super::core::{PairPass, ScoringTables};
use super::matrix::{dot, Matrix};
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
        let mut x: Vec<f32> = self.user_part.iter().zip(self.movie_part).map(|(u, m)| (u + m).max(0.0)).collect();
        let mut y = Vec::with_capacity(x.len());
        for layer in &tables.hidden {
            layer.apply(&x, &mut y, true);
            std::mem::swap(&mut x, &mut y);
        }
        tables.output.apply(&x, &mut y, false);
        y.first().copied().ok_or_else(|| ModelError::InvalidArgument("the head's output layer has no unit".into()))
    }

    fn user_plus_movie(&self, user: &Matrix, movie: &Matrix) -> Result<f32, ModelError> {
        Ok(user.value(self.row)? + movie.value(self.position)?)
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

    fn user_plus_movie(&self, user: &Matrix, movie: &Matrix) -> Result<Tensor, ModelError> {
        Ok(self.user_side(user)?.f_add(&self.movie_side(movie)?)?)
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
