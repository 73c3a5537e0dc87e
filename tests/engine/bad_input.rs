//! Bad JSONL: each input fails with its line and field named, and the graph
//! is exactly as it was (same head commit, same table versions).

use omnigraph::engine::load::LoadMode;
use omnigraph::engine::{EngineError, ReadAt};

use crate::support::{head, load_str, small};

const OK_A: &str = r#"{"type":"Person","data":{"slug":"a","name":"Ann"}}"#;
const OK_ORG: &str = r#"{"type":"Org","data":{"name":"acme"}}"#;

/// (input lines, mode, the line that must be named, text the error contains)
fn cases() -> Vec<(Vec<&'static str>, LoadMode, usize, &'static str)> {
    use LoadMode::*;
    vec![
        (
            vec![OK_A, r#"{"type":"Person","#],
            Append,
            2,
            "invalid JSON",
        ),
        (vec![OK_A, "[1, 2]"], Append, 2, "expected a JSON object"),
        (
            vec![OK_A, r#"{"type":"Persn","data":{}}"#],
            Append,
            2,
            "unknown node type `Persn`; did you mean `Person`?",
        ),
        (
            vec![
                OK_A,
                r#"{"type":"Person","data":{"slug":"b","name":"B","agee":3}}"#,
            ],
            Append,
            2,
            "field `agee`: `Person` has no property `agee`",
        ),
        (
            vec![
                OK_A,
                r#"{"type":"Person","data":{"slug":"b","name":"B","age":"x"}}"#,
            ],
            Append,
            2,
            "field `age`: expected I32, found a string",
        ),
        (
            vec![OK_A, r#"{"type":"Person","data":{"slug":"b"}}"#],
            Append,
            2,
            "missing required property `name`",
        ),
        (
            vec![
                OK_A,
                r#"{"type":"Person","data":{"slug":"b","name":"B","status":"gone"}}"#,
            ],
            Append,
            2,
            "`gone` is not one of: active, archived",
        ),
        (
            vec![OK_A, OK_A],
            Append,
            2,
            "duplicate key: `Person` with id `a` already appears on line 1",
        ),
        (
            vec![
                r#"{"type":"Person","data":{"slug":"x","name":"X","email":"e@x"}}"#,
                r#"{"type":"Person","data":{"slug":"y","name":"Y","email":"e@x"}}"#,
            ],
            Append,
            2,
            "@unique(email) violated",
        ),
        (
            vec![
                OK_A,
                r#"{"type":"Person","data":{"slug":"b","name":"B","age":200}}"#,
            ],
            Append,
            2,
            "200 is outside @range(0..150)",
        ),
        (
            vec![
                OK_A,
                r#"{"type":"Person","data":{"slug":"b","name":"B","code":"abc"}}"#,
            ],
            Append,
            2,
            "does not match @check",
        ),
        (
            vec![OK_A, r#"{"edge":"Knows","from":"a","to":"zz"}"#],
            Append,
            2,
            "field `to`: edge `Knows` to `zz`: no `Person` with that key exists",
        ),
        (
            vec![
                OK_A,
                OK_ORG,
                r#"{"type":"Org","data":{"name":"globex"}}"#,
                r#"{"edge":"WorksAt","from":"a","to":"acme"}"#,
                r#"{"edge":"WorksAt","from":"a","to":"globex"}"#,
            ],
            Append,
            4,
            "@card(0..1) on `WorksAt`: `a` would have 2 edges",
        ),
        (
            vec![OK_A, r#"{"edge":"Likes","from":"a","to":"a"}"#],
            Append,
            2,
            "unknown edge type `Likes`",
        ),
        (
            vec![OK_A, r#"{"edge":"Knows","from":"a"}"#],
            Append,
            2,
            "an edge line needs `to`",
        ),
        (
            vec![
                OK_A,
                r#"{"type":"Person","data":{"slug":"b","name":"B","age":3000000000}}"#,
            ],
            Append,
            2,
            "out of range for I32",
        ),
        (
            vec![
                OK_A,
                r#"{"type":"Person","data":{"slug":"b","name":"B","born":"2026-02-30"}}"#,
            ],
            Append,
            2,
            "is not a date",
        ),
        (
            vec![
                OK_A,
                r#"{"type":"Person","data":{"slug":"b","name":"B","vec":[1]}}"#,
            ],
            Append,
            2,
            "expected 2 numbers, found 1",
        ),
        (
            vec![r#"{"type":"Person","data":{"slug":"base","name":"again"}}"#],
            Append,
            1,
            "key_conflict: `Person` `base` already exists",
        ),
        (
            vec![OK_A, r#"{"data":{}}"#],
            Append,
            2,
            "a line needs `type` (a node) or `edge` (an edge)",
        ),
        (
            vec![OK_A, r#"{"type":"Person","data":{"slug":"b","name":null}}"#],
            Merge,
            2,
            "cannot be null",
        ),
        (
            vec![
                OK_A,
                r#"{"type":"Person","data":{"slug":"b","name":"B","tags":[1]}}"#,
            ],
            Merge,
            2,
            "item 0: expected String",
        ),
        (
            vec![
                OK_A,
                r#"{"type":"Person","data":{"slug":"b","name":"B","seen":"yesterday"}}"#,
            ],
            Merge,
            2,
            "not an RFC 3339 datetime",
        ),
        (
            vec![
                OK_A,
                r#"{"type":"Person","extra":1,"data":{"slug":"b","name":"B"}}"#,
            ],
            Merge,
            2,
            "field `extra`: a node line has only `type` and `data`",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_names_its_line_and_changes_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    load_str(
        &g,
        r#"{"type":"Person","data":{"slug":"base","name":"Base"}}"#,
        LoadMode::Append,
        "main",
    )
    .await
    .expect("base row");
    let cases = cases();
    assert!(cases.len() >= 15);
    let before_head = head(&g, "main").await;
    let before = g
        .snapshot(&ReadAt::Branch("main".into()))
        .await
        .expect("snapshot");
    let mut failures = Vec::new();
    for (lines, mode, line, text) in cases {
        let input = lines.join("\n");
        match load_str(&g, &input, mode, "main").await {
            Ok(_) => failures.push(format!("loaded but should fail: {input}")),
            Err(EngineError::Load { errors }) => {
                let hit = errors
                    .iter()
                    .any(|e| e.line == line && e.to_string().contains(text));
                if !hit {
                    let got: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    failures.push(format!(
                        "want line {line} `{text}`, got {got:?}\n  for {input}"
                    ));
                }
            }
            Err(other) => failures.push(format!("want a load error, got {other}\n  for {input}")),
        }
        assert_eq!(
            head(&g, "main").await,
            before_head,
            "head moved after: {input}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let after = g
        .snapshot(&ReadAt::Branch("main".into()))
        .await
        .expect("snapshot");
    let versions = |s: &omnigraph::engine::Snapshot| {
        s.tables
            .iter()
            .map(|t| (t.table.clone(), t.version, t.rows))
            .collect::<Vec<_>>()
    };
    assert_eq!(versions(&before), versions(&after));
}

#[test]
fn cli_reports_the_line_and_exits_1() {
    let tmp = tempfile::tempdir().expect("tmp");
    let data = tmp.path().join("bad.jsonl");
    std::fs::write(&data, format!("{OK_A}\n{{\"type\":\"Person\",\"data\":{{\"slug\":\"b\",\"name\":\"B\",\"age\":\"x\"}}}}\n")).expect("write");
    let uri = crate::support::cli_small_graph(tmp.path());
    let uri = uri.as_str();
    let run = crate::support::omnigraph;
    let out = run(&[
        "load",
        "--data",
        data.to_str().expect("utf8"),
        "--mode",
        "append",
        uri,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2, field `age`: expected I32, found a string"),
        "{err}"
    );
}

/// Honest loads from the CLI: an overwrite reports the rows it replaced as
/// deleted; an overwrite with no rows is refused (exit 1, naming
/// `--allow-empty`) and leaves the branch as it was; an append with no rows
/// publishes nothing and says so; `--allow-empty` empties the branch.
#[test]
fn loads_report_what_they_replace_and_refuse_an_empty_overwrite() {
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = crate::support::cli_small_graph(tmp.path());
    let uri = uri.as_str();
    let run = |args: &[&str]| {
        let out = crate::support::omnigraph(args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let data = tmp.path().join("two.jsonl");
    let b = OK_A.replace("\"a\"", "\"b\"");
    std::fs::write(&data, format!("{OK_A}\n{b}\n")).expect("write");
    let data = data.to_str().expect("utf8");
    let empty = tmp.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").expect("write");
    let empty = empty.to_str().expect("utf8");
    let load = |mode: &str, file: &str, extra: &[&str]| {
        let mut args = vec!["load", "--data", file, "--mode", mode, "--json"];
        args.extend_from_slice(extra);
        args.push(uri);
        run(&args)
    };
    let (code, _, err) = load("overwrite", data, &[]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = load("overwrite", data, &[]);
    assert_eq!(code, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(r["mode"], "overwrite", "{r}");
    // Every node and edge type, by name; an overwrite writes them all.
    let person = r["nodes"]
        .as_array()
        .and_then(|n| n.iter().find(|d| d["name"] == "Person"))
        .unwrap_or_else(|| panic!("no Person in {r}"));
    assert_eq!(person["entities_loaded"], 2, "{r}");
    assert_eq!(r["total_entities"], 2, "{r}");
    assert_eq!(r["branch_created"], false, "{r}");
    let (code, _, err) = load("overwrite", empty, &[]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--allow-empty"), "{err}");
    let (code, out, err) = load("append", empty, &[]);
    assert_eq!(code, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).expect("json");
    // Nothing published: no commit (the human output says so).
    assert_eq!(r["commit"], serde_json::Value::Null, "{r}");
    assert_eq!(r["total_entities"], 0, "{r}");
    let (code, out, err) = run(&["load", "--data", empty, "--mode", "append", uri]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("nothing was published"), "{out}");
    let (code, out, err) = load("overwrite", empty, &["--allow-empty"]);
    assert_eq!(code, Some(0), "{err}");
    let r: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(r["total_entities"], 0, "{r}");
    assert!(
        r["commit"]["graph_commit_id"].is_string(),
        "an empty overwrite publishes: {r}"
    );
    let (code, out, err) = run(&[
        "query",
        "--store",
        uri,
        "-e",
        "query n() { match { $p: Person } return { count($p) as n } }",
        "--format",
        "json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("\"n\": 0") || out.contains("\"n\":0"), "{out}");
}

/// A read query that would build more intermediate rows than the handle's
/// budget (an unconnected cross product) fails at once with
/// `EngineError::Budget` naming the limit, its value and how to raise it;
/// one within the budget answers, and the handle keeps serving.
#[test]
fn a_query_over_its_row_budget_is_refused_and_the_handle_keeps_serving() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("tmp");
    let g = rt
        .block_on(crate::support::small(tmp.path()))
        .with_query_max_rows(10_000);
    let people: String = (0..30)
        .map(|i| {
            format!("{{\"type\":\"Person\",\"data\":{{\"slug\":\"p{i}\",\"name\":\"P{i}\"}}}}\n")
        })
        .collect();
    rt.block_on(load_str(&g, &people, LoadMode::Append, "main"))
        .expect("load");
    let src = "query four() { match { $a: Person $b: Person $c: Person $d: Person } return { $a.slug } limit 1 }
query two() { match { $a: Person $b: Person } return { $a.slug, $b.slug } }";
    let compiled = omnigraph::query::compile_queries(&g.catalog(), src);
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let run = |name: &str| {
        rt.block_on(g.query(
            compiled.query(name).expect("query"),
            &serde_json::Value::Null,
            &ReadAt::Branch("main".into()),
        ))
    };
    // 30^4 = 810,000 bindings: over 10,000, refused before building them.
    let err = run("four").expect_err("over budget");
    assert!(
        matches!(err, EngineError::Budget { value: 10_000, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("intermediate rows") && msg.contains("OMNIGRAPH_QUERY_MAX_ROWS"),
        "{msg}"
    );
    assert_eq!(run("two").expect("within budget").rows.len(), 900);
}

/// A read query past the handle's wall-time budget fails with
/// `EngineError::Budget` naming `wall time (ms)` and how to raise it; one
/// whose caller cancelled it stops with `EngineError::Cancelled`; the
/// handle keeps serving.
#[test]
fn a_query_past_its_wall_time_or_cancelled_stops_and_the_handle_keeps_serving() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("tmp");
    let g = rt
        .block_on(crate::support::small(tmp.path()))
        .with_query_max_rows(100_000_000);
    let people: String = (0..120)
        .map(|i| {
            format!("{{\"type\":\"Person\",\"data\":{{\"slug\":\"p{i}\",\"name\":\"P{i}\"}}}}\n")
        })
        .collect();
    rt.block_on(load_str(&g, &people, LoadMode::Append, "main"))
        .expect("load");
    // 120^3 = 1,728,000 bindings: far more than a millisecond of work.
    let src =
        "query three() { match { $a: Person $b: Person $c: Person } return { $a.slug } limit 1 }
query one() { match { $a: Person } return { count($a) as n } }";
    let compiled = omnigraph::query::compile_queries(&g.catalog(), src);
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let main = ReadAt::Branch("main".into());
    let quick = g.clone().with_query_max_ms(1);
    let err = rt
        .block_on(quick.query(
            compiled.query("three").expect("query"),
            &serde_json::Value::Null,
            &main,
        ))
        .expect_err("past its wall time");
    assert!(matches!(err, EngineError::Budget { value: 1, .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("wall time (ms)") && msg.contains("OMNIGRAPH_QUERY_MAX_MS"),
        "{msg}"
    );
    // Cancelled before it starts: stops at its first check.
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let err = rt
        .block_on(g.query_with(
            compiled.query("three").expect("query"),
            &serde_json::Value::Null,
            &main,
            omnigraph::engine::exec::QueryControl {
                cancel: Some(cancel),
                ..Default::default()
            },
        ))
        .expect_err("cancelled");
    assert!(matches!(err, EngineError::Cancelled { .. }), "{err}");
    // The handle keeps serving.
    let r = rt
        .block_on(g.query(
            compiled.query("one").expect("query"),
            &serde_json::Value::Null,
            &main,
        ))
        .expect("a small query answers");
    assert_eq!(r.rows[0]["n"], serde_json::json!(120));
}
