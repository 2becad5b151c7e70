-- The ratings a model version never saw (recsys_contract::RATINGS_AFTER_TRAINING), by the one definition
-- recsys.rating_unseen: loaded after the version read its training data (or, for versions trained before 0.7.0,
-- given after its newest training rating), for the prospective RMSE that the batch refresh logs and the trainer's
-- champion comparison uses. $1: the version's fingerprint.loaded_until, $2: its fingerprint.max_rated_at (Unix
-- seconds), passed as values so that the planner folds the test into an index range scan (ratings_loaded_idx or
-- ratings_rated_at_idx). Returns user_id, movie_id, rating (float8).
SELECT r.user_id, r.movie_id, r.rating::pg_catalog.float8
FROM recsys.ratings r
WHERE recsys.rating_unseen(r.loaded, r.rated_at, $1::pg_catalog.int8, coalesce($2::pg_catalog.float8, 0))
ORDER BY r.user_id, r.movie_id
