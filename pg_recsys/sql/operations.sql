-- pg_recsys operations, created after the functions: the refresh procedure, pg_cron helpers, BI views, function
-- comments, and the two roles (recsys_reader, recsys_admin) with their grants. The PL/pgSQL functions run with a
-- fixed search_path, so objects a caller can create in other schemas never stand in for built-ins.

CREATE PROCEDURE recsys_refresh_batch(k integer DEFAULT 10, threads integer DEFAULT NULL, shard integer DEFAULT 0, shards integer DEFAULT 1)
LANGUAGE plpgsql SET search_path = pg_catalog, @extschema@, pg_temp AS $$
DECLARE
    run record;
BEGIN
    SELECT * INTO run FROM @extschema@.recsys_refresh_batch_now(k, threads, shard, shards);
    RAISE NOTICE 'batch refreshed with model version %: % recommendations for % users in % s',
        run.model_version, run.recommendations, run.users, round(run.seconds::numeric, 2);
END
$$;
COMMENT ON PROCEDURE recsys_refresh_batch(integer, integer, integer, integer) IS
'Recomputes batch_recommendations (top-k unrated movies for every user, or for the users whose id modulo shards is shard) with the active model in one transaction: readers see the previous batch until it commits. Admin only; safe as the only statement of a pg_cron job.';

CREATE FUNCTION recsys_schedule_refresh(schedule text DEFAULT '0 3 * * 0', k integer DEFAULT 10)
RETURNS bigint LANGUAGE plpgsql SET search_path = pg_catalog, @extschema@, pg_temp AS $$
DECLARE
    job bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        RAISE EXCEPTION 'pg_cron is not installed in database %', current_database()
            USING ERRCODE = '55000',
                  HINT = format('Preload pg_cron, set cron.database_name = %L and run CREATE EXTENSION pg_cron.', current_database());
    END IF;
    IF schedule IS NULL OR k IS NULL OR k NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'schedule must not be NULL and k must be between 1 and 1000, got %', coalesce(k::text, 'NULL')
            USING ERRCODE = '22023', HINT = 'For example: SELECT recsys_schedule_refresh(''0 3 * * 0'', 10);';
    END IF;
    EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job
        USING 'recsys_refresh_batch', schedule, format('CALL %I.recsys_refresh_batch(%s)', '@extschema@', k);
    RETURN job;
END
$$;
COMMENT ON FUNCTION recsys_schedule_refresh(text, integer) IS
'Creates or updates the pg_cron job "recsys_refresh_batch" of the current user (default: Sundays 03:00) that runs CALL recsys_refresh_batch(k); returns the job id. Needs pg_cron in this database.';

CREATE FUNCTION recsys_unschedule_refresh() RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog, @extschema@, pg_temp AS $$
DECLARE
    removed boolean := false;
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
        EXECUTE 'SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = $1 AND username = current_user'
            INTO removed USING 'recsys_refresh_batch';
    END IF;
    RETURN coalesce(removed, false);
END
$$;
COMMENT ON FUNCTION recsys_unschedule_refresh() IS
'Removes the pg_cron job created by recsys_schedule_refresh for the current user; false when there was none.';

CREATE VIEW recommendations_report AS
SELECT b.user_id, b.rank, b.movie_id, m.title, m.year,
       (SELECT string_agg(g.name, ', ' ORDER BY g.name)
          FROM movie_genres mg JOIN genres g USING (genre_id) WHERE mg.movie_id = b.movie_id) AS genres,
       b.score, b.model_version, b.generated_at
FROM batch_recommendations b JOIN movies m USING (movie_id);
COMMENT ON VIEW recommendations_report IS 'The current batch with titles, years and genres, one row per user and rank: for BI tools.';

CREATE VIEW model_versions AS
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

CREATE VIEW quality_history AS
SELECT q.run_id, q.kind, q.model_version, q.started_at, q.finished_at, round(q.duration_seconds::numeric, 2) AS duration_seconds,
       q.prospective_rmse, q.prospective_ratings, q.users, q.recommendations,
       round((100 * q.catalogue_coverage)::numeric, 1) AS catalogue_coverage_percent,
       round((100 * q.changed_share)::numeric, 1) AS changed_percent,
       v.rmse AS holdout_rmse, q.details,
       q.previous_batch_users, q.previous_batch_recall_at_10, q.previous_batch_hit_rate,
       q.popularity_recall_at_10, q.popularity_hit_rate
FROM quality_log q LEFT JOIN model_versions v ON v.version = q.model_version;
COMMENT ON VIEW quality_history IS 'Training and refresh runs with durations, prospective accuracy, coverage, churn, and how the previous batch predicted what users rated after it (beside popularity): for BI tools.';

COMMENT ON FUNCTION recsys_version_info() IS 'Extension and libtorch versions, libtorch threads, whether the library was preloaded, and the model cached in this backend.';
COMMENT ON FUNCTION recsys_torch_matmul_check(integer) IS 'Multiplies two matrix_size² matrices of ones with libtorch in this backend and returns the sum (a smoke test).';
COMMENT ON FUNCTION recsys_predict(integer, integer) IS 'Predicted rating (0.5-5) of a movie for a user by the active model; unknown users are scored as an average user, movies without an embedding from their content.';
COMMENT ON FUNCTION recsys_predict(integer, integer[]) IS 'Predicted ratings of a list of movies for a user in one batched pass: one row per non-NULL id, in order.';
COMMENT ON FUNCTION recsys_predict_new(integer, text, text[], text[], text[], double precision, integer) IS 'Predicted rating of a movie the catalogue does not have, from its title, genres, directors, actors, runtime and year.';
COMMENT ON FUNCTION recsys_predict_new(integer, text, text, text, text, double precision, integer) IS 'recsys_predict_new with genres, directors and actors as comma-separated text.';
COMMENT ON FUNCTION recsys_recommend(integer, integer, boolean, text, boolean) IS 'The k best movies for a user over the whole catalogue (rank, movie_id, title, score, and with explain => true a because text), optionally unrated only and of one genre.';
COMMENT ON FUNCTION recsys_similar_movies(integer, integer, text) IS 'The k movies nearest to a movie in the active model''s movie representation (rank, movie_id, title, cosine similarity), optionally of one genre.';
COMMENT ON FUNCTION recsys_recommend_for(integer[], real[], integer, boolean, text) IS 'The k best movies for a visitor from a few ratings (movie ids and ratings of the same length), fitted at query time from the average user; writes nothing.';
COMMENT ON FUNCTION recsys_recommend_for(jsonb, integer, boolean, text) IS 'recsys_recommend_for with the ratings as a jsonb object {"movie_id": rating, ...}.';
COMMENT ON FUNCTION recsys_explain(integer, integer) IS 'The parts of a prediction (component, detail, contribution) that add up to the raw score: biases, the user and movie embeddings, genres, title, directors, actors, year and runtime (exact Shapley values), the autoencoder blend.';
COMMENT ON FUNCTION recsys_similar_users(integer, integer) IS 'The k users nearest to a user in the active model''s user representation (rank, user_id, cosine similarity).';
COMMENT ON FUNCTION recsys_refresh_batch_now(integer, integer, integer, integer) IS 'The batch refresh (whole, or shard i of n) as a function returning its summary; CALL recsys_refresh_batch(k) wraps it. Admin only.';
COMMENT ON FUNCTION recsys_activate(bigint) IS 'Activates a registered model version after checking that it loads; every backend switches on its next statement. Admin only.';
COMMENT ON FUNCTION recsys_rollback() IS 'Re-activates the version the active one replaced; returns it. Admin only.';
COMMENT ON FUNCTION recsys_load_artefact(text, boolean) IS 'Registers (and optionally activates) a model artefact directory on the server. Admin only, with pg_read_server_files.';

-- Roles. Cluster-wide, so created only when missing, and left in place by DROP EXTENSION.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'recsys_reader') THEN
        CREATE ROLE recsys_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'recsys_admin') THEN
        CREATE ROLE recsys_admin NOLOGIN;
    END IF;
END
$$;
GRANT recsys_reader TO recsys_admin;

GRANT USAGE ON SCHEMA @extschema@ TO recsys_reader;
GRANT SELECT ON ALL TABLES IN SCHEMA @extschema@ TO recsys_reader;
GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA @extschema@ TO recsys_admin;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA @extschema@ TO recsys_admin;
-- Readers' fold-in asks whether any rating was loaded after the active model's training data.
GRANT SELECT ON SEQUENCE rating_loads TO recsys_reader;

REVOKE EXECUTE ON FUNCTION recsys_activate(bigint), recsys_rollback(), recsys_load_artefact(text, boolean),
    recsys_refresh_batch_now(integer, integer, integer, integer), recsys_schedule_refresh(text, integer), recsys_unschedule_refresh(),
    recsys_torch_matmul_check(integer) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE recsys_refresh_batch(integer, integer, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION recsys_activate(bigint), recsys_rollback(), recsys_load_artefact(text, boolean),
    recsys_refresh_batch_now(integer, integer, integer, integer), recsys_schedule_refresh(text, integer), recsys_unschedule_refresh(),
    recsys_torch_matmul_check(integer) TO recsys_admin;
GRANT EXECUTE ON PROCEDURE recsys_refresh_batch(integer, integer, integer, integer) TO recsys_admin;
