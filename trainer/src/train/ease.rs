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

    /// For each user (the ids they rated), every movie with training ratings as (movie id, score): the users' rows
    /// of X·B in blocks of `USERS_PER_BLOCK` matrix products.
    pub fn scores(&self, users: &[&[i32]]) -> Result<Vec<Vec<(i32, f32)>>> {
        let mut all = Vec::with_capacity(users.len());
        for block in users.chunks(USERS_PER_BLOCK) {
            let columns: Vec<Vec<usize>> = block.iter().map(|rated| rated.iter().filter_map(|m| self.column_of.get(m).copied()).collect()).collect();
            let scores = indicator(&columns, self.movies.len())?.f_matmul(&self.weights)?;
            let flat: Vec<f32> = Vec::try_from(scores.f_flatten(0, -1)?)?;
            all.extend(flat.chunks_exact(self.movies.len().max(1)).map(|row| self.movies.iter().copied().zip(row.iter().copied()).collect()));
        }
        Ok(all)
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

/// Movies with fewer training ratings than this have no neighbours in the preference part's item neighbourhood: with
/// λ = 500 their weights are a few thousandths, and leaving them out of the inverse makes it several times cheaper
/// (ml-latest-small: 4,980 of 9,742 movies, (4,980 / 9,742)³ ≈ 13 % of the work).
pub const NEIGHBOUR_MIN_RATINGS: usize = 3;

/// EASE's B over the movie rows of `histories` (per user row: (movie row ≥ 1, rating)), column c for movie row
/// c + 1, fitted over the movies with at least `NEIGHBOUR_MIN_RATINGS` ratings (the others' rows and columns are 0);
/// `None` above `MAX_MOVIES` movies.
pub fn item_item_by_row(histories: &[Vec<(i64, f32)>], movies: usize, lambda: f64) -> Result<Option<Tensor>> {
    if movies > MAX_MOVIES {
        return Ok(None);
    }
    let mut counts = vec![0usize; movies];
    histories.iter().flatten().for_each(|(row, _)| counts[(*row - 1) as usize] += 1);
    let kept: Vec<i64> = (0..movies).filter(|c| counts[*c] >= NEIGHBOUR_MIN_RATINGS).map(|c| c as i64).collect();
    let mut column_of = vec![None; movies];
    kept.iter().enumerate().for_each(|(column, movie)| column_of[*movie as usize] = Some(column));
    let users: Vec<Vec<usize>> = histories
        .iter()
        .map(|h| h.iter().filter_map(|(row, _)| column_of[(*row - 1) as usize]).collect::<Vec<usize>>())
        .filter(|columns| !columns.is_empty())
        .collect();
    let full = Tensor::f_zeros([movies as i64, movies as i64], (Kind::Float, Device::Cpu))?;
    if kept.is_empty() {
        return Ok(Some(full));
    }
    let weights = item_item(&users, kept.len(), lambda)?;
    let index = Tensor::f_from_slice(&kept)?;
    let rows = Tensor::f_zeros([kept.len() as i64, movies as i64], (Kind::Float, Device::Cpu))?.f_index_copy(1, &index, &weights)?;
    Ok(Some(full.f_index_copy(0, &index, &rows)?))
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
        let scores = ease.scores(&[&[10], &[]]).unwrap();
        assert!(scores[1].iter().all(|(_, score)| *score == 0.0), "a user without ratings scores 0 everywhere: {:?}", scores[1]);
        let scores = &scores[0];
        let expected = [(10, 0.0), (20, 0.5), (30, 0.0)];
        assert!(
            scores.iter().zip(expected).all(|((id, score), (want_id, want))| *id == want_id && (score - want).abs() < 1e-5),
            "a user who rated movie 10 gets row 0 of B: {scores:?}"
        );
    }

    /// The hand-computed case inside a larger catalogue: movie rows 1, 3 and 4 rated three times each, rows 2 and 5
    /// once: the neighbourhood is the three-movie B, the rarely rated movies' rows and columns are 0.
    #[test]
    fn the_neighbourhood_leaves_out_rarely_rated_movies() {
        let histories = vec![
            vec![(1, 5.0), (3, 5.0), (2, 4.0)],
            vec![(3, 5.0), (4, 5.0)],
            vec![(1, 5.0), (3, 5.0), (4, 5.0), (5, 3.0)],
            vec![(4, 4.0), (1, 4.0)],
        ];
        let weights = item_item_by_row(&histories, 5, 1.0).unwrap().unwrap();
        let dense = item_item(&[vec![0, 1], vec![1, 2], vec![0, 1, 2], vec![2, 0]], 3, 1.0).unwrap();
        let kept = [0i64, 2, 3];
        for i in 0..5i64 {
            for j in 0..5i64 {
                let got = weights.double_value(&[i, j]);
                let expected = match (kept.iter().position(|k| *k == i), kept.iter().position(|k| *k == j)) {
                    (Some(a), Some(b)) => dense.double_value(&[a as i64, b as i64]),
                    _ => 0.0,
                };
                assert!((got - expected).abs() < 1e-6, "B[{i}][{j}] = {got}, expected {expected}");
            }
        }
        assert!(dense.abs().sum(Kind::Float).double_value(&[]) > 0.1, "the kept movies have neighbours");
    }
}
