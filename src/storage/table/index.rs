//! Indexes and upkeep: the physical indexes a table carries, which are
//! due, tiered folding of index segments, compaction, and the upkeep step
//! prepared outside a commit turn and committed inside one.

use super::*;

/// A physical index one column should carry (reference:
/// docs/user/search/indexes.md — BTREE on `id`, `src`, `dst` and on ordered
/// scalar or enum `@index`/`@key` properties; an inverted full-text index on
/// free-text String `@index`/`@key` properties; a vector index on
/// `Vector(n) @index` properties, see [`vector_index_params`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexSpec {
    Btree(String),
    FullText(String),
    Vector(String),
}

impl IndexSpec {
    /// The column the index covers.
    pub fn column(&self) -> &str {
        match self {
            IndexSpec::Btree(c) | IndexSpec::FullText(c) | IndexSpec::Vector(c) => c,
        }
    }

    /// The Lance index name: `<column>_btree`, `<column>_fts` or
    /// `<column>_vector`.
    pub fn name(&self) -> String {
        match self {
            IndexSpec::Btree(c) => format!("{c}_btree"),
            IndexSpec::FullText(c) => format!("{c}_fts"),
            IndexSpec::Vector(c) => format!("{c}_vector"),
        }
    }
}

/// Rows a table holds before its `Vector @index` properties get a vector
/// index. Below it `nearest` searches exactly (every vector compared),
/// which at this size costs about as much as probing an index; above it
/// exact search grows with the table.
pub const VECTOR_INDEX_MIN_ROWS: usize = 10_000;

/// The rows of `ds` whose vector column `column` is not null.
pub async fn vectors_set(ds: &Dataset, column: &str) -> Result<usize, TableError> {
    ds.count_rows(Some(format!("`{column}` IS NOT NULL")))
        .await
        .map_err(|e| terr(ds.uri(), e))
}

/// Rows per IVF partition the vector index aims for.
pub const VECTOR_ROWS_PER_PARTITION: usize = 4_096;

/// The vector index every `Vector @index` property gets: IVF_HNSW_SQ
/// with cosine distance (Lance `VectorIndexParams::with_ivf_hnsw_sq_params`:
/// an IVF coarse partitioning, an HNSW graph per partition, 8-bit scalar
/// quantization), `rows / VECTOR_ROWS_PER_PARTITION` partitions (1 to
/// 1,024), HNSW and SQ at Lance's defaults (m 20, ef_construction 150).
/// Chosen over IVF_PQ on the benchmark's 100,000 × 128 vectors
/// (`omnigraph-bench vectors`, docs/performance.md): at the same probe
/// count it builds in about half the time and reaches recall@10 ≥ 0.95
/// without a large refine factor. Searches refine (re-rank with exact
/// cosine) by [`VECTOR_REFINE`].
pub fn vector_index_params(rows: usize) -> lance::index::vector::VectorIndexParams {
    use lance_index::vector::hnsw::builder::HnswBuildParams;
    use lance_index::vector::ivf::IvfBuildParams;
    use lance_index::vector::sq::builder::SQBuildParams;
    let partitions = (rows / VECTOR_ROWS_PER_PARTITION).clamp(1, 1024);
    lance::index::vector::VectorIndexParams::with_ivf_hnsw_sq_params(
        lance_linalg::distance::DistanceType::Cosine,
        IvfBuildParams::new(partitions),
        HnswBuildParams::default(),
        SQBuildParams::default(),
    )
}

/// IVF partitions an indexed `nearest` probes at least (Lance probes more
/// until it has `limit` candidates). Measured with `omnigraph-bench
/// vectors` (docs/performance.md).
pub const VECTOR_MIN_PROBES: usize = 12;

/// The refine factor of an indexed `nearest`: Lance fetches `k ×` this
/// many candidates from the index and re-ranks them by exact cosine
/// distance, so the distances returned are exact.
pub const VECTOR_REFINE: u32 = 2;

/// The tokenizer every full-text index uses: split on anything that is not
/// alphanumeric, lowercase, no stemming, no stop-word removal, no ASCII
/// folding, no length cap. The query side tokenizes with the same settings.
pub fn fts_params() -> lance_index::scalar::InvertedIndexParams {
    lance_index::scalar::InvertedIndexParams::default()
        .base_tokenizer("simple".to_string())
        .lower_case(true)
        .stem(false)
        .remove_stop_words(false)
        .ascii_folding(false)
        .max_token_length(None)
        .with_position(false)
}

/// The small fragments (fewer than [`SMALL_WRITE_ROWS`] rows) a table
/// may hold before upkeep compacts them. Every small write (a mutation, a
/// small load) adds a fragment; a table of thousands of one-row fragments
/// has a manifest, scans and lookups that grow with history.
pub const MAX_SMALL_FRAGMENTS: usize = 10;

/// Compaction merges adjacent fragments of fewer rows than this into
/// fragments of up to this size (Lance's `target_rows_per_fragment`), so
/// the big fragments a bulk load writes are never rewritten by it.
pub const SMALL_FRAGMENT_ROWS: usize = 10_000;

/// A fragment with fewer rows than this is small: a small write's (a
/// mutation's, a small load's). Only small fragments make compaction due
/// ([`compaction_due`]); it then merges them with their neighbours of
/// fewer than [`SMALL_FRAGMENT_ROWS`]. A bulk load's fragments (a
/// `load/ndjson` body of 5,000 rows writes one) do not make it due: merging
/// two of them halves a count that grows by one per 5,000 rows, at the
/// price of rewriting both and, once they are indexed, of remapping the
/// indexes inside the commit turn (measured before this bound, beside a
/// `load/ndjson` flood into another type: compaction steps of about 1 s of
/// preparation each on the flooded table, and light writers' p99 64 to
/// 148 ms).
pub const SMALL_WRITE_ROWS: usize = 2_500;

/// Fragments a BTREE index may leave uncovered before the commit step
/// extends it ([`upkeep_if_due`]). Lookups stay exact meanwhile: Lance
/// answers an indexed filter from the index plus a scan of the fragments it
/// does not cover (`Scanner`, "unindexed fragments"), a request or two per
/// such fragment, so this bounds that cost while sparing most small writes
/// the index extension. The same holds for a full-text index: Lance
/// searches uncovered fragments flat, scoring them with the index's
/// statistics; its flat search knows no fuzziness, which [`full_text`]
/// completes for `fuzzy` itself.
pub const MAX_UNINDEXED_FRAGMENTS: usize = 4;

/// Rows an index may leave uncovered before upkeep extends it: each
/// indexed lookup and each write's key join scans that many rows flat.
/// Compaction merges small uncovered fragments into one, so the fragment
/// bound alone would let one uncovered fragment grow to
/// [`SMALL_FRAGMENT_ROWS`] under a steady stream of single-row writes
/// (measured, `omnigraph-bench suite` with upkeep in the background: warm
/// insert p50 3.0 ms at 300 commits, 9.0 ms at 10,000, and the server's
/// inserts on the same table after it 10.8 ms against 3.8).
pub const MAX_UNINDEXED_ROWS: usize = 1_000;

/// The indexes of `specs` that `ds` (a branch head just written) must
/// extend or build now: one missing on a table with rows, or one leaving
/// more than
/// [`MAX_UNINDEXED_FRAGMENTS`] fragments, or more than
/// [`MAX_UNINDEXED_ROWS`] rows, uncovered. Reads only the manifest's index section,
/// which the shared [`session`] caches. Errors: Lance failing to read it.
pub async fn indexes_due(ds: &Dataset, specs: &[IndexSpec]) -> Result<Vec<IndexSpec>, TableError> {
    use lance::index::DatasetIndexInternalExt;
    let frags = ds.get_fragments();
    let mut due = Vec::new();
    if frags.is_empty() {
        return Ok(due);
    }
    let total: usize = frags
        .iter()
        .filter_map(|f| f.metadata().physical_rows)
        .sum();
    for spec in specs {
        if matches!(spec, IndexSpec::Vector(_)) && total < VECTOR_INDEX_MIN_ROWS {
            continue;
        }
        let unindexed = ds
            .unindexed_fragments(&spec.name())
            .await
            .map_err(|e| terr(ds.uri(), e))?;
        if unindexed.is_empty() {
            continue;
        }
        // A first vector index waits for enough vectors, not rows (an
        // `@embed` column is null until it is backfilled).
        if let IndexSpec::Vector(c) = spec
            && unindexed.len() == frags.len()
            && vectors_set(ds, c).await? < VECTOR_INDEX_MIN_ROWS
        {
            continue;
        }
        let rows: usize = unindexed.iter().filter_map(|f| f.physical_rows).sum();
        if unindexed.len() == frags.len()
            || unindexed.len() > MAX_UNINDEXED_FRAGMENTS
            || rows > MAX_UNINDEXED_ROWS
        {
            due.push(spec.clone());
        }
    }
    Ok(due)
}

/// A compaction [`compaction_due`] chose: Lance's options for it, and
/// whether it rewrites fragments an index covers, so that Lance's
/// `commit_compaction` remaps those indexes inside the commit (the commit
/// turn then grows with the index: a BTREE remap rewrites the whole index;
/// measured 163 ms on a flooded table of about 100,000 rows, release, tmpfs).
#[derive(Debug, Clone)]
pub struct Compaction {
    /// Lance's options (`target_rows_per_fragment`, the fragments left out).
    pub options: lance::dataset::optimize::CompactionOptions,
    /// It rewrites indexed fragments: its commit remaps their indexes.
    pub remaps: bool,
}

/// The compaction `ds` is due for, or `None`:
///
/// - more than [`MAX_UNINDEXED_FRAGMENTS`] small fragments that no index
///   covers (the single-row writes since the last index extension): only
///   those are merged (every covered fragment and every one that is not
///   small is in `excluded_fragment_ids`; Lance merges only adjacent
///   fragments, so small ones between a flood's are left to the index
///   extension), so no index covers a rewritten fragment and
///   Lance's commit remaps none. A BTREE remap rewrites the whole index
///   inside the commit, which grew with the index (measured: commit turns
///   up to about 300 ms under a `load/ndjson` flood). The index is extended
///   later over the one merged fragment, once it holds more than
///   [`MAX_UNINDEXED_ROWS`] rows;
/// - else more than [`MAX_SMALL_FRAGMENTS`] small fragments: all of them
///   (covered ones too, so the indexes over them are remapped:
///   [`Compaction::remaps`]), which the first rule makes rare under small
///   writes (each covered small fragment then holds about
///   [`MAX_UNINDEXED_ROWS`] rows); a flood of small loads meets it often,
///   which is why the GraphActor holds such a compaction while a flood runs
///   ([`prepare_upkeep`]).
///
/// Small means fewer than [`SMALL_WRITE_ROWS`] rows; the compaction then
/// merges adjacent fragments of fewer than [`SMALL_FRAGMENT_ROWS`]
/// (Lance's planner), excluded ones aside.
///
/// A table without indexes has nothing to remap and takes the second rule
/// only. Errors: Lance failing to read the index section.
pub async fn compaction_due(ds: &Dataset) -> Result<Option<Compaction>, TableError> {
    use lance::index::DatasetIndexExt;
    let options = lance::dataset::optimize::CompactionOptions {
        target_rows_per_fragment: SMALL_FRAGMENT_ROWS,
        ..Default::default()
    };
    let small: Vec<u64> = ds
        .get_fragments()
        .iter()
        .filter(|f| {
            f.metadata()
                .physical_rows
                .is_some_and(|r| r < SMALL_WRITE_ROWS)
        })
        .map(|f| f.id() as u64)
        .collect();
    let indexes = ds.load_indices().await.map_err(|e| terr(ds.uri(), e))?;
    if !indexes.is_empty() {
        let mut covered = std::collections::BTreeSet::<u32>::new();
        let mut known = true;
        for index in indexes.iter() {
            match &index.fragment_bitmap {
                Some(b) => covered.extend(b.iter()),
                None => known = false,
            }
        }
        let uncovered = small
            .iter()
            .filter(|id| u32::try_from(**id).is_ok_and(|id| !covered.contains(&id)))
            .count();
        if known && uncovered > MAX_UNINDEXED_FRAGMENTS {
            // Only the small ones: a bulk load's uncovered fragments
            // beside them would be rewritten too (Lance merges adjacent
            // fragments under the target), which took a step beside a
            // same-type flood 7 s to prepare while no index upkeep ran.
            let large = ds.get_fragments().into_iter().filter_map(|f| {
                let rows = f.metadata().physical_rows;
                (rows.is_none_or(|r| r >= SMALL_WRITE_ROWS))
                    .then(|| u32::try_from(f.id()).ok())
                    .flatten()
            });
            covered.extend(large);
            return Ok(Some(Compaction {
                options: lance::dataset::optimize::CompactionOptions {
                    excluded_fragment_ids: covered.into_iter().collect(),
                    ..options
                },
                remaps: false,
            }));
        }
    }
    // The second rule: with indexes, the fragments it merges are (or
    // neighbour) covered ones (the first rule took the uncovered ones).
    Ok((small.len() > MAX_SMALL_FRAGMENTS).then_some(Compaction {
        options,
        remaps: !indexes.is_empty(),
    }))
}

/// The upkeep a write's commit step runs after its table commit, when due:
/// when [`compaction_due`], the whole
/// [`upkeep`] (compaction, then every index); otherwise only the indexes
/// [`indexes_due`] names ([`ensure_indexes`]); otherwise nothing, and
/// `ds`'s version comes back unchanged.
pub async fn upkeep_if_due(ds: Dataset, specs: &[IndexSpec]) -> Result<u64, TableError> {
    if compaction_due(&ds).await?.is_some() {
        return upkeep(ds, specs).await;
    }
    let due = indexes_due(&ds, specs).await?;
    if due.is_empty() {
        return Ok(ds.manifest().version);
    }
    ensure_indexes(ds, &due).await
}

/// The upkeep after a write on a table's branch head: compacts small
/// fragments when [`compaction_due`] says so (Lance `compact_files`), then
/// [`ensure_indexes`]. Returns the resulting version. Together these keep a
/// warm write's storage requests the same whatever the history
/// (`scripts/bench` measures it).
pub async fn upkeep(mut ds: Dataset, specs: &[IndexSpec]) -> Result<u64, TableError> {
    if let Some(due) = compaction_due(&ds).await? {
        let uri = ds.uri().to_string();
        lance::dataset::optimize::compact_files(&mut ds, due.options, None)
            .await
            .map_err(|e| terr(&uri, e))?;
    }
    // Only the indexes due after it: the merged fragment of uncovered
    // writes waits for [`MAX_UNINDEXED_ROWS`] like any other.
    let due = indexes_due(&ds, specs).await?;
    if due.is_empty() {
        return Ok(ds.manifest().version);
    }
    ensure_indexes(ds, &due).await
}

/// Index upkeep or compaction made ready outside the commit step
/// ([`prepare_upkeep`]): the new files are written, nothing is committed;
/// [`commit_upkeep`] commits it in one Lance transaction, which Lance
/// rebases over the writes committed since the plan (an append commutes
/// with both; a delete or update of a rewritten fragment refuses the
/// compaction, which is planned again later). The GraphActor runs these
/// between commits (docs/architecture.md, "Upkeep").
pub enum PreparedUpkeep {
    /// Small fragments rewritten into fewer, as [`compaction_due`] chose
    /// them (Lance `plan_compaction`, `CompactionTask::execute`).
    Compaction {
        results: Vec<lance::dataset::optimize::RewriteResult>,
        options: lance::dataset::optimize::CompactionOptions,
    },
    /// Segments of the due indexes built over uncovered fragments, or a
    /// fold of an index's deltas (Lance `plan_optimize_indices`, its tasks
    /// and merges), all planned at one version.
    Indexes {
        results: Vec<lance::index::optimize::IndexSegmentResult>,
        names: Vec<String>,
    },
    /// An index is missing altogether (a table's first rows, an index a
    /// schema added): built whole over the plan's version without
    /// committing (Lance `CreateIndexBuilder::execute_uncommitted`, files
    /// written) and committed as one `CreateIndex` transaction, so the
    /// build never holds the commit turn. It covers the fragments of the
    /// plan's version; later ones are extended by the next upkeep.
    Build {
        spec: IndexSpec,
        index: Box<lance_table::format::IndexMetadata>,
    },
}

impl PreparedUpkeep {
    /// What it does, for logs and the sidecar: `compaction` or `indexes a, b`.
    pub fn describe(&self) -> String {
        match self {
            PreparedUpkeep::Compaction { .. } => "compaction".to_string(),
            PreparedUpkeep::Indexes { names, .. } => {
                format!("index upkeep of {}", names.join(", "))
            }
            PreparedUpkeep::Build { spec, .. } => format!("index build of {}", spec.name()),
        }
    }
}

/// What [`prepare_upkeep`] made ready.
pub struct Prepared {
    /// The step to commit ([`commit_upkeep`]), `None` when nothing is due
    /// (or only a held compaction).
    pub work: Option<PreparedUpkeep>,
    /// A compaction that remaps indexes was due and held
    /// (`hold_remapping`): the caller runs it later, when no flood runs.
    pub held: bool,
}

/// The upkeep `ds` is due for, done as far as it can be without
/// committing: compaction first when [`compaction_due`] (its indexes
/// follow in the next round), else every
/// index [`indexes_due`] names, each extended by a delta segment or, at
/// [`MAX_INDEX_SEGMENTS`] segments, folded. Nothing to commit when nothing
/// is due.
///
/// With `hold_remapping`, a compaction whose commit would remap indexes
/// ([`Compaction::remaps`]) is not done but reported
/// ([`Prepared::held`]), and the indexes due are prepared instead: the
/// GraphActor holds such compactions while a flood runs, because Lance
/// remaps inside the commit, and the commit turn is every writer's.
/// Errors: Lance failing to read `ds` or write the new files.
pub async fn prepare_upkeep(
    ds: &Dataset,
    specs: &[IndexSpec],
    hold_remapping: bool,
) -> Result<Prepared, TableError> {
    let uri = ds.uri().to_string();
    let mut held = false;
    if let Some(due) = compaction_due(ds).await? {
        if due.remaps && hold_remapping {
            held = true;
        } else {
            let plan = lance::dataset::optimize::plan_compaction(ds, &due.options)
                .await
                .map_err(|e| terr(&uri, e))?;
            let mut results = Vec::new();
            for task in plan.compaction_tasks() {
                let r = task.execute(ds).await.map_err(|e| terr(&uri, e))?;
                super::covered::remember_rewrite(&uri, &r.original_fragments, &r.new_fragments);
                results.push(r);
            }
            if !results.is_empty() {
                return Ok(Prepared {
                    work: Some(PreparedUpkeep::Compaction {
                        results,
                        options: due.options,
                    }),
                    held: false,
                });
            }
        }
    }
    Ok(Prepared {
        work: prepare_indexes(ds, specs).await?,
        held,
    })
}

/// The index part of [`prepare_upkeep`]: the first missing index built
/// whole, else every due index extended or folded; `None` when none is
/// due.
async fn prepare_indexes(
    ds: &Dataset,
    specs: &[IndexSpec],
) -> Result<Option<PreparedUpkeep>, TableError> {
    use lance::index::DatasetIndexExt;
    use lance_index::optimize::OptimizeOptions;
    let uri = ds.uri().to_string();
    let due = indexes_due(ds, specs).await?;
    if due.is_empty() {
        return Ok(None);
    }
    let indices = ds.load_indices().await.map_err(|e| terr(&uri, e))?;
    let existing: Vec<String> = indices.iter().map(|i| i.name.clone()).collect();
    let missing: Vec<IndexSpec> = due
        .iter()
        .filter(|s| !existing.contains(&s.name()))
        .cloned()
        .collect();
    if let Some(first) = missing.into_iter().next() {
        // One per round: its build is one commit, which the fence allows.
        let index = build_uncommitted(ds, &first).await?;
        return Ok(Some(PreparedUpkeep::Build {
            spec: first,
            index: Box::new(index),
        }));
    }
    let mut results = Vec::new();
    let mut names = Vec::new();
    for spec in &due {
        let name = spec.name();
        let (sizes, unindexed) = segment_sizes(ds, &indices, &name);
        let options = match fold_width(&sizes, unindexed) {
            0 => OptimizeOptions::append(),
            width => OptimizeOptions::merge(width),
        }
        .index_names(vec![name.clone()]);
        let plan = lance::index::optimize::plan_optimize_indices(ds, &options)
            .await
            .map_err(|e| terr(&uri, e))?;
        let mut built = Vec::new();
        for task in &plan.tasks {
            built.extend(task.execute(ds).await.map_err(|e| terr(&uri, e))?);
        }
        for merge in &plan.merges {
            results.extend(merge.execute(ds, &built).await.map_err(|e| terr(&uri, e))?);
        }
        names.push(name);
    }
    if results.is_empty() {
        return Ok(None);
    }
    Ok(Some(PreparedUpkeep::Indexes { results, names }))
}

/// Commits `upkeep` (made ready by [`prepare_upkeep`] at an older or the
/// same version) on `at`, the table's published head, as exactly the next
/// version (the fence, as [`commit_staged`]). Returns the new version.
/// Errors: the fence lost (another writer committed there), or Lance
/// refusing the rebase (`conflict` set: a write deleted or updated what a
/// compaction rewrote), or storage. The compaction's rewrite, an index
/// extension and an index build carry `write_id` ([`WRITE_ID_PROPERTY`]);
/// a compaction's reservation of fragment ids is untagged (Lance takes no
/// properties for it).
pub async fn commit_upkeep(
    at: &TableAt,
    upkeep: PreparedUpkeep,
    write_id: &str,
) -> Result<u64, TableError> {
    let mut ds = open_fenced(at, Some(at.version + 1)).await?;
    let props: std::collections::HashMap<String, String> =
        [(WRITE_ID_PROPERTY.to_string(), write_id.to_string())].into();
    match upkeep {
        PreparedUpkeep::Compaction {
            mut results,
            mut options,
        } => {
            options.transaction_properties = Some(Arc::new(props));
            rebase_untouched(&ds, &mut results);
            lance::dataset::optimize::commit_compaction(
                &mut ds,
                results,
                Arc::new(lance::dataset::index::DatasetIndexRemapperOptions::default()),
                &options,
            )
            .await
            .map_err(|e| terr(&at.uri, e))?;
        }
        PreparedUpkeep::Indexes { results, names } => {
            let mut options = lance_index::optimize::OptimizeOptions::append().index_names(names);
            options.transaction_properties = Some(Arc::new(props));
            lance::index::optimize::commit_optimize_indices(&mut ds, results, &options)
                .await
                .map_err(|e| terr(&at.uri, e))?;
        }
        PreparedUpkeep::Build { index, .. } => {
            use lance::dataset::transaction::{Operation, Transaction};
            let mut tx = Transaction::new(
                index.dataset_version,
                Operation::CreateIndex {
                    new_indices: vec![*index],
                    removed_indices: Vec::new(),
                },
                None,
            );
            tx.transaction_properties = Some(Arc::new(props));
            // `ds` carries the fence (exactly the version after the head).
            ds = lance::dataset::CommitBuilder::new(Arc::new(ds))
                .with_max_retries(1)
                .with_skip_auto_cleanup(true)
                .execute(tx)
                .await
                .map_err(|e| terr(&at.uri, e))?;
        }
    }
    keep_committed(&ds);
    Ok(ds.manifest().version)
}

/// Moves each compaction result whose original fragments `head` still
/// holds unchanged (same files, overlays, deletions: [`Fragment`]'s
/// equality) to read `head`'s version, so that Lance's commit checks
/// nothing for it. Lance otherwise checks the rewrite against every
/// transaction committed since the plan, reading each from storage inside
/// the commit turn (measured: a 741 ms turn after about 250 light writes
/// had committed during a 2 s preparation beside a flood, release, tmpfs).
/// What that check would refuse (a delete, update or upsert of a
/// rewritten row, another rewrite of the fragment) changes or removes a
/// fragment, so a result with a changed one keeps its version and Lance's
/// full check. Writes that only added fragments commute with the rewrite.
///
/// [`Fragment`]: lance_table::format::Fragment
fn rebase_untouched(head: &Dataset, results: &mut [lance::dataset::optimize::RewriteResult]) {
    let version = head.manifest().version;
    let fragments: std::collections::HashMap<u64, &lance_table::format::Fragment> = head
        .manifest()
        .fragments
        .iter()
        .map(|f| (f.id, f))
        .collect();
    for r in results.iter_mut() {
        let untouched = r
            .original_fragments
            .iter()
            .all(|f| fragments.get(&f.id) == Some(&f));
        if untouched && r.read_version < version {
            r.read_version = version;
        }
    }
}

/// Builds the index `spec` over `ds` without committing it: its files are
/// written, the returned metadata names them for a `CreateIndex`
/// transaction ([`commit_upkeep`]). Errors: Lance failing to build.
pub(super) async fn build_uncommitted(
    ds: &Dataset,
    spec: &IndexSpec,
) -> Result<lance_table::format::IndexMetadata, TableError> {
    use lance::index::DatasetIndexExt;
    use lance_index::IndexType;
    use lance_index::scalar::{BuiltinIndexType, ScalarIndexParams};
    let uri = ds.uri().to_string();
    let mut ds = ds.clone();
    let btree = ScalarIndexParams::for_builtin(BuiltinIndexType::BTree);
    let fts = fts_params();
    let vector = match spec {
        IndexSpec::Vector(c) => vector_index_params(vectors_set(&ds, c).await?),
        _ => vector_index_params(0),
    };
    let (col, ty, params): (&str, IndexType, &dyn lance_index::IndexParams) = match spec {
        IndexSpec::Btree(c) => (c.as_str(), IndexType::BTree, &btree),
        IndexSpec::FullText(c) => (c.as_str(), IndexType::Inverted, &fts),
        IndexSpec::Vector(c) => (c.as_str(), IndexType::Vector, &vector),
    };
    let cols = [col];
    let mut b = ds.create_index_builder(&cols, ty, params).name(spec.name());
    b.execute_uncommitted().await.map_err(|e| terr(&uri, e))
}

/// The most segments one index may have before the next write folds its
/// deltas. Each write's index upkeep adds one delta segment
/// (`optimize_indices` in append mode), and every lookup and merge-insert
/// reads every segment, so an unbounded count makes a write's cost grow
/// with history (measured: about 7 more GETs per write for each earlier
/// commit, `scripts/bench`). Folding ([`fold_width`]) keeps it at most this.
pub const MAX_INDEX_SEGMENTS: usize = 6;

/// The size ratio tiered folding keeps between an index segment and the
/// next newer one it does not merge (see [`fold_width`]).
pub const FOLD_RATIO: u64 = 4;

/// How many of an index's newest segments the next upkeep merges into one
/// (Lance `OptimizeOptions::merge(n)`, which merges the trailing `n`
/// segments of the manifest's index order with the uncovered rows), or 0
/// to add a delta segment (`OptimizeOptions::append()`).
///
/// `sizes` are the segments' row counts, oldest first; `unindexed` the rows
/// no segment covers. Below [`MAX_INDEX_SEGMENTS`] segments nothing is
/// merged. At the cap the fold is size-tiered: it takes the newest
/// segments one by one (at least two, so the count drops) and stops at the
/// first older segment that holds at least [`FOLD_RATIO`] times what is
/// being merged, which it keeps as it is. Small deltas therefore merge
/// with small deltas, a middle segment joins once it is no longer
/// [`FOLD_RATIO`] times larger, and the base is rewritten only when the
/// newer segments together reach a quarter of it. Each row is rewritten a
/// logarithmic number of times over the table's life instead of at every
/// fold (folding every delta into one that keeps the base made each fold
/// rewrite every row inserted since the base: simulated over 10,000
/// one-row extensions of a 100,000-row base, mean rows rewritten per fold
/// 1,000 before, 14 tiered; over 100,000, 10,000 against 26).
pub fn fold_width(sizes: &[u64], unindexed: u64) -> usize {
    let k = sizes.len();
    if k < MAX_INDEX_SEGMENTS {
        return 0;
    }
    let mut merged = unindexed;
    let mut n = 0;
    loop {
        n += 1;
        merged += sizes[k - n];
        if n == k || (n >= 2 && sizes[k - n - 1] >= FOLD_RATIO.saturating_mul(merged)) {
            return n;
        }
    }
}

/// The segments of index `name` on `ds` as row counts, oldest first (the
/// manifest's index order, which Lance's merge counts from the end), and
/// the rows of `ds` that none of them covers. A segment counts the rows
/// of the fragments it covers that still exist.
pub(super) fn segment_sizes(
    ds: &Dataset,
    indices: &[lance_table::format::IndexMetadata],
    name: &str,
) -> (Vec<u64>, u64) {
    let rows: std::collections::HashMap<u32, u64> = ds
        .fragments()
        .iter()
        .map(|f| (f.id as u32, f.num_rows().unwrap_or(0) as u64))
        .collect();
    let mut covered = std::collections::HashSet::new();
    let mut sizes = Vec::new();
    for index in indices.iter().filter(|i| i.name == name) {
        let mut size = 0;
        if let Some(bitmap) = index.effective_fragment_bitmap(ds.fragment_bitmap()) {
            for f in bitmap.iter() {
                size += rows.get(&f).copied().unwrap_or(0);
                covered.insert(f);
            }
        }
        sizes.push(size);
    }
    let unindexed = rows
        .iter()
        .filter(|(f, _)| !covered.contains(*f))
        .map(|(_, r)| r)
        .sum();
    (sizes, unindexed)
}

/// Makes `ds` (the head of its Lance branch) carry every index in `specs`:
/// missing ones are built, existing ones extended over fragments written
/// since: a new delta segment (`optimize_indices` in append mode), or, for
/// an index that already has [`MAX_INDEX_SEGMENTS`] segments, the new rows
/// merged with its newest segments as [`fold_width`] chooses
/// (`OptimizeOptions::merge(n)`; size-tiered, so a fold's cost stays
/// logarithmic in the table's history). Returns the resulting version, which equals the
/// input version when nothing had to change. An empty table gets no index
/// yet; the first write that adds rows builds it.
pub async fn ensure_indexes(mut ds: Dataset, specs: &[IndexSpec]) -> Result<u64, TableError> {
    use lance::index::DatasetIndexExt;
    use lance_index::IndexType;
    use lance_index::scalar::{BuiltinIndexType, ScalarIndexParams};
    let uri = ds.uri().to_string();
    if specs.is_empty() || count(&ds).await? == 0 {
        return Ok(ds.manifest().version);
    }
    let indices = ds.load_indices().await.map_err(|e| terr(&uri, e))?;
    let existing: Vec<String> = indices.iter().map(|i| i.name.clone()).collect();
    let mut append = Vec::new();
    let mut fold = Vec::new();
    for spec in specs {
        let name = spec.name();
        let segments = existing.iter().filter(|n| **n == name).count();
        let (sizes, unindexed) = segment_sizes(&ds, &indices, &name);
        let width = fold_width(&sizes, unindexed);
        if width > 0 {
            fold.push((name, width));
            continue;
        }
        if segments > 0 {
            append.push(name);
            continue;
        }
        let r = match spec {
            IndexSpec::Btree(c) => {
                ds.create_index(
                    &[c.as_str()],
                    IndexType::BTree,
                    Some(name),
                    &ScalarIndexParams::for_builtin(BuiltinIndexType::BTree),
                    false,
                )
                .await
            }
            IndexSpec::FullText(c) => {
                ds.create_index(
                    &[c.as_str()],
                    IndexType::Inverted,
                    Some(name),
                    &fts_params(),
                    false,
                )
                .await
            }
            IndexSpec::Vector(c) => {
                let rows = vectors_set(&ds, c).await?;
                if rows < VECTOR_INDEX_MIN_ROWS {
                    continue;
                }
                ds.create_index(
                    &[c.as_str()],
                    IndexType::Vector,
                    Some(name),
                    &vector_index_params(rows),
                    false,
                )
                .await
            }
        };
        r.map_err(|e| terr(&uri, e))?;
    }
    use lance_index::optimize::OptimizeOptions;
    if !append.is_empty() {
        ds.optimize_indices(&OptimizeOptions::append().index_names(append))
            .await
            .map_err(|e| terr(&uri, e))?;
    }
    for (name, width) in fold {
        ds.optimize_indices(&OptimizeOptions::merge(width).index_names(vec![name]))
            .await
            .map_err(|e| terr(&uri, e))?;
    }
    Ok(ds.manifest().version)
}
