-- The five-line quick start (README): a prediction, a top-10, a cold-start score, the batch, the model registry.
-- Needs a trained and activated model (scripts/demo.sh makes one). psql -f sql/quickstart.sql
SELECT recsys.recsys_predict(1, 1) AS predicted_rating;
SELECT rank, movie_id, title, score FROM recsys.recsys_recommend(1, 10);
SELECT recsys.recsys_predict_new(1, 'The Midnight Heist', ARRAY['Crime'], NULL, NULL, 130, 2026) AS cold_start_rating;
SELECT * FROM recsys.recommendations_report WHERE user_id = 1 ORDER BY rank;
SELECT version, status, rmse, recall_at_10 FROM recsys.model_versions ORDER BY version;
