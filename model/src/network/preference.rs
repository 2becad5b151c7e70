//! The preference part's variables (see `crate::preference` for what they rank and how): per trained movie an input
//! and an output row and a bias, the content projections into them, the rating blend weight, the optional item
//! neighbourhood's pruned item-item weights, and the optional table of every trained user's preference vector.
use super::Dense;
use crate::config::PreferenceConfig;
use tch::{nn, Tensor};

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
    /// [users + 1, dim]: each trained user's preference vector from their training ratings (row 0: none), for similar
    /// users; the trainer fills it.
    pub(crate) users: Option<Tensor>,
}

/// A movie set's preference vectors: input, output and bias, one row per movie.
pub(crate) struct MovieVectors {
    pub(crate) inputs: Tensor,
    pub(crate) outputs: Tensor,
    pub(crate) bias: Tensor,
}

impl PreferenceTables {
    pub(crate) fn new(path: &nn::Path, users: i64, movies: i64, content_dim: i64, config: &PreferenceConfig, random: bool) -> Self {
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
            users: config.user_vectors.then(|| path.var("user_vectors", &[users + 1, config.dim], nn::Init::Const(0.0))),
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
            users: self.users.as_ref().map(Tensor::shallow_clone),
        }
    }
}

/// A user's preference vector from the summed input vectors of `count` rated movies: divided by √count, so a long
/// history does not dwarf the movies' biases.
pub(crate) fn normalise_user(sum: &Tensor, count: &Tensor) -> Result<Tensor, tch::TchError> {
    sum.f_div(&count.f_clamp_min(1.0)?.f_sqrt()?.f_unsqueeze(1)?)
}

/// The stored neighbourhood: per movie row (row 0: none), the rows of its neighbours (as floats, 0: none) and the
/// weights towards them, and the weight of the neighbourhood score in the order.
#[derive(Debug)]
pub(crate) struct NeighbourTables {
    pub(crate) rows: Tensor,
    pub(crate) weights: Tensor,
    pub(crate) weight: Tensor,
}

impl NeighbourTables {
    pub(crate) fn new(path: &nn::Path, movies: i64, neighbours: i64) -> Self {
        Self {
            rows: path.var("neighbour_rows", &[movies + 1, neighbours], nn::Init::Const(0.0)),
            weights: path.var("neighbour_weights", &[movies + 1, neighbours], nn::Init::Const(0.0)),
            weight: path.var("neighbour_weight", &[1], nn::Init::Const(0.0)),
        }
    }

    #[cfg(feature = "train")]
    pub(crate) fn shallow_clone(&self) -> Self {
        Self { rows: self.rows.shallow_clone(), weights: self.weights.shallow_clone(), weight: self.weight.shallow_clone() }
    }

    /// Keeps the `neighbours` largest weights of each row of `item_item` [movies, movies] (column c: movie row c + 1),
    /// the diagonal left out.
    #[cfg(feature = "train")]
    pub(crate) fn set_from(&self, item_item: &Tensor) -> Result<(), crate::ModelError> {
        let (movies, neighbours) = (self.rows.size()[0] - 1, self.rows.size()[1]);
        if item_item.size() != [movies, movies] {
            return Err(crate::ModelError::InvalidArgument(format!("an item-item matrix of {:?} for {movies} movies", item_item.size())));
        }
        tch::no_grad(|| -> Result<(), crate::ModelError> {
            let mut masked = item_item.f_to_kind(tch::Kind::Float)?;
            let _ = masked.f_fill_diagonal_(f64::NEG_INFINITY, false)?;
            let (values, columns) = masked.f_topk(neighbours.min(movies - 1).max(0), 1, true, true)?;
            let kept = values.f_isfinite()?.f_logical_and(&values.f_gt(0.0)?)?;
            let values = values.f_where_scalarother(&kept, 0.0)?;
            let rows = columns.f_add_scalar(1)?.f_to_kind(tch::Kind::Float)?.f_where_scalarother(&kept, 0.0)?;
            let width = values.size()[1];
            self.weights.f_narrow(0, 1, movies)?.f_narrow(1, 0, width)?.f_copy_(&values)?;
            self.rows.f_narrow(0, 1, movies)?.f_narrow(1, 0, width)?.f_copy_(&rows)?;
            Ok(())
        })
    }
}
