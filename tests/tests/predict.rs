//! recsys_predict inside real backends with a model the real trainer registered: predictions match the trainer's
//! own evaluation, a new activation reaches an open connection on its next statement, and bad input gets the
//! documented results and SQLSTATEs.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, sql_error, Loading, ScratchDir, TempCluster};
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
    cluster()
        .trainer_ok(
            database,
            &[
                "train",
                "--activate",
                "--epochs",
                "3",
                "--skip-cold-start",
                "--ranking-users",
                "10",
                "--seed",
                seed,
                "--no-refit",
                "--test-ratings",
                &file,
            ],
        )
        .unwrap();
}

fn write_test_pairs(db: &mut Client, dir: &ScratchDir) -> std::path::PathBuf {
    let rows = db.query(&format!("SELECT user_id, movie_id FROM recsys.ratings WHERE {TEST_PAIRS}"), &[]).unwrap();
    let mut csv = String::from("user_id,movie_id\n");
    for row in rows {
        csv.push_str(&format!("{},{}\n", row.get::<_, i32>(0), row.get::<_, i32>(1)));
    }
    dir.write("test.csv", csv).unwrap()
}

/// A demo database with a model trained (and activated) on all ratings but the test pairs.
fn trained_demo(name: &str, seed: &str) -> (Client, ScratchDir, std::path::PathBuf) {
    let mut db = demo_database(name);
    let dir = ScratchDir::new(name).unwrap();
    let test_file = write_test_pairs(&mut db, &dir);
    train(name, seed, &test_file);
    (db, dir, test_file)
}

#[test]
fn sql_predictions_reproduce_the_trainers_evaluation() {
    let (mut db, _dir, _test_file) = trained_demo("predict_match", "5");
    let registered: f64 =
        db.query_one("SELECT (metrics #>> '{random_holdout,model,rmse}')::float8 FROM recsys.models WHERE status = 'active'", &[]).unwrap().get(0);
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
    let (_db, _dir, test_file) = trained_demo("predict_reload", "1");
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

    let (mut db, _dir, _test_file) = trained_demo("predict_bad", "3");
    let null: Option<f32> = db.query_one("SELECT recsys.recsys_predict(NULL, 1)", &[]).unwrap().get(0);
    assert_eq!(null, None);
    let unknown_users = "SELECT array_agg(recsys.recsys_predict(987654, movie_id) ORDER BY movie_id), array_agg(recsys.recsys_predict(-3, movie_id) ORDER BY movie_id)
                         FROM recsys.movies WHERE movie_id <= 40";
    let row = db.query_one(unknown_users, &[]).unwrap();
    let (unknown, other_unknown): (Vec<f32>, Vec<f32>) = (row.get(0), row.get(1));
    assert_eq!(unknown, other_unknown, "every unknown user is the same (the unknown-user row, no user bias)");
    let known_range = "SELECT m.movie_id, min(recsys.recsys_predict(u.user_id, m.movie_id)), max(recsys.recsys_predict(u.user_id, m.movie_id))
                       FROM recsys.movies m, recsys.users u WHERE m.movie_id <= 40 GROUP BY m.movie_id ORDER BY m.movie_id";
    let ranges: Vec<(f32, f32)> = db.query(known_range, &[]).unwrap().iter().map(|r| (r.get(1), r.get(2))).collect();
    let inside = unknown.iter().zip(&ranges).filter(|(score, (low, high))| (*low..=*high).contains(*score)).count();
    assert!(
        inside * 10 >= unknown.len() * 9,
        "an unknown user is scored as an average user: within the known users' range for {inside} of {} movies",
        unknown.len()
    );
    assert_eq!(sql_error(&mut db, "SELECT recsys.recsys_predict(1, 424242)"), ("42704".into(), "movie 424242 does not exist".into()));

    db.batch_execute("INSERT INTO recsys.movies (movie_id, title, year, runtime_minutes) VALUES (5000, 'A Film Added After Training', 2024, 101)")
        .unwrap();
    let new_movie: f32 = db.query_one("SELECT recsys.recsys_predict(1, 5000)", &[]).unwrap().get(0);
    let cold_start: f32 =
        db.query_one("SELECT recsys.recsys_predict_new(1, 'A Film Added After Training', NULL, NULL, NULL, 101, 2024)", &[]).unwrap().get(0);
    assert!(
        (new_movie - cold_start).abs() < 1e-5,
        "a movie the model never saw is scored from its content, as recsys_predict_new scores it: {new_movie} vs {cold_start}"
    );

    db.batch_execute("UPDATE recsys.models SET weights = substring(weights FROM 1 FOR 100) WHERE status = 'active'").unwrap();
    let mut fresh = Client::connect(&cluster().connection_string("postgres", "predict_bad"), postgres::NoTls).unwrap();
    let (code, message) = sql_error(&mut fresh, "SELECT recsys.recsys_predict(1, 1)");
    assert_eq!(code, "XX001");
    assert!(message.contains("checksum mismatch"), "{message}");
    fresh.query_one("SELECT 1", &[]).expect("the backend survives");
}

#[test]
fn batched_predictions_and_recommendations_agree_with_single_predictions() {
    let (mut db, _dir, _test_file) = trained_demo("predict_batch", "4");
    let single = |db: &mut Client, movie: i32| -> f32 { db.query_one("SELECT recsys.recsys_predict(1, $1)", &[&movie]).unwrap().get(0) };

    let batch: Vec<(i32, f32)> = db
        .query("SELECT movie_id, score FROM recsys.recsys_predict(1, ARRAY[3, 1, NULL, 2])", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(batch.iter().map(|b| b.0).collect::<Vec<_>>(), [3, 1, 2], "one row per non-NULL id, in order");
    for (movie, score) in &batch {
        assert!((single(&mut db, *movie) - score).abs() < 1e-5);
    }

    let top: Vec<(i32, i32, String, f32)> = db
        .query("SELECT rank, movie_id, title, score FROM recsys.recsys_recommend(1)", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(top.len(), 10);
    assert_eq!(top.iter().map(|t| t.0).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
    for (_, movie, _, score) in &top {
        assert!(
            (single(&mut db, *movie) - score).abs() < 1e-5,
            "each row's score is the movie's predicted rating (the order is the preference part's)"
        );
    }
    let rated: i64 = db
        .query_one("SELECT count(*) FROM recsys.recsys_recommend(1, 50) r JOIN recsys.ratings x ON x.user_id = 1 AND x.movie_id = r.movie_id", &[])
        .unwrap()
        .get(0);
    assert_eq!(rated, 0, "rated movies are excluded");
    let title: String = db.query_one("SELECT title FROM recsys.movies WHERE movie_id = $1", &[&top[0].1]).unwrap().get(0);
    assert_eq!(top[0].2, title);

    let off_genre: i64 = db
        .query_one(
            "SELECT count(*) FROM recsys.recsys_recommend(1, 20, genre => 'horror') r
             WHERE NOT EXISTS (SELECT 1 FROM recsys.movie_genres mg JOIN recsys.genres g USING (genre_id) WHERE mg.movie_id = r.movie_id AND g.name = 'Horror')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(off_genre, 0);
    let with_rated: i64 = db.query_one("SELECT count(*) FROM recsys.recsys_recommend(1, 250, false)", &[]).unwrap().get(0);
    assert_eq!(with_rated, 250, "without exclusion the whole catalogue can be returned");
    assert_eq!(sql_error(&mut db, "SELECT * FROM recsys.recsys_recommend(1, 0)").0, "22023");
    assert_eq!(sql_error(&mut db, "SELECT * FROM recsys.recsys_recommend(1, 1000000)").0, "22023");
    let none: i64 = db.query_one("SELECT count(*) FROM recsys.recsys_recommend(NULL)", &[]).unwrap().get(0);
    assert_eq!(none, 0);

    let every_user = "SELECT u.user_id, r.* FROM recsys.users u, recsys.recsys_recommend(u.user_id, 20) r";
    db.batch_execute(&format!(
        "SET recsys.bfloat16 = off; CREATE TEMP TABLE exact AS {every_user};
         SET recsys.bfloat16 = on; CREATE TEMP TABLE fast AS {every_user}; RESET recsys.bfloat16"
    ))
    .unwrap();
    let counts = db
        .query_one(
            "SELECT (SELECT count(*) FROM exact),
                    (SELECT count(*) FROM exact e FULL JOIN fast f USING (user_id, rank, movie_id) WHERE e.user_id IS NULL OR f.user_id IS NULL),
                    (SELECT max(abs(e.score - f.score))::float8 FROM exact e JOIN fast f USING (user_id, rank, movie_id))",
            &[],
        )
        .unwrap();
    let (rows, differing, score_gap): (i64, i64, f64) = (counts.get(0), counts.get(1), counts.get(2));
    assert!(rows >= 20 * 100, "{rows} rows");
    assert_eq!(differing, 0, "bfloat16 ranking with exact rescoring returns the float32 ranking");
    assert!(score_gap < 1e-5, "and the float32 scores (up to summation order): {score_gap}");
}

#[test]
fn new_movies_are_scored_from_their_features() {
    let (mut db, _dir, _test_file) = trained_demo("predict_new", "6");
    let score = |db: &mut Client, sql: &str| -> Option<f32> { db.query_one(sql, &[]).unwrap().get(0) };
    let full = score(&mut db, "SELECT recsys.recsys_predict_new(1, 'The Dark Knight Returns', ARRAY['Action','Crime'], ARRAY['Christopher Nolan'], ARRAY['Christian Bale','Tom Hardy'], 150, 2026)").unwrap();
    let text = score(
        &mut db,
        "SELECT recsys.recsys_predict_new(1, 'The Dark Knight Returns', 'Action, Crime', 'Christopher Nolan', 'Christian Bale,Tom Hardy', 150, 2026)",
    )
    .unwrap();
    assert!((full - text).abs() < 1e-5, "the comma-separated form means the same: {full} vs {text}");
    let again = score(&mut db, "SELECT recsys.recsys_predict_new(1, 'The Dark Knight Returns', ARRAY['Action','Crime'], ARRAY['Christopher Nolan'], ARRAY['Christian Bale','Tom Hardy'], 150, 2026)").unwrap();
    assert_eq!(full, again);
    let romance = score(
        &mut db,
        "SELECT recsys.recsys_predict_new(1, 'A Quiet Summer Love Story', ARRAY['Romance'], ARRAY['Nora Ephron'], ARRAY['Meg Ryan'], 95, 1994)",
    )
    .unwrap();
    assert_ne!(full, romance, "different content, different score");
    assert_eq!(score(&mut db, "SELECT recsys.recsys_predict_new(NULL, 'x')"), None);
    assert!(score(&mut db, "SELECT recsys.recsys_predict_new(1, '')").is_some(), "an empty title is embedded as empty text");
    assert!(score(&mut db, &format!("SELECT recsys.recsys_predict_new(1, '{}')", "long title ".repeat(1000))).is_some());
    assert!(score(
        &mut db,
        "SELECT recsys.recsys_predict_new(1, 'Crowded', actors => (SELECT array_agg('Actor ' || i) FROM generate_series(1, 10000) i))"
    )
    .is_some());
    assert_eq!(sql_error(&mut db, "SELECT recsys.recsys_predict_new(1, 'x', runtime_minutes => -5)").0, "22023");
    assert_eq!(sql_error(&mut db, "SELECT recsys.recsys_predict_new(1, 'x', runtime_minutes => 'NaN')").0, "22023");
}
