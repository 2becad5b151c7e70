-- pg_recsys 0.1.0 → 0.2.0 (ALTER EXTENSION pg_recsys UPDATE): keeps every row, model version and the active model.
-- The Rust functions keep their signatures (their new code ships in pg_recsys.so); what changes in the catalog:
-- the PL/pgSQL functions run with a fixed search_path, so a caller's objects never stand in for built-ins; a
-- catalogue version bumped by triggers keys every backend's cache; deleted movies leave the batch.
\echo Use "ALTER EXTENSION pg_recsys UPDATE TO '0.2.0'" to load this file. \quit

ALTER PROCEDURE @extschema@.recsys_refresh_batch(integer, integer) SET search_path = pg_catalog, @extschema@, pg_temp;
ALTER FUNCTION @extschema@.recsys_schedule_refresh(text, integer) SET search_path = pg_catalog, @extschema@, pg_temp;
ALTER FUNCTION @extschema@.recsys_unschedule_refresh() SET search_path = pg_catalog, @extschema@, pg_temp;

ALTER TABLE @extschema@.model_snapshots ADD COLUMN catalogue_version bigint;
COMMENT ON COLUMN @extschema@.model_snapshots.catalogue_version IS 'catalogue_state.version when the snapshot was encoded; backends use it only while the catalogue is unchanged.';

CREATE TABLE @extschema@.catalogue_state (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version    bigint NOT NULL DEFAULT 0
);
INSERT INTO @extschema@.catalogue_state DEFAULT VALUES;
COMMENT ON TABLE @extschema@.catalogue_state IS 'One row: the catalogue version, bumped by every statement that changes movies, movie_genres, movie_persons, persons or genres.';
GRANT SELECT ON @extschema@.catalogue_state TO recsys_reader;
GRANT INSERT, UPDATE, DELETE ON @extschema@.catalogue_state TO recsys_admin;

CREATE FUNCTION @extschema@.bump_catalogue_version() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, @extschema@, pg_temp AS $$
BEGIN
    UPDATE catalogue_state SET version = version + 1;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION @extschema@.bump_catalogue_version() IS 'Trigger: bumps catalogue_state.version after a statement changed the catalogue.';

CREATE TRIGGER movies_catalogue_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.movies FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.bump_catalogue_version();
CREATE TRIGGER movie_genres_catalogue_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.movie_genres FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.bump_catalogue_version();
CREATE TRIGGER movie_persons_catalogue_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.movie_persons FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.bump_catalogue_version();
CREATE TRIGGER persons_catalogue_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.persons FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.bump_catalogue_version();
CREATE TRIGGER genres_catalogue_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON @extschema@.genres FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.bump_catalogue_version();

CREATE FUNCTION @extschema@.drop_deleted_movies_from_batch() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, @extschema@, pg_temp AS $$
BEGIN
    DELETE FROM batch_recommendations b USING deleted_movies d WHERE b.movie_id = d.movie_id;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION @extschema@.drop_deleted_movies_from_batch() IS 'Trigger: removes deleted movies from batch_recommendations.';
CREATE TRIGGER movies_leave_the_batch AFTER DELETE ON @extschema@.movies REFERENCING OLD TABLE AS deleted_movies
    FOR EACH STATEMENT EXECUTE FUNCTION @extschema@.drop_deleted_movies_from_batch();
DELETE FROM @extschema@.batch_recommendations b WHERE NOT EXISTS (SELECT FROM @extschema@.movies m WHERE m.movie_id = b.movie_id);
