//! Title embeddings in a backend: the one MiniLM model (loaded on first use, as views of a weights file all backends
//! map) and the one cache of embedded titles. A title is looked up in this cache, then in recsys.title_embeddings
//! (where the trainer stores every catalogue title), and only then embedded. Nothing here writes to the database.
use crate::error::RecsysError;
use pgrx::prelude::*;
use recsys_model::embedder::{TitleEmbedder, EMBEDDER_ID, TITLE_DIM};
use recsys_model::scoring::Precision;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use tch::Tensor;

/// Titles embedded in this backend, so a repeated title is not embedded again (bounded; cleared when full).
const TITLE_CACHE_LIMIT: usize = 10_000;

thread_local! {
    static TITLE_CACHE: RefCell<HashMap<(String, Precision), Tensor>> = RefCell::new(HashMap::new());
}

thread_local! {
    static EMBEDDER: RefCell<Option<(Precision, Rc<TitleEmbedder>)>> = const { RefCell::new(None) };
}

/// MiniLM embeddings of titles in `precision`, loading the model into this backend on first use (and again when
/// the precision changes).
pub fn embed(titles: &[&str], precision: Precision) -> Result<Tensor, RecsysError> {
    let cached = EMBEDDER.with(|e| {
        e.borrow().as_ref().filter(|(p, embedder)| *p == precision && !embedder.weights_changed_on_disk()).map(|(_, embedder)| embedder.clone())
    });
    let embedder = match cached {
        Some(embedder) => embedder,
        None => {
            EMBEDDER.with(|e| *e.borrow_mut() = None);
            let loaded = Rc::new(TitleEmbedder::load_shared(&crate::guc::minilm_dir(), precision, &shared_copies_dir())?);
            // The first backend converts the weights into the shared copy: give those buffers back to the kernel.
            // SAFETY: malloc_trim only releases free memory at the top of glibc's heaps and arenas.
            unsafe { libc::malloc_trim(0) };
            EMBEDDER.with(|e| *e.borrow_mut() = Some((precision, loaded.clone())));
            loaded
        }
    };
    Ok(embedder.embed(titles)?)
}

/// Where the bfloat16 copy of MiniLM's weights is kept for every backend of this server to map:
/// `$PGDATA/pg_recsys` (as pg_prewarm keeps its block list in the data directory).
pub fn shared_copies_dir() -> std::path::PathBuf {
    // SAFETY: DataDir is set by the postmaster before any backend runs and never changes afterwards.
    let data_dir = unsafe { std::ffi::CStr::from_ptr(pg_sys::DataDir) };
    std::path::Path::new(&*data_dir.to_string_lossy()).join("pg_recsys")
}

/// The title's embedding: from this backend's cache, the shared recsys.title_embeddings table, or MiniLM.
pub fn title_embedding(title: &str) -> Result<Tensor, RecsysError> {
    let key = (title.to_string(), crate::guc::precision());
    if let Some(hit) = TITLE_CACHE.with(|cache| cache.borrow().get(&key).map(Tensor::shallow_clone)) {
        return Ok(hit);
    }
    let stored = Spi::connect(|client| -> Result<Option<Vec<f32>>, pgrx::spi::Error> {
        let table = client.select(recsys_contract::TITLE_EMBEDDING, Some(1), &[EMBEDDER_ID.into(), title.into()])?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get::<Vec<f32>>(1)
    })
    .map_err(RecsysError::spi("reading cached title embeddings"))?;
    let embedding = match stored {
        Some(vector) if vector.len() == TITLE_DIM as usize => Tensor::f_from_slice(&vector)?.f_reshape([1, TITLE_DIM])?,
        _ => embed(&[title], key.1)?,
    };
    TITLE_CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() >= TITLE_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, embedding.shallow_clone());
    });
    Ok(embedding)
}
