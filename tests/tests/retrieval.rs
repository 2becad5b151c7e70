//! Two-stage ranking (`recsys.retrieval`) on a trained model in a real cluster: with candidates covering the
//! catalogue it returns exactly the exhaustive lists, in recsys_recommend and in the batch; with a few candidates
//! too, since the preference order's first stage is an int8 pass with a proven bound and exact rescoring.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, Loading};

type Lists = Vec<(i32, i64, i32, f32)>;

fn recommendations(db: &mut Client, settings: &str) -> Lists {
    db.batch_execute(settings).unwrap();
    db.query(
        "SELECT u, r.rank::int8, r.movie_id, r.score FROM generate_series(1, 80) u CROSS JOIN LATERAL recsys.recsys_recommend(u, 10) r ORDER BY 1, 2",
        &[],
    )
    .unwrap()
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
    .collect()
}

fn recall(lists: &Lists, exhaustive: &Lists) -> f64 {
    let hits = lists.iter().filter(|(u, _, m, _)| exhaustive.iter().any(|(eu, _, em, _)| eu == u && em == m)).count();
    hits as f64 / exhaustive.len() as f64
}

#[test]
fn two_stage_ranking_is_exhaustive_when_its_candidates_cover_the_catalogue_and_recalls_the_rest() {
    let mut db = shared_cluster(Loading::Preloaded).trained_demo_database("two_stage").unwrap();
    let exhaustive = recommendations(&mut db, "SET recsys.retrieval = exhaustive");
    assert_eq!(exhaustive.len(), 800);
    let covering = recommendations(&mut db, "SET recsys.retrieval = two_stage; SET recsys.retrieval_candidates = 20000");
    assert_eq!(covering, exhaustive, "every movie a candidate: the same movies, order and scores");
    let few = recommendations(&mut db, "SET recsys.retrieval_candidates = 12");
    let recall_at_12 = recall(&few, &exhaustive);
    println!("demo data, 250 movies: recall@10 of two-stage with 12 candidates {recall_at_12:.3}");
    assert_eq!(few, exhaustive, "the preference order's two-stage pass is exact whatever the candidate count");

    let batch = |db: &mut Client, settings: &str| -> Vec<(i32, i16, i32, f32)> {
        db.batch_execute(&format!("{settings}; CALL recsys.recsys_refresh_batch(8)")).unwrap();
        db.query("SELECT user_id, rank, movie_id, score FROM recsys.batch_recommendations ORDER BY 1, 2", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect()
    };
    let two_stage = batch(&mut db, "SET recsys.retrieval_candidates = 20000");
    assert_eq!(batch(&mut db, "SET recsys.retrieval = exhaustive"), two_stage, "the batch too");
    let logged: Vec<String> = db
        .query("SELECT details->>'retrieval' FROM recsys.quality_log WHERE kind = 'refresh' ORDER BY run_id DESC LIMIT 2", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(logged, ["exhaustive", "two_stage(20000)"]);
}
