//! The model crate's error type; callers map it to their own (SQL errors in the extension, CLI errors in the trainer).
use thiserror::Error;

/// Everything that can go wrong inside the model crate.
#[derive(Debug, Error)]
pub enum ModelError {
    /// libtorch raised an exception (bad shapes, out of memory, corrupt tensors, ...).
    #[error("libtorch error: {0}")]
    Torch(#[from] tch::TchError),
    /// A file the model needs is not there.
    #[error("missing file {}", .0.display())]
    MissingFile(std::path::PathBuf),
    /// A file is there but cannot be read (permissions, a directory, an I/O error).
    #[error("cannot read {}: {source}", .path.display())]
    Unreadable {
        /// The file.
        path: std::path::PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },
    /// The sentence-embedding model failed to load or run.
    #[error("title embedder: {0}")]
    Embedder(String),
    /// A memory-mapped safetensors file is malformed or cannot be written.
    #[error("mapped file: {0}")]
    MappedFile(String),
    /// A model artefact is corrupt, truncated, of another format version or does not match its network.
    #[error("invalid model artefact: {0}")]
    InvalidArtefact(String),
    /// A network configuration that does not describe a buildable network.
    #[error("invalid model configuration: {0}")]
    InvalidConfig(String),
    /// Training cannot go on: inputs that do not fit the parameters (gradients, tables), or nothing to train.
    #[error("training: {0}")]
    Training(String),
    /// A setting or an input is outside what the model accepts.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}
