//! CALL recsys_refresh_batch against a real cluster and a trained model: the batch covers every user with unrated
//! movies, readers see the complete old batch until the refresh commits, a second refresh is refused while one runs,
//! and a failed refresh leaves the last good batch in place.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, sql_error, Loading, TempCluster};

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::Preloaded)
}

fn connect(database: &str) -> Client {
    Client::connect(&cluster().connection_string("postgres", database), postgres::NoTls).unwrap()
}

/// (rows, distinct generated_at values, model versions) of the batch table.
fn batch_state(db: &mut Client) -> (i64, i64, Vec<i64>) {
    let row = db
        .query_one(
            "SELECT count(*), count(DISTINCT generated_at), coalesce(array_agg(DISTINCT model_version), '{}') FROM recsys.batch_recommendations",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[test]
fn the_batch_holds_k_unrated_movies_for_every_user() {
    let mut db = cluster().trained_demo_database("refresh_content").unwrap();
    db.batch_execute("CALL recsys.recsys_refresh_batch(7)").unwrap();
    let users: i64 = db.query_one("SELECT count(*) FROM recsys.users", &[]).unwrap().get(0);
    let (rows, stamps, versions) = batch_state(&mut db);
    assert_eq!((rows, stamps, versions), (users * 7, 1, vec![1]));
    let per_user_ranks: i64 = db
        .query_one("SELECT count(*) FROM (SELECT user_id FROM recsys.batch_recommendations GROUP BY user_id HAVING array_agg(rank ORDER BY rank) = '{1,2,3,4,5,6,7}') u", &[])
        .unwrap()
        .get(0);
    assert_eq!(per_user_ranks, users);
    let rated: i64 =
        db.query_one("SELECT count(*) FROM recsys.batch_recommendations b JOIN recsys.ratings r USING (user_id, movie_id)", &[]).unwrap().get(0);
    assert_eq!(rated, 0, "rated movies must not be recommended");
    let mismatched: i64 = db
        .query_one("SELECT count(*) FROM recsys.batch_recommendations WHERE abs(score - recsys.recsys_predict(user_id, movie_id)) > 1e-4", &[])
        .unwrap()
        .get(0);
    assert_eq!(mismatched, 0, "batch scores equal recsys_predict");
    let same_as_realtime: i64 = db
        .query_one(
            "SELECT count(*) FROM recsys.batch_recommendations b JOIN LATERAL recsys.recsys_recommend(b.user_id, 7) r ON r.rank = b.rank
             WHERE r.movie_id = b.movie_id AND b.user_id <= 20",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(same_as_realtime, 20 * 7, "the batch equals recsys_recommend for the first 20 users");
    let log = db
        .query_one("SELECT kind, model_version, users, recommendations, catalogue_coverage > 0, changed_share IS NULL FROM recsys.quality_log ORDER BY run_id DESC LIMIT 1", &[])
        .unwrap();
    assert_eq!(
        (log.get::<_, String>(0), log.get::<_, i64>(1), log.get::<_, i64>(2), log.get::<_, i64>(3), log.get::<_, bool>(4), log.get::<_, bool>(5)),
        ("refresh".to_string(), 1, users, users * 7, true, true)
    );
    db.batch_execute("CALL recsys.recsys_refresh_batch(7)").unwrap();
    let changed: f64 = db.query_one("SELECT changed_share FROM recsys.quality_log ORDER BY run_id DESC LIMIT 1", &[]).unwrap().get(0);
    assert_eq!(changed, 0.0, "the same model and data give the same batch");
}

#[test]
fn readers_see_the_old_batch_until_the_refresh_commits_and_a_second_refresh_is_refused() {
    let mut writer = cluster().trained_demo_database("refresh_atomic").unwrap();
    writer.batch_execute("CALL recsys.recsys_refresh_batch(3)").unwrap();
    let mut reader = connect("refresh_atomic");
    let before = batch_state(&mut reader);
    let before_rows: Vec<(i32, i32)> = reader
        .query("SELECT user_id, movie_id FROM recsys.batch_recommendations ORDER BY 1, 2", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();

    writer.batch_execute("BEGIN; CALL recsys.recsys_refresh_batch(5)").unwrap();
    let during = batch_state(&mut reader);
    assert_eq!(during, before, "a reader sees the complete old batch while the refresh is uncommitted");
    let during_rows: Vec<(i32, i32)> = reader
        .query("SELECT user_id, movie_id FROM recsys.batch_recommendations ORDER BY 1, 2", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(during_rows, before_rows);

    let mut second = connect("refresh_atomic");
    let (code, message) = sql_error(&mut second, "CALL recsys.recsys_refresh_batch(5)");
    assert_eq!((code.as_str(), message.as_str()), ("55P03", "another recsys_refresh_batch is running"));

    writer.batch_execute("COMMIT").unwrap();
    let after = batch_state(&mut reader);
    assert_eq!(after.0, before.0 / 3 * 5, "the new batch appears whole at commit");
    assert_eq!(after.1, 1);
    second.batch_execute("CALL recsys.recsys_refresh_batch(5)").unwrap();
}

#[test]
fn a_failed_refresh_keeps_the_last_good_batch() {
    let mut db = cluster().trained_demo_database("refresh_failure").unwrap();
    db.batch_execute("CALL recsys.recsys_refresh_batch(4)").unwrap();
    let good = batch_state(&mut db);
    let (code, _) = sql_error(&mut db, "CALL recsys.recsys_refresh_batch(0)");
    assert_eq!(code, "22023");
    let (code, _) = sql_error(&mut db, "CALL recsys.recsys_refresh_batch(10, 0)");
    assert_eq!(code, "22023");
    db.batch_execute("UPDATE recsys.models SET weights = '\\x00' WHERE status = 'active'").unwrap();
    let mut fresh = connect("refresh_failure");
    let (code, message) = sql_error(&mut fresh, "CALL recsys.recsys_refresh_batch(4)");
    assert_eq!(code, "XX001", "{message}");
    assert_eq!(batch_state(&mut fresh), good, "the last good batch stays after a failed refresh");
    db.batch_execute("UPDATE recsys.models SET status = 'retired' WHERE status = 'active'").unwrap();
    let (code, _) = sql_error(&mut fresh, "CALL recsys.recsys_refresh_batch(4)");
    assert_eq!(code, "55000");
    assert_eq!(batch_state(&mut fresh), good);
}
