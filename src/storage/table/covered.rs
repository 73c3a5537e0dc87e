//! Keyed upserts that read only what the key index covers.
//!
//! Lance's merge-insert (lance 14, `MergeInsertJob`, the indexed join)
//! finds the rows an upsert matches through the `id` index for the
//! fragments that index covers and by a full scan of every other fragment.
//! Between upkeeps a table holds such uncovered fragments: one per
//! single-row write, about fifteen after each group commit on a busy
//! table. Every upsert staged then read each of them again (Lance's
//! `FilteredReadStream::read_fragment` was the largest item of a
//! 16-caller group-commit profile: docs/performance.md).
//!
//! Instead, the ids an uncovered fragment holds are known here: recorded
//! when a staged change writes the fragment (its rows are the change's
//! rows) and read once otherwise, keyed by the fragment's data files,
//! which Lance never rewrites in place. Ids known before any deletion
//! stay an upper bound after later deletions (a deletion only removes
//! rows), and an upper bound answers "is none of these ids there?"
//! without a read. An upsert none of
//! whose ids is in an uncovered fragment is staged against the same
//! version with those fragments left out of the dataset it reads: Lance
//! then matches through the index alone, and the transaction it builds
//! names only the fragments it changes, so committing it on the whole
//! version keeps the uncovered fragments as they are. Any doubt (no key
//! index, a fragment with an overlay or too many rows, an id found, a
//! failed read) stages the ordinary way.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use lance::Dataset;
use lance::index::DatasetIndexExt;
use lance_index::IndexCriteria;
use lance_index::scalar::ScalarIndex;
use lance_table::format::Fragment;
use lance_table::format::IndexMetadata;

/// Rows an uncovered fragment may hold for its ids to be looked at here; a
/// larger one (a bulk load not indexed yet) makes an upsert stage the
/// ordinary way. Above the 5,000-row bodies a `load/ndjson` flood sends,
/// so single-row writes into the type a flood appends to stay on the
/// index too (`omnigraph-bench actor-isolation`).
pub const MAX_KNOWN_FRAGMENT_ROWS: usize = 16_384;

/// Ids the process keeps, over every fragment it knows (least recently
/// used dropped first); about 60 bytes each when full. It must hold the
/// uncovered fragments of a busy table: with 262,144, a `load/ndjson`
/// flood (5,000-row fragments, about 45,000 rows/s) outran it between
/// index extensions, and every single-row write into the flood's type
/// read evicted fragments again and evicted others in turn
/// (docs/performance.md, "The record of uncovered ids outgrown").
pub const KNOWN_IDS: u64 = 1_048_576;

#[derive(Clone)]
struct ByIds;

/// A fragment's ids as known here.
#[derive(Clone)]
struct Ids {
    ids: Arc<HashSet<String>>,
    /// The fragment's live ids exactly (read, or every row of an append
    /// written to this one fragment) while its deletion file is
    /// `deletion`; otherwise at most these (an upsert may update some of
    /// its rows in place instead).
    exact: bool,
    /// The deletion file (see [`fragment_key`]) the ids were known at.
    deletion: Option<String>,
}

impl Ids {
    /// Exactly the live ids of a fragment whose deletion file is
    /// `deletion` (else at most these).
    fn exact_at(&self, deletion: &Option<String>) -> bool {
        self.exact && &self.deletion == deletion
    }

    /// At least the live ids of a fragment whose deletion file is
    /// `deletion`: known at that deletion file, or before any (a
    /// fragment's rows are fixed when written and deletions only remove
    /// them). Ids known at another deletion file bound nothing: a restore
    /// (heal's roll back) brings an older one back, with more live rows.
    fn bounds_at(&self, deletion: &Option<String>) -> bool {
        self.deletion.is_none() || &self.deletion == deletion
    }
}

impl quick_cache::Weighter<String, Ids> for ByIds {
    fn weight(&self, _: &String, ids: &Ids) -> u64 {
        ids.ids.len().max(1) as u64
    }
}

type Known = quick_cache::sync::Cache<String, Ids, ByIds>;

/// Fragment identity (see [`fragment_key`]) → the live ids it holds.
fn known() -> &'static Known {
    static KNOWN: std::sync::OnceLock<Known> = std::sync::OnceLock::new();
    KNOWN.get_or_init(|| Known::with_weighter(16_384, KNOWN_IDS, ByIds))
}

/// A fragment's identity within dataset `uri`: its data files (paths are
/// unique and never rewritten), and apart its deletion file (a new one for
/// each change of the deleted rows), which only removes ids. `None` for a
/// fragment with overlays, whose values may differ from its files'.
fn fragment_key(uri: &str, f: &Fragment) -> Option<(String, Option<String>)> {
    if !f.overlays.is_empty() || f.files.is_empty() {
        return None;
    }
    let mut k = String::from(uri);
    for file in &f.files {
        let _ = write!(k, "|{}@{:?}", file.path, file.base_id);
    }
    let deletion = f
        .deletion_file
        .as_ref()
        .map(|d| format!("{}:{}@{:?}", d.read_version, d.id, d.base_id));
    Some((k, deletion))
}

/// The non-null values of `batch`'s `id` column (a `Utf8` column);
/// `None` without one.
pub fn batch_ids(batch: &RecordBatch) -> Option<HashSet<String>> {
    let ids = batch
        .column_by_name("id")?
        .as_any()
        .downcast_ref::<StringArray>()?;
    Some(
        (0..ids.len())
            .filter(|i| ids.is_valid(*i))
            .map(|i| ids.value(i).to_string())
            .collect(),
    )
}

/// Records that each of `fragments` (new, not yet committed: no deletion
/// file) holds at most the ids of `batch`, the rows a staged change wrote
/// to them; exactly those when `append` wrote them all to one fragment.
/// Skipped for a batch over [`MAX_KNOWN_FRAGMENT_ROWS`].
pub(super) fn remember(uri: &str, fragments: &[Fragment], batch: &RecordBatch, append: bool) {
    if fragments.is_empty() || batch.num_rows() > MAX_KNOWN_FRAGMENT_ROWS {
        return;
    }
    let Some(ids) = batch_ids(batch) else { return };
    let exact = append && fragments.len() == 1 && ids.len() == batch.num_rows();
    let ids = Arc::new(ids);
    for f in fragments {
        if let Some((k, deletion)) = fragment_key(uri, f) {
            let ids = Ids {
                ids: ids.clone(),
                exact,
                deletion,
            };
            known().insert(k, ids);
        }
    }
}

/// Records the ids of the fragments a compaction wrote (`new`, not yet
/// committed) as the ids of the fragments it rewrote (`original`), when
/// each of those is known: the rows moved, none was added. Without it the
/// first upsert after each compaction read the merged fragment.
pub(super) fn remember_rewrite(uri: &str, original: &[Fragment], new: &[Fragment]) {
    let mut ids = HashSet::new();
    let mut exact = new.len() == 1;
    for f in original {
        let Some((k, deletion)) = fragment_key(uri, f) else {
            return;
        };
        let Some(known) = known().get(&k) else {
            return;
        };
        if !known.bounds_at(&deletion) {
            return;
        }
        exact &= known.exact_at(&deletion);
        ids.extend(known.ids.iter().cloned());
    }
    let ids = Arc::new(ids);
    for f in new {
        if let Some((k, deletion)) = fragment_key(uri, f) {
            known().insert(
                k,
                Ids {
                    ids: ids.clone(),
                    exact,
                    deletion,
                },
            );
        }
    }
}

/// The live ids fragment `f` of `ds` holds (at most these unless
/// `exact`): known, or read once (its `id` column, deletions applied).
/// `None` when it is not to be looked at.
async fn fragment_ids(ds: &Dataset, f: &Fragment, exact: bool) -> Option<Arc<HashSet<String>>> {
    let (key, deletion) = fragment_key(ds.uri(), f)?;
    if let Some(ids) = known().get(&key)
        && (ids.exact_at(&deletion) || (!exact && ids.bounds_at(&deletion)))
    {
        return Some(ids.ids);
    }
    if f.physical_rows.is_none_or(|n| n > MAX_KNOWN_FRAGMENT_ROWS) {
        return None;
    }
    let mut scan = ds.scan();
    scan.with_fragments(vec![f.clone()]);
    scan.project(&["id"]).ok()?;
    let batches: Vec<RecordBatch> = scan
        .try_into_stream()
        .await
        .ok()?
        .try_collect()
        .await
        .ok()?;
    let mut ids = HashSet::new();
    for b in &batches {
        ids.extend(batch_ids(b)?);
    }
    let ids = Arc::new(ids);
    known().insert(
        key,
        Ids {
            ids: ids.clone(),
            exact: true,
            deletion,
        },
    );
    Some(ids)
}

/// `ds` without the fragments its `id` index does not cover, when none of
/// them holds an id of `batch` (the module's rule); `None` when the upsert
/// must read them (or nothing is uncovered).
pub(super) async fn covered_only(ds: &Dataset, batch: &RecordBatch) -> Option<Dataset> {
    let uncovered = uncovered(ds).await?;
    if uncovered.is_empty() {
        return None;
    }
    let mine = batch_ids(batch)?;
    for f in &uncovered {
        let ids = fragment_ids(ds, f, false).await?;
        if mine.iter().any(|id| ids.contains(id)) {
            return None;
        }
    }
    Some(without(ds, &uncovered))
}

/// Which of `wanted` (row ids) table `ds` holds, split at its `id` index:
/// a handle on the fragments the index covers (to look `wanted` up
/// through the index alone), and the ids of `wanted` the other fragments
/// hold, exactly (their live ids known exactly, or read once: an `id IN
/// (...)` filter in chunks would scan each of them once per chunk). A
/// fragment whose ids are known at most (an upsert's, or known before a
/// deletion) and include none of `wanted` is not read: the new keys of a
/// bulk load beside single-row upserts read nothing (before, each load of
/// a `load/ndjson` flood re-read every upserted fragment not yet indexed).
/// `None` when there is no exact-equality index on `id`, a fragment is
/// not to be looked at here (overlays, over [`MAX_KNOWN_FRAGMENT_ROWS`]
/// rows) or a read fails: look up the ordinary way.
pub async fn stored_split(ds: &Dataset, wanted: &[&str]) -> Option<(Dataset, HashSet<String>)> {
    let uncovered = uncovered(ds).await?;
    let mut found = HashSet::new();
    for f in &uncovered {
        let bound = fragment_ids(ds, f, false).await?;
        if !wanted.iter().any(|id| bound.contains(*id)) {
            continue;
        }
        let ids = fragment_ids(ds, f, true).await?;
        found.extend(
            wanted
                .iter()
                .filter(|id| ids.contains(**id))
                .map(|id| id.to_string()),
        );
    }
    Some((without(ds, &uncovered), found))
}

/// `ds` reading only its fragments other than `left_out`.
fn without(ds: &Dataset, left_out: &[Fragment]) -> Dataset {
    let left_out: HashSet<u64> = left_out.iter().map(|f| f.id).collect();
    let mut manifest = (*ds.manifest).clone();
    manifest.fragments = Arc::new(
        ds.manifest
            .fragments
            .iter()
            .filter(|f| !left_out.contains(&f.id))
            .cloned()
            .collect(),
    );
    let mut restricted = ds.clone();
    restricted.manifest = Arc::new(manifest);
    restricted
}

/// The fragments of `ds` that no segment of its exact-equality `id`
/// index covers (Lance's rule for what an indexed lookup must scan);
/// `None` without such an index or with a segment lacking a fragment
/// bitmap.
async fn uncovered(ds: &Dataset) -> Option<Vec<Fragment>> {
    Some(id_index(ds).await?.1)
}

/// The segments of `ds`'s exact-equality `id` index and the fragments none
/// of them covers; `None` as [`uncovered`].
async fn id_index(ds: &Dataset) -> Option<(Vec<IndexMetadata>, Vec<Fragment>)> {
    let index = ds
        .load_scalar_index(
            IndexCriteria::default()
                .for_column("id")
                .supports_exact_equality(),
        )
        .await
        .ok()??;
    // Lance's rule for the fragments its indexed join must scan: those no
    // segment of the chosen index covers.
    let segments = ds.load_indices_by_name(&index.name).await.ok()?;
    if segments.iter().any(|s| s.fragment_bitmap.is_none()) {
        return None;
    }
    let uncovered = ds
        .manifest
        .fragments
        .iter()
        .filter(|f| {
            !segments.iter().any(|s| {
                s.fragment_bitmap
                    .as_ref()
                    .is_some_and(|b| b.contains(f.id as u32))
            })
        })
        .cloned()
        .collect();
    Some((segments, uncovered))
}

/// Index segments [`all_absent`] keeps open, by (dataset URI, segment
/// UUID), least recently used dropped first.
pub const OPENED_SEGMENTS: usize = 1_024;

/// The `id` index segments [`all_absent`] opened. A segment's files never
/// change once written (a new UUID for every build, extension or fold), so
/// one stays valid for every version that lists it; opened without the
/// version's row-address remapping (Lance's fragment reuse), it answers at
/// least the ids the remapped one would, which can only send an upsert to
/// merge-insert. Opening it for each write (Lance's
/// `open_scalar_index_with_purpose`, metadata lookup and cache probes) was
/// about a fifth of what the absence check cost in a 16-caller profile.
fn opened() -> &'static quick_cache::sync::Cache<(String, String), Arc<dyn ScalarIndex>> {
    static OPENED: std::sync::OnceLock<
        quick_cache::sync::Cache<(String, String), Arc<dyn ScalarIndex>>,
    > = std::sync::OnceLock::new();
    OPENED.get_or_init(|| quick_cache::sync::Cache::new(OPENED_SEGMENTS))
}

/// Most ids an upsert may carry for [`all_absent`] to look each up; a
/// larger batch (a merge load) is merged the ordinary way.
pub const MAX_PROBED_IDS: usize = 64;

/// Whether `ds` holds none of `batch`'s ids, known without Lance's
/// merge-insert: the fragments its `id` index does not cover hold none of
/// them (their ids known or read once, as for [`covered_only`]), and no
/// segment of that index finds one (Lance's BTREE `IsIn` search per
/// segment; a row found there that was deleted since counts as held).
/// Such an upsert only inserts and is staged as an append: a single-row
/// insert's merge-insert (planning and running a DataFusion join for one
/// row) was the largest item of a 16-caller group-commit profile
/// (docs/performance.md, "Inserts staged as appends"). `false` whenever in
/// doubt: no such index, more than [`MAX_PROBED_IDS`] ids, an id twice,
/// an uncovered fragment not to be looked at, a failed read.
pub(super) async fn all_absent(ds: &Dataset, batch: &RecordBatch) -> bool {
    use lance::deps::datafusion::scalar::ScalarValue;
    use lance::index::DatasetIndexInternalExt;
    use lance_index::metrics::NoOpMetricsCollector;
    use lance_index::scalar::SargableQuery;
    if batch.num_rows() == 0 || batch.num_rows() > MAX_PROBED_IDS {
        return false;
    }
    let Some(mine) = batch_ids(batch) else {
        return false;
    };
    if mine.len() != batch.num_rows() {
        return false;
    }
    let Some((segments, uncovered)) = id_index(ds).await else {
        return false;
    };
    for f in &uncovered {
        let Some(ids) = fragment_ids(ds, f, false).await else {
            return false;
        };
        if mine.iter().any(|id| ids.contains(id)) {
            return false;
        }
    }
    let query = SargableQuery::IsIn(
        mine.iter()
            .map(|id| ScalarValue::Utf8(Some(id.clone())))
            .collect(),
    );
    for s in &segments {
        let key = (ds.uri().to_string(), s.uuid.to_string());
        let index = match opened().get(&key) {
            Some(index) => index,
            None => {
                let Ok(index) = ds
                    .open_scalar_index("id", &s.uuid, &NoOpMetricsCollector)
                    .await
                else {
                    return false;
                };
                opened().insert(key, index.clone());
                index
            }
        };
        match index.search(&query, &NoOpMetricsCollector).await {
            Ok(found) => {
                let rows = match &found {
                    lance_index::scalar::SearchResult::Exact(r)
                    | lance_index::scalar::SearchResult::AtMost(r)
                    | lance_index::scalar::SearchResult::AtLeast(r) => r,
                };
                if !rows.is_empty() {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}
