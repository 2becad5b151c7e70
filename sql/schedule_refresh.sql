-- Weekly batch refresh with pg_cron. Needs shared_preload_libraries = 'pg_cron' and cron.database_name set to this
-- database; run as a member of recsys_admin. psql -f sql/schedule_refresh.sql
CREATE EXTENSION IF NOT EXISTS pg_cron;
-- Sundays at 03:00, top-10 per user (the job is named recsys_refresh_batch; scheduling again updates it).
SELECT recsys.recsys_schedule_refresh('0 3 * * 0', 10) AS job_id;
SELECT jobid, schedule, command FROM cron.job WHERE jobname = 'recsys_refresh_batch';
-- The same as a plain pg_cron job, for other schedules or several k values:
--   SELECT cron.schedule('nightly top-20', '30 2 * * *', 'CALL recsys.recsys_refresh_batch(20)');
-- To stop it: SELECT recsys.recsys_unschedule_refresh();
