//! libtorch inside real backends: the extension reports the libtorch it runs, and threaded libtorch work in
//! backends forked from a postmaster succeeds, with the library preloaded and without.
use recsys_integration_tests::{shared_cluster, Loading};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

fn version_row(loading: Loading) -> (String, String, i32, bool, bool) {
    let mut client = shared_cluster(loading).connect().unwrap();
    let row = client
        .query_one("SELECT extension_version, libtorch_version, torch_threads, preloaded, model_loaded FROM recsys.recsys_version_info()", &[])
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

#[test]
fn version_info_reports_libtorch_when_preloaded() {
    let (extension, libtorch, threads, preloaded, model_loaded) = version_row(Loading::Preloaded);
    assert_eq!(extension, env!("CARGO_PKG_VERSION"));
    assert_eq!(libtorch, "2.4.0");
    assert_eq!(threads, 1, "one intra-op thread per backend by default");
    assert!(preloaded);
    assert!(!model_loaded);
}

#[test]
fn version_info_reports_libtorch_when_loaded_on_demand() {
    let (_, libtorch, threads, preloaded, _) = version_row(Loading::OnDemand);
    assert_eq!(libtorch, "2.4.0");
    assert_eq!(threads, 1);
    assert!(!preloaded);
}

/// Two sessions at once, each running a 1024×1024 matmul on two libtorch threads; a hang in OpenMP after fork
/// shows up as a timeout here.
fn concurrent_threaded_matmuls(loading: Loading) {
    let cluster = shared_cluster(loading);
    let (sender, receiver) = mpsc::channel();
    for session in 0..2 {
        let sender = sender.clone();
        let mut client = cluster.connect().unwrap();
        thread::spawn(move || {
            let outcome = client
                .batch_execute("SET recsys.torch_threads = 2")
                .and_then(|_| client.query_one("SELECT recsys.recsys_torch_matmul_check(1024)", &[]))
                .map(|row| row.get::<_, f64>(0));
            let _ = sender.send((session, outcome));
        });
    }
    for _ in 0..2 {
        let (session, outcome) = receiver.recv_timeout(Duration::from_secs(120)).expect("a threaded matmul hung in a backend");
        assert_eq!(outcome.unwrap(), 1024f64.powi(3), "session {session}");
    }
}

#[test]
fn concurrent_threaded_matmuls_with_preload() {
    concurrent_threaded_matmuls(Loading::Preloaded);
}

#[test]
fn concurrent_threaded_matmuls_loaded_on_demand() {
    concurrent_threaded_matmuls(Loading::OnDemand);
}

#[test]
fn torch_threads_is_per_session() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut first = cluster.connect().unwrap();
    let mut second = cluster.connect().unwrap();
    first.batch_execute("SET recsys.torch_threads = 2").unwrap();
    let threads =
        |client: &mut postgres::Client| -> i32 { client.query_one("SELECT torch_threads FROM recsys.recsys_version_info()", &[]).unwrap().get(0) };
    assert_eq!(threads(&mut first), 2);
    assert_eq!(threads(&mut second), 1);
}

#[test]
fn bad_matrix_size_is_an_invalid_parameter_error() {
    let mut client = shared_cluster(Loading::Preloaded).connect().unwrap();
    let error = client.query_one("SELECT recsys.recsys_torch_matmul_check(-5)", &[]).unwrap_err();
    let db_error = error.as_db_error().expect("a SQL error, not a lost connection");
    assert_eq!(db_error.code().code(), "22023");
    assert!(db_error.message().contains("matrix_size must be between 1 and 4096"), "{}", db_error.message());
    assert!(db_error.hint().is_some());
    client.query_one("SELECT 1", &[]).expect("the backend survives the error");
}

#[test]
fn extension_lives_in_the_recsys_schema_and_can_be_dropped_and_recreated() {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut client = cluster.connect().unwrap();
    client.batch_execute("CREATE DATABASE recreate_check").unwrap();
    let mut other = postgres::Client::connect(&cluster.connection_string("postgres", "recreate_check"), postgres::NoTls).unwrap();
    other.batch_execute("CREATE EXTENSION pg_recsys").unwrap();
    let schema: String = other
        .query_one("SELECT n.nspname::text FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_recsys'", &[])
        .unwrap()
        .get(0);
    assert_eq!(schema, "recsys");
    other.batch_execute("DROP EXTENSION pg_recsys; CREATE EXTENSION pg_recsys;").unwrap();
    let libtorch: String = other.query_one("SELECT libtorch_version FROM recsys.recsys_version_info()", &[]).unwrap().get(0);
    assert_eq!(libtorch, "2.4.0");
    drop(other);
    client.batch_execute("DROP DATABASE recreate_check").unwrap();
}
