//! `recsys.shared_tables`: backends map the active model's weights and the catalogue's serving tables from one file
//! each under $PGDATA/pg_recsys, serve exactly what private tables serve, follow catalogue edits and activations to
//! new files (removing the old ones and those of dropped databases), rewrite a damaged file instead of serving it,
//! and say why (a WARNING with the cause) when they cannot write one.
use postgres::{Client, NoTls};
use recsys_integration_tests::{shared_cluster, Loading, TempCluster};

fn cluster() -> &'static TempCluster {
    shared_cluster(Loading::Preloaded)
}

/// The shared table files (`model-*`, `catalogue-*`) a backend has mapped, by file name.
fn mapped_tables(db: &mut Client) -> Vec<String> {
    let pid: i32 = db.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let mut files: Vec<String> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter_map(|path| path.rsplit('/').next())
        .filter(|name| (name.starts_with("model-") || name.starts_with("catalogue-")) && name.ends_with(".safetensors"))
        .map(str::to_string)
        .collect();
    files.sort();
    files.dedup();
    files
}

/// This database's table files present in $PGDATA/pg_recsys.
fn files_on_disk(db: &mut Client) -> Vec<String> {
    let row = db
        .query_one("SELECT current_setting('data_directory'), (SELECT oid::int8 FROM pg_database WHERE datname = current_database())", &[])
        .unwrap();
    let (data_dir, oid): (String, i64) = (row.get(0), row.get(1));
    let mut files: Vec<String> = std::fs::read_dir(format!("{data_dir}/pg_recsys"))
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with(&format!("model-{oid}-")) || name.starts_with(&format!("catalogue-{oid}-")))
        .collect();
    files.sort();
    files
}

fn recommendations(db: &mut Client) -> Vec<(i32, i32, f32)> {
    db.query("SELECT u.user_id, r.movie_id, r.score FROM recsys.users u, recsys.recsys_recommend(u.user_id, 10) r ORDER BY 1, r.rank", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

#[test]
fn backends_map_one_copy_of_the_tables_and_serve_what_private_tables_serve() {
    let name = "shared_tables";
    cluster().trained_demo_database(name).unwrap();
    let connect = || Client::connect(&cluster().connection_string("postgres", name), NoTls).unwrap();
    let (mut first, mut second, mut private) = (connect(), connect(), connect());
    private.batch_execute("SET recsys.shared_tables = off").unwrap();
    let expected = recommendations(&mut private);
    assert!(mapped_tables(&mut private).is_empty(), "with the setting off nothing is mapped");

    assert_eq!(recommendations(&mut first), expected, "mapped tables serve exactly what private ones do");
    assert_eq!(recommendations(&mut second), expected);
    let (version, catalogue): (i64, i64) = {
        let row =
            first.query_one("SELECT (SELECT version FROM recsys.models WHERE status = 'active'), version FROM recsys.catalogue_state", &[]).unwrap();
        (row.get(0), row.get(1))
    };
    let mapped = mapped_tables(&mut first);
    assert_eq!(mapped.len(), 2, "{mapped:?}");
    assert!(
        mapped[0].ends_with(&format!("-{version}-{catalogue}.safetensors")) && mapped[1].ends_with(&format!("-{version}.safetensors")),
        "{mapped:?}"
    );
    assert_eq!(mapped_tables(&mut second), mapped, "both backends map the same two files");
    assert_eq!(files_on_disk(&mut first), mapped);

    first
        .batch_execute(
            "INSERT INTO recsys.movies (movie_id, title, year, runtime_minutes) VALUES (900101, 'A Film Added To Shared Tables', 2024, 95)",
        )
        .unwrap();
    let after_edit = recommendations(&mut second);
    private.batch_execute("SELECT 1").unwrap();
    assert_eq!(after_edit, recommendations(&mut private), "after a catalogue edit, mapped and private tables still agree");
    let remapped = mapped_tables(&mut second);
    assert!(
        remapped.iter().any(|f| f.starts_with("catalogue-")) && !remapped.contains(&mapped[0]),
        "the edited catalogue is a new file: {remapped:?}"
    );
    assert_eq!(files_on_disk(&mut second), remapped, "the previous catalogue file is removed");
    recommendations(&mut first);
    assert_eq!(mapped_tables(&mut first), remapped, "the other backend maps the new file on its next statement");

    let catalogue_file = {
        let row = first.query_one("SELECT current_setting('data_directory')", &[]).unwrap();
        format!("{}/pg_recsys/{}", row.get::<_, String>(0), remapped[0])
    };
    let damaged = format!("{catalogue_file}.damaged-by-test");
    std::fs::write(&damaged, b"not a safetensors file").unwrap();
    std::fs::rename(&damaged, &catalogue_file).unwrap();
    let mut fresh = connect();
    assert_eq!(recommendations(&mut fresh), after_edit, "a damaged file is written again, never served");
    assert!(std::fs::metadata(&catalogue_file).unwrap().len() > 1000);

    let orphan = catalogue_file.replace(&remapped[0], "model-999999999-1.safetensors");
    std::fs::write(&orphan, b"the file of a dropped database").unwrap();
    cluster().quick_train(name, &["--seed", "7", "--activate"]).unwrap();
    recommendations(&mut first);
    let activated = mapped_tables(&mut first);
    assert!(activated.iter().all(|f| f.contains(&format!("-{}", version + 1))), "the new version's files: {activated:?}");
    assert_eq!(files_on_disk(&mut first), activated, "the previous version's files are removed");
    assert!(!std::path::Path::new(&orphan).exists(), "files of databases that no longer exist are removed");
}

/// Every shared table file under $PGDATA/pg_recsys, of any database.
fn all_table_files(db: &mut Client) -> Vec<String> {
    let data_dir: String = db.query_one("SELECT current_setting('data_directory')", &[]).unwrap().get(0);
    let mut files: Vec<String> = std::fs::read_dir(format!("{data_dir}/pg_recsys"))
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("model-") || name.starts_with("catalogue-"))
        .collect();
    files.sort();
    files
}

#[test]
fn disk_use_stays_bounded_after_a_dropped_database_and_three_activations() {
    let dropped = "shared_dropped";
    let mut doomed = cluster().trained_demo_database(dropped).unwrap();
    recommendations(&mut doomed);
    let doomed_files = files_on_disk(&mut doomed);
    assert_eq!(doomed_files.len(), 2, "a model and a catalogue file: {doomed_files:?}");
    drop(doomed);
    cluster().connect().unwrap().batch_execute(&format!("DROP DATABASE {dropped} WITH (FORCE)")).unwrap();

    let name = "shared_activations";
    let mut db = cluster().trained_demo_database(name).unwrap();
    for seed in ["11", "12", "13"] {
        cluster().quick_train(name, &["--seed", seed, "--activate"]).unwrap();
        recommendations(&mut db);
        let files = all_table_files(&mut db);
        assert!(doomed_files.iter().all(|file| !files.contains(file)), "the dropped database's files are gone: {files:?}");
        let served = mapped_tables(&mut db);
        assert_eq!(files_on_disk(&mut db), served, "only the served version's two files stay after activating seed {seed}");
        assert_eq!(served.len(), 2, "{served:?}");
    }
}

/// Changes `path` in place, as a careless operator or a failing disk would: truncated to half its length, or with
/// 64 bytes in its middle overwritten.
fn damage_in_place(path: &str, truncate: bool) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    let length = file.metadata().unwrap().len();
    if truncate {
        file.set_len(length / 2).unwrap();
    } else {
        file.seek(SeekFrom::Start(length / 2)).unwrap();
        file.write_all(&[0xA5; 64]).unwrap();
    }
    file.sync_all().unwrap();
}

#[test]
fn a_shared_file_truncated_or_corrupted_in_place_is_rebuilt_and_no_backend_crashes() {
    let name = "shared_damage";
    cluster().trained_demo_database(name).unwrap();
    let connect = || Client::connect(&cluster().connection_string("postgres", name), NoTls).unwrap();
    let mut open = connect();
    let backend: i32 = open.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
    let expected = recommendations(&mut open);
    let data_dir: String = open.query_one("SELECT current_setting('data_directory')", &[]).unwrap().get(0);
    let files = mapped_tables(&mut open);
    assert_eq!(files.len(), 2, "a model and a catalogue file: {files:?}");
    for (file, truncate) in [(&files[0], true), (&files[1], true), (&files[0], false), (&files[1], false)] {
        let path = format!("{data_dir}/pg_recsys/{file}");
        let length = std::fs::metadata(&path).unwrap().len();
        damage_in_place(&path, truncate);
        assert_eq!(recommendations(&mut open), expected, "{file} (truncated: {truncate}): the open backend rebuilds it and serves the same");
        let mut fresh = connect();
        assert_eq!(recommendations(&mut fresh), expected, "{file} (truncated: {truncate}): a new backend serves the same");
        assert_eq!(std::fs::metadata(&path).unwrap().len(), length, "{file} was written again whole");
        let same: i32 = open.query_one("SELECT pg_backend_pid()", &[]).unwrap().get(0);
        assert_eq!(same, backend, "no backend crashed: a crash would have ended every connection");
    }
}

/// Makes a directory read-only for its owner (the postgres user) until dropped, also when the test fails.
struct ReadOnlyDirectory {
    path: String,
    mode: u32,
}

impl ReadOnlyDirectory {
    fn new(path: String) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o555)).unwrap();
        ReadOnlyDirectory { path, mode }
    }
}

impl Drop for ReadOnlyDirectory {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(self.mode));
    }
}

#[test]
fn a_shared_file_that_cannot_be_written_is_a_warning_with_its_cause_and_the_backend_serves_a_private_copy() {
    let own = TempCluster::start("shared-unwritable", Loading::Preloaded, &[]).unwrap();
    let name = "shared_unwritable";
    let mut writer = own.trained_demo_database(name).unwrap();
    recommendations(&mut writer);
    let data_dir: String = writer.query_one("SELECT current_setting('data_directory')", &[]).unwrap().get(0);
    let _read_only = ReadOnlyDirectory::new(format!("{data_dir}/pg_recsys"));
    writer.batch_execute("UPDATE recsys.movies SET title = 'A Title No Model Has Seen' WHERE movie_id = 2").unwrap();
    let mut private = Client::connect(&own.connection_string("postgres", name), NoTls).unwrap();
    private.batch_execute("SET recsys.shared_tables = off").unwrap();
    let expected = recommendations(&mut private);

    let (mut fresh, messages) = own.connect_keeping_messages(name).unwrap();
    let served = recommendations(&mut fresh);
    let differing: Vec<_> = served.iter().zip(&expected).filter(|(a, b)| (a.0, a.1) != (b.0, b.1) || (a.2 - b.2).abs() > 1e-5).take(5).collect();
    assert!(
        served.len() == expected.len() && differing.is_empty(),
        "the backend that cannot write the catalogue file serves what a private copy serves (the re-encoded movie to float rounding): {differing:?}"
    );
    let said = messages.lock().unwrap().join("\n");
    assert!(said.contains("WARNING: pg_recsys: cannot share tables through"), "the failure is said, not swallowed: {said}");
    assert!(said.contains("ermission denied"), "with its cause: {said}");
    assert!(mapped_tables(&mut fresh).iter().all(|file| !file.starts_with("catalogue-")), "no catalogue file is mapped");
}
