//! What DROP EXTENSION pg_recsys keeps: nothing, so while the extension's tables hold ratings, movies, users, people
//! or models the drop guard refuses it (2BP01, with the way to keep a copy), and DROP SCHEMA recsys too; an empty
//! install drops freely, other extensions drop freely, and recsys.allow_drop_with_data = on drops it with its data.
use recsys_integration_tests::{shared_cluster, sql_error, Loading, TempCluster};

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::OnDemand)
}

fn extension_present(db: &mut postgres::Client) -> bool {
    db.query_one("SELECT count(*) FROM pg_extension WHERE extname = 'pg_recsys'", &[]).unwrap().get::<_, i64>(0) == 1
}

#[test]
fn an_empty_install_drops_freely() {
    let mut db = cluster().fresh_database("drop_empty").unwrap();
    db.batch_execute("DROP EXTENSION pg_recsys").unwrap();
    assert!(!extension_present(&mut db));
}

#[test]
fn a_drop_that_would_delete_data_is_refused_until_the_session_allows_it() {
    let mut db = cluster().demo_database("drop_data").unwrap();
    let ratings = |db: &mut postgres::Client| db.query_one("SELECT count(*) FROM recsys.ratings", &[]).unwrap().get::<_, i64>(0);
    let before = ratings(&mut db);
    db.batch_execute(
        "CREATE FUNCTION public.drop_by_name(kind text, name text) RETURNS void LANGUAGE plpgsql AS
             $$ BEGIN EXECUTE format('DROP %s %I CASCADE', kind, name); END $$;
         CREATE FUNCTION public.drop_in_sql() RETURNS void LANGUAGE sql AS 'DROP SCHEMA recsys CASCADE';",
    )
    .unwrap();
    for statement in [
        "DROP EXTENSION pg_recsys",
        "DROP EXTENSION IF EXISTS \"pg_recsys\" CASCADE",
        "DROP SCHEMA recsys CASCADE",
        "DROP EXTENSION hstore_missing_ok_does_not_exist, pg_recsys",
        "DO $$ BEGIN EXECUTE 'DROP EXTENSION ' || 'pg_' || 'rec' || 'sys CASCADE'; END $$",
        "DO $$ BEGIN EXECUTE 'DROP SCHEMA ' || 'rec' || 'sys CASCADE'; END $$",
        "SELECT public.drop_by_name('EXTENSION', 'pg_' || 'recsys')",
        "SELECT public.drop_by_name('SCHEMA', 'rec' || 'sys')",
        "SELECT public.drop_in_sql()",
    ] {
        let error = db.batch_execute(statement).unwrap_err();
        let error = error.as_db_error().unwrap_or_else(|| panic!("{statement}: {error}"));
        assert_eq!(error.code().code(), "2BP01", "{statement}: {}", error.message());
        assert!(error.detail().unwrap_or("").contains("movies, persons, ratings, users"), "{statement}: {:?}", error.detail());
        assert!(error.hint().unwrap_or("").contains("SET recsys.allow_drop_with_data = on"), "{:?}", error.hint());
        assert!(extension_present(&mut db) && ratings(&mut db) == before, "{statement} kept everything");
    }

    db.batch_execute("CREATE EXTENSION hstore; DROP EXTENSION hstore").unwrap();
    db.batch_execute("CREATE SCHEMA notrecsys; DROP SCHEMA notrecsys").unwrap();

    db.batch_execute("SET recsys.allow_drop_with_data = on; DROP EXTENSION pg_recsys").unwrap();
    assert!(!extension_present(&mut db));
    let (code, _) = sql_error(&mut db, "SELECT count(*) FROM recsys.ratings");
    assert_eq!(code, "42P01", "allowed, the drop deletes the extension's tables");
}
