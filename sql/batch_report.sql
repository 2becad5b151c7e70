-- Queries a BI tool points at: the current batch with titles and genres, its freshness, and how much of the
-- catalogue it reaches. Read-only: recsys_reader may run them. psql -f sql/batch_report.sql
-- Top-10 per user, as dashboards show it.
SELECT user_id, rank, title, year, genres, round(score::numeric, 2) AS score
FROM recsys.recommendations_report
WHERE rank <= 10
ORDER BY user_id, rank
LIMIT 50;

-- Which model produced the batch, and when.
SELECT model_version, min(generated_at) AS generated_at, count(DISTINCT user_id) AS users, count(*) AS rows
FROM recsys.batch_recommendations
GROUP BY model_version;

-- The movies recommended most often, and the share of the catalogue the batch reaches.
SELECT title, count(*) AS times_recommended
FROM recsys.recommendations_report
GROUP BY title
ORDER BY times_recommended DESC, title
LIMIT 20;
SELECT round(100.0 * count(DISTINCT b.movie_id) / nullif((SELECT count(*) FROM recsys.movies), 0), 1) AS catalogue_coverage_percent
FROM recsys.batch_recommendations b;

-- Every refresh and training run with its prospective RMSE (ratings newer than the model's training data).
SELECT run_id, kind, model_version, started_at, duration_seconds, prospective_rmse, catalogue_coverage_percent
FROM recsys.quality_history
ORDER BY run_id DESC
LIMIT 10;
