//! A crash test that really kills: rounds of `omnigraph load` writing a
//! numbered batch (nodes and edges, two tables), each `SIGKILL`ed at a
//! pseudo-random moment. Every batch the CLI reported as committed must be
//! present, and no batch may ever be partly present — neither to reads
//! between rounds (before any heal) nor after the next write healed.
//! `OMNIGRAPH_CRASH_ROUNDS` sets the rounds (default 50; half as many on
//! `s3://`). Runs on every storage backend ([`crate::storage::backends`]).

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use omnigraph::engine::{Graph, ReadAt};
use omnigraph::query::compile_queries;

use crate::storage::Backend;

const SCHEMA: &str = "node Item {\n  key: String @key\n  batch: I64\n}\nedge Link: Item -> Item\n";
const PER_BATCH: usize = 20;

fn batch(i: usize) -> String {
    let mut s = String::new();
    for j in 0..PER_BATCH {
        s += &format!("{{\"type\":\"Item\",\"data\":{{\"key\":\"k{i}-{j}\",\"batch\":{i}}}}}\n");
    }
    for j in 0..PER_BATCH {
        s += &format!(
            "{{\"edge\":\"Link\",\"from\":\"k{i}-{j}\",\"to\":\"k{i}-{}\"}}\n",
            (j + 1) % PER_BATCH
        );
    }
    s
}

/// Per batch: (nodes, edges) visible on main.
fn per_batch(rt: &tokio::runtime::Runtime, uri: &str) -> BTreeMap<i64, (i64, i64)> {
    let g = rt.block_on(Graph::open(uri)).expect("open");
    let src = "query n() { match { $a: Item } return { $a.batch as b, count($a) as n } }
query e() { match { $a: Item  $a link $b } return { $a.batch as b, count($b) as n } }";
    let compiled = compile_queries(&g.catalog(), src);
    let mut out: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for (name, edges) in [("n", false), ("e", true)] {
        let q = compiled.query(name).expect("query");
        let r = rt
            .block_on(g.query(q, &serde_json::Value::Null, &ReadAt::Branch("main".into())))
            .expect("read");
        for row in r.rows {
            let b = row["b"].as_i64().expect("batch");
            let n = row["n"].as_i64().expect("count");
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

/// Loads batch `i` through the CLI and requires success.
fn load_ok(backend: Backend, dir: &std::path::Path, uri: &str, i: usize) {
    let file = dir.join(format!("ok{i}.jsonl"));
    std::fs::write(&file, batch(i)).expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args([
            "load",
            "--mode",
            "append",
            "--data",
            file.to_str().expect("utf8"),
            uri,
        ])
        .envs(backend.env())
        .output()
        .expect("run omnigraph");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn check_whole(seen: &BTreeMap<i64, (i64, i64)>, when: &str) {
    let full = PER_BATCH as i64;
    for (b, (n, e)) in seen {
        assert!(
            (*n, *e) == (full, full),
            "{when}: batch {b} is partly present: {n} nodes, {e} edges"
        );
    }
}

#[test]
fn killed_loads_never_lose_an_acknowledged_batch_or_show_half_of_one() {
    for backend in crate::storage::backends() {
        crash_rounds(backend);
    }
}

fn crash_rounds(backend: Backend) {
    let rounds: usize = std::env::var("OMNIGRAPH_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let rounds = match backend {
        Backend::Local => rounds,
        Backend::S3 => (rounds / 2).max(1),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = tmp.path().join("s.pg");
    std::fs::write(&schema, SCHEMA).expect("schema");
    let uri = backend.root(tmp.path(), "g");
    let out = Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args(["init", "--schema", schema.to_str().expect("utf8"), &uri])
        .envs(backend.env())
        .output()
        .expect("run omnigraph");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Kill delays spread over 2.5 times one uncontended load.
    let t = Instant::now();
    load_ok(backend, tmp.path(), &uri, 10_000);
    let span = t.elapsed().as_millis().max(50) as u64;
    let mut acked = vec![10_000i64];

    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut killed = 0;
    for i in 0..rounds {
        let file = tmp.path().join(format!("b{i}.jsonl"));
        std::fs::write(&file, batch(i)).expect("write");
        let mut child = Command::new(env!("CARGO_BIN_EXE_omnigraph"))
            .args([
                "load",
                "--mode",
                "append",
                "--data",
                file.to_str().expect("utf8"),
                &uri,
            ])
            .envs(backend.env())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = (x >> 33) % (span * 5 / 2);
        std::thread::sleep(Duration::from_millis(delay));
        match child.try_wait().expect("wait") {
            Some(status) => {
                if status.success() {
                    acked.push(i as i64);
                }
            }
            None => {
                child.kill().expect("kill");
                let _ = child.wait();
                killed += 1;
            }
        }
        // Reads between rounds (before any heal) never see half a batch.
        if i % 10 == 9 {
            check_whole(&per_batch(&rt, &uri), &format!("after round {i}"));
        }
    }
    // One more write heals whatever the last kill left.
    load_ok(backend, tmp.path(), &uri, 20_000);
    acked.push(20_000);

    let seen = per_batch(&rt, &uri);
    check_whole(&seen, "after heal");
    for b in &acked {
        assert!(
            seen.contains_key(b),
            "acknowledged batch {b} is missing; seen {seen:?}"
        );
    }
    let g = rt.block_on(Graph::open(&uri)).expect("open");
    let audits = rt.block_on(g.audit_records()).expect("audit");
    eprintln!(
        "crash test ({backend}): {rounds} rounds, {killed} killed, {} acknowledged, {} present, {} heals",
        acked.len(),
        seen.len(),
        audits.len()
    );
    assert!(
        killed > 0,
        "{backend}: no round was killed; the delays are too long"
    );
    // Every heal left exactly one audit record, for distinct writes.
    let ids: std::collections::BTreeSet<_> = audits.iter().map(|a| a.write_id.clone()).collect();
    assert_eq!(ids.len(), audits.len());
}
