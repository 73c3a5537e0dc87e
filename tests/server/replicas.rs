//! Three `omnigraph-server` replicas serving one graph from one S3 bucket
//! (moto), with six writers spread across them for
//! `OMNIGRAPH_REPLICAS_SECS` seconds (default 30). Each writer appends
//! numbered batches (nodes and edges: two tables per commit) through its
//! replica. Halfway, one replica is killed with SIGKILL in the middle of
//! its writes; its writers move to the others, which keep serving.
//! Afterwards, on every surviving replica and on a replica started fresh:
//! every acknowledged batch is present and whole, no batch is there twice,
//! main's history is a chain holding each acknowledged commit once, and a
//! read naming the last acknowledged commit id sees it. The fresh replica's
//! first write heals what the killed one left: no recovery sidecar remains.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Server, write};
use crate::two_writers::{PER_BATCH, SCHEMA, batch, visible_at as visible};

const REPLICAS: usize = 3;
const WRITERS: usize = 6;

/// Checks one replica's view: every acknowledged batch whole, nothing
/// partial, and the batch of the last acknowledged commit visible when
/// that commit is named.
fn check_replica(
    name: &str,
    server: &Server,
    acked: &BTreeMap<String, String>,
    last: &(String, String),
) {
    let seen = visible(server, None);
    for tag in acked.keys() {
        assert_eq!(
            seen.get(tag),
            Some(&(PER_BATCH as i64, PER_BATCH as i64)),
            "{name}: acknowledged batch {tag} is missing, partial or duplicated"
        );
    }
    for (b, (n, e)) in &seen {
        assert_eq!(
            (*n, *e),
            (PER_BATCH as i64, PER_BATCH as i64),
            "{name}: batch {b} is partial or duplicated"
        );
    }
    let (last_tag, last_commit) = last;
    let at = visible(server, Some(last_commit));
    assert_eq!(
        at.get(last_tag),
        Some(&(PER_BATCH as i64, PER_BATCH as i64)),
        "{name}: a read naming commit {last_commit} does not see its batch {last_tag}"
    );
}

#[test]
fn three_replicas_over_one_bucket_lose_and_split_nothing() {
    let Some(s3) = crate::storage::s3() else {
        eprintln!("OMNIGRAPH_MOTO_PYTHON is not set: the replica test is skipped");
        return;
    };
    let secs: u64 = std::env::var("OMNIGRAPH_REPLICAS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let uri = s3.root(tmp.path(), "g");
    let env = s3.env();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_omnigraph"))
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run omnigraph");
        assert!(
            out.status.success(),
            "omnigraph {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    cli(&["init", "--schema", &schema, &uri]);
    let g = format!("g={uri}");
    let server_env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let start = || {
        Server::start(
            tmp.path(),
            &["--graph", &g, "--unauthenticated"],
            &server_env,
        )
    };
    let replicas: Vec<Arc<RwLock<Option<Server>>>> = (0..REPLICAS)
        .map(|_| Arc::new(RwLock::new(Some(start()))))
        .collect();

    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let kill_at = started + Duration::from_secs(secs / 2);
    // Acknowledged batch → its commit id; the last acknowledged one.
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let last: Arc<Mutex<Option<(String, String)>>> = Arc::default();
    let refused: Arc<Mutex<Vec<String>>> = Arc::default();
    let killed = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let replicas = replicas.clone();
            let (acked, last, refused) = (acked.clone(), last.clone(), refused.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                let mut target = w % REPLICAS;
                while Instant::now() < deadline {
                    let tag = format!("w{w}-{i}");
                    i += 1;
                    let sent = {
                        let guard = replicas[target].read().expect("replica");
                        let Some(server) = guard.as_ref() else {
                            // The killed replica: its callers move on.
                            target = (target + 1) % REPLICAS;
                            continue;
                        };
                        // The test client panics on a refused or cut
                        // connection: what a caller of the killed
                        // replica meets.
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            server.post("/graphs/g/load/ndjson?mode=append", None, &batch(&tag))
                        }))
                    };
                    let Ok(r) = sent else {
                        refused
                            .lock()
                            .expect("refused")
                            .push(format!("replica {target} {tag}: connection lost"));
                        target = (target + 1) % REPLICAS;
                        continue;
                    };
                    if r.status == 200 {
                        let commit = r.json()["commit"]["graph_commit_id"]
                            .as_str()
                            .expect("a load answers its commit")
                            .to_string();
                        acked
                            .lock()
                            .expect("acked")
                            .insert(tag.clone(), commit.clone());
                        *last.lock().expect("last") = Some((tag, commit));
                    } else {
                        refused
                            .lock()
                            .expect("refused")
                            .push(format!("replica {target} {tag}: {} {}", r.status, r.body));
                    }
                }
            })
        })
        .collect();
    // Halfway: SIGKILL the last replica while its writers are mid-write.
    while Instant::now() < kill_at {
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = replicas[REPLICAS - 1]
        .read()
        .expect("replica")
        .as_ref()
        .expect("running")
        .pid();
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let victim = replicas[REPLICAS - 1]
        .write()
        .expect("replica")
        .take()
        .expect("running");
    victim.kill();
    killed.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer");
    }
    let acked = acked.lock().expect("acked").clone();
    let last = last
        .lock()
        .expect("last")
        .clone()
        .expect("some write acknowledged");
    let refused = refused.lock().expect("refused").clone();
    let mut landed: BTreeMap<&str, usize> = BTreeMap::new();
    for t in acked.keys() {
        *landed.entry(t.split('-').next().unwrap_or(t)).or_default() += 1;
    }
    eprintln!(
        "{REPLICAS} replicas, {WRITERS} writers, {secs} s on s3 (moto): {} loads acknowledged ({landed:?}), {} refused",
        acked.len(),
        refused.len()
    );
    for f in refused.iter().take(10) {
        eprintln!("  refused: {}", f.trim_end());
    }
    assert!(killed.load(Ordering::SeqCst));
    let per_writer: BTreeSet<&str> = acked.keys().filter_map(|t| t.split('-').next()).collect();
    assert_eq!(
        per_writer.len(),
        WRITERS,
        "every writer lands writes: {per_writer:?}, refused {refused:?}"
    );
    for (i, r) in replicas.iter().take(REPLICAS - 1).enumerate() {
        let guard = r.read().expect("replica");
        check_replica(
            &format!("replica {i}"),
            guard.as_ref().expect("running"),
            &acked,
            &last,
        );
    }

    // A fresh replica in the killed one's place: it sees everything, and
    // its first write heals what the killed one left.
    let fresh = start();
    check_replica("the fresh replica", &fresh, &acked, &last);
    let r = fresh.post("/graphs/g/load/ndjson?mode=append", None, &batch("after"));
    assert_eq!(r.status, 200, "{}", r.body);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let control = omnigraph::storage::ControlStore::s3(
        &format!("{uri}/_graph"),
        Vec::<(String, String)>::new(),
    )
    .expect("control store");
    // The live replicas' own upkeep (and the fresh one's, after its load)
    // may hold a sidecar of a running step at this moment: only what the
    // killed replica left must be gone.
    let sidecars = rt.block_on(control.list("__recovery")).expect("list");
    let mut left_by_victim = Vec::new();
    for path in &sidecars {
        let Some(body) = rt.block_on(control.get_opt(path)).expect("read sidecar") else {
            continue; // finished and deleted since the listing
        };
        let v: Value = serde_json::from_slice(&body).expect("sidecar json");
        if v["owner"]["pid"].as_u64() == Some(u64::from(pid)) || v["owner"].is_null() {
            left_by_victim.push(format!("{path}: {v}"));
        }
    }
    assert!(
        left_by_victim.is_empty(),
        "the killed replica's recovery sidecars left after the fresh replica's write: {left_by_victim:?}"
    );

    // Main's history is a chain holding each acknowledged commit once.
    let out = cli(&["commit", "list", "--json", &uri]);
    let commits: Value = serde_json::from_slice(&out).expect("json");
    let commits = commits["commits"].as_array().expect("list");
    let mut children: BTreeMap<String, usize> = BTreeMap::new();
    let mut ids: BTreeMap<String, usize> = BTreeMap::new();
    for c in commits {
        *ids.entry(
            c["graph_commit_id"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
        .or_default() += 1;
        let parents: Vec<&Value> = [&c["parent_commit_id"], &c["merged_parent_commit_id"]]
            .into_iter()
            .filter(|p| !p.is_null())
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
    assert_eq!(children.len(), commits.len() - 1, "a lost head");
    for (tag, commit) in &acked {
        assert_eq!(
            ids.get(commit),
            Some(&1),
            "batch {tag}'s commit {commit} is not in main's history exactly once"
        );
    }
}
