//! The ranking half of the hybrid: which movies a user would pick, beside the rating head's how much they would like
//! them. A user is the normalised sum of the input vectors of the movies they rated; a movie's preference score is
//! its output vector · that user plus its bias. Both vectors are a movie's own row plus a projection of its content
//! vector (the content encoder's), so a movie without ratings is ranked from its genres, title, people and year, and
//! a user's newest ratings or a visitor's count as soon as they exist. Fitted by `train::preference`.
mod neighbours;

use self::neighbours::CatalogueNeighbours;
pub(crate) use self::neighbours::NeighbourTables;
use crate::network::{Dense, HybridRecommender};
use crate::ModelError;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

/// Which ratings count as a movie the user picked, and how much, in the preference objective's targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positives {
    /// Every rated movie, weight 1.
    All,
    /// Movies rated 4 or more (on a 0.5–5 scale: the top fifth of the scale and up), weight 1.
    #[default]
    Liked,
    /// Every rated movie, weighted by its rating over the scale's top.
    Valued,
}

impl std::str::FromStr for Positives {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "all" => Ok(Self::All),
            "liked" => Ok(Self::Liked),
            "valued" => Ok(Self::Valued),
            other => Err(format!("{other:?} is not one of all, liked, valued")),
        }
    }
}

impl std::fmt::Display for Positives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::All => "all",
            Self::Liked => "liked",
            Self::Valued => "valued",
        })
    }
}

impl Positives {
    /// The target weight of a rating `value` on a scale whose top is `rating_max`.
    pub fn weight(self, value: f32, rating_max: f32) -> f32 {
        match self {
            Self::All => 1.0,
            Self::Liked => f32::from(u8::from(value >= 0.8 * rating_max)),
            Self::Valued => value / rating_max,
        }
    }
}

/// The preference part's shape, stored in the artefact's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PreferenceConfig {
    /// Width of the input and output vectors.
    pub dim: i64,
    /// What the objective counted as picked.
    pub positives: Positives,
    /// Item neighbours kept per movie from the trainer's closed-form item-item model (0: none, e.g. above 20,000
    /// movies).
    #[serde(default)]
    pub neighbours: i64,
}

impl PreferenceConfig {
    /// Float32 weights the preference variables hold for `movies` trained movies and a `content_dim` content vector.
    pub fn parameter_count(&self, movies: u64, content_dim: u64) -> Option<u64> {
        let dim = u64::try_from(self.dim).ok()?;
        let rows = movies.checked_add(1)?.checked_mul(dim.checked_mul(2)?.checked_add(1)?)?;
        let dense = content_dim.checked_add(1)?.checked_mul(dim.checked_mul(2)?.checked_add(1)?)?;
        let neighbours = match u64::try_from(self.neighbours).ok()? {
            0 => 0,
            width => movies.checked_add(1)?.checked_mul(width.checked_mul(2)?)?.checked_add(1)?,
        };
        rows.checked_add(dense)?.checked_add(1)?.checked_add(neighbours)
    }
}

/// The preference variables: per trained movie (row 0: a movie without ratings) input and output rows and a bias,
/// the content projections into both and into the bias, and the blend weight of the predicted rating in the order.
#[derive(Debug)]
pub(crate) struct PreferenceTables {
    pub(crate) item_in: Tensor,
    pub(crate) item_out: Tensor,
    pub(crate) item_bias: Tensor,
    pub(crate) content_in: Dense,
    pub(crate) content_out: Dense,
    pub(crate) content_bias: Dense,
    /// [1]: the weight of the raw predicted rating added to the preference score to order lists (chosen on
    /// validation Recall@10 by the trainer; 0: the preference score alone).
    pub(crate) blend: Tensor,
    pub(crate) neighbours: Option<NeighbourTables>,
}

/// A movie set's preference vectors: input, output and bias, one row per movie.
pub(crate) struct MovieVectors {
    pub(crate) inputs: Tensor,
    pub(crate) outputs: Tensor,
    pub(crate) bias: Tensor,
}

impl PreferenceTables {
    pub(crate) fn new(path: &nn::Path, movies: i64, content_dim: i64, config: &PreferenceConfig, random: bool) -> Self {
        let init = |stdev: f64| if random { nn::Init::Randn { mean: 0.0, stdev } } else { nn::Init::Const(0.0) };
        let rows = |name: &str, width: i64, stdev: f64| {
            let table = path.var(name, &[movies + 1, width], init(stdev));
            tch::no_grad(|| {
                let _ = table.get(0).fill_(0.0);
            });
            table
        };
        Self {
            item_in: rows("item_in", config.dim, 0.01),
            item_out: rows("item_out", config.dim, 0.01),
            item_bias: rows("item_bias", 1, 0.0),
            content_in: Dense::new(path / "content_in", content_dim, config.dim, random),
            content_out: Dense::new(path / "content_out", content_dim, config.dim, random),
            content_bias: Dense::new(path / "content_bias", content_dim, 1, random),
            blend: path.var("blend", &[1], nn::Init::Const(0.0)),
            neighbours: (config.neighbours > 0).then(|| NeighbourTables::new(path, movies, config.neighbours)),
        }
    }

    /// The vectors of movies with embedding rows `movie_rows` and encoded `content`; `keep` (training): a [N] 0/1
    /// float mask hiding the movies' own rows, so the content projections learn to stand alone.
    pub(crate) fn vectors(&self, movie_rows: &Tensor, content: &Tensor, keep: Option<&Tensor>) -> Result<MovieVectors, tch::TchError> {
        let own = |table: &Tensor| -> Result<Tensor, tch::TchError> {
            let rows = Tensor::f_embedding(table, movie_rows, 0, false, false)?;
            match keep {
                Some(keep) => rows.f_mul(&keep.f_unsqueeze(1)?),
                None => Ok(rows),
            }
        };
        Ok(MovieVectors {
            inputs: own(&self.item_in)?.f_add(&self.content_in.forward(content)?)?,
            outputs: own(&self.item_out)?.f_add(&self.content_out.forward(content)?)?,
            bias: own(&self.item_bias)?.f_add(&self.content_bias.forward(content)?)?.f_squeeze_dim(1)?,
        })
    }

    #[cfg(feature = "train")]
    pub(crate) fn shallow_clone(&self) -> Self {
        Self {
            item_in: self.item_in.shallow_clone(),
            item_out: self.item_out.shallow_clone(),
            item_bias: self.item_bias.shallow_clone(),
            content_in: self.content_in.shallow_clone(),
            content_out: self.content_out.shallow_clone(),
            content_bias: self.content_bias.shallow_clone(),
            blend: self.blend.shallow_clone(),
            neighbours: self.neighbours.as_ref().map(NeighbourTables::shallow_clone),
        }
    }
}

/// A user's preference vector from the summed input vectors of `count` rated movies: divided by √count, so a long
/// history does not dwarf the movies' biases.
pub(crate) fn normalise_user(sum: &Tensor, count: &Tensor) -> Result<Tensor, tch::TchError> {
    sum.f_div(&count.f_clamp_min(1.0)?.f_sqrt()?.f_unsqueeze(1)?)
}

/// A user as the preference part sees them: the catalogue positions they rated and the vector made from them.
#[derive(Debug, Clone, PartialEq)]
pub struct PreferenceUser {
    /// The user's preference vector.
    pub vector: Vec<f32>,
    /// The catalogue positions the user rated.
    pub rated: Vec<usize>,
}

/// The preference scores over a catalogue (by catalogue position): what ranks lists.
pub struct PreferenceScorer {
    inputs: Tensor,
    outputs: Tensor,
    bias: Tensor,
    blend: f32,
    neighbours: Option<CatalogueNeighbours>,
    movies: usize,
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

    /// The user who rated the catalogue positions `rated` (positions outside the catalogue are an error; an empty
    /// history gives the zero vector: the biases alone, a popularity-like order).
    pub fn user(&self, rated: &[usize]) -> Result<PreferenceUser, ModelError> {
        if let Some(bad) = rated.iter().find(|p| **p >= self.movies) {
            return Err(ModelError::InvalidArgument(format!("catalogue position {bad} is outside the {} movies", self.movies)));
        }
        if rated.is_empty() {
            return Ok(PreferenceUser { vector: vec![0.0; self.dim()], rated: Vec::new() });
        }
        let index = Tensor::f_from_slice(&rated.iter().map(|p| *p as i64).collect::<Vec<_>>())?;
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

    /// [users, movies]: each user's unweighted neighbourhood score (zeros without a neighbourhood).
    pub fn neighbour_scores(&self, users: &[PreferenceUser]) -> Result<Tensor, ModelError> {
        let flat: Vec<f32> = match &self.neighbours {
            Some(neighbours) => users.iter().flat_map(|u| neighbours.scores(&u.rated)).collect(),
            None => vec![0.0; users.len() * self.movies],
        };
        Ok(Tensor::f_from_slice(&flat)?.f_reshape([users.len() as i64, self.movies as i64])?)
    }

    /// [movies, dim]: every catalogue movie's output vector (for similar movies).
    pub fn output_vectors(&self) -> &Tensor {
        &self.outputs
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
        let neighbours = tables.neighbours.as_ref().map(|n| CatalogueNeighbours::over(n, &rows)).transpose()?;
        Ok(Some(PreferenceScorer {
            neighbours,
            movies: movie_rows.size()[0] as usize,
            inputs: vectors.inputs.f_contiguous()?,
            outputs: vectors.outputs.f_contiguous()?,
            bias: vectors.bias.f_contiguous()?,
            blend,
        }))
    }
}

#[cfg(all(test, feature = "train"))]
mod tests;
