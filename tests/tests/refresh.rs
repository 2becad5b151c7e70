//! CALL recsys_refresh_batch against a real cluster and a trained model: the batch covers every user with unrated
//! movies, readers see the complete old batch until the refresh commits, a second refresh is refused while one runs,
//! a failed or cancelled refresh leaves the last good batch in place, shards refreshed separately make the same batch
//! as one refresh, progress is reported, and new ratings the prospective RMSE cannot score are counted and said.
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

fn batch_rows(db: &mut Client) -> Vec<(i32, i16, i32, f32)> {
    db.query("SELECT user_id, rank, movie_id, score FROM recsys.batch_recommendations ORDER BY 1, 2", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[test]
fn three_shards_refreshed_separately_make_the_batch_of_one_refresh() {
    let mut db = cluster().trained_demo_database("refresh_shards").unwrap();
    db.batch_execute("SET recsys.refresh_users_per_round = 37; CALL recsys.recsys_refresh_batch(6)").unwrap();
    let whole = batch_rows(&mut db);
    db.batch_execute(
        "UPDATE recsys.batch_recommendations SET movie_id = -movie_id, score = 0;
         INSERT INTO recsys.batch_recommendations VALUES (999999, 1, 1, 0, 1, now())",
    )
    .unwrap();

    let mut shard_sessions: Vec<Client> = (0..3).map(|_| connect("refresh_shards")).collect();
    for session in &mut shard_sessions {
        session.batch_execute("BEGIN").unwrap();
    }
    for (shard, session) in shard_sessions.iter_mut().enumerate() {
        session.batch_execute(&format!("CALL recsys.recsys_refresh_batch(6, shard => {shard}, shards => 3)")).unwrap();
    }
    let (code, message) = sql_error(&mut db, "CALL recsys.recsys_refresh_batch(6)");
    assert_eq!((code.as_str(), message.as_str()), ("55P03", "another recsys_refresh_batch is running"), "a whole refresh waits for the shards");
    let (code, _) = sql_error(&mut connect("refresh_shards"), "CALL recsys.recsys_refresh_batch(6, shard => 2, shards => 3)");
    assert_eq!(code, "55P03", "the same shard twice at once is refused");
    for session in &mut shard_sessions {
        session.batch_execute("COMMIT").unwrap();
    }
    assert_eq!(batch_rows(&mut db), whole, "the three shards together wrote exactly the batch of one refresh");
    let logged: Vec<String> = db
        .query(
            "SELECT details->>'shard' || ' of ' || (details->>'shards') FROM recsys.quality_log WHERE kind = 'refresh' ORDER BY run_id DESC LIMIT 3",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(logged, ["2 of 3", "1 of 3", "0 of 3"]);
    for bad in ["shard => 3, shards => 3", "shard => -1, shards => 2", "shards => 0"] {
        let (code, _) = sql_error(&mut db, &format!("CALL recsys.recsys_refresh_batch(6, {bad})"));
        assert_eq!(code, "22023", "{bad}");
    }
}

#[test]
fn a_refresh_reports_its_progress_and_a_cancelled_one_keeps_the_previous_batch() {
    let mut db = cluster().trained_demo_database("refresh_cancel").unwrap();

    let notices = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let cancel = std::sync::Arc::new(std::sync::Mutex::new(None::<postgres::CancelToken>));
    let (seen, canceller) = (notices.clone(), cancel.clone());
    let mut config: postgres::Config = cluster().connection_string("postgres", "refresh_cancel").parse().unwrap();
    config.notice_callback(move |notice| {
        seen.lock().unwrap().push(notice.message().to_string());
        if let Some(token) = canceller.lock().unwrap().take() {
            std::thread::spawn(move || token.cancel_query(postgres::NoTls).unwrap());
        }
    });
    let mut watched = config.connect(postgres::NoTls).unwrap();
    watched.batch_execute("SET recsys.refresh_users_per_round = 10").unwrap();
    watched.batch_execute("CALL recsys.recsys_refresh_batch(7)").unwrap();
    let users: i64 = db.query_one("SELECT count(*) FROM recsys.users", &[]).unwrap().get(0);
    let progress: Vec<String> = notices.lock().unwrap().drain(..).filter(|n| n.starts_with("recsys_refresh_batch:")).collect();
    assert_eq!(progress.len(), 9, "a notice at every tenth: {progress:?}");
    assert!(progress[0].contains(&format!(" of {users} users (1")), "{}", progress[0]);
    let good = batch_rows(&mut db);

    *cancel.lock().unwrap() = Some(watched.cancel_token());
    let error = watched.batch_execute("CALL recsys.recsys_refresh_batch(5)").unwrap_err();
    assert_eq!(error.as_db_error().map(|e| e.code().code()), Some("57014"), "cancelled: {error}");
    assert!(notices.lock().unwrap().iter().any(|n| n.starts_with("recsys_refresh_batch:")), "it was cancelled after writing some rounds");
    assert!(batch_rows(&mut db) == good, "the previous batch stays whole");
}

#[test]
fn new_ratings_of_a_movie_no_longer_in_the_catalogue_are_counted_and_said_not_dropped() {
    let mut db = cluster().trained_demo_database("refresh_unscored").unwrap();
    let unrated: Vec<i32> = db
        .query(
            "SELECT movie_id FROM recsys.movies m WHERE NOT EXISTS (SELECT 1 FROM recsys.ratings r WHERE r.user_id = 1 AND r.movie_id = m.movie_id)
             ORDER BY movie_id LIMIT 2",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    db.execute(
        "INSERT INTO recsys.ratings (user_id, movie_id, rating, rated_at) VALUES (1, $1, 4, now()), (1, $2, 3, now())",
        &[&unrated[0], &unrated[1]],
    )
    .unwrap();
    // Ratings follow their movie out of the catalogue (ON DELETE CASCADE) unless the foreign key is gone, as on a
    // database whose operator dropped it to bulk-load: then a new rating can name a movie the model cannot score.
    db.batch_execute("ALTER TABLE recsys.ratings DROP CONSTRAINT ratings_movie_id_fkey").unwrap();
    db.execute("DELETE FROM recsys.movies WHERE movie_id = $1", &[&unrated[1]]).unwrap();

    let (mut refresher, notices) = cluster().connect_keeping_messages("refresh_unscored").unwrap();
    refresher.batch_execute("CALL recsys.recsys_refresh_batch(5)").unwrap();
    let row = db
        .query_one(
            "SELECT prospective_ratings, (details->>'prospective_unscored')::int8 FROM recsys.quality_log WHERE kind = 'refresh' ORDER BY run_id DESC LIMIT 1",
            &[],
        )
        .unwrap();
    let (scored, unscored): (i64, Option<i64>) = (row.get(0), row.get(1));
    assert_eq!((scored, unscored), (1, Some(1)), "one new rating scored, the other counted as unscored");
    let said = notices.lock().unwrap().join("\n");
    assert!(said.contains("leaves out 1 new ratings of movies no longer in the catalogue"), "and said: {said}");
}
