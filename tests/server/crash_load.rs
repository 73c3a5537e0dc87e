//! Crash under HTTP load (issue 20): clients write (loads, mutations,
//! branch loads merged into `main`) while the server is killed with
//! SIGKILL at a random moment, over several rounds. After each restart
//! every write that got a 200 is present, and every batch is whole or
//! absent: no write half-exists.
//!
//! Rounds: `OMNIGRAPH_CRASH_ROUNDS` (default 4).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::support::{Server, init_graph, write};

const SCHEMA: &str =
    "node Item {\n  key: String @key\n  batch: String\n}\nedge Link: Item -> Item\n";

/// Nodes per batch; a batch also links them in a chain (`NODES - 1` edges).
const NODES: usize = 5;

/// One request that may fail at any point (the server is killed): the
/// status and body, or `None` when the connection broke.
fn try_request(addr: &str, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

/// A batch's JSONL: its nodes and the chain of links between them.
fn batch(tag: &str) -> String {
    let mut out = String::new();
    for i in 0..NODES {
        out.push_str(&format!(
            "{{\"type\":\"Item\",\"data\":{{\"key\":\"{tag}-{i}\",\"batch\":\"{tag}\"}}}}\n"
        ));
    }
    for i in 1..NODES {
        out.push_str(&format!(
            "{{\"edge\":\"Link\",\"from\":\"{tag}-{}\",\"to\":\"{tag}-{i}\"}}\n",
            i - 1
        ));
    }
    out
}

/// What the clients tried and what was acknowledged: batch tag → whether
/// it got a 200 (`true`) or an error or a broken connection (`false`).
/// A merged branch batch is acknowledged by its merge's 200. Mutations
/// insert one node whose batch is its own key.
#[derive(Default)]
struct Ledger {
    batches: BTreeMap<String, bool>,
    singles: BTreeMap<String, bool>,
}

fn clients(
    addr: &str,
    round: usize,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) -> Vec<std::thread::JoinHandle<()>> {
    let seq = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();
    // Two loaders into main.
    for c in 0..2 {
        let (addr, stop, ledger, seq) =
            (addr.to_string(), stop.clone(), ledger.clone(), seq.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let tag = format!("r{round}-l{c}-{}", seq.fetch_add(1, Ordering::Relaxed));
                let r = try_request(
                    &addr,
                    "POST",
                    "/graphs/g/load/ndjson?mode=append",
                    &batch(&tag),
                );
                let ok = matches!(r, Some((200, _)));
                ledger.lock().expect("ledger").batches.insert(tag, ok);
                if r.is_none() {
                    break;
                }
            }
        }));
    }
    // One mutator.
    {
        let (addr, stop, ledger, seq) =
            (addr.to_string(), stop.clone(), ledger.clone(), seq.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let key = format!("r{round}-m-{}", seq.fetch_add(1, Ordering::Relaxed));
                let body = json!({
                    "query": "query m($k: String) { insert Item { key: $k, batch: $k } }",
                    "params": { "k": key },
                })
                .to_string();
                let r = try_request(&addr, "POST", "/graphs/g/mutate", &body);
                let ok = matches!(r, Some((200, _)));
                ledger.lock().expect("ledger").singles.insert(key, ok);
                if r.is_none() {
                    break;
                }
            }
        }));
    }
    // One branch writer: a batch on its own branch, merged into main.
    {
        let (addr, stop, ledger, seq) =
            (addr.to_string(), stop.clone(), ledger.clone(), seq.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let (tag, branch) = (format!("r{round}-b-{n}"), format!("r{round}-b{n}"));
                ledger
                    .lock()
                    .expect("ledger")
                    .batches
                    .insert(tag.clone(), false);
                let path = format!("/graphs/g/load/ndjson?mode=append&branch={branch}&from=main");
                match try_request(&addr, "POST", &path, &batch(&tag)) {
                    Some((200, _)) => {}
                    Some(_) => continue,
                    None => break,
                }
                let merge = json!({ "source": branch, "target": "main" }).to_string();
                let r = try_request(&addr, "POST", "/graphs/g/branches/merge", &merge);
                if matches!(r, Some((200, _))) {
                    ledger.lock().expect("ledger").batches.insert(tag, true);
                }
                if r.is_none() {
                    break;
                }
            }
        }));
    }
    threads
}

/// main's items by batch, and the links whose both ends are in one batch.
fn contents(server: &Server) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let items = server
        .post(
            "/graphs/g/query",
            None,
            r#"{"query":"query q() { match { $i: Item } return { $i.batch } }"}"#,
        )
        .expect(200)
        .json();
    let mut nodes: BTreeMap<String, usize> = BTreeMap::new();
    for r in items["rows"].as_array().expect("rows") {
        *nodes
            .entry(r["batch"].as_str().expect("batch").to_string())
            .or_default() += 1;
    }
    let links = server
        .post(
            "/graphs/g/query",
            None,
            r#"{"query":"query q() { match { $a: Item\n $a link $b } return { $a.batch as a, $b.batch as b } }"}"#,
        )
        .expect(200)
        .json();
    let mut edges: BTreeMap<String, usize> = BTreeMap::new();
    for r in links["rows"].as_array().expect("rows") {
        let (a, b) = (r["a"].as_str().expect("a"), r["b"].as_str().expect("b"));
        assert_eq!(a, b, "a link between batches {a} and {b}");
        *edges.entry(a.to_string()).or_default() += 1;
    }
    (nodes, edges)
}

#[test]
fn acknowledged_writes_survive_sigkill_under_load_and_none_half_exists() {
    let rounds: usize = std::env::var("OMNIGRAPH_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "crash.pg", SCHEMA);
    let uri = init_graph(tmp.path(), "g", std::path::Path::new(&schema));
    let g = format!("g={uri}");
    let args = ["--graph", g.as_str(), "--unauthenticated"];
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut checked = (0usize, 0usize);
    for round in 0..rounds {
        checked = (0, 0);
        let server = Server::start(tmp.path(), &args, &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = clients(&server.addr, round, stop.clone(), ledger.clone());
        // Somewhere between 0.5 and 2.5 s into the writes.
        let ms = 500 + (ulid::Ulid::new().random() % 2000) as u64;
        std::thread::sleep(Duration::from_millis(ms));
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            let _ = t.join();
        }
        // Restart: heal at open, then look.
        let server = Server::start(tmp.path(), &args, &[]);
        let (nodes, edges) = contents(&server);
        let l = ledger.lock().expect("ledger");
        for (tag, acked) in &l.batches {
            let n = nodes.get(tag).copied().unwrap_or(0);
            let e = edges.get(tag).copied().unwrap_or(0);
            assert!(
                (n, e) == (0, 0) || (n, e) == (NODES, NODES - 1),
                "round {round}: batch {tag} is partly visible: {n} nodes, {e} links"
            );
            if *acked {
                assert_eq!(n, NODES, "round {round}: acknowledged batch {tag} is lost");
                checked.0 += 1;
            }
        }
        for (key, acked) in &l.singles {
            let n = nodes.get(key).copied().unwrap_or(0);
            assert!(n <= 1, "{key} twice");
            if *acked {
                assert_eq!(n, 1, "round {round}: acknowledged mutation {key} is lost");
                checked.1 += 1;
            }
        }
        let known: BTreeSet<&String> = l.batches.keys().chain(l.singles.keys()).collect();
        for tag in nodes.keys() {
            assert!(known.contains(tag), "a batch nobody wrote: {tag}");
        }
        println!(
            "round {round}: killed after {ms} ms; {} batches and {} mutations tried so far, {} + {} acknowledged and present",
            l.batches.len(),
            l.singles.len(),
            checked.0,
            checked.1
        );
        drop(l);
        drop(server);
    }
    assert!(checked.0 + checked.1 > 0, "no write was acknowledged");
}
