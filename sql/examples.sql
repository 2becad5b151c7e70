-- Everyday calls beyond the quick start: lists, filters, models. Readers may run the first part, the second needs
-- recsys_admin. psql -f sql/examples.sql
-- Scores for a list of movies, in the given order.
SELECT * FROM recsys.recsys_predict(1, ARRAY[1, 2, 3]);
-- Top-5 crime films for user 1, and the same with movies the user already rated allowed.
SELECT * FROM recsys.recsys_recommend(1, 5, genre => 'Crime');
SELECT * FROM recsys.recsys_recommend(1, 5, exclude_rated => false);
-- The top 3 with a short reason each.
SELECT rank, title, score, because FROM recsys.recsys_recommend(1, 3, explain => true);
-- Why user 1 gets their top recommendation: parts that add up to its raw score.
SELECT component, detail, contribution FROM recsys.recsys_explain(1, (SELECT movie_id FROM recsys.recsys_recommend(1, 1)));
-- Movies like movie 1 (optionally of one genre), users like user 1.
SELECT * FROM recsys.recsys_similar_movies(1, 5);
SELECT * FROM recsys.recsys_similar_movies(1, 5, genre => 'Comedy');
SELECT * FROM recsys.recsys_similar_users(1, 5);
-- What this backend has loaded.
SELECT * FROM recsys.recsys_version_info();

-- Admin: make the newest registered version the active one (the one it replaces becomes the rollback target; undo
-- with SELECT recsys.recsys_rollback()), then refresh the batch now.
SELECT recsys.recsys_activate((SELECT max(version) FROM recsys.models)) AS active;
CALL recsys.recsys_refresh_batch(10);
