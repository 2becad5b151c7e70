//! Training (the `train` feature; the extension builds without it): the random draws of a batch (dropout masks, hidden
//! movie ids and people) made up front by the caller, so a seeded run gives the same model however a batch is split
//! across gradient workers; the libtorch training forward and loss; the trainable tensors and their gradients. The
//! optimiser, the mask generator and the autoencoder's fitting live beside it.
/// Fitting the item autoencoder and its blend.
pub mod autoencoder;
/// Choosing the order's neighbourhood input and weights on validation.
pub mod blend;
/// The seeded generator of dropout and keep masks.
pub mod mask_random;
/// LazyAdam.
pub mod optimiser;
/// Fitting the preference part.
pub mod preference;
/// Choosing the representations similar movies and users are served from.
pub mod similarity_choice;
/// What the choices made on the validation share have in common.
pub mod validation;

use crate::network::{ContentInputs, ContentMasks, HybridRecommender};
use crate::scoring::Precision;
use mask_random::MaskRandom;
use tch::{Kind, TchError, Tensor};

/// The random draws of one training batch (or of a slice of it).
pub struct Noise {
    /// [B] int64: 0 where the movie id is hidden (movie-id dropout), else 1.
    pub(crate) movie_keep: Tensor,
    /// Scaled dropout masks ([B, width], values 0 or 1/(1-p)) of the content encoder's and the head's layers.
    pub(crate) content: Vec<Tensor>,
    pub(crate) head: Vec<Tensor>,
    /// [B, max_directors] and [B, max_actors] int64: 0 where the person is hidden (person dropout), else 1.
    pub(crate) directors_keep: Tensor,
    pub(crate) actors_keep: Tensor,
}

impl Noise {
    /// Nothing hidden, no dropout: the training forward then computes the evaluation forward (for tests).
    #[cfg(test)]
    pub(crate) fn none(rows: i64, config: &crate::ModelConfig) -> Self {
        let keep = |shape: &[i64]| Tensor::ones(shape, (Kind::Int64, tch::Device::Cpu));
        Self {
            movie_keep: keep(&[rows]),
            content: Vec::new(),
            head: Vec::new(),
            directors_keep: keep(&[rows, config.max_directors]),
            actors_keep: keep(&[rows, config.max_actors]),
        }
    }

    /// Rows `start..start + rows` of every draw (the slice of the batch one gradient worker handles).
    pub fn narrow(&self, start: i64, rows: i64) -> Result<Self, TchError> {
        let narrow = |masks: &[Tensor]| masks.iter().map(|m| m.f_narrow(0, start, rows)).collect::<Result<Vec<_>, _>>();
        Ok(Self {
            movie_keep: self.movie_keep.f_narrow(0, start, rows)?,
            content: narrow(&self.content)?,
            head: narrow(&self.head)?,
            directors_keep: self.directors_keep.f_narrow(0, start, rows)?,
            actors_keep: self.actors_keep.f_narrow(0, start, rows)?,
        })
    }
}

/// A trainable tensor, whether its gradient comes as sparse rows (embedding tables), and whether its rows get the
/// per-rating L2 penalty (the user and movie embeddings and biases).
pub struct Parameter {
    /// The variable's name (for reports).
    pub name: &'static str,
    /// The variable (a shallow handle on the network's tensor).
    pub tensor: Tensor,
    /// Its gradient comes as sparse rows.
    pub sparse: bool,
    /// Its rows get the per-rating L2 penalty.
    pub regularised: bool,
}

/// One batch of training pairs: embedding rows, raw content features per pair, ratings.
pub struct TrainingBatch {
    /// [B] int64 user rows.
    pub users: Tensor,
    /// [B] int64 movie rows (0: scored from content).
    pub movies: Tensor,
    /// Raw content features, one row per pair.
    pub content: ContentInputs,
    /// [B] float ratings.
    pub targets: Tensor,
}

fn dropout_masks(random: &mut MaskRandom, rows: i64, widths: &[i64], rate: f64) -> Result<Vec<Tensor>, TchError> {
    if rate <= 0.0 {
        return Ok(Vec::new());
    }
    widths.iter().map(|width| random.dropout_mask(&[rows, *width], rate)).collect()
}

impl HybridRecommender {
    /// Draws the dropout masks, hidden movie ids and hidden people for `rows` pairs from `random`.
    pub fn draw_noise(&self, rows: i64, random: &mut MaskRandom) -> Result<Noise, TchError> {
        let person_keep = 1.0 - self.config.person_dropout;
        Ok(Noise {
            movie_keep: random.keep_mask(&[rows], 1.0 - self.config.movie_id_dropout)?,
            directors_keep: random.keep_mask(&[rows, self.config.max_directors], person_keep)?,
            actors_keep: random.keep_mask(&[rows, self.config.max_actors], person_keep)?,
            content: dropout_masks(random, rows, &self.content_encoder.widths(), self.config.dropout)?,
            head: dropout_masks(random, rows, &self.head.widths(), self.config.dropout)?,
        })
    }

    /// Σ squared errors / `normaliser`. With `normaliser` = the whole batch's size, the losses of a batch's slices
    /// add up to the batch's mean squared error. (The L2 penalty on embedding rows is applied by `LazyAdam`.)
    /// `precision`: of the head's and the content encoder's hidden layers (bfloat16 takes a quarter less time per
    /// step at 2048 rows on AVX512-BF16 cores; the weights, embeddings and the optimiser stay float32).
    pub fn training_loss(&self, batch: &TrainingBatch, noise: &Noise, normaliser: f64, precision: Precision) -> Result<Tensor, TchError> {
        let masks = ContentMasks {
            layers: &noise.content,
            directors_keep: Some(&noise.directors_keep),
            actors_keep: Some(&noise.actors_keep),
            sparse: true,
            precision,
        };
        let content = self.encode_content_masked(&batch.content, &masks)?;
        let predictions = self.training_forward(&batch.users, &batch.movies, &content, noise, precision)?;
        predictions.f_sub(&batch.targets)?.f_square()?.f_sum(Kind::Float)?.f_div_scalar(normaliser)
    }

    /// The hybrid's raw predictions in libtorch, differentiable, with the drawn dropout masks applied, the drawn movie
    /// ids hidden and sparse embedding gradients (the autoencoder is fitted afterwards and not part of it). With
    /// nothing drawn it computes what `scoring::raw_scores` does (a unit test pins that).
    pub(crate) fn training_forward(
        &self,
        users: &Tensor,
        movies: &Tensor,
        content: &Tensor,
        noise: &Noise,
        precision: Precision,
    ) -> Result<Tensor, TchError> {
        let movies = movies.f_mul(&noise.movie_keep)?;
        let user_vectors = Tensor::f_embedding(&self.user_embedding, users, 0, false, true)?;
        let movie_rows = Tensor::f_embedding(&self.movie_embedding, &movies, 0, false, true)?;
        let movie_vectors = self.movie_vectors(&movie_rows, content)?;
        let head_masks = (!noise.head.is_empty()).then_some(noise.head.as_slice());
        let hidden = self.head.forward(&Tensor::f_cat(&[&user_vectors, &movie_vectors, content], 1)?, head_masks, precision)?;
        let mut predictions = self.output.forward(&hidden)?.f_squeeze_dim(1)?;
        if self.config.dot_product {
            predictions = predictions.f_add(&user_vectors.f_mul(&movie_vectors)?.f_sum_dim_intlist([1i64].as_slice(), false, Kind::Float)?)?;
        }
        if self.config.use_biases {
            let user_bias = Tensor::f_embedding(&self.user_bias, users, 0, false, true)?.f_squeeze_dim(1)?;
            let movie_bias = Tensor::f_embedding(&self.movie_bias, &movies, 0, false, true)?.f_squeeze_dim(1)?;
            let content_bias = self.content_bias.forward(content)?.f_squeeze_dim(1)?;
            predictions = predictions.f_add(&self.global_bias)?.f_add(&user_bias)?.f_add(&movie_bias)?.f_add(&content_bias)?;
        }
        Ok(predictions)
    }

    /// Every trainable tensor (bias terms only when the configuration uses them).
    pub fn parameters(&self) -> Vec<Parameter> {
        let sparse = |name, tensor: &Tensor| Parameter { name, tensor: tensor.shallow_clone(), sparse: true, regularised: false };
        let rows = |name, tensor: &Tensor| Parameter { name, tensor: tensor.shallow_clone(), sparse: true, regularised: true };
        let dense = |name, tensor: &Tensor| Parameter { name, tensor: tensor.shallow_clone(), sparse: false, regularised: false };
        let mut parameters = vec![
            rows("user_embedding", &self.user_embedding),
            rows("movie_embedding", &self.movie_embedding),
            sparse("director_embedding", &self.director_embedding),
            sparse("actor_embedding", &self.actor_embedding),
        ];
        if let Some(projection) = &self.title_projection {
            parameters.push(dense("title_projection", projection));
        }
        let projection = self.config.content_projection.then_some(&self.content_to_movie);
        let layers = self.content_encoder.layers.iter().chain(projection).chain(&self.head.layers).chain([&self.output]);
        for layer in layers {
            parameters.extend([dense("weight", &layer.weight), dense("bias", &layer.bias)]);
        }
        if self.config.use_biases {
            parameters.extend([
                rows("user_bias", &self.user_bias),
                rows("movie_bias", &self.movie_bias),
                dense("global_bias", &self.global_bias),
                dense("content_bias.weight", &self.content_bias.weight),
                dense("content_bias.bias", &self.content_bias.bias),
            ]);
        }
        parameters
    }

    /// Gradients of `loss` with respect to `parameters` (in order), returned instead of accumulated, so that
    /// several threads can differentiate slices of one batch at once. Embedding tables get sparse gradients.
    pub fn gradients(loss: &Tensor, parameters: &[Parameter]) -> Result<Vec<Tensor>, TchError> {
        let inputs: Vec<&Tensor> = parameters.iter().map(|p| &p.tensor).collect();
        Tensor::f_run_backward(&[loss], &inputs, false, false)
    }

    /// A second handle on the same tensors (for a gradient worker thread: tensors are `Send`, not `Sync`).
    pub fn shallow_clone(&self) -> Self {
        Self {
            config: self.config.clone(),
            user_embedding: self.user_embedding.shallow_clone(),
            movie_embedding: self.movie_embedding.shallow_clone(),
            director_embedding: self.director_embedding.shallow_clone(),
            actor_embedding: self.actor_embedding.shallow_clone(),
            title_projection: self.title_projection.as_ref().map(Tensor::shallow_clone),
            content_encoder: self.content_encoder.shallow_clone(),
            content_to_movie: self.content_to_movie.shallow_clone(),
            head: self.head.shallow_clone(),
            output: self.output.shallow_clone(),
            global_bias: self.global_bias.shallow_clone(),
            user_bias: self.user_bias.shallow_clone(),
            movie_bias: self.movie_bias.shallow_clone(),
            content_bias: self.content_bias.shallow_clone(),
            autoencoder: self.autoencoder.as_ref().map(|a| a.shallow_clone()),
            preference: self.preference.as_ref().map(|p| p.shallow_clone()),
        }
    }
}
