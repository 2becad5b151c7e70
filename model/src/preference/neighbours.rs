//! The preference part's item neighbourhood: for each trained movie, its strongest item-item weights towards other
//! movies from a closed-form linear autoencoder (EASE, fitted by the trainer on catalogues up to 20,000 movies),
//! pruned to the top `PreferenceConfig::neighbours`. A user's neighbourhood score for a movie is the sum of the
//! weights towards it from the movies the user rated; the order adds it, times a weight chosen on validation, to the
//! preference score. Like the user vector, it follows a user's newest ratings and a visitor's at once.
use crate::ModelError;
use tch::{nn, Kind, Tensor};

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
    pub(crate) fn set_from(&self, item_item: &Tensor) -> Result<(), ModelError> {
        let (movies, neighbours) = (self.rows.size()[0] - 1, self.rows.size()[1]);
        if item_item.size() != [movies, movies] {
            return Err(ModelError::InvalidArgument(format!("an item-item matrix of {:?} for {movies} movies", item_item.size())));
        }
        tch::no_grad(|| -> Result<(), ModelError> {
            let mut masked = item_item.f_to_kind(Kind::Float)?;
            let _ = masked.f_fill_diagonal_(f64::NEG_INFINITY, false)?;
            let (values, columns) = masked.f_topk(neighbours.min(movies - 1).max(0), 1, true, true)?;
            let kept = values.f_isfinite()?.f_logical_and(&values.f_gt(0.0)?)?;
            let values = values.f_where_scalarother(&kept, 0.0)?;
            let rows = columns.f_add_scalar(1)?.f_to_kind(Kind::Float)?.f_where_scalarother(&kept, 0.0)?;
            let width = values.size()[1];
            self.weights.f_narrow(0, 1, movies)?.f_narrow(1, 0, width)?.f_copy_(&values)?;
            self.rows.f_narrow(0, 1, movies)?.f_narrow(1, 0, width)?.f_copy_(&rows)?;
            Ok(())
        })
    }
}

/// A catalogue's neighbourhood, by catalogue position: each position's (neighbour position, weight) pairs.
pub(crate) struct CatalogueNeighbours {
    lists: Vec<Vec<(u32, f32)>>,
    pub(crate) weight: f32,
}

impl CatalogueNeighbours {
    /// The neighbourhood over a catalogue whose position p holds movie row `movie_rows[p]` (0: no trained row).
    pub(crate) fn over(tables: &NeighbourTables, movie_rows: &[i64]) -> Result<Self, ModelError> {
        let stored_rows = tables.rows.size()[0];
        let mut position_of_row = vec![u32::MAX; stored_rows as usize];
        for (position, row) in movie_rows.iter().enumerate() {
            if (1..stored_rows).contains(row) {
                position_of_row[*row as usize] = position as u32;
            }
        }
        let width = tables.rows.size()[1] as usize;
        let rows: Vec<f32> = Vec::try_from(tables.rows.f_flatten(0, -1)?)?;
        let weights: Vec<f32> = Vec::try_from(tables.weights.f_flatten(0, -1)?)?;
        let lists = movie_rows
            .iter()
            .map(|row| {
                if !(1..stored_rows).contains(row) {
                    return Vec::new();
                }
                let start = *row as usize * width;
                rows[start..start + width]
                    .iter()
                    .zip(&weights[start..start + width])
                    .filter(|(neighbour, weight)| **neighbour >= 1.0 && **weight != 0.0)
                    .filter_map(|(neighbour, weight)| {
                        let position = *position_of_row.get(*neighbour as usize)?;
                        (position != u32::MAX).then_some((position, *weight))
                    })
                    .collect()
            })
            .collect();
        Ok(Self { lists, weight: tables.weight.f_double_value(&[0])? as f32 })
    }

    /// The unweighted neighbourhood score of every catalogue position for a user who rated `rated`.
    pub(crate) fn scores(&self, rated: &[usize]) -> Vec<f32> {
        let mut scores = vec![0f32; self.lists.len()];
        for position in rated {
            for (neighbour, weight) in self.lists.get(*position).into_iter().flatten() {
                scores[*neighbour as usize] += weight;
            }
        }
        scores
    }
}
