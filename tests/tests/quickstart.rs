//! The README's quick start as printed: its `sql` block(s) under "Quick start", run with psql on a trained demo
//! database whose search_path includes `recsys` (as `scripts/demo.sh` sets it), stopping at the first error.
use postgres::{Client, NoTls};
use recsys_integration_tests::{shared_cluster, Loading, ScratchDir};
use std::path::Path;

/// The fenced `sql` blocks between the heading that starts with `## Quick start` and the next `## ` heading.
fn quick_start_sql(readme: &str) -> String {
    let section = readme.split("\n## ").find(|section| section.starts_with("Quick start")).expect("a '## Quick start' section");
    let mut sql = String::new();
    let mut inside = false;
    for line in section.lines() {
        match line.trim() {
            "```sql" => inside = true,
            "```" if inside => inside = false,
            _ if inside => sql.push_str(&format!("{line}\n")),
            _ => {}
        }
    }
    sql
}

#[test]
fn the_readme_quick_start_runs_as_printed_on_the_demo_database() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap();
    let sql = quick_start_sql(&readme);
    let statements: Vec<&str> = sql.lines().map(|line| line.split("--").next().unwrap().trim()).filter(|s| !s.is_empty()).collect();
    assert!(statements.len() >= 4, "the quick start shows several statements:\n{sql}");

    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = cluster.trained_demo_database("quickstart").unwrap();
    db.batch_execute("ALTER DATABASE quickstart SET search_path = \"$user\", public, recsys").unwrap();
    db.batch_execute("DELETE FROM recsys.batch_recommendations").unwrap();
    let scratch = ScratchDir::new("quickstart").unwrap();
    let output = cluster.psql_script("quickstart", &scratch.write("quickstart.sql", &sql).unwrap()).unwrap();

    let mut db = Client::connect(&cluster.connection_string("postgres", "quickstart"), NoTls).unwrap();
    for statement in statements.iter().filter(|s| s.to_uppercase().starts_with("SELECT")) {
        let rows = db.query(statement.trim_end_matches(';'), &[]).unwrap_or_else(|e| panic!("{statement}: {e}"));
        assert!(!rows.is_empty(), "{statement} returns rows");
        for row in &rows {
            assert!((0..row.len()).all(|column| row.try_get::<_, Option<f32>>(column).map_or(true, |v| v.is_none_or(f32::is_finite))));
        }
    }
    let users: i64 = db.query_one("SELECT count(*) FROM recsys.users", &[]).unwrap().get(0);
    let batch: i64 = db.query_one("SELECT count(*) FROM recsys.batch_recommendations", &[]).unwrap().get(0);
    assert_eq!(batch, 10 * users, "the quick start's refresh wrote every user's top-10:\n{output}");
    let printed: Vec<&str> = output.lines().filter(|line| !line.is_empty()).collect();
    let predicted: f32 = db.query_one(statements[0].trim_end_matches(';'), &[]).unwrap().get(0);
    assert_eq!(printed[0].parse::<f32>().ok(), Some(predicted), "the first printed line is the first prediction:\n{output}");
}

#[test]
fn only_the_quick_start_section_s_sql_blocks_are_taken() {
    let readme = "# x\n```sql\nSELECT 0;\n```\n## Quick start (psql)\ntext\n```sql\nSELECT 1;\n```\n```bash\nls\n```\n```sql\nSELECT 2;\n```\n## Next\n```sql\nSELECT 3;\n```\n";
    assert_eq!(quick_start_sql(readme), "SELECT 1;\nSELECT 2;\n");
}
