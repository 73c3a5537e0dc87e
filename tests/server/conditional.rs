//! Conditional writes over HTTP (reference docs/user/mutations/index.md,
//! "Conditional writes"): `POST /graphs/{id}/mutate/if-graph-commit` and
//! `POST /graphs/{id}/queries/{name}/if-graph-commit` with
//! `Omnigraph-If-Graph-Commit`, 412 `precondition_failure` on a moved
//! head, and the CLI's `mutate --if-commit` (exit code 4).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use omnigraph::http::client::request_with;

use crate::support::{Server, init_graph, write};

const SCHEMA: &str = "node Counter {\n  name: String @key\n  value: I64\n}\n";
const QUERIES: &str = r#"
query get($name: String) {
  match { $c: Counter { name: $name } }
  return { $c.value as value }
}
query set($name: String, $value: I64) {
  update Counter set { value: $value } where name = $name
}
"#;

/// `(value, graph_commit_id)` of counter `c` as one read saw them.
fn read(server: &Server, c: &str) -> (i64, String) {
    let body = serde_json::json!({"query": QUERIES, "name": "get", "params": {"name": c}});
    let r = server
        .post("/graphs/g/query", None, &body.to_string())
        .expect(200)
        .json();
    (
        r["rows"][0]["value"].as_i64().expect("value"),
        r["graph_commit_id"]
            .as_str()
            .expect("commit id")
            .to_string(),
    )
}

fn set_if(
    server: &Server,
    path: &str,
    commit: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let r = request_with(
        &server.addr,
        "POST",
        path,
        None,
        &[("Omnigraph-If-Graph-Commit", commit)],
        Some(body.to_string().as_bytes()),
    );
    let status = r.status;
    let j = if status == 200 {
        r.json()
    } else {
        r.expect(status).json()
    };
    (status, j)
}

/// Rounds of read-then-write per caller.
const ROUNDS: usize = 5;

/// 20 callers each read the counter and write value + 1 conditioned on
/// the commit they read, [`ROUNDS`] times: the final value equals the
/// number of 200s, and every other answer is a 412 naming the head it met.
#[test]
fn concurrent_conditional_increments_lose_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let uri = init_graph(tmp.path(), "g.omni", std::path::Path::new(&schema));
    let data = write(
        tmp.path(),
        "d.jsonl",
        "{\"type\":\"Counter\",\"data\":{\"name\":\"c\",\"value\":0}}\n",
    );
    crate::support::cli_ok(&["load", "--mode", "append", "--data", &data, &uri]);
    let server = Arc::new(Server::start(
        tmp.path(),
        &["--graph", &format!("g={uri}"), "--unauthenticated"],
        // All 20 callers are `anonymous`: let them all in at once.
        &[("OMNIGRAPH_PER_ACTOR_INFLIGHT_MAX", "64")],
    ));
    let ok = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let (server, ok, refused) = (server.clone(), ok.clone(), refused.clone());
            std::thread::spawn(move || {
                for _ in 0..ROUNDS {
                    let (v, commit) = read(&server, "c");
                    let body = serde_json::json!({
                        "query": QUERIES, "name": "set",
                        "params": {"name": "c", "value": v + 1},
                    });
                    let (status, j) =
                        set_if(&server, "/graphs/g/mutate/if-graph-commit", &commit, &body);
                    match status {
                        200 => {
                            ok.fetch_add(1, Ordering::SeqCst);
                        }
                        412 => {
                            let pf = &j["precondition_failure"];
                            assert_eq!(pf["expected"], commit.as_str(), "{j}");
                            assert!(
                                pf["actual"].is_string() && pf["actual"] != commit.as_str(),
                                "{j}"
                            );
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                        other => panic!("unexpected {other}: {j}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("caller");
    }
    let (ok, refused) = (ok.load(Ordering::SeqCst), refused.load(Ordering::SeqCst));
    let (value, _) = read(&server, "c");
    eprintln!(
        "20 callers x {ROUNDS} conditional increments: {ok} applied (200), {refused} refused (412); final value {value}"
    );
    assert_eq!(ok + refused, 20 * ROUNDS);
    assert!(ok >= 1, "at least the first write wins");
    assert_eq!(value, ok as i64, "every 200 is one increment, nothing lost");
}

/// The header's rules and the other conditional surfaces: a matching
/// head writes, a stale one is 412 with no effect (a no-op included),
/// the ordinary route refuses the header, the conditional route needs
/// it and refuses `*` and weak tags, a stored mutation takes it on its
/// own route, a stored read refuses it, and the CLI exits 4.
#[test]
fn conditional_writes_check_the_head_and_the_header() {
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let uri = init_graph(tmp.path(), "g.omni", std::path::Path::new(&schema));
    let data = write(
        tmp.path(),
        "d.jsonl",
        "{\"type\":\"Counter\",\"data\":{\"name\":\"c\",\"value\":0}}\n",
    );
    crate::support::cli_ok(&["load", "--mode", "append", "--data", &data, &uri]);
    let stored = tmp.path().join("stored");
    std::fs::create_dir(&stored).expect("dir");
    let queries = write(&stored, "q.gq", QUERIES);
    let server = Server::start(
        tmp.path(),
        &[
            "--graph",
            &format!("g={uri}"),
            "--queries",
            &format!("g={}", stored.display()),
            "--unauthenticated",
        ],
        &[],
    );
    let set = |v: i64| serde_json::json!({"query": QUERIES, "name": "set", "params": {"name": "c", "value": v}});
    let (_, old) = read(&server, "c");
    let (s, j) = set_if(&server, "/graphs/g/mutate/if-graph-commit", &old, &set(5));
    assert_eq!(s, 200, "{j}");
    let new = j["commit"]["graph_commit_id"]
        .as_str()
        .expect("commit")
        .to_string();
    assert_eq!(read(&server, "c"), (5, new.clone()));
    // Stale: refused, nothing written; a write that would change nothing
    // is refused the same; the entity-tag form of the right id works.
    for v in [9, 5] {
        let (s, j) = set_if(&server, "/graphs/g/mutate/if-graph-commit", &old, &set(v));
        assert_eq!(s, 412, "{j}");
        assert_eq!(j["precondition_failure"]["actual"], new.as_str());
        assert!(
            j["error"].as_str().unwrap_or_default().contains("re-read"),
            "{j}"
        );
    }
    assert_eq!(read(&server, "c"), (5, new.clone()));
    let (s, j) = set_if(
        &server,
        "/graphs/g/mutate/if-graph-commit",
        &format!("\"{new}\""),
        &set(6),
    );
    assert_eq!(s, 200, "{j}");
    // Header rules.
    let (_, head) = read(&server, "c");
    let r = request_with(
        &server.addr,
        "POST",
        "/graphs/g/mutate",
        None,
        &[("Omnigraph-If-Graph-Commit", &head)],
        Some(set(7).to_string().as_bytes()),
    );
    assert!(r.expect(400).body.contains("if-graph-commit"));
    let r = server.post(
        "/graphs/g/mutate/if-graph-commit",
        None,
        &set(7).to_string(),
    );
    r.expect(400);
    for bad in ["*", &format!("W/\"{head}\"")] {
        let (s, j) = set_if(&server, "/graphs/g/mutate/if-graph-commit", bad, &set(7));
        assert_eq!(s, 400, "{bad}: {j}");
    }
    assert_eq!(read(&server, "c").0, 6, "refused requests wrote nothing");
    // A stored mutation on its conditional route; a stored read refuses.
    let stored = serde_json::json!({"params": {"name": "c", "value": 8}});
    let (s, j) = set_if(
        &server,
        "/graphs/g/queries/set/if-graph-commit",
        &head,
        &stored,
    );
    assert_eq!(s, 200, "{j}");
    let (s, j) = set_if(
        &server,
        "/graphs/g/queries/set/if-graph-commit",
        &head,
        &stored,
    );
    assert_eq!(s, 412, "{j}");
    let (s, _) = set_if(
        &server,
        "/graphs/g/queries/get/if-graph-commit",
        &head,
        &serde_json::json!({"params": {"name": "c"}}),
    );
    assert_eq!(s, 400);
    // The CLI, remote and embedded: exit code 4 on a moved head.
    let (_, head) = read(&server, "c");
    let base = format!("http://{}", server.addr);
    // Runs the CLI; asserts its exit code; answers its stdout and stderr.
    let cli = |args: &[&str], code: i32| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_omnigraph"))
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run omnigraph");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "omnigraph {args:?}: {err}");
        (out.stdout, err)
    };
    let set = |value: &str, at: &str, target: &[&str], code: i32| {
        let params = format!(r#"{{"name":"c","value":{value}}}"#);
        let mut args = vec![
            "mutate",
            "set",
            "--query",
            &queries,
            "--params",
            &params,
            "--if-commit",
            at,
        ];
        args.extend_from_slice(target);
        cli(&args, code).1
    };
    let remote = ["--server", base.as_str(), "--graph", "g"];
    assert!(set("10", &old, &remote, 4).contains("precondition_failure"));
    set("10", &head, &remote, 0);
    drop(server);
    assert!(set("11", &head, &["--store", &uri], 4).contains("re-read the branch"));
    // `load --if-commit` on the local graph: the same rule.
    let (out, _) = cli(
        &[
            "query",
            "get",
            "--query",
            &queries,
            "--params",
            r#"{"name":"c"}"#,
            "--store",
            &uri,
            "--format",
            "json",
        ],
        0,
    );
    let now: serde_json::Value = serde_json::from_slice(&out).expect("json");
    let now = now["graph_commit_id"].as_str().expect("head").to_string();
    let more = write(
        tmp.path(),
        "more.jsonl",
        "{\"type\":\"Counter\",\"data\":{\"name\":\"d\",\"value\":1}}\n",
    );
    let load = |at: &str, code: i32| {
        cli(
            &[
                "load",
                "--mode",
                "merge",
                "--data",
                &more,
                "--if-commit",
                at,
                &uri,
            ],
            code,
        )
    };
    load(&old, 4);
    load(&now, 0);
}
