//! Nearest neighbours in the model's learned representations, by cosine similarity. A movie is what it feeds the
//! head's first layer, W_mc·[embedding; content] (collaborative and content signals together; content alone for a
//! movie without ratings), then its dot-product vector when the network has one; a user likewise, W_u·embedding then
//! the embedding. The normalised tables are built on first use and kept with the scorer.
use super::matrix::Matrix;
use super::CatalogueScorer;
use crate::ModelError;
use tch::Tensor;

impl CatalogueScorer {
    /// [movies, d]: every catalogue movie's representation, L2-normalised.
    fn movie_representations(&self) -> Result<&Matrix, ModelError> {
        if let Some(table) = self.movie_representations.get() {
            return Ok(table);
        }
        let first_layer = self.movie_table()?.tensor.f_sub(&self.tables.movie_layer.bias.tensor)?;
        let table = normalised(first_layer, self.tables.movie_vectors.as_ref())?;
        Ok(self.movie_representations.get_or_init(|| table))
    }

    /// [user rows, d]: every user row's representation, L2-normalised.
    fn user_representations(&self) -> Result<&Matrix, ModelError> {
        if let Some(table) = self.user_representations.get() {
            return Ok(table);
        }
        let first_layer = tch::no_grad(|| self.tables.user_layer.forward(&self.tables.user_embedding.tensor))?;
        let table = normalised(first_layer, self.tables.movie_vectors.as_ref().map(|_| &self.tables.user_embedding))?;
        Ok(self.user_representations.get_or_init(|| table))
    }

    /// The `k` catalogue positions most similar to `position` among those `allowed` accepts (never `position`
    /// itself), most similar first (ties: lower position first), with their cosine similarity.
    pub fn similar_movies(&self, position: usize, k: usize, allowed: impl Fn(usize) -> bool) -> Result<Vec<(usize, f32)>, ModelError> {
        let table = self.movie_representations()?;
        nearest(table, position, k, |candidate| candidate != position && allowed(candidate))
    }

    /// The `k` user rows most similar to `row` (never `row` itself nor row 0, the unknown user), most similar first.
    pub fn similar_users(&self, row: usize, k: usize) -> Result<Vec<(usize, f32)>, ModelError> {
        let table = self.user_representations()?;
        nearest(table, row, k, |candidate| candidate != row && candidate != 0)
    }
}

/// `first` with `second`'s columns appended (when given), each row scaled to unit length.
pub(crate) fn normalised(first: Tensor, second: Option<&Matrix>) -> Result<Matrix, ModelError> {
    let joined = match second {
        Some(second) => Tensor::f_cat(&[&first, &second.tensor], 1)?,
        None => first,
    };
    let norms = joined.f_norm_scalaropt_dim(2, [1i64].as_slice(), true)?.f_clamp_min(1e-12)?;
    Matrix::copy(&joined.f_div(&norms)?)
}

/// The `k` rows of `table` with the largest dot product with row `query` among those `eligible` accepts, largest
/// first (ties: lower row first).
pub(crate) fn nearest(table: &Matrix, query: usize, k: usize, eligible: impl Fn(usize) -> bool) -> Result<Vec<(usize, f32)>, ModelError> {
    let width = table.width();
    let target = table.row(query, width).ok_or_else(|| ModelError::InvalidArgument(format!("row {query} is outside the table")))?;
    let mut similarities: Vec<(usize, f32)> = table
        .as_slice()
        .chunks_exact(width)
        .enumerate()
        .filter(|(row, _)| eligible(*row))
        .map(|(row, values)| (row, super::matrix::dot(values, target)))
        .collect();
    let order = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if similarities.len() > k && k > 0 {
        similarities.select_nth_unstable_by(k - 1, order);
    }
    similarities.truncate(k);
    similarities.sort_by(order);
    Ok(similarities)
}

impl CatalogueScorer {
    /// Cosine similarity of the movie at `position` to each movie of `others` (catalogue positions).
    pub fn movie_similarities(&self, position: usize, others: &[usize]) -> Result<Vec<f32>, ModelError> {
        let table = self.movie_representations()?;
        let width = table.width();
        let row =
            |at: usize| table.row(at, width).ok_or_else(|| ModelError::InvalidArgument(format!("catalogue position {at} is outside the catalogue")));
        let target = row(position)?;
        others.iter().map(|at| Ok(super::matrix::dot(row(*at)?, target))).collect()
    }
}
