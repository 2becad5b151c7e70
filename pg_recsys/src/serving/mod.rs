//! Serving in a backend: its one serving state (`state`: the active model, folded users, title embeddings, and when
//! each is current), re-checked whenever the running statement may see other data (`freshness`); a model version as
//! served (`model`), the catalogue it scores (`catalogue`: read, encode, version), the catalogue's stored snapshot
//! (`snapshot`), fold-in of new ratings (`fold_in`), the files that share a model's and a catalogue's tables between
//! backends (`shared_tables`), the order of lists (`lists`) and title embeddings (`titles`). The SQL functions in
//! `api/` and the batch refresh read models through `state`.
/// Stored artefacts of model versions.
pub mod artefact;
/// The catalogue a model scores.
pub mod catalogue;
/// Which vector scores a user: the trained row or one refitted to new ratings.
pub mod fold_in;
/// Whether kept serving state may be stale: the key of what the running statement sees.
pub mod freshness;
/// The order of recommendation lists.
pub mod lists;
/// A model version as a backend serves it.
pub mod model;
/// Model and catalogue tables shared by every backend through mapped files.
pub mod shared_tables;
/// Stored encoded catalogues.
pub mod snapshot;
/// The backend's one serving state.
pub mod state;
/// Title embeddings.
pub mod titles;
