//! recsys_predict inside real backends with a model the real trainer registered: predictions match the trainer's
//! own evaluation, a new activation reaches an open connection on its next statement, and bad input gets the
//! documented results and SQLSTATEs.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, Loading, ScratchDir, TempCluster};
use std::path::Path;

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::Preloaded)
}

const TEST_PAIRS: &str = "(user_id + movie_id) % 10 = 0";

fn demo_database(name: &str) -> Client {
    cluster().demo_database(name).unwrap()
}

fn train(database: &str, seed: &str, test_file: &Path) {
    let file = test_file.display().to_string();
    cluster().trainer_ok(database, &["train", "--activate", "--epochs", "3", "--skip-cold-start", "--ranking-users", "10", "--seed", seed, "--test-ratings", &file]).unwrap();
}

fn write_test_pairs(db: &mut Client, dir: &ScratchDir) -> std::path::PathBuf {
    let rows = db.query(&format!("SELECT user_id, movie_id FROM recsys.ratings WHERE {TEST_PAIRS}"), &[]).unwrap();
    let mut csv = String::from("user_id,movie_id\n");
    for row in rows {
        csv.push_str(&format!("{},{}\n", row.get::<_, i32>(0), row.get::<_, i32>(1)));
    }
    dir.write("test.csv", csv).unwrap()
}

fn sql_error(client: &mut Client, sql: &str) -> (String, String) {
    let error = client.query(sql, &[]).unwrap_err();
    let db = error.as_db_error().expect("a SQL error, not a lost connection");
    (db.code().code().to_string(), db.message().to_string())
}

#[test]
fn sql_predictions_reproduce_the_trainers_evaluation() {
    let mut db = demo_database("predict_match");
    let dir = ScratchDir::new("predict_match").unwrap();
    let test_file = write_test_pairs(&mut db, &dir);
    train("predict_match", "5", &test_file);
    let registered: f64 = db.query_one("SELECT (metrics #>> '{random_holdout,model,rmse}')::float8 FROM recsys.models WHERE status = 'active'", &[]).unwrap().get(0);
    let sql: f64 = db
        .query_one(&format!("SELECT sqrt(avg((recsys.recsys_predict(user_id, movie_id) - rating)^2)) FROM recsys.ratings WHERE {TEST_PAIRS}"), &[])
        .unwrap()
        .get(0);
    assert!((sql - registered).abs() < 1e-4, "SQL RMSE {sql} vs trainer RMSE {registered}");
    let (loaded, version): (bool, Option<i64>) = {
        let row = db.query_one("SELECT model_loaded, model_version FROM recsys.recsys_version_info()", &[]).unwrap();
        (row.get(0), row.get(1))
    };
    assert!(loaded && version == Some(1));
}

#[test]
fn an_activation_reaches_open_connections_on_their_next_statement() {
    let mut db = demo_database("predict_reload");
    let dir = ScratchDir::new("predict_reload").unwrap();
    let test_file = write_test_pairs(&mut db, &dir);
    train("predict_reload", "1", &test_file);
    let mut reader = Client::connect(&cluster().connection_string("postgres", "predict_reload"), postgres::NoTls).unwrap();
    let predict = |client: &mut Client| -> (f32, i64) {
        let score: f32 = client.query_one("SELECT recsys.recsys_predict(1, 1)", &[]).unwrap().get(0);
        let version: i64 = client.query_one("SELECT model_version FROM recsys.recsys_version_info()", &[]).unwrap().get(0);
        (score, version)
    };
    let (first_score, first_version) = predict(&mut reader);
    assert_eq!(first_version, 1);
    train("predict_reload", "2", &test_file);
    let (second_score, second_version) = predict(&mut reader);
    assert_eq!(second_version, 2, "the open connection uses the newly activated version");
    assert_ne!(first_score, second_score);
}

#[test]
fn bad_input_gets_documented_results_and_errors() {
    let mut empty = cluster().fresh_database("predict_none").unwrap();
    assert_eq!(sql_error(&mut empty, "SELECT recsys.recsys_predict(1, 1)"), ("55000".into(), "no model is active".into()));

    let mut db = demo_database("predict_bad");
    let dir = ScratchDir::new("predict_bad").unwrap();
    let test_file = write_test_pairs(&mut db, &dir);
    train("predict_bad", "3", &test_file);
    let null: Option<f32> = db.query_one("SELECT recsys.recsys_predict(NULL, 1)", &[]).unwrap().get(0);
    assert_eq!(null, None);
    let unknown_user: f32 = db.query_one("SELECT recsys.recsys_predict(987654, 1)", &[]).unwrap().get(0);
    assert!((0.5..=5.0).contains(&unknown_user), "an unknown user is scored as an average user: {unknown_user}");
    assert_eq!(sql_error(&mut db, "SELECT recsys.recsys_predict(1, 424242)"), ("42704".into(), "movie 424242 does not exist".into()));

    db.batch_execute("INSERT INTO recsys.movies (movie_id, title, year, runtime_minutes) VALUES (5000, 'A Film Added After Training', 2024, 101)").unwrap();
    let new_movie: f32 = db.query_one("SELECT recsys.recsys_predict(1, 5000)", &[]).unwrap().get(0);
    assert!((0.5..=5.0).contains(&new_movie), "a movie the model never saw is scored from its content: {new_movie}");

    db.batch_execute("UPDATE recsys.models SET weights = substring(weights FROM 1 FOR 100) WHERE status = 'active'").unwrap();
    let mut fresh = Client::connect(&cluster().connection_string("postgres", "predict_bad"), postgres::NoTls).unwrap();
    let (code, message) = sql_error(&mut fresh, "SELECT recsys.recsys_predict(1, 1)");
    assert_eq!(code, "XX001");
    assert!(message.contains("checksum mismatch"), "{message}");
    fresh.query_one("SELECT 1", &[]).expect("the backend survives");
}
