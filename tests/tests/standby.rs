//! A hot standby made with pg_basebackup -R serves predictions, recommendations and cold-start predictions; an
//! activation on the primary reaches an open standby session; the functions that write give 25006 with a hint.
use postgres::{Client, NoTls};
use recsys_integration_tests::{sql_error, Loading, TempCluster};
use std::time::{Duration, Instant};

fn active_version(db: &mut Client) -> Option<i64> {
    db.query_opt("SELECT version FROM recsys.models WHERE status = 'active'", &[]).unwrap().map(|r| r.get(0))
}

#[test]
fn a_standby_serves_and_follows_activations_and_refuses_writes() {
    let primary = TempCluster::start("standby-primary", Loading::Preloaded, &[]).unwrap();
    let mut writer = primary.trained_demo_database("replicated").unwrap();
    primary.quick_train("replicated", &["--seed", "9"]).unwrap();
    writer.batch_execute("CALL recsys.recsys_refresh_batch(5)").unwrap();
    let standby = TempCluster::standby_of(&primary, "standby", Loading::Preloaded).unwrap();
    let mut reader = Client::connect(&standby.connection_string("postgres", "replicated"), NoTls).unwrap();

    let score: f32 = reader.query_one("SELECT recsys.recsys_predict(1, 2)", &[]).unwrap().get(0);
    let on_primary: f32 = writer.query_one("SELECT recsys.recsys_predict(1, 2)", &[]).unwrap().get(0);
    assert_eq!(score, on_primary, "the standby serves the primary's model");
    assert_eq!(reader.query("SELECT * FROM recsys.recsys_recommend(1, 5)", &[]).unwrap().len(), 5);
    let cold: f32 = reader.query_one("SELECT recsys.recsys_predict_new(1, 'A Title Only The Standby Saw', ARRAY['Drama'])", &[]).unwrap().get(0);
    assert!((0.5..=5.0).contains(&cold));

    for statement in [
        "SELECT recsys.recsys_activate(2)",
        "SELECT recsys.recsys_rollback()",
        "CALL recsys.recsys_refresh_batch(5)",
        "SELECT recsys.recsys_load_artefact('/tmp')",
    ] {
        let error = reader.batch_execute(statement).unwrap_err();
        let error = error.as_db_error().unwrap_or_else(|| panic!("{statement}: {error}"));
        assert_eq!(error.code().code(), "25006", "{statement}: {}", error.message());
        assert!(error.hint().unwrap_or("").contains("primary"), "{statement}: {:?}", error.hint());
    }

    writer.query_one("SELECT recsys.recsys_activate(2)", &[]).unwrap();
    let started = Instant::now();
    while active_version(&mut reader) != Some(2) {
        assert!(started.elapsed() < Duration::from_secs(30), "the activation did not replicate");
        std::thread::sleep(Duration::from_millis(100));
    }
    reader.query_one("SELECT recsys.recsys_predict(1, 2)", &[]).unwrap();
    let version: Option<i64> = reader.query_one("SELECT model_version FROM recsys.recsys_version_info()", &[]).unwrap().get(0);
    assert_eq!(version, Some(2), "the open standby session switched to the activated version on its next statement");
    let (code, _) = sql_error(&mut reader, "CALL recsys.recsys_refresh_batch(5)");
    assert_eq!(code, "25006");
}
