//! The one definition of a raw (unclipped) score: the head over the user's and the movie's first-layer parts, plus
//! the user and movie biases, the user·movie dot product, and the autoencoder's blend on pairs it knows. Every path
//! (one pair, a pair list, whole catalogues in float32 or bfloat16, the network's evaluation forward, a folded user
//! with its gradient) calls `raw_scores`; a `PairPass` only says how its pairs evaluate each term. Clipping happens where a rating is returned.
use super::matrix::{Layer, Matrix};
use crate::ModelError;
use tch::Tensor;

/// The serving tables of an evaluation-mode network over a catalogue (movie tables by catalogue position). The head's
/// first layer is split by columns: W·[u; m; c] = W_u·u + W_mc·[m; c].
pub(crate) struct ScoringTables {
    /// [users + 1, user_dim]: user embeddings by row (row 0: the unknown user).
    pub(crate) user_embedding: Matrix,
    /// The head's first layer restricted to the user embedding (zero bias).
    pub(crate) user_layer: Layer,
    /// [movies, movie_dim + content_dim]: each catalogue movie's input to the rest of the first layer.
    pub(crate) movie_inputs: Matrix,
    /// The head's first layer restricted to [movie; content], with its bias.
    pub(crate) movie_layer: Layer,
    /// The head's layers after the first, then its output layer.
    pub(crate) hidden: Vec<Layer>,
    pub(crate) output: Layer,
    /// [users + 1]: per user row (0 when biases are off).
    pub(crate) user_bias: Matrix,
    /// [movies]: per catalogue position, global + movie + content bias (0 when biases are off).
    pub(crate) movie_bias: Matrix,
    /// [movies, user_dim]: each movie's vector, when the network adds the user·movie dot product.
    pub(crate) movie_vectors: Option<Matrix>,
    pub(crate) autoencoder: Option<AutoencoderTerms>,
}

/// The catalogue-sized tables `ScoringTables` is built over (by catalogue position): what depends on the catalogue
/// rather than on the network alone, and what a shared catalogue file holds.
pub(crate) struct MovieTables {
    /// [movies, movie_dim + content_dim]: the movie vector and the content vector of each movie.
    pub(crate) inputs: Tensor,
    /// [movies]: global + movie + content bias.
    pub(crate) bias: Tensor,
    /// [movies, movie_dim]: the movie vectors, when the network adds the user·movie dot product.
    pub(crate) vectors: Option<Tensor>,
    pub(crate) autoencoder: Option<AutoencoderMovies>,
}

/// The autoencoder's movie tables over a catalogue: each movie's code and whether it had training ratings.
pub(crate) struct AutoencoderMovies {
    pub(crate) code: Tensor,
    pub(crate) known: Tensor,
}

/// The autoencoder's serving tables: a known pair's decoded rating is user_weight[u]·movie_code[m] + user_bias[u].
pub(crate) struct AutoencoderTerms {
    pub(crate) user_weight: Matrix,
    pub(crate) user_bias: Matrix,
    /// 1 where the user row / catalogue movie had training ratings, else 0 (no blend).
    pub(crate) user_known: Matrix,
    pub(crate) movie_code: Matrix,
    pub(crate) movie_known: Matrix,
    /// (a, b, c) of a·hybrid + b·decoded + c on known pairs.
    pub(crate) blend: [f32; 3],
}

/// Scores of a pass's pairs: one `f32`, or a tensor of any shape.
pub(crate) trait Arithmetic: Sized {
    fn plus(&self, other: &Self) -> Result<Self, ModelError>;
    /// scale·self + offset.
    fn affine(&self, scale: f32, offset: f32) -> Result<Self, ModelError>;
    /// `replacement` where `known` is non-zero, else `self`.
    fn where_known(&self, known: &Self, replacement: &Self) -> Result<Self, ModelError>;
}

/// How a set of (user row, catalogue position) pairs evaluates the terms of `raw_scores`.
pub(crate) trait PairPass {
    type Scores: Arithmetic;
    /// The head's output: ReLU(first layer's user part + movie part), the hidden layers, the output layer.
    fn head(&self, tables: &ScoringTables) -> Result<Self::Scores, ModelError>;
    /// user_bias[row] + movie_bias[position].
    fn biases(&self, user_bias: &Matrix, movie_bias: &Matrix) -> Result<Self::Scores, ModelError>;
    /// user[row] · movie[position], from [rows, d] and [positions, d] tables.
    fn user_dot_movie(&self, user: &Matrix, movie: &Matrix) -> Result<Self::Scores, ModelError>;
    /// user_embedding[row] · movie_vectors[position]: the dot-product term (a pass that varies the user's embedding,
    /// as fold-in does, overrides it).
    fn embedding_dot_movie(&self, user_embedding: &Matrix, movie_vectors: &Matrix) -> Result<Self::Scores, ModelError> {
        self.user_dot_movie(user_embedding, movie_vectors)
    }
    /// user[row] × movie[position], from a per-row and a per-position table of scalars.
    fn user_times_movie(&self, user: &Matrix, movie: &Matrix) -> Result<Self::Scores, ModelError>;
    /// user[row], from a per-row table of scalars (broadcast over the pass's movies).
    fn user_only(&self, user: &Matrix) -> Result<Self::Scores, ModelError>;
}

/// The raw score of every pair of `pass`.
pub(crate) fn raw_scores<P: PairPass>(tables: &ScoringTables, pass: &P) -> Result<P::Scores, ModelError> {
    let mut raw = pass.head(tables)?.plus(&pass.biases(&tables.user_bias, &tables.movie_bias)?)?;
    if let Some(movie_vectors) = &tables.movie_vectors {
        raw = raw.plus(&pass.embedding_dot_movie(&tables.user_embedding, movie_vectors)?)?;
    }
    if let Some(autoencoder) = &tables.autoencoder {
        let decoded = pass.user_dot_movie(&autoencoder.user_weight, &autoencoder.movie_code)?.plus(&pass.user_only(&autoencoder.user_bias)?)?;
        let [a, b, c] = autoencoder.blend;
        let blended = raw.affine(a, 0.0)?.plus(&decoded.affine(b, 0.0)?)?.affine(1.0, c)?;
        raw = raw.where_known(&pass.user_times_movie(&autoencoder.user_known, &autoencoder.movie_known)?, &blended)?;
    }
    Ok(raw)
}

impl Arithmetic for f32 {
    fn plus(&self, other: &Self) -> Result<Self, ModelError> {
        Ok(self + other)
    }

    fn affine(&self, scale: f32, offset: f32) -> Result<Self, ModelError> {
        Ok(scale * self + offset)
    }

    fn where_known(&self, known: &Self, replacement: &Self) -> Result<Self, ModelError> {
        Ok(if *known != 0.0 { *replacement } else { *self })
    }
}

impl Arithmetic for Tensor {
    fn plus(&self, other: &Self) -> Result<Self, ModelError> {
        Ok(self.f_add(other)?)
    }

    fn affine(&self, scale: f32, offset: f32) -> Result<Self, ModelError> {
        Ok(self.f_mul_scalar(f64::from(scale))?.f_add_scalar(f64::from(offset))?)
    }

    fn where_known(&self, known: &Self, replacement: &Self) -> Result<Self, ModelError> {
        Ok(self.f_add(&replacement.f_sub(self)?.f_mul(known)?)?)
    }
}
