//! The catalogue a model scores: every movie's content read from the recsys schema (`recsys_contract::READ_CATALOGUE`,
//! the query the trainer runs too), encoded by the model's content encoder, and the catalogue version that triggers
//! bump on every change of movies, genres or people.
use super::titles::embed;
use crate::error::RecsysError;
use pgrx::prelude::*;
use recsys_model::embedder::{EMBEDDER_ID, TITLE_DIM};
use recsys_model::{HybridRecommender, MovieContent, Vocabulary};
use tch::{Device, Kind, Tensor};

/// A catalogue encoded for one model: movie ids, titles, embedding rows and content vectors by catalogue position.
pub struct EncodedCatalogue {
    /// Movie ids by catalogue position (ascending).
    pub movie_ids: Vec<i32>,
    /// Titles by catalogue position.
    pub titles: Vec<String>,
    /// Embedding row of each movie (0 = scored from content alone).
    pub movie_rows: Vec<i64>,
    /// [movies, content_dim].
    pub content: Tensor,
}

impl EncodedCatalogue {
    /// Reads and encodes every movie of the catalogue.
    pub fn compute(network: &HybridRecommender, vocabulary: &Vocabulary) -> Result<Self, RecsysError> {
        let (movie_ids, contents, titles) = read_catalogue()?;
        let content = encode(network, vocabulary, &contents, &titles)?;
        let movie_rows = movie_ids.iter().map(|m| vocabulary.movie_row(*m)).collect();
        Ok(Self { movie_ids, titles: contents.into_iter().map(|c| c.title).collect(), movie_rows, content })
    }
}

/// Reads every movie's content and title embedding (computing those not cached yet, in memory only).
pub fn read_catalogue() -> Result<(Vec<i32>, Vec<MovieContent>, Tensor), RecsysError> {
    type Row = (i32, MovieContent, Option<Vec<f32>>);
    let rows: Vec<Row> = Spi::connect(|client| -> Result<Vec<Row>, pgrx::spi::Error> {
        let mut rows = Vec::new();
        for row in client.select(recsys_contract::READ_CATALOGUE, None, &[EMBEDDER_ID.into()])? {
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
    let mut flat = Vec::with_capacity(rows.len() * TITLE_DIM as usize);
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
    let titles = Tensor::f_from_slice(&flat)?.f_reshape([rows.len() as i64, TITLE_DIM])?;
    let (ids, contents) = rows.into_iter().map(|(id, content, _)| (id, content)).unzip();
    Ok((ids, contents, titles))
}

/// Encoded content vectors of `contents`, [N, content_dim].
pub fn encode(network: &HybridRecommender, vocabulary: &Vocabulary, contents: &[MovieContent], titles: &Tensor) -> Result<Tensor, RecsysError> {
    let config = network.config();
    let refs: Vec<&MovieContent> = contents.iter().collect();
    let inputs = vocabulary.encode(&refs, titles, config.max_directors, config.max_actors)?;
    Ok(tch::no_grad(|| network.encode_content(&inputs))?.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?)
}

thread_local! {
    /// Whether this backend has seen the current schema (it cannot go back to an older one).
    static SCHEMA_CURRENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Fails with 55000 and the ALTER EXTENSION hint while the database still holds an older version's objects (the
/// library was replaced, the update not run yet); checked until it first succeeds in a backend.
pub fn require_current_schema() -> Result<(), RecsysError> {
    if SCHEMA_CURRENT.get() {
        return Ok(());
    }
    let present = Spi::connect(|client| {
        client.select("SELECT pg_catalog.to_regclass('recsys.catalogue_state') IS NOT NULL", Some(1), &[])?.first().get::<bool>(1)
    })
    .map_err(RecsysError::spi("checking the extension's schema"))?;
    if present != Some(true) {
        return Err(RecsysError::SchemaNotUpdated);
    }
    SCHEMA_CURRENT.set(true);
    Ok(())
}

/// The catalogue's current version (`recsys.catalogue_state`), bumped by every change of movies, genres or people.
pub fn catalogue_version() -> Result<i64, RecsysError> {
    require_current_schema()?;
    Spi::connect(|client| client.select("SELECT version FROM recsys.catalogue_state", Some(1), &[])?.first().get::<i64>(1))
        .map(Option::unwrap_or_default)
        .map_err(RecsysError::spi("reading the catalogue version"))
}
