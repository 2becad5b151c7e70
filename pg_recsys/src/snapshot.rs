//! The encoded catalogue of a model version — movie ids, titles, embedding rows and encoded content vectors — and
//! its serving snapshot in recsys.model_snapshots, written when the version is activated so that a backend loads a
//! model without re-reading and re-encoding every movie. A snapshot is labelled with the catalogue version it was
//! encoded at and used only while the catalogue is at that version.
use crate::error::RecsysError;
use crate::model_cache::{encode, read_catalogue};
use pgrx::prelude::*;
use recsys_model::{HybridRecommender, Vocabulary};
use tch::{Kind, Tensor};

pub struct EncodedCatalogue {
    pub movie_ids: Vec<i32>,
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

    /// The snapshot stored for `version`, if it was encoded at `catalogue_version` and its content width matches the
    /// network's.
    pub fn read_snapshot(version: i64, content_dim: i64, catalogue_version: i64) -> Result<Option<Self>, RecsysError> {
        type Stored = (Vec<i32>, Vec<String>, Vec<i64>, Vec<u8>);
        let stored: Option<Stored> = Spi::connect(|client| -> Result<Option<Stored>, pgrx::spi::Error> {
            let table = client.select(
                "SELECT movie_ids, titles, movie_rows, content FROM recsys.model_snapshots
                 WHERE version OPERATOR(pg_catalog.=) $1::pg_catalog.int8 AND catalogue_version OPERATOR(pg_catalog.=) $2::pg_catalog.int8",
                Some(1),
                &[version.into(), catalogue_version.into()],
            )?;
            if table.is_empty() {
                return Ok(None);
            }
            let row = table.first();
            Ok(Some((
                row.get(1)?.unwrap_or_default(),
                row.get(2)?.unwrap_or_default(),
                row.get(3)?.unwrap_or_default(),
                row.get(4)?.unwrap_or_default(),
            )))
        })
        .map_err(RecsysError::spi("reading the model snapshot"))?;
        let Some((movie_ids, titles, movie_rows, bytes)) = stored else { return Ok(None) };
        let movies = movie_ids.len();
        if titles.len() != movies || movie_rows.len() != movies || bytes.len() != movies * content_dim as usize * 4 {
            return Ok(None);
        }
        let values = recsys_model::codec::f32_from_le_bytes(&bytes)?;
        let content = Tensor::f_from_slice(&values)?.f_reshape([movies as i64, content_dim])?;
        Ok(Some(Self { movie_ids, titles, movie_rows, content }))
    }

    /// Stores this catalogue as the snapshot of `version`, replacing an older one; `catalogue_version` must have
    /// been read before the catalogue was (a snapshot may be newer than its label, never older).
    pub fn write_snapshot(&self, version: i64, catalogue_version: i64) -> Result<(), RecsysError> {
        let values =
            Vec::<f32>::try_from(self.content.f_to_kind(Kind::Float)?.f_contiguous()?.f_flatten(0, -1)?).map_err(recsys_model::ModelError::from)?;
        let bytes = recsys_model::codec::f32_to_le_bytes(&values);
        Spi::connect_mut(|client| -> Result<(), pgrx::spi::Error> {
            client.update(
                "INSERT INTO recsys.model_snapshots (version, movie_ids, titles, movie_rows, content, catalogue_version) VALUES ($5, $1, $2, $3, $4, $6)
                 ON CONFLICT (version) DO UPDATE SET built_at = pg_catalog.now(), movie_ids = EXCLUDED.movie_ids, titles = EXCLUDED.titles,
                                                     movie_rows = EXCLUDED.movie_rows, content = EXCLUDED.content,
                                                     catalogue_version = EXCLUDED.catalogue_version",
                None,
                &[self.movie_ids.clone().into(), self.titles.clone().into(), self.movie_rows.clone().into(), bytes.into(), version.into(), catalogue_version.into()],
            )?;
            Ok(())
        })
        .map_err(RecsysError::spi("writing the model snapshot"))
    }
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

/// Writes the loaded model's catalogue as its version's snapshot when the stored one was encoded at another
/// catalogue version, so that new connections load it again instead of re-encoding (called by the batch refresh).
pub fn store_if_stale(model: &crate::model_cache::LoadedModel) -> Result<(), RecsysError> {
    let stored: Option<i64> = Spi::connect(|client| {
        let table = client.select(
            "SELECT catalogue_version FROM recsys.model_snapshots WHERE version OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
            Some(1),
            &[model.version.into()],
        )?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get::<i64>(1)
    })
    .map_err(RecsysError::spi("reading the snapshot's catalogue version"))?;
    if stored == Some(model.catalogue_version) {
        return Ok(());
    }
    let movie_rows = Vec::<i64>::try_from(&model.movie_rows).map_err(recsys_model::ModelError::from)?;
    let catalogue =
        EncodedCatalogue { movie_ids: model.movie_ids.clone(), titles: model.titles.clone(), movie_rows, content: model.content.shallow_clone() };
    catalogue.write_snapshot(model.version, model.catalogue_version)
}
