//! The contracts between the trainer and the extension, stated once: the SQL both run against the extension's tables
//! (owned by the SQL side, `pg_recsys/sql/queries/*.sql`, each file saying what it returns) and the limits both check.
//! No dependencies: the trainer binds the parameters with the `postgres` crate, the extension with SPI.
#![warn(missing_docs)]

/// Every movie's content and cached title embedding, by movie id. `$1`: the embedder id.
pub const READ_CATALOGUE: &str = include_str!("../../pg_recsys/sql/queries/read_catalogue.sql");

/// One title's cached embedding. `$1`: the embedder id, `$2`: the title.
pub const TITLE_EMBEDDING: &str = include_str!("../../pg_recsys/sql/queries/title_embedding.sql");

/// Registers an artefact as a new model version and returns the version. `$1`: manifest (jsonb), `$2`: weights.
pub const REGISTER_MODEL: &str = include_str!("../../pg_recsys/sql/queries/register_model.sql");

/// The ratings a model version has not seen (`recsys.rating_unseen`). `$1`: its fingerprint's `loaded_until`
/// (int8), `$2`: its `max_rated_at` (float8 Unix seconds).
pub const RATINGS_AFTER_TRAINING: &str = include_str!("../../pg_recsys/sql/queries/ratings_after_training.sql");

/// The same in a database not yet updated to 0.7.0 (no load numbers): ratings given after the version's newest
/// training rating. `$1`: the model version.
pub const RATINGS_AFTER_TRAINING_BY_TIME: &str = include_str!("../../pg_recsys/sql/queries/ratings_after_training_by_time.sql");

/// Whether the database has load numbers on its ratings (0.7.0 and later): one boolean.
pub const HAS_LOAD_NUMBERS: &str =
    "SELECT pg_catalog.to_regprocedure('recsys.rating_unseen(bigint, timestamptz, bigint, double precision)') IS NOT NULL";

/// recsys.ratings' primary key, as the extension creates it and the trainer's bulk import rebuilds it.
pub const RATINGS_PRIMARY_KEY: &str = include_str!("../../pg_recsys/sql/ratings_primary_key.sql");

/// recsys.ratings' secondary indexes and foreign keys, as the extension creates them and the bulk import rebuilds them.
pub const RATINGS_REFERENCES: &str = include_str!("../../pg_recsys/sql/ratings_references.sql");

/// recsys.ratings' index on load numbers (0.7.0 and later), which the trainer's first bulk import also rebuilds.
pub const RATINGS_LOADED_INDEX: &str = include_str!("../../pg_recsys/sql/ratings_loaded_index.sql");

/// The largest k of a batch refresh (recommendations per user; ranks are stored as smallint and BI tables rarely want
/// more than a few hundred), as `recsys_refresh_batch` enforces it. `recsys_schedule_refresh` (operations.sql) checks
/// the same bound; a test compares the two.
pub const MAX_BATCH_K: i32 = 1000;

#[cfg(test)]
mod tests {
    #[test]
    fn the_scheduling_helper_checks_the_same_batch_bound() {
        let operations = include_str!("../../pg_recsys/sql/operations.sql");
        let check = format!("k NOT BETWEEN 1 AND {}", super::MAX_BATCH_K);
        assert!(operations.contains(&check), "recsys_schedule_refresh must check `{check}`");
    }
}
