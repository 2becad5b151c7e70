-- The ratings a model version never saw in a database not yet updated to 0.7.0, which has no load numbers
-- (recsys_contract::RATINGS_AFTER_TRAINING_BY_TIME): those given after the newest rating of its training data.
-- ALTER EXTENSION pg_recsys UPDATE replaces it with ratings_after_training.sql. $1: the model version.
SELECT r.user_id, r.movie_id, r.rating::pg_catalog.float8
FROM recsys.ratings r, recsys.models m
WHERE m.version OPERATOR(pg_catalog.=) $1::pg_catalog.int8
  AND r.rated_at OPERATOR(pg_catalog.>) pg_catalog.to_timestamp(coalesce((m.fingerprint OPERATOR(pg_catalog.->>) 'max_rated_at')::pg_catalog.float8, 0))
ORDER BY r.user_id, r.movie_id
