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

/// A stand-in for an S3 endpoint that refuses every request as S3 does
/// a key it does not know (403 `InvalidAccessKeyId`). Returns its port;
/// the thread serves until the test process ends.
fn refusing_endpoint() -> u16 {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>";
                let _ = write!(
                    conn,
                    "HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                    xml.len()
                );
            });
        }
    });
    port
}

/// Credentials the endpoint refuses are one error that says so and
/// names the variables to fix, from the engine and from the CLI, for
/// opening a graph and for creating one; nothing retries them for long.
#[test]
fn refused_credentials_are_one_clear_error() {
    let port = refusing_endpoint();
    let env = [
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}")),
        ("AWS_ALLOW_HTTP", "true".to_string()),
        ("AWS_ACCESS_KEY_ID", "AKIAWRONG".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "wrong".to_string()),
        ("AWS_REGION", "us-east-1".to_string()),
    ];
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = tmp.path().join("s.pg");
    std::fs::write(&schema, SMALL).expect("schema");
    for args in [
        vec![
            "init",
            "--schema",
            schema.to_str().expect("utf8"),
            "s3://refusing/g",
        ],
        vec![
            "query",
            "--uri",
            "s3://refusing/g",
            "-e",
            "query q() { match { $p: Person } return { $p.slug } }",
        ],
    ] {
        let started = std::time::Instant::now();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_omnigraph"))
            .args(&args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("NO_COLOR", "1")
            .output()
            .expect("run omnigraph");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?} succeeded: {err}");
        assert!(
            err.contains("refused") && err.contains("AWS_ACCESS_KEY_ID"),
            "{args:?}: {err}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "{args:?} retried refused credentials for {:?}",
            started.elapsed()
        );
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    omnigraph::storage::s3::set_bucket_options(
        "refusing-engine",
        env.iter().map(|(k, v)| {
            (
                k.to_ascii_lowercase()
                    .replace("aws_endpoint_url", "aws_endpoint"),
                v.clone(),
            )
        }),
    )
    .expect("options");
    let e = rt
        .block_on(Graph::open("s3://refusing-engine/g"))
        .expect_err("refused");
    assert!(
        matches!(
            e,
            EngineError::Control(omnigraph::storage::ControlError::AccessRefused { .. })
        ),
        "{e}"
    );
    let e = rt
        .block_on(Graph::init("s3://refusing-engine/g", "s.pg", SMALL))
        .expect_err("refused");
    assert!(
        matches!(
            e,
            EngineError::Control(omnigraph::storage::ControlError::AccessRefused { .. })
        ),
        "{e}"
    );
}
