//! `.gq` mutations: one commit per query, cascades, no-op reporting.

use omnigraph::engine::load::LoadMode;
use omnigraph::engine::{EngineError, Graph, ReadAt, TableKey};
use omnigraph::query::compile_queries;
use serde_json::json;

use crate::support::{counts, export_sorted, head, load_str, small};

const QUERIES: &str = r#"
query add($slug: String, $name: String, $age: I32?) {
    insert Person { slug: $slug, name: $name, age: $age }
}
query add_two($a: String, $b: String) {
    insert Person { slug: $a, name: "first" }
    insert Person { slug: $b, name: "second" }
    insert Knows { from: $a, to: $b, since: "2020-01-01" }
}
query rename($slug: String, $name: String) {
    update Person set { name: $name, status: "archived" } where slug = $slug
}
query older($min: I32) {
    update Person set { status: "active" } where age >= $min
}
query drop($slug: String) {
    delete Person where slug = $slug
}
query link($a: String, $b: String) {
    insert Knows { from: $a, to: $b }
}
query bad_age($slug: String) {
    insert Person { slug: $slug, name: "x", age: 500 }
}
"#;

async fn run(
    g: &Graph,
    name: &str,
    params: serde_json::Value,
) -> Result<omnigraph::engine::WriteReport, EngineError> {
    let compiled = compile_queries(&g.catalog(), QUERIES);
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let q = compiled.query(name).expect("query");
    g.mutate(q, &params, "main", "mutator").await
}

fn main_at() -> ReadAt {
    ReadAt::Branch("main".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_publish_one_commit_each_and_cascade() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    let before = g.commits("main").await.expect("c").len();

    let r = run(&g, "add_two", json!({"a": "a", "b": "b"}))
        .await
        .expect("add_two");
    let c = r.commit.expect("commit");
    assert_eq!(c.actor, "mutator");
    assert_eq!(
        g.commits("main").await.expect("c").len(),
        before + 1,
        "three statements, one commit"
    );
    let n = counts(&g, &main_at()).await;
    assert_eq!((n["node:Person"], n["edge:Knows"]), (2, 1));

    // Inserting a keyed node again is an upsert.
    run(&g, "add", json!({"slug": "a", "name": "Ann", "age": 30}))
        .await
        .expect("upsert");
    assert_eq!(counts(&g, &main_at()).await["node:Person"], 2);
    run(&g, "rename", json!({"slug": "a", "name": "Annie"}))
        .await
        .expect("rename");
    let rows = export_sorted(&g, &main_at()).await;
    let a = rows
        .iter()
        .find(|l| l.contains(r#""slug":"a""#))
        .expect("a");
    assert!(
        a.contains(r#""name":"Annie""#)
            && a.contains(r#""status":"archived""#)
            && a.contains(r#""age":30"#),
        "{a}"
    );
    assert!(a.contains(r#""score":1.5"#), "defaults are filled: {a}");

    // No match: nothing is published.
    let h = head(&g, "main").await;
    let r = run(&g, "rename", json!({"slug": "nobody", "name": "x"}))
        .await
        .expect("no-op");
    assert!(r.commit.is_none());
    assert!(r.message.contains("matched no rows"), "{}", r.message);
    assert_eq!(head(&g, "main").await, h);

    // Delete cascades to incident edges, in one commit.
    let r = run(&g, "drop", json!({"slug": "b"})).await.expect("drop");
    assert_eq!(r.deleted.get(&TableKey::edge("Knows")), Some(&1));
    let n = counts(&g, &main_at()).await;
    assert_eq!((n["node:Person"], n["edge:Knows"]), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutation_errors_change_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    load_str(
        &g,
        r#"{"type":"Person","data":{"slug":"a","name":"Ann"}}"#,
        LoadMode::Append,
        "main",
    )
    .await
    .expect("seed");
    let h = head(&g, "main").await;
    let err = run(&g, "link", json!({"a": "a", "b": "ghost"}))
        .await
        .expect_err("dangling");
    assert!(
        err.to_string().contains("no `Person` with that key"),
        "{err}"
    );
    let err = run(&g, "add", json!({"slug": "z"}))
        .await
        .expect_err("missing param");
    assert!(
        matches!(err, EngineError::Param { ref name, .. } if name == "name"),
        "{err}"
    );
    let err = run(&g, "add", json!({"slug": "z", "name": "Z", "bogus": 1}))
        .await
        .expect_err("unknown param");
    assert!(err.to_string().contains("no such parameter"), "{err}");
    let err = run(&g, "add", json!({"slug": 5, "name": "Z"}))
        .await
        .expect_err("wrong type");
    assert!(err.to_string().contains("expected String"), "{err}");
    let err = run(&g, "bad_age", json!({"slug": "z"}))
        .await
        .expect_err("range");
    assert!(err.to_string().contains("@range"), "{err}");
    assert_eq!(head(&g, "main").await, h);
}

#[test]
fn cli_mutate() {
    let tmp = tempfile::tempdir().expect("tmp");
    let q = tmp.path().join("m.gq");
    std::fs::write(&q, QUERIES).expect("write");
    let uri = crate::support::cli_small_graph(tmp.path());
    let uri = uri.as_str();
    let run = crate::support::omnigraph;
    let out = run(&[
        "mutate",
        "add",
        "--query",
        q.to_str().expect("utf8"),
        "--params",
        r#"{"slug":"a","name":"A"}"#,
        "--store",
        uri,
        "--as",
        "carol",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["commit"]["actor_id"], "carol");
    assert_eq!(v["actor_id"], "carol");
    assert_eq!(v["affected_nodes"], 1, "{v}");
    assert!(v["commit"]["graph_manifest_version"].is_u64(), "{v}");
    let out = run(&[
        "mutate",
        "-e",
        r#"query q($s: String) { delete Person where slug = $s }"#,
        "--params",
        r#"{"s":"nobody"}"#,
        "--store",
        uri,
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing was published"));
    let out = run(&[
        "mutate",
        "nope",
        "--query",
        q.to_str().expect("utf8"),
        "--store",
        uri,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&[
        "mutate",
        "-e",
        "query q() { insert Persn { slug: \"x\" } }",
        "--store",
        uri,
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("T01"));
}

/// A handle made with `if_head` writes only while the branch head is the
/// commit it names: a moved head is `PreconditionFailed` with the head it
/// met and nothing written, for a mutation, a no-op mutation and a load;
/// the condition holds for a write prepared before another published
/// (decided at the publish, where a handle that had not seen the other
/// write's commit learns of it), and it is never retried into success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_writes_need_the_head_they_name() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    let h0 = head(&g, "main").await;
    let r = run(
        &g.clone().if_head(Some(h0.clone())),
        "add",
        json!({"slug": "x", "name": "X"}),
    )
    .await
    .expect("head as named");
    let h1 = r.commit.expect("commit").id;
    assert_eq!(head(&g, "main").await, h1);
    let before = export_sorted(&g, &main_at()).await;
    let stale = g.clone().if_head(Some(h0.clone()));
    let refused = |e: EngineError| match e {
        EngineError::PreconditionFailed {
            expected, actual, ..
        } => {
            assert_eq!(expected, h0.to_string());
            assert_eq!(actual, Some(h1.to_string()));
        }
        other => panic!("expected PreconditionFailed, got {other}"),
    };
    refused(
        run(&stale, "add", json!({"slug": "y", "name": "Y"}))
            .await
            .expect_err("moved head"),
    );
    // Matches nothing: refused all the same on a moved head, answered
    // as a no-op on the right one.
    refused(
        run(&stale, "rename", json!({"slug": "nobody", "name": "N"}))
            .await
            .expect_err("moved head, no-op"),
    );
    let r = run(
        &g.clone().if_head(Some(h1.clone())),
        "rename",
        json!({"slug": "nobody", "name": "N"}),
    )
    .await
    .expect("no-op at the head");
    assert!(r.commit.is_none());
    refused(
        load_str(
            &stale,
            r#"{"type":"Person","data":{"slug":"z","name":"Z"}}"#,
            LoadMode::Append,
            "main",
        )
        .await
        .expect_err("moved head, load"),
    );
    assert_eq!(
        export_sorted(&g, &main_at()).await,
        before,
        "nothing written"
    );
    assert_eq!(head(&g, "main").await, h1);

    // Prepared at h1 by one handle, then another handle publishes: the
    // commit of the prepared write is refused, and its tables are left
    // as published (heal undid its table commits).
    let other = Graph::open(tmp.path().join("g").to_str().expect("utf8"))
        .await
        .expect("second handle");
    let w = crate::support::prepare(
        &g.clone().if_head(Some(h1.clone())),
        QUERIES,
        "add",
        json!({"slug": "late", "name": "L"}),
        "mutator",
    )
    .await;
    let h2 = run(&other, "add", json!({"slug": "first", "name": "F"}))
        .await
        .expect("the other write")
        .commit
        .expect("commit")
        .id;
    match g.commit_prepared(w).await {
        Err(EngineError::PreconditionFailed { actual, .. }) => {
            assert_eq!(actual, Some(h2.to_string()))
        }
        other => panic!("expected PreconditionFailed, got {other:?}"),
    }
    let rows = export_sorted(&g, &main_at()).await;
    assert!(rows.iter().any(|r| r.contains("\"first\"")));
    assert!(!rows.iter().any(|r| r.contains("\"late\"")));
    // The graph still takes writes.
    run(&g, "add", json!({"slug": "after", "name": "A"}))
        .await
        .expect("write after");
}
