//! Two OS processes writing one local graph root at once: the server
//! (loads over HTTP) and the CLI (`omnigraph load`), with no lock between
//! them — only the fences (a table commit lands only as the version after
//! the published one; a manifest version is created only if absent).
//!
//! For `OMNIGRAPH_TWO_WRITERS_SECS` seconds (default 30) both append
//! numbered batches (nodes and edges: two tables per commit) while a reader
//! checks over HTTP that every batch it sees is whole. Afterwards every
//! acknowledged batch is present and whole, and main's history is a chain
//! (each commit's only parent is the one before it).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Server, init_graph, write};

pub(crate) const SCHEMA: &str =
    "node Item {\n  key: String @key\n  batch: String\n}\nedge Link: Item -> Item\n";
pub(crate) const PER_BATCH: usize = 5;
const COUNTS: &str = "query n() { match { $a: Item } return { $a.batch as b, count($a) as n } }";
const EDGE_COUNTS: &str =
    "query e() { match { $a: Item  $a link $b } return { $a.batch as b, count($b) as n } }";

/// A numbered batch as load NDJSON: [`PER_BATCH`] `Item`s of batch `tag`
/// and a ring of `Link` edges between them (two tables per commit).
pub(crate) fn batch(tag: &str) -> String {
    let mut s = String::new();
    for j in 0..PER_BATCH {
        s += &format!(
            "{{\"type\":\"Item\",\"data\":{{\"key\":\"{tag}-{j}\",\"batch\":\"{tag}\"}}}}\n"
        );
    }
    for j in 0..PER_BATCH {
        s += &format!(
            "{{\"edge\":\"Link\",\"from\":\"{tag}-{j}\",\"to\":\"{tag}-{}\"}}\n",
            (j + 1) % PER_BATCH
        );
    }
    s
}

/// Per batch: (nodes, edges) visible at main's head, read through the
/// server: both counts at one commit (the head when the read started).
fn visible(server: &Server) -> BTreeMap<String, (i64, i64)> {
    visible_at(server, None)
}

/// Per batch: (nodes, edges) of graph `g` at commit `at` (main's head when
/// the read started, for `None`), both counts at that one commit.
pub(crate) fn visible_at(server: &Server, at: Option<&str>) -> BTreeMap<String, (i64, i64)> {
    let commit = match at {
        Some(c) => c.to_string(),
        None => server.get("/graphs/g/snapshot", None).expect(200).json()["graph_commit_id"]
            .as_str()
            .expect("commit")
            .to_string(),
    };
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (q, edges) in [(COUNTS, false), (EDGE_COUNTS, true)] {
        let body = serde_json::json!({"query": q, "snapshot": commit}).to_string();
        let r = server
            .post("/graphs/g/query", None, &body)
            .expect(200)
            .json();
        for row in r["rows"].as_array().cloned().unwrap_or_default() {
            let b = row["b"].as_str().unwrap_or_default().to_string();
            let n = row["n"].as_i64().unwrap_or_default();
            let e = out.entry(b).or_default();
            if edges {
                e.1 = n;
            } else {
                e.0 = n;
            }
        }
    }
    out
}

#[test]
fn a_server_and_the_cli_write_one_root_without_losing_or_splitting_a_commit() {
    let secs: u64 = std::env::var("OMNIGRAPH_TWO_WRITERS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let uri = init_graph(tmp.path(), "g", std::path::Path::new(&schema));
    let g = format!("g={uri}");
    let server = Arc::new(Server::start(
        tmp.path(),
        &["--graph", &g, "--unauthenticated"],
        &[],
    ));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();

    let http_writer = {
        let (server, acked, failures) = (server.clone(), acked.clone(), failures.clone());
        std::thread::spawn(move || {
            let mut i = 0;
            while Instant::now() < deadline {
                let tag = format!("s{i}");
                let r = server.post("/graphs/g/load/ndjson?mode=append", None, &batch(&tag));
                if r.status == 200 {
                    acked.lock().expect("acked").insert(tag);
                } else {
                    failures
                        .lock()
                        .expect("failures")
                        .push(format!("server {tag}: {} {}", r.status, r.body));
                }
                i += 1;
            }
        })
    };
    let cli_writer = {
        let (acked, failures, uri) = (acked.clone(), failures.clone(), uri.clone());
        let dir = tmp.path().to_path_buf();
        std::thread::spawn(move || {
            let mut i = 0;
            while Instant::now() < deadline {
                let tag = format!("c{i}");
                let file = dir.join(format!("{tag}.jsonl"));
                std::fs::write(&file, batch(&tag)).expect("batch file");
                let out = Command::new(env!("CARGO_BIN_EXE_omnigraph"))
                    .args(["load", "--mode", "append", "--data"])
                    .arg(&file)
                    .arg(&uri)
                    .output()
                    .expect("run omnigraph");
                if out.status.success() {
                    acked.lock().expect("acked").insert(tag);
                } else {
                    failures.lock().expect("failures").push(format!(
                        "cli {tag}: {}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                i += 1;
            }
        })
    };
    let reader = {
        let (server, stop) = (server.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(Ordering::SeqCst) {
                for (b, (n, e)) in visible(&server) {
                    assert!(
                        n == PER_BATCH as i64 && e == PER_BATCH as i64,
                        "batch {b} is partly visible: {n} nodes, {e} edges"
                    );
                }
                reads += 1;
            }
            reads
        })
    };
    http_writer.join().expect("server writer");
    cli_writer.join().expect("cli writer");
    stop.store(true, Ordering::SeqCst);
    let reads = reader.join().expect("reader");

    let acked = acked.lock().expect("acked").clone();
    let failures = failures.lock().expect("failures").clone();
    let seen = visible(&server);
    let by_server = acked.iter().filter(|t| t.starts_with('s')).count();
    let by_cli = acked.len() - by_server;
    eprintln!(
        "two writers for {secs} s: {by_server} server loads and {by_cli} CLI loads acknowledged, {} failed, {reads} reads",
        failures.len()
    );
    for f in &failures {
        eprintln!("  refused: {}", f.trim_end());
    }
    assert!(
        by_server > 0 && by_cli > 0,
        "both writers must land writes: {failures:?}"
    );
    for tag in &acked {
        assert_eq!(
            seen.get(tag),
            Some(&(PER_BATCH as i64, PER_BATCH as i64)),
            "acknowledged batch {tag} is missing or partial"
        );
    }
    for (b, (n, e)) in &seen {
        assert_eq!((*n, *e), (PER_BATCH as i64, PER_BATCH as i64), "batch {b}");
    }
    // Main's history is a chain: every commit but init has exactly one
    // parent, and no commit is the parent of two (no fork, no lost head).
    let out = Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args(["commit", "list", "--json", &uri])
        .output()
        .expect("commit list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let commits: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let commits = commits["commits"].as_array().expect("list");
    let mut children: BTreeMap<String, usize> = BTreeMap::new();
    for c in commits {
        let parents: Vec<serde_json::Value> =
            [&c["parent_commit_id"], &c["merged_parent_commit_id"]]
                .into_iter()
                .filter(|p| !p.is_null())
                .cloned()
                .collect();
        if c["message"] == "init" {
            assert!(parents.is_empty(), "{c}");
            continue;
        }
        assert_eq!(parents.len(), 1, "not a chain at {c}");
        *children
            .entry(parents[0].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    assert!(
        children.values().all(|n| *n == 1),
        "a commit with two children: {children:?}"
    );
    assert_eq!(
        children.len(),
        commits.len() - 1,
        "every commit but the head has a child"
    );
    // One commit per acknowledged load (heal's recovery commits aside).
    let loads = commits
        .iter()
        .filter(|c| {
            c["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("load ("))
        })
        .count();
    assert!(
        loads >= acked.len(),
        "{loads} load commits for {} acknowledged loads",
        acked.len()
    );
}
