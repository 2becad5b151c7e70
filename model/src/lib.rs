//! pg_recsys's shared model crate: everything about the network and libtorch that the trainer and the
//! extension both need. No pgrx, no Postgres client: callers hand it data and files.

pub mod artefact;
pub mod codec;
pub mod config;
pub mod embedder;
pub mod error;
pub mod features;
pub mod float_mode;
pub mod network;
pub mod ranking;
pub mod runtime;
pub mod scoring;
#[cfg(feature = "train")]
pub mod train;

pub use artefact::{Artefact, DataFingerprint, Manifest};
pub use config::{Cardinalities, ModelConfig};
pub use error::ModelError;
pub use features::{MovieContent, Standardiser, Vocabulary};
pub use network::{ContentInputs, HybridRecommender};
#[cfg(feature = "train")]
pub use train::{
    autoencoder::{AutoencoderOptions, AutoencoderReport, RatingRows},
    mask_random::MaskRandom,
    optimiser::LazyAdam,
    Noise, Parameter, TrainingBatch,
};
