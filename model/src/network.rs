//! The hybrid network: collaborative user/movie embeddings, a content encoder over a movie's features and an
//! MLP head, plus bias terms. Every operation is fallible (tch `f_*`), so libtorch errors reach callers as
//! `TchError` instead of panics. A movie without a trained embedding (row 0) is represented by a learned
//! projection of its content vector: the cold-start path `recsys_predict_new` serves.
use crate::config::ModelConfig;
use tch::{nn, Kind, TchError, Tensor};

/// A dense layer with fallible forward.
#[derive(Debug)]
pub(crate) struct Dense {
    pub(crate) weight: Tensor,
    pub(crate) bias: Tensor,
}

impl Dense {
    fn new(path: nn::Path, inputs: i64, outputs: i64, random: bool) -> Self {
        let bound = 1.0 / (inputs as f64).sqrt();
        let init = if random { nn::Init::Uniform { lo: -bound, up: bound } } else { nn::Init::Const(0.0) };
        Self { weight: path.var("weight", &[outputs, inputs], init), bias: path.var("bias", &[outputs], init) }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        x.f_linear(&self.weight, Some(&self.bias))
    }

    pub(crate) fn shallow_clone(&self) -> Self {
        Self { weight: self.weight.shallow_clone(), bias: self.bias.shallow_clone() }
    }
}

/// Dense → ReLU → dropout, for each width.
#[derive(Debug)]
pub(crate) struct Mlp {
    pub(crate) layers: Vec<Dense>,
    pub(crate) dropout: f64,
}

impl Mlp {
    fn new(path: nn::Path, inputs: i64, widths: &[i64], dropout: f64, random: bool) -> Self {
        let mut layers = Vec::with_capacity(widths.len());
        let mut previous = inputs;
        for (index, width) in widths.iter().enumerate() {
            layers.push(Dense::new(&path / index.to_string(), previous, *width, random));
            previous = *width;
        }
        Self { layers, dropout }
    }

    /// `masks` (training only): one scaled dropout mask per layer, as `training::Noise` draws them.
    fn forward(&self, x: &Tensor, masks: Option<&[Tensor]>) -> Result<Tensor, TchError> {
        self.forward_from(0, x.shallow_clone(), masks)
    }

    /// The layers from `first` on, given `x`: the input of layer `first`, or with `first` > 0 the output of
    /// layer `first - 1` before its ReLU and dropout.
    fn forward_from(&self, first: usize, x: Tensor, masks: Option<&[Tensor]>) -> Result<Tensor, TchError> {
        let mut h = x;
        for (index, layer) in self.layers.iter().enumerate() {
            if index >= first {
                h = layer.forward(&h)?;
            }
            if index + 1 >= first {
                h = h.f_relu()?;
                if let Some(mask) = masks.and_then(|m| m.get(index)) {
                    h = h.f_mul(mask)?;
                }
            }
        }
        Ok(h)
    }

    pub(crate) fn widths(&self) -> Vec<i64> {
        self.layers.iter().map(|l| l.bias.size()[0]).collect()
    }

    pub(crate) fn shallow_clone(&self) -> Self {
        Self { layers: self.layers.iter().map(Dense::shallow_clone).collect(), dropout: self.dropout }
    }
}

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
    pub(crate) autoencoder: Option<crate::autoencoder::AutoencoderTables>,
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
            content_encoder: Mlp::new(path / "content_encoder", config.content_input_dim(), &config.content_hidden, config.dropout, random),
            content_to_movie: Dense::new(path / "content_to_movie", content_dim, config.movie_dim, random),
            head: Mlp::new(path / "head", head_input, &config.head_hidden, config.dropout, random),
            output: Dense::new(path / "output", head_output, 1, random),
            global_bias: path.var("global_bias", &[1], nn::Init::Const((config.rating_min + config.rating_max) / 2.0)),
            user_bias: embedding("user_bias", c.users, 1),
            movie_bias: embedding("movie_bias", c.movies, 1),
            content_bias: Dense::new(path / "content_bias", content_dim, 1, random),
            autoencoder: config
                .autoencoder_rank
                .map(|rank| crate::autoencoder::AutoencoderTables::new(&(path / "autoencoder"), c.users, c.movies, rank)),
            config: config.clone(),
        }
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
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
        self.encode_content_with(content, None)
    }

    pub(crate) fn encode_content_with(&self, content: &ContentInputs, noise: Option<&crate::training::Noise>) -> Result<Tensor, TchError> {
        let sparse = noise.is_some();
        let (directors, actors) = match noise {
            Some(n) => (content.directors.f_mul(&n.directors_keep)?, content.actors.f_mul(&n.actors_keep)?),
            None => (content.directors.shallow_clone(), content.actors.shallow_clone()),
        };
        let directors = Self::pool(&self.director_embedding, &directors, sparse)?;
        let actors = Self::pool(&self.actor_embedding, &actors, sparse)?;
        let masks = noise.map(|n| n.content.as_slice());
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
        self.content_encoder.forward_from(1, pre_activation, masks)
    }

    /// Predicted ratings for pairs, with content vectors already encoded (one row per pair). `movies` holds
    /// embedding rows, 0 for a movie the model has no embedding for. Not clipped. Warm pairs include the
    /// autoencoder's blend when the network has one.
    pub fn forward_encoded(&self, users: &Tensor, movies: &Tensor, content: &Tensor) -> Result<Tensor, TchError> {
        let hybrid = self.forward_with(users, movies, content, None)?;
        match &self.autoencoder {
            Some(autoencoder) => autoencoder.blend(&hybrid, users, movies),
            None => Ok(hybrid),
        }
    }

    /// The forward pass; with `noise` (training) it applies the drawn dropout masks, hides the drawn movie ids,
    /// and asks for sparse embedding gradients.
    pub(crate) fn forward_with(
        &self,
        users: &Tensor,
        movies: &Tensor,
        content: &Tensor,
        noise: Option<&crate::training::Noise>,
    ) -> Result<Tensor, TchError> {
        let sparse = noise.is_some();
        let movies = match noise {
            Some(noise) => movies.f_mul(&noise.movie_keep)?,
            None => movies.shallow_clone(),
        };
        let user_vectors = Tensor::f_embedding(&self.user_embedding, users, 0, false, sparse)?;
        let movie_rows = Tensor::f_embedding(&self.movie_embedding, &movies, 0, false, sparse)?;
        let movie_vectors = movie_rows.f_add(&self.content_to_movie.forward(content)?)?;
        let hidden = self.head.forward(&Tensor::f_cat(&[&user_vectors, &movie_vectors, content], 1)?, noise.map(|n| n.head.as_slice()))?;
        let mut predictions = self.output.forward(&hidden)?.f_squeeze_dim(1)?;
        if self.config.dot_product {
            predictions = predictions.f_add(&user_vectors.f_mul(&movie_vectors)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?)?;
        }
        if self.config.use_biases {
            let user_bias = Tensor::f_embedding(&self.user_bias, users, 0, false, sparse)?.f_squeeze_dim(1)?;
            let movie_bias = Tensor::f_embedding(&self.movie_bias, &movies, 0, false, sparse)?.f_squeeze_dim(1)?;
            let content_bias = self.content_bias.forward(content)?.f_squeeze_dim(1)?;
            predictions = predictions.f_add(&self.global_bias)?.f_add(&user_bias)?.f_add(&movie_bias)?.f_add(&content_bias)?;
        }
        Ok(predictions)
    }

    /// Predicted ratings for pairs from raw content features (one row per pair), clipped to the rating scale.
    pub fn predict(&self, users: &Tensor, movies: &Tensor, content: &ContentInputs) -> Result<Tensor, TchError> {
        let encoded = self.encode_content(content)?;
        self.forward_encoded(users, movies, &encoded)?.f_clamp(self.config.rating_min, self.config.rating_max)
    }

    /// A plain-Rust scorer for single pairs over a catalogue: `movie_rows` [M] embedding rows and `content` [M, c]
    /// encoded content vectors, one per catalogue position.
    pub fn catalogue_scorer(&self, movie_rows: &Tensor, content: &Tensor) -> Result<crate::scoring::CatalogueScorer, crate::ModelError> {
        tch::no_grad(|| {
            let first = self.head.layers.first().ok_or_else(|| crate::ModelError::InvalidArgument("the head has no hidden layer".into()))?;
            let user_dim = self.config.user_dim;
            let user_weight = first.weight.f_narrow(1, 0, user_dim)?;
            let movie_weight = first.weight.f_narrow(1, user_dim, first.weight.size()[1] - user_dim)?;
            let movie_vectors =
                Tensor::f_embedding(&self.movie_embedding, movie_rows, 0, false, false)?.f_add(&self.content_to_movie.forward(content)?)?;
            let movie_inputs = Tensor::f_cat(&[&movie_vectors, content], 1)?;
            let (user_bias, movie_bias) = if self.config.use_biases {
                let movie_bias = Tensor::f_embedding(&self.movie_bias, movie_rows, 0, false, false)?.f_squeeze_dim(1)?;
                let content_bias = self.content_bias.forward(content)?.f_squeeze_dim(1)?;
                (self.user_bias.f_squeeze_dim(1)?, movie_bias.f_add(&content_bias)?.f_add(&self.global_bias)?)
            } else {
                (
                    Tensor::f_zeros([self.user_embedding.size()[0]], (Kind::Float, tch::Device::Cpu))?,
                    Tensor::f_zeros([movie_rows.size()[0]], (Kind::Float, tch::Device::Cpu))?,
                )
            };
            crate::scoring::CatalogueScorer::new(crate::scoring::ScorerParts {
                user_embedding: &self.user_embedding,
                user_weight,
                movie_inputs,
                movie_weight,
                first_bias: &first.bias,
                hidden: self.head.layers[1..].iter().map(|l| (&l.weight, &l.bias)).collect(),
                output: (&self.output.weight, &self.output.bias),
                user_bias,
                movie_bias,
                rating_min: self.config.rating_min,
                rating_max: self.config.rating_max,
                dot_product: self.config.dot_product,
                autoencoder: self.autoencoder.as_ref().map(|a| a.scorer_parts(movie_rows)).transpose()?,
            })
        })
    }

    /// Clips raw predictions to the rating scale.
    pub fn clip(&self, predictions: &Tensor) -> Result<Tensor, TchError> {
        predictions.f_clamp(self.config.rating_min, self.config.rating_max)
    }
}

#[cfg(test)]
#[path = "network_tests.rs"]
pub(crate) mod tests;
