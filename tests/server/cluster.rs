//! The cluster control plane end to end over the industry-intel cookbook's
//! `cluster.yaml`, with the real binaries: validate → import → plan →
//! apply → re-apply (no write) → `--cluster` serving under its policies →
//! a query edit → a schema edit → a graph removal gated by approval; the
//! state lock; a tampered blob.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::engine_support::cookbooks_dir;
use crate::support::{Server, refuse};

const TOKENS: &str =
    r#"{"act-reader":"tok-reader","act-analyst":"tok-analyst","act-admin":"tok-admin"}"#;

fn omnigraph(args: &[&str]) -> (Option<i32>, String, String) {
    omnigraph_with(args, &[])
}

fn omnigraph_with(args: &[&str], env: &[(String, String)]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args(args)
        .env("NO_COLOR", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .expect("run omnigraph");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = omnigraph(args);
    assert_eq!(code, Some(0), "{args:?}: {err}\n{out}");
    out
}

fn json_of(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

fn serve(dir: &Path, cfg: &str) -> Server {
    Server::start(
        dir,
        &["--cluster", cfg],
        &[("OMNIGRAPH_SERVER_BEARER_TOKENS_JSON", TOKENS)],
    )
}

#[test]
fn a_cluster_is_applied_served_changed_and_deleted() {
    let book = cookbooks_dir().join("industry-intel");
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg_dir = tmp.path().join("cfg");
    for f in ["cluster.yaml", "schema.pg"] {
        std::fs::create_dir_all(&cfg_dir).expect("mkdir");
        std::fs::copy(book.join(f), cfg_dir.join(f)).expect("copy");
    }
    copy_dir(&book.join("queries"), &cfg_dir.join("queries"));
    copy_dir(&book.join("policies"), &cfg_dir.join("policies"));
    let cfg = cfg_dir.to_str().expect("utf8");
    let state = cfg_dir.join("__cluster/state.json");

    ok(&["cluster", "validate", "--config", cfg]);
    let (code, _, err) = omnigraph(&["cluster", "apply", "--config", cfg]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("state_missing") && err.contains("cluster import"),
        "{err}"
    );
    let imp = json_of(&ok(&["cluster", "import", "--config", cfg, "--json"]));
    assert_eq!(imp["created"], true);
    assert_eq!(imp["observations"]["graph.spike"]["exists"], false);
    let plan = json_of(&ok(&["cluster", "plan", "--config", cfg, "--json"]));
    let creates: Vec<&str> = plan["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["action"] == "create")
        .filter_map(|c| c["resource"].as_str())
        .collect();
    for r in [
        "graph.spike",
        "schema.spike",
        "policy.intel",
        "policy.server",
        "query.spike.get_element",
    ] {
        assert!(creates.contains(&r), "{r} in {creates:?}");
    }

    let a = json_of(&ok(&[
        "cluster", "apply", "--config", cfg, "--json", "--as", "ops",
    ]));
    assert_eq!(
        (a["converged"].as_bool(), a["state_written"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(a["state_revision"], 1);
    let ledger = std::fs::read(&state).expect("ledger");
    let again = json_of(&ok(&["cluster", "apply", "--config", cfg, "--json"]));
    assert_eq!(again["state_written"], false);
    assert_eq!(again["changes"], json!([]));
    assert_eq!(
        std::fs::read(&state).expect("ledger"),
        ledger,
        "re-apply leaves the bytes"
    );
    let st = json_of(&ok(&["cluster", "status", "--config", cfg, "--json"]));
    assert_eq!(st["converged"], true);

    // Seed the applied graph, then serve the cluster.
    let root = cfg_dir.join("graphs/spike.omni");
    let seed = book.join("seed.jsonl");
    ok(&[
        "load",
        "--data",
        seed.to_str().expect("utf8"),
        "--mode",
        "overwrite",
        root.to_str().expect("utf8"),
    ]);
    let server = serve(tmp.path(), cfg);
    let (reader, admin) = (Some("tok-reader"), Some("tok-admin"));
    let listed = server
        .get("/graphs/spike/queries", reader)
        .expect(200)
        .json();
    let names: Vec<&str> = listed["queries"]
        .as_array()
        .expect("queries")
        .iter()
        .filter_map(|q| q["name"].as_str())
        .collect();
    assert!(names.contains(&"get_element"), "{names:?}");
    let slug = std::fs::read_to_string(&seed)
        .expect("seed")
        .lines()
        .find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["type"] == "Element").then(|| v["data"]["slug"].as_str().map(str::to_string))?
        })
        .expect("an element");
    let r = server
        .post(
            "/graphs/spike/queries/get_element",
            reader,
            &json!({"params": {"slug": slug}}).to_string(),
        )
        .expect(200)
        .json();
    assert_eq!(r["row_count"], 1, "{r}");
    server.get("/graphs", admin).expect(200);
    server.get("/graphs", reader).expect(403);
    server.stop();

    // A query edit: plan shows the update, apply publishes, a restart serves it.
    let elements = cfg_dir.join("queries/elements.gq");
    let mut text = std::fs::read_to_string(&elements).expect("elements.gq");
    text.push_str(
        "\nquery element_count() {\n    match { $e: Element }\n    return { count($e) as n }\n}\n",
    );
    std::fs::write(&elements, text).expect("edit");
    let plan = json_of(&ok(&["cluster", "plan", "--config", cfg, "--json"]));
    assert!(
        plan["changes"]
            .as_array()
            .expect("c")
            .iter()
            .any(|c| c["resource"] == "query.spike.element_count" && c["action"] == "create"),
        "{plan}"
    );
    let a = json_of(&ok(&["cluster", "apply", "--config", cfg, "--json"]));
    assert_eq!(a["converged"], true);
    let server = serve(tmp.path(), cfg);
    let r = server
        .post("/graphs/spike/queries/element_count", reader, "{}")
        .expect(200)
        .json();
    let n_elements = r["rows"][0]["n"].as_u64().expect("n");
    assert!(n_elements > 0);
    server.stop();

    // A nullable property: the schema migrates, the rows stay.
    let schema = cfg_dir.join("schema.pg");
    let src = std::fs::read_to_string(&schema).expect("schema");
    std::fs::write(
        &schema,
        src.replacen(
            "node Element {\n",
            "node Element {\n    nickname: String?\n",
            1,
        ),
    )
    .expect("edit schema");
    let a = json_of(&ok(&["cluster", "apply", "--config", cfg, "--json"]));
    assert_eq!(a["converged"], true, "{a}");
    let snap = json_of(&ok(&["snapshot", "--json", root.to_str().expect("utf8")]));
    let elements_now = snap["datasets"]
        .as_array()
        .expect("datasets")
        .iter()
        .find(|t| t["entity_kind"] == "node" && t["type_name"] == "Element")
        .and_then(|t| t["entity_count"].as_u64());
    assert_eq!(elements_now, Some(n_elements));
    let shown = ok(&["schema", "show", root.to_str().expect("utf8")]);
    assert!(shown.contains("nickname: String?"));

    // Out-of-band drift: someone drops the property on the live graph.
    // `refresh` records it, `plan` proposes migrating back, `apply` does.
    let oob = tmp.path().join("oob.pg");
    std::fs::write(&oob, &src).expect("oob schema");
    ok(&[
        "schema",
        "apply",
        "--schema",
        oob.to_str().expect("utf8"),
        "--allow-data-loss",
        root.to_str().expect("utf8"),
    ]);
    let r = json_of(&ok(&["cluster", "refresh", "--config", cfg, "--json"]));
    assert_eq!(r["drift"][0]["resource"], "schema.spike", "{r}");
    assert_eq!(r["drift"][0]["kind"], "schema_changed");
    let plan = json_of(&ok(&["cluster", "plan", "--config", cfg, "--json"]));
    assert!(
        plan["changes"]
            .as_array()
            .expect("c")
            .iter()
            .any(|c| c["resource"] == "schema.spike" && c["action"] == "update"),
        "{plan}"
    );
    let a = json_of(&ok(&["cluster", "apply", "--config", cfg, "--json"]));
    assert_eq!(a["converged"], true, "{a}");
    let shown = ok(&["schema", "show", root.to_str().expect("utf8")]);
    assert!(shown.contains("nickname: String?"), "migrated back");

    // A tampered blob: status finds it, the server refuses to boot, apply
    // republishes it.
    let blob = std::fs::read_dir(cfg_dir.join("__cluster/resources/policy/intel"))
        .expect("policy blobs")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .next()
        .expect("a blob");
    std::fs::write(&blob, "version: 1\nrules: []\n").expect("tamper");
    let st = json_of(&ok(&["cluster", "status", "--config", cfg, "--json"]));
    assert!(
        st["resources"]
            .as_array()
            .expect("r")
            .iter()
            .any(|r| r["resource"] == "policy.intel" && r["status"] == "tampered_blob"),
        "{st}"
    );
    let (code, err) = refuse(
        tmp.path(),
        &["--cluster", cfg],
        &[("OMNIGRAPH_SERVER_BEARER_TOKENS_JSON", TOKENS)],
    );
    assert_eq!(code, Some(2));
    assert!(err.contains("blob_tampered"), "{err}");
    let a = json_of(&ok(&["cluster", "apply", "--config", cfg, "--json"]));
    assert_eq!(a["changes"][0]["action"], "republish", "{a}");

    // The lock: a second writer fails cleanly; the ledger is intact.
    let before = std::fs::read(&state).expect("ledger");
    let store = omnigraph::cluster::apply::ClusterStore::open_uri(cfg).expect("store");
    let held = omnigraph::cluster::apply::lock(&store, "test").expect("lock");
    let (code, _, err) = omnigraph(&["cluster", "apply", "--config", cfg]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("state_lock_held") && err.contains(&held.id),
        "{err}"
    );
    let (code, _, err) = omnigraph(&["cluster", "force-unlock", "01NOTTHEID", "--config", cfg]);
    assert_eq!(code, Some(1));
    assert!(err.contains("lock_id_mismatch"), "{err}");
    assert_eq!(std::fs::read(&state).expect("ledger"), before);
    drop(held);

    // Removing the graph: blocked until approved, then deleted.
    let yaml = std::fs::read_to_string(cfg_dir.join("cluster.yaml")).expect("yaml");
    let without: String = yaml
        .replace(
            "graphs:\n  spike:\n    schema: schema.pg\n    queries: queries/\n",
            "graphs: {}\n",
        )
        .replace(
            "  intel:\n    file: policies/intel.policy.yaml\n    applies_to: [spike]\n",
            "",
        );
    std::fs::write(cfg_dir.join("cluster.yaml"), without).expect("edit yaml");
    let (code, out, _) = omnigraph(&["cluster", "apply", "--config", cfg, "--json"]);
    assert_eq!(code, Some(1));
    let a = json_of(&out);
    assert!(
        a["changes"]
            .as_array()
            .expect("c")
            .iter()
            .any(|c| c["resource"] == "graph.spike" && c["outcome"] == "blocked"),
        "{a}"
    );
    assert!(root.exists(), "nothing deleted without approval");
    ok(&[
        "cluster",
        "approve",
        "graph.spike",
        "--config",
        cfg,
        "--as",
        "ops",
    ]);
    let a = json_of(&ok(&["cluster", "apply", "--config", cfg, "--json"]));
    assert_eq!(a["converged"], true, "{a}");
    assert!(!root.exists(), "the approved delete removed the root");
    let l: Value = serde_json::from_slice(&std::fs::read(&state).expect("ledger")).expect("json");
    assert!(
        l["applied_revision"]["resources"]
            .get("graph.spike")
            .is_none()
    );
    assert_eq!(l["approval_records"].as_object().map(|o| o.len()), Some(1));
}

/// Two `cluster apply` processes at once. The first holds the state lock
/// while a `sleep` failpoint stalls it just before its ledger write; the
/// second, started while the lock is held, fails at once with
/// `state_lock_held` naming the holder's pid, and writes nothing. The first
/// then finishes; the ledger is one valid revision ahead and no lock is
/// left. Then pairs started at the same instant with no failpoint: each
/// either applies (a no-op) or fails cleanly on the lock; the ledger bytes
/// never change.
#[cfg(feature = "failpoints")]
#[test]
fn two_applies_at_once_one_holds_the_lock() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let book = cookbooks_dir().join("industry-intel");
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg_dir = tmp.path().join("cfg");
    std::fs::create_dir_all(&cfg_dir).expect("mkdir");
    for f in ["cluster.yaml", "schema.pg"] {
        std::fs::copy(book.join(f), cfg_dir.join(f)).expect("copy");
    }
    copy_dir(&book.join("queries"), &cfg_dir.join("queries"));
    copy_dir(&book.join("policies"), &cfg_dir.join("policies"));
    let cfg = cfg_dir.to_str().expect("utf8");
    let state = cfg_dir.join("__cluster/state.json");
    let lock = cfg_dir.join("__cluster/lock.json");
    ok(&["cluster", "import", "--config", cfg]);
    let before = json_of(&std::fs::read_to_string(&state).expect("ledger"));

    let apply = |failpoints: Option<&str>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_omnigraph"));
        c.args(["cluster", "apply", "--config", cfg, "--json"])
            .env("NO_COLOR", "1")
            .env_remove("FAILPOINTS")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(f) = failpoints {
            c.env("FAILPOINTS", f);
        }
        c.spawn().expect("spawn apply")
    };
    let first = apply(Some("cluster.ledger=sleep(4000)"));
    let first_pid = first.id();
    let started = Instant::now();
    while !lock.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first apply never took the lock"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = apply(None).wait_with_output().expect("second apply");
    let first = first.wait_with_output().expect("first apply");
    let err = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(
        err.contains("state_lock_held") && err.contains(&format!("pid {first_pid}")),
        "{err}"
    );
    assert_eq!(
        first.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let report = json_of(&String::from_utf8_lossy(&first.stdout));
    assert_eq!(report["converged"], true, "{report}");
    let after_bytes = std::fs::read(&state).expect("ledger");
    let after: Value = serde_json::from_slice(&after_bytes).expect("ledger is valid JSON");
    assert_eq!(
        after["state_revision"].as_u64(),
        before["state_revision"].as_u64().map(|r| r + 1),
        "exactly one writer advanced the ledger"
    );
    assert!(!lock.exists(), "the lock was released");

    for _ in 0..4 {
        let (a, b) = (apply(None), apply(None));
        for out in [a.wait_with_output(), b.wait_with_output()] {
            let out = out.expect("apply");
            let err = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => {
                    let r = json_of(&String::from_utf8_lossy(&out.stdout));
                    assert_eq!(r["state_written"], false, "{r}");
                }
                Some(1) => assert!(err.contains("state_lock_held"), "{err}"),
                other => panic!("apply exited {other:?}: {err}"),
            }
        }
        assert_eq!(std::fs::read(&state).expect("ledger"), after_bytes);
        assert!(!lock.exists(), "no lock left behind");
    }
}

/// A cluster whose `storage:` is `s3://…` (moto): import, apply and status
/// keep nothing local; `omnigraph-server --cluster s3://…` boots from the
/// bucket alone and serves the stored queries under the stored policies;
/// the state lock is create-if-absent in the bucket.
#[test]
fn a_cluster_on_s3_boots_from_the_bucket_alone() {
    let Some(s3) = crate::storage::s3() else {
        eprintln!("OMNIGRAPH_MOTO_PYTHON is not set: the s3 cluster test is skipped");
        return;
    };
    let book = cookbooks_dir().join("industry-intel");
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg_dir = tmp.path().join("cfg");
    std::fs::create_dir_all(&cfg_dir).expect("mkdir");
    std::fs::copy(book.join("schema.pg"), cfg_dir.join("schema.pg")).expect("copy");
    copy_dir(&book.join("queries"), &cfg_dir.join("queries"));
    copy_dir(&book.join("policies"), &cfg_dir.join("policies"));
    let storage = s3.root(tmp.path(), "cluster");
    let yaml = std::fs::read_to_string(book.join("cluster.yaml")).expect("yaml");
    assert!(yaml.contains("state:\n"), "{yaml}");
    std::fs::write(
        cfg_dir.join("cluster.yaml"),
        yaml.replacen("state:\n", &format!("storage: {storage}\nstate:\n"), 1),
    )
    .expect("write");
    let cfg = cfg_dir.to_str().expect("utf8");
    let env = s3.env();
    let ok = |args: &[&str]| {
        let (code, out, err) = omnigraph_with(args, &env);
        assert_eq!(code, Some(0), "{args:?}: {err}\n{out}");
        out
    };

    let imp = json_of(&ok(&["cluster", "import", "--config", cfg, "--json"]));
    assert_eq!(imp["created"], true, "{imp}");
    assert_eq!(
        imp["state_path"],
        format!("{storage}/__cluster/state.json"),
        "{imp}"
    );
    let a = json_of(&ok(&[
        "cluster", "apply", "--config", cfg, "--json", "--as", "ops",
    ]));
    assert_eq!(a["converged"], true, "{a}");
    let again = json_of(&ok(&["cluster", "apply", "--config", cfg, "--json"]));
    assert_eq!(again["state_written"], false, "{again}");
    let st = json_of(&ok(&["cluster", "status", "--config", cfg, "--json"]));
    assert_eq!(st["converged"], true, "{st}");
    let plan = json_of(&ok(&["cluster", "plan", "--config", cfg, "--json"]));
    assert_eq!(plan["changes"], json!([]), "{plan}");
    let local: Vec<String> = std::fs::read_dir(&cfg_dir)
        .expect("read_dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        !local.iter().any(|f| f == "__cluster" || f == "graphs"),
        "nothing of the cluster's state is local: {local:?}"
    );

    // Seed the graph in the bucket, then boot from the storage root.
    let root = format!("{storage}/graphs/spike.omni");
    let seed = book.join("seed.jsonl");
    ok(&[
        "load",
        "--data",
        seed.to_str().expect("utf8"),
        "--mode",
        "overwrite",
        "--yes",
        &root,
    ]);
    let mut server_env: Vec<(&str, &str)> =
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    server_env.push(("OMNIGRAPH_SERVER_BEARER_TOKENS_JSON", TOKENS));
    let server = Server::start(tmp.path(), &["--cluster", &storage], &server_env);
    let (reader, admin) = (Some("tok-reader"), Some("tok-admin"));
    let slug = std::fs::read_to_string(&seed)
        .expect("seed")
        .lines()
        .find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            (v["type"] == "Element").then(|| v["data"]["slug"].as_str().map(str::to_string))?
        })
        .expect("an element");
    let r = server
        .post(
            "/graphs/spike/queries/get_element",
            reader,
            &json!({"params": {"slug": slug}}).to_string(),
        )
        .expect(200)
        .json();
    assert_eq!(r["row_count"], 1, "{r}");
    server.get("/graphs", admin).expect(200);
    server.get("/graphs", reader).expect(403);
    server.stop();

    // The lock lives in the bucket: a second writer is refused, the
    // ledger is left alone.
    let store = omnigraph::cluster::apply::ClusterStore::open_uri(&storage).expect("store");
    let before = omnigraph::cluster::apply::read_ledger(&store)
        .expect("read")
        .expect("ledger")
        .bytes;
    let held = omnigraph::cluster::apply::lock(&store, "test").expect("lock");
    let (code, _, err) = omnigraph_with(&["cluster", "apply", "--config", cfg], &env);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("state_lock_held") && err.contains(&held.id),
        "{err}"
    );
    drop(held);
    let after = omnigraph::cluster::apply::read_ledger(&store)
        .expect("read")
        .expect("ledger")
        .bytes;
    assert_eq!(before, after);
    ok(&["cluster", "apply", "--config", cfg]);

    // A storage root with no cluster in it refuses to boot, naming the fix.
    let empty = s3.root(tmp.path(), "empty");
    let (code, err) = refuse(tmp.path(), &["--cluster", &empty], &server_env);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("state_missing") && err.contains("cluster import"),
        "{err}"
    );
}

/// `providers.embedding` and a graph's `embedding_provider`: validated
/// (inline keys and unknown names refused), applied as a resource bound
/// to the graph, and used by the `--cluster` server for
/// `nearest($v, "text")`; a profile whose `${ENV}` key is unset stops the
/// server at boot naming the variable.
#[test]
fn an_embedding_provider_is_applied_and_used_by_the_served_graph() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cfg_dir = tmp.path().join("cfg");
    std::fs::create_dir_all(&cfg_dir).expect("mkdir");
    std::fs::write(
        cfg_dir.join("schema.pg"),
        "node Doc {\n  slug: String @key\n  text: String\n  embedding: Vector(16) @embed(\"text\") @index\n}\n",
    )
    .expect("schema");
    let yaml = |graph_provider: &str, real_key: &str| {
        format!(
            "version: 1\nproviders:\n  embedding:\n    default:\n      kind: mock\n    real:\n      kind: openai\n      base_url: http://127.0.0.1:9/v1\n      api_key: {real_key}\ngraphs:\n  kb:\n    schema: schema.pg\n    embedding_provider: {graph_provider}\n"
        )
    };
    let cfg = cfg_dir.to_str().expect("utf8");
    let write = |y: String| std::fs::write(cfg_dir.join("cluster.yaml"), y).expect("yaml");

    // Refused: an inline key, an unknown provider.
    write(yaml("default", "sk-inline-secret"));
    let (code, out, _) = omnigraph(&["cluster", "validate", "--config", cfg, "--json"]);
    assert_eq!(code, Some(1));
    assert!(
        out.contains("inline_secret") && !out.contains("sk-inline-secret\""),
        "{out}"
    );
    write(yaml("nope", "${TEST_EMBED_KEY}"));
    let (code, out, _) = omnigraph(&["cluster", "validate", "--config", cfg, "--json"]);
    assert_eq!(code, Some(1));
    assert!(out.contains("unknown_provider"), "{out}");

    write(yaml("provider.embedding.default", "${TEST_EMBED_KEY}"));
    ok(&["cluster", "validate", "--config", cfg]);
    ok(&["cluster", "import", "--config", cfg]);
    ok(&["cluster", "apply", "--config", cfg, "--as", "ops"]);
    let ledger: Value = serde_json::from_slice(
        &std::fs::read(cfg_dir.join("__cluster/state.json")).expect("ledger"),
    )
    .expect("json");
    assert_eq!(
        ledger["applied_revision"]["resources"]["provider.embedding.default"]["applies_to"],
        json!(["kb"]),
        "{ledger}"
    );

    // Data loaded directly, vectors filled by the mock provider.
    let root = cfg_dir.join("graphs/kb.omni");
    let data = tmp.path().join("d.jsonl");
    std::fs::write(
        &data,
        [
            r#"{"type":"Doc","data":{"slug":"a","text":"sovereign ai infrastructure"}}"#,
            r#"{"type":"Doc","data":{"slug":"b","text":"weather report rain"}}"#,
        ]
        .join("\n"),
    )
    .expect("data");
    let (code, _, err) = omnigraph_with(
        &[
            "load",
            "--data",
            data.to_str().expect("utf8"),
            "--mode",
            "merge",
            root.to_str().expect("utf8"),
        ],
        &[("OMNIGRAPH_EMBED_PROVIDER".into(), "mock".into())],
    );
    assert_eq!(code, Some(0), "{err}");

    // The server embeds query text with the cluster's provider, though its
    // environment names none.
    let server = Server::start(
        tmp.path(),
        &["--cluster", cfg],
        &[("OMNIGRAPH_UNAUTHENTICATED", "1")],
    );
    let body = json!({
        "query": "query q($q: String) { match { $d: Doc } return { $d.slug } order { nearest($d.embedding, $q) } limit 1 }",
        "params": {"q": "rain weather"}
    })
    .to_string();
    let r = server
        .post("/graphs/kb/query", None, &body)
        .expect(200)
        .json();
    assert_eq!(r["rows"][0]["slug"], "b", "{r}");
    drop(server);

    // Bound to a profile whose key variable is unset: no boot.
    write(yaml("real", "${TEST_EMBED_KEY}"));
    ok(&["cluster", "apply", "--config", cfg, "--as", "ops"]);
    let (code, err) = refuse(
        tmp.path(),
        &["--cluster", cfg],
        &[("OMNIGRAPH_UNAUTHENTICATED", "1")],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("TEST_EMBED_KEY"), "{err}");
}
