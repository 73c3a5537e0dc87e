//! The runtime states (Open, DefaultDeny, PolicyEnabled) and every case in
//! which the server refuses to start.

use serde_json::json;

use crate::support::{Server, cli_ok, init_graph, refuse, write};

pub const SCHEMA: &str =
    "node Person {\n    name: String @key\n    age: I32?\n}\nedge Knows: Person -> Person\n";

/// `n` people as load lines, names `p{start}`…
pub fn people(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| {
            format!(
                "{{\"type\":\"Person\",\"data\":{{\"name\":\"p{i}\",\"age\":{}}}}}\n",
                i % 90
            )
        })
        .collect()
}

pub fn people_graph(dir: &std::path::Path, name: &str) -> String {
    let schema = write(dir, "people.pg", SCHEMA);
    init_graph(dir, name, std::path::Path::new(&schema))
}

const COUNT: &str = r#"{"query":"query c() { match { $p: Person } return { count($p) as n } }"}"#;

#[test]
fn default_deny_allows_only_reads() {
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = people_graph(tmp.path(), "g");
    let g = format!("g={uri}");
    let server = Server::start(
        tmp.path(),
        &["--graph", &g],
        &[("OMNIGRAPH_SERVER_BEARER_TOKEN", "secret")],
    );
    let t = Some("secret");
    server.get("/graphs/g/snapshot", None).expect(401);
    let r = server.post("/graphs/g/query", t, COUNT).expect(200).json();
    assert_eq!(r["rows"], json!([{ "n": 0 }]));
    server
        .post("/graphs/g/load/ndjson", t, &people(0, 3))
        .expect(403);
    server
        .post(
            "/graphs/g/mutate",
            t,
            r#"{"query":"query m() { insert Person { name: \"x\" } }"}"#,
        )
        .expect(403);
    server
        .post("/graphs/g/branches", t, r#"{"name":"dev"}"#)
        .expect(403);
    server.post("/graphs/g/export", t, "{}").expect(403);
    server
        .post(
            "/graphs/g/schema/apply",
            t,
            r#"{"schema_source":"node P { k: String @key }"}"#,
        )
        .expect(403);
    // Server actions need a server bundle in every state.
    server.get("/graphs", t).expect(403);
    server.get("/admin/graphs", t).expect(403);
}

#[test]
fn open_mode_serves_everything_but_server_actions() {
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = people_graph(tmp.path(), "g");
    let g = format!("g={uri}");
    let server = Server::start(tmp.path(), &["--graph", &g, "--unauthenticated"], &[]);
    let out = server
        .post("/graphs/g/load/ndjson", None, &people(0, 5))
        .expect(200)
        .json();
    assert_eq!(out["total_entities"], 5);
    assert_eq!(out["actor_id"], "anonymous");
    let r = server
        .post("/graphs/g/query", None, COUNT)
        .expect(200)
        .json();
    assert_eq!(r["rows"], json!([{ "n": 5 }]));
    // Branches: create, load into it, delete; main is untouched.
    server
        .post("/graphs/g/branches", None, r#"{"name":"dev"}"#)
        .expect(200);
    server
        .post(
            "/graphs/g/load/ndjson?branch=dev&mode=append",
            None,
            &people(5, 2),
        )
        .expect(200);
    let dev = server
        .post(
            "/graphs/g/query",
            None,
            &COUNT.replace("}\"}", "}\",\"branch\":\"dev\"}"),
        )
        .expect(200)
        .json();
    assert_eq!(dev["rows"], json!([{ "n": 7 }]));
    server
        .post("/graphs/g/load/ndjson?branch=nope", None, &people(9, 1))
        .expect(404);
    // Honest loads: an empty overwrite is refused unless allowed; an empty
    // merge publishes nothing and says so.
    server
        .post("/graphs/g/branches", None, r#"{"name":"scratch"}"#)
        .expect(200);
    let refused = server
        .post(
            "/graphs/g/load/ndjson?branch=scratch&mode=overwrite",
            None,
            "",
        )
        .expect(400);
    assert!(
        refused.body.contains("allow_empty=true"),
        "{}",
        refused.body
    );
    let nothing = server
        .post("/graphs/g/load/ndjson?branch=scratch&mode=merge", None, "")
        .expect(200)
        .json();
    assert_eq!(nothing["commit"], json!(null), "{nothing}");
    assert_eq!(nothing["total_entities"], 0);
    server
        .post(
            "/graphs/g/load/ndjson?branch=scratch&mode=overwrite&allow_empty=true",
            None,
            "",
        )
        .expect(200);
    let dev = server
        .post(
            "/graphs/g/query",
            None,
            &COUNT.replace("}\"}", "}\",\"branch\":\"scratch\"}"),
        )
        .expect(200)
        .json();
    assert_eq!(dev["rows"], json!([{ "n": 0 }]), "emptied on request");
    server
        .delete("/graphs/g/branches/scratch", None)
        .expect(200);
    let created = server
        .post(
            "/graphs/g/load/ndjson?branch=fresh&from=main&mode=append",
            None,
            &people(9, 1),
        )
        .expect(200)
        .json();
    assert_eq!(created["branch_created"], true);
    // Merge: main has not moved, so dev fast-forwards it.
    let m = server
        .post("/graphs/g/branches/merge", None, r#"{"source":"dev"}"#)
        .expect(200)
        .json();
    assert_eq!(
        (m["outcome"].as_str(), m["target"].as_str()),
        (Some("fast_forward"), Some("main"))
    );
    let r = server
        .post("/graphs/g/query", None, COUNT)
        .expect(200)
        .json();
    assert_eq!(r["rows"], json!([{ "n": 7 }]));
    // Both sides change p0 differently: 409 with the conflict, nothing lands.
    let p0 =
        |age: u32| format!("{{\"type\":\"Person\",\"data\":{{\"name\":\"p0\",\"age\":{age}}}}}\n");
    server
        .post("/graphs/g/load/ndjson?branch=dev&mode=merge", None, &p0(1))
        .expect(200);
    server
        .post("/graphs/g/load/ndjson?mode=merge", None, &p0(2))
        .expect(200);
    let before = server.get("/graphs/g/snapshot", None).expect(200).json();
    let c = server
        .post(
            "/graphs/g/branches/merge",
            None,
            r#"{"source":"dev","target":"main"}"#,
        )
        .expect(409)
        .json();
    assert_eq!(c["code"], "conflict");
    assert_eq!(
        c["merge_conflicts"],
        json!([{"kind": "divergent_update", "entity_kind": "node", "type_name": "Person", "entity_id": "p0", "message": "updated differently on both branches"}])
    );
    let after = server.get("/graphs/g/snapshot", None).expect(200).json();
    assert_eq!(before["graph_commit_id"], after["graph_commit_id"]);
    server
        .post("/graphs/g/branches/merge", None, r#"{"source":"nope"}"#)
        .expect(404);
    server
        .post("/graphs/g/branches/merge", None, r#"{"source":"main"}"#)
        .expect(400);
    server
        .post("/graphs/g/branches/merge", None, r#"{"target":"main"}"#)
        .expect(400);
    server.delete("/graphs/g/branches/dev", None).expect(200);
    server.delete("/graphs/g/branches/main", None).expect(400);
    // Schema apply: branches block a rewrite; without them it lands and
    // the new property is queryable at once.
    let apply = |schema: &str, allow: bool| {
        json!({"schema_source": schema, "allow_data_loss": allow}).to_string()
    };
    let with_nick = SCHEMA.replace("    age: I32?\n", "    age: I32?\n    nick: String?\n");
    let refused = server
        .post("/graphs/g/schema/apply", None, &apply(&with_nick, false))
        .expect(400)
        .json();
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("fresh"),
        "{refused}"
    );
    server.delete("/graphs/g/branches/fresh", None).expect(200);
    let out = server
        .post("/graphs/g/schema/apply", None, &apply(&with_nick, false))
        .expect(200)
        .json();
    assert_eq!(
        (out["applied"].as_bool(), out["step_count"].as_u64()),
        (Some(true), Some(1))
    );
    let shown = server.get("/graphs/g/schema", None).expect(200).json();
    assert!(
        shown["schema_source"]
            .as_str()
            .unwrap_or_default()
            .contains("nick: String?")
    );
    let r = server
        .post(
            "/graphs/g/query",
            None,
            r#"{"query":"query n() { match { $p: Person } return { count($p.nick) as n } }"}"#,
        )
        .expect(200)
        .json();
    assert_eq!(r["rows"], json!([{ "n": 0 }]));
    server
        .post("/graphs/g/schema/apply", None, &apply("node {", false))
        .expect(400);
    server
        .post("/graphs/g/schema/apply", None, &apply(SCHEMA, false))
        .expect(400);
    server.get("/graphs", None).expect(403);
    // The reference's deprecated aliases, with their headers.
    let legacy = r#"{"query_source":"query c() { match { $p: Person } return { count($p) as n } }","query_name":"c"}"#;
    let r = server.post("/graphs/g/read", None, legacy).expect(200);
    assert_eq!(r.header("deprecation"), Some("true"));
    assert_eq!(r.header("link"), Some("<query>; rel=\"successor-version\""));
    let j = r.json();
    assert_eq!(j["rows"], json!([{ "n": 7 }]));
    assert!(j.get("graph_commit_id").is_none(), "{j}");
    let r = server
        .post(
            "/graphs/g/change",
            None,
            r#"{"query_source":"query m() { insert Person { name: \"zed\" } }"}"#,
        )
        .expect(200);
    assert_eq!(
        r.header("link"),
        Some("<mutate>; rel=\"successor-version\"")
    );
    assert_eq!(r.json()["affected_nodes"], 1);
    let envelope = json!({ "data": people(50, 2), "mode": "append" }).to_string();
    let r = server.post("/graphs/g/ingest", None, &envelope).expect(200);
    assert_eq!(r.header("deprecation"), Some("true"));
    assert_eq!(r.json()["total_entities"], 2);
    let r = server.post("/graphs/g/read", None, "{bad").expect(400);
    assert_eq!(r.header("deprecation"), Some("true"));
    // Bad input is a 400 naming the problem, never a crash.
    let bad = server
        .post(
            "/graphs/g/load/ndjson",
            None,
            "{\"type\":\"Nobody\",\"data\":{}}\n",
        )
        .expect(400);
    assert!(bad.body.contains("line 1"), "{}", bad.body);
    server
        .post("/graphs/g/query", None, "{not json")
        .expect(400);
    server
        .post(
            "/graphs/g/query",
            None,
            r#"{"query":"query q() { match { $x: Nope } return { $x } }"}"#,
        )
        .expect(400);
    server
        .post("/graphs/g/load/ndjson?mode=sideways", None, "")
        .expect(400);
    server.get("/no/such/route", None).expect(404);
    // Over the 1 MiB default body limit: 413.
    let big = format!("{{\"query\":\"{}\"}}", "x".repeat(1 << 20));
    server.post("/graphs/g/query", None, &big).expect(413);
    // The server still answers, to load balancers' HEAD probes too.
    server.get("/healthz", None).expect(200);
    let head = omnigraph::http::client::request(&server.addr, "HEAD", "/healthz", None, None);
    assert_eq!(head.status, 200, "{}", head.body);
    assert!(head.body.is_empty(), "HEAD has no body: {:?}", head.body);
}

#[test]
fn refuses_to_start_with_a_reason() {
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = people_graph(tmp.path(), "g");
    let g = format!("g={uri}");
    let tokens = [("OMNIGRAPH_SERVER_BEARER_TOKEN", "secret")];
    let policy = write(
        tmp.path(),
        "p.yaml",
        "version: 1\nrules:\n  - id: r\n    allow:\n      actors: \"*\"\n      actions: [read]\n",
    );
    let server_policy = write(
        tmp.path(),
        "s.yaml",
        "version: 1\nrules:\n  - id: r\n    allow:\n      actors: \"*\"\n      actions: [graph_list]\n",
    );
    let broken = write(tmp.path(), "b.yaml", "version: 1\nrules: [\n");
    let pol = format!("g={policy}");
    let spol = format!("g={server_policy}");
    let bpol = format!("g={broken}");
    let missing = format!("g={}", tmp.path().join("absent").display());
    let missing_h = missing.replace("g=", "h=");
    let cases: Vec<(Vec<&str>, Vec<(&str, &str)>, &str)> = vec![
        (vec!["--graph", &g], vec![], "--unauthenticated"),
        (
            vec!["--graph", &g, "--policy", &pol],
            vec![],
            "no bearer tokens",
        ),
        (
            vec!["--graph", &g, "--policy", "h=x.yaml"],
            tokens.to_vec(),
            "no --graph declares",
        ),
        (
            vec!["--graph", &g, "--policy", &spol],
            tokens.to_vec(),
            "--server-policy",
        ),
        (
            vec!["--graph", &g, "--server-policy", &policy],
            tokens.to_vec(),
            "--policy ID=FILE",
        ),
        (
            vec!["--graph", &g, "--policy", &bpol],
            tokens.to_vec(),
            "b.yaml",
        ),
        (
            vec!["--graph", &g],
            vec![("OMNIGRAPH_SERVER_BEARER_TOKENS_JSON", "[1]")],
            "JSON object",
        ),
        (vec!["--graph", "noequals"], tokens.to_vec(), "ID=VALUE"),
        (
            vec!["--graph", &missing],
            tokens.to_vec(),
            "no graph opened",
        ),
        (
            vec!["--graph", &g, "--graph", &missing_h, "--require-all-graphs"],
            tokens.to_vec(),
            "--require-all-graphs",
        ),
        (
            vec!["--graph", &g],
            vec![
                ("OMNIGRAPH_SERVER_BEARER_TOKEN", "s"),
                ("OMNIGRAPH_PER_ACTOR_INFLIGHT_MAX", "lots"),
            ],
            "OMNIGRAPH_PER_ACTOR_INFLIGHT_MAX",
        ),
        // A rate of 0 once silently turned rate limiting off.
        (
            vec!["--graph", &g],
            vec![
                ("OMNIGRAPH_SERVER_BEARER_TOKEN", "s"),
                ("OMNIGRAPH_PER_ACTOR_RATE_PER_SEC", "0"),
            ],
            "unset it to turn rate limiting off",
        ),
        (
            vec!["--graph", &g],
            vec![
                ("OMNIGRAPH_SERVER_BEARER_TOKEN", "s"),
                ("OMNIGRAPH_COMMIT_CPU", "2"),
            ],
            "OMNIGRAPH_COMMIT_CPU=2: expected one or any",
        ),
        (
            vec!["--graph", &g],
            vec![
                ("OMNIGRAPH_SERVER_BEARER_TOKEN", "s"),
                ("OMNIGRAPH_THP", "yes"),
            ],
            "OMNIGRAPH_THP=yes: expected on or off",
        ),
        (
            vec!["--graph", &g],
            vec![
                ("OMNIGRAPH_SERVER_BEARER_TOKEN", "s"),
                ("OMNIGRAPH_COMMIT_IO", "sync"),
            ],
            "OMNIGRAPH_COMMIT_IO=sync: expected inline or pool",
        ),
    ];
    for (args, env, want) in cases {
        let (code, err) = refuse(tmp.path(), &args, &env);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains("refusing to start") && err.contains(want),
            "{args:?}: want {want:?} in {err}"
        );
    }
}

#[test]
fn stored_queries_follow_the_graphs_schema() {
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = people_graph(tmp.path(), "g");
    let qdir = tmp.path().join("queries");
    std::fs::create_dir(&qdir).expect("queries dir");
    write(
        &qdir,
        "ages.gq",
        "query total_age() { match { $p: Person } return { sum($p.age) as total } }\n",
    );
    let (g, q) = (format!("g={uri}"), format!("g={}", qdir.display()));
    let server = Server::start(
        tmp.path(),
        &["--unauthenticated", "--graph", &g, "--queries", &q],
        &[],
    );
    server
        .post("/graphs/g/load/ndjson", None, &people(0, 3))
        .expect(200);
    let invoke = || server.post("/graphs/g/queries/total_age", None, "{}");
    assert_eq!(invoke().expect(200).json()["rows"], json!([{ "total": 3 }]));
    let apply =
        |schema: &str| json!({"schema_source": schema, "allow_data_loss": true}).to_string();

    // Over HTTP, a schema that drops what a stored query reads is refused,
    // naming the query file; the schema stays as it was.
    let without_age = SCHEMA.replace("    age: I32?\n", "");
    let refused = server
        .post("/graphs/g/schema/apply", None, &apply(&without_age))
        .expect(400)
        .json();
    let msg = refused["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("stored queries") && msg.contains("ages.gq") && msg.contains("age"),
        "{refused}"
    );
    let shown = server.get("/graphs/g/schema", None).expect(200).json();
    assert!(
        shown["schema_source"]
            .as_str()
            .unwrap_or_default()
            .contains("age: I32?")
    );

    // An additive schema lands; the stored queries are re-checked against it
    // and keep answering.
    let with_nick = SCHEMA.replace("    age: I32?\n", "    age: I32?\n    nick: String?\n");
    let out = server
        .post("/graphs/g/schema/apply", None, &apply(&with_nick))
        .expect(200)
        .json();
    assert_eq!(out["applied"], json!(true), "{out}");
    assert_eq!(invoke().expect(200).json()["rows"], json!([{ "total": 3 }]));

    // Another process drops `age`: the server sees the new schema and
    // refuses to serve queries that no longer type check (409, the file
    // named) instead of running them against it; the catalog too.
    let dropped = write(
        tmp.path(),
        "dropped.pg",
        &with_nick.replace("    age: I32?\n", ""),
    );
    cli_ok(&[
        "schema",
        "apply",
        "--schema",
        &dropped,
        "--allow-data-loss",
        &uri,
    ]);
    let broken = invoke().expect(409).json();
    let msg = broken["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("changed outside this server") && msg.contains("ages.gq"),
        "{broken}"
    );
    assert_eq!(broken["code"], "conflict");
    server.get("/graphs/g/queries", None).expect(409);

    // Putting `age` back (nullable, so the stored rows read null) makes them
    // check again: served without a restart.
    let back = write(tmp.path(), "back.pg", &with_nick);
    cli_ok(&["schema", "apply", "--schema", &back, &uri]);
    let r = invoke().expect(200).json();
    assert_eq!(r["row_count"], json!(1), "{r}");
    let catalog = server.get("/graphs/g/queries", None).expect(200).json();
    assert_eq!(catalog["queries"][0]["name"], "total_age", "{catalog}");
    server.stop();
}
