-- Batch refresh, BI views, model versions and privileges.
SET search_path = recsys, public;
SET client_min_messages = warning;
CALL recsys_refresh_batch(10);
SELECT count(*) = 10 * (SELECT count(*) FROM users) AS ten_per_user, count(DISTINCT model_version) AS versions,
       count(DISTINCT generated_at) AS stamps
FROM batch_recommendations;
SELECT count(*) AS rated_in_batch FROM batch_recommendations JOIN ratings USING (user_id, movie_id);
SELECT column_name FROM information_schema.columns WHERE table_schema = 'recsys' AND table_name = 'recommendations_report' ORDER BY ordinal_position;
SELECT count(*) = (SELECT count(*) FROM batch_recommendations) AS report_has_every_row, bool_and(title IS NOT NULL) AS titled
FROM recommendations_report;
SELECT column_name FROM information_schema.columns WHERE table_schema = 'recsys' AND table_name = 'model_versions' ORDER BY ordinal_position;
SELECT status, rmse IS NOT NULL AS has_rmse, trained_on_ratings = (SELECT count(*) FROM ratings) AS fingerprint_matches FROM model_versions;
SELECT kind, users = (SELECT count(*) FROM users) AS all_users, catalogue_coverage_percent > 0 AS covered FROM quality_history WHERE kind = 'refresh';
-- roles: a reader predicts and reads, but cannot manage models or rewrite the batch
DROP ROLE IF EXISTS regress_reader;
CREATE ROLE regress_reader IN ROLE recsys_reader;
SET ROLE regress_reader;
SELECT recsys_predict(1, 1) BETWEEN 0.5 AND 5 AS reader_predicts;
SELECT count(*) > 0 AS reader_reads_batch FROM recommendations_report;
CALL recsys_refresh_batch(10);
\echo :LAST_ERROR_SQLSTATE
SELECT recsys_activate(1);
\echo :LAST_ERROR_SQLSTATE
SELECT recsys_rollback();
\echo :LAST_ERROR_SQLSTATE
DELETE FROM batch_recommendations;
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
DROP ROLE regress_reader;
SELECT count(*) > 0 AS batch_intact FROM batch_recommendations;
-- the active version's serving snapshot covers the catalogue; activating it again rebuilds it
SELECT version, cardinality(movie_ids) = (SELECT count(*) FROM movies) AS whole_catalogue FROM model_snapshots;
SELECT recsys_activate(version) = version AS reactivated FROM models WHERE status = 'active';
SELECT count(*) AS snapshots FROM model_snapshots;
