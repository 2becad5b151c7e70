//! The item neighbourhood over a catalogue: for each catalogue position, its strongest item-item weights towards
//! other positions (EASE, fitted by the trainer on catalogues up to 20,000 movies, pruned to
//! `PreferenceConfig::neighbours` per movie). A user's neighbourhood score for a movie is the sum of the weights towards
//! it from the movies the user rated, each counted as `NeighbourInput` says; like the user vector, it follows a user's
//! newest ratings and a visitor's at once.
use crate::config::NeighbourInput;
use crate::network::NeighbourTables;
use crate::ModelError;

/// A catalogue's neighbourhood, by catalogue position: each position's (neighbour position, weight) pairs.
pub(crate) struct CatalogueNeighbours {
    lists: Vec<Vec<(u32, f32)>>,
    pub(crate) weight: f32,
    input: NeighbourInput,
    rating_max: f32,
}

impl CatalogueNeighbours {
    /// The neighbourhood over a catalogue whose position p holds movie row `movie_rows[p]` (0: no trained row), whose
    /// users' rated movies count as `input` says on a scale topped by `rating_max`.
    pub(crate) fn over(tables: &NeighbourTables, movie_rows: &[i64], input: NeighbourInput, rating_max: f32) -> Result<Self, ModelError> {
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
        Ok(Self { lists, weight: tables.weight.f_double_value(&[0])? as f32, input, rating_max })
    }

    /// The neighbourhood score (before the neighbourhood's weight) of every catalogue position for a user who rated
    /// `rated` (catalogue position, rating).
    pub(crate) fn scores(&self, rated: &[(usize, f32)]) -> Vec<f32> {
        let mut scores = vec![0f32; self.lists.len()];
        for (position, rating) in rated {
            let counts = self.input.weight(*rating, self.rating_max);
            for (neighbour, weight) in self.lists.get(*position).into_iter().flatten() {
                scores[*neighbour as usize] += counts * weight;
            }
        }
        scores
    }
}
