//! Serving-time scoring over a catalogue. The head's first layer is split into a user part and a movie part, both
//! precomputed (W·[u; m; c] = W_u·u + W_mc·[m; c]), so a pair costs only the remaining small layers. Single pairs
//! run in plain Rust: libtorch needs ~50 µs per single-pair forward (mostly per-op dispatch), this path a few µs
//! (`recsys_bench serving`). Whole-catalogue scoring for one or many users runs as libtorch matmuls over the same
//! tables. Both reproduce `forward_encoded` in evaluation mode (unit tests compare them).
use crate::ModelError;
use tch::{Kind, Tensor};

/// An owned, contiguous f32 CPU tensor whose data can also be read as a slice.
struct Matrix {
    tensor: Tensor,
}

impl Matrix {
    fn new(source: &Tensor) -> Result<Self, ModelError> {
        Ok(Self { tensor: source.f_to_kind(Kind::Float)?.f_contiguous()?.f_detach_copy()?.f_contiguous()? })
    }

    fn as_slice(&self) -> &[f32] {
        // SAFETY: `tensor` is a contiguous f32 CPU tensor created in `new`, owned here and never written to.
        unsafe { std::slice::from_raw_parts(self.tensor.data_ptr() as *const f32, self.tensor.numel()) }
    }
}

/// A dense layer: weights [outputs, inputs] and bias [outputs].
struct Layer {
    weight: Matrix,
    bias: Matrix,
    inputs: usize,
}

impl Layer {
    fn new(weight: &Tensor, bias: &Tensor) -> Result<Self, ModelError> {
        Ok(Self { weight: Matrix::new(weight)?, bias: Matrix::new(bias)?, inputs: weight.size()[1] as usize })
    }

    fn apply(&self, x: &[f32], out: &mut Vec<f32>, relu: bool) {
        out.clear();
        for (row, bias) in self.weight.as_slice().chunks_exact(self.inputs).zip(self.bias.as_slice()) {
            let sum = dot(row, x) + bias;
            out.push(if relu { sum.max(0.0) } else { sum });
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        Ok(x.f_linear(&self.weight.tensor, Some(&self.bias.tensor))?)
    }
}

/// The `k` best of `candidates` (catalogue positions) by `scores`, best first; ties go to the lower `ids` entry.
pub fn top_k(scores: &[f32], ids: &[i32], mut candidates: Vec<usize>, k: usize) -> Vec<usize> {
    let better = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then(ids[*a].cmp(&ids[*b]));
    let k = k.min(candidates.len());
    if k > 0 && k < candidates.len() {
        candidates.select_nth_unstable_by(k - 1, better);
    }
    candidates.truncate(k);
    candidates.sort_by(better);
    candidates
}

/// Dot product with eight independent accumulators, so the compiler can vectorise it (a single running sum
/// forces sequential float additions).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for lane in 0..8 {
            lanes[lane] += x[lane] * y[lane];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

pub struct CatalogueScorer {
    width: usize,
    movies: usize,
    /// [users + 1, width]: the user part of the head's first layer, per user row.
    user_part: Matrix,
    /// [movies, width]: the movie and content part plus the first layer's bias, per catalogue position.
    movie_part: Matrix,
    hidden: Vec<Layer>,
    output: Layer,
    /// [users + 1]: per user row (0 when biases are off).
    user_bias: Matrix,
    /// [movies]: per catalogue position, global + movie + content bias (0 when biases are off).
    movie_bias: Matrix,
    rating_min: f32,
    rating_max: f32,
}

/// What `HybridRecommender::catalogue_scorer` hands over: the tensors of an evaluation-mode network, precombined.
pub struct ScorerParts<'a> {
    pub user_part: Tensor,
    pub movie_part: Tensor,
    pub hidden: Vec<(&'a Tensor, &'a Tensor)>,
    pub output: (&'a Tensor, &'a Tensor),
    pub user_bias: Tensor,
    pub movie_bias: Tensor,
    pub rating_min: f64,
    pub rating_max: f64,
}

impl CatalogueScorer {
    pub fn new(parts: ScorerParts<'_>) -> Result<Self, ModelError> {
        Ok(Self {
            width: parts.user_part.size()[1] as usize,
            movies: parts.movie_part.size()[0] as usize,
            user_part: Matrix::new(&parts.user_part)?,
            movie_part: Matrix::new(&parts.movie_part)?,
            hidden: parts.hidden.iter().map(|(w, b)| Layer::new(w, b)).collect::<Result<_, _>>()?,
            output: Layer::new(parts.output.0, parts.output.1)?,
            user_bias: Matrix::new(&parts.user_bias)?,
            movie_bias: Matrix::new(&parts.movie_bias)?,
            rating_min: parts.rating_min as f32,
            rating_max: parts.rating_max as f32,
        })
    }

    /// Number of catalogue positions.
    pub fn movies(&self) -> usize {
        self.movies
    }

    /// Width of the head's first layer: floats per (user, movie) pair in `score_catalogue`.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Number of user rows, including row 0 (the unknown user).
    pub fn user_rows(&self) -> usize {
        self.user_bias.tensor.numel()
    }

    /// The clipped predicted rating of a user row for a catalogue position; `None` when either is out of range.
    pub fn score(&self, user_row: usize, movie_position: usize) -> Option<f32> {
        let user = self.user_part.as_slice().get(user_row * self.width..(user_row + 1) * self.width)?;
        let movie = self.movie_part.as_slice().get(movie_position * self.width..(movie_position + 1) * self.width)?;
        let mut x: Vec<f32> = user.iter().zip(movie).map(|(u, m)| (u + m).max(0.0)).collect();
        let mut y = Vec::with_capacity(self.width);
        for layer in &self.hidden {
            layer.apply(&x, &mut y, true);
            std::mem::swap(&mut x, &mut y);
        }
        self.output.apply(&x, &mut y, false);
        let raw = y[0] + self.user_bias.as_slice().get(user_row)? + self.movie_bias.as_slice()[movie_position];
        Some(raw.clamp(self.rating_min, self.rating_max))
    }

    /// Clipped predicted ratings of every catalogue movie for each user row: [users, movies], as libtorch matmuls
    /// (threads follow `tch::set_num_threads`). Memory is about users × movies × width floats at once.
    pub fn score_catalogue(&self, user_rows: &[i64]) -> Result<Tensor, ModelError> {
        if let Some(bad) = user_rows.iter().find(|r| **r < 0 || **r as usize >= self.user_rows()) {
            return Err(ModelError::InvalidArgument(format!("user row {bad} is outside the model's {} rows", self.user_rows())));
        }
        let (users, movies, width) = (user_rows.len() as i64, self.movies as i64, self.width as i64);
        tch::no_grad(|| {
            let rows = Tensor::f_from_slice(user_rows)?;
            let user_part = self.user_part.tensor.f_index_select(0, &rows)?.f_unsqueeze(1)?;
            let mut x = user_part.f_add(&self.movie_part.tensor.f_unsqueeze(0)?)?.f_view([users * movies, width])?;
            let _ = x.f_relu_()?;
            for layer in &self.hidden {
                x = layer.forward(&x)?;
                let _ = x.f_relu_()?;
            }
            let raw = self.output.forward(&x)?.f_view([users, movies])?;
            let user_bias = self.user_bias.tensor.f_index_select(0, &rows)?.f_unsqueeze(1)?;
            let scores = raw.f_add(&user_bias)?.f_add(&self.movie_bias.tensor.f_unsqueeze(0)?)?;
            Ok(scores.f_clamp(f64::from(self.rating_min), f64::from(self.rating_max))?)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_score_then_id() {
        let scores = [1.0, 3.0, 2.0, 3.0, 0.5];
        let ids = [10, 40, 30, 20, 50];
        assert_eq!(top_k(&scores, &ids, vec![0, 1, 2, 3, 4], 3), [3, 1, 2]);
        assert_eq!(top_k(&scores, &ids, vec![0, 4], 10), [0, 4]);
        assert!(top_k(&scores, &ids, vec![], 3).is_empty());
    }
}
