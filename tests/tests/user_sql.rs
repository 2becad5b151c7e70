//! The user-facing SQL in the top-level `sql/` folder, run as a user would (`psql -v ON_ERROR_STOP=1 -f`) against a
//! trained demo database: every file must run without error and print what its header promises.
use recsys_integration_tests::{shared_cluster, Loading};

#[test]
fn the_user_facing_sql_files_run_and_return_what_they_promise() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = cluster.trained_demo_database("user_sql").unwrap();

    let examples = cluster.psql_file("user_sql", "examples.sql").unwrap();
    let batch_rows: i64 = db.query_one("SELECT count(*) FROM recsys.batch_recommendations", &[]).unwrap().get(0);
    let users: i64 = db.query_one("SELECT count(*) FROM recsys.users", &[]).unwrap().get(0);
    assert_eq!(batch_rows, 10 * users, "examples.sql refreshed the batch with k = 10:\n{examples}");
    let crime: i64 = db
        .query_one("SELECT count(*) FROM recsys.recsys_recommend(1, 5, genre => 'Crime') r JOIN recsys.movie_genres USING (movie_id) JOIN recsys.genres g USING (genre_id) WHERE g.name = 'Crime'", &[])
        .unwrap()
        .get(0);
    assert_eq!(crime, 5, "the genre filter of examples.sql keeps crime films only");

    let report = cluster.psql_file("user_sql", "batch_report.sql").unwrap();
    let first_rows: Vec<Vec<&str>> = report.lines().take(10).map(|line| line.split('|').collect()).collect();
    assert!(first_rows.iter().all(|row| row[0] == "1" && row.len() == 6), "user 1's ten rows come first:\n{report}");
    let ranks: Vec<&str> = first_rows.iter().map(|row| row[1]).collect();
    assert_eq!(ranks, (1..=10).map(|r| r.to_string()).collect::<Vec<_>>(), "in rank order");
}
