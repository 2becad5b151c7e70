//! Title embeddings in a backend: the MiniLM model (loaded on first use, as views of a weights file all backends
//! map), the titles it embedded, and the titles the trainer stored in recsys.title_embeddings. The state holding
//! them is `state`'s; nothing here writes to the database.
use crate::error::RecsysError;
use pgrx::prelude::*;
use recsys_model::embedder::{TitleEmbedder, EMBEDDER_ID, TITLE_DIM};
use recsys_model::scoring::Precision;
use std::collections::HashMap;
use std::rc::Rc;
use tch::Tensor;

/// Titles embedded in this backend, so a repeated title is not embedded again (bounded; cleared when full).
const TITLE_CACHE_LIMIT: usize = 10_000;

/// The backend's MiniLM model and the titles embedded with it. Titles are content, not data: an entry is never
/// stale; the model is loaded again when the precision changes or its weights file changed on disk.
#[derive(Default)]
pub struct TitleEmbeddings {
    embedder: Option<(Precision, Rc<TitleEmbedder>)>,
    embedded: HashMap<(String, Precision), Tensor>,
}

impl TitleEmbeddings {
    /// MiniLM embeddings of `titles` in `precision` ([titles, 384]), loading the model on first use.
    pub fn embed(&mut self, titles: &[&str], precision: Precision) -> Result<Tensor, RecsysError> {
        let current = self.embedder.as_ref().filter(|(p, embedder)| *p == precision && !embedder.weights_changed_on_disk());
        let embedder = match current {
            Some((_, embedder)) => embedder.clone(),
            None => {
                self.embedder = None;
                let loaded = Rc::new(TitleEmbedder::load_shared(&crate::guc::minilm_dir(), precision, &shared_copies_dir())?);
                // The first backend converts the weights into the shared copy: give those buffers back to the kernel.
                // SAFETY: malloc_trim only releases free memory at the top of glibc's heaps and arenas.
                unsafe { libc::malloc_trim(0) };
                self.embedder = Some((precision, loaded.clone()));
                loaded
            }
        };
        Ok(embedder.embed(titles)?)
    }

    /// The embedding of a title this backend already looked up.
    pub fn remembered(&self, title: &str, precision: Precision) -> Option<Tensor> {
        self.embedded.get(&(title.to_string(), precision)).map(Tensor::shallow_clone)
    }

    /// Keeps a title's embedding for the next lookup.
    pub fn remember(&mut self, title: &str, precision: Precision, embedding: &Tensor) {
        if self.embedded.len() >= TITLE_CACHE_LIMIT {
            self.embedded.clear();
        }
        self.embedded.insert((title.to_string(), precision), embedding.shallow_clone());
    }
}

/// Where the bfloat16 copy of MiniLM's weights is kept for every backend of this server to map:
/// `$PGDATA/pg_recsys` (as pg_prewarm keeps its block list in the data directory).
pub fn shared_copies_dir() -> std::path::PathBuf {
    // SAFETY: DataDir is set by the postmaster before any backend runs and never changes afterwards.
    let data_dir = unsafe { std::ffi::CStr::from_ptr(pg_sys::DataDir) };
    std::path::Path::new(&*data_dir.to_string_lossy()).join("pg_recsys")
}

/// The title's embedding as the trainer stored it in recsys.title_embeddings ([1, 384]), if it did.
pub fn stored_embedding(title: &str) -> Result<Option<Tensor>, RecsysError> {
    let stored = Spi::connect(|client| -> Result<Option<Vec<f32>>, pgrx::spi::Error> {
        let table = client.select(recsys_contract::TITLE_EMBEDDING, Some(1), &[EMBEDDER_ID.into(), title.into()])?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get::<Vec<f32>>(1)
    })
    .map_err(RecsysError::spi("reading cached title embeddings"))?;
    match stored {
        Some(vector) if vector.len() == TITLE_DIM as usize => Ok(Some(Tensor::f_from_slice(&vector)?.f_reshape([1, TITLE_DIM])?)),
        _ => Ok(None),
    }
}
