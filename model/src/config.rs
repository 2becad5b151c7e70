//! Every dimension and hyper-parameter of the hybrid network, serialisable into the model artefact.
use crate::ModelError;
use serde::{Deserialize, Serialize};

/// Sizes of the vocabularies the network was built for (row 0 of each embedding is the "unknown" row).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cardinalities {
    /// Users with training ratings.
    pub users: i64,
    /// Movies with training ratings.
    pub movies: i64,
    /// Genres of the catalogue.
    pub genres: i64,
    /// Directors and actors of trained movies.
    pub directors: i64,
    /// Actors kept per trained movie.
    pub actors: i64,
}

/// The network's architecture and regularisation, stored in every artefact. Two presets: `ModelConfig::default()`
/// (what `trainer train` builds: its flags take their defaults from it) and `ModelConfig::seed_architecture` (the
/// original design, for comparisons). Set `cardinalities` from the fitted vocabulary:
/// `ModelConfig { cardinalities, ..ModelConfig::default() }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Vocabulary sizes (from the fitted `Vocabulary`).
    pub cardinalities: Cardinalities,
    /// Collaborative embeddings.
    pub user_dim: i64,
    /// Width of the movie embedding (equal to `user_dim` for the dot product).
    pub movie_dim: i64,
    /// Learned director and actor embeddings, mean-pooled per movie.
    pub person_dim: i64,
    /// Sentence embedding of the title (all-MiniLM-L6-v2: 384).
    pub title_dim: i64,
    /// Rank of the title's path into the content encoder: a learned [title_dim → rank] projection in front of the
    /// encoder's first layer (None: the title enters at full width, as in the seed architecture).
    #[serde(default)]
    pub title_rank: Option<i64>,
    /// Directors and top-billed actors kept per movie.
    pub max_directors: i64,
    /// Top-billed actors kept per movie.
    pub max_actors: i64,
    /// Content encoder MLP widths; its last width is the content vector size.
    pub content_hidden: Vec<i64>,
    /// Adds a learned projection of the content vector to the movie embedding, so a movie without a trained
    /// embedding still gets a movie vector (false: the movie vector is the embedding alone, as in the seed design).
    #[serde(default = "enabled")]
    pub content_projection: bool,
    /// Head MLP widths over [user, movie, content]; a final linear layer gives the rating.
    pub head_hidden: Vec<i64>,
    /// Dropout rate after every hidden layer while training.
    pub dropout: f64,
    /// Probability of hiding a movie's id during training, so the content path learns to score unseen movies.
    pub movie_id_dropout: f64,
    /// Probability of hiding each of a movie's directors and actors during training (an unknown slot), so the
    /// content path learns to score movies whose people are new or missing.
    #[serde(default)]
    pub person_dropout: f64,
    /// Global, user, movie and content bias terms added to the head's output.
    pub use_biases: bool,
    /// Adds the dot product of the user vector and the movie vector (embedding + content projection) to the
    /// head's output: a matrix-factorisation path beside the MLP. Needs `user_dim == movie_dim`.
    #[serde(default)]
    pub dot_product: bool,
    /// Width of the item autoencoder's tables (user decoder rows, movie codes), whose predictions are blended into
    /// warm pairs: the trained autoencoder is truncated to this rank (None: the hybrid alone).
    #[serde(default)]
    pub autoencoder_rank: Option<i64>,
    /// The preference part that orders recommendation lists (None: lists are ordered by predicted rating, as
    /// before 0.7).
    #[serde(default)]
    pub preference: Option<PreferenceConfig>,
    /// Rating scale; predictions are clipped to it.
    pub rating_min: f64,
    /// Top of the rating scale.
    pub rating_max: f64,
}

fn enabled() -> bool {
    true
}

impl Default for ModelConfig {
    /// The trainer's defaults (no vocabulary yet): 64-d user and movie embeddings with a dot-product path and bias
    /// terms, 16-d people (half of them hidden per training pair), the title through a rank-16 projection, content
    /// MLP [128, 64] whose projection is added to the movie vector, head [256, 128, 64], dropout 0.2, movie-id dropout
    /// 0.2, a rank-32 item autoencoder, and a 64-wide preference part over liked movies with 300 item neighbours per
    /// movie and every trained user's preference vector.
    fn default() -> Self {
        Self {
            title_rank: Some(16),
            content_projection: true,
            movie_id_dropout: 0.2,
            person_dropout: 0.5,
            use_biases: true,
            dot_product: true,
            autoencoder_rank: Some(32),
            preference: Some(PreferenceConfig {
                dim: 64,
                positives: Positives::Liked,
                neighbours: 300,
                similar_movies: Representation::Rating,
                neighbour_input: NeighbourInput::Rated,
                user_vectors: true,
                similar_users: Representation::Rating,
            }),
            ..Self::seed_architecture(Cardinalities::default())
        }
    }
}

impl ModelConfig {
    /// The original design (the seed's PyTorch model): 64-d user and movie embeddings concatenated with a content
    /// vector from MLP [128, 64] over genres, the full 384-d title embedding, mean-pooled 16-d directors and top-4
    /// actors and runtime/year; head [256, 128, 64]; dropout 0.2; no bias terms, dot product, title projection,
    /// content projection, id or person dropout, or autoencoder.
    pub fn seed_architecture(cardinalities: Cardinalities) -> Self {
        Self {
            cardinalities,
            user_dim: 64,
            movie_dim: 64,
            person_dim: 16,
            title_dim: 384,
            title_rank: None,
            max_directors: 4,
            max_actors: 4,
            content_hidden: vec![128, 64],
            content_projection: false,
            head_hidden: vec![256, 128, 64],
            dropout: 0.2,
            movie_id_dropout: 0.0,
            person_dropout: 0.0,
            use_biases: false,
            dot_product: false,
            autoencoder_rank: None,
            preference: None,
            rating_min: 0.5,
            rating_max: 5.0,
        }
    }

    /// Width of the content encoder's input: genres multi-hot, title embedding (or its projection), pooled
    /// directors and actors, standardised runtime and year.
    pub fn content_input_dim(&self) -> i64 {
        self.cardinalities.genres + self.title_width() + 2 * self.person_dim + 2
    }

    /// Width at which the title enters the content encoder.
    pub fn title_width(&self) -> i64 {
        self.title_rank.unwrap_or(self.title_dim)
    }

    /// How many float32 weights the network built from this configuration holds (every variable of
    /// `HybridRecommender::new`), or `None` when the count overflows: lets a loader check a manifest against its
    /// weights file before allocating anything.
    pub fn parameter_count(&self) -> Option<u64> {
        let c = &self.cardinalities;
        let positive = |value: i64| u64::try_from(value).ok();
        let (users, movies) = (positive(c.users)?.checked_add(1)?, positive(c.movies)?.checked_add(1)?);
        let (directors, actors) = (positive(c.directors)?.checked_add(1)?, positive(c.actors)?.checked_add(1)?);
        let (user_dim, movie_dim, person_dim) = (positive(self.user_dim)?, positive(self.movie_dim)?, positive(self.person_dim)?);
        let content_dim = positive(self.content_dim())?;
        let dense = |inputs: u64, outputs: u64| inputs.checked_mul(outputs)?.checked_add(outputs);
        let mlp = |inputs: u64, widths: &[i64]| -> Option<(u64, u64)> {
            let (mut total, mut previous) = (0u64, inputs);
            for width in widths {
                let width = positive(*width)?;
                total = total.checked_add(dense(previous, width)?)?;
                previous = width;
            }
            Some((total, previous))
        };
        let (content_encoder, _) = mlp(positive(self.content_input_dim())?, &self.content_hidden)?;
        let (head, head_output) = mlp(user_dim.checked_add(movie_dim)?.checked_add(content_dim)?, &self.head_hidden)?;
        let title_projection = match self.title_rank {
            Some(rank) => positive(rank)?.checked_mul(positive(self.title_dim)?)?,
            None => 0,
        };
        let autoencoder = match self.autoencoder_rank {
            Some(rank) => {
                let rank = positive(rank)?;
                users.checked_mul(rank.checked_add(2)?)?.checked_add(movies.checked_mul(rank.checked_add(1)?)?)?.checked_add(3)?
            }
            None => 0,
        };
        let parts = [
            users.checked_mul(user_dim)?,
            movies.checked_mul(movie_dim)?,
            directors.checked_add(actors)?.checked_mul(person_dim)?,
            title_projection,
            content_encoder,
            dense(content_dim, movie_dim)?,
            head,
            dense(head_output, 1)?,
            1 + users + movies,
            dense(content_dim, 1)?,
            autoencoder,
            match &self.preference {
                Some(preference) => preference.parameter_count(users.checked_sub(1)?, movies.checked_sub(1)?, content_dim)?,
                None => 0,
            },
        ];
        parts.iter().try_fold(0u64, |total, part| total.checked_add(*part))
    }

    /// Width of a movie's content vector (the content encoder's output).
    pub fn content_dim(&self) -> i64 {
        *self.content_hidden.last().unwrap_or(&self.content_input_dim())
    }

    /// Checks that the configuration describes a buildable network.
    pub fn validate(&self) -> Result<(), ModelError> {
        self.problem().map_or(Ok(()), |problem| Err(ModelError::InvalidConfig(problem)))
    }

    /// What makes the configuration unbuildable, if anything.
    fn problem(&self) -> Option<String> {
        let c = &self.cardinalities;
        let positive = [
            ("user_dim", self.user_dim),
            ("movie_dim", self.movie_dim),
            ("person_dim", self.person_dim),
            ("title_dim", self.title_dim),
            ("max_directors", self.max_directors),
            ("max_actors", self.max_actors),
        ];
        if let Some((name, value)) = positive.iter().find(|(_, v)| *v <= 0) {
            return Some(format!("{name} must be positive, got {value}"));
        }
        if let Some(rank) = self.title_rank.filter(|rank| !(1..=self.title_dim).contains(rank)) {
            return Some(format!("title_rank must be in 1..={}, got {rank}", self.title_dim));
        }
        if [c.users, c.movies, c.genres, c.directors, c.actors].iter().any(|n| *n < 0) {
            return Some("vocabulary sizes cannot be negative".into());
        }
        if let Some(rank) = self.autoencoder_rank.filter(|rank| *rank <= 0) {
            return Some(format!("autoencoder_rank must be positive, got {rank}"));
        }
        if self.content_hidden.iter().chain(&self.head_hidden).any(|w| *w <= 0) {
            return Some("MLP widths must be positive".into());
        }
        if ![self.dropout, self.movie_id_dropout, self.person_dropout].iter().all(|rate| (0.0..1.0).contains(rate)) {
            return Some("dropout rates must be in [0, 1)".into());
        }
        if self.dot_product && self.user_dim != self.movie_dim {
            return Some(format!("the dot-product path needs user_dim = movie_dim, got {} and {}", self.user_dim, self.movie_dim));
        }
        if let Some(preference) = self.preference.filter(|p| p.dim <= 0) {
            return Some(format!("the preference dimension must be positive, got {}", preference.dim));
        }
        if self.rating_min.partial_cmp(&self.rating_max) != Some(std::cmp::Ordering::Less) {
            return Some(format!("rating scale {}..{} is empty", self.rating_min, self.rating_max));
        }
        None
    }
}

/// Which ratings count as a movie the user picked, and how much, in the preference objective's targets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Positives {
    /// Every rated movie, weight 1.
    All,
    /// Movies rated 4 or more (on a 0.5–5 scale: the top fifth of the scale and up), weight 1.
    #[default]
    Liked,
    /// Every rated movie, weighted by its rating over the scale's top.
    Valued,
}

impl std::str::FromStr for Positives {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "all" => Ok(Self::All),
            "liked" => Ok(Self::Liked),
            "valued" => Ok(Self::Valued),
            other => Err(format!("{other:?} is not one of all, liked, valued")),
        }
    }
}

impl std::fmt::Display for Positives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::All => "all",
            Self::Liked => "liked",
            Self::Valued => "valued",
        })
    }
}

impl Positives {
    /// The target weight of a rating `value` on a scale whose top is `rating_max`.
    pub fn weight(self, value: f32, rating_max: f32) -> f32 {
        match self {
            Self::All => 1.0,
            Self::Liked => f32::from(u8::from(value >= 0.8 * rating_max)),
            Self::Valued => value / rating_max,
        }
    }
}

/// The preference part's shape, stored in the artefact's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PreferenceConfig {
    /// Width of the input and output vectors.
    pub dim: i64,
    /// What the objective counted as picked.
    pub positives: Positives,
    /// Item neighbours kept per movie from the trainer's closed-form item-item model (0: none, e.g. above 20,000
    /// movies).
    #[serde(default)]
    pub neighbours: i64,
    /// The representation `recsys_similar_movies` compares movies in (chosen by the trainer on validation).
    #[serde(default)]
    pub similar_movies: Representation,
    /// How a user's rated movies count in the neighbourhood score (chosen by the trainer on validation).
    #[serde(default)]
    pub neighbour_input: NeighbourInput,
    /// Whether the artefact holds every trained user's preference vector (`similar_users` can then be `Preference`).
    #[serde(default)]
    pub user_vectors: bool,
    /// The representation `recsys_similar_users` compares users in (chosen by the trainer on validation).
    #[serde(default)]
    pub similar_users: Representation,
}

/// What the trainer chooses on its validation share and stores in `PreferenceConfig`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PreferenceChoices {
    /// The representation similar movies are served from.
    pub similar_movies: Representation,
    /// The representation similar users are served from.
    pub similar_users: Representation,
    /// How rated movies count in the neighbourhood score.
    pub neighbour_input: NeighbourInput,
}

/// How much each of a user's rated movies adds of its item-item weights to the user's neighbourhood scores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NeighbourInput {
    /// Every rated movie once (EASE's own input; every manifest before this field).
    #[default]
    Rated,
    /// Every rated movie once and a liked one (`Positives::Liked`) twice.
    LikedTwice,
}

impl NeighbourInput {
    /// What a movie the user rated `rating` (on a scale topped by `rating_max`) adds: its weights times this.
    pub fn weight(self, rating: f32, rating_max: f32) -> f32 {
        match self {
            Self::Rated => 1.0,
            Self::LikedTwice => 1.0 + Positives::Liked.weight(rating, rating_max),
        }
    }
}

impl std::fmt::Display for NeighbourInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rated => "every rated movie once",
            Self::LikedTwice => "liked movies twice",
        })
    }
}

/// The learned representation similar movies or users are found in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Representation {
    /// The rating network's: what a movie (user) feeds the head, then its dot-product vector (embedding); every
    /// manifest before these fields.
    #[default]
    Rating,
    /// The preference part's: a movie's input and output vectors side by side (movies picked by the same users); a
    /// user's preference vector (users who picked the same movies).
    Preference,
}

impl std::fmt::Display for Representation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Rating => "rating",
            Self::Preference => "preference",
        })
    }
}

impl PreferenceConfig {
    /// Float32 weights the preference variables hold for `users` trained users, `movies` trained movies and a
    /// `content_dim` content vector.
    pub fn parameter_count(&self, users: u64, movies: u64, content_dim: u64) -> Option<u64> {
        let dim = u64::try_from(self.dim).ok()?;
        let user_vectors = if self.user_vectors { users.checked_add(1)?.checked_mul(dim)? } else { 0 };
        let rows = movies.checked_add(1)?.checked_mul(dim.checked_mul(2)?.checked_add(1)?)?;
        let dense = content_dim.checked_add(1)?.checked_mul(dim.checked_mul(2)?.checked_add(1)?)?;
        let neighbours = match u64::try_from(self.neighbours).ok()? {
            0 => 0,
            width => movies.checked_add(1)?.checked_mul(width.checked_mul(2)?)?.checked_add(1)?,
        };
        rows.checked_add(dense)?.checked_add(1)?.checked_add(neighbours)?.checked_add(user_vectors)
    }
}
