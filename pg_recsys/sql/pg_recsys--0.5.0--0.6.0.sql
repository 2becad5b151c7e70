-- pg_recsys 0.5.0 → 0.6.0 (ALTER EXTENSION pg_recsys UPDATE): keeps every row, model version and the active model.
-- A statement that changes no catalogue row (a re-import of unchanged files: upserts that update nothing, an
-- INSERT … ON CONFLICT DO NOTHING of known genres) no longer bumps the catalogue version, so backends keep their
-- encoded catalogue; persons and genres get one trigger per event with its transition table, like movies. Inserting
-- a genre (not yet on any movie) bumps the version without marking every movie changed.
\echo Use "ALTER EXTENSION pg_recsys UPDATE TO '0.6.0'" to load this file. \quit

CREATE OR REPLACE FUNCTION bump_catalogue_version() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, @extschema@, pg_temp AS $$
DECLARE
    bumped bigint;
    kept_from bigint;
BEGIN
    -- Each test names only the transition table its event has (a query naming the other would not parse).
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF NOT EXISTS (SELECT FROM changed_new) THEN
            RETURN NULL;
        END IF;
    ELSIF TG_OP = 'DELETE' THEN
        IF NOT EXISTS (SELECT FROM changed_old) THEN
            RETURN NULL;
        END IF;
    END IF;
    UPDATE catalogue_state SET version = nextval('catalogue_versions') RETURNING version, changes_from INTO bumped, kept_from;
    IF TG_OP = 'TRUNCATE' OR (TG_TABLE_NAME = 'genres' AND TG_OP <> 'INSERT') THEN
        INSERT INTO catalogue_changes VALUES (bumped, NULL);
    ELSIF TG_TABLE_NAME NOT IN ('persons', 'genres') THEN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO catalogue_changes SELECT DISTINCT bumped, movie_id FROM changed_new;
        ELSIF TG_OP = 'DELETE' THEN
            INSERT INTO catalogue_changes SELECT DISTINCT bumped, movie_id FROM changed_old;
        ELSE
            INSERT INTO catalogue_changes SELECT bumped, movie_id FROM changed_new UNION SELECT bumped, movie_id FROM changed_old;
        END IF;
    END IF;
    IF bumped - kept_from > 2000 THEN
        DELETE FROM catalogue_changes WHERE version <= bumped - 1000;
        UPDATE catalogue_state SET changes_from = bumped - 1000;
    END IF;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION bump_catalogue_version() IS 'Trigger: bumps catalogue_state.version after a statement changed catalogue rows (a statement that changed none, such as a re-import of unchanged files, leaves it) and records the movies it changed in catalogue_changes.';

DROP TRIGGER persons_catalogue_version ON persons;
DROP TRIGGER genres_catalogue_version ON genres;
CREATE TRIGGER persons_catalogue_inserts AFTER INSERT ON persons REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER persons_catalogue_updates AFTER UPDATE ON persons REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER persons_catalogue_deletes AFTER DELETE ON persons REFERENCING OLD TABLE AS changed_old FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER persons_catalogue_version AFTER TRUNCATE ON persons FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER genres_catalogue_inserts AFTER INSERT ON genres REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER genres_catalogue_updates AFTER UPDATE ON genres REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER genres_catalogue_deletes AFTER DELETE ON genres REFERENCING OLD TABLE AS changed_old FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER genres_catalogue_version AFTER TRUNCATE ON genres FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
