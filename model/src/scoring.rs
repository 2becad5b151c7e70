//! Serving-time scoring over a catalogue. The head's first layer is split into a user part and a movie part
//! (W·[u; m; c] = W_u·u + W_mc·[m; c]), each computed once per user or movie when first needed (a backend that
//! serves a few predictions never computes the whole catalogue), so a pair costs only the remaining small layers. Single pairs
//! run in plain Rust: libtorch needs ~50 µs per single-pair forward (mostly per-op dispatch), this path a few µs
//! (`recsys_bench serving`). Whole-catalogue scoring for one or many users runs as libtorch matmuls over the same
//! tables, in float32 or (where the CPU has native bfloat16) in bfloat16 for ranking. The float32 paths reproduce
//! `forward_encoded` in evaluation mode (unit tests compare them).
use crate::autoencoder::{blend_where_known, pair_scores};
use crate::ModelError;
use std::cell::OnceCell;
use tch::{Kind, Tensor};

/// Arithmetic of a whole-catalogue pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precision {
    Float32,
    /// bfloat16 tables and weights with float32 accumulation (oneDNN): on this machine's AVX512-BF16 cores the
    /// head's layers over 9,742 movies take 4.4 ms instead of 10.2 ms with one thread, 2.3 instead of 5.0 with
    /// two. Where bfloat16 is only emulated it is slower than float32, hence `fastest_available`.
    Bfloat16,
}

impl Precision {
    /// Bfloat16 when the CPU computes it natively (AVX512-BF16; every AMX CPU has it too), else Float32.
    pub fn fastest_available() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            return Self::Bfloat16;
        }
        Self::Float32
    }
}

/// bfloat16 copies of the movie table and the layers after the first, made on the first bfloat16 pass.
struct HalfTables {
    movie_part: Tensor,
    layers: Vec<(Tensor, Tensor)>,
}

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

    fn apply_boxed(&self, x: &[f32]) -> Box<[f32]> {
        let mut out = Vec::with_capacity(self.bias.tensor.numel());
        self.apply(x, &mut out, false);
        out.into_boxed_slice()
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, ModelError> {
        Ok(x.f_linear(&self.weight.tensor, Some(&self.bias.tensor))?)
    }
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
    /// [users + 1, user_dim]: user embeddings by row.
    user_embedding: Matrix,
    /// The head's first layer restricted to the user embedding (weight [width, user_dim], zero bias).
    user_layer: Layer,
    /// [movies, movie_dim + content_dim]: each catalogue movie's input to the rest of the first layer.
    movie_inputs: Matrix,
    /// The head's first layer restricted to [movie; content], with its bias.
    movie_layer: Layer,
    /// First-layer parts computed on demand, per user row and per catalogue position (single pairs).
    user_parts: Vec<OnceCell<Box<[f32]>>>,
    movie_parts: Vec<OnceCell<Box<[f32]>>>,
    /// [movies, width]: every movie's first-layer part, for whole-catalogue passes, computed on the first one.
    movie_table: OnceCell<Matrix>,
    hidden: Vec<Layer>,
    output: Layer,
    /// [users + 1]: per user row (0 when biases are off).
    user_bias: Matrix,
    /// [movies]: per catalogue position, global + movie + content bias (0 when biases are off).
    movie_bias: Matrix,
    rating_min: f32,
    rating_max: f32,
    half: OnceCell<HalfTables>,
    /// [movies, user_dim]: each catalogue movie's vector (the first columns of its input), when the network adds
    /// the user·movie dot product.
    movie_vectors: Option<Matrix>,
    autoencoder: Option<AutoencoderScores>,
}

/// The autoencoder's tables for a catalogue (movie tables by catalogue position), as `ScorerParts` hands them over.
pub struct AutoencoderParts {
    pub user_weight: Tensor,
    pub user_bias: Tensor,
    pub user_known: Tensor,
    pub movie_code: Tensor,
    pub movie_known: Tensor,
    /// (a, b, c) of a·hybrid + b·autoencoder + c on known pairs.
    pub blend: [f32; 3],
}

/// The blend of the autoencoder's predictions into the hybrid's raw ones (`AutoencoderTables::blend`).
struct AutoencoderScores {
    rank: usize,
    user_weight: Matrix,
    user_bias: Matrix,
    user_known: Matrix,
    movie_code: Matrix,
    movie_known: Matrix,
    blend: [f32; 3],
}

impl AutoencoderScores {
    fn new(parts: AutoencoderParts) -> Result<Self, ModelError> {
        Ok(Self {
            rank: parts.movie_code.size()[1] as usize,
            user_weight: Matrix::new(&parts.user_weight)?,
            user_bias: Matrix::new(&parts.user_bias)?,
            user_known: Matrix::new(&parts.user_known)?,
            movie_code: Matrix::new(&parts.movie_code)?,
            movie_known: Matrix::new(&parts.movie_known)?,
            blend: parts.blend,
        })
    }

    fn blend_one(&self, raw: f32, user_row: usize, position: usize) -> f32 {
        if self.user_known.as_slice()[user_row] * self.movie_known.as_slice()[position] == 0.0 {
            return raw;
        }
        let rank = self.rank;
        let weights = &self.user_weight.as_slice()[user_row * rank..(user_row + 1) * rank];
        let autoencoder = dot(weights, &self.movie_code.as_slice()[position * rank..(position + 1) * rank]) + self.user_bias.as_slice()[user_row];
        let [a, b, c] = self.blend;
        a * raw + b * autoencoder + c
    }

    /// `raw` [users, movies] for the user rows `rows` and every catalogue position.
    fn blend_catalogue(&self, raw: Tensor, rows: &Tensor) -> Result<Tensor, ModelError> {
        let autoencoder = self
            .user_weight
            .tensor
            .f_index_select(0, rows)?
            .f_matmul(&self.movie_code.tensor.f_tr()?)?
            .f_add(&self.user_bias.tensor.f_index_select(0, rows)?.f_unsqueeze(1)?)?;
        let known = self.user_known.tensor.f_index_select(0, rows)?.f_unsqueeze(1)?.f_mul(&self.movie_known.tensor.f_unsqueeze(0)?)?;
        Ok(blend_where_known(&raw, &autoencoder, &known, self.blend)?)
    }

    /// `raw` [pairs] for the pairs (`rows[i]`, `columns[i]`).
    fn blend_pairs(&self, raw: Tensor, rows: &Tensor, columns: &Tensor) -> Result<Tensor, ModelError> {
        let autoencoder = pair_scores(&self.user_weight.tensor, &self.user_bias.tensor, &self.movie_code.tensor, rows, columns)?;
        let known = self.user_known.tensor.f_index_select(0, rows)?.f_mul(&self.movie_known.tensor.f_index_select(0, columns)?)?;
        Ok(blend_where_known(&raw, &autoencoder, &known, self.blend)?)
    }
}

/// What `HybridRecommender::catalogue_scorer` hands over: the tensors of an evaluation-mode network. The head's
/// first layer is split by columns: `user_weight` over the user embedding, `movie_weight` over [movie; content].
pub struct ScorerParts<'a> {
    pub user_embedding: &'a Tensor,
    pub user_weight: Tensor,
    pub movie_inputs: Tensor,
    pub movie_weight: Tensor,
    pub first_bias: &'a Tensor,
    pub hidden: Vec<(&'a Tensor, &'a Tensor)>,
    pub output: (&'a Tensor, &'a Tensor),
    pub user_bias: Tensor,
    pub movie_bias: Tensor,
    pub rating_min: f64,
    pub rating_max: f64,
    pub dot_product: bool,
    pub autoencoder: Option<AutoencoderParts>,
}

impl CatalogueScorer {
    /// Copies the parts; the first layer's per-user and per-movie results are computed only when first needed, so
    /// a backend that serves a few single predictions never pays for the whole catalogue.
    pub fn new(parts: ScorerParts<'_>) -> Result<Self, ModelError> {
        let (users, movies) = (parts.user_embedding.size()[0] as usize, parts.movie_inputs.size()[0] as usize);
        let width = parts.user_weight.size()[0];
        let user_dim = parts.user_embedding.size()[1];
        let movie_vectors = if parts.dot_product { Some(Matrix::new(&parts.movie_inputs.f_narrow(1, 0, user_dim)?)?) } else { None };
        Ok(Self {
            width: width as usize,
            movies,
            user_embedding: Matrix::new(parts.user_embedding)?,
            user_layer: Layer::new(&parts.user_weight, &Tensor::f_zeros([width], (Kind::Float, tch::Device::Cpu))?)?,
            movie_inputs: Matrix::new(&parts.movie_inputs)?,
            movie_layer: Layer::new(&parts.movie_weight, parts.first_bias)?,
            user_parts: (0..users).map(|_| OnceCell::new()).collect(),
            movie_parts: (0..movies).map(|_| OnceCell::new()).collect(),
            movie_table: OnceCell::new(),
            hidden: parts.hidden.iter().map(|(w, b)| Layer::new(w, b)).collect::<Result<_, _>>()?,
            output: Layer::new(parts.output.0, parts.output.1)?,
            user_bias: Matrix::new(&parts.user_bias)?,
            movie_bias: Matrix::new(&parts.movie_bias)?,
            rating_min: parts.rating_min as f32,
            rating_max: parts.rating_max as f32,
            half: OnceCell::new(),
            movie_vectors,
            autoencoder: parts.autoencoder.map(AutoencoderScores::new).transpose()?,
        })
    }

    fn user_part(&self, user_row: usize) -> Option<&[f32]> {
        let embedding = self.user_embedding.as_slice().chunks_exact(self.user_layer.inputs).nth(user_row)?;
        Some(self.user_parts.get(user_row)?.get_or_init(|| self.user_layer.apply_boxed(embedding)))
    }

    fn movie_part(&self, position: usize) -> Option<&[f32]> {
        if let Some(table) = self.movie_table.get() {
            return table.as_slice().chunks_exact(self.width).nth(position);
        }
        let inputs = self.movie_inputs.as_slice().chunks_exact(self.movie_layer.inputs).nth(position)?;
        Some(self.movie_parts.get(position)?.get_or_init(|| self.movie_layer.apply_boxed(inputs)))
    }

    /// [movies, width]: the first layer's movie part of every catalogue movie (computed once, by libtorch).
    fn movie_table(&self) -> Result<&Matrix, ModelError> {
        if let Some(table) = self.movie_table.get() {
            return Ok(table);
        }
        let table = Matrix::new(&tch::no_grad(|| self.movie_layer.forward(&self.movie_inputs.tensor))?)?;
        Ok(self.movie_table.get_or_init(|| table))
    }

    /// [rows, width]: the first layer's user part of the given user rows.
    fn user_table(&self, rows: &Tensor) -> Result<Tensor, ModelError> {
        Ok(tch::no_grad(|| self.user_embedding.tensor.f_index_select(0, rows)?.f_matmul(&self.user_layer.weight.tensor.f_tr()?))?)
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
        self.user_parts.len()
    }

    /// The clipped predicted rating of a user row for a catalogue position; `None` when either is out of range.
    pub fn score(&self, user_row: usize, movie_position: usize) -> Option<f32> {
        self.raw_score(user_row, movie_position).map(|raw| self.rating(raw))
    }

    /// The raw (unclipped) score of a user row for a catalogue position; `None` when either is out of range.
    pub fn raw_score(&self, user_row: usize, movie_position: usize) -> Option<f32> {
        let (user, movie) = (self.user_part(user_row)?, self.movie_part(movie_position)?);
        let mut x: Vec<f32> = user.iter().zip(movie).map(|(u, m)| (u + m).max(0.0)).collect();
        let mut y = Vec::with_capacity(self.width);
        for layer in &self.hidden {
            layer.apply(&x, &mut y, true);
            std::mem::swap(&mut x, &mut y);
        }
        self.output.apply(&x, &mut y, false);
        let mut raw = y[0] + self.user_bias.as_slice().get(user_row)? + self.movie_bias.as_slice()[movie_position];
        if let Some(vectors) = &self.movie_vectors {
            let dim = self.user_layer.inputs;
            raw += dot(
                &self.user_embedding.as_slice()[user_row * dim..(user_row + 1) * dim],
                &vectors.as_slice()[movie_position * dim..(movie_position + 1) * dim],
            );
        }
        if let Some(autoencoder) = &self.autoencoder {
            raw = autoencoder.blend_one(raw, user_row, movie_position);
        }
        Some(raw)
    }

    fn check_user_rows(&self, user_rows: &[i64]) -> Result<(), ModelError> {
        match user_rows.iter().find(|r| **r < 0 || **r as usize >= self.user_rows()) {
            Some(bad) => Err(ModelError::InvalidArgument(format!("user row {bad} is outside the model's {} rows", self.user_rows()))),
            None => Ok(()),
        }
    }

    fn half_tables(&self) -> Result<&HalfTables, ModelError> {
        if let Some(tables) = self.half.get() {
            return Ok(tables);
        }
        let half = |t: &Tensor| t.f_to_kind(Kind::BFloat16);
        let mut layers = Vec::with_capacity(self.hidden.len() + 1);
        for layer in self.hidden.iter().chain([&self.output]) {
            layers.push((half(&layer.weight.tensor)?, half(&layer.bias.tensor)?));
        }
        let tables = HalfTables { movie_part: half(&self.movie_table()?.tensor)?, layers };
        Ok(self.half.get_or_init(|| tables))
    }

    /// The float32 layers after the first: (weight, bias) of the hidden layers, then of the output layer.
    fn float_layers(&self) -> Vec<(&Tensor, &Tensor)> {
        self.hidden.iter().chain([&self.output]).map(|layer| (&layer.weight.tensor, &layer.bias.tensor)).collect()
    }

    /// The head from its first layer's pre-activations `x` [pairs, width]: ReLU, each hidden layer with ReLU, then
    /// the output layer (`layers` as from `float_layers`, or their bfloat16 copies). Returns raw ratings [pairs, 1].
    fn rest_of_head(mut x: Tensor, layers: &[(&Tensor, &Tensor)]) -> Result<Tensor, ModelError> {
        let _ = x.f_relu_()?;
        let ((weight, bias), hidden) = layers.split_last().ok_or_else(|| ModelError::InvalidArgument("the head has no output layer".into()))?;
        for (weight, bias) in hidden {
            x = x.f_linear(weight, Some(*bias))?;
            let _ = x.f_relu_()?;
        }
        Ok(x.f_linear(weight, Some(*bias))?)
    }

    /// A raw score as a rating on the model's scale: clipped, the one place where clipping happens for ranked
    /// lists (ranking itself compares raw scores, so movies above the scale's top keep their order).
    pub fn rating(&self, raw: f32) -> f32 {
        raw.clamp(self.rating_min, self.rating_max)
    }

    /// Raw (unclipped) scores of every catalogue movie for each user row: [users, movies] float32, computed as
    /// libtorch matmuls in `precision` (threads follow `tch::set_num_threads`). Memory is about users × movies ×
    /// width values at once.
    pub fn score_catalogue(&self, user_rows: &[i64], precision: Precision) -> Result<Tensor, ModelError> {
        self.check_user_rows(user_rows)?;
        let (users, movies, width) = (user_rows.len() as i64, self.movies as i64, self.width as i64);
        tch::no_grad(|| {
            let rows = Tensor::f_from_slice(user_rows)?;
            let user_part = self.user_table(&rows)?.f_unsqueeze(1)?;
            let raw = match precision {
                Precision::Float32 => {
                    let x = user_part.f_add(&self.movie_table()?.tensor.f_unsqueeze(0)?)?.f_view([users * movies, width])?;
                    Self::rest_of_head(x, &self.float_layers())?
                }
                Precision::Bfloat16 => {
                    let tables = self.half_tables()?;
                    let x = user_part.f_to_kind(Kind::BFloat16)?.f_add(&tables.movie_part.f_unsqueeze(0)?)?.f_view([users * movies, width])?;
                    let layers: Vec<(&Tensor, &Tensor)> = tables.layers.iter().map(|(weight, bias)| (weight, bias)).collect();
                    Self::rest_of_head(x, &layers)?.f_to_kind(Kind::Float)?
                }
            };
            let user_bias = self.user_bias.tensor.f_index_select(0, &rows)?.f_unsqueeze(1)?;
            let mut raw = raw.f_view([users, movies])?.f_add(&user_bias)?.f_add(&self.movie_bias.tensor.f_unsqueeze(0)?)?;
            if let Some(vectors) = &self.movie_vectors {
                raw = raw.f_add(&self.user_embedding.tensor.f_index_select(0, &rows)?.f_matmul(&vectors.tensor.f_tr()?)?)?;
            }
            if let Some(autoencoder) = &self.autoencoder {
                raw = autoencoder.blend_catalogue(raw, &rows)?;
            }
            Ok(raw)
        })
    }

    /// Exact (float32) raw (unclipped) scores of the pairs (`user_rows[i]`, `positions[i]`), in one batched pass.
    pub fn score_pairs(&self, user_rows: &[i64], positions: &[i64]) -> Result<Vec<f32>, ModelError> {
        self.check_user_rows(user_rows)?;
        if user_rows.len() != positions.len() {
            return Err(ModelError::InvalidArgument(format!("{} user rows for {} positions", user_rows.len(), positions.len())));
        }
        if let Some(bad) = positions.iter().find(|p| **p < 0 || **p as usize >= self.movies) {
            return Err(ModelError::InvalidArgument(format!("catalogue position {bad} is outside the {} movies", self.movies)));
        }
        if positions.is_empty() {
            return Ok(Vec::new());
        }
        tch::no_grad(|| {
            let rows = Tensor::f_from_slice(user_rows)?;
            let columns = Tensor::f_from_slice(positions)?;
            let x = self.user_table(&rows)?.f_add(&self.movie_table()?.tensor.f_index_select(0, &columns)?)?;
            let raw = Self::rest_of_head(x, &self.float_layers())?.f_view([-1])?;
            let user_bias = self.user_bias.tensor.f_index_select(0, &rows)?;
            let movie_bias = self.movie_bias.tensor.f_index_select(0, &columns)?;
            let mut raw = raw.f_add(&user_bias)?.f_add(&movie_bias)?;
            if let Some(vectors) = &self.movie_vectors {
                let products = self.user_embedding.tensor.f_index_select(0, &rows)?.f_mul(&vectors.tensor.f_index_select(0, &columns)?)?;
                raw = raw.f_add(&products.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?)?;
            }
            if let Some(autoencoder) = &self.autoencoder {
                raw = autoencoder.blend_pairs(raw, &rows, &columns)?;
            }
            Ok(Vec::<f32>::try_from(raw)?)
        })
    }
}
