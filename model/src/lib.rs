//! pg_recsys's shared model crate: everything about the network and libtorch that the trainer and the
//! extension both need. No pgrx, no Postgres client: callers hand it data and files.

pub mod config;
pub mod embedder;
pub mod error;
pub mod network;
pub mod runtime;

pub use config::{Cardinalities, ModelConfig};
pub use error::ModelError;
pub use network::{ContentInputs, HybridRecommender};
