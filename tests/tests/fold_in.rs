//! Fold-in: ratings the active model never saw change a user's predictions, recommendations and batch at once, with
//! no retrain and no write; `recsys.fold_in = off` gives the trained vector back; `recsys_recommend_for` serves a
//! visitor from a handful of ratings.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, sql_error, Loading};

fn listed(db: &mut Client, user: i32) -> Vec<i32> {
    db.query("SELECT movie_id FROM recsys.recsys_recommend($1, 10)", &[&user]).unwrap().iter().map(|r| r.get(0)).collect()
}

fn predicted(db: &mut Client, user: i32, movie: i32) -> f32 {
    db.query_one("SELECT recsys.recsys_predict($1::int, $2::int)", &[&user, &movie]).unwrap().get(0)
}

/// Rows of every table the serving functions could write to.
fn stored(db: &mut Client) -> Vec<i64> {
    ["ratings", "users", "models", "batch_recommendations", "model_snapshots", "quality_log"]
        .iter()
        .map(|table| db.query_one(&format!("SELECT count(*) FROM recsys.{table}"), &[]).unwrap().get(0))
        .collect()
}

#[test]
fn new_ratings_change_a_users_list_at_once_without_retraining_or_writing() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = cluster.trained_demo_database("fold_in").unwrap();
    let user = 7;
    let before = listed(&mut db, user);
    let loved: Vec<i32> = db
        .query(
            "SELECT m.movie_id FROM recsys.movies m JOIN recsys.movie_genres USING (movie_id) JOIN recsys.genres g USING (genre_id)
             WHERE g.name = 'Horror' AND m.movie_id NOT IN (SELECT movie_id FROM recsys.ratings WHERE user_id = $1) ORDER BY m.movie_id LIMIT 8",
            &[&user],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let first_before = predicted(&mut db, user, loved[0]);
    db.execute("INSERT INTO recsys.ratings SELECT $1, movie_id, 5, now() FROM unnest($2::int[]) AS movie_id", &[&user, &loved[1..].to_vec()])
        .unwrap();
    let writes_before = stored(&mut db);

    let after = listed(&mut db, user);
    assert_ne!(after, before, "seven new five-star ratings change the list with no retrain");
    assert!(after.iter().all(|m| !loved[1..].contains(m)), "rated movies stay out of the list");
    let first_after = predicted(&mut db, user, loved[0]);
    assert!(first_after > first_before, "an unrated horror film now scores higher: {first_before} -> {first_after}");
    let explained: f32 = db.query_one("SELECT sum(contribution) FROM recsys.recsys_explain($1, $2)", &[&user, &loved[0]]).unwrap().get::<_, f32>(0);
    assert!((explained.clamp(0.5, 5.0) - first_after).abs() < 1e-4, "the explanation is of the folded vector: {explained} vs {first_after}");
    let detail: String =
        db.query_one("SELECT detail FROM recsys.recsys_explain($1, $2) WHERE component = 'user'", &[&user, &loved[0]]).unwrap().get(0);
    assert!(detail.contains("folded in"), "{detail}");
    assert_eq!(stored(&mut db), writes_before, "serving wrote nothing");

    let horror_film = "SELECT recsys.recsys_predict_new($1, 'The Night House Returns', ARRAY['Horror'], NULL, NULL, 95, 2024)";
    let new_film_folded: f32 = db.query_one(horror_film, &[&user]).unwrap().get(0);

    db.batch_execute("SET recsys.fold_in = off").unwrap();
    assert_eq!(predicted(&mut db, user, loved[0]), first_before, "with fold-in off the trained vector predicts");
    let new_film_trained: f32 = db.query_one(horror_film, &[&user]).unwrap().get(0);
    assert!(
        new_film_folded > new_film_trained,
        "recsys_predict_new folds the new ratings in as recsys_predict does: {new_film_trained} -> {new_film_folded}"
    );
    let unfolded = listed(&mut db, user);
    assert!(unfolded.iter().all(|m| !loved[1..].contains(m)), "rated movies stay out of the list: {unfolded:?}");
    db.batch_execute("RESET recsys.fold_in; CALL recsys.recsys_refresh_batch(10)").unwrap();
    let batch: Vec<i32> = db
        .query("SELECT movie_id FROM recsys.batch_recommendations WHERE user_id = $1 ORDER BY rank", &[&user])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(batch, after, "the batch refresh folds in as recsys_recommend does");

    let newcomer = 990_001;
    db.execute("INSERT INTO recsys.users (user_id) VALUES ($1)", &[&newcomer]).unwrap();
    let average = listed(&mut db, newcomer);
    db.execute("INSERT INTO recsys.ratings SELECT $1, movie_id, 5, now() FROM unnest($2::int[]) AS movie_id", &[&newcomer, &loved[1..].to_vec()])
        .unwrap();
    assert_ne!(listed(&mut db, newcomer), average, "a user the model never saw is fitted from their ratings");
}

#[test]
fn a_visitor_gets_recommendations_from_a_few_ratings() {
    // A model trained with the default epochs: a user's own vector then reflects their ratings.
    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = cluster.demo_database("recommend_for").unwrap();
    cluster.trainer_ok("recommend_for", &["train", "--activate", "--skip-cold-start", "--ranking-users", "10"]).unwrap();
    let user = 3;
    let history = db
        .query("SELECT array_agg(movie_id ORDER BY movie_id), array_agg(rating ORDER BY movie_id) FROM recsys.ratings WHERE user_id = $1", &[&user])
        .unwrap();
    let (movies, ratings): (Vec<i32>, Vec<f32>) = (history[0].get(0), history[0].get(1));
    let scores = |db: &mut Client, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]| -> std::collections::HashMap<i32, f32> {
        db.query(sql, params).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect()
    };
    let own = scores(&mut db, "SELECT movie_id, score FROM recsys.recsys_recommend($1, 10000, false)", &[&user]);
    let visitor = scores(&mut db, "SELECT movie_id, score FROM recsys.recsys_recommend_for($1, $2, 10000, false)", &[&movies, &ratings]);
    let average = scores(&mut db, "SELECT movie_id, score FROM recsys.recsys_recommend(987654, 10000, false)", &[]);
    let distance = |other: &std::collections::HashMap<i32, f32>| own.iter().map(|(m, s)| (s - other[m]).abs()).sum::<f32>() / own.len() as f32;
    assert!(
        distance(&visitor) < distance(&average),
        "the same history scores the catalogue close to the user's own scores: {} vs the average user's {}",
        distance(&visitor),
        distance(&average)
    );
    let visitor: Vec<i32> =
        db.query("SELECT movie_id FROM recsys.recsys_recommend_for($1, $2, 10)", &[&movies, &ratings]).unwrap().iter().map(|r| r.get(0)).collect();
    assert!(visitor.iter().all(|m| !movies.contains(m)), "rated movies are left out");
    let average = listed(&mut db, 987_654);
    let object = serde_json::Value::Object(movies.iter().zip(&ratings).map(|(m, r)| (m.to_string(), serde_json::json!(r))).collect());
    let from_json: Vec<i32> =
        db.query("SELECT movie_id FROM recsys.recsys_recommend_for($1::jsonb, 10)", &[&object]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(from_json, visitor, "the jsonb form is the same call");
    let empty: Vec<i32> = db.query("SELECT movie_id FROM recsys.recsys_recommend_for('{}'::jsonb)", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert_eq!(empty, average, "no ratings: the average user's list");

    assert_eq!(sql_error(&mut db, "SELECT * FROM recsys.recsys_recommend_for(ARRAY[1, 2], ARRAY[4.0]::real[])").0, "22023");
    assert_eq!(sql_error(&mut db, "SELECT * FROM recsys.recsys_recommend_for(ARRAY[1], ARRAY[7.0]::real[])").0, "22023");
    assert_eq!(sql_error(&mut db, "SELECT * FROM recsys.recsys_recommend_for(ARRAY[1, NULL], ARRAY[4.0, 3.0]::real[])").0, "22023");
    assert_eq!(sql_error(&mut db, "SELECT * FROM recsys.recsys_recommend_for(ARRAY[-4], ARRAY[4.0]::real[])").0, "42704");
    assert_eq!(sql_error(&mut db, "SELECT * FROM recsys.recsys_recommend_for('{\"x\": 4}'::jsonb)").0, "22023");
}
