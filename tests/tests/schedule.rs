//! The pg_cron helpers for real: a cluster with pg_cron preloaded (background workers, cron.database_name set to
//! the test database) runs the job recsys_schedule_refresh created, and cron.job_run_details records its success.
use recsys_integration_tests::{sql_error, Loading, TempCluster};
use std::time::{Duration, Instant};

#[test]
fn a_scheduled_refresh_runs_under_pg_cron_and_can_be_removed() {
    let cluster =
        TempCluster::start("cron", Loading::Preloaded, &["cron.database_name=crontest", "cron.use_background_workers=on", "max_worker_processes=16"])
            .unwrap();
    let mut db = cluster.trained_demo_database("crontest").unwrap();
    let (code, _) = sql_error(&mut db, "SELECT recsys.recsys_schedule_refresh('* * * * *', 5)");
    assert_eq!(code, "55000", "without pg_cron the helper says how to install it");
    db.batch_execute("CREATE EXTENSION pg_cron").unwrap();
    let (code, _) = sql_error(&mut db, "SELECT recsys.recsys_schedule_refresh('* * * * *', 0)");
    assert_eq!(code, "22023");

    let first: i64 = db.query_one("SELECT recsys.recsys_schedule_refresh()", &[]).unwrap().get(0);
    let job: i64 = db.query_one("SELECT recsys.recsys_schedule_refresh('* * * * *', 5)", &[]).unwrap().get(0);
    assert_eq!(first, job, "scheduling again updates the one job");
    let (schedule, command): (String, String) = {
        let row = db.query_one("SELECT schedule, command FROM cron.job WHERE jobid = $1", &[&job]).unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((schedule.as_str(), command.as_str()), ("* * * * *", "CALL recsys.recsys_refresh_batch(5)"));

    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        let row = db.query_opt("SELECT status, coalesce(return_message, '') FROM cron.job_run_details WHERE jobid = $1 AND status IN ('succeeded', 'failed') LIMIT 1", &[&job]).unwrap();
        if let Some(row) = row {
            break (row.get::<_, String>(0), row.get::<_, String>(1));
        }
        assert!(Instant::now() < deadline, "the job did not run within 150 s");
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(status.0, "succeeded", "{}", status.1);
    let (rows, users): (i64, i64) = {
        let row = db.query_one("SELECT (SELECT count(*) FROM recsys.batch_recommendations), (SELECT count(*) FROM recsys.users)", &[]).unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(rows, users * 5, "the job filled the batch");
    let logged: i64 = db.query_one("SELECT count(*) FROM recsys.quality_log WHERE kind = 'refresh'", &[]).unwrap().get(0);
    assert!(logged >= 1);

    assert!(db.query_one("SELECT recsys.recsys_unschedule_refresh()", &[]).unwrap().get::<_, bool>(0));
    assert!(!db.query_one("SELECT recsys.recsys_unschedule_refresh()", &[]).unwrap().get::<_, bool>(0));
    let jobs: i64 = db.query_one("SELECT count(*) FROM cron.job", &[]).unwrap().get(0);
    assert_eq!(jobs, 0);

    let printed = cluster.psql_file("crontest", "schedule_refresh.sql").unwrap();
    let row = db.query_one("SELECT jobid, schedule, command FROM cron.job WHERE jobname = 'recsys_refresh_batch'", &[]).unwrap();
    let (job, schedule, command): (i64, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((schedule.as_str(), command.as_str()), ("0 3 * * 0", "CALL recsys.recsys_refresh_batch(10)"), "sql/schedule_refresh.sql");
    assert!(printed.starts_with(&format!("{job}\n")), "it prints the job id first:\n{printed}");
}
