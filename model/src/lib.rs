//! pg_recsys's shared model crate: everything about the network and libtorch that the trainer and the
//! extension both need. No pgrx, no Postgres client: callers hand it data and files.
#![warn(missing_docs)]

/// A trained model as bytes: manifest and safetensors weights.
pub mod artefact;
/// The byte layout of stored float32 tensors.
pub mod codec;
/// The network's architecture and its presets.
pub mod config;
/// MiniLM title embeddings.
pub mod embedder;
/// The crate's error type.
pub mod error;
/// A score split into parts that add up to it.
pub mod explain;
/// Vocabularies and feature encoding.
pub mod features;
/// Flush-to-zero for subnormal floats.
pub mod float_mode;
/// Safetensors files mapped into memory and shared between processes.
mod mapped;
/// The hybrid network.
pub mod network;
/// The preference part: which movies a user would pick.
pub mod preference;
/// Top-k over a catalogue.
pub mod ranking;
/// libtorch's runtime: version, threads.
pub mod runtime;
/// Serving-time scoring: the one scoring core and the catalogue scorer.
pub mod scoring;
/// Training: noise, loss, optimiser, autoencoder fitting (feature `train`).
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
    preference::{PreferenceOptions, PreferenceReport},
    Noise, Parameter, TrainingBatch,
};
