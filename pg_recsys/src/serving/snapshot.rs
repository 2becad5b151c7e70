//! A model version's serving snapshot in recsys.model_snapshots: its encoded catalogue, written when the version is
//! activated (and by a refresh after the catalogue changed) so that a backend loads a model without re-reading and
//! re-encoding every movie. A snapshot is labelled with the catalogue version it was encoded at; a backend loading at
//! a later catalogue version patches it with the movies changed since (`EncodedCatalogue::patched`).
use super::catalogue::EncodedCatalogue;
use crate::error::RecsysError;
use pgrx::prelude::*;
use tch::{Kind, Tensor};

impl EncodedCatalogue {
    /// The snapshot stored for `version` and the catalogue version it is labelled with, if its content width matches
    /// the network's.
    pub fn read_snapshot(version: i64, content_dim: i64) -> Result<Option<(Self, i64)>, RecsysError> {
        type Stored = (Vec<i32>, Vec<String>, Vec<i64>, Vec<u8>, i64);
        let stored: Option<Stored> = Spi::connect(|client| -> Result<Option<Stored>, pgrx::spi::Error> {
            let table = client.select(
                "SELECT movie_ids, titles, movie_rows, content, catalogue_version FROM recsys.model_snapshots
                 WHERE version OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
                Some(1),
                &[version.into()],
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
                row.get(5)?.unwrap_or_default(),
            )))
        })
        .map_err(RecsysError::spi("reading the model snapshot"))?;
        let Some((movie_ids, titles, movie_rows, bytes, catalogue_version)) = stored else { return Ok(None) };
        let movies = movie_ids.len();
        if titles.len() != movies || movie_rows.len() != movies || bytes.len() != movies * content_dim as usize * 4 {
            return Ok(None);
        }
        let values = recsys_model::codec::f32_from_le_bytes(&bytes)?;
        let content = Tensor::f_from_slice(&values)?.f_reshape([movies as i64, content_dim])?;
        Ok(Some((Self { movie_ids, titles, movie_rows, content }, catalogue_version)))
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

/// Writes `catalogue` (encoded for `version` at `catalogue_version`) as the version's snapshot when the stored one was
/// encoded at another catalogue version, so that new connections load it again instead of re-encoding (called by the
/// batch refresh with the model it loaded).
pub fn store_if_stale(version: i64, catalogue_version: i64, catalogue: &EncodedCatalogue) -> Result<(), RecsysError> {
    let stored: Option<i64> = Spi::connect(|client| {
        let table = client.select(
            "SELECT catalogue_version FROM recsys.model_snapshots WHERE version OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
            Some(1),
            &[version.into()],
        )?;
        if table.is_empty() {
            return Ok(None);
        }
        table.first().get::<i64>(1)
    })
    .map_err(RecsysError::spi("reading the snapshot's catalogue version"))?;
    if stored == Some(catalogue_version) {
        return Ok(());
    }
    catalogue.write_snapshot(version, catalogue_version)
}
