//! Conformance with the reference's own fixtures (`tests/lang/reference/`,
//! copied as data, see its NOTICE.md): every `.pg` compiles, every `.gq`
//! checks clean against the schema beside it, and `test.gq` runs over
//! `test.jsonl` with the answers its data implies.

use std::path::PathBuf;

use omnigraph::engine::load::LoadMode;
use omnigraph::engine::{Graph, ReadAt};
use omnigraph::query::compile_queries;
use omnigraph::schema::compile_schema_file;
use serde_json::json;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/lang/reference")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Compiles every `.pg` in `dir` and checks the `.gq` beside it, if any,
/// clean against it; with `cite`, every query is preceded by a comment
/// starting with it (its source). Returns (schemas, queries, the schema
/// files by name).
fn check_dir(dir: &std::path::Path, cite: Option<&str>) -> (usize, usize, Vec<String>) {
    let (mut schemas, mut queries) = (0, 0);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("pg"))
        .map(|p| p.display().to_string())
        .collect();
    names.sort();
    for pg in &names {
        let text = std::fs::read_to_string(pg).expect("read pg");
        let cat = compile_schema_file(pg, &text).unwrap_or_else(|d| panic!("{}", d.render(false)));
        schemas += 1;
        let gq = PathBuf::from(pg).with_extension("gq");
        if !gq.exists() {
            continue;
        }
        let src = std::fs::read_to_string(&gq).expect("read gq");
        let compiled = compile_queries(&cat, &src);
        let errors = crate::support::errors(&compiled);
        assert!(errors.is_empty(), "{}: {errors:#?}", gq.display());
        assert_eq!(compiled.queries.len(), compiled.declared.len());
        if let Some(cite) = cite {
            assert_eq!(
                src.matches(cite).count(),
                compiled.queries.len(),
                "{}: every query names its source",
                gq.display()
            );
        }
        queries += compiled.queries.len();
    }
    (schemas, queries, names)
}

#[test]
fn every_reference_schema_and_query_file_is_accepted() {
    let (schemas, queries, names) = check_dir(&dir(), None);
    assert_eq!(schemas, 4, "test, search, signals, context: {names:?}");
    assert_eq!(queries, 19, "test.gq 11, search.gq 8");
}

/// The schema and query examples of the reference's user docs
/// (`tests/lang/reference/docs/`, each query marked with its page and
/// line; fragments shown inline in the prose are wrapped into whole
/// queries and marked so): every schema compiles and every query checks
/// clean against the schema beside it.
#[test]
fn every_reference_doc_example_is_accepted() {
    let (schemas, queries, names) = check_dir(&dir().join("docs"), Some("// docs/user/"));
    assert_eq!(schemas, 9, "{names:?}");
    assert_eq!(queries, 14);
}

#[test]
fn the_reference_test_queries_run_over_its_data() {
    let rt = crate::support::runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").display().to_string();
    let g = rt
        .block_on(Graph::init(&uri, "test.pg", &read("test.pg")))
        .expect("init");
    rt.block_on(g.load(
        std::io::Cursor::new(read("test.jsonl")),
        LoadMode::Overwrite,
        "main",
        None,
        "conformance",
    ))
    .expect("load");
    let compiled = compile_queries(&g.catalog(), &read("test.gq"));
    let run = |name: &str, params: serde_json::Value| {
        let q = compiled.query(name).unwrap_or_else(|| panic!("{name}"));
        rt.block_on(g.query(q, &params, &ReadAt::Branch("main".into())))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let cell = |r: &omnigraph::engine::exec::QueryResult, row: usize, col: &str| {
        r.rows[row].get(col).cloned().unwrap_or_default()
    };

    let r = run("get_person", json!({"name": "Alice"}));
    assert_eq!(r.rows.len(), 1);
    assert_eq!(cell(&r, 0, "age"), json!(30));
    let r = run("adults", json!({}));
    assert_eq!(r.rows.len(), 1, "only Charlie is over 30");
    assert_eq!(cell(&r, 0, "name"), json!("Charlie"));
    assert_eq!(run("friends_of", json!({"name": "Alice"})).rows.len(), 2);
    assert_eq!(
        cell(&run("employees_of", json!({"company": "Acme"})), 0, "name"),
        json!("Alice")
    );
    let r = run("friends_of_friends", json!({"name": "Alice"}));
    assert_eq!(cell(&r, 0, "name"), json!("Diana"));
    let r = run("unemployed", json!({}));
    let mut names: Vec<String> = r
        .rows
        .iter()
        .filter_map(|row| row.get("name").and_then(|v| v.as_str()).map(String::from))
        .collect();
    names.sort();
    assert_eq!(names, ["Charlie", "Diana"]);
    let r = run("friend_counts", json!({}));
    assert_eq!(r.columns, ["name", "friends"]);
    assert_eq!(
        (cell(&r, 0, "name"), cell(&r, 0, "friends")),
        (json!("Alice"), json!(2))
    );
    let r = run("top_by_age", json!({}));
    assert_eq!(r.rows.len(), 2);
    assert_eq!(cell(&r, 0, "name"), json!("Charlie"));
    assert_eq!(cell(&run("total_people", json!({})), 0, "total"), json!(4));
    let r = run("age_stats", json!({}));
    assert_eq!(r.rows.len(), 2, "one row per company");
    assert_eq!(
        r.columns,
        [
            "name",
            "total_age",
            "avg_age",
            "youngest",
            "oldest",
            "headcount"
        ]
    );
    let r = run("top_connected", json!({}));
    assert_eq!(r.rows.len(), 1);
    assert_eq!(cell(&r, 0, "name"), json!("Alice"));
}
