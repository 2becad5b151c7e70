//! pg_recsys's shared model crate: everything about the network and libtorch that the trainer and the
//! extension both need. No pgrx, no Postgres client: callers hand it data and files.

pub mod artefact;
pub mod autoencoder;
pub mod config;
pub mod embedder;
pub mod error;
pub mod features;
pub mod float_mode;
pub mod mask_random;
pub mod network;
pub mod optimiser;
pub mod ranking;
pub mod runtime;
pub mod scoring;
pub mod training;

pub use artefact::{Artefact, DataFingerprint, Manifest};
pub use autoencoder::{AutoencoderOptions, AutoencoderReport, RatingRows};
pub use config::{Cardinalities, ModelConfig};
pub use error::ModelError;
pub use features::{MovieContent, Standardiser, Vocabulary, CATALOGUE_SQL};
pub use mask_random::MaskRandom;
pub use network::{ContentInputs, HybridRecommender};
pub use optimiser::LazyAdam;
pub use training::{Noise, Parameter, TrainingBatch};
