//! Graph roots on `s3://` (moto): every kind of write and read, the
//! CLI with the standard `AWS_*` variables, and the refusals of bad
//! locations. Skipped (with a line on stderr) without
//! `OMNIGRAPH_MOTO_PYTHON`.

use omnigraph::engine::load::LoadMode;
use omnigraph::engine::{EngineError, Graph, ReadAt};
use serde_json::json;

use crate::storage::{self, Backend};
use crate::support::{SMALL, branch_name, counts, export_sorted, head, load_str};

const PEOPLE: &str = r#"{"type":"Person","data":{"slug":"a","name":"Ann"}}
{"type":"Person","data":{"slug":"b","name":"Bob"}}
{"edge":"Knows","from":"a","to":"b"}
"#;

fn branch(b: &str) -> ReadAt {
    ReadAt::Branch(b.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_on_s3_takes_every_write_and_reopens_whole() {
    let Some(s3) = storage::s3() else {
        eprintln!("OMNIGRAPH_MOTO_PYTHON is not set: skipped");
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = s3.root(tmp.path(), "g");
    let g = Graph::init(&uri, "small.pg", SMALL)
        .await
        .expect("init on s3");
    load_str(&g, PEOPLE, LoadMode::Append, "main")
        .await
        .expect("load");
    assert_eq!(counts(&g, &branch("main")).await["node:Person"], 2);

    // A mutation on a branch, merged back.
    g.create_branch(&branch_name("feature"), "main", "test")
        .await
        .expect("branch");
    let q = omnigraph::query::compile_queries(
        &g.catalog(),
        "query add($s: String, $n: String) { insert Person { slug: $s, name: $n } }",
    );
    g.mutate(
        q.query("add").expect("add"),
        &json!({"s": "c", "n": "Cy"}),
        "feature",
        "test",
    )
    .await
    .expect("mutate on a branch");
    assert_eq!(counts(&g, &branch("main")).await["node:Person"], 2);
    g.merge("feature", "main", "test", false)
        .await
        .expect("merge");
    assert_eq!(counts(&g, &branch("main")).await["node:Person"], 3);
    g.delete_branch("feature", "test")
        .await
        .expect("delete the merged branch");

    // A read query, time travel to the first load, a schema change.
    let r = omnigraph::query::compile_queries(
        &g.catalog(),
        "query names() { match { $p: Person } return { $p.name } order { $p.name } }",
    );
    let rows = g
        .query(
            r.query("names").expect("names"),
            &json!({}),
            &branch("main"),
        )
        .await
        .expect("query");
    assert_eq!(rows.rows.len(), 3, "{rows:?}");
    let history = g.commits("main").await.expect("commits");
    let first_load = history
        .iter()
        .find(|c| c.message.starts_with("load"))
        .expect("the load's commit");
    assert_eq!(
        counts(&g, &ReadAt::Commit(first_load.id.clone())).await["node:Person"],
        2
    );
    let wider = SMALL.replace(
        "node Org { name: String @key }",
        "node Org { name: String @key\n  city: String? }",
    );
    g.apply_schema("small2.pg", &wider, false, "test")
        .await
        .expect("schema apply on s3");

    // Another handle sees all of it.
    let main = export_sorted(&g, &branch("main")).await;
    drop(g);
    let again = Graph::open(&uri).await.expect("reopen");
    assert_eq!(export_sorted(&again, &branch("main")).await, main);
    assert_eq!(
        head(&again, "main").await,
        again.commits("main").await.expect("c")[0].id
    );
    assert!(
        again
            .catalog()
            .node("Org")
            .expect("Org")
            .properties
            .iter()
            .any(|p| p.name == "city")
    );

    // A second init on the same root is refused; nothing was replaced.
    let e = Graph::init(&uri, "small.pg", SMALL)
        .await
        .expect_err("occupied root");
    assert!(matches!(e, EngineError::AlreadyExists { .. }), "{e}");
    assert_eq!(export_sorted(&again, &branch("main")).await, main);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_locations_are_refused_with_the_reason() {
    for uri in ["gs://bucket/g", "s3://", "s3:///g", "http://host/g"] {
        let e = Graph::open(uri).await.expect_err(uri);
        assert!(matches!(e, EngineError::BadUri { .. }), "{uri}: {e}");
        let e = Graph::init(uri, "s.pg", SMALL).await.expect_err(uri);
        assert!(matches!(e, EngineError::BadUri { .. }), "{uri}: {e}");
    }
    let Some(_) = storage::s3() else {
        return;
    };
    // A prefix with no graph, and a bucket that does not exist.
    let e = Graph::open(&format!("s3://{}/nothing-here", storage::BUCKET))
        .await
        .expect_err("no graph");
    assert!(matches!(e, EngineError::NotAGraph { .. }), "{e}");
    omnigraph::storage::s3::set_bucket_options(
        "no-such-bucket",
        storage::Backend::S3.env().into_iter().map(|(k, v)| {
            (
                k.to_ascii_lowercase()
                    .replace("aws_endpoint_url", "aws_endpoint"),
                v,
            )
        }),
    )
    .expect("options");
    let e = Graph::init("s3://no-such-bucket/g", "s.pg", SMALL)
        .await
        .expect_err("missing bucket");
    assert!(
        e.to_string().contains("no-such-bucket") || e.to_string().contains("NoSuchBucket"),
        "{e}"
    );
}

#[test]
fn the_cli_writes_and_reads_an_s3_root_with_the_aws_variables() {
    let Some(s3) = storage::s3() else {
        eprintln!("OMNIGRAPH_MOTO_PYTHON is not set: skipped");
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = s3.root(tmp.path(), "cli");
    let schema = tmp.path().join("s.pg");
    std::fs::write(&schema, SMALL).expect("schema");
    let data = tmp.path().join("d.jsonl");
    std::fs::write(&data, PEOPLE).expect("data");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_omnigraph"))
            .args(args)
            .envs(Backend::S3.env())
            .env("NO_COLOR", "1")
            .output()
            .expect("run omnigraph");
        assert_eq!(
            out.status.code(),
            Some(0),
            "omnigraph {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["init", "--schema", schema.to_str().expect("utf8"), &uri]);
    run(&[
        "load",
        "--mode",
        "append",
        "--data",
        data.to_str().expect("utf8"),
        &uri,
    ]);
    let out = run(&[
        "query",
        "--uri",
        &uri,
        "-e",
        "query q() { match { $p: Person } return { $p.slug } order { $p.slug } }",
    ]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert_eq!(lines, ["slug", "a", "b"], "{out}");
    let snap = run(&["snapshot", &uri]);
    assert!(snap.contains("node:Person"), "{snap}");
}
