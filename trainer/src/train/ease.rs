//! EASE (Steck, "Embarrassingly Shallow Autoencoders", WWW 2019), the closed-form item-item baseline every ranking
//! evaluation prints beside the model: B = I − P·diag(1/diag(P)) with P = (XᵀX + λI)⁻¹ over the binary
//! user × movie matrix X of the training ratings, in libtorch's linear algebra (XᵀX + λI is positive definite:
//! Cholesky, then its inverse); a user's scores are x·B.
use super::data::Ratings;
use anyhow::Result;
use std::collections::HashMap;
use tch::{Device, Kind, Tensor};

/// Catalogues with more rated movies than this skip EASE (its matrix is movies² floats: 1.6 GB at 20,000).
pub const MAX_MOVIES: usize = 20_000;
/// λ, as in the anchor harness (`ranking.py`).
pub const LAMBDA: f64 = 500.0;
/// Users added to the Gram matrix at once (bounds the dense block to users × movies floats).
const USERS_PER_BLOCK: usize = 2048;

/// A fitted EASE model: the item-item weights over the movies with training ratings.
pub struct Ease {
    weights: Tensor,
    column_of: HashMap<i32, usize>,
    movies: Vec<i32>,
}

impl Ease {
    /// Fits EASE on `train` (every rating a 1), or `None` when it has more than `MAX_MOVIES` movies.
    pub fn fit(train: &Ratings, lambda: f64) -> Result<Option<Self>> {
        let mut movies: Vec<i32> = train.movies.clone();
        movies.sort_unstable();
        movies.dedup();
        if movies.len() > MAX_MOVIES {
            return Ok(None);
        }
        let column_of: HashMap<i32, usize> = movies.iter().enumerate().map(|(column, id)| (*id, column)).collect();
        let mut by_user: HashMap<i32, Vec<usize>> = HashMap::new();
        for (user, movie) in train.users.iter().zip(&train.movies) {
            by_user.entry(*user).or_default().push(column_of[movie]);
        }
        let mut users: Vec<Vec<usize>> = by_user.into_values().collect();
        users.sort_unstable();
        let weights = item_item(&users, movies.len(), lambda)?;
        Ok(Some(Self { weights, column_of, movies }))
    }

    /// Scores of every movie with training ratings for a user who rated `rated` (ids), as (movie id, score).
    pub fn scores(&self, rated: &[i32]) -> Result<Vec<(i32, f32)>> {
        let columns: Vec<i64> = rated.iter().filter_map(|m| self.column_of.get(m)).map(|c| *c as i64).collect();
        let scores: Vec<f32> = if columns.is_empty() {
            vec![0.0; self.movies.len()]
        } else {
            Vec::try_from(self.weights.f_index_select(0, &Tensor::from_slice(&columns))?.f_sum_dim_intlist([0i64].as_slice(), false, Kind::Float)?)?
        };
        Ok(self.movies.iter().copied().zip(scores).collect())
    }
}

/// EASE's B over `columns` items from each user's rated columns: [columns, columns], zero diagonal.
pub fn item_item(users: &[Vec<usize>], columns: usize, lambda: f64) -> Result<Tensor> {
    let width = columns as i64;
    let mut gram = Tensor::zeros([width, width], (Kind::Float, Device::Cpu));
    for block in users.chunks(USERS_PER_BLOCK) {
        let x = indicator(block, columns)?;
        gram = gram.f_add(&x.f_tr()?.f_matmul(&x)?)?;
    }
    let regularised = gram.f_add(&Tensor::f_eye(width, (Kind::Float, Device::Cpu))?.f_mul_scalar(lambda)?)?;
    let precision = Tensor::f_linalg_cholesky(&regularised, false)?.f_cholesky_inverse(false)?;
    let diagonal = precision.f_diagonal(0, 0, 1)?;
    let mut weights = precision.f_div(&diagonal.f_unsqueeze(0)?)?.f_neg()?;
    let _ = weights.f_fill_diagonal_(0.0, false)?;
    Ok(weights)
}

/// EASE's B over the movie rows of `histories` (per user row: (movie row ≥ 1, rating)), column c for movie row
/// c + 1; `None` above `MAX_MOVIES` movies.
pub fn item_item_by_row(histories: &[Vec<(i64, f32)>], movies: usize, lambda: f64) -> Result<Option<Tensor>> {
    if movies > MAX_MOVIES {
        return Ok(None);
    }
    let users: Vec<Vec<usize>> = histories.iter().filter(|h| !h.is_empty()).map(|h| h.iter().map(|(row, _)| (*row - 1) as usize).collect()).collect();
    Ok(Some(item_item(&users, movies, lambda)?))
}

/// [users, movies]: 1 where the user rated the movie.
fn indicator(users: &[Vec<usize>], movies: usize) -> Result<Tensor> {
    let mut flat = vec![0f32; users.len() * movies];
    for (row, columns) in users.iter().enumerate() {
        for column in columns.iter() {
            flat[row * movies + column] = 1.0;
        }
    }
    Ok(Tensor::from_slice(&flat).f_reshape([users.len() as i64, movies as i64])?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three users over three movies: X = [[1,1,0],[0,1,1],[1,1,1]]; G = XᵀX = [[2,2,1],[2,3,2],[1,2,2]]. With λ = 1,
    /// P = (G + I)⁻¹ = [[3,2,1],[2,4,2],[1,2,3]]⁻¹ = (1/16)·[[8,-4,0],[-4,8,-4],[0,-4,8]], so B_ij = −P_ij / P_jj:
    /// B = [[0, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0]].
    #[test]
    fn ease_reproduces_a_hand_computed_case() {
        let train =
            Ratings { users: vec![1, 1, 2, 2, 3, 3, 3], movies: vec![10, 20, 20, 30, 10, 20, 30], values: vec![5.0; 7], rated_at: vec![0; 7] };
        let ease = Ease::fit(&train, 1.0).unwrap().unwrap();
        let expected = [[0.0, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.0]];
        for (i, row) in expected.iter().enumerate() {
            for (j, value) in row.iter().enumerate() {
                let got = ease.weights.double_value(&[i as i64, j as i64]);
                assert!((got - value).abs() < 1e-5, "B[{i}][{j}] = {got}, expected {value}");
            }
        }
        let scores = ease.scores(&[10]).unwrap();
        let expected = [(10, 0.0), (20, 0.5), (30, 0.0)];
        assert!(
            scores.iter().zip(expected).all(|((id, score), (want_id, want))| *id == want_id && (score - want).abs() < 1e-5),
            "a user who rated movie 10 gets row 0 of B: {scores:?}"
        );
    }
}
