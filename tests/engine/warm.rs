//! Warm handles: what a handle remembers between writes (the newest
//! manifest, kept dataset handles, a commit handle that knows the head) and
//! the upkeep it puts off must never change what a write or a read sees.

use omnigraph::engine::{EngineError, Graph, PreparedWrite, ReadAt};

use super::support::runtime;
use omnigraph::query::compile_queries;
use serde_json::json;

const SCHEMA: &str =
    "node Item {\n  key: String @key\n  body: String? @index\n}\nedge Link: Item -> Item\n";
const QUERIES: &str = "
query add($k: String) { insert Item { key: $k } }
query doc($k: String, $b: String) { insert Item { key: $k, body: $b } }
query link($a: String, $b: String) { insert Link { from: $a, to: $b } }
query item($k: String) { match { $a: Item { key: $k } } return { $a.key } }
query fz($q: String) { match { $a: Item  fuzzy($a.body, $q) } return { $a.key } }
query count_links() { match { $a: Item  $a link $b } return { count($b) as n } }
";

async fn mutate(g: &Graph, name: &str, params: serde_json::Value) {
    let compiled = compile_queries(&g.catalog(), QUERIES);
    g.mutate(
        compiled.query(name).expect("query"),
        &params,
        "main",
        "test",
    )
    .await
    .unwrap_or_else(|e| panic!("{name} {params}: {e}"));
}

async fn prepare(g: &Graph, name: &str, params: serde_json::Value) -> PreparedWrite {
    super::support::prepare(g, QUERIES, name, params, "test").await
}

async fn keys(g: &Graph, name: &str, params: serde_json::Value) -> Vec<String> {
    let compiled = compile_queries(&g.catalog(), QUERIES);
    let r = g
        .query(
            compiled.query(name).expect("query"),
            &params,
            &ReadAt::Branch("main".into()),
        )
        .await
        .expect("read");
    let mut out: Vec<String> = r
        .rows
        .iter()
        .filter_map(|row| row["key"].as_str().or(row["a.key"].as_str()))
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// Another handle (standing for another process) publishes the table
/// between this handle's prepare and its commit step, which checks against
/// the head it remembers: the table fence refuses, and the refusal is
/// `Stale` (prepare again), not drift needing repair; the retrying path
/// then commits.
#[test]
fn a_publish_the_remembered_head_missed_is_stale_not_drift() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let a = Graph::init(&uri, "s.pg", SCHEMA).await.expect("init");
        mutate(&a, "add", json!({"k": "k1"})).await;
        let b = Graph::open(&uri).await.expect("open");
        let w = prepare(&a, "add", json!({"k": "k2"})).await;
        mutate(&b, "add", json!({"k": "k3"})).await;
        let err = a.commit_prepared(w).await.expect_err("refused");
        assert!(matches!(err, EngineError::Stale { .. }), "{err:?}");
        // Nothing of the refused write is left to heal or repair.
        mutate(&a, "add", json!({"k": "k2"})).await;
        for k in ["k1", "k2", "k3"] {
            assert_eq!(keys(&b, "item", json!({"k": k})).await, vec![k], "{k}");
        }
        assert!(a.audit_records().await.expect("audit").is_empty());
    });
}

/// Appends staged at one head, the first committed alone and the rest as a
/// group over it: the kept handle of the first commit must not make the
/// group miss that version (which would refuse the group and roll it back
/// through heal before committing one by one).
#[test]
fn a_group_staged_before_a_lone_commit_commits_as_a_group() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = Graph::init(&uri, "s.pg", SCHEMA).await.expect("init");
        for k in ["a", "b", "c", "d", "e", "f", "g", "h"] {
            mutate(&g, "add", json!({"k": k})).await;
        }
        // Link gets rows and its indexes first.
        mutate(&g, "link", json!({"a": "g", "b": "h"})).await;
        let w1 = prepare(&g, "link", json!({"a": "a", "b": "b"})).await;
        let w2 = prepare(&g, "link", json!({"a": "c", "b": "d"})).await;
        let w3 = prepare(&g, "link", json!({"a": "e", "b": "f"})).await;
        g.commit_prepared(w1).await.expect("alone");
        let turn = g.begin_write("test").await.expect("turn");
        let answers = g.commit_group_here(vec![w2, w3]).await;
        drop(turn);
        let versions: Vec<_> = answers
            .into_iter()
            .map(|r| r.expect("each member commits").manifest_version)
            .collect();
        assert_eq!(versions[0], versions[1], "one publish for the group");
        assert!(
            g.audit_records().await.expect("audit").is_empty(),
            "the group was rolled back and retried one by one"
        );
        let compiled = compile_queries(&g.catalog(), QUERIES);
        let r = g
            .query(
                compiled.query("count_links").expect("q"),
                &json!({}),
                &ReadAt::Branch("main".into()),
            )
            .await
            .expect("read");
        assert_eq!(r.rows[0]["n"].as_i64(), Some(4), "{:?}", r.rows);
    });
}

/// Key lookups between index upkeeps: rows in fragments the key index does
/// not cover yet are found, and a duplicate key there is still refused.
#[test]
fn lookups_see_rows_the_deferred_index_does_not_cover() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = Graph::init(&uri, "s.pg", SCHEMA).await.expect("init");
        for i in 0..13 {
            let k = format!("k{i:02}");
            mutate(&g, "add", json!({"k": k})).await;
            // Every row so far, whether or not an upkeep ran since.
            for j in 0..=i {
                let kj = format!("k{j:02}");
                assert_eq!(keys(&g, "item", json!({"k": kj})).await, vec![kj.clone()]);
            }
            let compiled = compile_queries(&g.catalog(), QUERIES);
            let again = g
                .mutate(
                    compiled.query("add").expect("add"),
                    &json!({"k": k}),
                    "main",
                    "test",
                )
                .await;
            assert!(again.is_err(), "duplicate key {k} accepted");
        }
    });
}

/// `fuzzy` finds a row the moment it is written: Lance's flat search of
/// fragments a full-text index does not cover knows no fuzziness, so the
/// full-text index is extended at every write.
#[test]
fn fuzzy_search_finds_a_row_written_just_before() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = Graph::init(&uri, "s.pg", SCHEMA).await.expect("init");
        mutate(&g, "doc", json!({"k": "d0", "b": "graph lance"})).await;
        mutate(&g, "doc", json!({"k": "d1", "b": "vector search"})).await;
        assert_eq!(keys(&g, "fz", json!({"q": "grapf"})).await, vec!["d0"]);
        mutate(&g, "doc", json!({"k": "d2", "b": "databse"})).await;
        assert_eq!(keys(&g, "fz", json!({"q": "database"})).await, vec!["d2"]);
        mutate(&g, "doc", json!({"k": "d3", "b": "graphs"})).await;
        assert_eq!(
            keys(&g, "fz", json!({"q": "graph"})).await,
            vec!["d0", "d3"]
        );
    });
}
