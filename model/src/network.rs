//! The hybrid network: collaborative user/movie embeddings, a content encoder over a movie's features and an
//! MLP head, plus bias terms. Every operation is fallible (tch `f_*`), so libtorch errors reach callers as
//! `TchError` instead of panics. A movie without a trained embedding (row 0) is represented by a learned
//! projection of its content vector: the cold-start path `recsys_predict_new` serves.
use crate::config::ModelConfig;
use tch::{nn, Kind, TchError, Tensor};

/// A dense layer with fallible forward.
#[derive(Debug)]
struct Dense {
    weight: Tensor,
    bias: Tensor,
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
}

/// Dense → ReLU → dropout, for each width.
#[derive(Debug)]
struct Mlp {
    layers: Vec<Dense>,
    dropout: f64,
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

    fn forward(&self, x: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let mut h = x.shallow_clone();
        for layer in &self.layers {
            h = layer.forward(&h)?.f_relu()?;
            if train && self.dropout > 0.0 {
                h = h.f_dropout(self.dropout, true)?;
            }
        }
        Ok(h)
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
}

#[derive(Debug)]
pub struct HybridRecommender {
    config: ModelConfig,
    user_embedding: Tensor,
    movie_embedding: Tensor,
    director_embedding: Tensor,
    actor_embedding: Tensor,
    content_encoder: Mlp,
    content_to_movie: Dense,
    head: Mlp,
    output: Dense,
    global_bias: Tensor,
    user_bias: Tensor,
    movie_bias: Tensor,
    content_bias: Dense,
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

    /// Mean of the embeddings of the non-zero ids in each row: [B, K] → [B, dim].
    fn pool(table: &Tensor, ids: &Tensor) -> Result<Tensor, TchError> {
        let vectors = Tensor::f_embedding(table, ids, 0, false, false)?;
        let present = ids.f_gt(0)?.f_to_kind(Kind::Float)?;
        let count = present.f_sum_dim_intlist([1i64].as_slice(), true, Kind::Float)?.f_clamp_min(1.0)?;
        vectors.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?.f_div(&count)
    }

    /// The content vector of each movie: [B, content_dim].
    pub fn encode_content(&self, content: &ContentInputs, train: bool) -> Result<Tensor, TchError> {
        let directors = Self::pool(&self.director_embedding, &content.directors)?;
        let actors = Self::pool(&self.actor_embedding, &content.actors)?;
        let features = Tensor::f_cat(&[&content.genres, &content.titles, &directors, &actors, &content.numeric], 1)?;
        self.content_encoder.forward(&features, train)
    }

    /// Predicted ratings for pairs, with content vectors already encoded (one row per pair). `movies` holds
    /// embedding rows, 0 for a movie the model has no embedding for. Not clipped (training uses this).
    pub fn forward_encoded(&self, users: &Tensor, movies: &Tensor, content: &Tensor, train: bool) -> Result<Tensor, TchError> {
        let movies = if train && self.config.movie_id_dropout > 0.0 {
            let keep = Tensor::f_rand_like(&movies.f_to_kind(Kind::Float)?)?.f_ge(self.config.movie_id_dropout)?;
            movies.f_mul(&keep.f_to_kind(Kind::Int64)?)?
        } else {
            movies.shallow_clone()
        };
        let user_vectors = Tensor::f_embedding(&self.user_embedding, users, 0, false, false)?;
        let movie_vectors = Tensor::f_embedding(&self.movie_embedding, &movies, 0, false, false)?.f_add(&self.content_to_movie.forward(content)?)?;
        let hidden = self.head.forward(&Tensor::f_cat(&[&user_vectors, &movie_vectors, content], 1)?, train)?;
        let mut prediction = self.output.forward(&hidden)?.f_squeeze_dim(1)?;
        if self.config.use_biases {
            let user_bias = Tensor::f_embedding(&self.user_bias, users, 0, false, false)?.f_squeeze_dim(1)?;
            let movie_bias = Tensor::f_embedding(&self.movie_bias, &movies, 0, false, false)?.f_squeeze_dim(1)?;
            let content_bias = self.content_bias.forward(content)?.f_squeeze_dim(1)?;
            prediction = prediction.f_add(&self.global_bias)?.f_add(&user_bias)?.f_add(&movie_bias)?.f_add(&content_bias)?;
        }
        Ok(prediction)
    }

    /// Predicted ratings for pairs from raw content features (one row per pair), clipped to the rating scale.
    pub fn predict(&self, users: &Tensor, movies: &Tensor, content: &ContentInputs) -> Result<Tensor, TchError> {
        let encoded = self.encode_content(content, false)?;
        self.forward_encoded(users, movies, &encoded, false)?.f_clamp(self.config.rating_min, self.config.rating_max)
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
    use tch::{nn::OptimizerConfig, Device};

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
        let scores: Vec<f32> = Vec::try_from(&network.forward_encoded(&users, &cold, &network.encode_content(&inputs, false).unwrap(), false).unwrap()).unwrap();
        assert_ne!(scores[0], scores[1], "two unseen movies with different content score differently");
    }

    #[test]
    fn a_few_optimiser_steps_fit_a_tiny_problem() {
        tch::manual_seed(1);
        let store = nn::VarStore::new(Device::Cpu);
        let mut config = small_config();
        config.dropout = 0.0;
        config.movie_id_dropout = 0.0;
        let network = HybridRecommender::new(&store.root(), &config);
        network.set_global_bias(3.0).unwrap();
        let users = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 1]);
        let movies = Tensor::from_slice(&[1i64, 2, 3, 4, 1, 2]);
        let targets = Tensor::from_slice(&[5.0f32, 1.0, 4.0, 2.0, 3.0, 4.5]);
        let inputs = content(6, &config);
        let mut optimiser = nn::Adam::default().build(&store, 1e-2).unwrap();
        let loss = |train: bool| network.forward_encoded(&users, &movies, &network.encode_content(&inputs, train).unwrap(), train).unwrap().mse_loss(&targets, tch::Reduction::Mean);
        let before = loss(false).double_value(&[]);
        for _ in 0..200 {
            optimiser.backward_step(&loss(true));
        }
        let after = loss(false).double_value(&[]);
        assert!(after < before / 10.0, "loss {before} -> {after}");
    }

    #[test]
    fn the_catalogue_scorer_reproduces_the_network() {
        tch::manual_seed(3);
        let store = nn::VarStore::new(Device::Cpu);
        let config = small_config();
        let network = HybridRecommender::new(&store.root(), &config);
        let inputs = content(4, &config);
        let encoded = network.encode_content(&inputs, false).unwrap();
        let movie_rows = Tensor::from_slice(&[1i64, 2, 0, 4]);
        let scorer = network.catalogue_scorer(&movie_rows, &encoded).unwrap();
        let single_pairs_only = network.catalogue_scorer(&movie_rows, &encoded).unwrap();
        let all_users: Vec<i64> = (0..=5).collect();
        let batched: Vec<Vec<f32>> = Vec::try_from(scorer.score_catalogue(&all_users, Precision::Float32).unwrap()).unwrap();
        for user in all_users {
            let users = Tensor::full([4], user, (Kind::Int64, Device::Cpu));
            let expected: Vec<f32> = Vec::try_from(network.clip(&network.forward_encoded(&users, &movie_rows, &encoded, false).unwrap()).unwrap()).unwrap();
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
        let scorer = network.catalogue_scorer(&movie_rows, &network.encode_content(&inputs, false).unwrap()).unwrap();
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
