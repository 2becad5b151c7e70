-- pg_recsys 0.3.0 → 0.4.0 (ALTER EXTENSION pg_recsys UPDATE): keeps every row, model version and the active model.
-- New: catalogue_changes records which movies each catalogue version inserted, edited or deleted (the triggers on
-- movies, movie_genres and movie_persons now pass their transition tables), so a backend re-encodes only those.
-- New functions: recsys_similar_movies, recsys_similar_users, recsys_explain and recsys_recommend_for (array and
-- jsonb forms).
-- Changes before the update were not recorded: changes_from starts at the current version. Version numbers now
-- come from the sequence catalogue_versions, so a rolled-back change never hands its number to a later one.
\echo Use "ALTER EXTENSION pg_recsys UPDATE TO '0.4.0'" to load this file. \quit

ALTER TABLE @extschema@.catalogue_state ADD COLUMN changes_from bigint NOT NULL DEFAULT 0;
UPDATE @extschema@.catalogue_state SET changes_from = version;
CREATE SEQUENCE @extschema@.catalogue_versions;
COMMENT ON SEQUENCE @extschema@.catalogue_versions IS 'Catalogue version numbers; never reused, also after a rollback.';
SELECT pg_catalog.setval('@extschema@.catalogue_versions', version + 1, false) FROM @extschema@.catalogue_state;
GRANT USAGE, SELECT, UPDATE ON SEQUENCE @extschema@.catalogue_versions TO recsys_admin;
COMMENT ON COLUMN @extschema@.catalogue_state.changes_from IS 'catalogue_changes holds every change of the versions after this one (older ones are pruned).';

DROP TRIGGER movies_catalogue_version ON @extschema@.movies;
DROP TRIGGER movie_genres_catalogue_version ON @extschema@.movie_genres;
DROP TRIGGER movie_persons_catalogue_version ON @extschema@.movie_persons;
DROP FUNCTION @extschema@.bump_catalogue_version() CASCADE;

CREATE TABLE catalogue_changes (
    version   bigint NOT NULL,
    movie_id  integer
);
CREATE INDEX catalogue_changes_version ON catalogue_changes (version);
COMMENT ON TABLE catalogue_changes IS 'Movies inserted, edited or deleted by each catalogue version; movie_id NULL means every movie (a TRUNCATE or a change of genres).';

CREATE FUNCTION bump_catalogue_version() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, @extschema@, pg_temp AS $$
DECLARE
    bumped bigint;
    kept_from bigint;
BEGIN
    UPDATE catalogue_state SET version = nextval('catalogue_versions') RETURNING version, changes_from INTO bumped, kept_from;
    IF TG_OP = 'TRUNCATE' OR TG_TABLE_NAME = 'genres' THEN
        INSERT INTO catalogue_changes VALUES (bumped, NULL);
    ELSIF TG_TABLE_NAME <> 'persons' THEN
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
COMMENT ON FUNCTION bump_catalogue_version() IS 'Trigger: bumps catalogue_state.version after a statement changed the catalogue and records the movies it changed in catalogue_changes.';

CREATE TRIGGER movies_catalogue_inserts AFTER INSERT ON movies REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER movies_catalogue_updates AFTER UPDATE ON movies REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER movies_catalogue_deletes AFTER DELETE ON movies REFERENCING OLD TABLE AS changed_old FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER movies_catalogue_version AFTER TRUNCATE ON movies FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER movie_genres_catalogue_inserts AFTER INSERT ON movie_genres REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER movie_genres_catalogue_updates AFTER UPDATE ON movie_genres REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER movie_genres_catalogue_deletes AFTER DELETE ON movie_genres REFERENCING OLD TABLE AS changed_old FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER movie_genres_catalogue_version AFTER TRUNCATE ON movie_genres FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER movie_persons_catalogue_inserts AFTER INSERT ON movie_persons REFERENCING NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER movie_persons_catalogue_updates AFTER UPDATE ON movie_persons REFERENCING OLD TABLE AS changed_old NEW TABLE AS changed_new FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER movie_persons_catalogue_deletes AFTER DELETE ON movie_persons REFERENCING OLD TABLE AS changed_old FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER movie_persons_catalogue_version AFTER TRUNCATE ON movie_persons FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER persons_catalogue_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON persons FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();
CREATE TRIGGER genres_catalogue_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON genres FOR EACH STATEMENT EXECUTE FUNCTION bump_catalogue_version();

GRANT SELECT ON catalogue_changes TO recsys_reader;
GRANT INSERT, UPDATE, DELETE ON catalogue_changes TO recsys_admin;

CREATE FUNCTION @extschema@."recsys_similar_movies"(
	"movie_id" INT, /* Option < i32 > */
	"k" INT DEFAULT 10, /* Option < i32 > */
	"genre" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TABLE (
	"rank" INT,  /* i32 */
	"movie_id" INT,  /* i32 */
	"title" TEXT,  /* String */
	"similarity" real  /* f32 */
)
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'recsys_similar_movies_wrapper';
CREATE FUNCTION @extschema@."recsys_similar_users"(
	"user_id" INT, /* Option < i32 > */
	"k" INT DEFAULT 10 /* Option < i32 > */
) RETURNS TABLE (
	"rank" INT,  /* i32 */
	"user_id" INT,  /* i32 */
	"similarity" real  /* f32 */
)
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'recsys_similar_users_wrapper';
COMMENT ON FUNCTION @extschema@.recsys_similar_movies(integer, integer, text) IS 'The k movies nearest to a movie in the active model''s movie representation (rank, movie_id, title, cosine similarity), optionally of one genre.';
COMMENT ON FUNCTION @extschema@.recsys_similar_users(integer, integer) IS 'The k users nearest to a user in the active model''s user representation (rank, user_id, cosine similarity).';
CREATE FUNCTION @extschema@."recsys_explain"(
	"user_id" INT, /* Option < i32 > */
	"movie_id" INT /* Option < i32 > */
) RETURNS TABLE (
	"component" TEXT,  /* String */
	"detail" TEXT,  /* String */
	"contribution" real  /* f32 */
)
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'recsys_explain_wrapper';
COMMENT ON FUNCTION @extschema@.recsys_explain(integer, integer) IS 'The parts of a prediction (component, detail, contribution) that add up to the raw score: biases, the user and movie embeddings, genres, title, directors, actors, year and runtime (exact Shapley values), the autoencoder blend.';
CREATE FUNCTION @extschema@."recsys_recommend_for"(
	"movie_ids" INT[], /* :: std :: option :: Option < Vec < Option < i32 > > > */
	"ratings" real[], /* :: std :: option :: Option < Vec < Option < f32 > > > */
	"k" INT DEFAULT 10, /* Option < i32 > */
	"exclude_rated" bool DEFAULT true, /* Option < bool > */
	"genre" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TABLE (
	"rank" INT,  /* i32 */
	"movie_id" INT,  /* i32 */
	"title" TEXT,  /* String */
	"score" real  /* f32 */
)
STABLE PARALLEL SAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'recsys_recommend_for_wrapper';
CREATE FUNCTION @extschema@."recsys_recommend_for"(
	"ratings" jsonb, /* Option < JsonB > */
	"k" INT DEFAULT 10, /* Option < i32 > */
	"exclude_rated" bool DEFAULT true, /* Option < bool > */
	"genre" TEXT DEFAULT NULL /* Option < & str > */
) RETURNS TABLE (
	"rank" INT,  /* i32 */
	"movie_id" INT,  /* i32 */
	"title" TEXT,  /* String */
	"score" real  /* f32 */
)
STABLE PARALLEL SAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'recsys_recommend_for_jsonb_wrapper';
COMMENT ON FUNCTION @extschema@.recsys_recommend_for(integer[], real[], integer, boolean, text) IS 'The k best movies for a visitor from a few ratings (movie ids and ratings of the same length), fitted at query time from the average user; writes nothing.';
COMMENT ON FUNCTION @extschema@.recsys_recommend_for(jsonb, integer, boolean, text) IS 'recsys_recommend_for with the ratings as a jsonb object {"movie_id": rating, ...}.';
