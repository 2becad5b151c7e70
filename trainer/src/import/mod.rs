//! `trainer import`: bringing MovieLens and IMDb files into the recsys tables.
pub mod copy;
pub mod imdb;
pub mod imdb_load;
pub mod movielens;
pub mod movielens_load;
pub mod progress;
pub mod rating_digest;
pub mod rating_lines;
pub mod source;
pub mod title_text;

use anyhow::{bail, Result};
use postgres::Client;

/// Fails with a clear message when the database lacks the pg_recsys tables.
pub fn require_schema(client: &mut Client) -> Result<()> {
    let installed = client.query_opt("SELECT 1 FROM pg_extension WHERE extname = 'pg_recsys'", &[])?;
    if installed.is_none() {
        bail!("pg_recsys is not installed in this database: run CREATE EXTENSION pg_recsys (it creates the recsys tables)");
    }
    Ok(())
}
