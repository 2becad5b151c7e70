//! The item autoencoder's serving tables beside the hybrid network (I-AutoRec, truncated to a low rank): variables of
//! the network, so they travel in the artefact. Their fitting lives in `train::autoencoder`; their use in scoring in
//! `scoring::core`.
use crate::scoring::{AutoencoderMovies, AutoencoderTerms, Matrix};
use crate::ModelError;
use tch::{nn, Tensor};

/// The autoencoder's trained tables: variables of the network, so they travel in the artefact.
#[derive(Debug)]
pub struct AutoencoderTables {
    /// [users + 1, rank] decoder weights and [users + 1] decoder bias, per user row.
    pub(crate) user_weight: Tensor,
    pub(crate) user_bias: Tensor,
    /// [movies + 1, rank]: each movie's code.
    pub(crate) movie_code: Tensor,
    /// [users + 1] and [movies + 1]: 1 where the row had training ratings, else 0 (no blend).
    pub(crate) user_known: Tensor,
    pub(crate) movie_known: Tensor,
    /// [3]: (a, b, c) of a·hybrid + b·autoencoder + c; (1, 0, 0) until fitted.
    pub(crate) blend: Tensor,
}

impl AutoencoderTables {
    pub(crate) fn new(path: &nn::Path, users: i64, movies: i64, rank: i64) -> Self {
        let blend = path.zeros_no_train("blend", &[3]);
        tch::no_grad(|| {
            let _ = blend.get(0).fill_(1.0);
        });
        Self {
            user_weight: path.zeros_no_train("user_weight", &[users + 1, rank]),
            user_bias: path.zeros_no_train("user_bias", &[users + 1]),
            movie_code: path.zeros_no_train("movie_code", &[movies + 1, rank]),
            user_known: path.zeros_no_train("user_known", &[users + 1]),
            movie_known: path.zeros_no_train("movie_known", &[movies + 1]),
            blend,
        }
    }

    /// (a, b, c) of the blend.
    pub(crate) fn coefficients(&self) -> Result<[f32; 3], ModelError> {
        let values: Vec<f32> = Vec::try_from(&self.blend)?;
        values.try_into().map_err(|v: Vec<f32>| ModelError::InvalidArtefact(format!("the autoencoder blend holds {} values, not 3", v.len())))
    }

    /// The serving terms over a catalogue's `movies` (the user tables shared).
    pub(crate) fn scoring_terms(&self, movies: &AutoencoderMovies) -> Result<AutoencoderTerms, ModelError> {
        Ok(AutoencoderTerms {
            user_weight: Matrix::share(&self.user_weight)?,
            user_bias: Matrix::share(&self.user_bias)?,
            user_known: Matrix::share(&self.user_known)?,
            movie_code: Matrix::share(&movies.code)?,
            movie_known: Matrix::share(&movies.known)?,
            blend: self.coefficients()?,
        })
    }

    /// The movie side of the serving tables for the movies of `movie_rows`, by catalogue position.
    pub(crate) fn movie_terms(&self, movie_rows: &Tensor) -> Result<AutoencoderMovies, ModelError> {
        Ok(AutoencoderMovies { code: self.movie_code.f_index_select(0, movie_rows)?, known: self.movie_known.f_index_select(0, movie_rows)? })
    }

    /// Width of the tables (the truncated rank).
    #[cfg(feature = "train")]
    pub(crate) fn rank(&self) -> i64 {
        self.movie_code.size()[1]
    }

    #[cfg(feature = "train")]
    pub(crate) fn shallow_clone(&self) -> Self {
        Self {
            user_weight: self.user_weight.shallow_clone(),
            user_bias: self.user_bias.shallow_clone(),
            movie_code: self.movie_code.shallow_clone(),
            user_known: self.user_known.shallow_clone(),
            movie_known: self.movie_known.shallow_clone(),
            blend: self.blend.shallow_clone(),
        }
    }
}
