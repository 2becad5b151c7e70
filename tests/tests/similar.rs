//! recsys_similar_movies and recsys_similar_users over a model the trainer registered: ordered neighbours without the
//! query itself, a movie without ratings finds neighbours through its content, the genre filter, and the errors.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, sql_error, Loading};

fn neighbours(db: &mut Client, sql: &str, id: i32) -> Vec<(i32, i32, f32)> {
    db.query(sql, &[&id]).unwrap().iter().map(|r| (r.get(0), r.get(1), r.get::<_, f32>(2))).collect()
}

/// Ranks 1..n in order, similarities non-increasing within −1..1, the query never listed.
fn assert_ranked(list: &[(i32, i32, f32)], query: i32, expected_len: usize) {
    assert_eq!(list.len(), expected_len, "{list:?}");
    assert!(list.iter().enumerate().all(|(at, (rank, _, _))| *rank == at as i32 + 1), "ranks run 1..n: {list:?}");
    assert!(list.windows(2).all(|pair| pair[0].2 >= pair[1].2), "most similar first: {list:?}");
    assert!(list.iter().all(|(_, id, similarity)| *id != query && (-1.0001..=1.0001).contains(similarity)), "{list:?}");
}

#[test]
fn similar_movies_are_ordered_neighbours_and_cold_movies_find_theirs_through_content() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = cluster.trained_demo_database("similar_movies").unwrap();
    let sql = "SELECT rank, movie_id, similarity FROM recsys.recsys_similar_movies($1, 8)";
    let movies: i64 = db.query_one("SELECT count(*) FROM recsys.movies", &[]).unwrap().get(0);
    assert_ranked(&neighbours(&mut db, sql, 1), 1, 8);
    let all = neighbours(&mut db, "SELECT rank, movie_id, similarity FROM recsys.recsys_similar_movies($1, 1000)", 1);
    assert_eq!(all.len() as i64, (movies - 1).min(1000), "every other movie is a candidate");
    assert_eq!(all[..8], neighbours(&mut db, sql, 1)[..], "the top 8 are the first 8 of the whole ranking");
    let sharing: i64 = db
        .query_one(
            "SELECT count(*) FROM recsys.recsys_similar_movies(1, 10) n
             WHERE EXISTS (SELECT FROM recsys.movie_genres a JOIN recsys.movie_genres b USING (genre_id) WHERE a.movie_id = 1 AND b.movie_id = n.movie_id)
                OR EXISTS (SELECT FROM recsys.movie_persons a JOIN recsys.movie_persons b USING (person_id)
                           WHERE a.movie_id = 1 AND b.movie_id = n.movie_id AND a.role = 'director' AND b.role = 'director')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(sharing >= 1, "neighbours of movie 1 include movies sharing its genres or director");

    db.batch_execute(
        "INSERT INTO recsys.movies (movie_id, title, year, runtime_minutes)
             SELECT id, 'Twin Films Nobody Rated', 2001, 97 FROM (VALUES (800001), (800002)) v(id);
         INSERT INTO recsys.movie_genres SELECT id, genre_id FROM (VALUES (800001), (800002)) v(id), recsys.genres WHERE name IN ('Drama', 'Crime');",
    )
    .unwrap();
    for (twin, other) in [(800001, 800002), (800002, 800001)] {
        let list = neighbours(&mut db, sql, twin);
        assert_ranked(&list, twin, 8);
        assert_eq!(list[0].1, other, "a movie without ratings finds its content twin first: {list:?}");
        assert!(list[0].2 > 0.9999, "identical inputs are identical representations: {list:?}");
        assert!(list[1].2 < list[0].2, "and nothing else is identical: {list:?}");
    }

    let dramas = db
        .query("SELECT n.movie_id, bool_or(g.name = 'Drama') FROM recsys.recsys_similar_movies(1, 20, 'drama') n JOIN recsys.movie_genres mg USING (movie_id) JOIN recsys.genres g USING (genre_id) GROUP BY n.movie_id", &[])
        .unwrap();
    assert!(!dramas.is_empty() && dramas.iter().all(|r| r.get::<_, bool>(1)), "the genre filter keeps only that genre");

    assert_eq!(sql_error(&mut db, "SELECT * FROM recsys.recsys_similar_movies(-5)").0, "42704");
    assert_eq!(sql_error(&mut db, "SELECT * FROM recsys.recsys_similar_movies(1, 0)").0, "22023");
    let none: i64 = db.query_one("SELECT count(*) FROM recsys.recsys_similar_movies(NULL)", &[]).unwrap().get(0);
    assert_eq!(none, 0);
}

#[test]
fn similar_users_are_ordered_neighbours_among_the_models_users() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = cluster.trained_demo_database("similar_users").unwrap();
    let sql = "SELECT rank, user_id, similarity FROM recsys.recsys_similar_users($1, 5)";
    let list = neighbours(&mut db, sql, 1);
    assert_ranked(&list, 1, 5);
    let known: i64 =
        db.query_one("SELECT count(*) FROM recsys.users WHERE user_id = ANY($1)", &[&list.iter().map(|n| n.1).collect::<Vec<i32>>()]).unwrap().get(0);
    assert_eq!(known, 5, "neighbours are users of the data (the unknown-user row is never one)");
    let reverse = neighbours(&mut db, "SELECT rank, user_id, similarity FROM recsys.recsys_similar_users($1, 1000)", list[0].1);
    let back = reverse.iter().find(|n| n.1 == 1).expect("user 1 is among its neighbour's neighbours");
    assert!((back.2 - list[0].2).abs() < 1e-5, "cosine similarity is symmetric: {} vs {}", back.2, list[0].2);

    let (code, message) = sql_error(&mut db, "SELECT * FROM recsys.recsys_similar_users(987654)");
    assert_eq!(code, "42704", "{message}");
    assert_eq!(sql_error(&mut db, "SELECT * FROM recsys.recsys_similar_users(1, 1001)").0, "22023");
}

#[test]
fn similar_movies_and_users_come_from_the_representations_the_trainer_chose_on_validation() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = cluster.trained_demo_database("similar_choice").unwrap();
    let mut flipped = Vec::new();
    for what in ["similar_movies", "similar_users"] {
        let row = db
            .query_one(
                "SELECT manifest #>> ARRAY['config', 'preference', $1], metrics #> ARRAY['served_model', 'preference', $1, 'quality']
                 FROM recsys.models WHERE status = 'active'",
                &[&what],
            )
            .unwrap();
        let (chosen, quality): (String, serde_json::Value) = (row.get(0), row.get(1));
        let score = |name: &str| quality.as_array().and_then(|q| q.iter().find(|pair| pair[0] == name)).and_then(|pair| pair[1].as_f64());
        let (by_rating, by_preference) = (score("rating").expect("rating scored"), score("preference").expect("preference scored"));
        assert_eq!(chosen, if by_preference > by_rating { "preference" } else { "rating" }, "{what}: the better on validation is served: {quality}");
        flipped.push(if chosen == "preference" { "rating" } else { "preference" });
    }

    let movies_sql = "SELECT rank, movie_id, similarity FROM recsys.recsys_similar_movies($1, 8)";
    let users_sql = "SELECT rank, user_id, similarity FROM recsys.recsys_similar_users($1, 8)";
    let (movies, users) = (neighbours(&mut db, movies_sql, 1), neighbours(&mut db, users_sql, 1));
    let copy: i64 = db
        .query_one(
            "INSERT INTO recsys.models (params, metrics, fingerprint, manifest, weights)
             SELECT params, metrics, fingerprint,
                    jsonb_set(jsonb_set(manifest, '{config,preference,similar_movies}', to_jsonb($1::text)),
                              '{config,preference,similar_users}', to_jsonb($2::text)),
                    weights
             FROM recsys.models WHERE status = 'active' RETURNING version",
            &[&flipped[0], &flipped[1]],
        )
        .unwrap()
        .get(0);
    db.execute("SELECT recsys.recsys_activate($1)", &[&copy]).unwrap();
    let (other_movies, other_users) = (neighbours(&mut db, movies_sql, 1), neighbours(&mut db, users_sql, 1));
    assert_ranked(&other_movies, 1, 8);
    assert_ranked(&other_users, 1, 8);
    let ids = |list: &[(i32, i32, f32)]| list.iter().map(|n| n.1).collect::<Vec<_>>();
    assert_ne!(ids(&movies), ids(&other_movies), "the same weights with the other movie representation list other neighbours");
    assert_ne!(ids(&users), ids(&other_users), "the same weights with the other user representation list other neighbours");
}
