//! Entity changes (reference docs/user/branching/changes.md): a commit's
//! changes against its first parent, `diff` between any two states, the
//! feed's pages and cursors, and a removed history's 410 gap.

use omnigraph::engine::changes::{ChangeFilter, ChangeOp, EntityChange, EntityKind, RefusalReason};
use omnigraph::engine::feed::{FeedRequest, FeedStart};
use omnigraph::engine::load::LoadMode;
use omnigraph::engine::{CommitId, EngineError, Graph, ReadAt};
use serde_json::json;

use crate::support::{branch_name, head, load_str, small};

/// `(op, type, id)` of each change, in the order given.
fn ops(cs: &[EntityChange]) -> Vec<(ChangeOp, String, String)> {
    cs.iter()
        .map(|c| (c.op, c.type_.name.clone(), c.id.clone()))
        .collect()
}

async fn changes_of(g: &Graph, commit: &CommitId) -> Vec<EntityChange> {
    g.commit_changes(commit, &ChangeFilter::default())
        .await
        .expect("commit changes")
        .1
}

async fn mutate(g: &Graph, src: &str, params: serde_json::Value, branch: &str) -> Option<CommitId> {
    let compiled = omnigraph::query::compile_queries(&g.catalog(), src);
    assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
    let q = compiled.query("q").expect("query q").clone();
    g.mutate(&q, &params, branch, "writer")
        .await
        .expect("mutate")
        .commit
        .map(|c| c.id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_names_each_entity_it_changed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    let genesis = head(&g, "main").await;
    let r = load_str(
        &g,
        concat!(
            "{\"type\":\"Person\",\"data\":{\"slug\":\"a\",\"name\":\"Ann\",\"age\":30}}\n",
            "{\"type\":\"Person\",\"data\":{\"slug\":\"b\",\"name\":\"Bo\"}}\n",
            "{\"edge\":\"Knows\",\"from\":\"a\",\"to\":\"b\",\"data\":{\"id\":\"k1\"}}\n",
        ),
        LoadMode::Merge,
        "main",
    )
    .await
    .expect("load");
    let load = r.commit.expect("commit").id;
    let (cause, cs) = g
        .commit_changes(&load, &ChangeFilter::default())
        .await
        .expect("changes");
    assert_eq!(cause.graph_commit_id, load.to_string());
    assert_eq!(cause.parent_commit_id.as_deref(), Some(genesis.as_str()));
    assert_eq!(cause.authored_branch, "main");
    // Nodes before edges, then type, then id.
    assert_eq!(
        ops(&cs),
        vec![
            (ChangeOp::Insert, "Person".into(), "a".into()),
            (ChangeOp::Insert, "Person".into(), "b".into()),
            (ChangeOp::Insert, "Knows".into(), "k1".into()),
        ]
    );
    let a = cs[0].after.as_ref().expect("after");
    assert!(cs[0].before.is_none());
    assert_eq!(a.properties["name"], json!("Ann"));
    assert_eq!(a.properties["age"], json!(30));
    assert_eq!(
        a.properties["email"],
        json!(null),
        "every property, null included"
    );
    let k = cs[2].after.as_ref().expect("edge after");
    let ends = k.endpoints.as_ref().expect("endpoints");
    assert_eq!((ends.from.as_str(), ends.to.as_str()), ("a", "b"));

    // An update: exact before and after; an equal rewrite is no change.
    let set_age = "query q($s: String, $a: I32) { update Person set { age: $a } where slug = $s }";
    let up = mutate(&g, set_age, json!({"s": "a", "a": 31}), "main")
        .await
        .expect("commit");
    let cs = changes_of(&g, &up).await;
    assert_eq!(
        ops(&cs),
        vec![(ChangeOp::Update, "Person".into(), "a".into())]
    );
    assert_eq!(
        cs[0].before.as_ref().expect("before").properties["age"],
        json!(30)
    );
    assert_eq!(
        cs[0].after.as_ref().expect("after").properties["age"],
        json!(31)
    );
    if let Some(same) = mutate(&g, set_age, json!({"s": "a", "a": 31}), "main").await {
        assert!(
            changes_of(&g, &same).await.is_empty(),
            "rewriting equal values changes nothing"
        );
    }

    // A delete cascades to the edge: both named, with their before images.
    let del = "query q($s: String) { delete Person where slug = $s }";
    let d = mutate(&g, del, json!({"s": "b"}), "main")
        .await
        .expect("commit");
    let cs = changes_of(&g, &d).await;
    assert_eq!(
        ops(&cs),
        vec![
            (ChangeOp::Delete, "Person".into(), "b".into()),
            (ChangeOp::Delete, "Knows".into(), "k1".into()),
        ]
    );
    assert!(cs.iter().all(|c| c.after.is_none() && c.before.is_some()));

    // Filters select graph concepts.
    let edges = ChangeFilter {
        kinds: vec![EntityKind::Edge],
        ..Default::default()
    };
    let (_, cs) = g.commit_changes(&d, &edges).await.expect("filtered");
    assert_eq!(
        ops(&cs),
        vec![(ChangeOp::Delete, "Knows".into(), "k1".into())]
    );
    let inserts = ChangeFilter {
        ops: vec![ChangeOp::Insert],
        ..Default::default()
    };
    assert!(
        g.commit_changes(&d, &inserts)
            .await
            .expect("ops")
            .1
            .is_empty()
    );
    let typo = ChangeFilter {
        types: vec!["Persn".into()],
        ..Default::default()
    };
    let e = g.commit_changes(&d, &typo).await.expect_err("unknown type");
    assert!(e.to_string().contains("did you mean `Person`"), "{e}");

    // The first commit has no parent; an unknown one does not exist.
    match g.commit_changes(&genesis, &ChangeFilter::default()).await {
        Err(EngineError::ChangeRefused { reason, .. }) => {
            assert_eq!(reason, RefusalReason::ParentlessCommit)
        }
        other => panic!("expected a parentless refusal, got {other:?}"),
    }
    assert!(matches!(
        g.commit_changes(
            &CommitId::from_text("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            &ChangeFilter::default()
        )
        .await,
        Err(EngineError::UnknownCommit { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merges_and_diffs_compare_against_the_first_parent() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    load_str(
        &g,
        "{\"type\":\"Person\",\"data\":{\"slug\":\"a\",\"name\":\"Ann\"}}\n",
        LoadMode::Merge,
        "main",
    )
    .await
    .expect("seed");
    g.create_branch(&branch_name("side"), "main", "writer")
        .await
        .expect("branch");
    load_str(
        &g,
        "{\"type\":\"Person\",\"data\":{\"slug\":\"s\",\"name\":\"Side\"}}\n",
        LoadMode::Merge,
        "side",
    )
    .await
    .expect("side");
    load_str(
        &g,
        "{\"type\":\"Person\",\"data\":{\"slug\":\"m\",\"name\":\"Main\"}}\n",
        LoadMode::Merge,
        "main",
    )
    .await
    .expect("main");
    let main_before = head(&g, "main").await;

    // Branch to branch: what side holds that main does not, and back.
    let d = g
        .diff(
            &ReadAt::Branch("main".into()),
            &ReadAt::Branch("side".into()),
            &ChangeFilter::default(),
        )
        .await
        .expect("diff");
    assert_eq!(
        ops(&d.changes),
        vec![
            (ChangeOp::Delete, "Person".into(), "m".into()),
            (ChangeOp::Insert, "Person".into(), "s".into()),
        ]
    );

    // A three-way merge commit: its changes are what it brought to main.
    let r = g
        .merge("side", "main", "writer", false)
        .await
        .expect("merge");
    let merged = g.commit(&r.head).await.expect("commit");
    assert_eq!(merged.parents.len(), 2, "a merge commit");
    let (cause, cs) = g
        .commit_changes(&merged.id, &ChangeFilter::default())
        .await
        .expect("merge changes");
    assert_eq!(
        cause.parent_commit_id.as_deref(),
        Some(main_before.as_str())
    );
    assert!(cause.merged_parent_commit_id.is_some());
    assert_eq!(
        ops(&cs),
        vec![(ChangeOp::Insert, "Person".into(), "s".into())]
    );

    // The same state on both sides: no changes.
    let same = g
        .diff(
            &ReadAt::Commit(merged.id.clone()),
            &ReadAt::Branch("main".into()),
            &ChangeFilter::default(),
        )
        .await
        .expect("same");
    assert!(same.changes.is_empty());
}

/// Loads `n` people (`p0`..) in one commit.
async fn people(g: &Graph, from: usize, n: usize) -> CommitId {
    let data: String = (from..from + n)
        .map(|i| {
            format!("{{\"type\":\"Person\",\"data\":{{\"slug\":\"p{i}\",\"name\":\"P{i}\"}}}}\n")
        })
        .collect();
    load_str(g, &data, LoadMode::Merge, "main")
        .await
        .expect("load")
        .commit
        .expect("commit")
        .id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_pages_blocks_and_resumes_from_its_cursor() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    let c1 = people(&g, 0, 3).await;
    let c2 = people(&g, 3, 1).await;

    // `now` replays nothing; its cursor sees what lands after it.
    let now = g
        .poll_changes(FeedRequest {
            start: Some(FeedStart::Now),
            ..Default::default()
        })
        .await
        .expect("now");
    assert!(now.blocks.is_empty());
    assert_eq!(now.caught_up, Some(true));
    let c3 = people(&g, 4, 2).await;
    let after_now = g
        .poll_changes(FeedRequest {
            cursor: now.cursor.clone(),
            ..Default::default()
        })
        .await
        .expect("after now");
    let ids: Vec<&str> = after_now
        .blocks
        .iter()
        .map(|b| b.cause.graph_commit_id.as_str())
        .collect();
    assert_eq!(ids, vec![c3.as_str()]);

    // From the beginning with 2 changes a page: the 3-change block of c1
    // is split (no cursor on its first page), then c1's rest ends a
    // terminal page; c2 and c3 follow.
    let mut req = FeedRequest {
        start: Some(FeedStart::Beginning),
        limit: Some(2),
        ..Default::default()
    };
    let p1 = g.poll_changes(req.clone()).await.expect("page 1");
    assert_eq!(p1.blocks.len(), 1);
    assert_eq!(p1.blocks[0].cause.graph_commit_id, c1.to_string());
    assert_eq!(p1.blocks[0].changes.len(), 2);
    assert!(
        p1.cursor.is_none() && p1.next_page_token.is_some(),
        "mid-block: a token, no cursor"
    );
    // A page token is not a cursor.
    let misuse = g
        .poll_changes(FeedRequest {
            cursor: p1.next_page_token.clone(),
            ..Default::default()
        })
        .await
        .expect_err("token as cursor");
    assert!(
        misuse.to_string().starts_with("change cursor rejected:"),
        "{misuse}"
    );
    let p2 = g
        .poll_changes(FeedRequest {
            page_token: p1.next_page_token.clone(),
            limit: Some(2),
            ..Default::default()
        })
        .await
        .expect("page 2");
    // The rest of c1, then c2 (one change) fits; c3 (two) does not.
    let ids: Vec<&str> = p2
        .blocks
        .iter()
        .map(|b| b.cause.graph_commit_id.as_str())
        .collect();
    assert_eq!(ids, vec![c1.as_str(), c2.as_str()]);
    assert_eq!(p2.blocks[0].changes.len(), 1, "the rest of c1");
    assert_eq!(p2.caught_up, Some(false));
    let mut seen: Vec<String> = p1.blocks[0]
        .changes
        .iter()
        .chain(&p2.blocks[0].changes)
        .map(|c| c.id.clone())
        .collect();
    seen.sort();
    assert_eq!(seen, vec!["p0", "p1", "p2"]);
    req.start = None;
    req.cursor = p2.cursor.clone();
    let p3 = g.poll_changes(req.clone()).await.expect("page 3");
    let ids: Vec<&str> = p3
        .blocks
        .iter()
        .map(|b| b.cause.graph_commit_id.as_str())
        .collect();
    assert_eq!(ids, vec![c3.as_str()]);
    assert_eq!(p3.caught_up, Some(true));
    // At least once: the same cursor gives the same block again.
    let again = g.poll_changes(req.clone()).await.expect("again");
    assert_eq!(again.blocks[0].cause.graph_commit_id, c3.to_string());
    let p4 = p3;

    // A cursor binds its branch and filters; a start and a cursor
    // together, a bad start, a commit off the chain are refused.
    g.create_branch(&branch_name("other"), "main", "writer")
        .await
        .expect("branch");
    let wrong = |r: Result<_, EngineError>| match r {
        Err(e @ EngineError::CursorRejected { .. }) => e.to_string(),
        other => panic!("expected a rejected cursor, got {other:?}"),
    };
    let m = wrong(
        g.poll_changes(FeedRequest {
            branch: Some("other".into()),
            cursor: p4.cursor.clone(),
            ..Default::default()
        })
        .await,
    );
    assert!(m.contains("follows branch `main`"), "{m}");
    let m = wrong(
        g.poll_changes(FeedRequest {
            cursor: p4.cursor.clone(),
            filter: ChangeFilter {
                kinds: vec![EntityKind::Node],
                ..Default::default()
            },
            ..Default::default()
        })
        .await,
    );
    assert!(m.contains("filters"), "{m}");
    wrong(
        g.poll_changes(FeedRequest {
            cursor: p4.cursor.clone(),
            start: Some(FeedStart::Beginning),
            ..Default::default()
        })
        .await,
    );
    load_str(
        &g,
        "{\"type\":\"Person\",\"data\":{\"slug\":\"o\",\"name\":\"O\"}}\n",
        LoadMode::Merge,
        "other",
    )
    .await
    .expect("other");
    let off = head(&g, "other").await;
    let m = wrong(
        g.poll_changes(FeedRequest {
            start: Some(FeedStart::After(off)),
            ..Default::default()
        })
        .await,
    );
    assert!(m.contains("first-parent history"), "{m}");
    assert!(matches!(
        g.poll_changes(FeedRequest {
            limit: Some(10_001),
            start: Some(FeedStart::Beginning),
            ..Default::default()
        })
        .await,
        Err(EngineError::ChangeLimit {
            asked: 10_001,
            max: 10_000
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_history_is_a_gap_not_a_wrong_answer() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    let c1 = people(&g, 0, 1).await;
    let cursor = g
        .poll_changes(FeedRequest {
            start: Some(FeedStart::After(c1.clone())),
            ..Default::default()
        })
        .await
        .expect("cursor")
        .cursor;
    let c2 = people(&g, 1, 1).await;
    people(&g, 2, 1).await;
    // The record of c2 goes, as cleanup removes what it does not keep.
    std::fs::remove_file(tmp.path().join(format!("g/_graph/commits/{c2}.json"))).expect("rm");
    let fresh = Graph::open(tmp.path().join("g").to_str().expect("utf8"))
        .await
        .expect("open");
    match fresh
        .poll_changes(FeedRequest {
            cursor: cursor.clone(),
            ..Default::default()
        })
        .await
    {
        Err(EngineError::ChangeFeedGap {
            cursor: c,
            first_unreadable,
        }) => {
            assert_eq!(c, cursor);
            assert_eq!(first_unreadable, c2.to_string());
        }
        other => panic!("expected a gap, got {other:?}"),
    }
    // A baseline restarts the follower at the head.
    let (at, resume) = fresh
        .capture_baseline("main", ChangeFilter::default())
        .await
        .expect("baseline");
    assert_eq!(at, head(&fresh, "main").await);
    let p = fresh
        .poll_changes(FeedRequest {
            cursor: Some(resume),
            ..Default::default()
        })
        .await
        .expect("resumed");
    assert!(p.blocks.is_empty() && p.caught_up == Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_change_is_refused_not_guessed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    people(&g, 0, 2).await;
    let grown = crate::support::SMALL.replace(
        "    vec: Vector(2)?\n",
        "    vec: Vector(2)?\n    nick: String?\n",
    );
    assert_ne!(grown, crate::support::SMALL);
    let applied = g
        .apply_schema("grown.pg", &grown, false, "migrator")
        .await
        .expect("apply")
        .commit
        .expect("a schema commit")
        .id;
    match g.commit_changes(&applied, &ChangeFilter::default()).await {
        Err(EngineError::ChangeRefused {
            reason, type_name, ..
        }) => {
            assert_eq!(reason, RefusalReason::SchemaBoundary);
            assert_eq!(type_name.as_deref(), Some("Person"));
        }
        other => panic!("expected a schema boundary, got {other:?}"),
    }
    // The commits after it diff in the new schema.
    let next = people(&g, 2, 1).await;
    let cs = changes_of(&g, &next).await;
    assert_eq!(
        ops(&cs),
        vec![(ChangeOp::Insert, "Person".into(), "p2".into())]
    );
    assert!(
        cs[0]
            .after
            .as_ref()
            .expect("after")
            .properties
            .contains_key("nick")
    );
}
