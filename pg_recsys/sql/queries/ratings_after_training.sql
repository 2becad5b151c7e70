-- The ratings a model version never saw (recsys_contract::RATINGS_AFTER_TRAINING): those given after the newest
-- rating of its training data (its fingerprint's max_rated_at), for the prospective RMSE that the batch refresh logs
-- and the trainer's champion comparison uses. $1: the model version. Returns user_id, movie_id, rating (float8).
SELECT r.user_id, r.movie_id, r.rating::pg_catalog.float8
FROM recsys.ratings r, recsys.models m
WHERE m.version OPERATOR(pg_catalog.=) $1::pg_catalog.int8
  AND r.rated_at OPERATOR(pg_catalog.>) pg_catalog.to_timestamp(coalesce((m.fingerprint OPERATOR(pg_catalog.->>) 'max_rated_at')::pg_catalog.float8, 0))
ORDER BY r.user_id, r.movie_id
