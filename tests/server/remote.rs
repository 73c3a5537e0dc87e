//! The CLI in remote mode (`--server URL --graph ID`) against the real
//! server serving a root, beside the same verbs run embedded on that root:
//! the same `--json` (and csv/jsonl) output, the same exit code on the same
//! bad input, and one-line refusals with the server's code.

use std::process::Command;

use super::support::{Server, init_graph, write};

const SCHEMA: &str =
    "node Person {\n  name: String @key\n  age: I32?\n}\nedge Knows: Person -> Person\n";
const DATA: &str = "{\"type\":\"Person\",\"data\":{\"name\":\"Ada\",\"age\":36}}\n{\"type\":\"Person\",\"data\":{\"name\":\"Grace\",\"age\":45}}\n{\"edge\":\"Knows\",\"from\":\"Ada\",\"to\":\"Grace\",\"data\":{}}\n";
const READ: &str = "query people($min: I32) { match { $p: Person  $p.age >= $min } return { $p.name, $p.age } order { $p.name asc } }";
const ADD: &str = "query add($n: String, $a: I32) { insert Person { name: $n, age: $a } }";

/// Runs the CLI with `OMNIGRAPH_TOKEN=token` (none when `None`): (exit
/// code, stdout, stderr).
fn run(args: &[&str], token: Option<&str>) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_omnigraph"));
    // No operator files: the caller's own ~/.omnigraph stays out.
    c.args(args)
        .env("NO_COLOR", "1")
        .env(
            "OMNIGRAPH_HOME",
            std::env::temp_dir().join("omnigraph-test-no-home"),
        )
        .env_remove("OMNIGRAPH_TOKEN")
        .env_remove("OMNIGRAPH_BEARER_TOKEN")
        .env_remove("OMNIGRAPH_ACTOR");
    if let Some(t) = token {
        c.env("OMNIGRAPH_TOKEN", t);
    }
    let out = c.output().expect("run omnigraph");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str], token: Option<&str>) -> String {
    let (code, out, err) = run(args, token);
    assert_eq!(code, 0, "omnigraph {args:?}: {err}");
    out
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

#[test]
fn remote_verbs_match_embedded_ones() {
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let data = write(tmp.path(), "d.jsonl", DATA);
    let uri = init_graph(tmp.path(), "g", std::path::Path::new(&schema));
    let policy = write(
        tmp.path(),
        "policy.yaml",
        "version: 1\nrules:\n  - id: all\n    allow:\n      actors: \"*\"\n      actions: [read, change, export, invoke_query, schema_apply, branch_create, branch_delete, branch_merge]\n",
    );
    let stored = tmp.path().join("stored");
    std::fs::create_dir_all(&stored).expect("stored dir");
    std::fs::write(stored.join("q.gq"), format!("{READ}\n{ADD}\n")).expect("stored queries");
    let server_policy = write(
        tmp.path(),
        "server-policy.yaml",
        "version: 1\ngroups:\n  ops: [ada]\nrules:\n  - id: ops\n    allow:\n      actors: { group: ops }\n      actions: [graph_list]\n",
    );
    let server = Server::start(
        tmp.path(),
        &[
            "--graph",
            &format!("g={uri}"),
            "--policy",
            &format!("g={policy}"),
            "--server-policy",
            &server_policy,
            "--queries",
            &format!("g={}", stored.display()),
        ],
        &[("OMNIGRAPH_SERVER_BEARER_TOKENS_JSON", "{\"ada\": \"tok\"}")],
    );
    let url = format!("http://{}", server.addr);
    let remote = ["--server", url.as_str(), "--graph", "g"];
    let tok = Some("tok");
    let with = |args: &[&str], tail: &[&str]| -> Vec<String> {
        args.iter().chain(tail).map(|s| s.to_string()).collect()
    };

    // An overwrite load of a served graph is destructive: refused
    // without --yes when no terminal can ask (reference CLI, "Write
    // diagnostics & destructive confirmation"), nothing sent.
    let (code, _, err) = run(
        &strs(&with(
            &["load", "--data", &data, "--mode", "overwrite", "--json"],
            &remote,
        )),
        tok,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pass --yes"), "{err}");
    // With it, a load through the server; its echo names the served target.
    let (code, out, err) = run(
        &strs(&with(
            &[
                "load",
                "--data",
                &data,
                "--mode",
                "overwrite",
                "--json",
                "--yes",
            ],
            &remote,
        )),
        tok,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("(served, remote)"), "{err}");
    let load = json(&out);
    assert_eq!(load["total_entities"], 3, "{load}");
    assert_eq!(load["actor_id"], "ada", "{load}");

    // Reads: the same output embedded and remote, in every format that
    // carries no timing.
    for fmt in ["json", "jsonl", "csv", "kv", "table"] {
        let local = ok(
            &[
                "query",
                "-e",
                READ,
                "--params",
                "{\"min\": 40}",
                "--format",
                fmt,
                "--store",
                &uri,
            ],
            None,
        );
        let far = ok(
            &strs(&with(
                &[
                    "query",
                    "-e",
                    READ,
                    "--params",
                    "{\"min\": 40}",
                    "--format",
                    fmt,
                ],
                &remote,
            )),
            tok,
        );
        assert_eq!(local, far, "--format {fmt}");
    }
    let read = json(&ok(
        &strs(&with(
            &["query", "-e", READ, "--params", "{\"min\": 0}", "--json"],
            &remote,
        )),
        tok,
    ));
    assert_eq!(read["row_count"], 2, "{read}");
    assert_eq!(read["query_name"], "people");
    assert_eq!(read["target"]["branch"], "main");
    for verb in [
        vec!["snapshot", "--json"],
        vec!["commit", "list", "--json"],
        vec!["branch", "list", "--json"],
    ] {
        // The server's upkeep task may still publish an index or
        // compaction step after the writes above (a new manifest and table
        // version, no commit): compare once the two reads agree or the
        // upkeep has had 10 s to settle.
        let mut tries = 0;
        let (local, far) = loop {
            let local = json(&ok(&strs(&with(&verb, &["--store", &uri])), None));
            let far = json(&ok(&strs(&with(&verb, &remote)), tok));
            tries += 1;
            if local == far || tries >= 50 {
                break (local, far);
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        assert_eq!(local, far, "{verb:?}");
    }
    let head = json(&ok(
        &strs(&with(&["commit", "list", "--json"], &remote)),
        tok,
    ));
    let id = head["commits"][0]["graph_commit_id"]
        .as_str()
        .expect("id")
        .to_string();
    let shown = ok(
        &strs(&with(&["commit", "show", &id, "--json"], &remote)),
        tok,
    );
    assert_eq!(json(&shown), head["commits"][0]);

    // Writes on a branch whose name holds a slash (one path segment on
    // the wire), then a mutation, then the branch deleted.
    ok(
        &strs(&with(
            &["branch", "create", "review/new-hires", "--json"],
            &remote,
        )),
        tok,
    );
    let branches = json(&ok(
        &strs(&with(&["branch", "list", "--json"], &remote)),
        tok,
    ));
    assert_eq!(
        branches["branches"],
        serde_json::json!(["main", "review/new-hires"])
    );
    let change = json(&ok(
        &strs(&with(
            &[
                "mutate",
                "-e",
                ADD,
                "--params",
                "{\"n\": \"Linus\", \"a\": 54}",
                "--branch",
                "review/new-hires",
                "--json",
            ],
            &remote,
        )),
        tok,
    ));
    assert_eq!(change["affected_nodes"], 1, "{change}");
    assert_eq!(change["branch"], "review/new-hires");
    let on_branch = json(&ok(
        &[
            "query",
            "-e",
            READ,
            "--params",
            "{\"min\": 50}",
            "--branch",
            "review/new-hires",
            "--json",
            "--store",
            &uri,
        ],
        None,
    ));
    assert_eq!(on_branch["rows"][0]["name"], "Linus", "{on_branch}");
    ok(
        &strs(&with(
            &["branch", "delete", "review/new-hires", "--yes"],
            &remote,
        )),
        tok,
    );
    let branches = json(&ok(
        &strs(&with(&["branch", "list", "--json"], &["--store", &uri])),
        None,
    ));
    assert_eq!(branches["branches"], serde_json::json!(["main"]));

    // Stored queries by name (served only): the same rows as the same
    // query sent ad hoc; the verb asserts the kind.
    let by_name = ok(
        &strs(&with(
            &["query", "people", "--params", "{\"min\": 40}", "--json"],
            &remote,
        )),
        tok,
    );
    let ad_hoc = ok(
        &strs(&with(
            &["query", "-e", READ, "--params", "{\"min\": 40}", "--json"],
            &remote,
        )),
        tok,
    );
    assert_eq!(json(&by_name), json(&ad_hoc));
    let added = json(&ok(
        &strs(&with(
            &[
                "mutate",
                "add",
                "--params",
                "{\"n\": \"Edsger\", \"a\": 72}",
                "--json",
            ],
            &remote,
        )),
        tok,
    ));
    assert_eq!(added["affected_nodes"], 1, "{added}");
    let (code, _, err) = run(&strs(&with(&["query", "add"], &remote)), tok);
    assert_eq!(code, 1);
    assert!(err.contains("is a stored mutation"), "{err}");
    let (code, _, err) = run(&strs(&with(&["query", "peeple"], &remote)), tok);
    assert_eq!(code, 1);
    assert!(err.contains("people"), "did you mean: {err}");
    let (code, _, err) = run(&["query", "people", "--store", &uri], None);
    assert_eq!(code, 2);
    assert!(err.contains("--server"), "{err}");

    // Export streams the same NDJSON as the embedded export.
    let local = ok(&["export", &uri], None);
    let far = ok(&strs(&with(&["export"], &remote)), tok);
    assert_eq!(local, far);
    assert_eq!(far.lines().count(), 4, "{far}");

    // Schema: shown the same, applied through the server.
    assert_eq!(
        ok(&["schema", "show", &uri], None),
        ok(&strs(&with(&["schema", "show"], &remote)), tok)
    );
    let wider = write(
        tmp.path(),
        "wider.pg",
        &SCHEMA.replace("  age: I32?\n", "  age: I32?\n  email: String?\n"),
    );
    let (code, out, err) = run(
        &strs(&with(
            &["schema", "apply", "--schema", &wider, "--json"],
            &remote,
        )),
        tok,
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("(served, remote)"), "{err}");
    let applied = json(&out);
    assert_eq!(applied["applied"], true, "{applied}");
    assert_eq!(applied["actor_id"], "ada");
    assert!(ok(&["schema", "show", &uri], None).contains("email: String?"));

    // Branch delete's answer, embedded and remote.
    ok(&strs(&with(&["branch", "create", "tmp"], &remote)), tok);
    let far = json(&ok(
        &strs(&with(
            &["branch", "delete", "tmp", "--json", "--yes"],
            &remote,
        )),
        tok,
    ));
    ok(&strs(&with(&["branch", "create", "tmp"], &remote)), tok);
    let local = json(&ok(
        &[
            "branch", "delete", "tmp", "--json", "--as", "ada", "--store", &uri,
        ],
        None,
    ));
    assert_eq!(local, far);
    assert_eq!(far["name"], "tmp");

    // The server's graphs.
    let graphs = json(&ok(&["graphs", "list", "--server", &url, "--json"], tok));
    assert_eq!(graphs["graphs"][0]["graph_id"], "g", "{graphs}");

    // The same bad input, the same exit code: a query that does not check.
    let bad = "query q() { match { $p: Persn } return { $p.name } }";
    let (lc, _, _) = run(&["query", "-e", bad, "--store", &uri], None);
    let (rc, _, rerr) = run(&strs(&with(&["query", "-e", bad], &remote)), tok);
    assert_eq!((lc, rc), (1, 1), "{rerr}");
    assert!(rerr.contains("HTTP 400"), "{rerr}");
    // A missing parameter.
    let (lc, _, _) = run(&["query", "-e", READ, "--store", &uri], None);
    let (rc, _, rerr) = run(&strs(&with(&["query", "-e", READ], &remote)), tok);
    assert_eq!((lc, rc), (1, 1), "{rerr}");

    // Refusals: one line with the server's code.
    let (code, _, err) = run(&strs(&with(&["snapshot"], &remote)), None);
    assert_eq!(code, 1);
    assert!(
        err.trim().lines().count() == 1 && err.contains("unauthorized"),
        "{err}"
    );
    let (code, _, err) = run(&["snapshot", "--server", &url, "--graph", "nope"], tok);
    assert_eq!(code, 1);
    assert!(err.contains("not_found"), "{err}");
    // Flags that only an embedded write consumes, a positional URL, a
    // server that does not answer, a verb that needs storage.
    let (code, _, err) = run(
        &strs(&with(&["mutate", "-e", ADD, "--as", "someone"], &remote)),
        tok,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--as does not apply"), "{err}");
    let (code, _, err) = run(&["snapshot", &url], tok);
    assert_eq!(code, 2);
    assert!(err.contains("--server"), "{err}");
    let (code, _, err) = run(
        &["snapshot", "--server", "http://127.0.0.1:9", "--graph", "g"],
        tok,
    );
    assert_eq!(code, 2);
    assert!(err.contains("unreachable"), "{err}");
    let (code, _, err) = run(&strs(&with(&["repair"], &remote)), tok);
    assert_eq!(code, 2);
    assert!(err.contains("does not apply"), "{err}");
    let (code, _, err) = run(&["snapshot", "--server", "g.example", "--graph", "g"], tok);
    assert_eq!(code, 2);
    assert!(err.contains("neither an http(s):// URL"), "{err}");
}

/// Runs the CLI with `OMNIGRAPH_HOME=home`, `env` set and `stdin` fed:
/// (exit code, stdout, stderr).
fn run_home(
    args: &[&str],
    home: &std::path::Path,
    env: &[(&str, &str)],
    stdin: &str,
) -> (i32, String, String) {
    use std::io::Write;
    let mut c = Command::new(env!("CARGO_BIN_EXE_omnigraph"));
    c.args(args)
        .env("NO_COLOR", "1")
        .env("OMNIGRAPH_HOME", home)
        .env_remove("OMNIGRAPH_TOKEN")
        .env_remove("OMNIGRAPH_BEARER_TOKEN")
        .env_remove("OMNIGRAPH_TOKEN_LOCAL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("run omnigraph");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server named in the operator's `config.yaml`, its token kept by
/// `login` in a 0600 credentials file, a readable file refused with the
/// fix, `logout` removing the token; the keyed token also serves the
/// server's URL and comes from `OMNIGRAPH_TOKEN_<NAME>`.
#[cfg(unix)]
#[test]
fn named_servers_login_and_logout() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let uri = init_graph(tmp.path(), "g", std::path::Path::new(&schema));
    let server = Server::start(
        tmp.path(),
        &["--graph", &format!("g={uri}")],
        &[("OMNIGRAPH_SERVER_BEARER_TOKEN", "tok")],
    );
    let url = format!("http://{}", server.addr);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(
        home.join("config.yaml"),
        format!("operator:\n  actor: me\nservers:\n  local:\n    url: {url}\n"),
    )
    .expect("config");
    let snap = ["snapshot", "--server", "local", "--graph", "g", "--json"];

    // No token yet: the server refuses.
    let (code, _, err) = run_home(&snap, &home, &[], "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("unauthorized"), "{err}");
    // An unknown name, and login for a server the config does not name.
    let (code, _, err) = run_home(
        &["snapshot", "--server", "prod", "--graph", "g"],
        &home,
        &[],
        "",
    );
    assert_eq!(code, 2);
    assert!(err.contains("known: local"), "{err}");
    let (code, _, err) = run_home(&["login", "prod"], &home, &[], "tok\n");
    assert_eq!(code, 2);
    assert!(err.contains("no server `prod`"), "{err}");

    // login from stdin: a 0600 file; the named server and its URL work.
    let (code, _, err) = run_home(&["login", "local"], &home, &[], "tok\n");
    assert_eq!(code, 0, "{err}");
    let creds = home.join("credentials");
    let mode = std::fs::metadata(&creds)
        .expect("creds")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    assert!(
        !std::fs::read_to_string(home.join("config.yaml"))
            .expect("cfg")
            .contains("tok")
    );
    let (code, out, err) = run_home(&snap, &home, &[], "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["graph_branch"], "main");
    let (code, _, err) = run_home(
        &["snapshot", "--server", &url, "--graph", "g"],
        &home,
        &[],
        "",
    );
    assert_eq!(code, 0, "{err}");

    // A credentials file others may read is refused, with the fix.
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (code, _, err) = run_home(&snap, &home, &[], "");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("chmod 600"), "{err}");
    std::fs::set_permissions(&creds, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    // logout removes the token (twice is fine); the keyed variable works.
    let (code, _, err) = run_home(&["logout", "local"], &home, &[], "");
    assert_eq!(code, 0, "{err}");
    assert!(
        !std::fs::read_to_string(&creds)
            .expect("creds")
            .contains("tok")
    );
    let (code, _, _) = run_home(&["logout", "local"], &home, &[], "");
    assert_eq!(code, 0);
    let (code, _, err) = run_home(&snap, &home, &[], "");
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run_home(&snap, &home, &[("OMNIGRAPH_TOKEN_LOCAL", "tok")], "");
    assert_eq!(code, 0, "{err}");
    // A keyed token never goes to another server's URL.
    let (code, _, err) = run_home(
        &["snapshot", "--server", "http://127.0.0.1:9", "--graph", "g"],
        &home,
        &[("OMNIGRAPH_TOKEN_LOCAL", "tok")],
        "",
    );
    assert_eq!(code, 2, "{err}");
}

/// The reference quickstart (`docs/user/quickstart.md`), its commands as
/// written, on local files; then its branch flow again against a server
/// serving that graph, with `--server URL --graph ID` where the
/// quickstart addresses the storage.
#[test]
fn the_reference_quickstart_runs_as_written_locally_and_served() {
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path();
    write(
        d,
        "schema.pg",
        "node Person {\n  name: String\n  title: String?\n}\n",
    );
    write(
        d,
        "people.jsonl",
        "{\"type\":\"Person\",\"data\":{\"name\":\"Ada\",\"title\":\"Engineer\"}}\n{\"type\":\"Person\",\"data\":{\"name\":\"Grace\",\"title\":\"Admiral\"}}\n",
    );
    write(
        d,
        "new-hires.jsonl",
        "{\"type\":\"Person\",\"data\":{\"name\":\"Linus\",\"title\":\"Engineer\"}}\n",
    );
    write(
        d,
        "more-hires.jsonl",
        "{\"type\":\"Person\",\"data\":{\"name\":\"Barbara\",\"title\":\"Engineer\"}}\n",
    );
    write(
        d,
        "queries.gq",
        "query find_people($title: String) {\n  match { $p: Person { title: $title } }\n  return { $p.name }\n}\n",
    );
    let in_dir = |args: &[&str]| -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_omnigraph"))
            .args(args)
            .current_dir(d)
            .env("NO_COLOR", "1")
            .env("OMNIGRAPH_HOME", d.join("no-home"))
            .env("OMNIGRAPH_TOKEN", "tok")
            .output()
            .expect("run omnigraph");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ok_in = |args: &[&str]| -> String {
        let (code, out, err) = in_dir(args);
        assert_eq!(code, 0, "omnigraph {args:?}: {err}");
        out
    };
    let engineers = |out: &str| -> Vec<String> {
        let mut v: Vec<String> = out.lines().skip(1).map(|l| l.trim().to_string()).collect();
        v.sort();
        v
    };
    let find = [
        "query",
        "find_people",
        "--query",
        "queries.gq",
        "--params",
        "{\"title\":\"Engineer\"}",
        "--format",
        "table",
    ];
    ok_in(&["init", "--schema", "schema.pg", "graph.omni"]);
    ok_in(&[
        "load",
        "--data",
        "people.jsonl",
        "--mode",
        "overwrite",
        "graph.omni",
    ]);
    let q: Vec<&str> = find
        .iter()
        .copied()
        .chain(["--store", "graph.omni"])
        .collect();
    assert_eq!(engineers(&ok_in(&q)), ["Ada"]);
    ok_in(&[
        "branch",
        "create",
        "review/new-hires",
        "--store",
        "graph.omni",
    ]);
    ok_in(&[
        "load",
        "--data",
        "new-hires.jsonl",
        "--mode",
        "append",
        "--branch",
        "review/new-hires",
        "graph.omni",
    ]);
    ok_in(&[
        "branch",
        "merge",
        "review/new-hires",
        "--into",
        "main",
        "--store",
        "graph.omni",
    ]);
    assert_eq!(engineers(&ok_in(&q)), ["Ada", "Linus"]);

    // The same branch flow against a server serving the graph.
    let policy = write(
        d,
        "policy.yaml",
        "version: 1\nrules:\n  - id: all\n    allow:\n      actors: \"*\"\n      actions: [read, change, branch_create, branch_delete, branch_merge]\n",
    );
    let root = d.join("graph.omni").display().to_string();
    let server = Server::start(
        d,
        &[
            "--graph",
            &format!("qs={root}"),
            "--policy",
            &format!("qs={policy}"),
        ],
        &[("OMNIGRAPH_SERVER_BEARER_TOKEN", "tok")],
    );
    let url = format!("http://{}", server.addr);
    let served = ["--server", url.as_str(), "--graph", "qs"];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .chain(served.iter())
            .map(|s| s.to_string())
            .collect()
    };
    let run_served = |args: &[&str]| ok_in(&strs(&with(args)));
    run_served(&["branch", "create", "review/more-hires"]);
    run_served(&[
        "load",
        "--data",
        "more-hires.jsonl",
        "--mode",
        "append",
        "--branch",
        "review/more-hires",
    ]);
    run_served(&["branch", "merge", "review/more-hires", "--into", "main"]);
    assert_eq!(engineers(&run_served(&find)), ["Ada", "Barbara", "Linus"]);
    // What the server wrote, read from the storage.
    assert_eq!(engineers(&ok_in(&q)), ["Ada", "Barbara", "Linus"]);
}

/// Profiles and defaults of the operator's `config.yaml`: `--profile`,
/// `$OMNIGRAPH_PROFILE` and `defaults` pick the served scope when no
/// address is given, `--graph` overrides the profile's graph, an explicit
/// address wins, and `profile list|show` print them.
#[test]
fn profiles_and_defaults_pick_the_served_scope() {
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = write(tmp.path(), "s.pg", SCHEMA);
    let uri = init_graph(tmp.path(), "g", std::path::Path::new(&schema));
    let stored = tmp.path().join("stored");
    std::fs::create_dir_all(&stored).expect("stored dir");
    std::fs::write(stored.join("q.gq"), READ).expect("stored query");
    let policy = write(
        tmp.path(),
        "policy.yaml",
        "version: 1\nrules:\n  - id: all\n    allow:\n      actors: \"*\"\n      actions: [read, invoke_query]\n",
    );
    let server = Server::start(
        tmp.path(),
        &[
            "--graph",
            &format!("g={uri}"),
            "--queries",
            &format!("g={}", stored.display()),
            "--policy",
            &format!("g={policy}"),
        ],
        &[("OMNIGRAPH_SERVER_BEARER_TOKEN", "tok")],
    );
    let url = format!("http://{}", server.addr);
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).expect("home");
    std::fs::write(
        home.join("config.yaml"),
        format!(
            "servers:\n  local:\n    url: {url}\nprofiles:\n  dev: {{ server: local, default_graph: g }}\n  wrong: {{ server: local, default_graph: nope }}\n  disk: {{ store: {uri} }}\n"
        ),
    )
    .expect("config");
    let tok = [("OMNIGRAPH_TOKEN", "tok")];
    let (code, out, err) = run_home(&["snapshot", "--profile", "dev", "--json"], &home, &tok, "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["graph_branch"], "main");
    let env = [("OMNIGRAPH_TOKEN", "tok"), ("OMNIGRAPH_PROFILE", "dev")];
    let (code, _, err) = run_home(&["commit", "list"], &home, &env, "");
    assert_eq!(code, 0, "{err}");
    // The profile's graph is wrong; --graph overrides it.
    let (code, _, err) = run_home(&["snapshot", "--profile", "wrong"], &home, &tok, "");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not_found"), "{err}");
    let (code, _, err) = run_home(
        &["snapshot", "--profile", "wrong", "--graph", "g"],
        &home,
        &tok,
        "",
    );
    assert_eq!(code, 0, "{err}");
    // An explicit address wins over the profile from the environment.
    let (code, _, err) = run_home(&["snapshot", &uri], &home, &env, "");
    assert_eq!(code, 0, "{err}");
    // Unknown and store-bound profiles; --graph with no served scope.
    let (code, _, err) = run_home(&["snapshot", "--profile", "nope"], &home, &tok, "");
    assert_eq!(code, 2);
    assert!(err.contains("known: dev, disk, wrong"), "{err}");
    let (code, _, err) = run_home(&["snapshot", "--profile", "disk"], &home, &tok, "");
    assert_eq!(code, 2);
    assert!(err.contains("server-bound"), "{err}");
    let (code, _, err) = run_home(&["snapshot", "--graph", "g", &uri], &home, &tok, "");
    assert_eq!(code, 2, "{err}");
    // Listing.
    let (code, out, _) = run_home(&["profile", "list"], &home, &[], "");
    assert_eq!(code, 0);
    assert!(out.contains("dev  server local, graph g"), "{out}");
    let (code, out, _) = run_home(&["profile", "show", "dev", "--json"], &home, &[], "");
    assert_eq!(code, 0);
    assert_eq!(json(&out)["default_graph"], "g");
    // Defaults: no address at all reaches the default server's graph.
    // (Aliases: a stored query on a named server, positional args.)
    std::fs::write(
        home.join("config.yaml"),
        format!(
            "servers:\n  local:\n    url: {url}\naliases:\n  older:\n    server: local\n    graph: g\n    query: people\n    args: [min]\n    format: csv\n"
        ),
    )
    .expect("config");
    let (code, out, err) = run_home(&["alias", "older", "40"], &home, &tok, "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().next(), Some("name,age"), "{out}");
    let (code, _, err) = run_home(&["alias", "older", "1", "2"], &home, &tok, "");
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run_home(&["alias", "oldr"], &home, &tok, "");
    assert_eq!(code, 2);
    assert!(err.contains("older"), "{err}");
    std::fs::write(
        home.join("config.yaml"),
        format!(
            "servers:\n  local:\n    url: {url}\ndefaults:\n  server: local\n  default_graph: g\n"
        ),
    )
    .expect("config");
    let (code, out, err) = run_home(&["branch", "list", "--json"], &home, &tok, "");
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["branches"], serde_json::json!(["main"]));
}
