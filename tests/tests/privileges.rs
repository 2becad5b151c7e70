//! The roles the extension creates: recsys_reader can predict, recommend and read the batch; recsys_admin can also
//! refresh and manage models; a role with neither is refused, and nothing it tries changes the model or the batch.
use postgres::Client;
use recsys_integration_tests::{shared_cluster, sql_error, Loading, TempCluster};

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::Preloaded)
}

fn login(role: &str) -> Client {
    Client::connect(&cluster().connection_string(role, "privileges"), postgres::NoTls).unwrap()
}

#[test]
fn readers_read_admins_manage_and_others_are_refused() {
    let mut owner = cluster().trained_demo_database("privileges").unwrap();
    cluster().quick_train("privileges", &["--seed", "8"]).unwrap();
    owner
        .batch_execute(
            "DROP ROLE IF EXISTS priv_reader; DROP ROLE IF EXISTS priv_admin; DROP ROLE IF EXISTS priv_nobody;
             CREATE ROLE priv_reader LOGIN IN ROLE recsys_reader;
             CREATE ROLE priv_admin LOGIN IN ROLE recsys_admin;
             CREATE ROLE priv_nobody LOGIN;
             CALL recsys.recsys_refresh_batch(5);",
        )
        .unwrap();
    let batch_before: i64 = owner.query_one("SELECT count(*) FROM recsys.batch_recommendations", &[]).unwrap().get(0);

    let mut reader = login("priv_reader");
    let score: f32 = reader.query_one("SELECT recsys.recsys_predict(1, 2)", &[]).unwrap().get(0);
    let owners: f32 = owner.query_one("SELECT recsys.recsys_predict(1, 2)", &[]).unwrap().get(0);
    assert_eq!(score, owners, "a reader is served the active model as its owner is");
    assert_eq!(reader.query("SELECT * FROM recsys.recsys_recommend(1, 5)", &[]).unwrap().len(), 5);
    assert_eq!(reader.query("SELECT * FROM recsys.recommendations_report WHERE user_id = 1", &[]).unwrap().len(), 5);
    assert!(!reader.query("SELECT * FROM recsys.model_versions", &[]).unwrap().is_empty());
    for statement in [
        "SELECT recsys.recsys_activate(2)",
        "SELECT recsys.recsys_rollback()",
        "CALL recsys.recsys_refresh_batch(5)",
        "SELECT recsys.recsys_load_artefact('/tmp')",
        "SELECT recsys.recsys_schedule_refresh()",
        "DELETE FROM recsys.batch_recommendations",
        "UPDATE recsys.models SET status = 'retired'",
    ] {
        let (code, message) = sql_error(&mut reader, statement);
        assert_eq!(code, "42501", "{statement}: {message}");
    }

    let mut nobody = login("priv_nobody");
    for statement in ["SELECT recsys.recsys_predict(1, 2)", "SELECT * FROM recsys.batch_recommendations"] {
        let (code, message) = sql_error(&mut nobody, statement);
        assert_eq!(code, "42501", "{statement}: {message}");
    }

    let mut admin = login("priv_admin");
    admin.batch_execute("CALL recsys.recsys_refresh_batch(5)").unwrap();
    assert_eq!(admin.query_one("SELECT recsys.recsys_activate(2)", &[]).unwrap().get::<_, i64>(0), 2);
    let (code, message) = sql_error(&mut admin, "SELECT recsys.recsys_load_artefact('/tmp')");
    assert_eq!(
        (code.as_str(), message.as_str()),
        ("42501", "loading a model artefact from a server file requires the privileges of pg_read_server_files")
    );

    let active: i64 = owner.query_one("SELECT version FROM recsys.models WHERE status = 'active'", &[]).unwrap().get(0);
    let batch_after: i64 = owner.query_one("SELECT count(*) FROM recsys.batch_recommendations", &[]).unwrap().get(0);
    assert_eq!((active, batch_after), (2, batch_before));
}

#[test]
fn a_reader_cannot_run_the_libtorch_check_mistype_a_setting_or_raise_a_limit_past_the_machine() {
    let mut owner = cluster().fresh_database("privileges_limits").unwrap();
    owner.batch_execute("DROP ROLE IF EXISTS limits_reader; CREATE ROLE limits_reader LOGIN IN ROLE recsys_reader;").unwrap();
    let mut reader = Client::connect(&cluster().connection_string("limits_reader", "privileges_limits"), postgres::NoTls).unwrap();
    let (code, message) = sql_error(&mut reader, "SELECT recsys.recsys_torch_matmul_check(4096)");
    assert_eq!(code, "42501", "{message}");

    let (code, message) = sql_error(&mut reader, "SET recsys.torch_thread = 4");
    assert_eq!(code, "42602", "the recsys. prefix is reserved, so a typo is an error: {message}");
    for setting in ["recsys.retrieval_candidates = 1000000", "recsys.refresh_users_per_round = 1000000"] {
        let (code, message) = sql_error(&mut reader, &format!("SET {setting}"));
        assert_eq!(code, "22023", "{setting}: {message}");
    }
    reader.batch_execute("SET recsys.torch_threads = 64").unwrap();
    let threads: i32 = reader.query_one("SELECT torch_threads FROM recsys.recsys_version_info()", &[]).unwrap().get(0);
    let cores = std::thread::available_parallelism().unwrap().get() as i32;
    assert_eq!(threads, cores.min(64), "libtorch runs with at most the server's cores");
}
