//! The exact two-stage preference order for one user over a large catalogue: an int8 copy of the output vectors (a
//! quarter of the float32 table's bytes, so the pass over the catalogue reads 4 MB instead of 16 at 62k movies) gives
//! every candidate an approximate score with a proven error bound, and every candidate that could reach the pool is
//! rescored exactly in float32.
use crate::scoring::dot;

/// Slack on the int8 rounding bound (half a quantisation step per value) that covers the float32 rounding of both
/// the approximate and the exact sums.
const BOUND_SLACK: f32 = 0.51;

/// Absolute slack, relative to the size of a score, for the float32 additions of bias and neighbourhood.
const RELATIVE_SLACK: f32 = 1e-5;

/// The output vectors rounded to int8, row by row: row r ≈ `scales[r]` × `values[r]`.
pub(crate) struct QuantisedOutputs {
    values: Vec<i8>,
    scales: Vec<f32>,
    width: usize,
}

impl QuantisedOutputs {
    /// Rounds each row of `outputs` ([rows, width], row-major) to int8 with its own scale (its largest magnitude
    /// over 127).
    pub(crate) fn of(outputs: &[f32], width: usize) -> Self {
        let width = width.max(1);
        let mut values = Vec::with_capacity(outputs.len());
        let mut scales = Vec::with_capacity(outputs.len() / width);
        for row in outputs.chunks_exact(width) {
            let largest = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let scale = if largest > 0.0 { largest / 127.0 } else { 0.0 };
            values.extend(row.iter().map(|v| if scale > 0.0 { (v / scale).round().clamp(-127.0, 127.0) as i8 } else { 0 }));
            scales.push(scale);
        }
        Self { values, scales, width }
    }

    fn approximate(&self, row: usize, user: &[f32]) -> f32 {
        self.scales[row] * dot(&self.values[row * self.width..(row + 1) * self.width], user)
    }
}

/// The float32 terms of a preference score: output vectors, biases and the weighted neighbourhood scores.
pub(crate) struct ExactTerms<'a> {
    /// [movies, width] output vectors, row-major.
    pub(crate) outputs: &'a [f32],
    /// [movies] biases.
    pub(crate) bias: &'a [f32],
    /// [movies] the user's neighbourhood scores already times their weight, when the order has them.
    pub(crate) nearby: Option<&'a [f32]>,
}

impl ExactTerms<'_> {
    fn others(&self, position: usize) -> f32 {
        self.bias[position] + self.nearby.map_or(0.0, |n| n[position])
    }

    /// The exact preference score of `position` for `user`: (output · user + bias) + weighted neighbourhood, in
    /// the order the catalogue-wide pass adds them.
    pub(crate) fn score(&self, position: usize, user: &[f32]) -> f32 {
        let width = user.len();
        let base = dot(&self.outputs[position * width..(position + 1) * width], user) + self.bias[position];
        self.nearby.map_or(base, |n| base + n[position])
    }
}

/// The candidates that could be among the `pool` best of `candidates` by exact preference score for `user`, as
/// (position, exact score) in candidate order: a superset of the exact pool (a candidate is left out only when its
/// upper bound lies below the pool-th best lower bound, which no movie of the exact pool can), usually a few more.
pub(crate) fn pool_candidates(
    quantised: &QuantisedOutputs,
    exact: &ExactTerms<'_>,
    user: &[f32],
    candidates: &[usize],
    pool: usize,
) -> Vec<(usize, f32)> {
    let user_size: f32 = user.iter().map(|v| v.abs()).sum();
    let bounds: Vec<(f32, f32)> = candidates
        .iter()
        .map(|&position| {
            let approximate = quantised.approximate(position, user) + exact.others(position);
            let error = quantised.scales[position] * user_size * BOUND_SLACK + RELATIVE_SLACK * (1.0 + approximate.abs());
            (approximate - error, approximate + error)
        })
        .collect();
    let mut survivors: Vec<usize> = (0..candidates.len()).collect();
    if pool > 0 && pool < candidates.len() {
        let mut lowers: Vec<f32> = bounds.iter().map(|(lower, _)| *lower).collect();
        let (_, threshold, _) = lowers.select_nth_unstable_by(pool - 1, |a, b| b.total_cmp(a));
        let threshold = *threshold;
        survivors.retain(|&i| bounds[i].1 >= threshold);
    }
    survivors.iter().map(|&i| (candidates[i], exact.score(candidates[i], user))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Random(u64);

    impl Random {
        fn next(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % 20_001) as f32 / 10_000.0 - 1.0
        }
    }

    fn best(scored: &[(usize, f32)], ids: &[i32], pool: usize) -> Vec<(usize, f32)> {
        let (positions, scores): (Vec<usize>, Vec<f32>) = scored.iter().copied().unzip();
        crate::ranking::top_k_of(&positions, &scores, ids, pool).into_iter().map(|i| scored[i]).collect()
    }

    #[test]
    fn the_prescan_finds_exactly_the_exhaustive_pool() {
        let mut random = Random(0x9E37_79B9_7F4A_7C15);
        let (movies, width) = (5_000, 64);
        let mut outputs: Vec<f32> = (0..movies * width).map(|_| random.next() * 0.3).collect();
        for copy in 0..200 {
            let (from, to) = (copy * 7, movies - 1 - copy * 3);
            let row: Vec<f32> = outputs[from * width..(from + 1) * width].to_vec();
            outputs[to * width..(to + 1) * width].copy_from_slice(&row);
            outputs[to * width] += 1e-6 * copy as f32;
        }
        let bias: Vec<f32> = (0..movies).map(|_| random.next()).collect();
        let nearby: Vec<f32> = (0..movies).map(|_| random.next().max(0.0) * 2.0).collect();
        let ids: Vec<i32> = (0..movies as i32).map(|m| (m * 7919) % 100_003).collect();
        let quantised = QuantisedOutputs::of(&outputs, width);
        for round in 0..20 {
            let user: Vec<f32> = (0..width).map(|_| random.next()).collect();
            let candidates: Vec<usize> = (0..movies).filter(|m| (m + round) % 9 != 0).collect();
            let exact = ExactTerms { outputs: &outputs, bias: &bias, nearby: (round % 2 == 0).then_some(nearby.as_slice()) };
            let every: Vec<(usize, f32)> = candidates.iter().map(|&p| (p, exact.score(p, &user))).collect();
            for pool in [1, 10, 100, candidates.len() + 5] {
                let survivors = pool_candidates(&quantised, &exact, &user, &candidates, pool);
                assert_eq!(best(&survivors, &ids, pool), best(&every, &ids, pool), "round {round}, pool {pool}");
                if pool == 100 {
                    assert!(
                        survivors.len() < candidates.len() / 10,
                        "round {round}: {} of {} candidates rescored",
                        survivors.len(),
                        candidates.len()
                    );
                }
            }
        }
    }

    #[test]
    fn a_zero_row_and_the_int8_dot_product_are_exact_where_they_should_be() {
        let quantised = QuantisedOutputs::of(&[0.0, 0.0, 0.5, -1.0], 2);
        assert_eq!(quantised.scales[0], 0.0);
        assert_eq!(quantised.approximate(0, &[3.0, 4.0]), 0.0);
        let values: Vec<i8> = (0..19).map(|v| v as i8 - 9).collect();
        let user: Vec<f32> = (0..19).map(|v| v as f32 * 0.5).collect();
        let expected: f32 = values.iter().zip(&user).map(|(v, u)| f32::from(*v) * u).sum();
        assert_eq!(dot(values.as_slice(), &user), expected, "a remainder past the eight lanes counts");
    }
}
