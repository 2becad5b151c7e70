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
    /// embedding rows, 0 for a movie the model has no embedding for. Not clipped.
    pub fn forward_encoded(&self, users: &Tensor, movies: &Tensor, content: &Tensor) -> Result<Tensor, TchError> {
        self.forward_with(users, movies, content, None)
    }

    /// The forward pass; with `noise` (training) it applies the drawn dropout masks, hides the drawn movie ids,
    /// and asks for sparse embedding gradients.
    pub(crate) fn forward_with(&self, users: &Tensor, movies: &Tensor, content: &Tensor, noise: Option<&crate::training::Noise>) -> Result<Tensor, TchError> {
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
            let movie_vectors = Tensor::f_embedding(&self.movie_embedding, movie_rows, 0, false, false)?.f_add(&self.content_to_movie.forward(content)?)?;
            let movie_inputs = Tensor::f_cat(&[&movie_vectors, content], 1)?;
            let (user_bias, movie_bias) = if self.config.use_biases {
                let movie_bias = Tensor::f_embedding(&self.movie_bias, movie_rows, 0, false, false)?.f_squeeze_dim(1)?;
                let content_bias = self.content_bias.forward(content)?.f_squeeze_dim(1)?;
                (self.user_bias.f_squeeze_dim(1)?, movie_bias.f_add(&content_bias)?.f_add(&self.global_bias)?)
            } else {
                (Tensor::f_zeros([self.user_embedding.size()[0]], (Kind::Float, tch::Device::Cpu))?, Tensor::f_zeros([movie_rows.size()[0]], (Kind::Float, tch::Device::Cpu))?)
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
            })
        })
    }

    /// Clips raw predictions to the rating scale.
    pub fn clip(&self, predictions: &Tensor) -> Result<Tensor, TchError> {
        predictions.f_clamp(self.config.rating_min, self.config.rating_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Cardinalities;
    use crate::scoring::Precision;
    use tch::Device;

    fn small_config() -> ModelConfig {
        let mut config = ModelConfig::seed(Cardinalities { users: 5, movies: 4, genres: 3, directors: 2, actors: 3 });
        config.title_dim = 8;
        config
    }

    fn content(rows: i64, config: &ModelConfig) -> ContentInputs {
        let options = (Kind::Float, Device::Cpu);
        ContentInputs {
            genres: Tensor::ones([rows, config.cardinalities.genres], options),
            titles: Tensor::randn([rows, config.title_dim], options),
            directors: Tensor::from_slice(&[1i64, 0, 0, 0]).repeat([rows, 1]),
            actors: Tensor::from_slice(&[1i64, 2, 3, 0]).repeat([rows, 1]),
            numeric: Tensor::zeros([rows, 2], options),
        }
    }

    #[test]
    fn predictions_have_one_value_per_pair_within_the_scale() {
        let store = nn::VarStore::new(Device::Cpu);
        let config = small_config();
        let network = HybridRecommender::new(&store.root(), &config);
        let users = Tensor::from_slice(&[1i64, 2, 0]);
        let movies = Tensor::from_slice(&[1i64, 0, 4]);
        let predictions = network.predict(&users, &movies, &content(3, &config)).unwrap();
        assert_eq!(predictions.size(), vec![3]);
        let values: Vec<f32> = Vec::try_from(&predictions).unwrap();
        assert!(values.iter().all(|v| (0.5..=5.0).contains(v)), "{values:?}");
    }

    #[test]
    fn unknown_rows_start_at_zero_and_cold_movies_depend_on_content() {
        let store = nn::VarStore::new(Device::Cpu);
        let config = small_config();
        let network = HybridRecommender::new(&store.root(), &config);
        assert_eq!(network.movie_embedding.get(0).abs().sum(Kind::Float).double_value(&[]), 0.0);
        let cold = Tensor::from_slice(&[0i64, 0]);
        let users = Tensor::from_slice(&[1i64, 1]);
        let mut inputs = content(2, &config);
        inputs.titles = Tensor::randn([2, config.title_dim], (Kind::Float, Device::Cpu)) * 3.0;
        let scores: Vec<f32> = Vec::try_from(&network.forward_encoded(&users, &cold, &network.encode_content(&inputs).unwrap()).unwrap()).unwrap();
        assert_ne!(scores[0], scores[1], "two unseen movies with different content score differently");
    }

    #[test]
    fn a_few_optimiser_steps_fit_a_tiny_problem() {
        for dot_product in [false, true] {
            tch::manual_seed(1);
            let store = nn::VarStore::new(Device::Cpu);
            let mut config = small_config();
            config.movie_id_dropout = 0.0;
            config.dot_product = dot_product;
            let network = HybridRecommender::new(&store.root(), &config);
            network.set_global_bias(3.0).unwrap();
            let batch = crate::TrainingBatch {
                users: Tensor::from_slice(&[1i64, 2, 3, 4, 5, 1]),
                movies: Tensor::from_slice(&[1i64, 2, 3, 4, 1, 2]),
                content: content(6, &config),
                targets: Tensor::from_slice(&[5.0f32, 1.0, 4.0, 2.0, 3.0, 4.5]),
            };
            let mut optimiser = crate::LazyAdam::new(network.parameters(), 1e-2, 0.0, 1e-4).unwrap();
            let evaluate = || network.forward_encoded(&batch.users, &batch.movies, &network.encode_content(&batch.content).unwrap()).unwrap().mse_loss(&batch.targets, tch::Reduction::Mean).double_value(&[]);
            let before = evaluate();
            let mut random = crate::MaskRandom::new(1, 0);
            for _ in 0..200 {
                let loss = network.training_loss(&batch, &network.draw_noise(6, &mut random).unwrap(), 6.0).unwrap();
                optimiser.step(&[HybridRecommender::gradients(&loss, &network.parameters()).unwrap()], 6).unwrap();
            }
            let after = evaluate();
            assert!(after < before / 10.0, "dot product {dot_product}: loss {before} -> {after}");
        }
    }

    #[test]
    fn noise_drawn_up_front_makes_the_loss_of_slices_add_up_to_the_batch_loss() {
        tch::manual_seed(2);
        let store = nn::VarStore::new(Device::Cpu);
        let config = small_config();
        let network = HybridRecommender::new(&store.root(), &config);
        let batch = |rows: std::ops::Range<i64>| crate::TrainingBatch {
            users: Tensor::arange_start(rows.start, rows.end, (Kind::Int64, Device::Cpu)).remainder(5) + 1,
            movies: Tensor::arange_start(rows.start, rows.end, (Kind::Int64, Device::Cpu)).remainder(4) + 1,
            content: content(rows.end - rows.start, &config),
            targets: Tensor::full([rows.end - rows.start], 3.5, (Kind::Float, Device::Cpu)),
        };
        let noise = network.draw_noise(8, &mut crate::MaskRandom::new(2, 0)).unwrap();
        let mut whole = batch(0..8);
        let titles = Tensor::randn([8, config.title_dim], (Kind::Float, Device::Cpu));
        whole.content.titles = titles.copy();
        let mut first = batch(0..3);
        first.content.titles = titles.narrow(0, 0, 3);
        let mut second = batch(3..8);
        second.content.titles = titles.narrow(0, 3, 5);
        let total = network.training_loss(&whole, &noise, 8.0).unwrap().double_value(&[]);
        let parts = network.training_loss(&first, &noise.narrow(0, 3).unwrap(), 8.0).unwrap().double_value(&[])
            + network.training_loss(&second, &noise.narrow(3, 5).unwrap(), 8.0).unwrap().double_value(&[]);
        assert!((total - parts).abs() < 1e-5, "{total} vs {parts}");
        let masks_differ = noise.head[0].narrow(0, 0, 1).not_equal_tensor(&noise.head[0].narrow(0, 1, 1)).any().int64_value(&[]);
        assert_eq!(masks_differ, 1, "dropout masks are drawn per row");
    }

    #[test]
    fn the_catalogue_scorer_reproduces_the_network() {
        scorer_reproduces_the_network(small_config());
    }

    #[test]
    fn the_catalogue_scorer_reproduces_the_network_with_its_dot_product_path() {
        scorer_reproduces_the_network(ModelConfig { dot_product: true, ..small_config() });
    }

    #[test]
    fn the_catalogue_scorer_reproduces_the_network_with_a_low_rank_title_path() {
        scorer_reproduces_the_network(ModelConfig { title_rank: Some(3), ..small_config() });
    }

    #[test]
    fn a_low_rank_title_path_is_a_trained_projection_in_front_of_the_encoder() {
        tch::manual_seed(4);
        let store = nn::VarStore::new(Device::Cpu);
        let config = ModelConfig { title_rank: Some(3), movie_id_dropout: 0.0, ..small_config() };
        assert_eq!(config.content_input_dim(), 3 + 3 + 2 * 16 + 2);
        let network = HybridRecommender::new(&store.root(), &config);
        assert_eq!(store.variables()["title_projection"].size(), vec![3, config.title_dim]);
        let parameters = network.parameters();
        assert!(parameters.iter().any(|p| p.name == "title_projection"));
        let before = store.variables()["title_projection"].copy();
        let batch = crate::TrainingBatch { users: Tensor::from_slice(&[1i64, 2]), movies: Tensor::from_slice(&[1i64, 2]), content: content(2, &config), targets: Tensor::from_slice(&[5.0f32, 1.0]) };
        let mut optimiser = crate::LazyAdam::new(parameters, 1e-2, 0.0, 0.0).unwrap();
        let loss = network.training_loss(&batch, &network.draw_noise(2, &mut crate::MaskRandom::new(4, 0)).unwrap(), 2.0).unwrap();
        optimiser.step(&[HybridRecommender::gradients(&loss, &network.parameters()).unwrap()], 2).unwrap();
        assert!(!store.variables()["title_projection"].equal(&before), "the projection learns");
        assert!(ModelConfig { title_rank: Some(9), ..small_config() }.validate().unwrap_err().contains("title_rank"));
    }

    fn scorer_reproduces_the_network(config: ModelConfig) {
        tch::manual_seed(3);
        let store = nn::VarStore::new(Device::Cpu);
        let network = HybridRecommender::new(&store.root(), &config);
        let inputs = content(4, &config);
        let encoded = network.encode_content(&inputs).unwrap();
        let movie_rows = Tensor::from_slice(&[1i64, 2, 0, 4]);
        let scorer = network.catalogue_scorer(&movie_rows, &encoded).unwrap();
        let single_pairs_only = network.catalogue_scorer(&movie_rows, &encoded).unwrap();
        let all_users: Vec<i64> = (0..=5).collect();
        let batched: Vec<Vec<f32>> = Vec::try_from(scorer.score_catalogue(&all_users, Precision::Float32).unwrap()).unwrap();
        for user in all_users {
            let users = Tensor::full([4], user, (Kind::Int64, Device::Cpu));
            let expected: Vec<f32> = Vec::try_from(network.clip(&network.forward_encoded(&users, &movie_rows, &encoded).unwrap()).unwrap()).unwrap();
            for (position, want) in expected.iter().enumerate() {
                let got = single_pairs_only.score(user as usize, position).unwrap();
                assert!((got - want).abs() < 1e-4, "user {user} movie {position}: {got} vs {want}");
                let got = scorer.score(user as usize, position).unwrap();
                assert!((got - want).abs() < 1e-4, "after a catalogue pass: user {user} movie {position}: {got} vs {want}");
                let got = batched[user as usize][position];
                assert!((got - want).abs() < 1e-4, "batched: user {user} movie {position}: {got} vs {want}");
            }
        }
        assert!(scorer.score(99, 0).is_none() && scorer.score(0, 99).is_none());
        assert!(scorer.score_catalogue(&[99], Precision::Float32).is_err());
        let pairs = scorer.score_pairs(&[1, 5, 0], &[0, 3, 2]).unwrap();
        for (got, (user, position)) in pairs.iter().zip([(1, 0), (5, 3), (0, 2)]) {
            assert!((got - batched[user][position]).abs() < 1e-5, "pair ({user}, {position}): {got}");
        }
        assert!(scorer.score_pairs(&[1], &[4]).is_err() && scorer.score_pairs(&[1, 2], &[0]).is_err());
    }

    #[test]
    fn bfloat16_ranking_returns_the_float32_ranking() {
        tch::manual_seed(5);
        let store = nn::VarStore::new(Device::Cpu);
        let mut config = small_config();
        config.cardinalities.movies = 300;
        config.cardinalities.users = 40;
        let network = HybridRecommender::new(&store.root(), &config);
        tch::no_grad(|| store.variables().values().for_each(|v| { let _ = v.shallow_clone().f_mul_scalar_(1.5).unwrap(); }));
        let movie_rows = Tensor::arange(300, (Kind::Int64, Device::Cpu));
        let mut inputs = content(300, &config);
        inputs.genres = Tensor::rand([300, config.cardinalities.genres], (Kind::Float, Device::Cpu));
        let scorer = network.catalogue_scorer(&movie_rows, &network.encode_content(&inputs).unwrap()).unwrap();
        let users: Vec<i64> = (0..=40).collect();
        let ids: Vec<i32> = (0..300).map(|i| 1000 - i).collect();
        let candidates = |user: usize| (0..300).filter(|p| (p + user) % 7 != 0).collect::<Vec<usize>>();
        let exact = crate::ranking::rank_users(&scorer, &users, candidates, &ids, 10, Precision::Float32).unwrap();
        let fast = crate::ranking::rank_users(&scorer, &users, candidates, &ids, 10, Precision::Bfloat16).unwrap();
        assert_eq!(exact, fast, "same movies, order and float32 scores");
        let approximate = scorer.score_catalogue(&users, Precision::Bfloat16).unwrap();
        let error = (approximate - scorer.score_catalogue(&users, Precision::Float32).unwrap()).abs().max().double_value(&[]);
        assert!(error > 0.0 && error < 0.05, "bfloat16 pre-scores differ from float32 ones, within half the margin: {error}");
        assert!(exact.iter().all(|r| r.len() == 10) && exact[3].iter().all(|(p, _)| (p + 3) % 7 != 0));
        let spread = exact.iter().map(|r| r[0].1 - r[9].1).fold(0.0f32, f32::max);
        assert!(spread > 0.05, "scores too flat for a meaningful comparison: {spread}");
    }

    #[test]
    fn person_dropout_hides_people_at_its_rate_and_only_in_training() {
        tch::manual_seed(6);
        let store = nn::VarStore::new(Device::Cpu);
        let config = ModelConfig { person_dropout: 0.25, ..small_config() };
        let network = HybridRecommender::new(&store.root(), &config);
        let noise = network.draw_noise(4000, &mut crate::MaskRandom::new(6, 0)).unwrap();
        assert_eq!(noise.directors_keep.size(), vec![4000, config.max_directors]);
        let kept = noise.actors_keep.to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        assert!((kept - 0.75).abs() < 0.02, "kept share {kept}");
        let inputs = content(1, &config);
        let mut hidden = network.draw_noise(1, &mut crate::MaskRandom::new(6, 1)).unwrap();
        hidden.directors_keep = hidden.directors_keep.zeros_like();
        hidden.actors_keep = hidden.actors_keep.zeros_like();
        let no_people = ContentInputs { directors: inputs.directors.zeros_like(), actors: inputs.actors.zeros_like(), ..inputs.shallow_clone() };
        let without = network.encode_content_with(&no_people, Some(&hidden)).unwrap();
        assert!(network.encode_content_with(&inputs, Some(&hidden)).unwrap().equal(&without), "hiding everyone = a movie without known people");
        assert!(!network.encode_content(&inputs).unwrap().equal(&network.encode_content(&no_people).unwrap()), "inference sees everyone");
    }

    #[test]
    fn people_are_pooled_as_the_mean_of_the_known_ids() {
        let table = Tensor::from_slice(&[0.0f32, 0.0, 1.0, 2.0, 3.0, 6.0]).view([3, 2]);
        let pooled = HybridRecommender::pool(&table, &Tensor::from_slice(&[1i64, 2, 0, 0, 0, 2, 0, 0]).view([4, 2]), false).unwrap();
        let values: Vec<Vec<f32>> = Vec::try_from(pooled).unwrap();
        assert_eq!(values, vec![vec![2.0, 4.0], vec![0.0, 0.0], vec![3.0, 6.0], vec![0.0, 0.0]]);
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let store = nn::VarStore::new(Device::Cpu);
        let config = small_config();
        let network = HybridRecommender::new(&store.root(), &config);
        let out_of_range = Tensor::from_slice(&[99i64]);
        assert!(network.predict(&out_of_range, &Tensor::from_slice(&[1i64]), &content(1, &config)).is_err());
        let mut wrong = content(1, &config);
        wrong.titles = Tensor::zeros([1, 7], (Kind::Float, Device::Cpu));
        assert!(network.predict(&Tensor::from_slice(&[1i64]), &Tensor::from_slice(&[1i64]), &wrong).is_err());
    }
}
