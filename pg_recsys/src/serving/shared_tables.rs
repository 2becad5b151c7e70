//! Where a database's model and catalogue tables are shared between backends (`recsys_model::scoring::shared`):
//! files `model-<database>-<version>` and `catalogue-<database>-<version>-<catalogue version>` under
//! `$PGDATA/pg_recsys`, the removal of those no longer served (or of dropped databases), and the fallback to private
//! tables when they fail.
use super::catalogue::EncodedCatalogue;
use super::titles::shared_copies_dir;
use crate::error::RecsysError;
use pgrx::prelude::*;
use recsys_model::scoring::{share_variables, CatalogueScorer, SharedFile};
use recsys_model::{HybridRecommender, ModelError};
use std::path::PathBuf;
use tch::{nn, Tensor};

fn database() -> u32 {
    // SAFETY: MyDatabaseId is set once a backend is connected to its database, before any SQL function runs.
    unsafe { pg_sys::MyDatabaseId }.to_u32()
}

fn model_file(version: i64) -> PathBuf {
    shared_copies_dir().join(format!("model-{}-{version}.safetensors", database()))
}

fn catalogue_file(version: i64, catalogue_version: i64) -> PathBuf {
    shared_copies_dir().join(format!("catalogue-{}-{version}-{catalogue_version}.safetensors", database()))
}

/// Points the network built from `weights` (model `version`) at the shared model file, when `recsys.shared_tables`
/// is on; `None` when it is off or the file cannot be written (a WARNING says why; the network keeps its own copy).
pub fn share_network(store: &nn::VarStore, weights: &[u8], version: i64) -> Option<SharedFile> {
    if !crate::guc::shared_tables() {
        return None;
    }
    let file = model_file(version);
    let shared = share_variables(store, weights, &file).map_err(|e| unavailable(&file, e)).ok()?;
    remove_others(&format!("model-{}-", database()), &file);
    Some(shared)
}

/// The scorer over `catalogue` for model `version` with its catalogue tables in the shared catalogue file of
/// `catalogue_version`, and `catalogue.content` replaced by the file's copy; `None` when the file cannot be used
/// (a WARNING says why), or for a catalogue read inside the transaction that changed it (uncommitted, so never
/// shared).
pub fn shared_scorer(
    network: &HybridRecommender,
    weights: &SharedFile,
    catalogue: &mut EncodedCatalogue,
    version: i64,
    catalogue_version: i64,
    uncommitted: bool,
) -> Result<Option<CatalogueScorer>, RecsysError> {
    if uncommitted {
        return Ok(None);
    }
    let file = catalogue_file(version, catalogue_version);
    let rows = Tensor::f_from_slice(&catalogue.movie_rows)?;
    match network.shared_catalogue_scorer(weights, &rows, &catalogue.content, &file) {
        Ok((scorer, content)) => {
            catalogue.content = content;
            remove_others(&format!("catalogue-{}-", database()), &file);
            Ok(Some(scorer))
        }
        Err(e) => {
            unavailable(&file, e);
            Ok(None)
        }
    }
}

fn unavailable(file: &std::path::Path, error: ModelError) {
    pgrx::warning!("pg_recsys: cannot share tables through {} ({error}); this backend keeps a private copy", file.display());
}

/// Removes this database's files named `prefix`… other than `keep`, and the files of databases that no longer exist:
/// backends still mapping one keep their mapping; one that needs it again writes it afresh.
fn remove_others(prefix: &str, keep: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(shared_copies_dir()) else { return };
    let databases: Vec<u32> = match Spi::connect(|client| {
        client.select("SELECT pg_catalog.array_agg(oid::pg_catalog.int8) FROM pg_catalog.pg_database", Some(1), &[])?.first().get_one::<Vec<i64>>()
    }) {
        Ok(oids) => oids.unwrap_or_default().into_iter().map(|oid| oid as u32).collect(),
        Err(error) => {
            pgrx::warning!("pg_recsys: cannot list databases ({error}); files of dropped databases stay until the next activation");
            Vec::new()
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("model-").or_else(|| name.strip_prefix("catalogue-")) else { continue };
        let database: Option<u32> = rest.split('-').next().and_then(|oid| oid.parse().ok());
        let dropped = database.is_some_and(|oid| !databases.is_empty() && !databases.contains(&oid));
        if name.ends_with(".safetensors") && ((name.starts_with(prefix) && entry.path() != keep) || dropped) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}
