-- The ratings a model version never saw (recsys_contract::RATINGS_AFTER_TRAINING), by the one definition
-- recsys.rating_unseen: loaded after the version read its training data (or, for versions trained before 0.7.0,
-- given after its newest training rating), for the prospective RMSE that the batch refresh logs and the trainer's
-- champion comparison uses. $1: the model version. Returns user_id, movie_id, rating (float8).
SELECT r.user_id, r.movie_id, r.rating::pg_catalog.float8
FROM recsys.ratings r, recsys.models m
WHERE m.version OPERATOR(pg_catalog.=) $1::pg_catalog.int8
  AND recsys.rating_unseen(r.loaded, r.rated_at, (m.fingerprint OPERATOR(pg_catalog.->>) 'loaded_until')::pg_catalog.int8,
                           coalesce((m.fingerprint OPERATOR(pg_catalog.->>) 'max_rated_at')::pg_catalog.float8, 0))
ORDER BY r.user_id, r.movie_id
