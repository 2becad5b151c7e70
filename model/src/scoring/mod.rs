//! Serving-time scoring over a catalogue. The head's first layer is split into a user part and a movie part, each
//! computed once per user or movie when first needed (a backend that serves a few predictions never computes the
//! whole catalogue), so a pair costs only the remaining small layers. Single pairs run in plain Rust (a few µs
//! against ~50 µs for a libtorch forward, `recsys_bench serving`); pair lists and whole catalogues run as libtorch
//! matmuls, in float32 or (where the CPU has native bfloat16) bfloat16 for ranking. All of them compute the raw
//! score with `core::raw_scores`.
mod core;
mod fold_in;
mod matrix;
mod passes;
mod retrieval;
pub(crate) mod shared;
pub(crate) mod similarity;

pub(crate) use self::core::{raw_scores, AutoencoderMovies, AutoencoderTerms, MovieTables, ScoringTables};
pub(crate) use self::matrix::{dot, Layer, Matrix};
pub(crate) use self::passes::{Columns, TensorPass};

pub use self::fold_in::{FoldInOptions, FoldedUser};
use self::passes::OnePair;
use self::retrieval::RetrievalIndex;
pub use self::retrieval::{ANCHORS, RANK, SAMPLE_USERS};
pub use self::shared::{share_variables, SharedFile};
use crate::ModelError;
use std::cell::OnceCell;
use tch::{Kind, Tensor};

/// Arithmetic of a whole-catalogue pass (and of a training step's dense layers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Precision {
    /// float32 throughout: exact.
    #[default]
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
    movie_table: Tensor,
    layers: Vec<(Tensor, Tensor)>,
}

/// An evaluation-mode network's scores over a catalogue: single pairs, pair lists and whole catalogues for some user
/// rows, all raw (unclipped) until `rating` clips one for returning. Built by `HybridRecommender::catalogue_scorer`.
pub struct CatalogueScorer {
    tables: ScoringTables,
    width: usize,
    movies: usize,
    /// First-layer parts computed on demand, per user row and per catalogue position (single pairs).
    user_parts: Vec<OnceCell<Box<[f32]>>>,
    movie_parts: Vec<OnceCell<Box<[f32]>>>,
    /// [movies, width]: every movie's first-layer part, for pair lists and catalogue passes, computed on the first.
    movie_table: OnceCell<Matrix>,
    half: OnceCell<HalfTables>,
    /// Normalised representations for nearest neighbours (`similarity.rs`), built on first use.
    movie_representations: OnceCell<Matrix>,
    user_representations: OnceCell<Matrix>,
    /// The low-rank model of the head for two-stage ranking (`retrieval.rs`), fitted on first use.
    retrieval: OnceCell<RetrievalIndex>,
    rating_min: f32,
    rating_max: f32,
    /// The shared file the catalogue tables are mapped from (`shared.rs`), if any: declared last, so that it is
    /// unmapped only after every table above that points into it is dropped.
    shared: Option<SharedCatalogue>,
}

/// A scorer's catalogue tables mapped from a shared file: the bfloat16 movie table, and the file itself.
struct SharedCatalogue {
    movie_table_bf16: Option<Tensor>,
    file: SharedFile,
}

impl ScoringTables {
    /// The head's layers after the first, then its output layer: (weight, bias) handles in float32.
    pub(crate) fn head_layers(&self) -> Vec<(Tensor, Tensor)> {
        self.hidden.iter().chain([&self.output]).map(|layer| (layer.weight.tensor.shallow_clone(), layer.bias.tensor.shallow_clone())).collect()
    }
}

impl CatalogueScorer {
    /// A scorer over `tables` for ratings on the scale `rating_min..=rating_max`.
    pub(crate) fn new(tables: ScoringTables, rating_min: f64, rating_max: f64) -> Self {
        let (users, movies) = (tables.user_embedding.tensor.size()[0] as usize, tables.movie_inputs.tensor.size()[0] as usize);
        Self {
            width: tables.user_layer.weight.tensor.size()[0] as usize,
            movies,
            user_parts: (0..users).map(|_| OnceCell::new()).collect(),
            movie_parts: (0..movies).map(|_| OnceCell::new()).collect(),
            movie_table: OnceCell::new(),
            half: OnceCell::new(),
            movie_representations: OnceCell::new(),
            user_representations: OnceCell::new(),
            retrieval: OnceCell::new(),
            rating_min: rating_min as f32,
            rating_max: rating_max as f32,
            tables,
            shared: None,
        }
    }

    /// A scorer over `tables` whose catalogue-sized tables point into the shared `file`, with the first layer's
    /// movie part already computed there (float32, and bfloat16 where the file has it).
    pub(crate) fn over_shared_file(
        tables: ScoringTables,
        rating_scale: (f64, f64),
        movie_table: Matrix,
        movie_table_bf16: Option<Tensor>,
        file: SharedFile,
    ) -> Self {
        let mut scorer = Self::new(tables, rating_scale.0, rating_scale.1);
        let _ = scorer.movie_table.set(movie_table);
        scorer.shared = Some(SharedCatalogue { movie_table_bf16, file });
        scorer
    }

    /// The shared file this scorer's catalogue tables are mapped from, if any.
    pub fn shared_file(&self) -> Option<&std::path::Path> {
        self.shared.as_ref().map(|shared| shared.file.path())
    }

    /// Whether the shared file this scorer's tables are mapped from was changed in place since it was mapped.
    pub fn shared_file_changed_on_disk(&self) -> bool {
        self.shared.as_ref().is_some_and(|shared| shared.file.changed_on_disk())
    }

    fn user_part(&self, user_row: usize) -> Option<&[f32]> {
        let embedding = self.tables.user_embedding.row(user_row, self.tables.user_layer.inputs)?;
        Some(self.user_parts.get(user_row)?.get_or_init(|| self.tables.user_layer.apply_boxed(embedding)))
    }

    /// The first layer's movie part of one position, always computed in plain Rust (never read from the libtorch
    /// table), so that a pair's score does not depend on whether this backend ran a catalogue pass before.
    fn movie_part(&self, position: usize) -> Option<&[f32]> {
        let inputs = self.tables.movie_inputs.row(position, self.tables.movie_layer.inputs)?;
        Some(self.movie_parts.get(position)?.get_or_init(|| self.tables.movie_layer.apply_boxed(inputs)))
    }

    /// [movies, width]: the first layer's movie part of every catalogue movie (computed once, by libtorch).
    fn movie_table(&self) -> Result<&Matrix, ModelError> {
        if let Some(table) = self.movie_table.get() {
            return Ok(table);
        }
        let table = Matrix::copy(&tch::no_grad(|| self.tables.movie_layer.forward(&self.tables.movie_inputs.tensor))?)?;
        Ok(self.movie_table.get_or_init(|| table))
    }

    fn half_tables(&self) -> Result<&HalfTables, ModelError> {
        if let Some(tables) = self.half.get() {
            return Ok(tables);
        }
        let half = |t: &Tensor| t.f_to_kind(Kind::BFloat16);
        let mut layers = Vec::with_capacity(self.tables.hidden.len() + 1);
        for (weight, bias) in self.tables.head_layers() {
            layers.push((half(&weight)?, half(&bias)?));
        }
        let movie_table = match self.shared.as_ref().and_then(|shared| shared.movie_table_bf16.as_ref()) {
            Some(mapped) => mapped.shallow_clone(),
            None => half(&self.movie_table()?.tensor)?,
        };
        let tables = HalfTables { movie_table, layers };
        Ok(self.half.get_or_init(|| tables))
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

    /// The clipped predicted rating of a user row for a catalogue position.
    pub fn score(&self, user_row: usize, movie_position: usize) -> Result<f32, ModelError> {
        self.raw_score(user_row, movie_position).map(|raw| self.rating(raw))
    }

    /// The raw (unclipped) score of a user row for a catalogue position; an error names the row or position out of
    /// range, or what the scoring core failed on.
    pub fn raw_score(&self, user_row: usize, movie_position: usize) -> Result<f32, ModelError> {
        let user_part = self
            .user_part(user_row)
            .ok_or_else(|| ModelError::InvalidArgument(format!("user row {user_row} is outside the model's {} rows", self.user_rows())))?;
        let movie_part = self.movie_part(movie_position).ok_or_else(|| {
            ModelError::InvalidArgument(format!("catalogue position {movie_position} is outside the catalogue's {} movies", self.movies()))
        })?;
        raw_scores(&self.tables, &OnePair { row: user_row, position: movie_position, user_part, movie_part })
    }

    fn check_user_rows(&self, user_rows: &[i64]) -> Result<(), ModelError> {
        match user_rows.iter().find(|r| **r < 0 || **r as usize >= self.user_rows()) {
            Some(bad) => Err(ModelError::InvalidArgument(format!("user row {bad} is outside the model's {} rows", self.user_rows()))),
            None => Ok(()),
        }
    }

    /// A raw score as a rating on the model's scale: clipped, the one place where clipping happens for ranked
    /// lists (ranking itself compares raw scores, so movies above the scale's top keep their order).
    pub fn rating(&self, raw: f32) -> f32 {
        raw.clamp(self.rating_min, self.rating_max)
    }

    /// Raw (unclipped) scores of every catalogue movie for each user row: [users, movies] float32, computed as
    /// libtorch matmuls with the head in `precision` (threads follow `tch::set_num_threads`). Memory is about
    /// users × movies × width values at once.
    pub fn score_catalogue(&self, user_rows: &[i64], precision: Precision) -> Result<Tensor, ModelError> {
        self.check_user_rows(user_rows)?;
        self.catalogue_pass(&self.tables, user_rows, precision)
    }

    /// `score_catalogue` for users fitted at query time (fold-in): [users, movies].
    pub fn score_catalogue_folded(&self, users: &[FoldedUser], precision: Precision) -> Result<Tensor, ModelError> {
        let rows: Vec<i64> = (0..users.len() as i64).collect();
        self.catalogue_pass(&self.tables.for_users(users, self.user_dim())?, &rows, precision)
    }

    fn catalogue_pass(&self, tables: &ScoringTables, user_rows: &[i64], precision: Precision) -> Result<Tensor, ModelError> {
        tch::no_grad(|| {
            let rows = Tensor::f_from_slice(user_rows)?;
            let pass = match precision {
                Precision::Float32 => TensorPass::new(tables, rows, Columns::Every, &self.movie_table()?.tensor, tables.head_layers())?,
                Precision::Bfloat16 => {
                    let half = self.half_tables()?;
                    let layers = half.layers.iter().map(|(weight, bias)| (weight.shallow_clone(), bias.shallow_clone())).collect();
                    TensorPass::new(tables, rows, Columns::Every, &half.movie_table, layers)?
                }
            };
            raw_scores(tables, &pass)
        })
    }

    /// Exact (float32) raw (unclipped) scores of the pairs (`user_rows[i]`, `positions[i]`), in one batched pass.
    pub fn score_pairs(&self, user_rows: &[i64], positions: &[i64]) -> Result<Vec<f32>, ModelError> {
        self.check_user_rows(user_rows)?;
        self.pairs_pass(&self.tables, user_rows, positions)
    }

    /// `score_pairs` for users fitted at query time: pair i is (`users[user_index[i]]`, `positions[i]`).
    pub fn score_pairs_folded(&self, users: &[FoldedUser], user_index: &[i64], positions: &[i64]) -> Result<Vec<f32>, ModelError> {
        if let Some(bad) = user_index.iter().find(|i| **i < 0 || **i as usize >= users.len()) {
            return Err(ModelError::InvalidArgument(format!("user index {bad} is outside the {} folded users", users.len())));
        }
        self.pairs_pass(&self.tables.for_users(users, self.user_dim())?, user_index, positions)
    }

    fn pairs_pass(&self, tables: &ScoringTables, user_rows: &[i64], positions: &[i64]) -> Result<Vec<f32>, ModelError> {
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
            let (rows, columns) = (Tensor::f_from_slice(user_rows)?, Columns::Listed(Tensor::f_from_slice(positions)?));
            let pass = TensorPass::new(tables, rows, columns, &self.movie_table()?.tensor, tables.head_layers())?;
            Ok(Vec::<f32>::try_from(raw_scores(tables, &pass)?)?)
        })
    }
}
