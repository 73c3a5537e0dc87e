//! Three-way branch merge: the truth table on real branches, edges whose
//! endpoint went away, constraints after merge, fast-forward, and a
//! property test against a model of both edit sets.

use std::collections::BTreeMap;

use omnigraph::engine::load::LoadMode;
use omnigraph::engine::merge::{ConflictKind, MergeOutcome};
use omnigraph::engine::{EngineError, Graph, ReadAt, TableKey};
use omnigraph::query::compile_queries;
use proptest::prelude::*;
use serde_json::json;

use crate::support::{counts, export_sorted, head, load_str, small};

const DROP: &str = r#"
query drop($slug: String) {
    delete Person where slug = $slug
}
query drop_org($name: String) {
    delete Org where name = $name
}
"#;

fn at(b: &str) -> ReadAt {
    ReadAt::Branch(b.into())
}

fn person(slug: &str, name: &str) -> String {
    format!(r#"{{"type":"Person","data":{{"slug":"{slug}","name":"{name}"}}}}"#)
}

async fn upsert(g: &Graph, branch: &str, slug: &str, name: &str) {
    load_str(g, &person(slug, name), LoadMode::Merge, branch)
        .await
        .unwrap_or_else(|e| panic!("upsert {slug} on {branch}: {e}"));
}

async fn delete(g: &Graph, branch: &str, query: &str, key: (&str, &str)) {
    let compiled = compile_queries(&g.catalog(), DROP);
    let q = compiled.query(query).expect("query");
    g.mutate(q, &json!({ key.0: key.1 }), branch, "tester")
        .await
        .unwrap_or_else(|e| panic!("{query} {} on {branch}: {e}", key.1));
}

/// Person names by slug on a branch.
async fn people(g: &Graph, branch: &str) -> BTreeMap<String, String> {
    export_sorted(g, &at(branch))
        .await
        .iter()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["type"] == "Person").then(|| {
                (
                    v["data"]["slug"].as_str().unwrap_or_default().to_string(),
                    v["data"]["name"].as_str().unwrap_or_default().to_string(),
                )
            })
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Untouched,
    /// Insert or update to this name.
    Set(&'static str),
    Delete,
}

async fn apply(g: &Graph, branch: &str, slug: &str, op: Op) {
    match op {
        Op::Untouched => {}
        Op::Set(name) => upsert(g, branch, slug, name).await,
        Op::Delete => delete(g, branch, "drop", ("slug", slug)).await,
    }
}

/// For each (source op, target op) on one entity, with and without a base
/// row: the merged value, or the conflict kind. Both sides also write an
/// unrelated entity so every cell is a real three-way merge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_truth_table() {
    use ConflictKind::*;
    use Op::*;
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    // (in base?, source, target, expected: Ok(name or absent) / Err(kind))
    type Want = Result<Option<&'static str>, ConflictKind>;
    let cells: Vec<(bool, Op, Op, Want)> = vec![
        (false, Untouched, Untouched, Ok(None)),
        (false, Set("a"), Untouched, Ok(Some("a"))),
        (false, Untouched, Set("b"), Ok(Some("b"))),
        (false, Set("a"), Set("a"), Ok(Some("a"))),
        (false, Set("a"), Set("b"), Err(DivergentInsert)),
        (true, Untouched, Untouched, Ok(Some("base"))),
        (true, Set("a"), Untouched, Ok(Some("a"))),
        (true, Untouched, Set("b"), Ok(Some("b"))),
        (true, Set("a"), Set("a"), Ok(Some("a"))),
        (true, Set("a"), Set("b"), Err(DivergentUpdate)),
        (true, Set("a"), Delete, Err(DeleteVsUpdate)),
        (true, Delete, Set("b"), Err(DeleteVsUpdate)),
        (true, Delete, Untouched, Ok(None)),
        (true, Untouched, Delete, Ok(None)),
        (true, Delete, Delete, Ok(None)),
    ];
    let base: String = cells
        .iter()
        .enumerate()
        .filter(|(_, c)| c.0)
        .map(|(i, _)| person(&format!("e{i}"), "base") + "\n")
        .collect();
    load_str(&g, &base, LoadMode::Append, "main")
        .await
        .expect("base");
    for (i, (_, s_op, t_op, want)) in cells.into_iter().enumerate() {
        let (s, t, e) = (format!("s{i}"), format!("t{i}"), format!("e{i}"));
        g.create_branch(&crate::support::branch_name(&s), "main", "tester")
            .await
            .expect("s");
        g.create_branch(&crate::support::branch_name(&t), "main", "tester")
            .await
            .expect("t");
        upsert(&g, &s, &format!("xs{i}"), "source side").await;
        upsert(&g, &t, &format!("xt{i}"), "target side").await;
        apply(&g, &s, &e, s_op).await;
        apply(&g, &t, &e, t_op).await;
        let (s_head, t_head) = (head(&g, &s).await, head(&g, &t).await);
        let before = people(&g, &t).await;
        let cell = format!("cell {i}: source {s_op:?} × target {t_op:?}");
        match (g.merge(&s, &t, "merger", false).await, want) {
            (Ok(r), Ok(value)) => {
                assert_eq!(r.outcome, MergeOutcome::Merged, "{cell}");
                let c = r.commit.expect("a merge commit");
                assert_eq!(c.parents, vec![t_head.clone(), s_head.clone()], "{cell}");
                assert_eq!(head(&g, &t).await, c.id, "{cell}");
                let after = people(&g, &t).await;
                assert_eq!(after.get(&e).map(String::as_str), value, "{cell}");
                assert!(
                    after.contains_key(&format!("xs{i}")) && after.contains_key(&format!("xt{i}")),
                    "{cell}: both sides' other edits land: {after:?}"
                );
                assert_eq!(
                    head(&g, &s).await,
                    s_head,
                    "{cell}: the source is untouched"
                );
            }
            (Err(EngineError::MergeConflicts { conflicts }), Err(kind)) => {
                assert_eq!(conflicts.len(), 1, "{cell}: {conflicts:?}");
                assert_eq!(conflicts[0].kind, kind, "{cell}");
                assert_eq!(conflicts[0].entity_id.as_deref(), Some(e.as_str()));
                assert_eq!(
                    (
                        conflicts[0].entity_kind.as_str(),
                        conflicts[0].type_name.as_str()
                    ),
                    ("node", "Person")
                );
                assert_eq!(head(&g, &t).await, t_head, "{cell}: nothing published");
                assert_eq!(people(&g, &t).await, before, "{cell}");
            }
            (got, want) => panic!("{cell}: got {got:?}, want {want:?}"),
        }
    }
}

/// Two branches `NAME-src` and `NAME-tgt` at main's head.
async fn fork(g: &Graph, name: &str) -> (String, String) {
    let (s, t) = (format!("{name}-src"), format!("{name}-tgt"));
    g.create_branch(&crate::support::branch_name(&s), "main", "t")
        .await
        .expect("s");
    g.create_branch(&crate::support::branch_name(&t), "main", "t")
        .await
        .expect("t");
    (s, t)
}

/// An edge whose endpoint the other side deleted, both ways round; and
/// `@card` / `@unique` broken only by the combination.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merged_state_is_checked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    let base = [person("a", "Ann"), person("b", "Bob"), person("c", "Cy")].join("\n")
        + "\n"
        + r#"{"type":"Org","data":{"name":"o1"}}
{"type":"Org","data":{"name":"o2"}}
"#;
    load_str(&g, &base, LoadMode::Append, "main")
        .await
        .expect("base");
    let edge = |name: &str, from: &str, to: &str| {
        format!(r#"{{"edge":"{name}","from":"{from}","to":"{to}"}}"#)
    };
    let conflicts_of = |r: Result<_, EngineError>| match r {
        Err(EngineError::MergeConflicts { conflicts }) => conflicts,
        other => panic!("expected conflicts, got {other:?}"),
    };

    // The source deletes b; the target links a → b.
    let (s, t) = fork(&g, "orphan1").await;
    delete(&g, &s, "drop", ("slug", "b")).await;
    load_str(&g, &edge("Knows", "a", "b"), LoadMode::Append, &t)
        .await
        .expect("link");
    let th = head(&g, &t).await;
    let c = conflicts_of(g.merge(&s, &t, "m", false).await);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].kind, ConflictKind::OrphanEdge);
    assert_eq!(
        (c[0].entity_kind.as_str(), c[0].type_name.as_str()),
        ("edge", "Knows")
    );
    assert!(c[0].message.contains("`Person` `b`"), "{}", c[0].message);
    assert_eq!(head(&g, &t).await, th);

    // The source links a → c; the target deletes c.
    let (s, t) = fork(&g, "orphan2").await;
    load_str(&g, &edge("Knows", "a", "c"), LoadMode::Append, &s)
        .await
        .expect("link");
    delete(&g, &t, "drop", ("slug", "c")).await;
    let c = conflicts_of(g.merge(&s, &t, "m", false).await);
    assert_eq!(
        c.iter().map(|c| c.kind).collect::<Vec<_>>(),
        vec![ConflictKind::OrphanEdge]
    );

    // WorksAt is @card(0..1): each side gives a a different employer.
    let (s, t) = fork(&g, "card").await;
    load_str(&g, &edge("WorksAt", "a", "o1"), LoadMode::Append, &s)
        .await
        .expect("s job");
    load_str(&g, &edge("WorksAt", "a", "o2"), LoadMode::Append, &t)
        .await
        .expect("t job");
    let c = conflicts_of(g.merge(&s, &t, "m", false).await);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].kind, ConflictKind::CardinalityViolation);
    assert_eq!(c[0].entity_id.as_deref(), Some("a"));

    // email is @unique: two different people take the same address.
    let (s, t) = fork(&g, "unique").await;
    let with_email = |slug: &str| {
        format!(
            r#"{{"type":"Person","data":{{"slug":"{slug}","name":"N","email":"x@example.com"}}}}"#
        )
    };
    load_str(&g, &with_email("p1"), LoadMode::Append, &s)
        .await
        .expect("s");
    load_str(&g, &with_email("p2"), LoadMode::Append, &t)
        .await
        .expect("t");
    let c = conflicts_of(g.merge(&s, &t, "m", false).await);
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].kind, ConflictKind::UniqueViolation);

    // Disjoint edges and nodes combine; main never moved.
    let (s, t) = fork(&g, "clean").await;
    load_str(&g, &edge("Knows", "a", "b"), LoadMode::Append, &s)
        .await
        .expect("s");
    load_str(&g, &edge("WorksAt", "c", "o1"), LoadMode::Append, &t)
        .await
        .expect("t");
    let r = g.merge(&s, &t, "m", false).await.expect("clean merge");
    assert_eq!(r.outcome, MergeOutcome::Merged);
    assert_eq!(r.written.get(&TableKey::edge("Knows")), Some(&1));
    let n = counts(&g, &at(&t)).await;
    assert_eq!((n["edge:Knows"], n["edge:WorksAt"]), (1, 1));
    let m = counts(&g, &at("main")).await;
    assert_eq!((m["edge:Knows"], m["edge:WorksAt"]), (0, 0));
}

/// Fast-forward adopts the source's versions without writing data; both
/// branches stay writable and independent afterwards; a second merge is
/// already up to date; `delete_branch` removes the source.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_forward_and_up_to_date() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    load_str(&g, &person("a", "Ann"), LoadMode::Append, "main")
        .await
        .expect("base");
    g.create_branch(&crate::support::branch_name("f"), "main", "t")
        .await
        .expect("f");
    upsert(&g, "f", "b", "Bob").await;
    upsert(&g, "f", "a", "Ann F.").await;
    let f_head = head(&g, "f").await;
    let main_versions = g
        .snapshot(&at("main"))
        .await
        .expect("snap")
        .manifest_version;

    // main has not moved: merging main into f is a no-op.
    let r = g.merge("main", "f", "m", false).await.expect("noop");
    assert_eq!(r.outcome, MergeOutcome::AlreadyUpToDate);
    assert_eq!(head(&g, "f").await, f_head);

    let r = g.merge("f", "main", "m", false).await.expect("ff");
    assert_eq!(r.outcome, MergeOutcome::FastForward);
    assert!(r.commit.is_none() && r.written.is_empty());
    assert_eq!(head(&g, "main").await, f_head);
    assert_eq!(people(&g, "main").await, people(&g, "f").await);
    assert_eq!(
        g.snapshot(&at("main"))
            .await
            .expect("snap")
            .manifest_version,
        main_versions + 1,
        "one manifest publish, no commit"
    );

    // Both branches keep writing, independently.
    upsert(&g, "main", "c", "Cy").await;
    upsert(&g, "f", "d", "Di").await;
    delete(&g, "main", "drop", ("slug", "b")).await;
    let main_people = people(&g, "main").await;
    let f_people = people(&g, "f").await;
    assert_eq!(
        main_people.keys().collect::<Vec<_>>(),
        vec!["a", "c"],
        "{main_people:?}"
    );
    assert_eq!(f_people.keys().collect::<Vec<_>>(), vec!["a", "b", "d"]);
    assert_eq!(main_people["a"], "Ann F.");
    // Time travel to the adopted commit still reads the source's data.
    let old = export_sorted(&g, &ReadAt::Commit(f_head.clone())).await;
    assert_eq!(old.iter().filter(|l| l.contains("Person")).count(), 2);

    // f's new edit merges back as a three-way merge; then f is up to date
    // and is deleted on request.
    let r = g.merge("f", "main", "m", false).await.expect("merge back");
    assert_eq!(r.outcome, MergeOutcome::Merged);
    assert_eq!(
        people(&g, "main").await.keys().collect::<Vec<_>>(),
        vec!["a", "c", "d"]
    );
    let r = g.merge("f", "main", "m", true).await.expect("up to date");
    assert_eq!(r.outcome, MergeOutcome::AlreadyUpToDate);
    assert_eq!(r.branch_deleted, Some(true));
    let names: Vec<String> = g
        .branches()
        .await
        .expect("b")
        .into_iter()
        .map(|b| b.name)
        .collect();
    assert_eq!(names, vec!["main"]);

    // Bad input.
    let e = g.merge("main", "main", "m", false).await.expect_err("self");
    assert!(matches!(e, EngineError::MergeRefused { .. }), "{e}");
    let e = g
        .merge("nope", "main", "m", false)
        .await
        .expect_err("unknown");
    assert!(matches!(e, EngineError::UnknownBranch { .. }), "{e}");
}

#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Delete(usize),
}

const IDS: usize = 6;

fn edits() -> impl Strategy<Value = Vec<Edit>> {
    prop::collection::vec(
        prop_oneof![
            (0..IDS, 0u8..3).prop_map(|(i, v)| Edit::Set(i, v)),
            (0..IDS).prop_map(Edit::Delete),
        ],
        0..5,
    )
}

fn model(base: &BTreeMap<String, String>, edits: &[Edit]) -> BTreeMap<String, String> {
    let mut m = base.clone();
    for e in edits {
        match e {
            Edit::Set(i, v) => {
                m.insert(format!("p{i}"), format!("v{v}"));
            }
            Edit::Delete(i) => {
                m.remove(&format!("p{i}"));
            }
        }
    }
    m
}

async fn apply_edits(g: &Graph, branch: &str, edits: &[Edit]) {
    for e in edits {
        match e {
            Edit::Set(i, v) => upsert(g, branch, &format!("p{i}"), &format!("v{v}")).await,
            Edit::Delete(i) => delete(g, branch, "drop", ("slug", &format!("p{i}"))).await,
        }
    }
}

fn cases() -> u32 {
    std::env::var("OMNIGRAPH_MERGE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    /// Random edits on two branches from a common base: a merge succeeds
    /// exactly when no entity ended up different on both sides and from
    /// the base; then the target equals the base with both edit sets
    /// applied (they commute). A conflict names exactly those entities and
    /// publishes nothing.
    #[test]
    fn merge_equals_both_edit_sets(s_edits in edits(), t_edits in edits()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let tmp = tempfile::tempdir().expect("tmp");
        let g = rt.block_on(small(tmp.path()));
        let base: BTreeMap<String, String> = (0..3).map(|i| (format!("p{i}"), "v0".to_string())).collect();
        let jsonl: String = base.iter().map(|(k, v)| person(k, v) + "\n").collect();
        rt.block_on(load_str(&g, &jsonl, LoadMode::Append, "main")).expect("base");
        rt.block_on(async {
            g.create_branch(&crate::support::branch_name("s"), "main", "t").await.expect("s");
            apply_edits(&g, "s", &s_edits).await;
            apply_edits(&g, "main", &t_edits).await;
        });
        let (sm, tm) = (model(&base, &s_edits), model(&base, &t_edits));
        let ids: std::collections::BTreeSet<&String> = base.keys().chain(sm.keys()).chain(tm.keys()).collect();
        let mut conflicted = Vec::new();
        let mut expected = BTreeMap::new();
        for id in ids {
            let (b, s, t) = (base.get(id), sm.get(id), tm.get(id));
            let v = if s == b || s == t { t } else if t == b { s } else { conflicted.push(id.clone()); None };
            if let Some(v) = v {
                expected.insert(id.clone(), v.clone());
            }
        }
        let main_head = rt.block_on(head(&g, "main"));
        let before = rt.block_on(people(&g, "main"));
        match rt.block_on(g.merge("s", "main", "m", false)) {
            Ok(_) => {
                prop_assert!(conflicted.is_empty(), "merged despite {:?}", conflicted);
                prop_assert_eq!(rt.block_on(people(&g, "main")), expected);
            }
            Err(EngineError::MergeConflicts { conflicts }) => {
                let mut got: Vec<String> = conflicts.iter().filter_map(|c| c.entity_id.clone()).collect();
                got.sort();
                prop_assert_eq!(got, conflicted);
                prop_assert_eq!(rt.block_on(head(&g, "main")), main_head);
                prop_assert_eq!(rt.block_on(people(&g, "main")), before);
            }
            Err(e) => prop_assert!(false, "merge failed: {}", e),
        }
    }
}

/// `omnigraph branch merge`: fast-forward, then a conflict listed as JSON
/// with exit 1 and nothing published; `--delete-branch`.
#[test]
fn cli_branch_merge() {
    use crate::support::{cli_small_graph, omnigraph};
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = cli_small_graph(tmp.path());
    let data = |name: &str| {
        let p = tmp.path().join(format!("{name}.jsonl"));
        std::fs::write(&p, person("a", name) + "\n").expect("data");
        p.to_str().expect("utf8").to_string()
    };
    let run = |args: &[&str]| {
        let out = omnigraph(args);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (
            out.status.code(),
            text,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let ok = |args: &[&str]| {
        let (code, out, err) = run(args);
        assert_eq!(code, Some(0), "{args:?}: {err}");
        out
    };
    ok(&["branch", "create", "dev", &uri]);
    ok(&[
        "load",
        "--data",
        &data("Ann"),
        "--mode",
        "merge",
        "--branch",
        "dev",
        &uri,
    ]);
    let out = ok(&["branch", "merge", "dev", "--into", "main", &uri]);
    assert!(out.contains("dev into main: fast-forward"), "{out}");
    ok(&[
        "load",
        "--data",
        &data("Dev"),
        "--mode",
        "merge",
        "--branch",
        "dev",
        &uri,
    ]);
    ok(&[
        "load",
        "--data",
        &data("Main"),
        "--mode",
        "merge",
        "--branch",
        "main",
        &uri,
    ]);
    let before = ok(&["commit", "list", "--branch", "main", &uri]);
    let (code, out, _) = run(&["branch", "merge", "dev", "--json", &uri]);
    assert_eq!(code, Some(1));
    let j: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(j["merge_conflicts"][0]["kind"], "divergent_update");
    assert_eq!(j["merge_conflicts"][0]["entity_id"], "a");
    let (code, _, err) = run(&["branch", "merge", "dev", &uri]);
    assert_eq!(code, Some(1));
    assert!(err.contains("divergent_update node `Person` `a`"), "{err}");
    assert_eq!(ok(&["commit", "list", "--branch", "main", &uri]), before);
    // Make dev agree with main, then merge and delete it.
    ok(&[
        "load",
        "--data",
        &data("Main"),
        "--mode",
        "merge",
        "--branch",
        "dev",
        &uri,
    ]);
    let out = ok(&["branch", "merge", "dev", "--delete-branch", "--json", &uri]);
    let j: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(
        (j["outcome"].as_str(), j["branch_deleted"].as_bool()),
        (Some("merged"), Some(true))
    );
    let branches = ok(&["branch", "list", &uri]);
    assert!(!branches.contains("dev"), "{branches}");
    let (code, _, err) = run(&["branch", "merge", "nope", &uri]);
    assert_eq!(code, Some(1));
    assert!(err.contains("branch `nope` does not exist"), "{err}");
}
