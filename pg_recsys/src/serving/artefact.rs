//! Reading a model version's stored artefact from `recsys.models`, for loading it (`cache`) and for checking it
//! before activation (`registry`).
use crate::error::RecsysError;
use pgrx::prelude::*;
use recsys_model::Artefact;

/// The stored artefact of `version`, checked for format and checksum (not yet built).
pub fn read_artefact(version: i64) -> Result<Artefact, RecsysError> {
    let stored = Spi::connect(|client| -> Result<Option<(String, Vec<u8>)>, pgrx::spi::Error> {
        let table = client.select(
            "SELECT manifest::pg_catalog.text, weights FROM recsys.models WHERE version OPERATOR(pg_catalog.=) $1::pg_catalog.int8",
            Some(1),
            &[version.into()],
        )?;
        if table.is_empty() {
            return Ok(None);
        }
        let row = table.first();
        Ok(Some((row.get::<String>(1)?.unwrap_or_default(), row.get::<Vec<u8>>(2)?.unwrap_or_default())))
    })
    .map_err(RecsysError::spi(format!("reading model version {version}")))?;
    let (manifest, weights) = stored.ok_or(RecsysError::UnknownVersion(version))?;
    Artefact::from_parts(&manifest, weights).map_err(|e| RecsysError::corrupt_model(version, e))
}
