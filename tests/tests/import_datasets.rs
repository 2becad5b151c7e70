//! Whole datasets through the importers: the embedded demo seeds, and the real MovieLens/IMDb files in
//! `../shared/data` when that directory exists (it is never part of the repository; the test says so and passes
//! without it).
use postgres::Client;
use recsys_integration_tests::{shared_cluster, Loading, TempCluster};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::Preloaded)
}

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

fn one(db: &mut Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

/// Movies, users, ratings, persons, movies with a director, movies with an actor.
fn summary(db: &mut Client) -> [i64; 6] {
    [
        one(db, "SELECT count(*) FROM recsys.movies"),
        one(db, "SELECT count(*) FROM recsys.users"),
        one(db, "SELECT count(*) FROM recsys.ratings"),
        one(db, "SELECT count(*) FROM recsys.persons"),
        one(db, "SELECT count(DISTINCT movie_id) FROM recsys.movie_persons WHERE role = 'director'"),
        one(db, "SELECT count(DISTINCT movie_id) FROM recsys.movie_persons WHERE role = 'actor'"),
    ]
}

fn import(database: &str, args: &[&str]) -> f64 {
    let started = Instant::now();
    cluster().trainer_ok(database, args).unwrap();
    started.elapsed().as_secs_f64()
}

#[test]
fn demo_seeds_import_completely() {
    let mut db = cluster().fresh_database("seeds").unwrap();
    import("seeds", &["import", "movielens", &repo_path("seeds/demo/movielens").display().to_string()]);
    import("seeds", &["import", "imdb", &repo_path("seeds/demo/imdb").display().to_string()]);
    let [movies, users, ratings, persons, with_director, with_actor] = summary(&mut db);
    assert_eq!((movies, users, ratings), (250, 600, 24_000));
    assert_eq!((with_director, with_actor), (250, 250), "every demo film has its director and cast");
    assert!(persons > 400, "{persons} persons");
    assert_eq!(one(&mut db, "SELECT count(*) FROM recsys.movies WHERE runtime_minutes IS NULL OR imdb_id IS NULL"), 0);
    let title: String = db.query_one("SELECT title FROM recsys.movies WHERE movie_id = 1", &[]).unwrap().get(0);
    assert_eq!(title, "The Shawshank Redemption");
}

#[test]
fn shared_movielens_and_imdb_data_import() {
    let data = repo_path("../shared/data");
    assert!(
        data.join("ml-latest-small/ratings.csv").is_file(),
        "{} must hold the shared MovieLens and IMDb data (never part of the repository; CI has it beside the checkout)",
        data.display()
    );
    let path = |relative: &str| data.join(relative).display().to_string();

    let mut db = cluster().fresh_database("shared_mls").unwrap();
    let ml = import("shared_mls", &["import", "movielens", &path("ml-latest-small")]);
    let imdb = import("shared_mls", &["import", "imdb", &path("imdb")]);
    let counts = summary(&mut db);
    eprintln!("ml-latest-small + imdb: movies, users, ratings, persons, with director, with actor = {counts:?}; {ml:.2} s + {imdb:.2} s");
    assert_eq!(counts[..3], [9_742, 610, 100_836]);
    assert!(counts[4] > 5_000 && counts[5] > 5_000, "{counts:?}");

    let mut db = cluster().fresh_database("shared_100k").unwrap();
    let seconds = import("shared_100k", &["import", "movielens", &path("ml-100k"), "--links", &path("ml-100k/ml100k_to_imdb.csv")]);
    let imdb = import("shared_100k", &["import", "imdb", &path("imdb")]);
    let counts = summary(&mut db);
    eprintln!("ML-100K (links from ml100k_to_imdb.csv) + imdb: {counts:?}; {seconds:.2} s + {imdb:.2} s");
    assert_eq!(counts[..3], [1_682, 943, 100_000]);
    assert!(counts[4] > 1_000 && counts[5] > 1_000, "{counts:?}");

    let mut db = cluster().fresh_database("shared_1m").unwrap();
    let seconds = import("shared_1m", &["import", "movielens", &path("ml-1m"), "--links", &path("links/links.csv")]);
    let imdb = import("shared_1m", &["import", "imdb", &path("imdb")]);
    let counts = summary(&mut db);
    eprintln!("ML-1M movies/users (no ratings file) + imdb: {counts:?}; {seconds:.2} s + {imdb:.2} s");
    assert_eq!(counts[..2], [3_883, 6_040]);
    assert!(one(&mut db, "SELECT count(*) FROM recsys.movies WHERE imdb_id IS NOT NULL") > 3_800);
}
