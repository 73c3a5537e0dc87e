//! Warm handles: what a handle remembers between writes (the newest
//! manifest, kept dataset handles, a commit handle that knows the head) and
//! the upkeep it puts off must never change what a write or a read sees.

use omnigraph::engine::{Graph, ReadAt, TableKey};

use super::support::runtime;
use omnigraph::query::compile_queries;
use serde_json::json;

const SCHEMA: &str =
    "node Item {\n  key: String @key\n  body: String? @index\n}\nedge Link: Item -> Item\n";
const QUERIES: &str = "
query add($k: String) { insert Item { key: $k } }
query doc($k: String, $b: String) { insert Item { key: $k, body: $b } }
query item($k: String) { match { $a: Item { key: $k } } return { $a.key } }
query fz($q: String) { match { $a: Item  fuzzy($a.body, $q) } return { $a.key } }
query all() { match { $a: Item } return { $a.key } }
query body($k: String) { match { $a: Item { key: $k } } return { $a.body } }
query del($k: String) { delete Item where key = $k }
";

async fn mutate(g: &Graph, name: &str, params: serde_json::Value) {
    let compiled = compile_queries(&g.catalog(), QUERIES);
    g.mutate(
        compiled.query(name).expect("query"),
        &params,
        "main",
        "test",
    )
    .await
    .unwrap_or_else(|e| panic!("{name} {params}: {e}"));
}

async fn keys(g: &Graph, name: &str, params: serde_json::Value) -> Vec<String> {
    let compiled = compile_queries(&g.catalog(), QUERIES);
    let r = g
        .query(
            compiled.query(name).expect("query"),
            &params,
            &ReadAt::Branch("main".into()),
        )
        .await
        .expect("read");
    let mut out: Vec<String> = r
        .rows
        .iter()
        .filter_map(|row| row.values().next().and_then(|v| v.as_str()))
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// Key lookups between index upkeeps: rows in fragments the key index does
/// not cover yet are found, and inserting a key again updates its one row.
#[test]
fn lookups_see_rows_the_deferred_index_does_not_cover() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = Graph::init(&uri, "s.pg", SCHEMA).await.expect("init");
        for i in 0..13 {
            let k = format!("k{i:02}");
            mutate(&g, "add", json!({"k": k})).await;
            // Every row so far, whether or not an upkeep ran since.
            for j in 0..=i {
                let kj = format!("k{j:02}");
                assert_eq!(keys(&g, "item", json!({"k": kj})).await, vec![kj.clone()]);
            }
            // A keyed insert of a key already there updates it (an
            // upsert): it must find the row wherever it is, not add one.
            mutate(&g, "add", json!({"k": k})).await;
            assert_eq!(keys(&g, "item", json!({"k": k})).await, vec![k.clone()]);
        }
    });
}

/// `fuzzy` finds a row the moment it is written, while the full-text index
/// does not cover its fragment yet (Lance's flat search of uncovered
/// fragments knows no fuzziness; `table::full_text` completes it).
#[test]
fn fuzzy_search_finds_a_row_written_just_before() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = Graph::init(&uri, "s.pg", SCHEMA).await.expect("init");
        mutate(&g, "doc", json!({"k": "d0", "b": "graph lance"})).await;
        mutate(&g, "doc", json!({"k": "d1", "b": "vector search"})).await;
        assert_eq!(keys(&g, "fz", json!({"q": "grapf"})).await, vec!["d0"]);
        mutate(&g, "doc", json!({"k": "d2", "b": "databse"})).await;
        assert_eq!(keys(&g, "fz", json!({"q": "database"})).await, vec!["d2"]);
        mutate(&g, "doc", json!({"k": "d3", "b": "graphs"})).await;
        assert_eq!(
            keys(&g, "fz", json!({"q": "graph"})).await,
            vec!["d0", "d3"]
        );
    });
}

/// Upkeep left to the background (what the GraphActor's handle does):
/// writes commit without it and reads stay exact meanwhile; `upkeep_once`
/// compacts and extends the indexes outside the commit step, moves the
/// table's published version without recording a commit, and time travel
/// to the earlier commits reads what it read before.
#[test]
fn background_upkeep_catches_up_without_commits() {
    use omnigraph::engine::upkeep::UpkeepDone;
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = upkept(&uri).await;
        let all: Vec<String> = (0..14).map(|i| format!("k{i:02}")).collect();
        for (i, k) in all.iter().enumerate() {
            mutate(&g, "doc", json!({"k": k, "b": format!("graph w{i}")})).await;
        }
        let item = TableKey::node("Item");
        assert_eq!(g.upkeep_pending(), 1, "the one table written wants upkeep");
        let due = g.upkeep_due("main", &item).await.expect("due");
        assert!(due.contains(&"compaction".to_string()), "{due:?}");
        // Exact before any upkeep: keys through the uncovered fragments,
        // fuzzy through its own search of them.
        for k in &all {
            assert_eq!(keys(&g, "item", json!({"k": k})).await, vec![k.clone()]);
        }
        assert_eq!(keys(&g, "fz", json!({"q": "grapf"})).await, all);
        let history = g.commits("main").await.expect("history");
        // Newest first: the 14th newest made the first row.
        let first = history[all.len() - 1].clone();
        let before = g.manifest().await.expect("m").branches["main"].tables[&item].clone();

        let mut done = Vec::new();
        for _ in 0..10 {
            match g.upkeep_once().await.expect("upkeep") {
                UpkeepDone::Idle => break,
                UpkeepDone::NothingDue { .. } => {}
                UpkeepDone::Published { what, .. } => done.push(what),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(g.upkeep_pending(), 0);
        assert_eq!(
            done.first().map(String::as_str),
            Some("compaction"),
            "{done:?}"
        );
        assert!(done.iter().any(|w| w.contains("body_fts")), "{done:?}");
        assert!(g.upkeep_due("main", &item).await.expect("due").is_empty());
        let after = g.manifest().await.expect("m").branches["main"].tables[&item].clone();
        assert!(after.version > before.version, "{before:?} -> {after:?}");
        assert_eq!(
            g.commits("main").await.expect("history").len(),
            history.len(),
            "upkeep records no commit"
        );
        for k in &all {
            assert_eq!(keys(&g, "item", json!({"k": k})).await, vec![k.clone()]);
        }
        assert_eq!(keys(&g, "fz", json!({"q": "grapf"})).await, all);
        // The first commit still reads its one row.
        let compiled = compile_queries(&g.catalog(), QUERIES);
        let then = g
            .query(
                compiled.query("fz").expect("query"),
                &json!({"q": "graph"}),
                &ReadAt::Commit(first.id.clone()),
            )
            .await
            .expect("time travel");
        assert_eq!(then.rows.len(), 1, "{:?}", then.rows);
        // A write after upkeep commits on the upkept version.
        mutate(&g, "doc", json!({"k": "k99", "b": "graph late"})).await;
        assert_eq!(keys(&g, "item", json!({"k": "k99"})).await, vec!["k99"]);
        assert_eq!(g.upkeep_pending(), 1);
    });
}

/// A handle with its own upkeep task (`Graph::with_upkeep_task`, a
/// long-lived embedded handle): writes leave upkeep out of their commit
/// step, and the task compacts and extends the indexes by itself soon
/// after, with no call from the user, recording no commit. Made outside a
/// tokio runtime, the handle keeps upkeep in its commit step.
#[test]
fn an_upkeep_task_catches_up_by_itself() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    let item = TableKey::node("Item");
    let all: Vec<String> = (0..14).map(|i| format!("k{i:02}")).collect();
    rt.block_on(async {
        let g = Graph::init(&uri, "s.pg", SCHEMA)
            .await
            .expect("init")
            .with_upkeep_task();
        for (i, k) in all.iter().enumerate() {
            mutate(&g, "doc", json!({"k": k, "b": format!("graph w{i}")})).await;
        }
        let commits = g.commits("main").await.expect("history").len();
        let started = std::time::Instant::now();
        loop {
            let due = g.upkeep_due("main", &item).await.expect("due");
            if due.is_empty() && g.upkeep_pending() == 0 {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(60),
                "the upkeep task never caught up: still due {due:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(
            g.commits("main").await.expect("history").len(),
            commits,
            "upkeep records no commit"
        );
        for k in &all {
            assert_eq!(keys(&g, "item", json!({"k": k})).await, vec![k.clone()]);
        }
        assert_eq!(keys(&g, "fz", json!({"q": "grapf"})).await, all);
    });

    // Outside a runtime: unchanged, so the commit step runs upkeep when due.
    let other = tmp.path().join("h").to_str().expect("utf8").to_string();
    let g = rt
        .block_on(Graph::init(&other, "s.pg", SCHEMA))
        .expect("init")
        .with_upkeep_task();
    rt.block_on(async {
        for (i, k) in all.iter().enumerate() {
            mutate(&g, "doc", json!({"k": k, "b": format!("graph w{i}")})).await;
        }
        assert_eq!(g.upkeep_pending(), 0, "nothing left to a task");
        assert!(g.upkeep_due("main", &item).await.expect("due").is_empty());
    });
}

/// A new graph of [`SCHEMA`] at `uri` whose upkeep waits for
/// [`drain_upkeep`] (or `Graph::upkeep_once`) instead of running in the
/// commit step.
async fn upkept(uri: &str) -> Graph {
    Graph::init(uri, "s.pg", SCHEMA)
        .await
        .expect("init")
        .with_background_upkeep()
}

/// Runs upkeep steps until nothing is wanted; what each published step did.
async fn drain_upkeep(g: &Graph) -> Vec<String> {
    use omnigraph::engine::upkeep::UpkeepDone;
    let mut done = Vec::new();
    for _ in 0..20 {
        match g.upkeep_once().await.expect("upkeep") {
            UpkeepDone::Idle => break,
            UpkeepDone::Published { what, .. } => done.push(what),
            _ => {}
        }
    }
    done
}

/// The `Item` table's index segments (name, uuid) and fragment count at
/// its published version on main.
/// The `Item` table as `main` publishes it.
async fn item_dataset(g: &Graph, root: &std::path::Path) -> lance::Dataset {
    use omnigraph::storage::table::{TableAt, open};
    let r = g.manifest().await.expect("m").branches["main"].tables[&TableKey::node("Item")].clone();
    open(&TableAt {
        uri: root
            .join("nodes")
            .join("Item.lance")
            .to_str()
            .expect("utf8")
            .to_string(),
        branch: r.lance_branch.clone(),
        version: r.version,
    })
    .await
    .expect("open")
}

async fn item_indexes(g: &Graph, root: &std::path::Path) -> (Vec<(String, String)>, usize) {
    use lance::index::DatasetIndexExt;
    let ds = item_dataset(g, root).await;
    let mut segments: Vec<(String, String)> = ds
        .load_indices()
        .await
        .expect("indices")
        .iter()
        .map(|i| (i.name.clone(), i.uuid.to_string()))
        .collect();
    segments.sort();
    (segments, ds.get_fragments().len())
}

/// Single-row writes after an index build leave small fragments no index
/// covers. Once there are more than four, upkeep merges those on their own
/// (`table::compaction_due`): every index keeps the very segments it had
/// (Lance remapped none, as nothing they cover was rewritten), the merged
/// fragment waits for the row bound before an index extension, and every
/// lookup and `fuzzy` search stays exact throughout.
#[test]
fn uncovered_fragments_are_merged_without_remapping_any_index() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("g");
    let uri = root.to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = upkept(&uri).await;
        mutate(&g, "doc", json!({"k": "k00", "b": "graph w0"})).await;
        let built = drain_upkeep(&g).await;
        assert!(built.iter().any(|w| w.contains("index build")), "{built:?}");
        let (segments, fragments) = item_indexes(&g, &root).await;
        assert!(segments.len() >= 2, "id and body indexes: {segments:?}");
        assert_eq!(fragments, 1);

        let mut all = vec!["k00".to_string()];
        for i in 1..=4 {
            let k = format!("k{i:02}");
            mutate(&g, "doc", json!({"k": k, "b": format!("graph w{i}")})).await;
            all.push(k);
            assert_eq!(
                drain_upkeep(&g).await,
                Vec::<String>::new(),
                "nothing due at {i}"
            );
        }
        assert_eq!(item_indexes(&g, &root).await, (segments.clone(), 5));
        mutate(&g, "doc", json!({"k": "k05", "b": "graph w5"})).await;
        all.push("k05".to_string());
        let done = drain_upkeep(&g).await;
        assert_eq!(done, vec!["compaction".to_string()], "only the merge");
        // The one covered fragment and the merged five.
        assert_eq!(item_indexes(&g, &root).await, (segments.clone(), 2));
        for k in &all {
            assert_eq!(keys(&g, "item", json!({"k": k})).await, vec![k.clone()]);
        }
        assert_eq!(keys(&g, "fz", json!({"q": "grapf"})).await, all);
    });
}

/// An upsert staged beside fragments the key index does not cover reads
/// them only when one may hold its id (`storage/table/covered.rs`): a key
/// in a covered fragment, a key in an uncovered one, a key deleted and
/// written again, and a new key each end as exactly one row holding the
/// values written last, and the uncovered fragments' rows stay.
#[test]
fn upserts_beside_uncovered_fragments_stay_exact() {
    use lance::index::DatasetIndexExt;
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("g");
    let uri = root.to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = upkept(&uri).await;
        for k in ["a0", "a1", "a2"] {
            mutate(&g, "doc", json!({"k": k, "b": "old"})).await;
        }
        drain_upkeep(&g).await;
        for k in ["b0", "b1", "b2", "b3"] {
            mutate(&g, "doc", json!({"k": k, "b": "old"})).await;
        }
        let ds = item_dataset(&g, &root).await;
        let covered: Vec<u64> = ds
            .load_indices_by_name("id_btree")
            .await
            .expect("id index")
            .iter()
            .flat_map(|s| s.fragment_bitmap.iter().flat_map(|b| b.iter()))
            .map(u64::from)
            .collect();
        let uncovered = ds
            .get_fragments()
            .iter()
            .filter(|f| !covered.contains(&(f.id() as u64)))
            .count();
        assert_eq!(uncovered, 4, "one uncovered fragment per write");
        assert!(ds.get_fragments().len() > 4, "and covered ones");

        // Covered, uncovered, new; then one deleted and written again.
        for k in ["a1", "b1", "c0"] {
            mutate(&g, "doc", json!({"k": k, "b": "new"})).await;
        }
        mutate(&g, "del", json!({"k": "b2"})).await;
        assert_eq!(
            keys(&g, "item", json!({"k": "b2"})).await,
            Vec::<String>::new()
        );
        mutate(&g, "doc", json!({"k": "b2", "b": "again"})).await;
        mutate(&g, "doc", json!({"k": "b3", "b": "new"})).await;

        let all = ["a0", "a1", "a2", "b0", "b1", "b2", "b3", "c0"];
        assert_eq!(keys(&g, "all", json!({})).await, all.map(String::from));
        for (k, want) in [
            ("a0", "old"),
            ("a1", "new"),
            ("a2", "old"),
            ("b0", "old"),
            ("b1", "new"),
            ("b2", "again"),
            ("b3", "new"),
            ("c0", "new"),
        ] {
            assert_eq!(
                keys(&g, "body", json!({"k": k})).await,
                vec![want.to_string()],
                "{k}"
            );
        }
        // The same after upkeep merged and indexed everything.
        drain_upkeep(&g).await;
        assert_eq!(keys(&g, "all", json!({})).await, all.map(String::from));
        assert_eq!(
            keys(&g, "body", json!({"k": "b1"})).await,
            vec!["new".to_string()]
        );
    });
}

/// An append checks its keys against the stored rows through the `id`
/// index for the fragments it covers and answers the uncovered ones once
/// (their ids known exactly, or read: `table::stored_split`): a key in a
/// covered fragment, one an upsert wrote (known only as "at most these",
/// so read), one an append wrote, and one of several rows of an append
/// are each refused; a key deleted since, and a new key, are taken.
#[test]
fn appends_beside_uncovered_fragments_find_every_stored_key() {
    use omnigraph::engine::load::LoadMode;
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    let item = |k: &str| format!("{{\"type\":\"Item\",\"data\":{{\"key\":\"{k}\"}}}}\n");
    rt.block_on(async {
        let g = upkept(&uri).await;
        let append = async |keys: &[&str]| {
            let data: String = keys.iter().map(|k| item(k)).collect();
            crate::support::load_str(&g, &data, LoadMode::Append, "main").await
        };
        append(&["a0", "a1"]).await.expect("covered rows");
        drain_upkeep(&g).await;
        mutate(&g, "doc", json!({"k": "u0", "b": "x"})).await;
        append(&["p0"]).await.expect("one row");
        append(&["q0", "q1", "q2"]).await.expect("three rows");
        append(&["d0"]).await.expect("to delete");
        mutate(&g, "del", json!({"k": "d0"})).await;
        for taken in ["a1", "u0", "p0", "q1"] {
            let err = append(&["n0", taken])
                .await
                .expect_err("a stored key is refused");
            assert!(err.to_string().contains(taken), "{taken}: {err}");
        }
        append(&["d0", "n0"])
            .await
            .expect("a deleted key and a new one");
        let all = ["a0", "a1", "d0", "n0", "p0", "q0", "q1", "q2", "u0"];
        assert_eq!(keys(&g, "all", json!({})).await, all.map(String::from));
        drain_upkeep(&g).await;
        let err = append(&["q2"]).await.expect_err("once indexed too");
        assert!(err.to_string().contains("q2"), "{err}");
    });
}

/// Beside a flood (`Graph::upkeep_once_beside_flood` given the bulk
/// runtime) a compaction that would remap indexes inside its commit turn
/// is held: the indexes due are still extended, nothing is compacted, and
/// the table no longer counts as pending; released at the flood's end, the
/// compaction runs and every row stays found.
#[test]
fn a_flood_holds_the_compaction_that_remaps_indexes() {
    use omnigraph::engine::load::LoadMode;
    use omnigraph::engine::upkeep::UpkeepDone;
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("g");
    let uri = root.to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = upkept(&uri).await;
        let item = TableKey::node("Item");
        // Eleven covered fragments of 1,100 rows: small (under 10,000), so
        // more than ten of them are due for a compaction that remaps.
        for f in 0..11 {
            let data: String = (0..1_100)
                .map(|j| format!("{{\"type\":\"Item\",\"data\":{{\"key\":\"f{f}-{j}\"}}}}\n"))
                .collect();
            crate::support::load_str(&g, &data, LoadMode::Append, "main")
                .await
                .expect("load");
            if f < 10 {
                let done = drain_upkeep(&g).await;
                assert!(!done.contains(&"compaction".to_string()), "{f}: {done:?}");
            }
        }
        let due = g.upkeep_due("main", &item).await.expect("due");
        assert!(due.contains(&"compaction".to_string()), "{due:?}");

        let bulk = tokio::runtime::Handle::current();
        let mut done = Vec::new();
        for _ in 0..20 {
            match g
                .upkeep_once_beside_flood(Some(bulk.clone()))
                .await
                .expect("upkeep")
            {
                UpkeepDone::Idle => break,
                UpkeepDone::Published { what, .. } => done.push(what),
                _ => {}
            }
        }
        assert!(!done.is_empty(), "the new fragment's indexes extended");
        assert!(done.iter().all(|w| w != "compaction"), "{done:?}");
        assert_eq!(g.upkeep_pending(), 0, "held, not pending");
        assert_eq!(item_indexes(&g, &root).await.1, 11, "nothing compacted");
        let due = g.upkeep_due("main", &item).await.expect("due");
        assert_eq!(due, vec!["compaction".to_string()], "only the held one");

        assert_eq!(g.release_held_upkeep(), 1);
        assert_eq!(g.release_held_upkeep(), 0, "released once");
        let done = drain_upkeep(&g).await;
        assert!(done.contains(&"compaction".to_string()), "{done:?}");
        assert!(item_indexes(&g, &root).await.1 < 11, "compacted");
        assert_eq!(keys(&g, "all", json!({})).await.len(), 11 * 1_100);
        for k in ["f0-0", "f5-700", "f10-1099"] {
            assert_eq!(keys(&g, "item", json!({"k": k})).await, vec![k.to_string()]);
        }
    });
}

/// Tables are created without Lance stable row ids (`table::params`: with
/// them every keyed write rebuilt Lance's row-id index of the whole table,
/// a cost that grew with history), and keyed writes stay exact across the
/// compactions and index extensions upkeep runs: a key inserted again
/// after its fragment was merged and indexed updates its one row.
#[test]
fn tables_have_no_stable_row_ids_and_keyed_rewrites_stay_exact() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("g");
    let uri = root.to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = upkept(&uri).await;
        let mut all = Vec::new();
        for i in 0..8 {
            let k = format!("k{i:02}");
            mutate(&g, "doc", json!({"k": k, "b": format!("first w{i}")})).await;
            all.push(k);
            drain_upkeep(&g).await;
        }
        // Merged and indexed by now: fewer fragments than writes.
        let (_, fragments) = item_indexes(&g, &root).await;
        assert!(fragments < 8, "{fragments} fragments after 8 writes");
        for i in [1, 5] {
            let k = format!("k{i:02}");
            mutate(&g, "doc", json!({"k": k, "b": format!("second w{i}")})).await;
            drain_upkeep(&g).await;
        }
        for k in &all {
            assert_eq!(keys(&g, "item", json!({"k": k})).await, vec![k.clone()]);
        }
        assert_eq!(
            keys(&g, "fz", json!({"q": "second"})).await,
            vec!["k01".to_string(), "k05".to_string()]
        );
        assert_eq!(keys(&g, "fz", json!({"q": "first"})).await.len(), 6);
        let ds = item_dataset(&g, &root).await;
        assert!(
            !ds.manifest().uses_stable_row_ids(),
            "created with stable row ids: each keyed write would rebuild the row-id index"
        );
    });
}

/// A batch of an `id` (Utf8, non-null) and a `body` (Utf8) column, the
/// shape of the bare Lance tables the tests below write.
fn id_body_batch(ids: Vec<String>, bodies: Vec<String>) -> arrow_array::RecordBatch {
    use arrow_array::{RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("body", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(ids)),
            Arc::new(StringArray::from(bodies)),
        ],
    )
    .expect("batch")
}

/// Where the bare Lance table of a test lives inside `tmp`.
fn bare_table_uri(tmp: &tempfile::TempDir) -> String {
    tmp.path()
        .join("t.lance")
        .to_str()
        .expect("utf8")
        .to_string()
}

/// [`id_body_batch`] of `ids`, each with `body`.
fn same_body_batch(ids: &[&str], body: &str) -> arrow_array::RecordBatch {
    id_body_batch(
        ids.iter().map(|i| i.to_string()).collect(),
        vec![body.to_string(); ids.len()],
    )
}

/// Tiered index folding on a real Lance table (`table::ensure_indexes`,
/// `table::fold_width`): 40 extensions of two rows each over a 1,000-row
/// base never leave more than `MAX_INDEX_SEGMENTS` segments per index;
/// every fold keeps the base segment, and some keep a middle segment
/// beside it (folding every delta into one beside the base never does);
/// every row stays covered by exactly one segment, and key lookups and
/// full-text searches find every row.
#[test]
fn index_folds_are_tiered_and_lookups_stay_exact() {
    use lance::index::DatasetIndexExt;
    use omnigraph::storage::table::{self, IndexSpec, MAX_INDEX_SEGMENTS, TextMode};

    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp
        .path()
        .join("t.lance")
        .to_str()
        .expect("utf8")
        .to_string();
    let batch = |from: usize, n: usize| {
        let ids: Vec<String> = (from..from + n).map(|i| format!("k{i}")).collect();
        let bodies: Vec<String> = (from..from + n).map(|i| format!("w{i} common")).collect();
        id_body_batch(ids, bodies)
    };
    let specs = vec![
        IndexSpec::Btree("id".into()),
        IndexSpec::FullText("body".into()),
    ];
    let specs_ref = &specs;
    rt.block_on(async {
        let latest = || async { lance::Dataset::open(&uri).await.expect("open") };
        // (uuid, rows covered) per segment of each index, oldest first.
        let segments = |ds: lance::Dataset| async move {
            let rows: std::collections::HashMap<u32, usize> = ds
                .fragments()
                .iter()
                .map(|f| (f.id as u32, f.num_rows().unwrap_or(0)))
                .collect();
            let indices = ds.load_indices().await.expect("indices");
            specs_ref
                .iter()
                .map(|s| {
                    indices
                        .iter()
                        .filter(|i| i.name == s.name())
                        .map(|i| {
                            let covered = i
                                .effective_fragment_bitmap(ds.fragment_bitmap())
                                .map(|b| b.iter().map(|f| rows[&f]).sum())
                                .unwrap_or(0);
                            (i.uuid, covered)
                        })
                        .collect::<Vec<(_, usize)>>()
                })
                .collect::<Vec<_>>()
        };
        table::create_or_replace(&uri, batch(0, 1000))
            .await
            .expect("create");
        table::ensure_indexes(latest().await, &specs)
            .await
            .expect("index");
        let base: Vec<_> = segments(latest().await)
            .await
            .iter()
            .map(|s| s[0].0)
            .collect();
        let mut next = 1000;
        let mut folds_keeping_a_middle_segment = 0;
        let mut folds = 0;
        for _ in 0..40 {
            table::append(latest().await, batch(next, 2))
                .await
                .expect("append");
            next += 2;
            let before = segments(latest().await).await;
            table::ensure_indexes(latest().await, &specs)
                .await
                .expect("extend");
            let after = segments(latest().await).await;
            for (i, segs) in after.iter().enumerate() {
                assert!(segs.len() <= MAX_INDEX_SEGMENTS, "{} segments", segs.len());
                let covered: usize = segs.iter().map(|s| s.1).sum();
                assert_eq!(covered, next, "rows covered by {}", specs[i].name());
                if segs.len() <= before[i].len() {
                    folds += 1;
                    assert_eq!(segs[0].0, base[i], "a fold rewrote the base");
                    if segs.len() > 2 {
                        folds_keeping_a_middle_segment += 1;
                    }
                }
            }
        }
        assert!(folds >= 8, "{folds} folds");
        assert!(
            folds_keeping_a_middle_segment >= 2,
            "{folds_keeping_a_middle_segment} folds kept a middle segment"
        );
        let ds = latest().await;
        for k in [0, 1, 999, 1000, 1031, next - 1] {
            let hits = table::scan_where(&ds, &format!("id = 'k{k}'"))
                .await
                .expect("lookup");
            let n: usize = hits.iter().map(|b| b.num_rows()).sum();
            assert_eq!(n, 1, "k{k}");
            let found = table::full_text(&ds, "body", &format!("w{k}"), TextMode::Any)
                .await
                .expect("search");
            assert_eq!(found.len(), 1, "w{k}: {found:?}");
        }
    });
}

#[test]
fn the_read_cache_stays_bounded_under_steady_writes() {
    // Each write makes a new table version and each read at the head
    // caches that version's state: without a bound the cache kept every
    // version it ever read. Bounded to 6 versions, 30 write+read rounds
    // keep at most 6, and every read still sees its own write.
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = tmp.path().join("g").to_str().expect("utf8").to_string();
    rt.block_on(async {
        let g = Graph::init(&uri, "s.pg", SCHEMA)
            .await
            .expect("init")
            .with_read_cache(6, 1 << 30);
        for i in 0..30 {
            let k = format!("k{i:02}");
            mutate(&g, "doc", json!({"k": k, "b": format!("body {i}")})).await;
            assert_eq!(keys(&g, "item", json!({"k": k})).await, vec![k.clone()]);
            let (entries, _) = g.read_cache_usage();
            assert!(
                entries <= 6,
                "{entries} cached table versions after {i} rounds"
            );
        }
        assert_eq!(keys(&g, "fz", json!({"q": "body"})).await.len(), 30);
        // A byte bound: `all` decodes the whole table into the cache
        // entry of its version; with a 1-byte bound the next version's
        // entry pushes the decoded one out (an entry bound alone would
        // keep all three).
        let g = g.with_read_cache(64, 1);
        for i in 30..33 {
            let k = format!("k{i:02}");
            mutate(&g, "doc", json!({"k": k, "b": format!("body {i}")})).await;
            assert_eq!(keys(&g, "all", json!({})).await.len(), i + 1);
            let (entries, bytes) = g.read_cache_usage();
            assert!(bytes > 0, "the decoded table is counted");
            assert_eq!(entries, 1, "{entries} entries, {bytes} bytes");
        }
    });
}

/// A compaction prepared outside the commit turn commits over the appends
/// that landed since its plan (moved to read the head when its fragments
/// are untouched, `table::commit_upkeep`), and is refused, losing nothing,
/// when a delete or an upsert changed a fragment it rewrote.
#[test]
fn a_prepared_compaction_commits_over_appends_and_yields_to_changes() {
    use arrow_array::{Array, StringArray};
    use omnigraph::storage::table::{self, TableAt};

    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = bare_table_uri(&tmp);
    let batch = same_body_batch;
    rt.block_on(async {
        let at = |version: u64| TableAt {
            uri: uri.clone(),
            branch: None,
            version,
        };
        let head = async |v: u64| table::open(&at(v)).await.expect("open");
        let rows = async |v: u64| {
            let mut ids: Vec<String> = table::scan_all(&head(v).await, None)
                .await
                .expect("scan")
                .iter()
                .flat_map(|b| {
                    let col = b.column_by_name("id").expect("id");
                    let col = col.as_any().downcast_ref::<StringArray>().expect("utf8");
                    (0..col.len())
                        .map(|i| col.value(i).to_string())
                        .collect::<Vec<_>>()
                })
                .collect();
            ids.sort();
            ids
        };
        let mut v = table::create_or_replace(&uri, batch(&["a00"], "old"))
            .await
            .expect("create");
        let mut want = vec!["a00".to_string()];
        for i in 1..12 {
            let id = format!("a{i:02}");
            v = table::append(head(v).await, batch(&[&id], "old"))
                .await
                .expect("append");
            want.push(id);
        }
        let prepare = async |v: u64| {
            table::prepare_upkeep(&head(v).await, &[], false)
                .await
                .expect("prepare")
                .work
                .expect("twelve one-row fragments are due for compaction")
        };

        // Appends since the plan: committed over them, nothing lost.
        let work = prepare(v).await;
        for i in 0..20 {
            let id = format!("b{i:02}");
            v = table::append(head(v).await, batch(&[&id], "old"))
                .await
                .expect("append");
            want.push(id);
        }
        v = table::commit_upkeep(&at(v), work, "w1")
            .await
            .expect("a compaction commits over appends");
        want.sort();
        assert_eq!(rows(v).await, want);
        assert_eq!(head(v).await.get_fragments().len(), 21, "twelve became one");

        // A delete of a rewritten row since the plan: refused, kept deleted.
        let work = prepare(v).await;
        v = table::delete_where_in(head(v).await, "id", &["a03".to_string()])
            .await
            .expect("delete");
        let e = table::commit_upkeep(&at(v), work, "w2")
            .await
            .expect_err("a delete of a rewritten row refuses the compaction");
        assert!(e.conflict, "{e:?}");
        want.retain(|k| k != "a03");
        // The refused commit may have reserved fragment ids (a version of
        // its own); the rows are the delete's.
        let latest = lance::Dataset::open(&uri)
            .await
            .expect("open")
            .version()
            .version;
        assert_eq!(rows(latest).await, want);

        // An upsert of a rewritten row since the plan: refused, kept.
        let work = prepare(latest).await;
        v = table::upsert(head(latest).await, batch(&["b05"], "new"))
            .await
            .expect("upsert");
        let e = table::commit_upkeep(&at(v), work, "w3")
            .await
            .expect_err("an upsert of a rewritten row refuses the compaction");
        assert!(e.conflict, "{e:?}");
        let latest = lance::Dataset::open(&uri)
            .await
            .expect("open")
            .version()
            .version;
        assert_eq!(rows(latest).await, want);
    });
}

/// An upsert whose ids the table does not hold is staged as a Lance append
/// (`covered::all_absent`, no merge-insert): new ids are; an id in a
/// fragment the `id` index covers, one in a fragment it does not cover yet,
/// one deleted from a covered fragment (the index still lists it, so the
/// rule errs towards merging) and a batch mixing a new and a stored id are
/// merged. Committed one after another, every id ends as one row holding
/// the body written last.
#[test]
fn upserts_of_new_ids_are_staged_as_appends() {
    use arrow_array::{Array, StringArray};
    use omnigraph::storage::table::{self, ChangeOp, IndexSpec, TableAt};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let uri = bare_table_uri(&tmp);
    let batch = same_body_batch;
    rt.block_on(async {
        let head = async |version: u64| {
            table::open(&TableAt {
                uri: uri.clone(),
                branch: None,
                version,
            })
            .await
            .expect("open")
        };
        let v = table::create_or_replace(&uri, batch(&["a00", "a01", "a02", "a03"], "old"))
            .await
            .expect("create");
        let v = table::ensure_indexes(head(v).await, &[IndexSpec::Btree("id".into())])
            .await
            .expect("id index");
        let v = table::append(head(v).await, batch(&["u00"], "old"))
            .await
            .expect("an uncovered fragment");
        let mut v = table::delete_where_in(head(v).await, "id", &["a03".to_string()])
            .await
            .expect("delete");
        let cases: [(&[&str], bool); 6] = [
            (&["n00"], true),
            (&["n01", "n02"], true),
            (&["a01"], false),
            (&["u00"], false),
            (&["a03"], false),
            (&["n03", "a02"], false),
        ];
        for (i, (ids, appends)) in cases.iter().enumerate() {
            let ds = Arc::new(head(v).await);
            let change = table::stage(ds.clone(), ChangeOp::Upsert(batch(ids, &format!("w{i}"))))
                .await
                .expect("stage");
            assert_eq!(change.appends(), *appends, "{ids:?}");
            v = table::commit_staged(ds, change, v + 1, &format!("w{i}"))
                .await
                .expect("commit")
                .version()
                .version;
        }
        let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for b in table::scan_all(&head(v).await, None).await.expect("scan") {
            let col = |n: &str| {
                b.column_by_name(n)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
                    .expect("utf8 column")
            };
            let (id, body) = (col("id"), col("body"));
            for r in 0..id.len() {
                rows.entry(id.value(r).to_string())
                    .or_default()
                    .push(body.value(r).to_string());
            }
        }
        let want: BTreeMap<String, Vec<String>> = [
            ("a00", "old"),
            ("a01", "w2"),
            ("a02", "w5"),
            ("a03", "w4"),
            ("n00", "w0"),
            ("n01", "w1"),
            ("n02", "w1"),
            ("n03", "w5"),
            ("u00", "w3"),
        ]
        .into_iter()
        .map(|(k, b)| (k.to_string(), vec![b.to_string()]))
        .collect();
        assert_eq!(rows, want);
    });
}

/// A graph deleted and created again at the same root by this process
/// starts its tables' versions from 1 again: no handle kept from the
/// earlier graph (for reads, or as the table handle a commit starts from)
/// may stand for a version of the new one.
#[test]
fn a_graph_created_again_at_the_same_root_sees_none_of_the_old_one() {
    let rt = runtime();
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("g");
    let uri = root.to_str().expect("utf8").to_string();
    rt.block_on(async {
        let item = TableKey::node("Item");
        let old = Graph::init(&uri, "f.pg", SCHEMA).await.expect("init");
        for k in ["old-a", "old-b", "old-c"] {
            mutate(&old, "add", json!({"k": k})).await;
        }
        let kept = old.warm_version(&item).expect("a committed version");
        drop(old);
        std::fs::remove_dir_all(&root).expect("delete the graph");

        let g = Graph::init(&uri, "f.pg", SCHEMA).await.expect("init again");
        assert_eq!(
            g.warm_version(&item),
            None,
            "the old graph's handle is forgotten"
        );
        for k in ["new-a", "new-b", "new-c", "new-d"] {
            mutate(&g, "add", json!({"k": k})).await;
            let want: Vec<String> = ["new-a", "new-b", "new-c", "new-d"]
                .iter()
                .take_while(|n| **n <= k)
                .map(|n| n.to_string())
                .collect();
            assert_eq!(keys(&g, "all", json!({})).await, want, "after {k}");
        }
        // The new graph has passed the version the old one's handle had.
        assert!(g.warm_version(&item).expect("committed") >= kept);
    });
}
