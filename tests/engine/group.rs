//! The write path through the engine API: group commit (several prepared
//! writes committed in one turn, each its own commit), its fallback when
//! members conflict, and concurrent writers on one handle whose reads move
//! under them (prepared again in the commit step).

use omnigraph::engine::{Graph, PreparedWrite, ReadAt};

use super::support::runtime;
use omnigraph::query::compile_queries;
use serde_json::json;

const SCHEMA: &str = "node Item {\n  key: String @key\n  n: I64\n}\nedge Link: Item -> Item\n";
const QUERIES: &str = "
query add($k: String, $n: I64) { insert Item { key: $k, n: $n } }
query link($a: String, $b: String) { insert Link { from: $a, to: $b } }
query count_items() { match { $a: Item } return { count($a) as n } }
query item($k: String) { match { $a: Item { key: $k } } return { $a.n } }
query count_links() { match { $a: Item  $a link $b } return { count($b) as n } }
";

async fn prepare(g: &Graph, name: &str, params: serde_json::Value, actor: &str) -> PreparedWrite {
    super::support::prepare(g, QUERIES, name, params, actor).await
}

async fn count(g: &Graph, name: &str, at: &ReadAt) -> i64 {
    let compiled = compile_queries(&g.catalog(), QUERIES);
    let r = g
        .query(compiled.query(name).expect("query"), &json!({}), at)
        .await
        .expect("read");
    r.rows
        .first()
        .and_then(|row| row["n"].as_i64())
        .unwrap_or(0)
}

#[test]
fn a_group_publishes_once_and_keeps_each_write_as_its_own_commit() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = Graph::init(&uri, "s.pg", SCHEMA).await.expect("init");
        let mut writes = Vec::new();
        for (i, actor) in ["alice", "bob", "carol"].iter().enumerate() {
            writes.push(prepare(&g, "add", json!({"k": format!("k{i}"), "n": i}), actor).await);
        }
        let turn = g.begin_write("test").await.expect("turn");
        let answers = g.commit_group_here(writes).await;
        drop(turn);
        let reports: Vec<_> = answers
            .into_iter()
            .map(|r| r.expect("each write commits"))
            .collect();
        // One manifest version for the whole group.
        let versions: Vec<_> = reports.iter().map(|r| r.manifest_version).collect();
        assert!(versions.iter().all(|v| *v == versions[0]), "{versions:?}");
        // Each write has its own commit, chained in queue order.
        let commits = g.commits("main").await.expect("commits");
        let actors: Vec<&str> = commits.iter().map(|c| c.actor.as_str()).collect();
        assert_eq!(actors, vec!["carol", "bob", "alice", "init"]);
        for pair in commits.windows(2) {
            assert_eq!(pair[0].parents, vec![pair[1].id.clone()]);
        }
        for (r, c) in reports.iter().zip(commits.iter().rev().skip(1)) {
            assert_eq!(r.commit.as_ref().map(|x| &x.id), Some(&c.id));
        }
        // Time travel to each member sees exactly the writes up to it.
        for (i, c) in commits.iter().rev().enumerate() {
            let at = ReadAt::Commit(c.id.clone());
            assert_eq!(
                count(&g, "count_items", &at).await,
                i as i64,
                "at {}",
                c.actor
            );
        }
        assert_eq!(
            count(&g, "count_items", &ReadAt::Branch("main".into())).await,
            3
        );
        // The chain's files were written through the commit's store
        // (`storage::local`): no staging file is left beside them, and
        // Lance opening the table at its latest version, as another
        // process would, finds the newest manifest.
        let (dir, newest) = versions_dir_and_newest(tmp.path(), "Item");
        let table = dir.parent().expect("table dir");
        assert_eq!(staging_files(table), Vec::<String>::new());
        let latest = lance::Dataset::open(table.to_str().expect("utf8"))
            .await
            .expect("open latest");
        assert_eq!(latest.version().version, newest, "latest is the newest");
        // Nothing pending.
        assert!(g.recover("check").await.expect("heal").is_empty());
    });
}

/// The `_versions` directory of the one table under `root` whose path
/// contains `table`, and that table's newest manifest version (from the
/// file names: `N.manifest`, or `u64::MAX - N` zero-padded in Lance's V2
/// naming).
fn versions_dir_and_newest(root: &std::path::Path, table: &str) -> (std::path::PathBuf, u64) {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "_versions") {
                    out.push(p);
                } else {
                    walk(&p, out);
                }
            }
        }
    }
    let mut dirs = Vec::new();
    walk(root, &mut dirs);
    let dirs: Vec<_> = dirs
        .into_iter()
        .filter(|d| d.to_string_lossy().contains(table))
        .collect();
    assert_eq!(
        dirs.len(),
        1,
        "one _versions directory for {table}: {dirs:?}"
    );
    let newest = std::fs::read_dir(&dirs[0])
        .expect("versions")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n: u64 = name.strip_suffix(".manifest")?.parse().ok()?;
            Some(if n > u64::MAX / 2 { u64::MAX - n } else { n })
        })
        .max()
        .expect("a manifest");
    (dirs[0].clone(), newest)
}

/// Files under `dir` whose name holds a `#` (a staging file of a put).
fn staging_files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(staging_files(&p));
        } else if p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains('#'))
        {
            out.push(p.display().to_string());
        }
    }
    out
}

#[test]
fn members_that_conflict_are_committed_one_by_one() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = Graph::init(&uri, "s.pg", SCHEMA).await.expect("init");
        // Two upserts of one key, prepared against the same head: the
        // later one wins, both are acknowledged, each is a commit.
        let w1 = prepare(&g, "add", json!({"k": "same", "n": 1}), "first").await;
        let w2 = prepare(&g, "add", json!({"k": "same", "n": 2}), "second").await;
        let turn = g.begin_write("test").await.expect("turn");
        let answers = g.commit_group_here(vec![w1, w2]).await;
        drop(turn);
        for a in &answers {
            assert!(a.is_ok(), "{a:?}");
        }
        let main = ReadAt::Branch("main".into());
        assert_eq!(count(&g, "count_items", &main).await, 1);
        let compiled = compile_queries(&g.catalog(), QUERIES);
        let r = g
            .query(
                compiled.query("item").expect("q"),
                &json!({"k": "same"}),
                &main,
            )
            .await
            .expect("read");
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0]["n"], json!(2));
        let commits = g.commits("main").await.expect("commits");
        assert_eq!(commits.len(), 3, "{commits:#?}");
        assert!(g.recover("check").await.expect("heal").is_empty());
        // Updates of two different rows of one fragment share a group (or,
        // if Lance finds them in conflict, fall back); either way both land.
        let w1 = prepare(&g, "add", json!({"k": "same", "n": 10}), "fifth").await;
        let w2 = prepare(&g, "add", json!({"k": "next", "n": 11}), "sixth").await;
        let turn = g.begin_write("test").await.expect("turn");
        let answers = g.commit_group_here(vec![w1, w2]).await;
        drop(turn);
        for a in &answers {
            assert!(a.is_ok(), "{a:?}");
        }
        assert_eq!(count(&g, "count_items", &main).await, 2);
        let r = g
            .query(
                compiled.query("item").expect("q"),
                &json!({"k": "same"}),
                &main,
            )
            .await
            .expect("read");
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0]["n"], json!(10));
        assert!(g.recover("check").await.expect("heal").is_empty());
        // A write whose reads an earlier member writes (an edge checks its
        // endpoints) is not grouped with it; prepared without a way to
        // prepare again, its commit answers a conflict naming the table.
        let w3 = prepare(&g, "add", json!({"k": "other", "n": 3}), "third").await;
        let w4 = prepare(&g, "link", json!({"a": "same", "b": "same"}), "fourth").await;
        let turn = g.begin_write("test").await.expect("turn");
        let answers = g.commit_group_here(vec![w3, w4]).await;
        drop(turn);
        assert!(answers[0].is_ok(), "{:?}", answers[0]);
        let err = answers[1].as_ref().expect_err("stale").to_string();
        assert!(err.contains("node:Item"), "{err}");
        assert_eq!(count(&g, "count_links", &main).await, 0);
    });
}

#[test]
fn an_insert_staged_before_another_turn_inserted_its_key_becomes_an_update() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = Graph::init(&uri, "s.pg", SCHEMA).await.expect("init");
        // All three staged against the same head, as inserts.
        let first = prepare(&g, "add", json!({"k": "x", "n": 1}), "first").await;
        let other = prepare(&g, "add", json!({"k": "y", "n": 2}), "other").await;
        let again = prepare(&g, "add", json!({"k": "x", "n": 3}), "again").await;
        let turn = g.begin_write("test").await.expect("turn");
        let a = g.commit_group_here(vec![first]).await;
        drop(turn);
        assert!(a[0].is_ok(), "{a:?}");
        // The next turn commits over a version that inserted `x`: `y` may
        // keep its staging, `x` must become an update of the row, not a
        // second row with the same key.
        let turn = g.begin_write("test").await.expect("turn");
        let answers = g.commit_group_here(vec![other, again]).await;
        drop(turn);
        for a in &answers {
            assert!(a.is_ok(), "{a:?}");
        }
        let main = ReadAt::Branch("main".into());
        assert_eq!(count(&g, "count_items", &main).await, 2);
        let compiled = compile_queries(&g.catalog(), QUERIES);
        let item = compiled.query("item").expect("q");
        let r = g
            .query(item, &json!({"k": "x"}), &main)
            .await
            .expect("read");
        assert_eq!(r.rows.len(), 1, "{:?}", r.rows);
        assert_eq!(r.rows[0]["n"], json!(3));
        // The same through the one-write path: staged before a commit that
        // inserted its key, committed alone.
        let late = prepare(&g, "add", json!({"k": "z", "n": 4}), "late").await;
        let late_again = prepare(&g, "add", json!({"k": "z", "n": 5}), "late-again").await;
        g.commit_prepared(late).await.expect("late");
        g.commit_prepared(late_again).await.expect("late again");
        assert_eq!(count(&g, "count_items", &main).await, 3);
        let r = g
            .query(item, &json!({"k": "z"}), &main)
            .await
            .expect("read");
        assert_eq!(r.rows.len(), 1, "{:?}", r.rows);
        assert_eq!(r.rows[0]["n"], json!(5));
        // Each member's commit still sees exactly the writes up to it.
        let commits = g.commits("main").await.expect("commits");
        let counts: Vec<i64> = {
            let mut v = Vec::new();
            for c in commits.iter().rev() {
                v.push(count(&g, "count_items", &ReadAt::Commit(c.id.clone())).await);
            }
            v
        };
        assert_eq!(counts, vec![0, 1, 2, 2, 3, 3]);
        assert!(g.recover("check").await.expect("heal").is_empty());
    });
}

#[test]
fn concurrent_writers_on_one_handle_all_commit() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = Graph::init(&uri, "s.pg", SCHEMA).await.expect("init");
        let compiled = compile_queries(&g.catalog(), QUERIES);
        let add = compiled.query("add").expect("add");
        let link = compiled.query("link").expect("link");
        for i in 0..4 {
            g.mutate(add, &json!({"k": format!("n{i}"), "n": i}), "main", "setup")
                .await
                .expect("node");
        }
        // Sixteen edge inserts at once (every ordered pair of the four
        // nodes, so each is its own traversal): each reads the node and edge tables
        // the others write, so most find their reads moved at commit and
        // are prepared again there; none may fail.
        let jobs = (0..16).map(|i| {
            let g = g.clone();
            let link = link.clone();
            async move {
                g.mutate(
                    &link,
                    &json!({"a": format!("n{}", i / 4), "b": format!("n{}", i % 4)}),
                    "main",
                    &format!("w{i}"),
                )
                .await
            }
        });
        for r in futures::future::join_all(jobs).await {
            r.expect("every concurrent write commits");
        }
        let main = ReadAt::Branch("main".into());
        assert_eq!(count(&g, "count_links", &main).await, 16);
        let commits = g.commits("main").await.expect("commits");
        assert_eq!(commits.len(), 1 + 4 + 16);
    });
}
