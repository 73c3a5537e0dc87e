//! The storage fault matrix (needs `--features failpoints`): every failpoint
//! of the commit protocol × every writer (load, mutate, branch merge, schema apply). For each: the failing call returns
//! an error; a read right after sees either all of the write or none of it;
//! once the fault clears, the same open handle's next write heals and
//! succeeds; every write acknowledged before is still readable; and heal left
//! exactly one audit record per interrupted write that needed one.
//!
//! Failpoints are process-global, so this binary holds one test that walks
//! the matrix serially.

use std::collections::BTreeMap;

use omnigraph::engine::load::LoadMode;
use omnigraph::engine::recovery::HealAction;
use omnigraph::engine::{BranchName, EngineError, Graph, ReadAt, TableKey};

/// A branch name the test knows is valid.
fn branch_name(name: &str) -> BranchName {
    BranchName::parse(name).expect("a valid branch name")
}
use omnigraph::query::compile_queries;
use serde_json::json;

#[path = "../common/storage.rs"]
mod storage;

const SCHEMA: &str = "node Item {\n  key: String @key\n  n: I64\n}\nedge Link: Item -> Item\n";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt")
}

/// A fresh graph under `dir` holding one acknowledged write, `ok0`.
fn graph_with_one_write(rt: &tokio::runtime::Runtime, dir: &std::path::Path, w: Writer) -> Graph {
    graph_with_one_write_on(rt, storage::Backend::Local, dir, w)
}

/// [`graph_with_one_write`] on `backend`.
fn graph_with_one_write_on(
    rt: &tokio::runtime::Runtime,
    backend: storage::Backend,
    dir: &std::path::Path,
    w: Writer,
) -> Graph {
    let g = rt
        .block_on(Graph::init(&backend.root(dir, "g"), "f.pg", SCHEMA))
        .expect("init");
    if let Writer::SchemaApply = w {
        rt.block_on(load_triple(&g, "base", "main"))
            .expect("rows to migrate");
    }
    if let Writer::Merge = w {
        // Every write the matrix makes is a branch merged into main; main
        // moves after they fork, so each merge is a three-way one.
        rt.block_on(async {
            for tag in ["ok0", "pending", "bad", "ok1"] {
                g.create_branch(&branch_name(tag), "main", "faults").await?;
                load_triple(&g, tag, tag).await?;
            }
            load_triple(&g, "base", "main").await
        })
        .expect("branches to merge");
    }
    rt.block_on(write(&g, w, "ok0")).expect("first write");
    g
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Writer {
    Load,
    Mutate,
    Merge,
    /// Each write replaces the previous tag's properties on `Item` and
    /// `Link` with `p_{tag}` / `q_{tag}`: both tables are rewritten.
    SchemaApply,
}

/// The schema a `SchemaApply` write of `tag` applies.
fn schema_of(tag: &str) -> String {
    format!(
        "node Item {{\n  key: String @key\n  n: I64\n  p_{tag}: I64?\n}}\nedge Link: Item -> Item {{\n  q_{tag}: I64?\n}}\n"
    )
}

/// Whether write `tag` is visible: its rows for data writers; for schema
/// writers, a commit on main's history whose schema has `p_{tag}`.
async fn landed(g: &Graph, w: Writer, seen: &BTreeMap<String, (usize, usize)>, tag: &str) -> bool {
    if w != Writer::SchemaApply {
        return seen.contains_key(tag);
    }
    for c in g.commits("main").await.expect("commits") {
        let cat = g
            .catalog_at(&ReadAt::Commit(c.id.clone()))
            .await
            .expect("schema at commit");
        if cat
            .node("Item")
            .is_some_and(|n| n.properties.iter().any(|p| p.name == format!("p_{tag}")))
        {
            return true;
        }
    }
    false
}

/// Loads the nodes `{tag}-a`, `{tag}-b` and a link between them.
async fn load_triple(g: &Graph, tag: &str, branch: &str) -> Result<(), EngineError> {
    let data = format!(
        "{{\"type\":\"Item\",\"data\":{{\"key\":\"{tag}-a\",\"n\":1}}}}\n{{\"type\":\"Item\",\"data\":{{\"key\":\"{tag}-b\",\"n\":2}}}}\n{{\"edge\":\"Link\",\"from\":\"{tag}-a\",\"to\":\"{tag}-b\"}}\n"
    );
    g.load(
        std::io::Cursor::new(data.into_bytes()),
        LoadMode::Append,
        branch,
        None,
        "faults",
    )
    .await
    .map(|_| ())
}

/// One write of `tag`: two nodes and one edge (two tables).
async fn write(g: &Graph, w: Writer, tag: &str) -> Result<(), EngineError> {
    match w {
        Writer::Load => load_triple(g, tag, "main").await,
        Writer::Merge => g.merge(tag, "main", "faults", false).await.map(|_| ()),
        Writer::SchemaApply => g
            .apply_schema("f.pg", &schema_of(tag), true, "faults")
            .await
            .map(|_| ()),
        Writer::Mutate => {
            let src = "query m($a: String, $b: String) {
                insert Item { key: $a, n: 1 }
                insert Item { key: $b, n: 2 }
                insert Link { from: $a, to: $b }
            }";
            let compiled = compile_queries(&g.catalog(), src);
            assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
            let q = compiled.query("m").expect("m");
            g.mutate(
                q,
                &json!({"a": format!("{tag}-a"), "b": format!("{tag}-b")}),
                "main",
                "faults",
            )
            .await
            .map(|_| ())
        }
    }
}

/// Which tags are visible, each with (nodes, edges) counted from its rows.
async fn visible(g: &Graph) -> BTreeMap<String, (usize, usize)> {
    let compiled = compile_queries(
        &g.catalog(),
        "query n() { match { $a: Item } return { $a.key } }
         query e() { match { $a: Item  $a link $b } return { $a.key } }",
    );
    let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (name, edge) in [("n", false), ("e", true)] {
        let r = g
            .query(
                compiled.query(name).expect("q"),
                &serde_json::Value::Null,
                &ReadAt::Branch("main".into()),
            )
            .await
            .expect("read");
        for row in r.rows {
            let key = row["key"].as_str().expect("key");
            let tag = key.rsplit_once('-').map_or(key, |(t, _)| t).to_string();
            let e = out.entry(tag).or_default();
            if edge {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        }
    }
    out
}

fn assert_whole(seen: &BTreeMap<String, (usize, usize)>, when: &str) {
    for (tag, c) in seen {
        assert_eq!(*c, (2, 1), "{when}: write {tag} is partly visible: {c:?}");
    }
}

/// A matrix row: the failpoint, its `fail` action, whether the failed write
/// may become visible (its tables all committed), and the heal it leaves.
struct Case {
    point: &'static str,
    action: &'static str,
    /// Arm `publish.before` first, so heal has a sidecar to work on.
    pending_first: bool,
    /// Expected audit action for the failed write (None: nothing to heal).
    heal: Option<HealAction>,
}

const CASES: &[Case] = &[
    Case {
        point: "sidecar.write",
        action: "return",
        pending_first: false,
        heal: None,
    },
    Case {
        point: "table.commit",
        action: "return",
        pending_first: false,
        heal: Some(HealAction::RolledBack),
    },
    // The second table's commit fails after the first committed.
    Case {
        point: "table.commit",
        action: "1*off->return",
        pending_first: false,
        heal: Some(HealAction::RolledBack),
    },
    Case {
        point: "publish.before",
        action: "return",
        pending_first: false,
        heal: Some(HealAction::RolledForward),
    },
    Case {
        point: "publish.after",
        action: "return",
        pending_first: false,
        heal: Some(HealAction::Retired),
    },
    Case {
        point: "sidecar.delete",
        action: "return",
        pending_first: false,
        heal: Some(HealAction::Retired),
    },
    // `sidecar.list` with nothing pending is no row: a write lists the
    // sidecars only when a heal is due (the handle is new, or a commit met
    // something unexpected), so with none due it does not fail.
    // Heal itself fails: rolling forward a pending write, then its audit.
    Case {
        point: "audit.append",
        action: "return",
        pending_first: true,
        heal: Some(HealAction::RolledForward),
    },
    Case {
        point: "sidecar.list",
        action: "return",
        pending_first: true,
        heal: Some(HealAction::RolledForward),
    },
];

#[test]
fn every_failpoint_times_every_writer() {
    let scenario = fail::FailScenario::setup();
    let rt = runtime();
    let mut rows = 0;
    let backends = storage::backends();
    for (backend, writer) in backends.iter().copied().flat_map(|b| {
        [
            Writer::Load,
            Writer::Mutate,
            Writer::Merge,
            Writer::SchemaApply,
        ]
        .map(|w| (b, w))
    }) {
        for case in CASES {
            let label = format!("{backend}: {writer:?} × {} ({})", case.point, case.action);
            let tmp = tempfile::tempdir().expect("tmp");
            let g = graph_with_one_write_on(&rt, backend, tmp.path(), writer);
            let mut acked = vec!["ok0".to_string()];
            if case.pending_first {
                fail::cfg("publish.before", "return").expect("cfg");
                assert!(
                    rt.block_on(write(&g, writer, "pending")).is_err(),
                    "{label}"
                );
                fail::remove("publish.before");
            }
            fail::cfg(case.point, case.action).expect("cfg");
            let failed = rt.block_on(write(&g, writer, "bad"));
            let err = failed.expect_err(&label).to_string();
            // A read right after the failure: whole writes only.
            let seen = rt.block_on(visible(&g));
            assert_whole(&seen, &format!("{label}, after the fault ({err})"));
            for a in &acked {
                assert!(
                    rt.block_on(landed(&g, writer, &seen, a)),
                    "{label}: acknowledged {a} missing"
                );
            }
            fail::remove(case.point);
            // The same handle's next write heals and succeeds.
            rt.block_on(write(&g, writer, "ok1"))
                .unwrap_or_else(|e| panic!("{label}: write after the fault: {e}"));
            acked.push("ok1".into());
            let seen = rt.block_on(visible(&g));
            assert_whole(&seen, &format!("{label}, after heal"));
            for a in &acked {
                assert!(
                    rt.block_on(landed(&g, writer, &seen, a)),
                    "{label}: acknowledged {a} missing after heal"
                );
            }
            if writer == Writer::SchemaApply {
                // The handle reads with the schema of the last apply.
                let props: Vec<String> = g
                    .catalog()
                    .node("Item")
                    .map(|n| n.properties.iter().map(|p| p.name.clone()).collect())
                    .unwrap_or_default();
                assert!(props.contains(&"p_ok1".to_string()), "{label}: {props:?}");
                assert_eq!(seen.get("base"), Some(&(2, 1)), "{label}: rows kept");
            }
            let audits = rt.block_on(g.audit_records()).expect("audit");
            let expect: Vec<HealAction> = case.heal.into_iter().collect();
            let got: Vec<HealAction> = audits.iter().map(|a| a.action).collect();
            assert_eq!(got, expect, "{label}: audit records {audits:#?}");
            // Rolled-forward or retired writes are visible; rolled back are not.
            let bad_visible = rt.block_on(landed(&g, writer, &seen, "bad"));
            let bad_expected = matches!(
                case.heal,
                Some(HealAction::RolledForward | HealAction::Retired)
            ) && !case.pending_first;
            assert_eq!(
                bad_visible, bad_expected,
                "{label}: failed write visible = {bad_visible}"
            );
            if writer == Writer::Merge && bad_expected {
                // A rolled-forward or retired merge keeps both parents.
                let commits = rt.block_on(g.commits("main")).expect("commits");
                let merged = commits
                    .iter()
                    .find(|c| c.message.starts_with("merge bad into main"))
                    .unwrap_or_else(|| panic!("{label}: no merge commit"));
                assert_eq!(merged.parents.len(), 2, "{label}: {merged:?}");
            }
            if case.pending_first {
                assert!(
                    rt.block_on(landed(&g, writer, &seen, "pending")),
                    "{label}: the rolled-forward write is missing"
                );
            }
            // Nothing is left pending.
            assert!(
                rt.block_on(g.recover("check")).expect("heal").is_empty(),
                "{label}"
            );
            rows += 1;
        }
    }
    assert_eq!(rows, backends.len() * 4 * CASES.len());
    scenario.teardown();
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args(args)
        .output()
        .expect("run omnigraph");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sidecar_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(root.join("_graph/__recovery"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Uncovered drift (a sidecar lost after its tables moved) blocks writes
/// with advice naming `omnigraph repair`; the CLI previews it, then
/// publishes it with `--confirm`, audited; writes work again. A corrupt
/// sidecar is refused loudly by writes, kept on disk, and reads still work.
#[test]
fn drift_is_refused_until_repair_and_a_corrupt_sidecar_is_kept() {
    let scenario = fail::FailScenario::setup();
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("g");
    let uri = root.to_str().expect("utf8").to_string();
    let g = rt
        .block_on(Graph::init(&uri, "f.pg", SCHEMA))
        .expect("init");
    rt.block_on(write(&g, Writer::Load, "ok0")).expect("write");

    // Tables move, the publish fails, and the sidecar is lost.
    fail::cfg("publish.before", "return").expect("cfg");
    assert!(rt.block_on(write(&g, Writer::Load, "lost")).is_err());
    fail::remove("publish.before");
    let files = sidecar_files(&root);
    assert_eq!(files.len(), 1, "{files:?}");
    std::fs::remove_file(&files[0]).expect("remove sidecar");

    let err = rt
        .block_on(write(&g, Writer::Load, "next"))
        .expect_err("drift must block");
    let msg = err.to_string();
    assert!(matches!(err, EngineError::Drift { .. }), "{msg}");
    assert!(msg.contains("omnigraph repair"), "{msg}");

    let (code, out, err) = cli(&["repair", &uri]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("drift:") && out.contains("--confirm"), "{out}");
    assert!(
        !rt.block_on(visible(&g)).contains_key("lost"),
        "preview must not publish"
    );
    let (code, out, err) = cli(&["repair", "--confirm", "--as", "ops", &uri]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("published commit"), "{out}");
    // The drifted versions (the lost write, whole) are published now.
    let seen = rt.block_on(visible(&g));
    assert_whole(&seen, "after repair");
    assert!(
        seen.contains_key("lost") && seen.contains_key("ok0"),
        "{seen:?}"
    );
    let audits = rt.block_on(g.audit_records()).expect("audit");
    assert_eq!(audits.len(), 1, "{audits:#?}");
    assert_eq!(audits[0].healed_by, "ops");
    let (code, out, _) = cli(&["repair", &uri]);
    assert_eq!(code, 0);
    assert!(out.contains("no drift"), "{out}");
    rt.block_on(write(&g, Writer::Load, "next"))
        .expect("write after repair");

    // A corrupt sidecar: writes refuse, reads work, the file stays. A
    // handle heals (and so meets the sidecar) when it opens and after a
    // commit met something unexpected, not at every write: a new one.
    let bad = root.join("_graph/__recovery/01BADBADBADBADBADBADBADBAD.json");
    std::fs::create_dir_all(bad.parent().expect("dir")).expect("mkdir");
    std::fs::write(&bad, b"{ not json").expect("write");
    let g = rt
        .block_on(Graph::open(root.to_str().expect("utf8")))
        .expect("open");
    let err = rt
        .block_on(write(&g, Writer::Mutate, "blocked"))
        .expect_err("refused");
    assert!(matches!(err, EngineError::CorruptSidecar { .. }), "{err}");
    assert!(err.to_string().contains("kept for inspection"), "{err}");
    assert!(bad.exists());
    assert!(
        rt.block_on(visible(&g)).contains_key("next"),
        "reads still work"
    );
    let one = root.with_file_name("one.jsonl");
    std::fs::write(
        &one,
        "{\"type\":\"Item\",\"data\":{\"key\":\"cli-a\",\"n\":1}}\n",
    )
    .expect("data");
    let (code, _, stderr) = cli(&[
        "load",
        "--mode",
        "append",
        "--data",
        one.to_str().expect("utf8"),
        &uri,
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("unreadable"), "{stderr}");
    std::fs::remove_file(&bad).expect("remove");
    rt.block_on(write(&g, Writer::Mutate, "after"))
        .expect("write after removing it");
    scenario.teardown();
}

/// A write interrupted on a branch that is then deleted: heal discards its
/// sidecar (one audit record) and the main line is untouched.
#[test]
fn an_interrupted_write_on_a_deleted_branch_is_discarded() {
    let scenario = fail::FailScenario::setup();
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let g = graph_with_one_write(&rt, tmp.path(), Writer::Load);
    rt.block_on(g.create_branch(&branch_name("dev"), "main", "test"))
        .expect("branch");
    fail::cfg("publish.before", "return").expect("cfg");
    let data = "{\"type\":\"Item\",\"data\":{\"key\":\"dev-a\",\"n\":1}}\n";
    let r = rt.block_on(g.load(
        std::io::Cursor::new(data.as_bytes().to_vec()),
        LoadMode::Append,
        "dev",
        None,
        "faults",
    ));
    assert!(r.is_err());
    fail::remove("publish.before");
    rt.block_on(g.delete_branch("dev", "test"))
        .expect("delete branch");
    let healed = rt.block_on(g.recover("ops")).expect("recover");
    assert_eq!(
        healed.iter().map(|(_, a)| *a).collect::<Vec<_>>(),
        [HealAction::Discarded]
    );
    let audits = rt.block_on(g.audit_records()).expect("audit");
    assert_eq!(audits.len(), 1);
    assert_eq!(audits[0].healed_by, "ops");
    assert_eq!(audits[0].write.branch, "dev");
    let seen = rt.block_on(visible(&g));
    assert_eq!(seen.keys().cloned().collect::<Vec<_>>(), ["ok0"]);
    rt.block_on(write(&g, Writer::Mutate, "ok1"))
        .expect("write after");
    scenario.teardown();
}

/// A cluster apply interrupted after its payload phase (graph created or
/// migrated, blobs written) and before the ledger write: the ledger is
/// untouched, the intent survives, and a re-run rolls it forward with one
/// recovery record and converges; acknowledged rows are kept.
#[test]
fn cluster_apply_interrupted_before_the_ledger_converges_on_rerun() {
    use omnigraph::cluster::apply as ca;
    let scenario = fail::FailScenario::setup();
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("queries")).expect("mkdir");
    std::fs::write(
        dir.join("cluster.yaml"),
        "version: 1\ngraphs:\n  g:\n    schema: schema.pg\n    queries: queries/\n",
    )
    .expect("yaml");
    std::fs::write(dir.join("schema.pg"), SCHEMA).expect("schema");
    std::fs::write(
        dir.join("queries/q.gq"),
        "query items() { match { $a: Item } return { $a.key } }\n",
    )
    .expect("query");
    ca::import(dir).expect("import");
    let state = dir.join("__cluster/state.json");
    let intents = || {
        std::fs::read_dir(dir.join("__cluster/recoveries"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let ledger0 = std::fs::read(&state).expect("ledger");

    // Create: the graph is made, the ledger write fails.
    fail::cfg("cluster.ledger", "return").expect("cfg");
    let e = ca::apply(dir, "ops").expect_err("fault");
    assert_eq!(e.code, "fault");
    fail::remove("cluster.ledger");
    assert_eq!(
        std::fs::read(&state).expect("ledger"),
        ledger0,
        "ledger untouched"
    );
    assert_eq!(intents(), 1);
    let store = ca::ClusterStore::open_uri(dir.to_str().expect("utf8")).expect("store");
    let root = store.graph_uri("g");
    let g = rt.block_on(Graph::open(&root)).expect("the graph exists");
    rt.block_on(load_triple(&g, "acked", "main"))
        .expect("a write");
    let r = ca::apply(dir, "ops").expect("re-run");
    assert!(r.converged, "{:?}", r.changes);
    assert!(
        r.changes.iter().any(|c| c.action == "recover"
            && c.message
                .as_deref()
                .unwrap_or("")
                .starts_with("rolled_forward")),
        "{:?}",
        r.changes
    );
    assert_eq!(intents(), 0);
    let l = ca::read_ledger(&store)
        .expect("read")
        .expect("ledger")
        .ledger;
    assert_eq!(l.recovery_records.len(), 1);
    assert!(rt.block_on(visible(&g)).contains_key("acked"));

    // A schema change: migrated, then the ledger write fails.
    std::fs::write(
        dir.join("schema.pg"),
        SCHEMA.replace("  n: I64\n", "  n: I64\n  note: String?\n"),
    )
    .expect("schema");
    fail::cfg("cluster.ledger", "return").expect("cfg");
    assert!(ca::apply(dir, "ops").is_err());
    fail::remove("cluster.ledger");
    assert_eq!(intents(), 1);
    let r = ca::apply(dir, "ops").expect("re-run");
    assert!(r.converged, "{:?}", r.changes);
    assert_eq!(intents(), 0);
    let l = ca::read_ledger(&store)
        .expect("read")
        .expect("ledger")
        .ledger;
    assert_eq!(l.recovery_records.len(), 2);
    let g = rt.block_on(Graph::open(&root)).expect("open");
    assert!(g.schema_source().contains("note: String?"));
    assert_eq!(rt.block_on(visible(&g)).get("acked"), Some(&(2, 1)));
    // Converged: a further apply writes nothing.
    assert!(!ca::apply(dir, "ops").expect("noop").state_written);
    scenario.teardown();
}

/// Group commit under faults: two prepared mutations, each inserting an
/// `Item` and a `Tag` (two tables, nothing read, so they share a group),
/// committed as one group. A failure between the group's table commits or
/// around its publish leaves neither write visible or both (never one,
/// never half of one), and the next write heals the group in one step.
#[test]
fn a_group_commit_interrupted_anywhere_stays_whole() {
    use omnigraph::engine::Prepared;
    const TWO: &str = "node Item {\n  key: String @key\n}\nnode Tag {\n  key: String @key\n}\n";
    const QUERIES: &str = "
        query m($k: String) { insert Item { key: $k } insert Tag { key: $k } }
        query items() { match { $a: Item } return { $a.key } }
        query tags() { match { $t: Tag } return { $t.key } }";
    let scenario = fail::FailScenario::setup();
    let rt = runtime();
    // Per key: (items, tags) visible on main.
    async fn seen(g: &Graph) -> BTreeMap<String, (usize, usize)> {
        let compiled = compile_queries(&g.catalog(), QUERIES);
        let mut out: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (name, tag) in [("items", false), ("tags", true)] {
            let r = g
                .query(
                    compiled.query(name).expect("q"),
                    &serde_json::Value::Null,
                    &ReadAt::Branch("main".into()),
                )
                .await
                .expect("read");
            for row in r.rows {
                let k = row["key"].as_str().expect("key").to_string();
                let e = out.entry(k).or_default();
                if tag {
                    e.1 += 1;
                } else {
                    e.0 += 1;
                }
            }
        }
        out
    }
    // (failpoint, action, both visible after heal, the heal recorded)
    let cases = [
        // The group's second table commit (the first member's `Tag`).
        (
            "table.commit",
            "1*off->return",
            false,
            HealAction::RolledBack,
        ),
        // Its last table commit (the second member's `Tag`).
        (
            "table.commit",
            "3*off->return",
            false,
            HealAction::RolledBack,
        ),
        ("publish.before", "return", true, HealAction::RolledForward),
        ("publish.after", "return", true, HealAction::Retired),
    ];
    for (point, action, after, heal) in cases {
        let label = format!("group × {point} ({action})");
        let tmp = tempfile::tempdir().expect("tmp");
        let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
        rt.block_on(async {
            let g = Graph::init(&uri, "two.pg", TWO).await.expect("init");
            let compiled = compile_queries(&g.catalog(), QUERIES);
            let q = compiled.query("m").expect("m");
            g.mutate(q, &json!({"k": "ok0"}), "main", "faults")
                .await
                .expect("first write");
            let mut writes = Vec::new();
            for k in ["g1", "g2"] {
                match g
                    .prepare_mutation(q, &json!({"k": k}), "main", k)
                    .await
                    .expect("prepare")
                {
                    Prepared::Write(w) => writes.push(w),
                    Prepared::Nothing(_) => panic!("{label}: nothing to write"),
                }
            }
            fail::cfg(point, action).expect("cfg");
            let turn = g.begin_write("faults").await.expect("turn");
            let answers = g.commit_group_here(writes).await;
            drop(turn);
            fail::remove(point);
            assert!(answers.iter().all(|a| a.is_err()), "{label}: {answers:?}");
            let now = seen(&g).await;
            assert!(
                now.values().all(|c| *c == (1, 1)),
                "{label}: half a write: {now:?}"
            );
            assert_eq!(
                now.contains_key("g1"),
                now.contains_key("g2"),
                "{label}: {now:?}"
            );
            assert!(
                now.contains_key("ok0"),
                "{label}: acknowledged write missing"
            );
            // The next write heals the group as one.
            g.mutate(q, &json!({"k": "ok1"}), "main", "faults")
                .await
                .expect("next write");
            let now = seen(&g).await;
            assert!(
                now.values().all(|c| *c == (1, 1)),
                "{label}: after heal: {now:?}"
            );
            assert_eq!(now.contains_key("g1"), after, "{label}: {now:?}");
            assert_eq!(now.contains_key("g2"), after, "{label}: {now:?}");
            assert!(
                now.contains_key("ok1") && now.contains_key("ok0"),
                "{label}"
            );
            let audits = g.audit_records().await.expect("audit");
            let got: Vec<HealAction> = audits.iter().map(|a| a.action).collect();
            assert_eq!(got, vec![heal], "{label}: {audits:#?}");
            if heal == HealAction::Retired {
                // Published before the fault: each write kept its commit.
                let commits = g.commits("main").await.expect("commits");
                assert!(commits.iter().any(|c| c.actor == "g1"), "{label}");
                assert!(commits.iter().any(|c| c.actor == "g2"), "{label}");
            }
            assert!(
                g.recover("check").await.expect("heal").is_empty(),
                "{label}"
            );
        });
    }
    scenario.teardown();
}

/// An upkeep step interrupted after its table commit (failpoint
/// `upkeep.publish`, docs/architecture.md "Upkeep") leaves its sidecar:
/// heal rolls the table back to the published version, no row changes,
/// writes go on, and the next upkeep step catches up.
/// A graph at `root` with background upkeep, twelve writes whose tables
/// want upkeep, and one upkeep step that failed after its table commit
/// (failpoint `upkeep.publish`); with what was visible before it.
fn upkeep_interrupted_at_publish(
    rt: &tokio::runtime::Runtime,
    root: &std::path::Path,
) -> (Graph, BTreeMap<String, (usize, usize)>) {
    let g = rt
        .block_on(Graph::init(root.to_str().expect("utf8"), "f.pg", SCHEMA))
        .expect("init")
        .with_background_upkeep();
    for i in 0..12 {
        rt.block_on(load_triple(&g, &format!("w{i:02}"), "main"))
            .expect("write");
    }
    let before = rt.block_on(visible(&g));
    assert_eq!(before.len(), 12);
    assert!(g.upkeep_pending() >= 2, "both tables want upkeep");
    fail::cfg("upkeep.publish", "return").expect("cfg");
    let r = rt.block_on(g.upkeep_once());
    assert!(r.is_err(), "{r:?}");
    fail::remove("upkeep.publish");
    (g, before)
}

#[test]
fn an_interrupted_upkeep_is_rolled_back_and_done_again() {
    use omnigraph::engine::upkeep::UpkeepDone;
    let scenario = fail::FailScenario::setup();
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let (g, before) = upkeep_interrupted_at_publish(&rt, &tmp.path().join("g"));
    let history = rt.block_on(g.commits("main")).expect("history").len();
    let head = rt.block_on(g.commits("main")).expect("history")[0]
        .id
        .clone();
    let healed = rt.block_on(g.recover("ops")).expect("recover");
    assert_eq!(
        healed.iter().map(|(_, a)| *a).collect::<Vec<_>>(),
        [HealAction::RolledBack]
    );
    assert_eq!(
        rt.block_on(g.commits("main")).expect("history")[0].id,
        head,
        "heal of an upkeep step keeps the head"
    );
    assert_eq!(rt.block_on(visible(&g)), before, "upkeep changes no row");
    rt.block_on(write(&g, Writer::Mutate, "after"))
        .expect("a write after heal");
    let mut published = 0;
    for _ in 0..20 {
        match rt.block_on(g.upkeep_once()).expect("upkeep") {
            UpkeepDone::Idle => break,
            UpkeepDone::Published { .. } => published += 1,
            _ => {}
        }
    }
    assert!(published >= 2, "compaction and indexes: {published}");
    assert_eq!(g.upkeep_pending(), 0);
    // The write is the only new commit: upkeep and heal's roll back of
    // it change no row and record no commit, so the head a caller read
    // before the heal is still the head (an `--if-commit` write holds).
    assert_eq!(
        rt.block_on(g.commits("main")).expect("history").len(),
        history + 1
    );
    let now = rt.block_on(visible(&g));
    assert_eq!(now.get("after"), Some(&(2, 1)));
    for (tag, counts) in &before {
        assert_eq!(now.get(tag), Some(counts), "{tag}");
    }
    scenario.teardown();
}

/// An interrupted upkeep is rolled back even while another process's live
/// write covers the same table (the version after the base is the
/// upkeep's, not that writer's): no drift is left behind once that writer
/// is gone, and heal never touches the live writer's sidecar.
#[test]
fn an_interrupted_upkeep_is_rolled_back_beside_a_live_foreign_writer() {
    let scenario = fail::FailScenario::setup();
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("g");
    let (g, before) = upkeep_interrupted_at_publish(&rt, &root);
    // The upkeep's sidecar, copied as a live write of a process on another
    // host that covers the same table and has committed nothing yet.
    let upkept = sidecar_files(&root);
    assert_eq!(upkept.len(), 1, "{upkept:?}");
    let mut foreign: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&upkept[0]).expect("sidecar")).expect("json");
    let id = "01JFOREIGNWRITER0000000000";
    foreign["id"] = json!(id);
    foreign["actor"] = json!("someone");
    foreign["owner"] = json!({"instance": "other", "host": "elsewhere.invalid", "pid": 1});
    foreign["lease_until_ms"] = json!(i64::MAX / 4);
    let foreign_path = root.join(format!("_graph/__recovery/{id}.json"));
    std::fs::write(&foreign_path, serde_json::to_vec(&foreign).expect("json")).expect("write");

    let healed = rt.block_on(g.recover("ops")).expect("recover");
    assert_eq!(
        healed.iter().map(|(_, a)| *a).collect::<Vec<_>>(),
        [HealAction::RolledBack]
    );
    assert!(
        foreign_path.exists(),
        "a live writer's sidecar is left alone"
    );
    // That writer goes away without committing: nothing has drifted.
    std::fs::remove_file(&foreign_path).expect("remove");
    let report = rt.block_on(g.repair(false, "ops")).expect("repair");
    assert!(report.drift.is_empty(), "{:?}", report.drift);
    assert_eq!(rt.block_on(visible(&g)), before, "upkeep changes no row");
    rt.block_on(write(&g, Writer::Mutate, "after"))
        .expect("a write after heal");
    scenario.teardown();
}

/// Two processes heal the same interrupted write at once (the server's
/// heal and a CLI's, say): this process's heal decides on the tables'
/// heads and the manifest, then stalls (failpoint `heal.decided`) while
/// another process (`omnigraph repair`) rolls the write back and a new
/// write (`omnigraph load`) is published on top. The stalled heal must not
/// undo that new write (its restore is fenced at the head it decided on,
/// its publish expects the write's bases): it finds the work done by
/// another, every write stays whole, and no table is left ahead of the
/// manifest.
#[test]
fn two_heals_of_one_write_at_once_leave_the_write_between_them_whole() {
    let scenario = fail::FailScenario::setup();
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("g");
    let uri = root.to_str().expect("utf8").to_string();
    let g = std::sync::Arc::new(graph_with_one_write(&rt, tmp.path(), Writer::Load));
    // `bad` commits its first table, then fails: heal must roll it back.
    fail::cfg("table.commit", "1*off->return").expect("cfg");
    assert!(rt.block_on(write(&g, Writer::Load, "bad")).is_err());
    fail::remove("table.commit");
    assert_eq!(sidecar_files(&root).len(), 1);

    let (reached_tx, reached) = std::sync::mpsc::channel::<()>();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = std::sync::Mutex::new(go_rx);
    fail::cfg_callback("heal.decided", move || {
        let _ = reached_tx.send(());
        if let Ok(rx) = go_rx.lock() {
            let _ = rx.recv_timeout(std::time::Duration::from_secs(60));
        }
    })
    .expect("cfg");
    let stalled = {
        let g = g.clone();
        let handle = rt.handle().clone();
        std::thread::spawn(move || handle.block_on(g.recover("stalled")))
    };
    reached
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the heal decided");
    // Another process heals the write and writes on top.
    let (code, out, err) = cli(&["repair", &uri]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("RolledBack"), "{out}");
    let data = tmp.path().join("between.jsonl");
    std::fs::write(
        &data,
        "{\"type\":\"Item\",\"data\":{\"key\":\"between-a\",\"n\":1}}\n{\"type\":\"Item\",\"data\":{\"key\":\"between-b\",\"n\":2}}\n{\"edge\":\"Link\",\"from\":\"between-a\",\"to\":\"between-b\"}\n",
    )
    .expect("data");
    let (code, out, err) = cli(&[
        "load",
        "--mode",
        "append",
        "--data",
        data.to_str().expect("utf8"),
        &uri,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    go.send(()).expect("go");
    let stalled = stalled.join().expect("join").expect("the stalled heal");
    fail::remove("heal.decided");
    let seen = rt.block_on(visible(&g));
    assert_whole(&seen, "after both heals");
    assert_eq!(seen.get("between"), Some(&(2, 1)), "{seen:?}");
    assert_eq!(seen.get("ok0"), Some(&(2, 1)), "{seen:?}");
    assert!(!seen.contains_key("bad"), "{seen:?}");
    assert!(
        stalled.is_empty(),
        "the stalled heal found the write healed by another: {stalled:?}"
    );
    let report = rt.block_on(g.repair(false, "ops")).expect("repair");
    assert!(report.drift.is_empty(), "{:?}", report.drift);
    assert!(report.healed.is_empty(), "{:?}", report.healed);
    let audits = rt.block_on(g.audit_records()).expect("audit");
    assert_eq!(
        audits.iter().map(|a| a.action).collect::<Vec<_>>(),
        [HealAction::RolledBack]
    );
    rt.block_on(write(&g, Writer::Load, "later"))
        .expect("writes go on");
    assert_whole(&rt.block_on(visible(&g)), "after more writes");
    scenario.teardown();
}

/// The upkeep task retries a failed step by itself: the step after the
/// last write fails (`upkeep.publish`, after its table commit), no write
/// follows to wake the task, and the task still heals and catches up
/// (before, it waited for the next commit and the upkeep stayed due).
#[test]
fn a_failed_upkeep_step_is_retried_without_another_write() {
    const SCHEMA: &str = "node Item {\n  key: String @key\n}\n";
    const QUERIES: &str = "query m($k: String) { insert Item { key: $k } }";
    let scenario = fail::FailScenario::setup();
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = Graph::init(&uri, "s.pg", SCHEMA)
            .await
            .expect("init")
            .with_upkeep_task();
        let compiled = compile_queries(&g.catalog(), QUERIES);
        let q = compiled.query("m").expect("m");
        fail::cfg("upkeep.publish", "return").expect("cfg");
        for i in 0..8 {
            g.mutate(q, &json!({"k": format!("k{i}")}), "main", "faults")
                .await
                .expect("write");
        }
        let key = TableKey::node("Item");
        // Every step fails while the failpoint holds.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !g.upkeep_due("main", &key).await.expect("due").is_empty(),
            "upkeep ran although every step fails"
        );
        fail::remove("upkeep.publish");
        let started = std::time::Instant::now();
        loop {
            let due = g.upkeep_due("main", &key).await.expect("due");
            if due.is_empty() && g.upkeep_pending() == 0 {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(30),
                "the upkeep task did not retry: still due {due:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let rows = g
            .query(
                compile_queries(
                    &g.catalog(),
                    "query all() { match { $i: Item } return { $i.key } }",
                )
                .query("all")
                .expect("all"),
                &serde_json::Value::Null,
                &ReadAt::Branch("main".into()),
            )
            .await
            .expect("read");
        assert_eq!(rows.rows.len(), 8);
    });
    scenario.teardown();
}

/// A commit starts from the handle of the version this process last
/// committed on its table when the manifest names that version
/// (`table::open_for_write`), and opens the named version otherwise: a
/// write that fails between its two table commits leaves one table a
/// version ahead of what the manifest names; heal rolls it back (a
/// restore, a newer version), and the next write commits on the
/// published head and reads what it committed.
#[test]
fn a_commit_starts_from_its_last_committed_handle_only_where_the_manifest_names_it() {
    let scenario = fail::FailScenario::setup();
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    let g = rt
        .block_on(Graph::init(&uri, "f.pg", SCHEMA))
        .expect("init");
    let keys = [TableKey::node("Item"), TableKey::edge("Link")];
    let heads = |g: &Graph| -> Vec<u64> {
        let s = rt
            .block_on(g.snapshot(&ReadAt::Branch("main".into())))
            .expect("snapshot");
        keys.iter()
            .map(|k| {
                s.tables
                    .iter()
                    .find(|t| &t.table == k)
                    .map(|t| t.version)
                    .expect("on main")
            })
            .collect()
    };
    let warm = |g: &Graph| -> Vec<Option<u64>> { keys.iter().map(|k| g.warm_version(k)).collect() };
    let some = |v: &[u64]| -> Vec<Option<u64>> { v.iter().map(|v| Some(*v)).collect() };
    assert_eq!(warm(&g), vec![None, None], "nothing published yet");
    rt.block_on(write(&g, Writer::Mutate, "ok0"))
        .expect("write");
    rt.block_on(write(&g, Writer::Mutate, "ok1"))
        .expect("write");
    let v1 = heads(&g);
    assert_eq!(warm(&g), some(&v1), "the published heads' handles");

    // The first table commits, the second fails: nothing is published.
    fail::cfg("table.commit", "1*off->return").expect("cfg");
    assert!(rt.block_on(write(&g, Writer::Mutate, "lost")).is_err());
    fail::remove("table.commit");
    assert_eq!(heads(&g), v1, "nothing was published");
    assert!(
        warm(&g).iter().zip(&v1).any(|(w, h)| *w > Some(*h)),
        "one table's commit landed, unpublished: {:?} over {v1:?}",
        warm(&g)
    );

    rt.block_on(write(&g, Writer::Mutate, "ok2"))
        .expect("heals, then writes");
    let v2 = heads(&g);
    assert!(
        v2.iter().zip(&v1).all(|(b, a)| b > a),
        "{v2:?} after {v1:?}"
    );
    assert_eq!(warm(&g), some(&v2));
    let seen = rt.block_on(visible(&g));
    for tag in ["ok0", "ok1", "ok2"] {
        assert_eq!(seen.get(tag), Some(&(2, 1)), "{tag}: {seen:?}");
    }
    assert!(!seen.contains_key("lost"), "{seen:?}");
    rt.block_on(write(&g, Writer::Mutate, "ok3"))
        .expect("write");
    let v3 = heads(&g);
    assert_eq!(v3, v2.iter().map(|v| v + 1).collect::<Vec<_>>());
    assert_eq!(warm(&g), some(&v3));
    assert_eq!(rt.block_on(visible(&g)).get("ok3"), Some(&(2, 1)));
    scenario.teardown();
}
