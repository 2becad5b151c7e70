//! A plain-Rust scorer for one (user, movie) pair at a time, for SQL paths that score row by row. The head's first
//! layer is split into a user part and a movie part, both precomputed (W·[u; m; c] = W_u·u + W_mc·[m; c]), so a
//! pair costs the remaining small layers only. Measured in `recsys_bench serving`: libtorch needs ~50 µs per
//! single-pair forward (mostly per-op dispatch); this path needs a few µs. It reproduces `forward_encoded` in
//! evaluation mode (a unit test compares them).
use crate::ModelError;
use tch::{Kind, Tensor};

fn to_vec(tensor: &Tensor) -> Result<Vec<f32>, ModelError> {
    Ok(Vec::<f32>::try_from(tensor.f_to_kind(Kind::Float)?.f_contiguous()?.f_flatten(0, -1)?)?)
}

/// A dense layer as row-major weights.
struct Layer {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl Layer {
    fn new(weight: &Tensor, bias: &Tensor) -> Result<Self, ModelError> {
        let inputs = weight.size()[1] as usize;
        Ok(Self { weight: to_vec(weight)?, bias: to_vec(bias)?, inputs })
    }

    fn apply(&self, x: &[f32], out: &mut Vec<f32>, relu: bool) {
        out.clear();
        for (row, bias) in self.weight.chunks_exact(self.inputs).zip(&self.bias) {
            let sum = dot(row, x) + bias;
            out.push(if relu { sum.max(0.0) } else { sum });
        }
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

pub struct PairScorer {
    width: usize,
    /// [users + 1, width]: the user part of the head's first layer, per user row.
    user_part: Vec<f32>,
    /// [movies, width]: the movie and content part plus the first layer's bias, per catalogue position.
    movie_part: Vec<f32>,
    hidden: Vec<Layer>,
    output: Layer,
    /// Per user row (0 when biases are off).
    user_bias: Vec<f32>,
    /// Per catalogue position: global + movie + content bias (0 when biases are off).
    movie_bias: Vec<f32>,
    rating_min: f32,
    rating_max: f32,
}

/// What `HybridRecommender::pair_scorer` hands over: the tensors of an evaluation-mode network, precombined.
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

impl PairScorer {
    pub fn new(parts: ScorerParts<'_>) -> Result<Self, ModelError> {
        Ok(Self {
            width: parts.user_part.size()[1] as usize,
            user_part: to_vec(&parts.user_part)?,
            movie_part: to_vec(&parts.movie_part)?,
            hidden: parts.hidden.iter().map(|(w, b)| Layer::new(w, b)).collect::<Result<_, _>>()?,
            output: Layer::new(parts.output.0, parts.output.1)?,
            user_bias: to_vec(&parts.user_bias)?,
            movie_bias: to_vec(&parts.movie_bias)?,
            rating_min: parts.rating_min as f32,
            rating_max: parts.rating_max as f32,
        })
    }

    /// The clipped predicted rating of a user row for a catalogue position.
    pub fn score(&self, user_row: usize, movie_position: usize) -> Option<f32> {
        let user = self.user_part.get(user_row * self.width..(user_row + 1) * self.width)?;
        let movie = self.movie_part.get(movie_position * self.width..(movie_position + 1) * self.width)?;
        let mut x: Vec<f32> = user.iter().zip(movie).map(|(u, m)| (u + m).max(0.0)).collect();
        let mut y = Vec::with_capacity(self.width);
        for layer in &self.hidden {
            layer.apply(&x, &mut y, true);
            std::mem::swap(&mut x, &mut y);
        }
        self.output.apply(&x, &mut y, false);
        let raw = y[0] + self.user_bias.get(user_row)? + self.movie_bias[movie_position];
        Some(raw.clamp(self.rating_min, self.rating_max))
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
