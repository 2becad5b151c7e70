//! The trainer end to end on the demo data: train → refit on all ratings → register → activate; a hold-out
//! artefact (--no-refit) scores as at training time; a trainer killed while training or inside its registering
//! transaction leaves the registry unchanged; a corrupt
//! artefact is refused.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, Loading, TempCluster};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::Preloaded)
}

fn demo_database(name: &str) -> Client {
    cluster().demo_database(name).unwrap()
}

fn model_count(db: &mut Client) -> i64 {
    db.query_one("SELECT count(*) FROM recsys.models", &[]).unwrap().get(0)
}

#[test]
fn demo_training_registers_a_loadable_model_that_beats_the_bias_baseline() {
    let mut db = demo_database("train_demo");
    let output = cluster().trainer_ok("train_demo", &["train", "--activate", "--epochs", "6", "--seed", "7"]).unwrap();
    assert!(output.contains("registered model version 1 (active)"), "{output}");
    let row = db
        .query_one(
            "SELECT status, (metrics #>> '{random_holdout,model,rmse}')::float8, (metrics #>> '{random_holdout,bias_baseline,rmse}')::float8,
                    (metrics #>> '{cold_start,model,rmse}')::float8, (params #>> '{fit,epochs}')::int, (fingerprint ->> 'ratings')::int,
                    length(weights), manifest ->> 'format_version', (metrics #>> '{random_holdout,autoencoder,best_epoch}')::int,
                    (metrics #>> '{served_model,trained_ratings}')::int, (metrics #>> '{served_model,refit}')::boolean, params -> 'flush_to_zero'
             FROM recsys.models WHERE version = 1",
            &[],
        )
        .unwrap();
    let (status, model, bias, cold): (String, f64, f64, f64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(status, "active");
    assert!(model < bias, "hybrid RMSE {model} must beat the bias baseline {bias}");
    assert!(cold > 0.0 && cold < 2.0);
    assert_eq!((row.get::<_, i32>(4), row.get::<_, i32>(5)), (6, 24_000));
    assert!(row.get::<_, i32>(6) > 100_000, "weights are stored whole");
    assert_eq!(row.get::<_, String>(7), "3");
    assert!(row.get::<_, Option<i32>>(8).is_some_and(|epoch| epoch > 0), "the autoencoder was trained and reported");
    assert_eq!(row.get::<_, Option<i32>>(9), Some(24_000 - 1_200), "the served model learns from every rating but the 5 % validation share");
    assert_eq!(row.get::<_, Option<bool>>(10), Some(true));
    assert_eq!(
        row.get::<_, serde_json::Value>(11),
        serde_json::json!({"main_thread": true, "libtorch_threads": true, "gradient_workers": true}),
        "every thread of the trainer flushes subnormal floats to zero"
    );

    let evaluated = cluster().trainer_ok("train_demo", &["evaluate", "--seed", "7"]).unwrap();
    let served_rmse: f64 = evaluated
        .lines()
        .find(|l| l.contains("hybrid model"))
        .unwrap()
        .split("RMSE")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(served_rmse < model, "the served model has seen the hold-out ratings the stored metrics were measured on: {served_rmse} vs {model}");
    let cached: i64 = db.query_one("SELECT count(*) FROM recsys.title_embeddings", &[]).unwrap().get(0);
    assert_eq!(cached, 250, "every demo title embedded once and cached");
}

/// The key of the advisory lock recsys_activate takes (pg_recsys/src/registry.rs, ACTIVATION_LOCK_KEY).
const ACTIVATION_LOCK_KEY: i64 = 0x7265_6373_7973_0002;

fn start_trainer(database: &str, args: &[&str]) -> std::process::Child {
    let (socket, port) = cluster().socket_and_port();
    Command::new(recsys_integration_tests::trainer_binary())
        .args(args)
        .env("PGHOST", socket)
        .env("PGPORT", port.to_string())
        .env("PGUSER", "postgres")
        .env("PGDATABASE", database)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_trainer_killed_mid_run_leaves_the_registry_unchanged() {
    let mut db = demo_database("train_killed");
    let mut child = start_trainer("train_killed", &["train", "--activate", "--epochs", "50", "--patience", "50"]);
    let stderr = BufReader::new(child.stderr.take().unwrap());
    for line in stderr.lines() {
        if line.unwrap().contains("epoch  2/") {
            break;
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(model_count(&mut db), 0, "no half-registered version");
}

/// Killed inside the registering transaction: after its INSERT into recsys.models, while its activation waits for
/// the activation lock this test holds. Nothing of the new version may remain, and the active model stays active.
#[test]
fn a_trainer_killed_inside_registration_leaves_the_registry_unchanged() {
    let mut db = demo_database("train_killed_registering");
    cluster().quick_train("train_killed_registering", &["--activate", "--seed", "3"]).unwrap();
    let before: Vec<(i64, String)> =
        db.query("SELECT version, status FROM recsys.models ORDER BY version", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    let mut holder = Client::connect(&cluster().connection_string("postgres", "train_killed_registering"), postgres::NoTls).unwrap();
    holder.query_one("SELECT pg_advisory_lock($1)", &[&ACTIVATION_LOCK_KEY]).unwrap();
    let mut child = start_trainer(
        "train_killed_registering",
        &["train", "--activate", "--epochs", "1", "--skip-cold-start", "--ranking-users", "10", "--seed", "4"],
    );
    let waiting = "SELECT pid FROM pg_stat_activity WHERE datname = 'train_killed_registering' AND wait_event_type = 'Lock'
                     AND wait_event = 'advisory' AND query LIKE '%recsys_activate%'";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let trainer_backend: i32 = loop {
        if let Some(row) = db.query_opt(waiting, &[]).unwrap() {
            break row.get(0);
        }
        assert!(std::time::Instant::now() < deadline, "the trainer never reached its activation");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let uncommitted: i64 =
        db.query_one("SELECT count(*) FROM pg_locks WHERE pid = $1 AND locktype = 'relation' AND relation = 'recsys.models'::regclass AND mode = 'RowExclusiveLock'", &[&trainer_backend]).unwrap().get(0);
    assert_eq!(uncommitted, 1, "the trainer's transaction has inserted its version and not committed");
    child.kill().unwrap();
    child.wait().unwrap();
    holder.query_one("SELECT pg_advisory_unlock($1)", &[&ACTIVATION_LOCK_KEY]).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while db.query_opt("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&trainer_backend]).unwrap().is_some() {
        assert!(std::time::Instant::now() < deadline, "the killed trainer's backend did not end");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let after: Vec<(i64, String)> =
        db.query("SELECT version, status FROM recsys.models ORDER BY version", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(after, before, "no half-registered version, the active model unchanged");
}

#[test]
fn a_corrupt_registered_artefact_is_refused() {
    let mut db = demo_database("train_corrupt");
    cluster()
        .trainer_ok("train_corrupt", &["train", "--epochs", "1", "--skip-cold-start", "--ranking-users", "10", "--no-refit", "--seed", "5"])
        .unwrap();
    let model: f64 = db.query_one("SELECT (metrics #>> '{random_holdout,model,rmse}')::float8 FROM recsys.models", &[]).unwrap().get(0);
    let evaluated = cluster().trainer_ok("train_corrupt", &["evaluate", "--version", "1", "--seed", "5"]).unwrap();
    let rmse_line = evaluated.lines().find(|l| l.contains("hybrid model")).unwrap().to_string();
    assert!(
        rmse_line.contains(&format!("RMSE {model:.4}")),
        "with --no-refit the registered artefact is the hold-out run's and scores as at training time: {rmse_line} vs {model:.4}"
    );
    db.batch_execute("UPDATE recsys.models SET weights = substring(weights FROM 1 FOR 1000)").unwrap();
    let output = cluster().run_trainer("train_corrupt", &["evaluate", "--version", "1"]).unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("checksum mismatch"), "{}", String::from_utf8_lossy(&output.stderr));
    let output = cluster().run_trainer("train_corrupt", &["evaluate", "--version", "99"]).unwrap();
    assert!(String::from_utf8_lossy(&output.stderr).contains("model version 99 is not registered"));
}

#[test]
fn the_same_seed_gives_the_same_model() {
    demo_database("train_seeded");
    let run = || {
        let output = cluster()
            .trainer_ok("train_seeded", &["train", "--no-register", "--epochs", "2", "--skip-cold-start", "--ranking-users", "20", "--seed", "3"])
            .unwrap();
        output.lines().filter(|l| l.contains("RMSE") || l.contains("Recall")).map(str::to_string).collect::<Vec<_>>()
    };
    let first = run();
    assert_eq!(first.len(), 7, "four accuracy rows, the model's lists and the two baselines': {first:?}");
    assert_eq!(run(), first);
}

/// Every flag combination the README documents runs: the seed architecture, the hybrid alone, no validation share.
#[test]
fn the_documented_flag_combinations_train() {
    demo_database("train_flags");
    let common = ["train", "--no-register", "--epochs", "1", "--skip-cold-start", "--ranking-users", "10"];
    let seed_architecture = [
        "--no-biases",
        "--no-dot-product",
        "--embedding-l2",
        "0",
        "--weight-decay",
        "0",
        "--movie-id-dropout",
        "0",
        "--title-rank",
        "0",
        "--person-dropout",
        "0",
        "--autoencoder-hidden",
        "0",
        "--no-content-projection",
    ];
    for flags in [
        &seed_architecture[..],
        &["--autoencoder-hidden", "0"][..],
        &["--validation-fraction", "0"][..],
        &["--no-refit", "--out", "/tmp/recsys-train-flags"][..],
        &["--batch-size", "2048", "--precision", "bfloat16", "--autoencoder-hidden", "0", "--no-refit", "--out", "/tmp/recsys-train-flags"][..],
    ] {
        let mut args = common.to_vec();
        args.extend_from_slice(flags);
        let output = cluster().trainer_ok("train_flags", &args).unwrap_or_else(|e| panic!("{flags:?}: {e}"));
        assert!(output.contains("hybrid model"), "{flags:?}: {output}");
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read("/tmp/recsys-train-flags/manifest.json").unwrap_or_default()).unwrap_or_default();
        let fit = &manifest["params"]["fit"];
        match flags.contains(&"--batch-size") {
            true => {
                assert_eq!((fit["batch_size"].as_i64(), fit["precision"].as_str()), (Some(2048), Some("bfloat16")), "{manifest:#}");
                let rate = fit["learning_rate"].as_f64().unwrap_or_default();
                assert!((rate - 0.001 * 8f64.sqrt()).abs() < 1e-9, "the rate follows the given batch: {rate}");
            }
            false if flags.contains(&"--out") => {
                assert_eq!((fit["batch_size"].as_i64(), fit["precision"].as_str()), (Some(256), Some("float32")), "demo data: {manifest:#}");
            }
            false => {}
        }
    }
    let _ = std::fs::remove_dir_all("/tmp/recsys-train-flags");
}

/// The Recall@10 and NDCG@10 the trainer stores are what recsys_recommend serves: trained with --no-refit on a test
/// file (so the served model is the evaluated one and the split is known), the test recomputes both metrics from
/// recsys_recommend's lists over the movies the user did not rate in training.
#[test]
fn the_stored_ranking_metrics_are_what_recsys_recommend_serves() {
    let mut db = demo_database("train_ranking");
    let test_pairs: Vec<(i32, i32)> = db
        .query("SELECT user_id, movie_id FROM recsys.ratings WHERE (user_id + movie_id) % 10 = 0 ORDER BY 1, 2", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let scratch = recsys_integration_tests::ScratchDir::new("train_ranking").unwrap();
    let lines: Vec<String> = std::iter::once("user_id,movie_id".to_string()).chain(test_pairs.iter().map(|(u, m)| format!("{u},{m}"))).collect();
    let test_file = scratch.write("test.csv", lines.join("\n")).unwrap();
    let args =
        ["train", "--activate", "--no-refit", "--skip-cold-start", "--epochs", "3", "--seed", "6", "--ranking-users", "100000", "--test-ratings"];
    let mut args: Vec<&str> = args.to_vec();
    let file = test_file.display().to_string();
    args.push(&file);
    cluster().trainer_ok("train_ranking", &args).unwrap();
    let stored = db
        .query_one("SELECT (metrics #>> '{ranking,recall_at_10}')::float8, (metrics #>> '{ranking,ndcg_at_10}')::float8, (metrics #>> '{ranking,users}')::int8 FROM recsys.models", &[])
        .unwrap();
    let (stored_recall, stored_ndcg, stored_users): (f64, f64, i64) = (stored.get(0), stored.get(1), stored.get(2));

    let relevant: Vec<(i32, Vec<i32>)> = db
        .query(
            "SELECT user_id, array_agg(movie_id) FROM recsys.ratings WHERE (user_id + movie_id) % 10 = 0 AND rating >= 4 GROUP BY user_id ORDER BY user_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // The served model learnt from the training ratings alone; users' lists are built from the ratings they hold, so
    // the test ratings leave the table first, as they were never given.
    db.batch_execute("DELETE FROM recsys.ratings WHERE (user_id + movie_id) % 10 = 0").unwrap();
    let top10 = "SELECT movie_id FROM recsys.recsys_recommend($1, 10) ORDER BY rank";
    let (mut recall, mut ndcg) = (0.0, 0.0);
    for (user, wanted) in &relevant {
        let list: Vec<i32> = db.query(top10, &[user]).unwrap().iter().map(|r| r.get(0)).collect();
        assert_eq!(list.len(), 10, "user {user}");
        let gains: Vec<f64> = list.iter().enumerate().filter(|(_, m)| wanted.contains(m)).map(|(rank, _)| 1.0 / ((rank + 2) as f64).log2()).collect();
        let ideal: f64 = (0..wanted.len().min(10)).map(|rank| 1.0 / ((rank + 2) as f64).log2()).sum();
        recall += gains.len() as f64 / wanted.len().min(10) as f64;
        ndcg += gains.iter().sum::<f64>() / ideal;
    }
    let users = relevant.len() as f64;
    assert_eq!(stored_users, relevant.len() as i64, "every test user with a relevant movie is ranked");
    assert!(stored_recall > 0.0, "some relevant movie is found: {stored_recall}");
    assert!((recall / users - stored_recall).abs() < 1e-3, "Recall@10: served {} vs stored {stored_recall}", recall / users);
    assert!((ndcg / users - stored_ndcg).abs() < 1e-3, "NDCG@10: served {} vs stored {stored_ndcg}", ndcg / users);
    let baselines = db
        .query_one(
            "SELECT (metrics #>> '{ranking,popularity,recall_at_10}')::float8, (metrics #>> '{ranking,ease,recall_at_10}')::float8,
                    (metrics #>> '{ranking,coverage}')::float8 FROM recsys.models",
            &[],
        )
        .unwrap();
    let (popularity, ease, coverage): (f64, f64, f64) = (baselines.get(0), baselines.get(1), baselines.get(2));
    assert!(popularity > 0.0 && ease > 0.0, "both baselines are scored on the same users: popularity {popularity}, EASE {ease}");
    assert!(coverage > 0.0 && coverage <= 1.0, "coverage is a share of the catalogue: {coverage}");
}
