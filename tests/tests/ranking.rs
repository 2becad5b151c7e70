//! The order of recommendation lists: where the rating head and the preference part disagree (a niche movie rated 5
//! by 29, a popular one rated 4 by most of the user's neighbours), `recsys_recommend` and the batch follow the
//! preference part; and each refresh records how the previous batch predicted what users rated after it, counting
//! exactly the liked ratings newer than each list, beside the popularity chart on the same ratings.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, Loading, TempCluster};
use std::collections::{HashMap, HashSet};

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::Preloaded)
}

/// The popular movie: rated 4 by every user of the neighbourhood but the probe user.
const POPULAR: i32 = 21;
/// The niche movie: rated 5 by 29 users of the same neighbourhood (149 rate the popular one).
const NICHE: i32 = 22;
/// The user whose list is probed: in the neighbourhood, has rated neither.
const PROBE: i32 = 1;

/// 60 movies; users 1–150 rate about half of movies 1–20 (3 or 4 stars) and all but the probe rate the popular
/// movie 4; users 2–30 rate the niche movie 5; users 151–200 rate movies 23–60.
fn disagreement_database(name: &str) -> Client {
    let mut db = cluster().fresh_database(name).unwrap();
    db.batch_execute(
        "INSERT INTO recsys.genres (name) VALUES ('Drama'), ('Comedy');
         INSERT INTO recsys.movies (movie_id, title, year) SELECT m, 'Film number ' || m, 1990 + m % 20 FROM generate_series(1, 60) m;
         INSERT INTO recsys.movie_genres (movie_id, genre_id)
             SELECT m, (SELECT genre_id FROM recsys.genres WHERE name = CASE WHEN m <= 22 THEN 'Drama' ELSE 'Comedy' END) FROM generate_series(1, 60) m;
         INSERT INTO recsys.users (user_id) SELECT u FROM generate_series(1, 200) u;
         INSERT INTO recsys.ratings (user_id, movie_id, rating, rated_at)
             SELECT u, m, 3 + (u + m) % 2, timestamptz '2020-01-01' + (u * 100 + m) * interval '1 minute'
             FROM generate_series(1, 150) u, generate_series(1, 20) m WHERE (u * 7 + m * 13) % 10 < 5
             UNION ALL SELECT u, 21, 4, timestamptz '2020-01-01' + (u * 100 + 21) * interval '1 minute' FROM generate_series(2, 150) u
             UNION ALL SELECT u, 22, 5, timestamptz '2020-01-01' + (u * 100 + 22) * interval '1 minute' FROM generate_series(2, 30) u
             UNION ALL SELECT u, m, 1 + (u * m) % 5, timestamptz '2020-01-01' + (u * 100 + m) * interval '1 minute'
             FROM generate_series(151, 200) u, generate_series(23, 60) m WHERE (u * 3 + m * 11) % 10 < 4;",
    )
    .unwrap();
    db
}

fn rank_of(list: &[i32], movie: i32) -> usize {
    list.iter().position(|m| *m == movie).map_or(usize::MAX, |p| p + 1)
}

#[test]
fn lists_follow_the_preference_part_where_it_and_the_rating_head_disagree() {
    let mut db = disagreement_database("ranking_disagree");
    let output = cluster().trainer_ok("ranking_disagree", &["train", "--activate", "--skip-cold-start", "--epochs", "8", "--seed", "3"]).unwrap();
    assert!(output.contains("(active)"), "{output}");
    let predicted =
        |db: &mut Client, movie: i32| -> f32 { db.query_one("SELECT recsys.recsys_predict($1::int, $2::int)", &[&PROBE, &movie]).unwrap().get(0) };
    let (niche, popular) = (predicted(&mut db, NICHE), predicted(&mut db, POPULAR));
    assert!(niche > popular, "the rating head predicts the niche movie higher ({niche} vs {popular}): the two objectives disagree");

    let served: Vec<(i32, f32)> =
        db.query("SELECT movie_id, score FROM recsys.recsys_recommend($1, 10)", &[&PROBE]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    let list: Vec<i32> = served.iter().map(|(m, _)| *m).collect();
    assert_eq!(rank_of(&list, POPULAR), 1, "the movie the neighbourhood picked comes first: {served:?}");
    assert!(rank_of(&list, NICHE) > rank_of(&list, POPULAR), "the niche movie ranks below it: {served:?}");
    let score_of_popular = served[0].1;
    assert!((score_of_popular - popular).abs() < 1e-4, "the score column is the predicted rating: {score_of_popular} vs {popular}");

    db.batch_execute("CALL recsys.recsys_refresh_batch(10)").unwrap();
    let batch: Vec<i32> = db
        .query("SELECT movie_id FROM recsys.batch_recommendations WHERE user_id = $1 ORDER BY rank", &[&PROBE])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(batch, list, "the batch holds the list recsys_recommend serves");
    let preference_dim: f64 =
        db.query_one("SELECT (manifest #>> '{config,preference,dim}')::float8 FROM recsys.models WHERE status = 'active'", &[]).unwrap().get(0);
    assert!(preference_dim > 0.0, "the active model has a preference part");
}

/// Users' lists in the batch, best first.
fn batch_lists(db: &mut Client) -> HashMap<i32, Vec<i32>> {
    let mut lists: HashMap<i32, Vec<i32>> = HashMap::new();
    for row in db.query("SELECT user_id, movie_id FROM recsys.batch_recommendations ORDER BY user_id, rank", &[]).unwrap() {
        lists.entry(row.get(0)).or_default().push(row.get(1));
    }
    lists
}

/// The 10 most-rated movies `user` had not rated at the batch's time (ties: lower id), from the ratings then.
fn popularity_chart(db: &mut Client, user: i32) -> Vec<i32> {
    db.query(
        "WITH at AS (SELECT min(generated_at) AS t FROM recsys.batch_recommendations)
         SELECT movie_id FROM recsys.ratings, at WHERE rated_at <= at.t GROUP BY movie_id
         HAVING movie_id NOT IN (SELECT movie_id FROM recsys.ratings, at WHERE user_id = $1 AND rated_at <= at.t)
         ORDER BY count(*) DESC, movie_id LIMIT 10",
        &[&user],
    )
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

#[test]
fn a_refresh_records_how_the_previous_batch_predicted_the_ratings_after_it() {
    let mut db = disagreement_database("ranking_outcome");
    cluster().trainer_ok("ranking_outcome", &["train", "--activate", "--skip-cold-start", "--epochs", "3", "--seed", "5"]).unwrap();
    db.batch_execute("CALL recsys.recsys_refresh_batch(10)").unwrap();
    let first: Option<i64> = db
        .query_one("SELECT previous_batch_users FROM recsys.quality_history WHERE kind = 'refresh' ORDER BY run_id DESC LIMIT 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(first, Some(0), "nothing was rated after a batch that did not exist");
    let lists = batch_lists(&mut db);
    let rated: HashSet<(i32, i32)> =
        db.query("SELECT user_id, movie_id FROM recsys.ratings", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    let unlisted = |user: i32| (1..=60).find(|m| !lists[&user].contains(m) && !rated.contains(&(user, *m))).unwrap();
    let hit = lists[&10][0];
    let missed = unlisted(11);
    let after = "(SELECT max(generated_at) FROM recsys.batch_recommendations) + interval '1 hour'";
    let before = "(SELECT min(generated_at) FROM recsys.batch_recommendations) - interval '1 hour'";
    db.batch_execute(&format!(
        "INSERT INTO recsys.ratings VALUES (10, {hit}, 4.5, {after}), (11, {missed}, 5, {after}),
                                          (12, {}, 2, {after}), (13, {}, 5, {before})",
        lists[&12][0], lists[&13][0]
    ))
    .unwrap();
    let charts: Vec<Vec<i32>> = [10, 11].iter().map(|u| popularity_chart(&mut db, *u)).collect();
    db.batch_execute("CALL recsys.recsys_refresh_batch(10)").unwrap();
    let row = db
        .query_one(
            "SELECT previous_batch_users, previous_batch_recall_at_10, previous_batch_hit_rate, popularity_recall_at_10, popularity_hit_rate
             FROM recsys.quality_history WHERE kind = 'refresh' ORDER BY run_id DESC LIMIT 1",
            &[],
        )
        .unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), Some(2), "users 10 and 11: user 12's rating is not liked, user 13's is older than the list");
    assert_eq!(row.get::<_, Option<f64>>(1), Some(0.5), "user 10's rating was on its list, user 11's was not");
    assert_eq!(row.get::<_, Option<f64>>(2), Some(0.5));
    let popular_hits = [charts[0].contains(&hit), charts[1].contains(&missed)].iter().filter(|h| **h).count() as f64 / 2.0;
    assert_eq!(row.get::<_, Option<f64>>(3), Some(popular_hits), "the popularity chart on the same ratings: {charts:?}");
    assert_eq!(row.get::<_, Option<f64>>(4), Some(popular_hits));
}
