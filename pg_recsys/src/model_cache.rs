//! The per-backend model cache: the active model version's network, vocabularies and the encoded content of every
//! movie, loaded from `recsys.models` on first use and reloaded when another version becomes active or the
//! catalogue changes (its version in `recsys.catalogue_state` is bumped by triggers on every change of movies,
//! genres or people). Both are read once per statement (two index lookups), so an activation or a catalogue edit
//! reaches every backend on its next statement without reconnecting. Nothing here writes to the database.
use crate::error::RecsysError;
use crate::snapshot::EncodedCatalogue;
use pgrx::prelude::*;
use recsys_model::embedder::TitleEmbedder;
use recsys_model::scoring::Precision;
use recsys_model::{HybridRecommender, MovieContent, Vocabulary};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use tch::{nn, Device, Kind, Tensor};

pub struct LoadedModel {
    pub version: i64,
    _store: nn::VarStore,
    pub network: HybridRecommender,
    pub vocabulary: Vocabulary,
    /// `recsys.catalogue_state.version` when the catalogue was read: any other value means it changed since.
    pub catalogue_version: i64,
    /// The catalogue when the model was loaded: ids and titles by position.
    pub movie_ids: Vec<i32>,
    pub titles: Vec<String>,
    /// Catalogue position of each movie id.
    pub movie_index: HashMap<i32, usize>,
    /// Embedding row of each catalogue movie (0 = scored from content alone), [M].
    pub movie_rows: Tensor,
    /// Encoded content vector of each catalogue movie, [M, content_dim].
    pub content: Tensor,
    /// Plain-Rust scorer over the catalogue, for single pairs.
    pub scorer: recsys_model::scoring::CatalogueScorer,
}

struct CacheState {
    model: Option<Rc<LoadedModel>>,
    checked_at_statement: Option<pg_sys::TimestampTz>,
}

thread_local! {
    static CACHE: RefCell<CacheState> = const { RefCell::new(CacheState { model: None, checked_at_statement: None }) };
}

/// The model cached in this backend, if any (for `recsys_version_info`); does not query the database.
pub fn cached_version() -> Option<i64> {
    CACHE.with(|cache| cache.borrow().model.as_ref().map(|m| m.version))
}

/// The active model, loading it when the active version changed since this backend last looked.
pub fn active() -> Result<Rc<LoadedModel>, RecsysError> {
    // SAFETY: reads the start time of the current statement, set by Postgres for every statement.
    let statement = unsafe { pg_sys::GetCurrentStatementStartTimestamp() };
    let cached = CACHE.with(|cache| {
        let cache = cache.borrow();
        match (&cache.model, cache.checked_at_statement) {
            (Some(model), Some(at)) if at == statement => Some(model.clone()),
            _ => None,
        }
    });
    if let Some(model) = cached {
        return Ok(model);
    }
    crate::snapshot::require_current_schema()?;
    let (version, catalogue_version) = Spi::connect(|client| -> Result<(Option<i64>, i64), pgrx::spi::Error> {
        let table = client.select(
            "SELECT (SELECT version FROM recsys.models WHERE status OPERATOR(pg_catalog.=) 'active'), (SELECT version FROM recsys.catalogue_state)",
            Some(1),
            &[],
        )?;
        let row = table.first();
        Ok((row.get::<i64>(1)?, row.get::<i64>(2)?.unwrap_or(0)))
    })
    .map_err(RecsysError::spi("reading the active model and catalogue versions"))?;
    let version = version.ok_or(RecsysError::NoActiveModel)?;
    let current =
        CACHE.with(|cache| cache.borrow().model.clone()).filter(|model| model.version == version && model.catalogue_version == catalogue_version);
    let model = match current {
        Some(model) => model,
        None => Rc::new(load(version, catalogue_version)?),
    };
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        cache.model = Some(model.clone());
        cache.checked_at_statement = Some(statement);
    });
    Ok(model)
}

impl LoadedModel {
    /// A raw score as the rating a SQL function returns: clipped to the model's scale; a non-finite score (features
    /// the model cannot encode) is an error, never a NaN rating.
    pub fn rating(&self, raw: f32) -> Result<f32, RecsysError> {
        if raw.is_finite() {
            Ok(self.scorer.rating(raw))
        } else {
            Err(RecsysError::internal(format!("the model produced the score {raw}; the inputs are outside what it can encode")))
        }
    }
}

/// Loads `version` with the catalogue as of `catalogue_version`: from the version's snapshot when it was encoded at
/// that catalogue version, else re-encoded from the current catalogue (every movie read once, titles not yet
/// embedded embedded in memory).
fn load(version: i64, catalogue_version: i64) -> Result<LoadedModel, RecsysError> {
    let _float_mode = crate::torch_runtime::prepare()?;
    let started = std::time::Instant::now();
    let artefact = crate::registry::read_artefact(version)?;
    let read_ms = started.elapsed().as_secs_f64() * 1e3;
    let (store, network) = artefact.build().map_err(|e| RecsysError::corrupt_model(version, e))?;
    let build_ms = started.elapsed().as_secs_f64() * 1e3;
    let vocabulary = artefact.manifest.vocabulary;
    let content_dim = network.config().content_dim();
    let catalogue = match EncodedCatalogue::read_snapshot(version, content_dim, catalogue_version)? {
        Some(snapshot) => snapshot,
        None => EncodedCatalogue::compute(&network, &vocabulary)?,
    };
    let catalogue_ms = started.elapsed().as_secs_f64() * 1e3;
    let EncodedCatalogue { movie_ids, titles, movie_rows, content } = catalogue;
    let movie_rows = Tensor::f_from_slice(&movie_rows)?;
    let movie_index = movie_ids.iter().enumerate().map(|(position, id)| (*id, position)).collect();
    let scorer = network.catalogue_scorer(&movie_rows, &content)?;
    let total_ms = started.elapsed().as_secs_f64() * 1e3;
    pgrx::debug1!(
        "pg_recsys: model version {version} loaded in {total_ms:.1} ms (artefact read {read_ms:.1}, network built {:.1}, catalogue {:.1}, scorer {:.1})",
        build_ms - read_ms,
        catalogue_ms - build_ms,
        total_ms - catalogue_ms
    );
    Ok(LoadedModel { version, _store: store, network, vocabulary, catalogue_version, movie_ids, titles, movie_index, movie_rows, content, scorer })
}

/// Reads every movie's content and title embedding (computing those not cached yet, in memory only).
pub fn read_catalogue() -> Result<(Vec<i32>, Vec<MovieContent>, Tensor), RecsysError> {
    type Row = (i32, MovieContent, Option<Vec<f32>>);
    let rows: Vec<Row> = Spi::connect(|client| -> Result<Vec<Row>, pgrx::spi::Error> {
        let mut rows = Vec::new();
        for row in client.select(recsys_contract::READ_CATALOGUE, None, &[recsys_model::embedder::EMBEDDER_ID.into()])? {
            let content = MovieContent {
                title: row.get::<String>(2)?.unwrap_or_default(),
                year: row.get::<f64>(3)?,
                runtime_minutes: row.get::<f64>(4)?,
                genres: row.get::<Vec<String>>(5)?.unwrap_or_default(),
                directors: row.get::<Vec<i32>>(6)?.unwrap_or_default(),
                actors: row.get::<Vec<i32>>(7)?.unwrap_or_default(),
            };
            rows.push((row.get::<i32>(1)?.unwrap_or_default(), content, row.get::<Vec<f32>>(8)?));
        }
        Ok(rows)
    })
    .map_err(RecsysError::spi("reading the movie catalogue"))?;
    let missing: Vec<&str> = rows.iter().filter(|r| r.2.is_none()).map(|r| r.1.title.as_str()).collect();
    let computed = if missing.is_empty() { None } else { Some(embed(&missing, crate::guc::precision())?) };
    let mut next_computed = 0;
    let mut flat = Vec::with_capacity(rows.len() * recsys_model::embedder::TITLE_DIM as usize);
    for (_, _, cached) in &rows {
        match cached {
            Some(vector) => flat.extend_from_slice(vector),
            None => {
                let computed = computed.as_ref().ok_or_else(|| RecsysError::internal("a title without a cached embedding was not embedded"))?;
                let vector: Vec<f32> = Vec::try_from(computed.f_get(next_computed)?).map_err(recsys_model::ModelError::from)?;
                flat.extend(vector);
                next_computed += 1;
            }
        }
    }
    let titles = Tensor::f_from_slice(&flat)?.f_reshape([rows.len() as i64, recsys_model::embedder::TITLE_DIM])?;
    let (ids, contents) = rows.into_iter().map(|(id, content, _)| (id, content)).unzip();
    Ok((ids, contents, titles))
}

thread_local! {
    static EMBEDDER: RefCell<Option<(Precision, Rc<TitleEmbedder>)>> = const { RefCell::new(None) };
}

/// MiniLM embeddings of titles in `precision`, loading the model into this backend on first use (and again when
/// the precision changes).
pub fn embed(titles: &[&str], precision: Precision) -> Result<Tensor, RecsysError> {
    let cached = EMBEDDER.with(|e| e.borrow().as_ref().filter(|(p, _)| *p == precision).map(|(_, embedder)| embedder.clone()));
    let embedder = match cached {
        Some(embedder) => embedder,
        None => {
            EMBEDDER.with(|e| *e.borrow_mut() = None);
            let loaded = Rc::new(TitleEmbedder::load_in(&crate::guc::minilm_dir(), precision)?);
            EMBEDDER.with(|e| *e.borrow_mut() = Some((precision, loaded.clone())));
            loaded
        }
    };
    Ok(embedder.embed(titles)?)
}

/// Encoded content vectors of `contents`, [N, content_dim].
pub fn encode(network: &HybridRecommender, vocabulary: &Vocabulary, contents: &[MovieContent], titles: &Tensor) -> Result<Tensor, RecsysError> {
    let config = network.config();
    let refs: Vec<&MovieContent> = contents.iter().collect();
    let inputs = vocabulary.encode(&refs, titles, config.max_directors, config.max_actors)?;
    Ok(tch::no_grad(|| network.encode_content(&inputs))?.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?)
}
