//! Upgrades keep every row: databases created by the released 0.1.0 to 0.6.0 scripts (kept as fixtures, as
//! pgvectorscale keeps its old releases for its upgrade test) with data, models and a batch are updated with ALTER
//! EXTENSION … UPDATE, keep everything and predict the same, and end with the same schema as a fresh install. Also:
//! every released version has an upgrade path to the version being built.
use postgres::{Client, NoTls};
use recsys_integration_tests::{shared_cluster, Loading, TempCluster};
use std::path::{Path, PathBuf};

/// Every version of pg_recsys that was released; each must have an upgrade path to the current one.
const RELEASED: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.4.0", "0.5.0", "0.6.0"];
const CURRENT: &str = env!("CARGO_PKG_VERSION");

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::Preloaded)
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `from → to` steps of the upgrade scripts in pg_recsys/sql.
fn upgrade_steps() -> Vec<(String, String)> {
    std::fs::read_dir(repository().join("pg_recsys/sql"))
        .unwrap()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            let versions = name.strip_prefix("pg_recsys--")?.strip_suffix(".sql")?;
            let (from, to) = versions.split_once("--")?;
            Some((from.to_string(), to.to_string()))
        })
        .collect()
}

#[test]
fn every_released_version_has_a_path_to_the_current_one() {
    let steps = upgrade_steps();
    for released in RELEASED.iter().filter(|v| **v != CURRENT) {
        let mut at = released.to_string();
        let mut hops = 0;
        while at != CURRENT {
            let next = steps
                .iter()
                .find(|(from, _)| *from == at)
                .unwrap_or_else(|| panic!("no upgrade script from {at} (released {released}) towards {CURRENT}"));
            at = next.1.clone();
            hops += 1;
            assert!(hops <= steps.len(), "the upgrade scripts from {released} loop");
        }
    }
    let control = std::fs::read_to_string(repository().join("pg_recsys/pg_recsys.control")).unwrap();
    assert!(control.contains("default_version = '@CARGO_VERSION@'"), "the control file takes its version from Cargo");
    for released in RELEASED {
        assert!(
            repository().join(format!("tests/upgrade/pg_recsys--{released}.sql")).is_file(),
            "the install script of released {released} is kept for the upgrade test"
        );
    }
}

/// Puts the released install scripts beside the installed extension, as a server that ran them would have.
fn install_released_scripts() {
    let output = std::process::Command::new("/usr/lib/postgresql/15/bin/pg_config").arg("--sharedir").output().unwrap();
    let extension_dir = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim()).join("extension");
    for released in RELEASED {
        let name = format!("pg_recsys--{released}.sql");
        std::fs::copy(repository().join("tests/upgrade").join(&name), extension_dir.join(&name)).unwrap();
    }
}

fn connect(database: &str) -> Client {
    Client::connect(&cluster().connection_string("postgres", database), NoTls).unwrap()
}

/// What a 0.1.0 database holds: row counts of every table, the active model and its rollback target, the batch.
fn stored_state(db: &mut Client) -> Vec<String> {
    let mut state = Vec::new();
    for table in [
        "ratings",
        "movies",
        "users",
        "persons",
        "movie_persons",
        "movie_genres",
        "genres",
        "models",
        "title_embeddings",
        "quality_log",
        "batch_recommendations",
    ] {
        let count: i64 = db.query_one(&format!("SELECT count(*) FROM recsys.{table}"), &[]).unwrap().get(0);
        state.push(format!("{table}: {count} rows"));
    }
    let active = db.query_one("SELECT version, previous_version, md5(weights) FROM recsys.models WHERE status = 'active'", &[]).unwrap();
    state.push(format!(
        "active {:?}, rollback target {:?}, weights {}",
        active.get::<_, i64>(0),
        active.get::<_, Option<i64>>(1),
        active.get::<_, String>(2)
    ));
    for row in db.query("SELECT user_id, rank, movie_id, score, model_version FROM recsys.batch_recommendations ORDER BY user_id, rank", &[]).unwrap()
    {
        state.push(format!(
            "batch {} #{} = {} ({}, v{})",
            row.get::<_, i32>(0),
            row.get::<_, i16>(1),
            row.get::<_, i32>(2),
            row.get::<_, f32>(3),
            row.get::<_, i64>(4)
        ));
    }
    state
}

/// What users are served: predictions and recommendations of the active model.
fn served(db: &mut Client) -> Vec<String> {
    let mut served = Vec::new();
    for row in db
        .query("SELECT user_id, movie_id, recsys.recsys_predict(user_id, movie_id) FROM recsys.ratings ORDER BY user_id, movie_id LIMIT 50", &[])
        .unwrap()
    {
        served.push(format!("predict({}, {}) = {}", row.get::<_, i32>(0), row.get::<_, i32>(1), row.get::<_, f32>(2)));
    }
    for user in [1, 7, 99_999] {
        for row in db.query("SELECT rank, movie_id, score FROM recsys.recsys_recommend($1, 5)", &[&user]).unwrap() {
            served.push(format!("recommend({user}) #{} = {} ({})", row.get::<_, i32>(0), row.get::<_, i32>(1), row.get::<_, f32>(2)));
        }
    }
    served
}

/// A fresh database at the current version holding the demo data.
fn demo_at_current_version(name: &str) -> Client {
    let mut admin = cluster().connect().unwrap();
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let mut db = connect(name);
    db.batch_execute("CREATE EXTENSION pg_recsys").unwrap();
    import_demo(name);
    db
}

fn import_demo(database: &str) {
    let seeds = repository().join("seeds/demo");
    cluster().trainer_ok(database, &["import", "movielens", &seeds.join("movielens").display().to_string()]).unwrap();
    cluster().trainer_ok(database, &["import", "imdb", &seeds.join("imdb").display().to_string()]).unwrap();
}

/// The extension's catalog footprint: member objects, columns, indexes, views, functions with their settings,
/// comments and privileges.
fn schema(db: &mut Client) -> Vec<String> {
    let queries = [
        "SELECT pg_describe_object(classid, objid, objsubid) FROM pg_depend
         WHERE refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_recsys') AND deptype = 'e' ORDER BY 1",
        "SELECT table_name || '.' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || coalesce(column_default, '')
         FROM information_schema.columns WHERE table_schema = 'recsys' ORDER BY table_name, ordinal_position",
        "SELECT indexdef FROM pg_indexes WHERE schemaname = 'recsys' ORDER BY 1",
        "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
         WHERE c.relnamespace = 'recsys'::regnamespace AND NOT t.tgisinternal ORDER BY 1",
        "SELECT pg_get_functiondef(p.oid) FROM pg_proc p WHERE p.pronamespace = 'recsys'::regnamespace AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql') ORDER BY 1",
        "SELECT c.relname || ': ' || pg_get_viewdef(c.oid) FROM pg_class c WHERE c.relnamespace = 'recsys'::regnamespace AND c.relkind = 'v' ORDER BY 1",
        "SELECT c.relname || ' ' || coalesce(c.relacl::text, '') || ' ' || coalesce(obj_description(c.oid, 'pg_class'), '')
         FROM pg_class c WHERE c.relnamespace = 'recsys'::regnamespace ORDER BY 1",
        "SELECT p.oid::regprocedure::text || ' ' || p.provolatile::text || p.proparallel::text || p.proisstrict::text || ' ' || coalesce(p.proconfig::text, '')
                || ' ' || coalesce(p.proacl::text, '') || ' ' || coalesce(obj_description(p.oid, 'pg_proc'), '') || ' ' || pg_get_function_arguments(p.oid)
         FROM pg_proc p WHERE p.pronamespace = 'recsys'::regnamespace ORDER BY 1",
    ];
    queries.iter().flat_map(|q| db.query(*q, &[]).unwrap().into_iter().map(|r| r.get::<_, String>(0))).collect()
}

/// Fails with the differences unless `updated` has the catalog footprint of the fresh install `fresh`.
fn assert_same_schema(updated: &mut Client, fresh: &mut Client) {
    let (updated, installed) = (schema(updated), schema(fresh));
    let only_updated: Vec<&String> = updated.iter().filter(|line| !installed.contains(line)).collect();
    let only_installed: Vec<&String> = installed.iter().filter(|line| !updated.contains(line)).collect();
    assert!(only_updated.is_empty() && only_installed.is_empty(), "an updated database has the schema of a fresh install:\nonly after the update: {only_updated:#?}\nonly in a fresh install: {only_installed:#?}");
}

#[test]
fn updating_a_released_database_keeps_every_row_and_serves_the_same_model() {
    install_released_scripts();
    let mut admin = cluster().connect().unwrap();
    admin.batch_execute("DROP DATABASE IF EXISTS upgrade_old WITH (FORCE)").unwrap();
    admin.batch_execute("CREATE DATABASE upgrade_old").unwrap();
    let mut db = connect("upgrade_old");
    db.batch_execute("CREATE EXTENSION pg_recsys VERSION '0.1.0'").unwrap();
    import_demo("upgrade_old");
    cluster().quick_train("upgrade_old", &["--seed", "2"]).unwrap();
    cluster().quick_train("upgrade_old", &["--seed", "3"]).unwrap();
    // What 0.1.0's recsys_activate(1), recsys_activate(2) and a refresh leave behind (this build's library needs the
    // 0.2.0 objects, so the state is written as 0.1.0 wrote it).
    db.batch_execute(
        "UPDATE recsys.models SET status = 'retired', activated_at = now() WHERE version = 1;
         UPDATE recsys.models SET status = 'active', activated_at = now(), previous_version = 1 WHERE version = 2;
         INSERT INTO recsys.batch_recommendations (user_id, rank, movie_id, score, model_version, generated_at)
         SELECT u.user_id, r.rank, r.rank * 3, 4.5 - r.rank / 10.0, 2, now() FROM recsys.users u, generate_series(1, 5) r(rank);",
    )
    .unwrap();
    let before = stored_state(&mut db);
    let error = connect("upgrade_old").query_one("SELECT recsys.recsys_predict(1, 1)", &[]).unwrap_err();
    let error = error.as_db_error().unwrap();
    assert_eq!(error.code().code(), "55000", "{}", error.message());
    assert!(error.hint().unwrap_or("").contains("ALTER EXTENSION pg_recsys UPDATE"), "the hint says what to do: {:?}", error.hint());
    let config_before: Option<Vec<String>> =
        db.query_one("SELECT proconfig FROM pg_proc WHERE proname = 'recsys_schedule_refresh'", &[]).unwrap().get(0);
    assert_eq!(config_before, None, "the 0.1.0 functions run with the caller's search_path");

    db.batch_execute("ALTER EXTENSION pg_recsys UPDATE").unwrap();
    let version: String = db.query_one("SELECT extversion FROM pg_extension WHERE extname = 'pg_recsys'", &[]).unwrap().get(0);
    assert_eq!(version, CURRENT);
    assert_eq!(stored_state(&mut connect("upgrade_old")), before, "every row, the active model, its rollback target and the batch are kept");
    let upgraded = served(&mut connect("upgrade_old"));

    let mut fresh = demo_at_current_version("upgrade_new");
    fresh
        .execute(
            "INSERT INTO recsys.models (params, metrics, fingerprint, manifest, weights) SELECT $1::text::jsonb, $2::text::jsonb, $3::text::jsonb, $4::text::jsonb, $5",
            &[&"{}", &"{}", &"{}", &db.query_one("SELECT manifest::text FROM recsys.models WHERE version = 2", &[]).unwrap().get::<_, String>(0), &db.query_one("SELECT weights FROM recsys.models WHERE version = 2", &[]).unwrap().get::<_, Vec<u8>>(0)],
        )
        .unwrap();
    for row in db.query("SELECT embedder, text_sha256, embedding FROM recsys.title_embeddings", &[]).unwrap() {
        let (embedder, hash, embedding): (String, Vec<u8>, Vec<f32>) = (row.get(0), row.get(1), row.get(2));
        fresh
            .execute("INSERT INTO recsys.title_embeddings (embedder, text_sha256, embedding) VALUES ($1, $2, $3)", &[&embedder, &hash, &embedding])
            .unwrap();
    }
    fresh.query_one("SELECT recsys.recsys_activate(1)", &[]).unwrap();
    assert_eq!(
        upgraded,
        served(&mut connect("upgrade_new")),
        "the updated database serves its model exactly as a fresh install of the same artefact"
    );

    assert_same_schema(&mut db, &mut fresh);
}

/// A database created by the released `version`'s script with the demo data, two models trained and activated by
/// this build's trainer, and a batch.
fn served_database_at(version: &str, name: &str) -> Client {
    install_released_scripts();
    let mut admin = cluster().connect().unwrap();
    admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    let mut db = connect(name);
    db.batch_execute(&format!("CREATE EXTENSION pg_recsys VERSION '{version}'")).unwrap();
    import_demo(name);
    cluster().quick_train(name, &["--seed", "2", "--activate"]).unwrap();
    cluster().quick_train(name, &["--seed", "3", "--activate"]).unwrap();
    db.batch_execute("CALL recsys.recsys_refresh_batch(5)").unwrap();
    db
}

/// Updates `db` (database `name`) to this build and checks that it keeps `before` and serves `served_before`.
fn update_keeps_everything(db: &mut Client, name: &str, before: &[String], served_before: &[String]) {
    db.batch_execute("ALTER EXTENSION pg_recsys UPDATE").unwrap();
    let version: String = db.query_one("SELECT extversion FROM pg_extension WHERE extname = 'pg_recsys'", &[]).unwrap().get(0);
    assert_eq!(version, CURRENT);
    assert_eq!(stored_state(&mut connect(name)), before, "every row, the active model, its rollback target and the batch are kept");
    assert_eq!(served(&mut connect(name)), served_before, "and it serves exactly as before");
}

#[test]
fn updating_0_2_0_keeps_every_row_serves_the_same_and_brings_the_drop_guard() {
    let mut db = served_database_at("0.2.0", "upgrade_020");
    let (before, served_before) = (stored_state(&mut db), served(&mut connect("upgrade_020")));
    let guards: i64 = db.query_one("SELECT count(*) FROM pg_event_trigger WHERE evtname = 'recsys_refuse_drop_with_data'", &[]).unwrap().get(0);
    assert_eq!(guards, 0, "0.2.0 has no drop guard");

    update_keeps_everything(&mut db, "upgrade_020", &before, &served_before);
    let error = db.batch_execute("DROP EXTENSION pg_recsys").unwrap_err();
    assert_eq!(error.as_db_error().map(|e| e.code().code()), Some("2BP01"), "the update brings the drop guard: {error}");

    let mut fresh = demo_at_current_version("upgrade_020_fresh");
    assert_same_schema(&mut db, &mut fresh);
}

#[test]
fn updating_0_3_0_keeps_every_row_serves_the_same_and_records_catalogue_changes() {
    let mut db = served_database_at("0.3.0", "upgrade_030");
    let (before, served_before) = (stored_state(&mut db), served(&mut connect("upgrade_030")));
    let catalogue_version: i64 = db.query_one("SELECT version FROM recsys.catalogue_state", &[]).unwrap().get(0);

    update_keeps_everything(&mut db, "upgrade_030", &before, &served_before);
    let changes_from: i64 = db.query_one("SELECT changes_from FROM recsys.catalogue_state", &[]).unwrap().get(0);
    assert_eq!(changes_from, catalogue_version, "changes before the update were not recorded, so none is claimed");
    db.batch_execute("UPDATE recsys.movies SET title = title || ' (edited)' WHERE movie_id IN (1, 2)").unwrap();
    let recorded: Vec<i32> = db
        .query("SELECT movie_id FROM recsys.catalogue_changes WHERE version > $1 ORDER BY 1", &[&catalogue_version])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(recorded, vec![1, 2], "the updated triggers record which movies changed");

    let mut fresh = demo_at_current_version("upgrade_030_fresh");
    assert_same_schema(&mut db, &mut fresh);
}

#[test]
fn updating_0_4_0_keeps_every_row_and_its_refresh_calls_and_refreshes_by_shard() {
    let mut db = served_database_at("0.4.0", "upgrade_040");
    let (before, served_before) = (stored_state(&mut db), served(&mut connect("upgrade_040")));
    let shards_before: i64 =
        db.query_one("SELECT count(*) FROM pg_proc WHERE proname = 'recsys_refresh_batch_now' AND 'shards' = ANY (proargnames)", &[]).unwrap().get(0);
    assert_eq!(shards_before, 0, "0.4.0 refreshes every user at once");

    update_keeps_everything(&mut db, "upgrade_040", &before, &served_before);
    let batch = |db: &mut Client| -> Vec<(i32, i16, i32)> {
        db.query("SELECT user_id, rank, movie_id FROM recsys.batch_recommendations ORDER BY 1, 2", &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    let whole = batch(&mut db);
    db.batch_execute("CALL recsys.recsys_refresh_batch(5)").unwrap();
    assert_eq!(batch(&mut db), whole, "a 0.4.0 call refreshes the same batch");
    db.batch_execute("CALL recsys.recsys_refresh_batch(5, shard => 1, shards => 2)").unwrap();
    assert_eq!(batch(&mut db), whole, "one shard rewrites its users' rows with the same model");

    let mut fresh = demo_at_current_version("upgrade_040_fresh");
    assert_same_schema(&mut db, &mut fresh);
}

#[test]
fn updating_0_5_0_keeps_every_row_and_statements_that_change_no_catalogue_row_keep_its_version() {
    let mut db = served_database_at("0.5.0", "upgrade_050");
    let (before, served_before) = (stored_state(&mut db), served(&mut connect("upgrade_050")));
    let version = |db: &mut Client| -> i64 { db.query_one("SELECT version FROM recsys.catalogue_state", &[]).unwrap().get(0) };
    let no_op = "INSERT INTO recsys.genres (name) SELECT name FROM recsys.genres ON CONFLICT (name) DO NOTHING;
                 UPDATE recsys.movies SET title = 'never' WHERE false; DELETE FROM recsys.persons WHERE false;";
    let at = version(&mut db);
    db.batch_execute(no_op).unwrap();
    assert!(version(&mut db) > at, "0.5.0 bumps the catalogue version for statements that change no row");

    update_keeps_everything(&mut db, "upgrade_050", &before, &served_before);
    let at = version(&mut db);
    db.batch_execute(no_op).unwrap();
    assert_eq!(version(&mut db), at, "after the update, statements that change no row keep the version");
    db.batch_execute("UPDATE recsys.persons SET name = name || ' Jr.' WHERE person_id = (SELECT min(person_id) FROM recsys.persons)").unwrap();
    let renamed = version(&mut db);
    assert!(renamed > at, "a rename still bumps it");
    let marked: i64 = db.query_one("SELECT count(*) FROM recsys.catalogue_changes WHERE version = $1", &[&renamed]).unwrap().get(0);
    assert_eq!(marked, 0, "a person's rename re-encodes no movie");
    db.batch_execute("INSERT INTO recsys.genres (name) VALUES ('A Genre Added By The Upgrade Test')").unwrap();
    let everything: i64 = db
        .query_one(
            "SELECT count(*) FROM recsys.catalogue_changes WHERE version = (SELECT version FROM recsys.catalogue_state) AND movie_id IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(everything, 0, "a new genre on no movie does not mark every movie changed");

    let mut fresh = demo_at_current_version("upgrade_050_fresh");
    assert_same_schema(&mut db, &mut fresh);
}

#[test]
fn updating_0_6_0_keeps_every_row_and_refreshes_record_how_the_previous_batch_did() {
    let mut db = served_database_at("0.6.0", "upgrade_060");
    let (before, served_before) = (stored_state(&mut db), served(&mut connect("upgrade_060")));
    let columns: i64 = db
        .query_one("SELECT count(*) FROM information_schema.columns WHERE table_schema = 'recsys' AND table_name = 'quality_log' AND column_name LIKE 'previous_batch%'", &[])
        .unwrap()
        .get(0);
    assert_eq!(columns, 0, "0.6.0 does not measure the previous batch");

    update_keeps_everything(&mut db, "upgrade_060", &before, &served_before);
    db.batch_execute("CALL recsys.recsys_refresh_batch(5)").unwrap();
    let measured: Option<i64> = db
        .query_one("SELECT previous_batch_users FROM recsys.quality_history WHERE kind = 'refresh' ORDER BY run_id DESC LIMIT 1", &[])
        .unwrap()
        .get(0);
    assert_eq!(measured, Some(0), "the first refresh after the update measures the batch 0.6.0 wrote (no rating came after it)");

    let mut fresh = demo_at_current_version("upgrade_060_fresh");
    assert_same_schema(&mut db, &mut fresh);
}
