-- pg_recsys 0.6.0 → 0.7.0 (ALTER EXTENSION pg_recsys UPDATE): keeps every row, model version and the active model.
-- Models trained by 0.7.0 carry a preference part that orders recommendation lists; models of earlier versions keep
-- serving in predicted-rating order. quality_log gains how each refresh's previous batch predicted what users rated
-- after it (beside the popularity chart); model_versions shows the popularity and EASE baselines beside the model.
\echo Use "ALTER EXTENSION pg_recsys UPDATE TO '0.7.0'" to load this file. \quit

ALTER TABLE quality_log
    ADD COLUMN previous_batch_users bigint,
    ADD COLUMN previous_batch_recall_at_10 double precision,
    ADD COLUMN previous_batch_hit_rate double precision,
    ADD COLUMN popularity_recall_at_10 double precision,
    ADD COLUMN popularity_hit_rate double precision;
COMMENT ON COLUMN quality_log.previous_batch_users IS 'refresh: users who rated a movie 4 or more after their previous list was written.';
COMMENT ON COLUMN quality_log.previous_batch_recall_at_10 IS 'refresh: mean Recall@10 of the previous lists against those ratings (hits over min(10, ratings)).';
COMMENT ON COLUMN quality_log.previous_batch_hit_rate IS 'refresh: share of those users whose previous list held one of those movies.';
COMMENT ON COLUMN quality_log.popularity_recall_at_10 IS 'refresh: the same Recall@10 for the 10 most-rated movies each user had not rated when the lists were written.';
COMMENT ON COLUMN quality_log.popularity_hit_rate IS 'refresh: the same hit rate for that popularity chart.';

CREATE OR REPLACE VIEW model_versions AS
SELECT version, status, created_at, activated_at, previous_version,
       (metrics #>> '{random_holdout,model,rmse}')::float8 AS rmse,
       (metrics #>> '{random_holdout,model,mae}')::float8 AS mae,
       (metrics #>> '{random_holdout,bias_baseline,rmse}')::float8 AS bias_baseline_rmse,
       (metrics #>> '{cold_start,model,rmse}')::float8 AS cold_start_rmse,
       (metrics #>> '{ranking,recall_at_10}')::float8 AS recall_at_10,
       (metrics #>> '{ranking,ndcg_at_10}')::float8 AS ndcg_at_10,
       (fingerprint ->> 'ratings')::bigint AS trained_on_ratings,
       to_timestamp((fingerprint ->> 'max_rated_at')::bigint) AS trained_until,
       manifest ->> 'trainer_version' AS trainer_version,
       octet_length(weights) AS weights_bytes,
       (metrics #>> '{ranking,popularity,recall_at_10}')::float8 AS popularity_recall_at_10,
       (metrics #>> '{ranking,ease,recall_at_10}')::float8 AS ease_recall_at_10,
       (metrics #>> '{ranking,coverage}')::float8 AS list_coverage
FROM models;
COMMENT ON VIEW model_versions IS 'Registered model versions with their headline metrics (hold-out RMSE/MAE, cold start, ranking beside the popularity and EASE baselines) and training data.';

CREATE OR REPLACE VIEW quality_history AS
SELECT q.run_id, q.kind, q.model_version, q.started_at, q.finished_at, round(q.duration_seconds::numeric, 2) AS duration_seconds,
       q.prospective_rmse, q.prospective_ratings, q.users, q.recommendations,
       round((100 * q.catalogue_coverage)::numeric, 1) AS catalogue_coverage_percent,
       round((100 * q.changed_share)::numeric, 1) AS changed_percent,
       v.rmse AS holdout_rmse, q.details,
       q.previous_batch_users, q.previous_batch_recall_at_10, q.previous_batch_hit_rate,
       q.popularity_recall_at_10, q.popularity_hit_rate
FROM quality_log q LEFT JOIN model_versions v ON v.version = q.model_version;
COMMENT ON VIEW quality_history IS 'Training and refresh runs with durations, prospective accuracy, coverage, churn, and how the previous batch predicted what users rated after it (beside popularity): for BI tools.';

-- Every table carries a comment (docs/sql-reference.md is checked against them).
COMMENT ON TABLE genres IS 'Genre names as the source spells them (MovieLens, else IMDb''s title.basics).';
COMMENT ON TABLE movie_genres IS 'Which genres each movie has.';
COMMENT ON TABLE persons IS 'Directors, writers and actors from IMDb, by name and nconst.';
COMMENT ON TABLE movie_persons IS 'Credits: the people of each movie with their role (director, actor, writer), billing order and characters.';
COMMENT ON TABLE title_embeddings IS 'Sentence embeddings of titles (all-MiniLM-L6-v2), shared by trainer and extension so that an unchanged title is embedded once.';

-- A libtorch smoke test that can run a 4096³ product is for administrators, not for every reader.
REVOKE EXECUTE ON FUNCTION recsys_torch_matmul_check(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION recsys_torch_matmul_check(integer) TO recsys_admin;

-- The drop guard reads the DROP statement's parse tree instead of matching the statement's text, which a DO block,
-- EXECUTE or a function could hide.
CREATE OR REPLACE FUNCTION _recsys_refuse_drop_with_data() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'recsys_drop_guard';
ALTER FUNCTION _recsys_refuse_drop_with_data() RESET ALL;
COMMENT ON FUNCTION _recsys_refuse_drop_with_data() IS 'Event trigger: reads the parse tree of each DROP EXTENSION / DROP SCHEMA and refuses one that drops pg_recsys or recsys while ratings, movies, users, persons or models hold rows, unless recsys.allow_drop_with_data is on.';

-- "Ratings a version has not seen" is decided by load numbers, not by rated_at: a back-filled week of older ratings
-- is new to every version trained before it was loaded. Existing ratings get load number 0 without rewriting the
-- table; versions trained before this update keep the rated_at rule (their fingerprint has no loaded_until).
CREATE SEQUENCE rating_loads;
COMMENT ON SEQUENCE rating_loads IS 'Load numbers of ratings (ratings.loaded); a model version has seen those up to its fingerprint''s loaded_until.';
ALTER TABLE ratings ADD COLUMN loaded bigint NOT NULL DEFAULT 0;
ALTER TABLE ratings ALTER COLUMN loaded SET DEFAULT nextval('rating_loads');
COMMENT ON COLUMN ratings.loaded IS 'Load number (sequence rating_loads) given when the rating was inserted or last changed; 0 for ratings stored before 0.7.0.';
SELECT pg_catalog.pg_extension_config_dump('rating_loads', '');
-- The ratings a version has not seen are found by an index range scan above its loaded_until.
CREATE INDEX ratings_loaded_idx ON ratings (loaded);
GRANT USAGE, SELECT, UPDATE ON SEQUENCE rating_loads TO recsys_admin;
GRANT SELECT ON SEQUENCE rating_loads TO recsys_reader;

CREATE FUNCTION rating_unseen(loaded bigint, rated_at timestamptz, loaded_until bigint, trained_until double precision) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN loaded_until IS NOT NULL THEN loaded OPERATOR(pg_catalog.>) loaded_until
                ELSE trained_until IS NULL OR rated_at OPERATOR(pg_catalog.>) pg_catalog.to_timestamp(trained_until) END
$$;
COMMENT ON FUNCTION rating_unseen(bigint, timestamptz, bigint, double precision) IS 'Whether a rating (its load number and time) is new to a model version that read ratings up to loaded_until (newest rated_at trained_until for versions without one).';

-- A rating changed in place (a re-import's newer value, an UPDATE) is new again to every model version.
CREATE FUNCTION ratings_mark_loaded() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, @extschema@, pg_temp AS $$
BEGIN
    NEW.loaded := pg_catalog.nextval('@extschema@.rating_loads');
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION ratings_mark_loaded() IS 'Trigger: gives a rating whose value or time changed the next load number, so every model version counts it as unseen.';
CREATE TRIGGER ratings_mark_loaded BEFORE UPDATE OF rating, rated_at ON ratings FOR EACH ROW
    WHEN (OLD.rating IS DISTINCT FROM NEW.rating OR OLD.rated_at IS DISTINCT FROM NEW.rated_at)
    EXECUTE FUNCTION ratings_mark_loaded();

COMMENT ON COLUMN @extschema@.model_snapshots.catalogue_version IS 'catalogue_state.version when the snapshot was encoded; a backend loading at a later version patches it with the movies changed since.';
