//! The cheap first stage of two-stage ranking: every raw-score term except the head is exact, and the head's output
//! over the catalogue is approximated as a per-movie mean plus a low-rank user × movie product, fitted once per
//! scorer on a sample of users (SVD) and placed for any user (trained or folded) from its exact head at a few anchors.
use super::core::{raw_scores, PairPass, ScoringTables};
use super::matrix::Matrix;
use super::passes::{Columns, TensorPass};
use super::CatalogueScorer;
use crate::ModelError;
use tch::{Kind, Tensor};

/// Trained users whose exact head over the whole catalogue the low-rank model is fitted to.
pub const SAMPLE_USERS: usize = 64;
/// Rank of the head's approximation.
pub const RANK: usize = 16;
/// Movies at which each user's exact head is computed to place it in the low-rank space.
pub const ANCHORS: usize = 64;
/// Floats of first-layer activations computed at once when evaluating the head (4 MB).
const HEAD_FLOATS_PER_BLOCK: usize = 1 << 20;

/// The fitted low-rank model of the head: head[u, m] ≈ mean[m] + coordinates(u) · factors[m].
pub(crate) struct RetrievalIndex {
    /// [1, movies]: the head's mean output per movie over the sample.
    mean: Tensor,
    /// [movies, rank]: orthonormal movie factors of the head's deviations from the mean.
    factors: Tensor,
    /// int64 [anchors]: catalogue positions with the largest leverage in `factors`.
    anchors: Tensor,
    /// [anchors, rank]: maps a user's head deviations at the anchors to their coordinates (least squares).
    projection: Tensor,
}

/// A catalogue pass whose head is the low-rank approximation; every other term is the tensor pass's exact one.
struct ApproximatePass {
    exact_terms: TensorPass,
    head: Tensor,
}

impl PairPass for ApproximatePass {
    type Scores = Tensor;

    fn head(&self, _tables: &ScoringTables) -> Result<Tensor, ModelError> {
        Ok(self.head.shallow_clone())
    }

    fn biases(&self, user_bias: &Matrix, movie_bias: &Matrix) -> Result<Tensor, ModelError> {
        self.exact_terms.biases(user_bias, movie_bias)
    }

    fn user_dot_movie(&self, user: &Matrix, movie: &Matrix) -> Result<Tensor, ModelError> {
        self.exact_terms.user_dot_movie(user, movie)
    }

    fn user_times_movie(&self, user: &Matrix, movie: &Matrix) -> Result<Tensor, ModelError> {
        self.exact_terms.user_times_movie(user, movie)
    }

    fn user_only(&self, user: &Matrix) -> Result<Tensor, ModelError> {
        self.exact_terms.user_only(user)
    }
}

/// [rows, movies]: the exact head output of `rows` (of `tables`) with every movie of `movie_table`, in blocks of
/// movies small enough for the first layer's activations to stay in cache.
fn exact_heads(tables: &ScoringTables, rows: &Tensor, movie_table: &Tensor) -> Result<Tensor, ModelError> {
    let (users, movies, width) = (rows.size()[0].max(1) as usize, movie_table.size()[0], movie_table.size()[1].max(1) as usize);
    let block = (HEAD_FLOATS_PER_BLOCK / (users * width)).max(1) as i64;
    let mut blocks = Vec::new();
    let mut start = 0;
    while start < movies {
        let part = movie_table.f_narrow(0, start, block.min(movies - start))?;
        let pass = TensorPass::new(tables, rows.shallow_clone(), Columns::Every, &part, tables.head_layers())?;
        blocks.push(pass.head(tables)?);
        start += block;
    }
    Ok(Tensor::f_cat(&blocks, 1)?)
}

/// `count` user rows spread evenly over the trained ones (row 0, the unknown user, only when there is no other).
fn sample_rows(user_rows: usize, count: usize) -> Vec<i64> {
    let trained = user_rows.saturating_sub(1);
    if trained == 0 {
        return vec![0];
    }
    let count = count.min(trained);
    (0..count).map(|i| 1 + (i * trained / count) as i64).collect()
}

impl RetrievalIndex {
    fn fit(tables: &ScoringTables, user_rows: usize, movie_table: &Tensor) -> Result<Self, ModelError> {
        let rows = Tensor::f_from_slice(&sample_rows(user_rows, SAMPLE_USERS))?;
        let heads = exact_heads(tables, &rows, movie_table)?;
        let mean = heads.f_mean_dim([0i64].as_slice(), true, Kind::Float)?;
        let (_, _, right) = heads.f_sub(&mean)?.f_svd(true, true)?;
        let rank = RANK.min(right.size()[1] as usize) as i64;
        let factors = right.f_narrow(1, 0, rank)?.f_contiguous()?;
        let anchor_count = (ANCHORS as i64).min(factors.size()[0]);
        let leverage = factors.f_square()?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?;
        let (_, anchors) = leverage.f_topk(anchor_count, 0, true, true)?;
        let projection = factors.f_index_select(0, &anchors)?.f_linalg_pinv(1e-6, false)?.f_tr()?.f_contiguous()?;
        Ok(Self { mean, factors, anchors, projection })
    }

    /// [rows, movies]: the approximate head of `rows` (of `tables`) over the catalogue.
    fn heads(&self, tables: &ScoringTables, rows: &Tensor, movie_table: &Tensor) -> Result<Tensor, ModelError> {
        let at_anchors = exact_heads(tables, rows, &movie_table.f_index_select(0, &self.anchors)?)?;
        let coordinates = at_anchors.f_sub(&self.mean.f_index_select(1, &self.anchors)?)?.f_matmul(&self.projection)?;
        Ok(coordinates.f_matmul(&self.factors.f_tr()?)?.f_add(&self.mean)?)
    }
}

impl CatalogueScorer {
    fn retrieval_index(&self) -> Result<&RetrievalIndex, ModelError> {
        if let Some(index) = self.retrieval.get() {
            return Ok(index);
        }
        let index = tch::no_grad(|| RetrievalIndex::fit(&self.tables, self.user_rows(), &self.movie_table()?.tensor))?;
        Ok(self.retrieval.get_or_init(|| index))
    }

    /// Approximate raw scores of every catalogue movie for rows of `tables` (the scorer's own, or folded users'):
    /// [rows, movies]. The first call fits the low-rank model (`SAMPLE_USERS` × movies exact head evaluations).
    pub(crate) fn approximate_pass(&self, tables: &ScoringTables, user_rows: &[i64]) -> Result<Tensor, ModelError> {
        let index = self.retrieval_index()?;
        tch::no_grad(|| {
            let rows = Tensor::f_from_slice(user_rows)?;
            let movie_table = &self.movie_table()?.tensor;
            let head = index.heads(tables, &rows, movie_table)?;
            let exact_terms = TensorPass::new(tables, rows, Columns::Every, movie_table, Vec::new())?;
            raw_scores(tables, &ApproximatePass { exact_terms, head })
        })
    }

    /// Approximate raw scores of every catalogue movie for each user row: [users, movies] (see `approximate_pass`).
    pub fn approximate_catalogue(&self, user_rows: &[i64]) -> Result<Tensor, ModelError> {
        self.check_user_rows(user_rows)?;
        self.approximate_pass(&self.tables, user_rows)
    }

    /// `approximate_catalogue` for users fitted at query time: [users, movies].
    pub fn approximate_catalogue_folded(&self, users: &[super::FoldedUser]) -> Result<Tensor, ModelError> {
        let rows: Vec<i64> = (0..users.len() as i64).collect();
        self.approximate_pass(&self.tables.for_users(users, self.user_dim())?, &rows)
    }
}

#[cfg(test)]
mod tests {
    use super::sample_rows;

    #[test]
    fn samples_spread_over_the_trained_rows() {
        assert_eq!(sample_rows(1, 4), [0]);
        assert_eq!(sample_rows(4, 10), [1, 2, 3]);
        assert_eq!(sample_rows(9, 4), [1, 3, 5, 7]);
    }
}
