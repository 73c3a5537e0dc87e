//! `cleanup` and `optimize` (reference docs/user/operations/maintenance.md):
//! after many commits `cleanup --keep 10` shrinks the graph's files and
//! bytes, the kept commits read the same rows, a write during the cleanup
//! lands, a branch forked long ago still reads and merges, and time
//! travel below the window is a clear `HistoryRemoved`.

use std::path::Path;

use omnigraph::engine::cleanup::CleanupPolicy;
use omnigraph::engine::load::LoadMode;
use omnigraph::engine::{CommitId, EngineError, Graph, ReadAt};

use crate::support::{branch_name, export_sorted, head, load_str, small};

/// Files and bytes under `dir`.
fn usage(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for e in walk(dir) {
        files += 1;
        bytes += e;
    }
    (files, bytes)
}

fn walk(dir: &Path) -> Vec<u64> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(m.len());
        }
    }
    out
}

async fn person(g: &Graph, i: usize, branch: &str) -> CommitId {
    load_str(
        g,
        &format!(
            "{{\"type\":\"Person\",\"data\":{{\"slug\":\"p{i}\",\"name\":\"P{i}\",\"age\":{}}}}}\n",
            i % 100
        ),
        LoadMode::Merge,
        branch,
    )
    .await
    .expect("load")
    .commit
    .expect("commit")
    .id
}

/// `OMNIGRAPH_CLEANUP_TEST_COMMITS` (1,000) commits on main, a branch
/// forked at the start, then `cleanup --keep 10` while a writer commits
/// to the branch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_keeps_the_window_and_removes_the_rest() {
    let commits: usize = std::env::var("OMNIGRAPH_CLEANUP_TEST_COMMITS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    person(&g, 0, "main").await;
    g.create_branch(&branch_name("side"), "main", "t")
        .await
        .expect("branch");
    person(&g, 100_000, "side").await;
    for i in 1..commits {
        person(&g, i, "main").await;
    }
    let history = g.commits("main").await.expect("history");
    assert!(history.len() > commits, "{} commits", history.len());
    let kept: Vec<CommitId> = history.iter().take(10).map(|c| c.id.clone()).collect();
    let removed = history[20].id.clone();
    let mut before = Vec::new();
    for id in &kept {
        before.push(export_sorted(&g, &ReadAt::Commit(id.clone())).await);
    }
    let side_before = export_sorted(&g, &ReadAt::Branch("side".into())).await;
    let (files0, bytes0) = usage(&tmp.path().join("g"));
    // A handle that knows a commit the cleanup will remove.
    let stale = Graph::open(tmp.path().join("g").to_str().expect("utf8"))
        .await
        .expect("open");
    stale
        .commit(&removed)
        .await
        .expect("known before the cleanup");

    // A dry run removes nothing.
    let policy = CleanupPolicy {
        keep: Some(10),
        older_than_ms: None,
    };
    let dry = g.cleanup(policy, false).await.expect("dry run");
    assert!(!dry.confirmed && dry.commits_removed > 0 && dry.versions_removed() > 0);
    assert_eq!(
        usage(&tmp.path().join("g")),
        (files0, bytes0),
        "a dry run removes nothing"
    );

    // The cleanup, while another handle writes to the branch.
    let writer = {
        let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
        tokio::spawn(async move {
            let w = Graph::open(&uri).await.expect("open");
            let mut ids = Vec::new();
            for i in 0..10 {
                ids.push(person(&w, 200_000 + i, "side").await);
            }
            ids
        })
    };
    let r = g.cleanup(policy, true).await.expect("cleanup");
    let written = writer.await.expect("writer");
    let (files1, bytes1) = usage(&tmp.path().join("g"));
    eprintln!(
        "cleanup --keep 10 after {} commits: files {files0} -> {files1}, bytes {bytes0} -> {bytes1}; {} commits removed, {} table versions, {} files, {} bytes (Lance's count)",
        history.len(),
        r.commits_removed,
        r.versions_removed(),
        r.files_removed(),
        r.bytes_removed()
    );
    assert!(r.tables.iter().all(|t| t.error.is_none()), "{:?}", r.tables);
    assert!(
        files1 < files0 / 2 && bytes1 < bytes0,
        "files {files0} -> {files1}, bytes {bytes0} -> {bytes1}"
    );

    // The kept commits read the same rows; the removed ones are gone.
    for (id, rows) in kept.iter().zip(&before) {
        assert_eq!(
            &export_sorted(&g, &ReadAt::Commit(id.clone())).await,
            rows,
            "commit {id}"
        );
    }
    match g.view(&ReadAt::Commit(removed.clone())).await {
        Err(EngineError::HistoryRemoved { id }) => assert_eq!(id, removed.to_string()),
        other => panic!("expected HistoryRemoved, got {:?}", other.map(|v| v.commit)),
    }
    let fresh = Graph::open(tmp.path().join("g").to_str().expect("utf8"))
        .await
        .expect("open");
    assert_eq!(fresh.commits("main").await.expect("history").len(), 10);

    // The writes made during the cleanup landed, and the branch (forked
    // at the start) still reads and merges.
    let side = export_sorted(&fresh, &ReadAt::Branch("side".into())).await;
    assert_eq!(side.len(), side_before.len() + written.len());
    assert_eq!(
        head(&fresh, "side").await,
        written.last().cloned().expect("writes")
    );
    for id in &written {
        fresh
            .view(&ReadAt::Commit(id.clone()))
            .await
            .expect("a write of the cleanup's time");
    }
    let main_rows = export_sorted(&fresh, &ReadAt::Branch("main".into()))
        .await
        .len();
    fresh
        .merge("side", "main", "t", false)
        .await
        .expect("merge after cleanup");
    assert_eq!(
        export_sorted(&fresh, &ReadAt::Branch("main".into()))
            .await
            .len(),
        main_rows + written.len() + 1
    );
    // Writes go on.
    person(&fresh, 300_000, "main").await;

    // No window is a usage error.
    assert!(matches!(
        fresh.cleanup(CleanupPolicy::default(), false).await,
        Err(EngineError::Source { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_builds_a_declared_index_and_then_has_nothing_to_do() {
    let tmp = tempfile::tempdir().expect("tmp");
    let g = small(tmp.path()).await;
    for i in 0..3 {
        person(&g, i, "main").await;
    }
    // An index declared after the data exists.
    let indexed = crate::support::SMALL.replace("    age: I32?\n", "    age: I32? @index\n");
    assert_ne!(indexed, crate::support::SMALL);
    g.apply_schema("indexed.pg", &indexed, false, "t")
        .await
        .expect("apply");
    let g = Graph::open(tmp.path().join("g").to_str().expect("utf8"))
        .await
        .expect("open");
    let due = g
        .upkeep_due("main", &omnigraph::engine::node_key("Person"))
        .await
        .expect("due");
    let steps = g.optimize().await.expect("optimize");
    assert!(
        due.is_empty() || !steps.is_empty(),
        "what was due ({due:?}) was done: {steps:?}"
    );
    assert!(
        g.upkeep_due("main", &omnigraph::engine::node_key("Person"))
            .await
            .expect("due")
            .is_empty(),
        "nothing due after optimize"
    );
    assert!(
        g.optimize().await.expect("again").is_empty(),
        "a second run has nothing to do"
    );
}
