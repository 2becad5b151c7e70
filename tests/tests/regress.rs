//! pg_regress over tests/regress/{sql,expected}: the documented SQL results and errors of pg_recsys pinned as
//! expected output, run with Debian's pg_regress against a database holding the demo data and a trained model.
//! `RECSYS_REGRESS_ACCEPT=1` copies the actual output over the expected files (review the diff before committing).
use recsys_integration_tests::{shared_cluster, Loading};
use std::path::Path;
use std::process::Command;

const PG_REGRESS: &str = "/usr/lib/postgresql/15/lib/pgxs/src/test/regress/pg_regress";
const DATABASE: &str = "regression";

#[test]
fn sql_behaviour_matches_the_expected_files() {
    let cluster = shared_cluster(Loading::Preloaded);
    cluster.trained_demo_database(DATABASE).unwrap();
    let input = Path::new(env!("CARGO_MANIFEST_DIR")).join("regress");
    let output = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/regress-output");
    let _ = std::fs::remove_dir_all(&output);
    std::fs::create_dir_all(&output).unwrap();
    let mut tests: Vec<String> =
        std::fs::read_dir(input.join("sql")).unwrap().filter_map(|entry| entry.ok()?.path().file_stem()?.to_str().map(str::to_string)).collect();
    tests.sort();
    let accept = std::env::var_os("RECSYS_REGRESS_ACCEPT").is_some();
    for test in tests.iter().filter(|_| accept) {
        let expected = input.join("expected").join(format!("{test}.out"));
        if !expected.exists() {
            std::fs::write(expected, "").unwrap();
        }
    }
    let (socket, port) = cluster.socket_and_port();
    let result = Command::new(PG_REGRESS)
        .args(["--use-existing", &format!("--dbname={DATABASE}"), "--user=postgres", "--bindir=/usr/lib/postgresql/15/bin"])
        .arg(format!("--host={}", socket.display()))
        .arg(format!("--port={port}"))
        .arg("--inputdir")
        .arg(&input)
        .arg("--outputdir")
        .arg(&output)
        .args(&tests)
        .output()
        .unwrap();
    if accept {
        for test in &tests {
            std::fs::copy(output.join("results").join(format!("{test}.out")), input.join("expected").join(format!("{test}.out"))).unwrap();
        }
        return;
    }
    let diffs = std::fs::read_to_string(output.join("regression.diffs")).unwrap_or_default();
    assert!(
        result.status.success(),
        "pg_regress failed:\n{}{}\n{diffs}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
}
