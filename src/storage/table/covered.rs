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
//! rows) and read once otherwise, keyed by the fragment's files and
//! deletion file, which Lance never rewrites in place. An upsert none of
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
use lance_table::format::Fragment;

/// Rows an uncovered fragment may hold for its ids to be looked at here; a
/// larger one (a bulk load not indexed yet) makes an upsert stage the
/// ordinary way.
pub const MAX_KNOWN_FRAGMENT_ROWS: usize = 4_096;

/// Ids the process keeps, over every fragment it knows (least recently
/// used dropped first).
pub const KNOWN_IDS: u64 = 262_144;

#[derive(Clone)]
struct ByIds;

impl quick_cache::Weighter<String, Arc<HashSet<String>>> for ByIds {
    fn weight(&self, _: &String, ids: &Arc<HashSet<String>>) -> u64 {
        ids.len().max(1) as u64
    }
}

type Known = quick_cache::sync::Cache<String, Arc<HashSet<String>>, ByIds>;

/// Fragment identity (see [`fragment_key`]) → the live ids it holds.
fn known() -> &'static Known {
    static KNOWN: std::sync::OnceLock<Known> = std::sync::OnceLock::new();
    KNOWN.get_or_init(|| Known::with_weighter(16_384, KNOWN_IDS, ByIds))
}

/// A fragment's identity within dataset `uri`: its data files (paths are
/// unique and never rewritten) and its deletion file (a new one for each
/// change of the deleted rows). `None` for a fragment with overlays, whose
/// values may differ from its files'.
fn fragment_key(uri: &str, f: &Fragment) -> Option<String> {
    if !f.overlays.is_empty() || f.files.is_empty() {
        return None;
    }
    let mut k = String::from(uri);
    for file in &f.files {
        let _ = write!(k, "|{}@{:?}", file.path, file.base_id);
    }
    if let Some(d) = &f.deletion_file {
        let _ = write!(k, "|deleted:{}:{}@{:?}", d.read_version, d.id, d.base_id);
    }
    Some(k)
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
/// to them. Skipped for a batch over [`MAX_KNOWN_FRAGMENT_ROWS`].
pub(super) fn remember(uri: &str, fragments: &[Fragment], batch: &RecordBatch) {
    if fragments.is_empty() || batch.num_rows() > MAX_KNOWN_FRAGMENT_ROWS {
        return;
    }
    let Some(ids) = batch_ids(batch) else { return };
    let ids = Arc::new(ids);
    for f in fragments {
        if let Some(k) = fragment_key(uri, f) {
            known().insert(k, ids.clone());
        }
    }
}

/// Records the ids of the fragments a compaction wrote (`new`, not yet
/// committed) as the ids of the fragments it rewrote (`original`), when
/// each of those is known: the rows moved, none was added. Without it the
/// first upsert after each compaction read the merged fragment.
pub(super) fn remember_rewrite(uri: &str, original: &[Fragment], new: &[Fragment]) {
    let mut ids = HashSet::new();
    for f in original {
        let Some(known) = fragment_key(uri, f).and_then(|k| known().get(&k)) else {
            return;
        };
        ids.extend(known.iter().cloned());
    }
    let ids = Arc::new(ids);
    for f in new {
        if let Some(k) = fragment_key(uri, f) {
            known().insert(k, ids.clone());
        }
    }
}

/// The live ids fragment `f` of `ds` holds: known, or read once (its `id`
/// column, deletions applied). `None` when it is not to be looked at.
async fn fragment_ids(ds: &Dataset, f: &Fragment) -> Option<Arc<HashSet<String>>> {
    let key = fragment_key(ds.uri(), f)?;
    if let Some(ids) = known().get(&key) {
        return Some(ids);
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
    known().insert(key, ids.clone());
    Some(ids)
}

/// `ds` without the fragments its `id` index does not cover, when none of
/// them holds an id of `batch` (the module's rule); `None` when the upsert
/// must read them (or nothing is uncovered).
pub(super) async fn covered_only(ds: &Dataset, batch: &RecordBatch) -> Option<Dataset> {
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
    let uncovered: Vec<&Fragment> = ds
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
        .collect();
    if uncovered.is_empty() {
        return None;
    }
    let mine = batch_ids(batch)?;
    let mut left_out = HashSet::new();
    for f in uncovered {
        let ids = fragment_ids(ds, f).await?;
        if mine.iter().any(|id| ids.contains(id)) {
            return None;
        }
        left_out.insert(f.id);
    }
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
    Some(restricted)
}
