//! recsys_explain over a model the trainer registered: the parts add up to the prediction, an unknown user and a
//! movie without ratings contribute nothing of their own, the details name what a user would look for.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, sql_error, Loading};
use std::collections::HashMap;

fn parts(db: &mut Client, user: i32, movie: i32) -> HashMap<String, (String, f32)> {
    let rows = db.query("SELECT component, detail, contribution FROM recsys.recsys_explain($1, $2)", &[&user, &movie]).unwrap();
    rows.iter().map(|r| (r.get::<_, String>(0), (r.get::<_, String>(1), r.get::<_, f32>(2)))).collect()
}

/// The parts' sum, clipped as recsys_predict clips, equals recsys_predict; returns the unclipped sum.
fn assert_adds_up(db: &mut Client, user: i32, movie: i32) -> f32 {
    let sum: f32 = parts(db, user, movie).values().map(|(_, value)| value).sum();
    let predicted: f32 = db.query_one("SELECT recsys.recsys_predict($1::int, $2::int)", &[&user, &movie]).unwrap().get(0);
    assert!((sum.clamp(0.5, 5.0) - predicted).abs() < 1e-4, "user {user}, movie {movie}: parts sum to {sum}, recsys_predict gives {predicted}");
    sum
}

#[test]
fn the_parts_of_a_prediction_add_up_to_it_and_name_their_reasons() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = cluster.trained_demo_database("explain").unwrap();
    let pairs: Vec<(i32, i32)> = db
        .query("SELECT user_id, movie_id FROM recsys.ratings ORDER BY user_id, movie_id LIMIT 25", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let sums: Vec<f32> = pairs.iter().map(|(user, movie)| assert_adds_up(&mut db, *user, *movie)).collect();
    assert!(sums.iter().any(|s| (0.5..5.0).contains(s)), "some sums are inside the scale, where the comparison is exact: {sums:?}");

    let (user, movie) = pairs[0];
    let explained = parts(&mut db, user, movie);
    for component in
        ["global bias", "baseline", "user bias", "movie bias", "user", "movie", "genres", "title", "directors", "actors", "year and runtime"]
    {
        assert!(explained.contains_key(component), "{component} missing from {explained:?}");
    }
    assert!(explained["user"].0.contains("you rated"), "the user's part names rated movies: {:?}", explained["user"]);
    let title: String = db.query_one("SELECT title FROM recsys.movies WHERE movie_id = $1", &[&movie]).unwrap().get(0);
    assert_eq!(explained["title"].0, title);
    assert!(explained.values().filter(|(_, value)| *value != 0.0).count() >= 6, "most parts contribute: {explained:?}");

    let unknown = parts(&mut db, 987_654, movie);
    assert_eq!((unknown["user"].1, unknown["user bias"].1), (0.0, 0.0), "an unknown user is the baseline: {unknown:?}");
    assert!(unknown["user"].0.contains("trained without"));
    assert_adds_up(&mut db, 987_654, movie);

    db.batch_execute(
        "INSERT INTO recsys.movies (movie_id, title, year, runtime_minutes) VALUES (700001, 'A Film Nobody Rated', 2019, 110);
         INSERT INTO recsys.movie_genres SELECT 700001, genre_id FROM recsys.genres WHERE name = 'Drama';",
    )
    .unwrap();
    let cold = parts(&mut db, user, 700_001);
    assert_eq!((cold["movie"].1, cold["movie bias"].1), (0.0, 0.0), "a movie without ratings has no learned part: {cold:?}");
    assert!(cold["genres"].1 != 0.0 && cold["genres"].0 == "Drama" && cold["year and runtime"].0 == "2019, 110 min", "{cold:?}");
    assert_adds_up(&mut db, user, 700_001);

    assert_eq!(sql_error(&mut db, "SELECT * FROM recsys.recsys_explain(1, -3)").0, "42704");
    let none: i64 = db.query_one("SELECT count(*) FROM recsys.recsys_explain(NULL, 1)", &[]).unwrap().get(0);
    assert_eq!(none, 0);
}

#[test]
fn recommendations_with_explain_say_which_liked_movie_they_come_from() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = cluster.trained_demo_database("explain_because").unwrap();
    let reasons = db
        .query(
            "SELECT u, r.because, r.movie_id FROM generate_series(1, 20) u CROSS JOIN LATERAL recsys.recsys_recommend(u, 5, explain => true) r",
            &[],
        )
        .unwrap();
    assert_eq!(reasons.len(), 100);
    for row in &reasons {
        let (user, because, movie): (i32, String, i32) = (row.get(0), row.get(1), row.get(2));
        let named: i64 = db
            .query_one(
                "SELECT count(*) FROM recsys.ratings r JOIN recsys.movies m USING (movie_id)
                 WHERE r.user_id = $1 AND r.rating >= 4 AND r.movie_id <> $2 AND $3 = 'because you rated ' || m.title || ' ' || r.rating::real || '★'",
                &[&user, &movie, &because],
            )
            .unwrap()
            .get(0);
        assert_eq!(named, 1, "user {user}: {because:?} names one of their liked movies");
    }
    let plain: i64 = db.query_one("SELECT count(because) FROM recsys.recsys_recommend(1, 5)", &[]).unwrap().get(0);
    assert_eq!(plain, 0, "no because text unless asked");
    let stranger: String = db.query_one("SELECT because FROM recsys.recsys_recommend(987654, 1, explain => true)", &[]).unwrap().get(0);
    assert!(stranger.starts_with("rated highly by users overall"), "{stranger}");
}
