//! Branches, commits and time travel.

use omnigraph::engine::load::LoadMode;
use omnigraph::engine::{EngineError, ReadAt};

use crate::support::{counts, export_sorted, head, load_str, small};

const PEOPLE: &str = r#"{"type":"Person","data":{"slug":"a","name":"Ann"}}
{"type":"Person","data":{"slug":"b","name":"Bob"}}
{"edge":"Knows","from":"a","to":"b"}
"#;

fn branch(b: &str) -> ReadAt {
    ReadAt::Branch(b.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_write_leaves_main_unchanged() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    load_str(&g, PEOPLE, LoadMode::Append, "main")
        .await
        .expect("load main");
    let main_head = head(&g, "main").await;
    let main_rows = export_sorted(&g, &branch("main")).await;

    g.create_branch(&crate::support::branch_name("feature"), "main", "test")
        .await
        .expect("branch");
    assert_eq!(
        head(&g, "feature").await,
        main_head,
        "a new branch starts at its base's head"
    );
    load_str(
        &g,
        r#"{"type":"Person","data":{"slug":"c","name":"Cy"}}"#,
        LoadMode::Append,
        "feature",
    )
    .await
    .expect("load feature");
    load_str(
        &g,
        r#"{"type":"Person","data":{"slug":"a","name":"Ann B."}}"#,
        LoadMode::Merge,
        "feature",
    )
    .await
    .expect("merge feature");

    assert_eq!(head(&g, "main").await, main_head);
    assert_eq!(export_sorted(&g, &branch("main")).await, main_rows);
    let f = counts(&g, &branch("feature")).await;
    assert_eq!(f["node:Person"], 3);
    assert_eq!(counts(&g, &branch("main")).await["node:Person"], 2);
    let feature_rows = export_sorted(&g, &branch("feature")).await;
    assert!(feature_rows.iter().any(|l| l.contains("Ann B.")));

    // Main can still be written and stays independent of the branch.
    load_str(
        &g,
        r#"{"type":"Person","data":{"slug":"d","name":"Di"}}"#,
        LoadMode::Append,
        "main",
    )
    .await
    .expect("load main again");
    assert_eq!(counts(&g, &branch("main")).await["node:Person"], 3);
    assert_eq!(export_sorted(&g, &branch("feature")).await, feature_rows);

    // A branch of a branch sees its parent's writes.
    g.create_branch(&crate::support::branch_name("sub"), "feature", "test")
        .await
        .expect("sub");
    assert_eq!(counts(&g, &branch("sub")).await["node:Person"], 3);
    load_str(
        &g,
        r#"{"type":"Person","data":{"slug":"e","name":"Ed"}}"#,
        LoadMode::Append,
        "sub",
    )
    .await
    .expect("load sub");
    assert_eq!(counts(&g, &branch("sub")).await["node:Person"], 4);
    assert_eq!(counts(&g, &branch("feature")).await["node:Person"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_form_a_dag_with_actors_and_time_travel_reads_old_state() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    g.load(
        std::io::Cursor::new(PEOPLE.as_bytes().to_vec()),
        LoadMode::Append,
        "main",
        None,
        "alice",
    )
    .await
    .expect("load");
    let first = head(&g, "main").await;
    g.load(
        std::io::Cursor::new(br#"{"type":"Person","data":{"slug":"c","name":"Cy"}}"#.to_vec()),
        LoadMode::Append,
        "dev",
        Some("main"),
        "bob",
    )
    .await
    .expect("load creates dev from main");
    let history = g.commits("dev").await.expect("history");
    assert_eq!(history.len(), 3, "init, alice's load, bob's load");
    assert_eq!(history[0].actor, "bob");
    assert_eq!(history[0].branch, "dev");
    assert_eq!(history[0].parents, vec![first.clone()]);
    assert_eq!(history[1].actor, "alice");
    assert_eq!(history[1].id, first);
    assert_eq!(history[2].parents, Vec::<String>::new());
    assert_eq!(g.commits("main").await.expect("main").len(), 2);

    // Time travel: the older commit still reads two people after later writes.
    load_str(
        &g,
        r#"{"type":"Person","data":{"slug":"z","name":"Zed"}}"#,
        LoadMode::Append,
        "main",
    )
    .await
    .expect("later write");
    let old = counts(&g, &ReadAt::Commit(first.clone())).await;
    assert_eq!(old["node:Person"], 2);
    assert_eq!(counts(&g, &branch("main")).await["node:Person"], 3);
    assert_eq!(g.commit(&first).await.expect("show").actor, "alice");
    assert!(matches!(
        g.commit("01ARZ3NDEKTSV4RRFFQ69G5FAV").await,
        Err(EngineError::UnknownCommit { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn branch_rules() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    assert!(matches!(
        g.delete_branch("main", "test").await,
        Err(EngineError::MainProtected)
    ));
    for bad in ["../x", "a//b", "/a", "a/", "a/../b", "a/.b", "", "a b"] {
        assert!(
            matches!(
                omnigraph::engine::BranchName::parse(bad),
                Err(EngineError::BadBranchName { .. })
            ),
            "{bad:?} accepted"
        );
    }
    assert!(matches!(
        g.create_branch(&crate::support::branch_name("ok"), "nope", "test")
            .await,
        Err(EngineError::UnknownBranch { .. })
    ));
    g.create_branch(&crate::support::branch_name("ok"), "main", "test")
        .await
        .expect("create");
    assert!(matches!(
        g.create_branch(&crate::support::branch_name("ok"), "main", "test")
            .await,
        Err(EngineError::BranchExists { .. })
    ));
    let err = load_str(&g, PEOPLE, LoadMode::Append, "missing")
        .await
        .expect_err("no branch");
    assert!(err.to_string().contains("does not exist"), "{err}");
    g.delete_branch("ok", "test").await.expect("delete");
    let names: Vec<String> = g
        .branches()
        .await
        .expect("list")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, ["main"]);
    // Recreating a deleted branch starts fresh from its base.
    load_str(&g, PEOPLE, LoadMode::Append, "main")
        .await
        .expect("main");
    g.create_branch(&crate::support::branch_name("ok"), "main", "test")
        .await
        .expect("recreate");
    load_str(
        &g,
        r#"{"type":"Person","data":{"slug":"q","name":"Q"}}"#,
        LoadMode::Append,
        "ok",
    )
    .await
    .expect("write recreated");
    assert_eq!(counts(&g, &branch("ok")).await["node:Person"], 3);

    // A name with `/` (the reference quickstart's `review/new-hires`): a
    // branch like any other, written, read, merged and deleted; its
    // sibling `review-new-hires` (the same Lance branch prefix) stays apart.
    g.create_branch(
        &crate::support::branch_name("review/new-hires"),
        "main",
        "test",
    )
    .await
    .expect("slashed name");
    g.create_branch(
        &crate::support::branch_name("review-new-hires"),
        "main",
        "test",
    )
    .await
    .expect("its sibling");
    load_str(
        &g,
        r#"{"type":"Person","data":{"slug":"r","name":"R"}}"#,
        LoadMode::Append,
        "review/new-hires",
    )
    .await
    .expect("write the slashed branch");
    assert_eq!(
        counts(&g, &branch("review/new-hires")).await["node:Person"],
        3
    );
    assert_eq!(
        counts(&g, &branch("review-new-hires")).await["node:Person"],
        2
    );
    g.merge("review/new-hires", "main", "test", false)
        .await
        .expect("merge the slashed branch");
    assert_eq!(counts(&g, &branch("main")).await["node:Person"], 3);
    g.delete_branch("review/new-hires", "test")
        .await
        .expect("delete the slashed branch");
    assert_eq!(
        counts(&g, &branch("review-new-hires")).await["node:Person"],
        2
    );
}

#[test]
fn cli_branch_and_commit_commands() {
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = crate::support::cli_small_graph(tmp.path());
    let uri = uri.as_str();
    let run = |args: &[&str]| crate::support::omnigraph(args);
    let out = run(&["branch", "create", "--from", "main", "dev", uri]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["branch", "list", uri]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("dev") && text.contains("main"), "{text}");
    let out = run(&["branch", "delete", "main", uri]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot be deleted"));
    let out = run(&["commit", "list", "--json", uri]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = v["commits"][0]["graph_commit_id"]
        .as_str()
        .expect("id")
        .to_string();
    let out = run(&["commit", "show", &id, "--json", uri]);
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(shown["graph_commit_id"], id.as_str());
    assert_eq!(shown, v["commits"][0], "show and list agree");
    let out = run(&["commit", "show", &id, uri]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("actor    init"));
    let out = run(&["snapshot", "--commit", &id, uri]);
    assert_eq!(out.status.code(), Some(0));
    let out = run(&["snapshot", "--branch", "nope", uri]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("branch `nope` does not exist"));
}

/// The engine's policy gate on direct (CLI) writes: `--policy` or
/// `OMNIGRAPH_POLICY_FILE` decides each write for its `--as` actor.
#[test]
fn cli_writes_pass_the_policy_gate() {
    use crate::support::omnigraph;
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = crate::support::cli_small_graph(tmp.path());
    let policy = tmp.path().join("p.yaml");
    std::fs::write(
        &policy,
        "version: 1\ngroups:\n  writers: [alice]\nprotected_branches: [main]\nrules:\n  - id: write-unprotected\n    allow:\n      actors: { group: writers }\n      actions: [change]\n      branch_scope: unprotected\n  - id: make-branches\n    allow:\n      actors: { group: writers }\n      actions: [branch_create]\n",
    )
    .expect("policy");
    let data = tmp.path().join("d.jsonl");
    std::fs::write(
        &data,
        "{\"type\":\"Person\",\"data\":{\"slug\":\"a\",\"name\":\"A\"}}\n",
    )
    .expect("data");
    let (p, d) = (policy.to_str().expect("utf8"), data.to_str().expect("utf8"));
    let load = |actor: &str, branch: &str| {
        omnigraph(&[
            "load", "--data", d, "--mode", "merge", "--branch", branch, "--as", actor, "--policy",
            p, &uri,
        ])
    };
    let denied = |out: std::process::Output, what: &str| {
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{what}: {err}");
        assert!(err.contains("denied by policy"), "{what}: {err}");
    };
    // Nobody not in the bundle; alice not on protected main.
    denied(load("bob", "main"), "bob on main");
    denied(load("alice", "main"), "alice on main");
    let head = |b: &str| {
        let out = omnigraph(&["commit", "list", "--branch", b, &uri]);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let before = head("main");
    // alice may branch and write there.
    let out = omnigraph(&[
        "branch", "create", "--from", "main", "--as", "alice", "--policy", p, "dev", &uri,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = load("alice", "dev");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    denied(
        omnigraph(&[
            "branch", "delete", "--as", "alice", "--policy", p, "dev", &uri,
        ]),
        "branch delete is not granted",
    );
    denied(
        omnigraph(&[
            "branch", "merge", "dev", "--into", "main", "--as", "alice", "--policy", p, &uri,
        ]),
        "branch merge is not granted",
    );
    // The environment variable installs the same gate.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_omnigraph"))
        .args([
            "mutate",
            "-e",
            "query m() { insert Person { slug: \"b\", name: \"B\" } }",
            "--as",
            "bob",
            "--store",
            &uri,
        ])
        .env("OMNIGRAPH_POLICY_FILE", p)
        .output()
        .expect("run");
    denied(out, "bob via OMNIGRAPH_POLICY_FILE");
    assert_eq!(head("main"), before, "main unchanged by denied writes");
    // A broken bundle is refused with its file named.
    std::fs::write(&policy, "version: 1\nrules: [\n").expect("policy");
    let out = load("alice", "dev");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("p.yaml"), "{err}");
}
