//! The per-backend cache never serves a stale catalogue: a movie deleted, renamed, re-genred or inserted with a
//! lower id by another session is seen by an open connection on its next statement, without an activation, and a
//! deleted movie leaves the batch.
use postgres::{Client, NoTls};
use recsys_integration_tests::{shared_cluster, sql_error, Loading, TempCluster};

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::Preloaded)
}

/// The whole catalogue ranked for user 5, rated movies included: (movie id, title).
fn listed(db: &mut Client) -> Vec<(i32, String)> {
    db.query("SELECT movie_id, title FROM recsys.recsys_recommend(5, 10000, false)", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
}

#[test]
fn catalogue_changes_reach_open_connections_on_their_next_statement() {
    let mut writer = cluster().trained_demo_database("cache_catalogue").unwrap();
    writer.batch_execute("CALL recsys.recsys_refresh_batch(250)").unwrap();
    let mut reader = Client::connect(&cluster().connection_string("postgres", "cache_catalogue"), NoTls).unwrap();
    let before: f32 = reader.query_one("SELECT recsys.recsys_predict(5, 3)", &[]).unwrap().get(0);
    assert!(listed(&mut reader).iter().any(|(id, _)| *id == 1));
    let in_batch =
        |db: &mut Client| -> i64 { db.query_one("SELECT count(*) FROM recsys.batch_recommendations WHERE movie_id = 1", &[]).unwrap().get(0) };
    assert!(in_batch(&mut writer) > 0, "movie 1 is recommended to someone before it is deleted");

    writer.batch_execute("DELETE FROM recsys.movies WHERE movie_id = 1").unwrap();
    let (code, message) = sql_error(&mut reader, "SELECT recsys.recsys_predict(5, 1)");
    assert_eq!(code, "42704", "a deleted movie does not exist for an open connection either: {message}");
    assert!(!listed(&mut reader).iter().any(|(id, _)| *id == 1), "a deleted movie is never recommended");
    assert_eq!(in_batch(&mut writer), 0, "a deleted movie leaves the batch");

    writer.batch_execute("UPDATE recsys.movies SET title = 'A Renamed Film' WHERE movie_id = 2").unwrap();
    assert!(listed(&mut reader).contains(&(2, "A Renamed Film".to_string())), "a renamed title is served at once");

    writer
        .batch_execute(
            "DELETE FROM recsys.movie_genres WHERE movie_id = 3;
             INSERT INTO recsys.genres (name) VALUES ('Horror') ON CONFLICT DO NOTHING;
             INSERT INTO recsys.movie_genres SELECT 3, genre_id FROM recsys.genres WHERE name = 'Horror';",
        )
        .unwrap();
    let after: f32 = reader.query_one("SELECT recsys.recsys_predict(5, 3)", &[]).unwrap().get(0);
    assert_ne!(after, before, "new genres change the content part of the score");

    writer.batch_execute("INSERT INTO recsys.movies (movie_id, title, year) VALUES (0, 'A Film With The Lowest Id', 2020)").unwrap();
    assert!(listed(&mut reader).iter().any(|(id, _)| *id == 0), "a movie inserted below the highest id is recommendable");
    let score: f32 = reader.query_one("SELECT recsys.recsys_predict(5, 0)", &[]).unwrap().get(0);
    assert!((0.5..=5.0).contains(&score));
    let version: i64 = reader.query_one("SELECT model_version FROM recsys.recsys_version_info()", &[]).unwrap().get::<_, Option<i64>>(0).unwrap();
    assert_eq!(version, 1, "no activation was needed");
}

/// A connection that keeps the server's DEBUG1 messages, and the messages it received so far.
fn connection_with_debug_messages(database: &str) -> (Client, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let (mut client, messages) = cluster().connect_keeping_messages(database).unwrap();
    client.batch_execute("SET client_min_messages = debug1").unwrap();
    (client, messages)
}

/// Every movie's score for user 5, by movie id.
fn scores(db: &mut Client) -> Vec<(i32, f32)> {
    let rows = db.query("SELECT movie_id, recsys.recsys_predict(5, movie_id) FROM recsys.movies ORDER BY movie_id", &[]).unwrap();
    rows.iter().map(|r| (r.get(0), r.get(1))).collect()
}

#[test]
fn open_and_new_connections_re_encode_only_the_movies_that_changed() {
    let mut writer = cluster().trained_demo_database("cache_patch").unwrap();
    let (mut reader, messages) = connection_with_debug_messages("cache_patch");
    reader.query_one("SELECT recsys.recsys_predict(5, 3)", &[]).unwrap();
    writer
        .batch_execute(
            "INSERT INTO recsys.movies (movie_id, title, year, runtime_minutes) VALUES (900001, 'A Film Added After Training', 2024, 101);
             INSERT INTO recsys.movie_genres SELECT 900001, genre_id FROM recsys.genres WHERE name = 'Comedy';
             UPDATE recsys.movies SET title = 'A Renamed Film' WHERE movie_id = 2;
             DELETE FROM recsys.movies WHERE movie_id = 3;",
        )
        .unwrap();
    messages.lock().unwrap().clear();
    let patched = scores(&mut reader);
    let said = messages.lock().unwrap().join("\n");
    assert!(said.contains("3 changed movies re-encoded"), "the open connection patched its catalogue: {said}");
    assert!(!said.contains("loaded in"), "and did not load the model again: {said}");
    assert!(patched.iter().any(|(id, _)| *id == 900001) && !patched.iter().any(|(id, _)| *id == 3));

    let (mut new_connection, new_messages) = connection_with_debug_messages("cache_patch");
    let from_snapshot = scores(&mut new_connection);
    let said = new_messages.lock().unwrap().join("\n");
    assert!(said.contains("patched to") && said.contains("3 changed movies re-encoded"), "a new connection patches the stored snapshot: {said}");

    writer.batch_execute("DELETE FROM recsys.model_snapshots").unwrap();
    let (mut fresh, fresh_messages) = connection_with_debug_messages("cache_patch");
    let encoded_whole = scores(&mut fresh);
    let said = fresh_messages.lock().unwrap().join("\n");
    assert!(said.contains("loaded in") && !said.contains("re-encoded"), "without a snapshot a new connection encodes the whole catalogue: {said}");
    for served in [&patched, &from_snapshot] {
        assert_eq!(served.len(), encoded_whole.len());
        for ((movie, score), (fresh_movie, fresh_score)) in served.iter().zip(&encoded_whole) {
            assert_eq!(movie, fresh_movie);
            assert!((score - fresh_score).abs() < 1e-5, "movie {movie}: patched {score}, encoded whole {fresh_score}");
        }
    }

    writer.batch_execute("UPDATE recsys.genres SET name = name").unwrap();
    messages.lock().unwrap().clear();
    reader.query_one("SELECT recsys.recsys_predict(5, 2)", &[]).unwrap();
    let said = messages.lock().unwrap().join("\n");
    assert!(said.contains("loaded in") && !said.contains("re-encoded"), "a change of every movie (genres) re-reads the catalogue: {said}");
}

#[test]
fn a_rolled_back_catalogue_change_is_never_served_after_its_transaction() {
    let mut writer = cluster().trained_demo_database("cache_rollback").unwrap();
    let mut reader = Client::connect(&cluster().connection_string("postgres", "cache_rollback"), NoTls).unwrap();
    reader.query_one("SELECT recsys.recsys_predict(5, 4)", &[]).unwrap();
    reader.batch_execute("BEGIN; DELETE FROM recsys.movies WHERE movie_id = 4").unwrap();
    assert!(!listed(&mut reader).iter().any(|(id, _)| *id == 4), "the transaction sees its own delete");
    reader.batch_execute("ROLLBACK").unwrap();
    writer.batch_execute("UPDATE recsys.movies SET title = 'Renamed While The Other Rolled Back' WHERE movie_id = 6").unwrap();
    let after = listed(&mut reader);
    assert!(after.iter().any(|(id, _)| *id == 4), "the rolled-back delete is not served: movie 4 is back");
    assert!(after.contains(&(6, "Renamed While The Other Rolled Back".to_string())), "and the committed rename is served");
}
