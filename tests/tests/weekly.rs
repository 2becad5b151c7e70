//! The weekly cycle (scripts/weekly.sh) on the demo data with a generated "new week" of ratings: it ends with a
//! new model version, monitoring rows for the training and the refresh, and a refreshed batch.
use recsys_integration_tests::{shared_cluster, trainer_binary, Loading, ScratchDir};
use std::path::Path;
use std::process::Command;

#[test]
fn the_weekly_script_imports_trains_and_refreshes() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = cluster.trained_demo_database("weekly").unwrap();
    db.batch_execute("CALL recsys.recsys_refresh_batch(10)").unwrap();
    let ratings_before: i64 = db.query_one("SELECT count(*) FROM recsys.ratings", &[]).unwrap().get(0);
    let batch_before: std::time::SystemTime = db.query_one("SELECT max(generated_at) FROM recsys.batch_recommendations", &[]).unwrap().get(0);

    let scratch = ScratchDir::new("weekly").unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let new_week = scratch.0.join("new-week");
    let catalogue = repo.join("seeds/catalogue.tsv").display().to_string();
    let out = new_week.display().to_string();
    cluster
        .trainer_ok(
            "weekly",
            &[
                "synth",
                "--catalogue",
                &catalogue,
                "--users",
                "600",
                "--ratings",
                "3000",
                "--min-ratings-per-user",
                "1",
                "--seed",
                "20261124",
                "--first-timestamp",
                "1049000000",
                "--out",
                &out,
            ],
        )
        .unwrap();

    let (socket, port) = cluster.socket_and_port();
    let output = Command::new("bash")
        .arg(repo.join("scripts/weekly.sh"))
        .args(["--movielens", &new_week.join("movielens").display().to_string(), "--", "--epochs", "2", "--skip-cold-start", "--ranking-users", "10"])
        .env("RECSYS_TRAINER", trainer_binary())
        .env("PGHOST", socket)
        .env("PGPORT", port.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", "weekly")
        .output()
        .unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "weekly.sh failed:\n{printed}");
    assert!(printed.contains("hold-out ratings it has not seen"), "the new model is compared on ratings the old one never saw:\n{printed}");

    let ratings_after: i64 = db.query_one("SELECT count(*) FROM recsys.ratings", &[]).unwrap().get(0);
    assert!(ratings_after > ratings_before, "new ratings imported");
    let versions: i64 = db.query_one("SELECT count(*) FROM recsys.models", &[]).unwrap().get(0);
    assert_eq!(versions, 2, "a new version is registered");
    let train = db
        .query_one("SELECT model_version, prospective_rmse, prospective_ratings, details ? 'comparison' FROM recsys.quality_log WHERE kind = 'train' ORDER BY run_id DESC LIMIT 1", &[])
        .unwrap();
    let (version, prospective, newer, compared): (i64, Option<f64>, i64, bool) = (train.get(0), train.get(1), train.get(2), train.get(3));
    assert_eq!(version, 2);
    assert!(prospective.is_some_and(|r| r > 0.0 && r < 2.0) && newer > 0 && compared, "prospective RMSE {prospective:?} on {newer} ratings");
    let active: i64 = db.query_one("SELECT version FROM recsys.models WHERE status = 'active'", &[]).unwrap().get(0);
    let refresh = db.query_one("SELECT model_version FROM recsys.quality_log WHERE kind = 'refresh' ORDER BY run_id DESC LIMIT 1", &[]).unwrap();
    assert_eq!(refresh.get::<_, i64>(0), active, "the refresh used the active model");
    let batch_after: std::time::SystemTime = db.query_one("SELECT max(generated_at) FROM recsys.batch_recommendations", &[]).unwrap().get(0);
    let batch_version: i64 = db.query_one("SELECT max(model_version) FROM recsys.batch_recommendations", &[]).unwrap().get(0);
    assert!(batch_after > batch_before && batch_version == active, "the batch was refreshed");
    let history: i64 = db.query_one("SELECT count(*) FROM recsys.quality_history", &[]).unwrap().get(0);
    assert!(history >= 3);
}
