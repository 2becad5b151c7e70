//! The hybrid network: its configuration-built variables, the content encoder, and the evaluation forward (through
//! the scoring core). A movie without a trained embedding (row 0) is represented by a learned projection of its
//! content vector: the cold-start path `recsys_predict_new` serves. Every operation is fallible (tch `f_*`), so
//! libtorch errors reach callers as errors instead of panics. Training (noise, loss, optimiser) lives in `train`.
mod autoencoder;
mod layers;
mod preference;
mod shared_catalogue;

pub(crate) use self::autoencoder::AutoencoderTables;
pub(crate) use self::layers::{Dense, Mlp};
pub(crate) use self::preference::{normalise_user, NeighbourTables, PreferenceTables};

use crate::config::ModelConfig;
use crate::scoring::{self, CatalogueScorer, Columns, FoldedUser, Layer, Matrix, MovieTables, Precision, ScoringTables, TensorPass};
use crate::ModelError;
use tch::{nn, Kind, TchError, Tensor};

/// One batch of raw movie content features (row per movie or per rating).
#[derive(Debug)]
pub struct ContentInputs {
    /// [B, genres] float multi-hot.
    pub genres: Tensor,
    /// [B, title_dim] float sentence embeddings.
    pub titles: Tensor,
    /// [B, max_directors] int64 rows of the director embedding, 0 = none/unknown.
    pub directors: Tensor,
    /// [B, max_actors] int64 rows of the actor embedding, 0 = none/unknown.
    pub actors: Tensor,
    /// [B, 2] float standardised runtime and year (0 when unknown).
    pub numeric: Tensor,
}

impl ContentInputs {
    /// Rows `index` (int64 [N]) of every feature tensor.
    pub fn select(&self, index: &Tensor) -> Result<Self, TchError> {
        Ok(Self {
            genres: self.genres.f_index_select(0, index)?,
            titles: self.titles.f_index_select(0, index)?,
            directors: self.directors.f_index_select(0, index)?,
            actors: self.actors.f_index_select(0, index)?,
            numeric: self.numeric.f_index_select(0, index)?,
        })
    }

    /// Number of rows (movies or pairs).
    pub fn rows(&self) -> i64 {
        self.genres.size().first().copied().unwrap_or(0)
    }

    /// A second handle on the same tensors (for another thread).
    pub fn shallow_clone(&self) -> Self {
        Self {
            genres: self.genres.shallow_clone(),
            titles: self.titles.shallow_clone(),
            directors: self.directors.shallow_clone(),
            actors: self.actors.shallow_clone(),
            numeric: self.numeric.shallow_clone(),
        }
    }
}

/// The masks a training step applies inside the content encoder (scaled dropout masks per layer, hidden people);
/// empty for evaluation. Drawn by `train::Noise`.
#[derive(Default)]
pub(crate) struct ContentMasks<'a> {
    pub(crate) layers: &'a [Tensor],
    pub(crate) directors_keep: Option<&'a Tensor>,
    pub(crate) actors_keep: Option<&'a Tensor>,
    /// Ask for sparse embedding gradients (training).
    pub(crate) sparse: bool,
    /// The precision of the encoder's layers after the first (training).
    pub(crate) precision: Precision,
}

/// The hybrid recommender: collaborative user and movie embeddings, a content encoder over a movie's genres, title
/// embedding, people and runtime/year, an MLP head over [user; movie + projected content; content], bias terms, an
/// optional user·movie dot product and an optional item autoencoder blended into known pairs (see `ModelConfig`).
#[derive(Debug)]
pub struct HybridRecommender {
    pub(crate) config: ModelConfig,
    pub(crate) user_embedding: Tensor,
    pub(crate) movie_embedding: Tensor,
    pub(crate) director_embedding: Tensor,
    pub(crate) actor_embedding: Tensor,
    /// [title_rank, title_dim] when the title enters the content encoder through a low-rank projection.
    pub(crate) title_projection: Option<Tensor>,
    pub(crate) content_encoder: Mlp,
    pub(crate) content_to_movie: Dense,
    pub(crate) head: Mlp,
    pub(crate) output: Dense,
    pub(crate) global_bias: Tensor,
    pub(crate) user_bias: Tensor,
    pub(crate) movie_bias: Tensor,
    pub(crate) content_bias: Dense,
    pub(crate) autoencoder: Option<AutoencoderTables>,
    pub(crate) preference: Option<PreferenceTables>,
}

impl HybridRecommender {
    /// Builds the network's variables under `path`, randomly initialised for training (names are stable: they are
    /// the artefact's tensor names).
    pub fn new(path: &nn::Path, config: &ModelConfig) -> Self {
        Self::build(path, config, true)
    }

    /// Builds the network's variables under `path` filled with zeros, to load trained weights into (skips the
    /// random initialisation, a quarter of a backend's model load).
    pub fn zeroed(path: &nn::Path, config: &ModelConfig) -> Self {
        Self::build(path, config, false)
    }

    fn build(path: &nn::Path, config: &ModelConfig, random: bool) -> Self {
        let c = &config.cardinalities;
        let embedding = |name: &str, rows: i64, dim: i64| {
            let init = if random { nn::Init::Randn { mean: 0.0, stdev: 0.05 } } else { nn::Init::Const(0.0) };
            let table = path.var(name, &[rows + 1, dim], init);
            tch::no_grad(|| {
                let _ = table.get(0).fill_(0.0);
            });
            table
        };
        let content_dim = config.content_dim();
        let head_input = config.user_dim + config.movie_dim + content_dim;
        let head_output = *config.head_hidden.last().unwrap_or(&head_input);
        Self {
            user_embedding: embedding("user_embedding", c.users, config.user_dim),
            movie_embedding: embedding("movie_embedding", c.movies, config.movie_dim),
            director_embedding: embedding("director_embedding", c.directors, config.person_dim),
            actor_embedding: embedding("actor_embedding", c.actors, config.person_dim),
            title_projection: config.title_rank.map(|rank| {
                let bound = 1.0 / (config.title_dim as f64).sqrt();
                let init = if random { nn::Init::Uniform { lo: -bound, up: bound } } else { nn::Init::Const(0.0) };
                path.var("title_projection", &[rank, config.title_dim], init)
            }),
            content_encoder: Mlp::new(path / "content_encoder", config.content_input_dim(), &config.content_hidden, random),
            content_to_movie: Dense::new(path / "content_to_movie", content_dim, config.movie_dim, random),
            head: Mlp::new(path / "head", head_input, &config.head_hidden, random),
            output: Dense::new(path / "output", head_output, 1, random),
            global_bias: path.var("global_bias", &[1], nn::Init::Const((config.rating_min + config.rating_max) / 2.0)),
            user_bias: embedding("user_bias", c.users, 1),
            movie_bias: embedding("movie_bias", c.movies, 1),
            content_bias: Dense::new(path / "content_bias", content_dim, 1, random),
            autoencoder: config.autoencoder_rank.map(|rank| AutoencoderTables::new(&(path / "autoencoder"), c.users, c.movies, rank)),
            preference: config.preference.map(|p| PreferenceTables::new(&(path / "preference"), c.users, c.movies, content_dim, &p, random)),
            config: config.clone(),
        }
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Records the choices the trainer made on validation for the preference part (a network without a preference
    /// part keeps the defaults).
    pub fn set_preference_choices(&mut self, choices: &crate::config::PreferenceChoices) {
        if let Some(preference) = self.config.preference.as_mut() {
            preference.similar_movies = choices.similar_movies;
            preference.similar_users = choices.similar_users;
            preference.neighbour_input = choices.neighbour_input;
        }
    }

    /// Sets the global bias (e.g. to the training mean rating before training starts).
    pub fn set_global_bias(&self, value: f64) -> Result<(), TchError> {
        let mut bias = self.global_bias.shallow_clone();
        tch::no_grad(|| bias.f_fill_(value)).map(|_| ())
    }

    /// Mean of the embeddings of the non-zero ids in each row: [B, K] → [B, dim] (zeros for a row without ids). Row 0
    /// of a person table is the all-zero padding row (never trained), so it adds nothing to the sum. A gather and a
    /// sum: `embedding_bag` with a padding index took longer, gradient included. `sparse`: gradients as sparse rows.
    fn pool(table: &Tensor, ids: &Tensor, sparse: bool) -> Result<Tensor, TchError> {
        let known = ids.f_ne(0)?.f_sum_dim_intlist([1i64].as_slice(), true, Kind::Float)?.f_clamp_min(1.0)?;
        Tensor::f_embedding(table, ids, 0, false, sparse)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_div(&known)
    }

    /// The content vector of each movie: [B, content_dim].
    pub fn encode_content(&self, content: &ContentInputs) -> Result<Tensor, TchError> {
        self.encode_content_masked(content, &ContentMasks::default())
    }

    /// The content encoder, with a training step's masks (none for evaluation).
    pub(crate) fn encode_content_masked(&self, content: &ContentInputs, masks: &ContentMasks<'_>) -> Result<Tensor, TchError> {
        let keep = |ids: &Tensor, keep: Option<&Tensor>| keep.map_or_else(|| Ok(ids.shallow_clone()), |keep| ids.f_mul(keep));
        let directors = Self::pool(&self.director_embedding, &keep(&content.directors, masks.directors_keep)?, masks.sparse)?;
        let actors = Self::pool(&self.actor_embedding, &keep(&content.actors, masks.actors_keep)?, masks.sparse)?;
        let layer_masks = (!masks.layers.is_empty()).then_some(masks.layers);
        let titles = match &self.title_projection {
            Some(projection) => content.titles.f_linear::<Tensor>(projection, None)?,
            None => content.titles.shallow_clone(),
        };
        let Some(first) = self.content_encoder.layers.first() else {
            return Tensor::f_cat(&[&content.genres, &titles, &directors, &actors, &content.numeric], 1);
        };
        // The first layer's input is [genres, title, directors, actors, numeric]. The title columns are applied on
        // their own: raw titles are constants, so training skips their input gradient.
        let (genres, title_width) = (content.genres.size()[1], titles.size()[1]);
        let title_weight = first.weight.f_narrow(1, genres, title_width)?;
        let side_columns = first.weight.size()[1] - genres - title_width;
        let side_weight = Tensor::f_cat(&[first.weight.f_narrow(1, 0, genres)?, first.weight.f_narrow(1, genres + title_width, side_columns)?], 1)?;
        let side = Tensor::f_cat(&[&content.genres, &directors, &actors, &content.numeric], 1)?;
        let pre_activation = side.f_linear(&side_weight, Some(&first.bias))?.f_add(&titles.f_linear::<Tensor>(&title_weight, None)?)?;
        self.content_encoder.forward_from(1, pre_activation, layer_masks, masks.precision)
    }

    /// Raw (unclipped) predicted ratings for pairs of trained users' rows and movies, with content vectors already
    /// encoded (one row per pair): `movies` holds embedding rows, 0 for a movie the model has no embedding for. The
    /// evaluation forward: the scoring core over the pairs' own movies, so it is exactly what serving computes
    /// (autoencoder blend included).
    pub fn raw_scores_for_rows(&self, users: &Tensor, movies: &Tensor, content: &Tensor) -> Result<Tensor, ModelError> {
        let tables = self.scoring_tables(movies, content)?;
        tch::no_grad(|| {
            let movie_table = tables.movie_layer.forward(&tables.movie_inputs.tensor)?;
            let pass = TensorPass::new(&tables, users.shallow_clone(), Columns::Aligned, &movie_table, tables.head_layers())?;
            scoring::raw_scores(&tables, &pass)
        })
    }

    /// `raw_scores_for_rows` for users given as vectors (`users[user_index[i]]` scores pair i), with the
    /// autoencoder blend or without it (the hybrid network alone), as fold-in and explanations of folded users need.
    pub(crate) fn raw_scores_for_vectors(
        &self,
        users: &[FoldedUser],
        user_index: &Tensor,
        movies: &Tensor,
        content: &Tensor,
        blend: bool,
    ) -> Result<Tensor, ModelError> {
        let mut tables = self.scoring_tables(movies, content)?.for_users(users, self.config.user_dim as usize)?;
        if !blend {
            tables.autoencoder = None;
        }
        tch::no_grad(|| {
            let movie_table = tables.movie_layer.forward(&tables.movie_inputs.tensor)?;
            let pass = TensorPass::new(&tables, user_index.shallow_clone(), Columns::Aligned, &movie_table, tables.head_layers())?;
            scoring::raw_scores(&tables, &pass)
        })
    }

    /// Raw scores of one folded-in user (a vector fitted at query time) for movies given by their embedding rows
    /// and encoded content, as `raw_scores_for_rows` scores trained users.
    pub fn raw_scores_for_vector(&self, user: &FoldedUser, movies: &Tensor, content: &Tensor) -> Result<Tensor, ModelError> {
        let user_index = Tensor::f_zeros([movies.size()[0]], (tch::Kind::Int64, tch::Device::Cpu))?;
        self.raw_scores_for_vectors(std::slice::from_ref(user), &user_index, movies, content, true)
    }

    /// Predicted ratings for pairs from raw content features (one row per pair), clipped to the rating scale.
    pub fn predict(&self, users: &Tensor, movies: &Tensor, content: &ContentInputs) -> Result<Tensor, ModelError> {
        let encoded = tch::no_grad(|| self.encode_content(content))?;
        Ok(self.clip(&self.raw_scores_for_rows(users, movies, &encoded)?)?)
    }

    /// A scorer over a catalogue: `movie_rows` [M] embedding rows and `content` [M, c] encoded content vectors, one
    /// per catalogue position. It shares the network's tables (no copy) except the catalogue's own.
    pub fn catalogue_scorer(&self, movie_rows: &Tensor, content: &Tensor) -> Result<CatalogueScorer, ModelError> {
        Ok(CatalogueScorer::new(self.scoring_tables(movie_rows, content)?, self.config.rating_min, self.config.rating_max))
    }

    /// The serving tables over a catalogue of `movie_rows` with encoded `content` (see `scoring::ScoringTables`).
    fn scoring_tables(&self, movie_rows: &Tensor, content: &Tensor) -> Result<ScoringTables, ModelError> {
        self.scoring_tables_over(&self.movie_tables(movie_rows, content)?)
    }

    /// The catalogue-sized serving tables over `movie_rows` with encoded `content`, by catalogue position.
    pub(crate) fn movie_tables(&self, movie_rows: &Tensor, content: &Tensor) -> Result<MovieTables, ModelError> {
        tch::no_grad(|| {
            let vectors = self.movie_vectors(&Tensor::f_embedding(&self.movie_embedding, movie_rows, 0, false, false)?, content)?;
            let inputs = Tensor::f_cat(&[&vectors, content], 1)?;
            let bias = if self.config.use_biases {
                let movie_bias = Tensor::f_embedding(&self.movie_bias, movie_rows, 0, false, false)?.f_squeeze_dim(1)?;
                let content_bias = self.content_bias.forward(content)?.f_squeeze_dim(1)?;
                movie_bias.f_add(&content_bias)?.f_add(&self.global_bias)?
            } else {
                Tensor::f_zeros([movie_rows.size()[0]], (Kind::Float, tch::Device::Cpu))?
            };
            Ok(MovieTables {
                inputs,
                bias,
                vectors: if self.config.dot_product { Some(vectors) } else { None },
                autoencoder: self.autoencoder.as_ref().map(|a| a.movie_terms(movie_rows)).transpose()?,
            })
        })
    }

    /// The serving tables: the network's own user side and layers (shared, no copy) with the catalogue's `movies`.
    pub(crate) fn scoring_tables_over(&self, movies: &MovieTables) -> Result<ScoringTables, ModelError> {
        tch::no_grad(|| {
            let first = self.head.layers.first().ok_or_else(|| ModelError::InvalidArgument("the head has no hidden layer".into()))?;
            let (user_dim, width) = (self.config.user_dim, first.weight.size()[0]);
            let user_bias = match self.config.use_biases {
                true => self.user_bias.f_squeeze_dim(1)?,
                false => Tensor::f_zeros([self.user_embedding.size()[0]], (Kind::Float, tch::Device::Cpu))?,
            };
            let layer = |dense: &Dense| -> Result<Layer, ModelError> { Ok(Layer::new(Matrix::share(&dense.weight)?, Matrix::share(&dense.bias)?)) };
            Ok(ScoringTables {
                user_embedding: Matrix::share(&self.user_embedding)?,
                user_layer: Layer::new(
                    Matrix::copy(&first.weight.f_narrow(1, 0, user_dim)?)?,
                    Matrix::copy(&Tensor::f_zeros([width], (Kind::Float, tch::Device::Cpu))?)?,
                ),
                movie_inputs: Matrix::share(&movies.inputs)?,
                movie_layer: Layer::new(
                    Matrix::copy(&first.weight.f_narrow(1, user_dim, first.weight.size()[1] - user_dim)?)?,
                    Matrix::share(&first.bias)?,
                ),
                hidden: self.head.layers[1..].iter().map(layer).collect::<Result<_, _>>()?,
                output: layer(&self.output)?,
                user_bias: Matrix::share(&user_bias)?,
                movie_bias: Matrix::share(&movies.bias)?,
                movie_vectors: movies.vectors.as_ref().map(Matrix::share).transpose()?,
                autoencoder: match (&self.autoencoder, &movies.autoencoder) {
                    (Some(network), Some(terms)) => Some(network.scoring_terms(terms)?),
                    (None, None) => None,
                    _ => return Err(ModelError::InvalidArgument("the catalogue's autoencoder tables do not match the network".into())),
                },
            })
        })
    }

    /// Movie vectors from embedding rows and content vectors: the embedding plus, with `content_projection`, the
    /// projected content (what a movie without a trained embedding is represented by).
    pub(crate) fn movie_vectors(&self, embedded: &Tensor, content: &Tensor) -> Result<Tensor, TchError> {
        match self.config.content_projection {
            true => embedded.f_add(&self.content_to_movie.forward(content)?),
            false => Ok(embedded.shallow_clone()),
        }
    }

    /// Clips raw predictions to the rating scale.
    pub fn clip(&self, predictions: &Tensor) -> Result<Tensor, TchError> {
        predictions.f_clamp(self.config.rating_min, self.config.rating_max)
    }
}

#[cfg(all(test, feature = "train"))]
pub(crate) mod tests;
