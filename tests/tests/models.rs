//! Model management from SQL with models the real trainer registered: activation (checked before it happens),
//! rollback along the activation chain, registering an artefact from a server directory, and an activation that
//! reaches open connections.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, sql_error, Loading, ScratchDir, TempCluster};

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::Preloaded)
}

fn active(db: &mut Client) -> Option<i64> {
    db.query_opt("SELECT version FROM recsys.models WHERE status = 'active'", &[]).unwrap().map(|r| r.get(0))
}

fn scalar_i64(db: &mut Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn activation_and_rollback_walk_the_chain_and_refuse_what_cannot_serve() {
    let mut db = cluster().trained_demo_database("models_chain").unwrap();
    cluster().quick_train("models_chain", &["--seed", "2"]).unwrap();
    cluster().quick_train("models_chain", &["--seed", "3", "--activate"]).unwrap();
    assert_eq!(active(&mut db), Some(3), "the trainer's --activate goes through recsys_activate");
    assert_eq!(scalar_i64(&mut db, "SELECT previous_version FROM recsys.models WHERE version = 3"), 1);

    assert_eq!(scalar_i64(&mut db, "SELECT recsys.recsys_activate(2)"), 2);
    assert_eq!(scalar_i64(&mut db, "SELECT recsys.recsys_activate(2)"), 2, "activating the active version changes nothing");
    let statuses: Vec<(i64, String)> =
        db.query("SELECT version, status FROM recsys.model_versions ORDER BY version", &[]).unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(statuses, [(1, "retired".into()), (2, "active".into()), (3, "retired".into())]);

    assert_eq!(scalar_i64(&mut db, "SELECT recsys.recsys_rollback()"), 3);
    assert_eq!(scalar_i64(&mut db, "SELECT recsys.recsys_rollback()"), 1);
    let (code, message) = sql_error(&mut db, "SELECT recsys.recsys_rollback()");
    assert_eq!((code.as_str(), message.as_str()), ("55000", "there is no earlier model version to roll back to"));
    assert_eq!(active(&mut db), Some(1));
    let served_by_1: f32 = db.query_one("SELECT recsys.recsys_predict(1, 1)", &[]).unwrap().get(0);

    let (code, _) = sql_error(&mut db, "SELECT recsys.recsys_activate(42)");
    assert_eq!(code, "42704");
    db.batch_execute("UPDATE recsys.models SET weights = substring(weights for 100) WHERE version = 2").unwrap();
    let (code, message) = sql_error(&mut db, "SELECT recsys.recsys_activate(2)");
    assert_eq!(code, "XX001", "{message}");
    assert_eq!(active(&mut db), Some(1), "a corrupt version is never activated");
    let score: f32 = db.query_one("SELECT recsys.recsys_predict(1, 1)", &[]).unwrap().get(0);
    let mut fresh = Client::connect(&cluster().connection_string("postgres", "models_chain"), postgres::NoTls).unwrap();
    let in_new_session: f32 = fresh.query_one("SELECT recsys.recsys_predict(1, 1)", &[]).unwrap().get(0);
    assert_eq!((score, in_new_session), (served_by_1, served_by_1), "version 1 still serves, in this session and a new one");
}

#[test]
fn an_activation_in_one_session_reaches_another_open_session() {
    let mut admin = cluster().trained_demo_database("models_hot_reload").unwrap();
    cluster().quick_train("models_hot_reload", &["--seed", "9"]).unwrap();
    let mut reader = Client::connect(&cluster().connection_string("postgres", "models_hot_reload"), postgres::NoTls).unwrap();
    let pairs = "SELECT array_agg(recsys.recsys_predict(user_id, movie_id) ORDER BY user_id, movie_id) FROM recsys.ratings WHERE user_id <= 5";
    let before: Vec<f32> = reader.query_one(pairs, &[]).unwrap().get(0);
    let pid_before: i32 = reader.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    admin.batch_execute("SELECT recsys.recsys_activate(2)").unwrap();
    let after: Vec<f32> = reader.query_one(pairs, &[]).unwrap().get(0);
    let version: i64 = reader.query_one("SELECT model_version FROM recsys.recsys_version_info()", &[]).unwrap().get(0);
    let pid_after: i32 = reader.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    assert_eq!((version, pid_after), (2, pid_before), "same connection, new model");
    assert_ne!(before, after);
    admin.batch_execute("SELECT recsys.recsys_rollback()").unwrap();
    let back: Vec<f32> = reader.query_one(pairs, &[]).unwrap().get(0);
    assert_eq!(back, before);
}

#[test]
fn an_artefact_directory_on_the_server_can_be_registered_and_activated() {
    let mut db = cluster().trained_demo_database("models_load").unwrap();
    let first: f32 = db.query_one("SELECT recsys.recsys_predict(1, 1)", &[]).unwrap().get(0);
    let scratch = ScratchDir::new("models_load").unwrap();
    let dir = scratch.0.join("artefact");
    cluster().quick_train("models_load", &["--seed", "4", "--no-register", "--out", &dir.display().to_string()]).unwrap();
    assert_eq!(scalar_i64(&mut db, "SELECT count(*) FROM recsys.models"), 1, "--no-register writes only the directory");

    let version: i64 = db.query_one("SELECT recsys.recsys_load_artefact($1, true)", &[&dir.display().to_string()]).unwrap().get(0);
    assert_eq!((version, active(&mut db)), (2, Some(2)));
    let fingerprint: i64 = scalar_i64(&mut db, "SELECT (fingerprint->>'ratings')::bigint FROM recsys.models WHERE version = 2");
    assert_eq!(fingerprint, scalar_i64(&mut db, "SELECT count(*) FROM recsys.ratings"));
    let loaded: f32 = db.query_one("SELECT recsys.recsys_predict(1, 1)", &[]).unwrap().get(0);
    assert_ne!(loaded, first, "the loaded artefact (seed 4) serves, not version 1");
    db.query_one("SELECT recsys.recsys_activate(1)", &[]).unwrap();
    assert_eq!(db.query_one("SELECT recsys.recsys_predict(1, 1)", &[]).unwrap().get::<_, f32>(0), first);
    db.query_one("SELECT recsys.recsys_activate(2)", &[]).unwrap();
    assert_eq!(db.query_one("SELECT recsys.recsys_predict(1, 1)", &[]).unwrap().get::<_, f32>(0), loaded);

    let (code, _) = sql_error(&mut db, "SELECT recsys.recsys_load_artefact('relative/dir')");
    assert_eq!(code, "22023");
    let missing = scratch.0.join("missing").display().to_string();
    let (code, _) = sql_error(&mut db, &format!("SELECT recsys.recsys_load_artefact('{missing}')"));
    assert_eq!(code, "58P01");
    std::fs::write(dir.join("weights.safetensors"), b"truncated").unwrap();
    let (code, _) = sql_error(&mut db, &format!("SELECT recsys.recsys_load_artefact('{}')", dir.display()));
    assert_eq!(code, "XX001");
    assert_eq!((scalar_i64(&mut db, "SELECT count(*) FROM recsys.models"), active(&mut db)), (2, Some(2)), "nothing registered by failed loads");
}
