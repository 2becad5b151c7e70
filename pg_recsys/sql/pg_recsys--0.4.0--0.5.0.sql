-- pg_recsys 0.4.0 → 0.5.0 (ALTER EXTENSION pg_recsys UPDATE): keeps every row, model version and the active model.
-- The batch refresh takes a shard: recsys_refresh_batch(k, threads, shard, shards) refreshes only the users whose
-- id modulo shards is shard, so that separate sessions or nodes refresh one batch side by side. Calls written for
-- 0.4.0 (CALL recsys_refresh_batch(10), pg_cron jobs) keep working through the defaults. recsys_recommend gains
-- explain => true and a because column (NULL unless asked).
\echo Use "ALTER EXTENSION pg_recsys UPDATE TO '0.5.0'" to load this file. \quit

DROP PROCEDURE @extschema@.recsys_refresh_batch(integer, integer);
DROP FUNCTION @extschema@.recsys_refresh_batch_now(integer, integer);

CREATE FUNCTION @extschema@."recsys_refresh_batch_now"(
	"k" INT DEFAULT 10,
	"threads" INT DEFAULT NULL,
	"shard" INT DEFAULT 0,
	"shards" INT DEFAULT 1
) RETURNS TABLE (
	"model_version" bigint,
	"users" bigint,
	"recommendations" bigint,
	"catalogue_coverage" double precision,
	"changed_share" double precision,
	"prospective_rmse" double precision,
	"seconds" double precision
)
VOLATILE PARALLEL UNSAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'recsys_refresh_batch_by_shard_wrapper';
COMMENT ON FUNCTION @extschema@.recsys_refresh_batch_now(integer, integer, integer, integer) IS 'The batch refresh (whole, or shard i of n) as a function returning its summary; CALL recsys_refresh_batch(k) wraps it. Admin only.';

CREATE PROCEDURE @extschema@.recsys_refresh_batch(k integer DEFAULT 10, threads integer DEFAULT NULL, shard integer DEFAULT 0, shards integer DEFAULT 1)
LANGUAGE plpgsql SET search_path = pg_catalog, @extschema@, pg_temp AS $$
DECLARE
    run record;
BEGIN
    SELECT * INTO run FROM @extschema@.recsys_refresh_batch_now(k, threads, shard, shards);
    RAISE NOTICE 'batch refreshed with model version %: % recommendations for % users in % s',
        run.model_version, run.recommendations, run.users, round(run.seconds::numeric, 2);
END
$$;
COMMENT ON PROCEDURE @extschema@.recsys_refresh_batch(integer, integer, integer, integer) IS
'Recomputes batch_recommendations (top-k unrated movies for every user, or for the users whose id modulo shards is shard) with the active model in one transaction: readers see the previous batch until it commits. Admin only; safe as the only statement of a pg_cron job.';

REVOKE EXECUTE ON FUNCTION @extschema@.recsys_refresh_batch_now(integer, integer, integer, integer) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE @extschema@.recsys_refresh_batch(integer, integer, integer, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION @extschema@.recsys_refresh_batch_now(integer, integer, integer, integer) TO recsys_admin;
GRANT EXECUTE ON PROCEDURE @extschema@.recsys_refresh_batch(integer, integer, integer, integer) TO recsys_admin;

DROP FUNCTION @extschema@.recsys_recommend(integer, integer, boolean, text);
CREATE FUNCTION @extschema@."recsys_recommend"(
	"user_id" INT,
	"k" INT DEFAULT 10,
	"exclude_rated" bool DEFAULT true,
	"genre" TEXT DEFAULT NULL,
	"explain" bool DEFAULT false
) RETURNS TABLE (
	"rank" INT,
	"movie_id" INT,
	"title" TEXT,
	"score" real,
	"because" TEXT
)
STABLE PARALLEL SAFE
LANGUAGE c
AS 'MODULE_PATHNAME', 'recsys_recommend_with_reasons_wrapper';
COMMENT ON FUNCTION @extschema@.recsys_recommend(integer, integer, boolean, text, boolean) IS 'The k best movies for a user over the whole catalogue (rank, movie_id, title, score, and with explain => true a because text), optionally unrated only and of one genre.';
