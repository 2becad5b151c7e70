-- Documented results of the prediction functions with a trained model: the paths that score the same pair (single,
-- list, whole-catalogue ranking, parallel worker) must agree; values depend on the trained weights, so they are
-- compared with each other, not with constants.
SET search_path = recsys, public;
SELECT recsys_predict(NULL, 1) IS NULL AS null_user_gives_null, recsys_predict(1, NULL) IS NULL AS null_movie_gives_null;
SELECT abs(recsys_predict(1, r.movie_id) - r.score) < 1e-4 AS single_equals_ranked FROM recsys_recommend(1, 1) r;
SELECT recsys_predict(987654, m) = recsys_predict(-5, m) AS unknown_users_share_the_average_user,
       recsys_predict(987654, m) <> recsys_predict(1, m) AS average_user_differs_from_user_1
FROM (VALUES (1), (2), (3)) v(m);
SELECT bool_and(abs(r.score - recsys_predict(987654, r.movie_id)) < 1e-4) AS unknown_user_gets_the_average_users_list
FROM recsys_recommend(987654, 5) r;
SELECT movie_id, score BETWEEN 0.5 AND 5 AS in_scale FROM recsys_predict(1, ARRAY[3, 1, NULL, 2]);
SELECT count(*) AS rows_for_empty_list FROM recsys_predict(1, ARRAY[]::int[]);
SELECT bool_and(abs(p.score - recsys_predict(1, p.movie_id)) < 1e-4) AS batched_equals_single
FROM recsys_predict(1, ARRAY[1, 2, 3, 4, 5]) p;
-- recommendations: k rows, ranked, unrated only, genre filter, NULL user
SELECT count(*) AS k_rows, min(rank) AS first, max(rank) AS last FROM recsys_recommend(1, 5);
SELECT count(*) AS rated_among_recommended FROM recsys_recommend(1, 50) r JOIN ratings USING (movie_id) WHERE user_id = 1;
SELECT bool_and(EXISTS (SELECT FROM movie_genres mg JOIN genres g USING (genre_id) WHERE mg.movie_id = r.movie_id AND g.name = 'Comedy')) AS only_comedies
FROM recsys_recommend(1, 10, true, 'comedy') r;
SELECT count(*) AS rows_for_unknown_genre FROM recsys_recommend(1, 10, true, 'No Such Genre');
SELECT count(*) AS rows_for_null_user FROM recsys_recommend(NULL);
SELECT rank, because LIKE 'because you rated %★' AS names_a_rated_movie FROM recsys_recommend(1, 3, explain => true);
SELECT count(because) AS reasons_without_explain FROM recsys_recommend(1, 3);
SELECT count(*) = (SELECT count(*) FROM movies) AS huge_k_gives_whole_catalogue FROM recsys_recommend(1, 10000, false);
-- cold start: arrays and the comma-separated form agree
SELECT recsys_predict_new(1, 'The Midnight Heist', ARRAY['Crime', 'Thriller'], ARRAY['Nobody Known'], NULL, 130, 2026) BETWEEN 0.5 AND 5 AS in_scale;
SELECT abs(recsys_predict_new(1, 'The Midnight Heist', ARRAY['Crime', 'Thriller'], NULL, NULL, 130, 2026)
         - recsys_predict_new(1, 'The Midnight Heist', 'Crime, Thriller', NULL, NULL, 130, 2026)) < 1e-6 AS forms_agree;
SELECT recsys_predict_new(NULL, 'x') IS NULL AS null_user, recsys_predict_new(1, NULL) IS NULL AS null_title;
SELECT recsys_predict_new(1, '') BETWEEN 0.5 AND 5 AS empty_title_scored;
SELECT recsys_predict_new(1, repeat('very long title ', 640)) BETWEEN 0.5 AND 5 AS ten_kb_title_scored;
SELECT recsys_predict_new(1, 'Crowded', NULL, NULL, (SELECT array_agg('Actor ' || i) FROM generate_series(1, 10000) i)) BETWEEN 0.5 AND 5
    AS ten_thousand_actors_scored;
-- parallel workers load the model themselves and give the same scores
SET force_parallel_mode = on;
SET parallel_setup_cost = 0;
SET enable_bitmapscan = off;
SET enable_indexscan = off;
EXPLAIN (COSTS OFF) SELECT recsys_predict(user_id, movie_id) FROM ratings WHERE user_id <= 3;
SELECT sum(recsys_predict(user_id, movie_id)::float8) AS parallel_sum FROM ratings WHERE user_id <= 3 \gset
RESET force_parallel_mode;
RESET parallel_setup_cost;
RESET enable_bitmapscan;
RESET enable_indexscan;
SELECT abs(sum(recsys_predict(user_id, movie_id)::float8) - :parallel_sum) < 1e-6 AS parallel_scores_equal_serial
FROM ratings WHERE user_id <= 3;
-- the model's flush-to-zero mode stays inside the extension: the session's float8 arithmetic still sees subnormals
SELECT 1e-310::float8 * 1.5 > 1e-310::float8 AS subnormal_arithmetic_before;
SELECT count(*) AS recommended FROM recsys_recommend(1, 10);
SELECT count(*) AS predicted FROM recsys_predict(1, ARRAY[1, 2, 3]);
SELECT recsys_predict_new(1, 'A Title Nobody Embedded Yet', ARRAY['Drama']) BETWEEN 0.5 AND 5 AS scored;
SELECT 1e-310::float8 * 1.5 > 1e-310::float8 AS subnormal_arithmetic_after, 4.9e-324::float8 > 0 AS smallest_subnormal_kept;
-- volatility and parallel labels
SELECT p.oid::regprocedure AS function, p.provolatile AS volatility, p.proparallel AS parallel
FROM pg_proc p WHERE p.pronamespace = 'recsys'::regnamespace ORDER BY p.oid::regprocedure::text;
-- explanations: the parts add up to the prediction (compared inside the scale), every group is named
SELECT abs(least(5, greatest(0.5, sum(contribution))) - recsys_predict(1, 2)) < 1e-4 AS parts_sum_to_prediction,
       count(*) FILTER (WHERE component IN ('user', 'movie', 'genres', 'title', 'directors', 'actors', 'year and runtime')) AS groups
FROM recsys_explain(1, 2);
SELECT count(*) AS rows_for_null FROM recsys_explain(NULL, 2);
-- neighbours: k rows, ranked, the query itself never listed, NULL → no rows
SELECT count(*) AS k_rows, min(rank) AS first, max(rank) AS last, bool_and(movie_id <> 1) AS query_not_listed,
       bool_and(similarity BETWEEN -1.0001 AND 1.0001) AS cosine_range
FROM recsys_similar_movies(1, 5);
SELECT count(*) AS k_rows, bool_and(user_id <> 1) AS query_not_listed FROM recsys_similar_users(1, 5);
SELECT count(*) AS rows_for_null FROM recsys_similar_movies(NULL), recsys_similar_users(NULL);
-- a visitor from a few ratings: k rows, rated movies left out, the jsonb form agrees with the arrays
SELECT count(*) AS k_rows, bool_and(movie_id NOT IN (1, 2, 3)) AS rated_left_out FROM recsys_recommend_for(ARRAY[1, 2, 3], ARRAY[5, 4.5, 1]::real[], 5);
SELECT array_agg(movie_id ORDER BY rank) = (SELECT array_agg(movie_id ORDER BY rank) FROM recsys_recommend_for('{"1": 5, "2": 4.5, "3": 1}'::jsonb, 5)) AS jsonb_form_agrees
FROM recsys_recommend_for(ARRAY[1, 2, 3], ARRAY[5, 4.5, 1]::real[], 5);
