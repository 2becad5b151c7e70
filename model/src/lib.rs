//! pg_recsys's shared model crate: everything about the network and libtorch that the trainer and the
//! extension both need. No pgrx, no Postgres client: callers hand it data and files.

pub mod error;
pub mod runtime;

pub use error::ModelError;
