//! Serving in a backend: the cache of the active model (`cache`), re-checked whenever the running statement may see
//! other data (`freshness`), the catalogue it scores (`catalogue`: read, encode,
//! version), the catalogue's stored snapshot (`snapshot`), users' folded-in vectors (`fold_in`), the files that share
//! a model's and a catalogue's tables between backends (`shared_tables`), the order of lists (`lists`) and the one
//! title-embedding path (`titles`). The SQL
//! functions in `api/` and the batch refresh read models through it.
/// Stored artefacts of model versions.
pub mod artefact;
/// The active model of this backend.
pub mod cache;
/// The catalogue a model scores.
pub mod catalogue;
/// Which vector scores a user: the trained row or one refitted to new ratings.
pub mod fold_in;
/// Whether cached serving state may be stale: the key of what the running statement sees.
pub mod freshness;
/// The order of recommendation lists.
pub mod lists;
/// Model and catalogue tables shared by every backend through mapped files.
pub mod shared_tables;
/// Stored encoded catalogues.
pub mod snapshot;
/// Title embeddings.
pub mod titles;
