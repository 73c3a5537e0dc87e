//! The change feed over HTTP (reference docs/user/branching/changes.md):
//! a follower that starts from a baseline and polls while writers insert,
//! update, delete and merge ends equal to a full export, and a restart
//! from its saved cursor loses and repeats nothing it had saved; the
//! routes' errors (400, 404, 409, 410, 413).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value as Json, json};

use crate::support::{Server, init_graph, write};

const SCHEMA: &str = "node Person {\n  name: String @key\n  age: I32?\n}\nedge Knows: Person -> Person {\n  since: I32?\n}\n";
const QUERIES: &str = r#"
query add($id: String, $age: I32) { insert Person { name: $id, age: $age } }
query age($id: String, $age: I32) { update Person set { age: $age } where name = $id }
query del($id: String) { delete Person where name = $id }
query link($a: String, $b: String, $s: I32) { insert Knows { from: $a, to: $b, since: $s } }
"#;

/// An entity as both an export line and a change's image describe it:
/// its non-null properties and, for an edge, its endpoints.
type Entities = BTreeMap<(String, String, String), Json>;

fn entity(props: &serde_json::Map<String, Json>, ends: Option<(&str, &str)>) -> Json {
    let p: serde_json::Map<String, Json> = props
        .iter()
        .filter(|(k, v)| !v.is_null() && k.as_str() != "id")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    json!({"p": p, "e": ends.map(|(a, b)| json!([a, b]))})
}

/// Parses an export (or a baseline's snapshot lines).
fn entities_of(lines: &[Json]) -> Entities {
    let mut out = Entities::new();
    for l in lines {
        let data = l["data"].as_object().expect("data");
        let id = data["id"].as_str().expect("id").to_string();
        let (kind, ty, ends) = match l["edge"].as_str() {
            Some(e) => (
                "edge",
                e,
                Some((
                    l["from"].as_str().expect("from"),
                    l["to"].as_str().expect("to"),
                )),
            ),
            None => ("node", l["type"].as_str().expect("type"), None),
        };
        out.insert((kind.into(), ty.into(), id), entity(data, ends));
    }
    out
}

fn ndjson(body: &str) -> Vec<Json> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect()
}

/// A follower's saved state: what it applied, up to which cursor.
#[derive(Clone)]
struct Saved {
    entities: Entities,
    cursor: String,
    applied: Vec<String>,
}

impl Saved {
    fn apply(&mut self, block: &Json) {
        let id = block["cause"]["graph_commit_id"]
            .as_str()
            .expect("commit id");
        assert!(
            !self.applied.iter().any(|a| a == id),
            "block {id} delivered again after its cursor was saved"
        );
        for c in block["changes"].as_array().expect("changes") {
            let key = (
                c["kind"].as_str().expect("kind").to_string(),
                c["type"]["name"].as_str().expect("type").to_string(),
                c["id"].as_str().expect("id").to_string(),
            );
            match c["op"].as_str().expect("op") {
                "insert" | "update" => {
                    let a = &c["after"];
                    let ends = a["endpoints"].as_object().map(|e| {
                        (
                            e["from"].as_str().expect("from"),
                            e["to"].as_str().expect("to"),
                        )
                    });
                    let props = a["properties"].as_object().expect("properties");
                    self.entities.insert(key, entity(props, ends));
                }
                "delete" => {
                    assert!(
                        self.entities.remove(&key).is_some(),
                        "deleted {key:?} it never had"
                    );
                }
                op => panic!("unknown op {op}"),
            }
        }
        self.applied.push(id.to_string());
    }
}

/// One poll from `cursor`, every page followed (a small limit, so blocks
/// split), split blocks joined: the poll's complete blocks, its terminal
/// cursor and `caught_up`.
fn poll(server: &Server, cursor: &str) -> (Vec<Json>, String, bool) {
    let mut blocks: Vec<Json> = Vec::new();
    let mut path = format!("/graphs/g/changes?cursor={cursor}&limit=7");
    loop {
        let page = server.get(&path, None).expect(200).json();
        for b in page["blocks"].as_array().expect("blocks") {
            match blocks.last_mut() {
                Some(last) if last["cause"] == b["cause"] => {
                    let more = b["changes"].as_array().expect("changes").clone();
                    last["changes"]
                        .as_array_mut()
                        .expect("changes")
                        .extend(more);
                }
                _ => blocks.push(b.clone()),
            }
        }
        match page["next_page_token"].as_str() {
            Some(t) => {
                assert!(
                    page["cursor"].is_null(),
                    "a mid-block page carries no cursor"
                );
                path = format!("/graphs/g/changes?page_token={t}&limit=7");
            }
            None => {
                let c = page["cursor"]
                    .as_str()
                    .expect("terminal cursor")
                    .to_string();
                return (blocks, c, page["caught_up"].as_bool().expect("caught_up"));
            }
        }
    }
}

fn mutate(server: &Server, name: &str, params: Json, branch: &str) -> u16 {
    let body = json!({"query": QUERIES, "name": name, "params": params, "branch": branch});
    let r = server.post("/graphs/g/mutate", None, &body.to_string());
    assert!(r.status < 500, "{name}: {} {}", r.status, r.body);
    r.status
}

/// The first-parent chain of `main` after `from`, oldest first.
fn chain_after(server: &Server, from: &str) -> Vec<String> {
    let mut out = Vec::new();
    let head = server
        .get("/graphs/g/commits?branch=main", None)
        .expect(200)
        .json();
    let mut cur = head["commits"][0]["graph_commit_id"]
        .as_str()
        .expect("head")
        .to_string();
    while cur != from {
        let c = server
            .get(&format!("/graphs/g/commits/{cur}"), None)
            .expect(200)
            .json();
        out.push(cur.clone());
        cur = c["parent_commit_id"]
            .as_str()
            .expect("reaches the baseline")
            .to_string();
    }
    out.reverse();
    out
}

/// Writers on `main` (insert, update, delete, link; strict and merge
/// loads) and on `side` (inserts, merged into `main` every few) run for
/// `OMNIGRAPH_FEED_TEST_SECS` (30) seconds while a follower polls;
/// halfway it crashes once after applying a poll it had not saved and
/// restarts from its saved state. It must end equal to the export and
/// have applied every first-parent commit once.
#[test]
fn a_follower_ends_equal_to_the_export() {
    let secs: u64 = std::env::var("OMNIGRAPH_FEED_TEST_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let uri = init_graph(tmp.path(), "g.omni", std::path::Path::new(&schema));
    let seed = write(
        tmp.path(),
        "seed.jsonl",
        "{\"type\":\"Person\",\"data\":{\"name\":\"seed\",\"age\":1}}\n",
    );
    crate::support::cli_ok(&["load", "--mode", "merge", "--data", &seed, &uri]);
    let server = Arc::new(Server::start(
        tmp.path(),
        &["--graph", &format!("g={uri}"), "--unauthenticated"],
        &[("OMNIGRAPH_PER_ACTOR_INFLIGHT_MAX", "64")],
    ));
    server
        .post(
            "/graphs/g/branches",
            None,
            r#"{"name":"side","from":"main"}"#,
        )
        .expect(200);

    // The baseline: a snapshot, then exactly one terminal record.
    let lines = ndjson(
        &server
            .post("/graphs/g/changes/baseline", None, "{}")
            .expect(200)
            .body,
    );
    let (last, snapshot) = lines.split_last().expect("a terminal record");
    let base = last["baseline"]["snapshot_commit_id"]
        .as_str()
        .expect("commit")
        .to_string();
    let mut saved = Saved {
        entities: entities_of(snapshot),
        cursor: last["baseline"]["resume_cursor"]
            .as_str()
            .expect("cursor")
            .to_string(),
        applied: Vec::new(),
    };

    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let main_writer = {
        let (server, stop) = (server.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut alive: Vec<String> = vec!["seed".into()];
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let pick = |k: u64| alive[(k as usize * 7919) % alive.len()].clone();
                match n % 5 {
                    0 | 1 => {
                        let id = format!("m{n}");
                        if mutate(&server, "add", json!({"id": id, "age": n % 90}), "main") == 200 {
                            alive.push(id);
                        }
                    }
                    2 => {
                        mutate(
                            &server,
                            "age",
                            json!({"id": pick(n), "age": (n % 80) + 10}),
                            "main",
                        );
                    }
                    3 if alive.len() > 3 => {
                        let id = alive.remove((n as usize * 31) % alive.len());
                        mutate(&server, "del", json!({"id": id}), "main");
                    }
                    _ if alive.len() > 1 => {
                        let (a, b) = (pick(n), pick(n + 1));
                        mutate(&server, "link", json!({"a": a, "b": b, "s": n}), "main");
                    }
                    _ => {}
                }
            }
            n
        })
    };
    let loader = {
        let (server, stop) = (server.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                // Upserts: two new people and a new age for an older one.
                let body = format!(
                    "{{\"type\":\"Person\",\"data\":{{\"name\":\"l{n}a\",\"age\":{}}}}}\n{{\"type\":\"Person\",\"data\":{{\"name\":\"l{n}b\"}}}}\n{{\"type\":\"Person\",\"data\":{{\"name\":\"l{}a\",\"age\":{}}}}}\n",
                    n % 50,
                    n / 2 + 1,
                    n % 70
                );
                let r = server.post("/graphs/g/load/ndjson?mode=merge&branch=main", None, &body);
                assert!(r.status < 500, "load: {} {}", r.status, r.body);
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };
    let side = {
        let (server, stop) = (server.clone(), stop.clone());
        std::thread::spawn(move || {
            let (mut n, mut merges) = (0u64, 0u64);
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                mutate(
                    &server,
                    "add",
                    json!({"id": format!("s{n}"), "age": n % 60}),
                    "side",
                );
                if n % 8 == 0 {
                    let r = server.post(
                        "/graphs/g/branches/merge",
                        None,
                        r#"{"source":"side","target":"main"}"#,
                    );
                    assert!(r.status < 500, "merge: {} {}", r.status, r.body);
                    merges += u64::from(r.status == 200);
                }
            }
            (n, merges)
        })
    };

    // The follower: poll, apply, save; one crash before a save.
    let (mut polls, mut crashed, mut blocks_seen) = (0u32, false, 0usize);
    while Instant::now() < deadline {
        let (blocks, cursor, _) = poll(&server, &saved.cursor);
        polls += 1;
        let mut work = saved.clone();
        for b in &blocks {
            work.apply(b);
        }
        blocks_seen += blocks.len();
        if !crashed
            && !blocks.is_empty()
            && Instant::now() + Duration::from_secs(secs / 2) > deadline
        {
            // Crash: the work of this poll was never saved.
            crashed = true;
            eprintln!(
                "follower: crashed after applying {} unsaved block(s)",
                blocks.len()
            );
            continue;
        }
        work.cursor = cursor;
        saved = work;
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::SeqCst);
    let writes = main_writer.join().expect("main writer");
    let loads = loader.join().expect("loader");
    let (side_writes, merges) = side.join().expect("side");
    // A last merge, so the final state holds every side insert.
    server
        .post(
            "/graphs/g/branches/merge",
            None,
            r#"{"source":"side","target":"main"}"#,
        )
        .expect(200);
    loop {
        let (blocks, cursor, caught_up) = poll(&server, &saved.cursor);
        for b in &blocks {
            saved.apply(b);
        }
        blocks_seen += blocks.len();
        saved.cursor = cursor;
        if caught_up && blocks.is_empty() {
            break;
        }
    }
    let export = ndjson(&server.post("/graphs/g/export", None, "{}").expect(200).body);
    let want = entities_of(&export);
    let chain = chain_after(&server, &base);
    eprintln!(
        "{secs} s: {writes} mutations, {loads} loads, {side_writes} side inserts, {merges} merges; follower: {polls} polls, {} commits applied ({blocks_seen} blocks delivered), {} entities, crashed once: {crashed}",
        saved.applied.len(),
        saved.entities.len()
    );
    assert!(crashed, "the follower crashed once");
    assert_eq!(
        saved.applied, chain,
        "every first-parent commit applied once, in order"
    );
    assert_eq!(saved.entities.len(), want.len());
    assert!(
        saved.entities == want,
        "the follower's state equals the export"
    );
    let kinds: HashSet<&str> = saved.entities.keys().map(|k| k.0.as_str()).collect();
    assert!(kinds.contains("edge") && kinds.contains("node"));
}

/// The change routes' refusals, each with its status and structured
/// field.
#[test]
fn the_change_routes_refuse_clearly() {
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let uri = init_graph(tmp.path(), "g.omni", std::path::Path::new(&schema));
    let data = write(
        tmp.path(),
        "d.jsonl",
        "{\"type\":\"Person\",\"data\":{\"name\":\"a\"}}\n{\"type\":\"Person\",\"data\":{\"name\":\"b\"}}\n",
    );
    crate::support::cli_ok(&["load", "--mode", "merge", "--data", &data, &uri]);
    let server = Server::start(
        tmp.path(),
        &["--graph", &format!("g={uri}"), "--unauthenticated"],
        &[],
    );
    let commits = server.get("/graphs/g/commits", None).expect(200).json();
    let load = commits["commits"][0]["graph_commit_id"]
        .as_str()
        .expect("load")
        .to_string();
    let genesis = commits["commits"][1]["graph_commit_id"]
        .as_str()
        .expect("init")
        .to_string();

    let page = server
        .get(
            &format!("/graphs/g/commits/{load}/changes?limit=1&type=Person&op=insert"),
            None,
        )
        .expect(200)
        .json();
    assert_eq!(page["changes"].as_array().expect("changes").len(), 1);
    assert_eq!(page["cause"]["graph_commit_id"], load.as_str());
    let token = page["next_page_token"]
        .as_str()
        .expect("a second page")
        .to_string();
    let rest = server
        .get(
            &format!(
                "/graphs/g/commits/{load}/changes?limit=1&type=Person&op=insert&page_token={token}"
            ),
            None,
        )
        .expect(200)
        .json();
    assert_eq!(rest["changes"][0]["id"], "b");
    assert!(rest["next_page_token"].is_null());
    // The token binds its filters.
    let r = server.get(
        &format!("/graphs/g/commits/{load}/changes?page_token={token}"),
        None,
    );
    assert!(
        r.expect(400).json()["error"]
            .as_str()
            .expect("error")
            .starts_with("change cursor rejected:")
    );

    let r = server
        .get(&format!("/graphs/g/commits/{genesis}/changes"), None)
        .expect(409)
        .json();
    assert_eq!(r["change_diff_refusal"]["reason"], "parentless_commit");
    assert_eq!(
        r["change_diff_refusal"]["graph_commit_id"],
        genesis.as_str()
    );
    server
        .get("/graphs/g/commits/01ARZ3NDEKTSV4RRFFQ69G5FAV/changes", None)
        .expect(404);
    let r = server
        .get(
            &format!("/graphs/g/commits/{load}/changes?limit=10001"),
            None,
        )
        .expect(413)
        .json();
    assert_eq!(
        r["resource_limit"],
        json!({"resource": "changes_per_page", "limit": 10000, "actual": 10001})
    );
    for bad in [
        "colour=red",
        "kind=vertex",
        "op=upsert",
        "limit=x",
        "type=Persn",
    ] {
        server
            .get(&format!("/graphs/g/commits/{load}/changes?{bad}"), None)
            .expect(400);
    }
    for bad in [
        "start=later",
        "cursor=nope",
        "start=now&cursor=ogc1.e30",
        "limit=0",
        "branch=main&branch=x",
    ] {
        server
            .get(&format!("/graphs/g/changes?{bad}"), None)
            .expect(400);
    }
    server
        .get("/graphs/g/changes?branch=nope", None)
        .expect(404);

    // A poll's cursor, then the next commit's record removed (as cleanup
    // does): 410 with the gap, and a baseline restarts the follower.
    let now = server.get("/graphs/g/changes", None).expect(200).json();
    assert_eq!(now["caught_up"], true);
    let cursor = now["cursor"].as_str().expect("cursor").to_string();
    for name in ["c", "d"] {
        let more = write(
            tmp.path(),
            "m.jsonl",
            &format!("{{\"type\":\"Person\",\"data\":{{\"name\":\"{name}\"}}}}\n"),
        );
        let r = server.post(
            "/graphs/g/load/ndjson?mode=merge",
            None,
            &std::fs::read_to_string(more).expect("read"),
        );
        r.expect(200);
    }
    let chain = chain_after(&server, &load);
    std::fs::remove_file(
        std::path::Path::new(&uri).join(format!("_graph/commits/{}.json", chain[0])),
    )
    .expect("remove the record");
    // The server may hold the record in memory; a new server reads storage.
    drop(server);
    let server = Server::start(
        tmp.path(),
        &["--graph", &format!("g={uri}"), "--unauthenticated"],
        &[],
    );
    let r = server
        .get(&format!("/graphs/g/changes?cursor={cursor}"), None)
        .expect(410)
        .json();
    assert_eq!(
        r["change_feed_gap"]["first_unreadable_commit_id"],
        chain[0].as_str()
    );
    assert_eq!(r["change_feed_gap"]["cursor"], cursor.as_str());
    assert!(r["code"].is_null());
    let lines = ndjson(
        &server
            .post("/graphs/g/changes/baseline", None, r#"{"type":["Person"]}"#)
            .expect(200)
            .body,
    );
    let (last, snapshot) = lines.split_last().expect("terminal");
    assert_eq!(snapshot.len(), 4, "a, b, c, d");
    let resume = last["baseline"]["resume_cursor"].as_str().expect("cursor");
    // The baseline's cursor binds its filter scope.
    server
        .get(&format!("/graphs/g/changes?cursor={resume}"), None)
        .expect(400);
    let p = server
        .get(
            &format!("/graphs/g/changes?cursor={resume}&type=Person"),
            None,
        )
        .expect(200)
        .json();
    assert_eq!(p["blocks"], json!([]));
    server
        .post("/graphs/g/changes/baseline", None, r#"{"branch":"nope"}"#)
        .expect(404);
    server
        .post("/graphs/g/changes/baseline", None, r#"{"kind":["vertex"]}"#)
        .expect(400);
}

/// Runs the CLI; its stdout, or a panic with its stderr.
fn cli(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run omnigraph");
    assert!(
        out.status.success(),
        "omnigraph {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// `changes baseline`, `changes poll` and `commit changes` print the same
/// on a graph opened directly and through a server, cursors included.
#[test]
fn the_cli_follows_the_feed_embedded_and_remote_alike() {
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let uri = init_graph(tmp.path(), "g.omni", std::path::Path::new(&schema));
    let data = write(
        tmp.path(),
        "d.jsonl",
        "{\"type\":\"Person\",\"data\":{\"name\":\"a\",\"age\":3}}\n{\"edge\":\"Knows\",\"from\":\"a\",\"to\":\"a\",\"data\":{\"id\":\"k\"}}\n",
    );
    crate::support::cli_ok(&["load", "--mode", "merge", "--data", &data, &uri]);
    let server = Server::start(
        tmp.path(),
        &["--graph", &format!("g={uri}"), "--unauthenticated"],
        &[],
    );
    let url = format!("http://{}", server.addr);
    let remote = ["--server", url.as_str(), "--graph", "g"];
    let both = |args: &[&str]| {
        let mut local: Vec<&str> = args.to_vec();
        local.push(&uri);
        let mut far: Vec<&str> = args.to_vec();
        far.extend(remote);
        (cli(&local), cli(&far))
    };
    let (lo, re) = (tmp.path().join("lo.jsonl"), tmp.path().join("re.jsonl"));
    let a = cli(&[
        "changes",
        "baseline",
        "--out",
        lo.to_str().expect("utf8"),
        "--json",
        &uri,
    ]);
    let mut far = vec![
        "changes",
        "baseline",
        "--out",
        re.to_str().expect("utf8"),
        "--json",
    ];
    far.extend(remote);
    let b = cli(&far);
    assert_eq!(a, b, "the same handshake");
    let snap = std::fs::read_to_string(&lo).expect("snapshot");
    assert_eq!(snap, std::fs::read_to_string(&re).expect("snapshot"));
    assert_eq!(snap.lines().count(), 2, "{snap}");
    assert!(
        !snap.contains("baseline"),
        "the file holds only the snapshot"
    );
    let handshake: Json = serde_json::from_str(&a).expect("json");
    let cursor = handshake["baseline"]["resume_cursor"]
        .as_str()
        .expect("cursor")
        .to_string();

    let more = write(
        tmp.path(),
        "m.jsonl",
        "{\"type\":\"Person\",\"data\":{\"name\":\"b\"}}\n{\"type\":\"Person\",\"data\":{\"name\":\"a\",\"age\":4}}\n",
    );
    crate::support::cli_ok(&["load", "--mode", "merge", "--data", &more, &uri]);
    let (l, r) = both(&[
        "changes", "poll", "--cursor", &cursor, "--limit", "1", "--json",
    ]);
    assert_eq!(l, r);
    let page: Json = serde_json::from_str(&l).expect("json");
    let changes = page["blocks"][0]["changes"]
        .as_array()
        .expect("one stitched block");
    assert_eq!(page["blocks"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        changes.len(),
        2,
        "split over two pages, printed as one block: {l}"
    );
    assert_eq!(changes[0]["op"], "update");
    assert_eq!(changes[1]["op"], "insert");
    assert_eq!(page["caught_up"], true);
    let commit = page["blocks"][0]["cause"]["graph_commit_id"]
        .as_str()
        .expect("id")
        .to_string();
    let (l, r) = both(&["commit", "changes", &commit, "--json"]);
    assert_eq!(l, r);
    let (l, r) = both(&["commit", "changes", &commit, "--op", "update"]);
    assert_eq!(l, r);
    assert!(l.contains("update node Person a  age: 3 => 4"), "{l}");
    assert!(!l.contains("insert"), "{l}");
}

/// `omnigraph cleanup --keep 5 --confirm` on the storage of a graph the
/// server is writing: writes during it land; the server then answers 410
/// for time travel below the window and for a feed cursor there, and a
/// new baseline restarts the follower.
#[test]
fn cleanup_beside_a_serving_server() {
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let uri = init_graph(tmp.path(), "g.omni", std::path::Path::new(&schema));
    let server = Arc::new(Server::start(
        tmp.path(),
        &["--graph", &format!("g={uri}"), "--unauthenticated"],
        &[],
    ));
    let old_cursor = server.get("/graphs/g/changes", None).expect(200).json()["cursor"]
        .as_str()
        .expect("cursor")
        .to_string();
    for i in 0..30 {
        assert_eq!(
            mutate(
                &server,
                "add",
                json!({"id": format!("p{i}"), "age": i}),
                "main"
            ),
            200
        );
    }
    let early = server
        .get("/graphs/g/commits?branch=main", None)
        .expect(200)
        .json()["commits"][20]["graph_commit_id"]
        .as_str()
        .expect("an early commit")
        .to_string();
    let writer = {
        let server = server.clone();
        std::thread::spawn(move || {
            (0..10)
                .map(|i| {
                    mutate(
                        &server,
                        "add",
                        json!({"id": format!("during{i}"), "age": i}),
                        "main",
                    )
                })
                .collect::<Vec<u16>>()
        })
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args(["cleanup", "--keep", "5", "--confirm", "--json", &uri])
        .output()
        .expect("cleanup");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Json = serde_json::from_slice(&out.stdout).expect("json");
    assert!(
        report["commits_removed"].as_u64().expect("count") > 0,
        "{report}"
    );
    assert!(
        writer.join().expect("writer").iter().all(|s| *s == 200),
        "writes during the cleanup land"
    );

    let count = |at: &str| {
        let body = json!({"query": "query q() { match { $p: Person } return { count($p) as n } }", "snapshot": at});
        server.post("/graphs/g/query", None, &body.to_string())
    };
    let removed: Vec<&str> = report["removed_commit_ids"]
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        removed.contains(&early.as_str()),
        "{early} removed: {report}"
    );
    count(&early).expect(410);
    let body = json!({"query": "query q() { match { $p: Person } return { count($p) as n } }"});
    let now = server
        .post("/graphs/g/query", None, &body.to_string())
        .expect(200)
        .json();
    assert_eq!(now["rows"][0]["n"], 40);
    let r = server
        .get(&format!("/graphs/g/changes?cursor={old_cursor}"), None)
        .expect(410)
        .json();
    assert!(
        r["change_feed_gap"]["first_unreadable_commit_id"].is_string(),
        "{r}"
    );
    let lines = ndjson(
        &server
            .post("/graphs/g/changes/baseline", None, "{}")
            .expect(200)
            .body,
    );
    assert_eq!(lines.len(), 41, "40 people and the terminal record");
}
