//! docs/sql-reference.md against the installed extension: every function, procedure, table, view and setting the
//! extension owns is documented there with its signature (columns, type and default), its `COMMENT ON` (or the
//! setting's description) and who may call it, and every object the document names exists.
use recsys_integration_tests::{shared_cluster, Loading};
use std::collections::BTreeMap;
use std::path::Path;

/// What the document states about one object, or what the catalogue says about it, in the same words.
#[derive(Debug, Default, PartialEq, Eq, Clone)]
struct Entry {
    summary: String,
    facts: Vec<String>,
}

const ROUTINES: &str = "
    SELECT CASE p.prokind WHEN 'p' THEN 'CALL ' ELSE '' END || p.proname || '('
           || regexp_replace(pg_get_function_arguments(p.oid), '(^|, )IN ', '\\1', 'g') || ')'
           || coalesce(' → ' || pg_get_function_result(p.oid), '') AS heading,
           coalesce(obj_description(p.oid, 'pg_proc'), '') AS summary,
           'Who: `' || CASE WHEN has_function_privilege('recsys_reader', p.oid, 'EXECUTE') THEN 'recsys_reader'
                            WHEN has_function_privilege('recsys_admin', p.oid, 'EXECUTE') THEN 'recsys_admin'
                            ELSE 'superuser' END || '`' AS fact
    FROM pg_proc p
    JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
    JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_recsys'";

const RELATIONS: &str = "
    SELECT c.relname::text AS heading,
           coalesce(obj_description(c.oid, 'pg_class'), '') AS summary,
           'Columns: ' || string_agg('`' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || '`', ', ' ORDER BY a.attnum) AS fact
    FROM pg_class c
    JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
    JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'pg_recsys'
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE c.relkind IN ('r', 'v')
    GROUP BY c.oid, c.relname";

const SETTINGS: &str = "
    SELECT name AS heading, short_desc AS summary,
           'Setting: type `' || vartype || '`, default `' || coalesce(nullif(boot_val, ''), '(empty)') || '`, context `' || context || '`'
           || coalesce(', range `' || min_val || '..' || max_val || '`', '') AS fact
    FROM pg_settings WHERE name LIKE 'recsys.%'";

fn installed() -> BTreeMap<String, Entry> {
    let cluster = shared_cluster(Loading::Preloaded);
    let mut db = cluster.fresh_database("sql_reference").unwrap();
    let mut entries = BTreeMap::new();
    for query in [ROUTINES, RELATIONS, SETTINGS] {
        for row in db.query(query, &[]).unwrap() {
            let summary: String = row.get(1);
            let entry = Entry { summary: summary.split_whitespace().collect::<Vec<_>>().join(" "), facts: vec![row.get(2)] };
            assert!(entries.insert(row.get(0), entry).is_none(), "one entry per heading");
        }
    }
    entries
}

fn joined(parts: &str, line: &str) -> String {
    format!("{parts} {line}").split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reads `### `heading`` entries: the `> ` quote under each is its summary, and paragraphs starting with `Who:`,
/// `Columns:` or `Setting:` (possibly wrapped over several lines) are its facts.
fn documented(text: &str) -> BTreeMap<String, Entry> {
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut in_fact = false;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("### ") {
            let name = heading.trim().trim_matches('`').to_string();
            assert!(entries.insert(name.clone(), Entry::default()).is_none(), "{name} is documented twice");
            current = Some(name);
        } else if line.starts_with("## ") {
            current = None;
        } else if let Some(name) = &current {
            let entry = entries.get_mut(name).expect("the current entry");
            if let Some(quote) = line.strip_prefix('>') {
                entry.summary = joined(&entry.summary, quote);
            } else if ["Who: ", "Columns: ", "Setting: "].iter().any(|prefix| line.starts_with(prefix)) {
                entry.facts.push(line.trim().to_string());
                in_fact = true;
            } else if in_fact && !line.trim().is_empty() {
                let fact = entry.facts.last_mut().expect("a fact being read");
                *fact = joined(fact, line);
            }
            in_fact = in_fact && !line.trim().is_empty();
        }
    }
    for entry in entries.values_mut() {
        entry.facts.iter_mut().for_each(|fact| *fact = fact.trim_end_matches('.').to_string());
    }
    entries
}

#[test]
fn the_sql_reference_documents_exactly_what_the_extension_installs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/sql-reference.md");
    let documented = documented(&std::fs::read_to_string(&path).unwrap());
    let installed = installed();
    let missing: Vec<&String> = installed.keys().filter(|name| !documented.contains_key(*name)).collect();
    let stale: Vec<&String> = documented.keys().filter(|name| !installed.contains_key(*name)).collect();
    assert!(missing.is_empty() && stale.is_empty(), "not documented: {missing:#?}\ndocumented but not installed: {stale:#?}");
    let uncommented: Vec<&String> = installed.iter().filter(|(_, entry)| entry.summary.is_empty()).map(|(name, _)| name).collect();
    assert!(uncommented.is_empty(), "without COMMENT ON (or description): {uncommented:#?}");
    let differing: Vec<String> = installed
        .iter()
        .filter(|(name, entry)| &documented[*name] != *entry)
        .map(|(name, entry)| format!("{name}\n  documented: {:?}\n  installed:  {entry:?}", documented[name]))
        .collect();
    assert!(differing.is_empty(), "the document's quote and facts differ from the installed extension:\n{}", differing.join("\n"));
}

#[test]
fn the_reference_reader_joins_wrapped_quotes_and_facts() {
    let text = "## Functions\n### `f(a integer) → real`\n\n> One.\n> Two.\n\nWho: `recsys_reader`.\n\nMore.\n### `t`\nColumns: `a\ninteger`, `b text`.\n\n## Settings\n### `recsys.x`\n> X.\n";
    let entries = documented(text);
    assert_eq!(entries["f(a integer) → real"], Entry { summary: "One. Two.".into(), facts: vec!["Who: `recsys_reader`".into()] });
    assert_eq!(entries["t"].facts, vec!["Columns: `a integer`, `b text`".to_string()]);
    assert_eq!(entries["recsys.x"], Entry { summary: "X.".into(), facts: vec![] });
    assert_eq!(entries.len(), 3);
}
