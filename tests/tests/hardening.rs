//! Hostile and careless input: values that look like SQL stay values (with standard_conforming_strings off too), a
//! caller's objects on the search_path never run inside the extension, concurrent activations keep the rollback
//! target, and out-of-range features give an error instead of NaN.
use postgres::{Client, NoTls};
use recsys_integration_tests::{shared_cluster, sql_error, Loading, TempCluster};
use std::time::{Duration, Instant};

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::Preloaded)
}

fn connect(database: &str, options: &str) -> Client {
    Client::connect(&format!("{}{options}", cluster().connection_string("postgres", database)), NoTls).unwrap()
}

fn active_version(db: &mut Client) -> Option<i64> {
    db.query_opt("SELECT version FROM recsys.models WHERE status = 'active'", &[]).unwrap().map(|r| r.get(0))
}

#[test]
fn values_that_look_like_sql_stay_values() {
    let mut owner = cluster().trained_demo_database("hardening_injection").unwrap();
    cluster().quick_train("hardening_injection", &["--seed", "4"]).unwrap();
    let payloads = [
        r"x\'); SELECT recsys.recsys_activate(2)::int; --",
        r"x\'); SELECT pg_sleep(2); --",
        r"x'); SELECT recsys.recsys_activate(2)::int; --",
        r"AC\DC\",
        "O'Brien",
    ];
    for options in [" options='-c standard_conforming_strings=off'", ""] {
        let mut db = connect("hardening_injection", options);
        for payload in payloads {
            let started = Instant::now();
            let rows = db.query("SELECT * FROM recsys.recsys_recommend(1, 10, true, $1)", &[&payload]).unwrap();
            assert!(rows.is_empty(), "{payload:?} is no genre");
            let score: f32 = db.query_one("SELECT recsys.recsys_predict_new(1, $1, ARRAY[$1], ARRAY[$1], ARRAY[$1])", &[&payload]).unwrap().get(0);
            assert!(score.is_finite());
            assert!(started.elapsed() < Duration::from_secs(2), "{payload:?} ran pg_sleep ({options})");
        }
        assert_eq!(active_version(&mut owner), Some(1), "no payload switched the active model ({options})");
    }
}

#[test]
fn objects_on_the_callers_search_path_never_run_inside_the_extension() {
    let mut owner = cluster().trained_demo_database("hardening_path").unwrap();
    owner
        .batch_execute(
            "DROP ROLE IF EXISTS path_nobody;
             CREATE ROLE path_nobody LOGIN;
             GRANT CREATE, USAGE ON SCHEMA public TO path_nobody;
             CREATE TABLE public.hijacked (what text);
             GRANT INSERT ON public.hijacked TO path_nobody;",
        )
        .unwrap();
    let mut nobody = Client::connect(&cluster().connection_string("path_nobody", "hardening_path"), NoTls).unwrap();
    nobody
        .batch_execute(
            "CREATE FUNCTION public.to_timestamp(bigint) RETURNS timestamptz LANGUAGE sql
                 AS $$ INSERT INTO public.hijacked VALUES ('to_timestamp') RETURNING pg_catalog.to_timestamp($1::float8) $$;
             CREATE FUNCTION public.convert_to(text, text) RETURNS bytea LANGUAGE sql
                 AS $$ INSERT INTO public.hijacked VALUES ('convert_to') RETURNING pg_catalog.convert_to($1, $2::name) $$;
             CREATE FUNCTION public.lower(text) RETURNS text LANGUAGE sql
                 AS $$ INSERT INTO public.hijacked VALUES ('lower') RETURNING pg_catalog.lower($1) $$;
             CREATE FUNCTION public.array_agg(integer) RETURNS integer LANGUAGE sql AS $$ SELECT 1 $$;",
        )
        .unwrap();
    owner.batch_execute("SET search_path = public, recsys").unwrap();
    owner.batch_execute("CALL recsys.recsys_refresh_batch(5)").unwrap();
    owner.query_one("SELECT recsys.recsys_predict_new(1, 'A Title Never Seen Before', ARRAY['Drama'])", &[]).unwrap();
    owner.query("SELECT * FROM recsys.recsys_recommend(1, 5, true, 'Drama')", &[]).unwrap();
    owner.query_one("SELECT recsys.recsys_activate(1)", &[]).unwrap();
    let ran: Vec<String> = owner.query("SELECT what FROM public.hijacked", &[]).unwrap().iter().map(|r| r.get(0)).collect();
    assert!(ran.is_empty(), "the caller's functions ran as the superuser inside the extension: {ran:?}");
}

#[test]
fn concurrent_activations_keep_the_rollback_target() {
    let mut first = cluster().demo_database("hardening_activate").unwrap();
    for seed in ["1", "2", "3"] {
        cluster().quick_train("hardening_activate", &["--seed", seed]).unwrap();
    }
    for (waiting_first, then) in [(1i64, 2i64), (3, 2)] {
        first.batch_execute("BEGIN").unwrap();
        first.query_one("SELECT recsys.recsys_activate($1)", &[&waiting_first]).unwrap();
        let waiter = std::thread::spawn(move || {
            let mut second = connect("hardening_activate", "");
            second.query_one("SELECT recsys.recsys_activate($1)", &[&then]).map(|r| r.get::<_, i64>(0)).map_err(|e| e.to_string())
        });
        std::thread::sleep(Duration::from_millis(500));
        assert!(!waiter.is_finished(), "the second activation waits for the first to commit");
        first.batch_execute("COMMIT").unwrap();
        assert_eq!(waiter.join().unwrap(), Ok(then), "the second activation succeeds after the first (no 23505)");
        let row = first.query_one("SELECT version, previous_version FROM recsys.models WHERE status = 'active'", &[]).unwrap();
        assert_eq!(
            (row.get::<_, i64>(0), row.get::<_, Option<i64>>(1)),
            (then, Some(waiting_first)),
            "the rollback target is the version the first session activated"
        );
        assert_eq!(first.query_one("SELECT recsys.recsys_rollback()", &[]).unwrap().get::<_, i64>(0), waiting_first);
        first.query_one("SELECT recsys.recsys_activate($1)", &[&then]).unwrap();
    }
}

#[test]
fn features_out_of_range_give_an_error_not_nan() {
    let mut db = cluster().trained_demo_database("hardening_nan").unwrap();
    for runtime in ["1e40", "1e39", "1e7"] {
        let (code, message) = sql_error(&mut db, &format!("SELECT recsys.recsys_predict_new(1, 'X', runtime_minutes => {runtime})"));
        assert_eq!(code, "22023", "runtime {runtime}: {message}");
    }
    for year in ["-2147483648", "2147483647", "99999"] {
        let (code, message) = sql_error(&mut db, &format!("SELECT recsys.recsys_predict_new(1, 'X', year => {year})"));
        assert_eq!(code, "22023", "year {year}: {message}");
    }
    let score: f32 = db.query_one("SELECT recsys.recsys_predict_new(1, 'X', runtime_minutes => 51420, year => 1888)", &[]).unwrap().get(0);
    assert!((0.5..=5.0).contains(&score) && score.is_finite(), "the longest film ever made and the oldest are scored: {score}");
}

/// Peak resident memory of a backend so far, in MB (VmHWM).
fn backend_peak_mb(db: &mut Client) -> u64 {
    let pid: i32 = db.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok()).unwrap() / 1024
}

#[test]
fn a_huge_list_is_scored_in_bounded_memory_and_can_be_cancelled() {
    let mut owner = cluster().trained_demo_database("hardening_list").unwrap();
    owner.batch_execute("DROP ROLE IF EXISTS list_reader; CREATE ROLE list_reader LOGIN IN ROLE recsys_reader").unwrap();
    let mut reader = Client::connect(&cluster().connection_string("list_reader", "hardening_list"), NoTls).unwrap();
    reader.query_one("SELECT recsys.recsys_predict(1, 1)", &[]).unwrap();
    let count: i64 = reader
        .query_one("SELECT count(*) FROM recsys.recsys_predict(1, (SELECT array_agg(1 + g % 250) FROM generate_series(1, 1000000) g))", &[])
        .unwrap()
        .get(0);
    assert_eq!(count, 1_000_000);
    let peak = backend_peak_mb(&mut reader);
    assert!(peak < 600, "one call over a million movie ids peaked at {peak} MB (it took 5 GB when scored in one pass)");
    reader.batch_execute("SET statement_timeout = '1s'").unwrap();
    let started = Instant::now();
    let (code, message) =
        sql_error(&mut reader, "SELECT count(*) FROM recsys.recsys_predict(1, (SELECT array_agg(1 + g % 250) FROM generate_series(1, 8000000) g))");
    assert_eq!(code, "57014", "{message}");
    assert!(started.elapsed() < Duration::from_millis(2500), "cancelled {:?} after the timeout", started.elapsed());
}

#[test]
fn an_error_inside_the_extensions_queries_keeps_its_sqlstate_and_shows_no_internals() {
    let mut holder = cluster().trained_demo_database("hardening_detail").unwrap();
    holder.batch_execute("BEGIN; LOCK TABLE recsys.batch_recommendations").unwrap();
    let mut admin = connect("hardening_detail", "");
    admin.batch_execute("SET lock_timeout = '500ms'").unwrap();
    let error = admin.batch_execute("CALL recsys.recsys_refresh_batch(5)").unwrap_err();
    let db = error.as_db_error().unwrap();
    assert_eq!(db.code().code(), "55P03", "{}", db.message());
    let detail = db.detail().unwrap_or("");
    assert!(!detail.contains("pgrx") && detail.lines().count() <= 1, "no Rust backtrace in DETAIL: {detail}");
    holder.batch_execute("ROLLBACK").unwrap();
}

#[test]
fn an_artefact_that_cannot_be_read_is_not_reported_missing() {
    let mut db = cluster().trained_demo_database("hardening_unreadable").unwrap();
    let dir = std::env::temp_dir().join(format!("recsys-unreadable-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("manifest.json")).unwrap();
    let (code, message) = sql_error(&mut db, &format!("SELECT recsys.recsys_load_artefact('{}')", dir.display()));
    let missing = sql_error(&mut db, &format!("SELECT recsys.recsys_load_artefact('{}')", dir.join("nothing-here").display()));
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, "58030", "a manifest that is a directory is an I/O error, not a missing file: {message}");
    assert_eq!(missing.0, "58P01", "{}", missing.1);
}

#[test]
fn a_manifest_with_a_huge_dimension_is_refused_as_corrupt_not_allocated() {
    let mut db = cluster().trained_demo_database("hardening_huge").unwrap();
    cluster().quick_train("hardening_huge", &["--seed", "8"]).unwrap();
    db.batch_execute(
        "UPDATE recsys.models SET manifest = jsonb_set(jsonb_set(manifest, '{config,user_dim}', '1099511627776'), '{config,movie_dim}', '1099511627776')
         WHERE version = 2",
    )
    .unwrap();
    let (code, message) = sql_error(&mut db, "SELECT recsys.recsys_activate(2)");
    assert_eq!(code, "XX001", "{message}");
    assert!(message.contains("weights file holds"), "{message}");
    assert_eq!(active_version(&mut db), Some(1), "the active model stays");
    db.query_one("SELECT recsys.recsys_predict(1, 1)", &[]).expect("the backend survives and serves");
}
