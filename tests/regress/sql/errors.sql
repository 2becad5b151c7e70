-- Bad input: every case gets its documented SQLSTATE, message and hint, and the backend survives.
SET search_path = recsys, public;
SELECT recsys_predict(1, 424242);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM recsys_recommend(1, 0);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM recsys_recommend(1, 10001);
\echo :LAST_ERROR_SQLSTATE
SELECT recsys_predict_new(1, 'A Film', NULL, NULL, NULL, 'NaN');
\echo :LAST_ERROR_SQLSTATE
SELECT recsys_predict_new(1, 'A Film', NULL, NULL, NULL, -5);
\echo :LAST_ERROR_SQLSTATE
SELECT recsys_predict_new(1, 'A Film', NULL, NULL, NULL, 1e40);
\echo :LAST_ERROR_SQLSTATE
SELECT recsys_predict_new(1, 'A Film', NULL, NULL, NULL, 120, 99999);
\echo :LAST_ERROR_SQLSTATE
CALL recsys_refresh_batch(0);
\echo :LAST_ERROR_SQLSTATE
CALL recsys_refresh_batch(10, 65);
\echo :LAST_ERROR_SQLSTATE
CALL recsys_refresh_batch(10, shard => 3, shards => 3);
\echo :LAST_ERROR_SQLSTATE
SELECT recsys_torch_matmul_check(0);
\echo :LAST_ERROR_SQLSTATE
SELECT recsys_load_artefact('relative/path');
\echo :LAST_ERROR_SQLSTATE
SELECT recsys_load_artefact('/nonexistent/pg_recsys/artefact');
\echo :LAST_ERROR_SQLSTATE
SELECT recsys_activate(424242);
\echo :LAST_ERROR_SQLSTATE
-- no active model: every prediction path says so; nothing is changed
BEGIN;
UPDATE models SET status = 'retired' WHERE status = 'active';
SELECT recsys_predict(1, 1);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
UPDATE models SET status = 'retired' WHERE status = 'active';
SELECT * FROM recsys_recommend(1);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
BEGIN;
UPDATE models SET status = 'retired' WHERE status = 'active';
SELECT recsys_rollback();
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
-- a corrupt artefact is refused at activation and the active model stays
BEGIN;
INSERT INTO models (params, metrics, fingerprint, manifest, weights)
SELECT params, metrics, fingerprint, manifest, substring(weights FOR 64) FROM models WHERE status = 'active';
SELECT recsys_activate((SELECT max(version) FROM models));
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT count(*) AS active_models FROM models WHERE status = 'active';
SELECT recsys_predict(1, 1) BETWEEN 0.5 AND 5 AS still_serving;
-- an empty catalogue: no recommendations, an empty batch, and unknown movies
BEGIN;
DELETE FROM movies;
SELECT count(*) AS recommendations_from_empty_catalogue FROM recsys_recommend(1);
SELECT users > 0 AS every_user_considered, recommendations FROM recsys_refresh_batch_now(10);
SELECT recsys_predict(1, 1);
\echo :LAST_ERROR_SQLSTATE
ROLLBACK;
SELECT count(*) AS recommendations_after_rollback FROM recsys_recommend(1);
-- pg_cron helper without pg_cron in this database
SELECT recsys_schedule_refresh();
\echo :LAST_ERROR_SQLSTATE
-- explanations and neighbours: unknown ids and bad k
SELECT * FROM recsys_explain(1, -3);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM recsys_similar_movies(-3);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM recsys_similar_users(987654);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM recsys_similar_movies(1, 0);
\echo :LAST_ERROR_SQLSTATE
-- a visitor's ratings: lengths, scale, NULLs, unknown movies
SELECT * FROM recsys_recommend_for(ARRAY[1, 2], ARRAY[4]::real[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM recsys_recommend_for(ARRAY[1], ARRAY[9]::real[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM recsys_recommend_for(ARRAY[-4], ARRAY[4]::real[]);
\echo :LAST_ERROR_SQLSTATE
SELECT * FROM recsys_recommend_for('[1, 2]'::jsonb);
\echo :LAST_ERROR_SQLSTATE
