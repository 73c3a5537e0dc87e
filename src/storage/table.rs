//! Lance table access: one dataset per node or edge type.
//!
//! Every read opens a dataset at a pinned (branch, version), never "latest":
//! the graph manifest decides what is visible. Writes commit one Lance
//! transaction per table and return the new version; the engine publishes
//! it. API reference: the `lance` 14 crate (`Dataset`, `InsertBuilder`,
//! `MergeInsertBuilder`, `DeleteBuilder`, branches via `create_branch`).

use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchIterator};
use arrow_schema::{ArrowError, SchemaRef};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use lance::Dataset;
use lance::dataset::builder::DatasetBuilder;
use lance::dataset::{
    DeleteBuilder, InsertBuilder, MergeInsertBuilder, WhenMatched, WhenNotMatched, WriteMode,
    WriteParams,
};

/// A Lance failure on one table.
#[derive(Debug, thiserror::Error)]
#[error("table {uri}: {message}")]
pub struct TableError {
    pub uri: String,
    pub message: String,
    /// True for a commit that lost against a concurrent writer.
    pub conflict: bool,
}

fn terr(uri: &str, e: lance::Error) -> TableError {
    let conflict = matches!(
        e,
        lance::Error::CommitConflict { .. }
            | lance::Error::RetryableCommitConflict { .. }
            | lance::Error::IncompatibleTransaction { .. }
            | lance::Error::TooMuchWriteContention { .. }
    );
    TableError {
        uri: uri.to_string(),
        message: e.to_string(),
        conflict,
    }
}

/// Where a table version lives: the dataset URI, its Lance branch (`None` for
/// the main line) and the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableAt {
    pub uri: String,
    pub branch: Option<String>,
    pub version: u64,
}

/// Bytes of index pages the process-wide Lance session keeps cached
/// ([`session`]).
pub const INDEX_CACHE_BYTES: usize = 512 * 1024 * 1024;

/// Bytes of manifest and file metadata the process-wide Lance session keeps
/// cached ([`session`]).
pub const METADATA_CACHE_BYTES: usize = 256 * 1024 * 1024;

/// The Lance session the main-line datasets this process opens share
/// (Lance `Session`): its caches hold index pages (keyed by index UUID),
/// file metadata (keyed by data file path; data files are never rewritten
/// in place), manifests (keyed by version and e-tag) and per-version state
/// (transactions, row masks) keyed by dataset URI and version, so a warm
/// write's key lookup or a repeated read does not fetch again what an
/// earlier one fetched. Main-line version numbers of a table are never
/// reused (heal restores by writing a new version), except when a graph
/// root is created again ([`forget_cached`]); a Lance branch's are (a
/// deleted graph branch's Lance branch is replaced by one of the same
/// name), so datasets on branches get a session of their own
/// ([`branch_builder`]). Sizes: [`INDEX_CACHE_BYTES`],
/// [`METADATA_CACHE_BYTES`].
pub fn session() -> Arc<lance::session::Session> {
    let cell = shared_session();
    if let Ok(s) = cell.read()
        && let Some(s) = s.as_ref()
    {
        return s.clone();
    }
    let mut w = match cell.write() {
        Ok(w) => w,
        Err(poisoned) => poisoned.into_inner(),
    };
    w.get_or_insert_with(new_session).clone()
}

fn shared_session() -> &'static std::sync::RwLock<Option<Arc<lance::session::Session>>> {
    static SESSION: std::sync::OnceLock<std::sync::RwLock<Option<Arc<lance::session::Session>>>> =
        std::sync::OnceLock::new();
    SESSION.get_or_init(Default::default)
}

fn new_session() -> Arc<lance::session::Session> {
    Arc::new(lance::session::Session::new(
        INDEX_CACHE_BYTES,
        METADATA_CACHE_BYTES,
        Arc::default(),
    ))
}

/// Drops what this process caches about main-line tables (the shared
/// [`session`] and the kept dataset handles): a graph root created again
/// at the same place reuses table URIs and version numbers. `Graph::init`
/// calls it. Handles already open keep the session they have.
pub fn forget_cached() {
    if let Ok(mut w) = shared_session().write() {
        *w = None;
    }
    handles().clear();
}

/// Write parameters for `mode`. Tables are created *without* Lance stable
/// row ids: with them, every merge-insert (each keyed insert, update and
/// upsert stages one) builds Lance's row-id index of the whole table for
/// the version it reads, and that index is cached per manifest version, so
/// each write rebuilt it; as compaction rewrote one-row fragments its
/// sequences fragmented and the cost grew with history (measured,
/// `omnigraph-bench suite`: warm insert p50 4.7 ms at 100 commits, 10.9 ms
/// at 10,000 with them; 4.7 ms at both without; docs/performance.md).
/// Nothing here reads row ids across versions. A table keeps the setting
/// it was created with (Lance's feature flag), so graphs made by older
/// builds keep stable row ids.
fn params(mode: WriteMode) -> WriteParams {
    WriteParams {
        mode,
        enable_stable_row_ids: false,
        store_params: super::metered::lance_store_params(),
        ..WriteParams::default()
    }
}

/// A dataset builder for `uri` on the main line (the shared [`session`]),
/// metered when storage counting is on ([`super::metered`]).
fn builder(uri: &str) -> DatasetBuilder {
    metered(DatasetBuilder::from_uri(uri).with_session(session()))
}

/// A dataset builder for `uri` to open a Lance branch with: a session of
/// its own (see [`session`]), metered when storage counting is on.
fn branch_builder(uri: &str) -> DatasetBuilder {
    metered(DatasetBuilder::from_uri(uri))
}

fn metered(b: DatasetBuilder) -> DatasetBuilder {
    match super::metered::lance_store_params() {
        Some(p) => b.with_store_params(p),
        None => b,
    }
}

/// Creates an empty dataset with `schema`; returns its version (1).
pub async fn create_empty(uri: &str, schema: SchemaRef) -> Result<u64, TableError> {
    let reader = RecordBatchIterator::new(Vec::<Result<RecordBatch, ArrowError>>::new(), schema);
    let ds = Dataset::write(reader, uri, Some(params(WriteMode::Create)))
        .await
        .map_err(|e| terr(uri, e))?;
    Ok(ds.version().version)
}

/// Writes `batch` as the newest main-line version of the table at `uri`,
/// creating the dataset when absent. An existing dataset (a type dropped and
/// added again, or a schema apply interrupted before its publish) keeps its
/// older versions, so commits that name them stay readable. Returns the
/// version written.
pub async fn create_or_replace(uri: &str, batch: RecordBatch) -> Result<u64, TableError> {
    match builder(uri).load().await {
        Ok(ds) => overwrite(ds, batch).await,
        Err(_) => {
            let schema = batch.schema();
            let reader = RecordBatchIterator::new(vec![Ok(batch)], schema);
            let ds = Dataset::write(reader, uri, Some(params(WriteMode::Create)))
                .await
                .map_err(|e| terr(uri, e))?;
            Ok(ds.version().version)
        }
    }
}

/// Main-line dataset handles this process opened, per (URI, version): a
/// version is immutable, so a handle opened once serves every later open
/// of it without the request that resolves its manifest. Branch versions
/// are not kept: a Lance branch of a deleted graph branch can be replaced
/// by one of the same name whose versions reuse the numbers.
const OPEN_HANDLES: usize = 256;

fn handles() -> &'static quick_cache::sync::Cache<(String, u64), Dataset> {
    static HANDLES: std::sync::OnceLock<quick_cache::sync::Cache<(String, u64), Dataset>> =
        std::sync::OnceLock::new();
    HANDLES.get_or_init(|| quick_cache::sync::Cache::new(OPEN_HANDLES))
}

/// Keeps `ds` for later [`open`]s of its version (main line only).
fn keep(ds: &Dataset) {
    if ds.manifest().branch.is_none() {
        handles().insert((ds.uri().to_string(), ds.version().version), ds.clone());
    }
}

/// Opens a pinned version.
pub async fn open(at: &TableAt) -> Result<Dataset, TableError> {
    if at.branch.is_none()
        && let Some(ds) = handles().get(&(at.uri.clone(), at.version))
    {
        return Ok(ds);
    }
    let b = match &at.branch {
        Some(br) => branch_builder(&at.uri).with_branch(br, Some(at.version)),
        None => builder(&at.uri).with_version(at.version),
    };
    let ds = b.load().await.map_err(|e| terr(&at.uri, e))?;
    keep(&ds);
    Ok(ds)
}

/// Opens a pinned version that is the newest one of its Lance branch as
/// far as the graph knows (the published version a write commits after):
/// a commit through the handle does not look for versions after it (Lance
/// reads the version hint and probes for them, three requests), since a
/// version committed there by anyone else makes the fenced commit refuse
/// anyway ([`commit_staged`]).
async fn open_at_head(at: &TableAt) -> Result<Dataset, TableError> {
    open_fenced(at, None).await
}

/// Opens `at`, the newest version of its Lance branch as far as the graph
/// knows, with a [`fence::Fence`] that knows that head; with `expected`,
/// commits through the handle land only as that version and the ones
/// after it in turn.
async fn open_fenced(at: &TableAt, expected: Option<u64>) -> Result<Dataset, TableError> {
    let inner = lance_table::io::commit::commit_handler_from_url(&at.uri, &None)
        .await
        .map_err(|e| terr(&at.uri, e))?;
    let handler = Arc::new(fence::Fence {
        inner,
        expected: expected.map(std::sync::atomic::AtomicU64::new),
        head: Some(at.version),
        head_used: Default::default(),
    });
    let b = match &at.branch {
        Some(br) => branch_builder(&at.uri)
            .with_commit_handler(handler)
            .with_branch(br, Some(at.version)),
        None => builder(&at.uri)
            .with_commit_handler(handler)
            .with_version(at.version),
    };
    b.load().await.map_err(|e| terr(&at.uri, e))
}

/// Opens the dataset for writing on Lance branch `target` (`None`: the main
/// line), creating that branch from `base` first when `base` is on another
/// branch. A stale Lance branch of the same name (left by a deleted graph
/// branch) is replaced.
pub async fn open_for_write(base: &TableAt, target: Option<&str>) -> Result<Dataset, TableError> {
    if base.branch.as_deref() == target {
        return open_at_head(base).await;
    }
    let Some(target) = target else {
        return Err(TableError {
            uri: base.uri.clone(),
            message: "cannot write the main line from a branch version".into(),
            conflict: false,
        });
    };
    // The branch made from this handle inherits its session: its own.
    let mut root = branch_builder(&base.uri)
        .load()
        .await
        .map_err(|e| terr(&base.uri, e))?;
    let existing = root.list_branches().await.map_err(|e| terr(&base.uri, e))?;
    if existing.contains_key(target) {
        root.force_delete_branch(target)
            .await
            .map_err(|e| terr(&base.uri, e))?;
    }
    root.create_branch(target, (base.branch.as_deref(), Some(base.version)), None)
        .await
        .map_err(|e| terr(&base.uri, e))
}

/// Appends rows; returns the new version.
pub async fn append(ds: Dataset, batch: RecordBatch) -> Result<u64, TableError> {
    insert(ds, batch, WriteMode::Append).await
}

/// Replaces every row; returns the new version.
pub async fn overwrite(ds: Dataset, batch: RecordBatch) -> Result<u64, TableError> {
    insert(ds, batch, WriteMode::Overwrite).await
}

async fn insert(ds: Dataset, batch: RecordBatch, mode: WriteMode) -> Result<u64, TableError> {
    let uri = ds.uri().to_string();
    let p = params(mode);
    let out = InsertBuilder::new(Arc::new(ds))
        .with_params(&p)
        .execute(vec![batch])
        .await
        .map_err(|e| terr(&uri, e))?;
    Ok(out.version().version)
}

/// Upserts rows by `id`; returns the new version.
pub async fn upsert(ds: Dataset, batch: RecordBatch) -> Result<u64, TableError> {
    let uri = ds.uri().to_string();
    let ds = Arc::new(ds);
    let mut b =
        MergeInsertBuilder::try_new(ds, vec!["id".to_string()]).map_err(|e| terr(&uri, e))?;
    b.when_matched(WhenMatched::UpdateAll)
        .when_not_matched(WhenNotMatched::InsertAll);
    let job = b.try_build().map_err(|e| terr(&uri, e))?;
    let (out, _) = job
        .execute_batches(vec![batch])
        .await
        .map_err(|e| terr(&uri, e))?;
    Ok(out.version().version)
}

/// Deletes rows whose `column` is one of `values`; returns the new version.
pub async fn delete_where_in(
    ds: Dataset,
    column: &str,
    values: &[String],
) -> Result<u64, TableError> {
    let uri = ds.uri().to_string();
    let out = DeleteBuilder::new(Arc::new(ds), in_list(column, values))
        .execute()
        .await
        .map_err(|e| terr(&uri, e))?;
    Ok(out.new_dataset.version().version)
}

/// One table change staged without committing (Lance `execute_uncommitted`
/// on the insert, merge-insert and delete builders): its data files are
/// written, nothing is visible until [`commit_staged`] lands the
/// transaction.
pub struct StagedChange {
    /// The version the change was staged against (the transaction's read
    /// version).
    pub read_version: u64,
    transaction: lance::dataset::transaction::Transaction,
    affected_rows: Option<lance::dataset::scanner::RowAddrTreeMap>,
}

impl StagedChange {
    /// Whether the staged transaction only adds rows: an append, or a
    /// merge-insert none of whose rows matched at its read version (a Lance
    /// `Update` with new fragments and no updated or removed ones). Such a
    /// change stays right over later versions that inserted none of its
    /// ids ([`crate::engine::ledger`]).
    pub fn inserts_only(&self) -> bool {
        use lance::dataset::transaction::Operation;
        match &self.transaction.operation {
            Operation::Append { .. } => true,
            Operation::Update {
                removed_fragment_ids,
                updated_fragments,
                ..
            } => removed_fragment_ids.is_empty() && updated_fragments.is_empty(),
            _ => false,
        }
    }
}

impl std::fmt::Debug for StagedChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StagedChange")
            .field("read_version", &self.read_version)
            .finish_non_exhaustive()
    }
}

/// What to stage on one table.
#[derive(Debug, Clone)]
pub enum ChangeOp {
    /// Add rows.
    Append(RecordBatch),
    /// Replace every row.
    Overwrite(RecordBatch),
    /// Insert or replace rows by `id`.
    Upsert(RecordBatch),
    /// Delete rows whose `id` is one of these.
    Delete(Vec<String>),
}

/// Stages `op` against `ds` (the pinned version it reads) without
/// committing it: data files are written, the returned change holds the
/// Lance transaction. Errors: Lance refusing the rows or the write.
pub async fn stage(ds: Arc<Dataset>, op: ChangeOp) -> Result<StagedChange, TableError> {
    let uri = ds.uri().to_string();
    let read_version = ds.version().version;
    let insert = async |ds: Arc<Dataset>, b: RecordBatch, mode: WriteMode| {
        let p = params(mode);
        InsertBuilder::new(ds)
            .with_params(&p)
            .execute_uncommitted(vec![b])
            .await
            .map_err(|e| terr(&uri, e))
    };
    let (transaction, affected_rows) = match op {
        ChangeOp::Append(b) => (insert(ds, b, WriteMode::Append).await?, None),
        ChangeOp::Overwrite(b) => (insert(ds, b, WriteMode::Overwrite).await?, None),
        ChangeOp::Upsert(b) => {
            let mut mb = MergeInsertBuilder::try_new(ds, vec!["id".to_string()])
                .map_err(|e| terr(&uri, e))?;
            mb.when_matched(WhenMatched::UpdateAll)
                .when_not_matched(WhenNotMatched::InsertAll);
            let job = mb.try_build().map_err(|e| terr(&uri, e))?;
            let u = job
                .execute_uncommitted_batches(vec![b])
                .await
                .map_err(|e| terr(&uri, e))?;
            (u.transaction, u.affected_rows)
        }
        ChangeOp::Delete(ids) => {
            let u = DeleteBuilder::new(ds, in_list("id", &ids))
                .execute_uncommitted()
                .await
                .map_err(|e| terr(&uri, e))?;
            (u.transaction, u.affected_rows)
        }
    };
    Ok(StagedChange {
        read_version,
        transaction,
        affected_rows,
    })
}

/// Commits a staged change on `ds`'s Lance branch so that it lands exactly
/// as version `expected`, or not at all: a version committed there by
/// anyone else first (another process, an unpublished write) makes this a
/// conflict ([`TableError::conflict`]) instead of Lance rebasing on top of
/// it. Versions between the change's read version and `expected - 1` are
/// ones the caller knows are published; Lance rebases over them, except
/// for a change that only inserts ([`StagedChange::inserts_only`]), which
/// the caller has checked against them and which is committed as an
/// append read at `ds`'s version. Returns the dataset at the committed
/// version (`expected`).
pub async fn commit_staged(
    ds: Arc<Dataset>,
    change: StagedChange,
    expected: u64,
    write_id: &str,
) -> Result<Dataset, TableError> {
    let uri = ds.uri().to_string();
    let mut change = change;
    let head = ds.version().version;
    if change.inserts_only() && change.read_version < head {
        // Only new rows, kept over a later head by the caller's rule
        // ([`StagedChange::inserts_only`]): committed as an append read at
        // the head, so Lance has no versions in between to read and check.
        use lance::dataset::transaction::Operation;
        if let Operation::Update { new_fragments, .. } = &change.transaction.operation {
            change.transaction.operation = Operation::Append {
                fragments: new_fragments.clone(),
            };
        }
        change.transaction.read_version = head;
        change.affected_rows = None;
    }
    // The version names the write that made it, so heal can tell its own
    // unpublished versions from another writer's ([`written_by`]).
    let props: std::collections::HashMap<String, String> =
        [(WRITE_ID_PROPERTY.to_string(), write_id.to_string())].into();
    change.transaction.transaction_properties = Some(Arc::new(props));
    let inner = lance_table::io::commit::commit_handler_from_url(&uri, &None)
        .await
        .map_err(|e| terr(&uri, e))?;
    // `ds` is the newest version as far as the caller knows; one written
    // after it by anyone else makes the fence refuse, so Lance need not
    // look for it ([`open_at_head`]).
    let fence = Arc::new(fence::Fence {
        inner,
        expected: Some(std::sync::atomic::AtomicU64::new(expected)),
        head: Some(head),
        head_used: Default::default(),
    });
    let mut b = lance::dataset::CommitBuilder::new(ds)
        .with_commit_handler(fence)
        .with_max_retries(1)
        .with_skip_auto_cleanup(true);
    if let Some(rows) = change.affected_rows {
        b = b.with_affected_rows(rows);
    }
    let ds = b
        .execute(change.transaction)
        .await
        .map_err(|e| terr(&uri, e))?;
    keep(&ds);
    Ok(ds)
}

/// The Lance transaction property naming the graph write (its sidecar id)
/// that committed a version.
pub const WRITE_ID_PROPERTY: &str = "omnigraph.write_id";

/// The graph write or upkeep step that committed version `at` (its
/// [`WRITE_ID_PROPERTY`]); `None` for a version committed untagged (a
/// compaction's reservation, an index build or extension in a write's
/// commit step, older builds).
pub async fn written_by(at: &TableAt) -> Result<Option<String>, TableError> {
    let ds = open(at).await?;
    let t = ds.read_transaction().await.map_err(|e| terr(&at.uri, e))?;
    Ok(t.and_then(|t| {
        t.transaction_properties
            .and_then(|p| p.get(WRITE_ID_PROPERTY).cloned())
    }))
}

/// A `CommitHandler` that lets a commit land only as one given version
/// (the fence of docs/architecture.md, "Fencing"): Lance writes version
/// `N + 1` with create-if-absent, so exactly one writer gets a version
/// number, and this handler refuses every number but the expected one.
mod fence {
    use std::sync::Arc;

    use futures::StreamExt;

    use lance::io::ObjectStore;
    use lance_table::format::{IndexMetadata, Manifest, Transaction};
    use lance_table::io::commit::{
        CommitError, CommitHandler, ManifestLocation, ManifestNamingScheme, ManifestWriter,
    };
    use object_store::path::Path;

    /// Delegates to `inner` (Lance's handler for the URI) with two
    /// changes, each optional: with `expected`, a commit lands only as that
    /// version (the fence), and a further commit through the same handler
    /// only as the version after its own last one; with `head`, the first listing of versions
    /// after `head` answers empty, because the caller knows `head` is the
    /// newest published version and a version someone else wrote after it
    /// makes the fenced commit refuse instead of being missed (this spares
    /// a commit Lance's read of the version hint and its probes). Only the
    /// first: Lance hands a dataset's handler on to the datasets a commit
    /// or checkout derives from it, which may be kept and used later, when
    /// `head` is no longer the newest.
    #[derive(Debug)]
    pub(super) struct Fence {
        pub inner: Arc<dyn CommitHandler>,
        pub expected: Option<std::sync::atomic::AtomicU64>,
        pub head: Option<u64>,
        pub head_used: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl CommitHandler for Fence {
        fn is_version_not_found_definitive(&self) -> bool {
            self.inner.is_version_not_found_definitive()
        }

        fn propagate_commit_error_after_success(&self) -> bool {
            self.inner.propagate_commit_error_after_success()
        }

        async fn resolve_latest_location(
            &self,
            base_path: &Path,
            object_store: &ObjectStore,
        ) -> lance::Result<ManifestLocation> {
            self.inner
                .resolve_latest_location(base_path, object_store)
                .await
        }

        async fn resolve_version_location(
            &self,
            base_path: &Path,
            version: u64,
            object_store: &dyn object_store::ObjectStore,
        ) -> lance::Result<ManifestLocation> {
            self.inner
                .resolve_version_location(base_path, version, object_store)
                .await
        }

        async fn version_exists(
            &self,
            base_path: &Path,
            version: u64,
            object_store: &dyn object_store::ObjectStore,
            naming_scheme: ManifestNamingScheme,
        ) -> lance::Result<bool> {
            self.inner
                .version_exists(base_path, version, object_store, naming_scheme)
                .await
        }

        fn list_detached_manifest_locations<'a>(
            &self,
            base_path: &Path,
            object_store: &'a ObjectStore,
        ) -> futures::stream::BoxStream<'a, lance::Result<ManifestLocation>> {
            self.inner
                .list_detached_manifest_locations(base_path, object_store)
        }

        fn list_manifest_locations<'a>(
            &self,
            base_path: &Path,
            object_store: &'a ObjectStore,
            sorted_descending: bool,
        ) -> futures::stream::BoxStream<'a, lance::Result<ManifestLocation>> {
            self.inner
                .list_manifest_locations(base_path, object_store, sorted_descending)
        }

        fn list_manifest_locations_since<'a>(
            &self,
            base_path: &Path,
            object_store: &'a ObjectStore,
            since_version: u64,
        ) -> futures::stream::BoxStream<'a, lance::Result<ManifestLocation>> {
            // Whatever it asks for, the first listing uses up the shortcut.
            let first = !self
                .head_used
                .swap(true, std::sync::atomic::Ordering::SeqCst);
            if first && self.head == Some(since_version) {
                return futures::stream::empty().boxed();
            }
            self.inner
                .list_manifest_locations_since(base_path, object_store, since_version)
        }

        async fn commit(
            &self,
            manifest: &mut Manifest,
            indices: Option<Vec<IndexMetadata>>,
            base_path: &Path,
            object_store: &ObjectStore,
            manifest_writer: ManifestWriter,
            naming_scheme: ManifestNamingScheme,
            transaction: Option<Transaction>,
        ) -> Result<ManifestLocation, CommitError> {
            use std::sync::atomic::Ordering::SeqCst;
            let want = self.expected.as_ref().map(|e| e.load(SeqCst));
            if want.is_some_and(|v| v != manifest.version) {
                return Err(CommitError::CommitConflict);
            }
            let r = self
                .inner
                .commit(
                    manifest,
                    indices,
                    base_path,
                    object_store,
                    manifest_writer,
                    naming_scheme,
                    transaction,
                )
                .await;
            // The fence moves with its own commits: an operation that
            // commits twice (a compaction reserves its fragment ids first)
            // lands both, in order, and nothing of anyone else's between.
            if r.is_ok()
                && let (Some(e), Some(v)) = (&self.expected, want)
            {
                e.store(v + 1, SeqCst);
            }
            r
        }

        // A fenced handler takes no predecessor-conditioned commits: Lance
        // then always calls `commit`, where the fence is.
        fn supports_predecessor_condition(&self) -> bool {
            self.expected.is_none() && self.inner.supports_predecessor_condition()
        }

        async fn forget_version(
            &self,
            base_path: &Path,
            version: u64,
            identity: &str,
        ) -> lance::Result<()> {
            self.inner
                .forget_version(base_path, version, identity)
                .await
        }

        async fn delete(&self, base_path: &Path) -> lance::Result<()> {
            self.inner.delete(base_path).await
        }
    }
}

/// `column IN ('a', 'b')` with quotes escaped.
fn in_list(column: &str, values: &[String]) -> String {
    let list = values
        .iter()
        .map(|v| format!("'{}'", v.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{column} IN ({list})")
}

/// Streams a dataset's rows, optionally projected.
pub async fn scan(
    ds: &Dataset,
    columns: Option<&[&str]>,
) -> Result<BoxStream<'static, Result<RecordBatch, TableError>>, TableError> {
    let uri = ds.uri().to_string();
    let mut sc = ds.scan();
    if let Some(cols) = columns {
        sc.project(cols).map_err(|e| terr(&uri, e))?;
    }
    let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
    let u = uri.clone();
    Ok(stream.map_err(move |e| terr(&u, e)).boxed())
}

/// Every row, as batches.
pub async fn scan_all(
    ds: &Dataset,
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, TableError> {
    scan(ds, columns).await?.try_collect().await
}

/// Row count of a pinned version (metadata only).
pub async fn count(ds: &Dataset) -> Result<usize, TableError> {
    ds.count_rows(None).await.map_err(|e| terr(ds.uri(), e))
}

/// A physical index one column should carry (reference:
/// docs/user/search/indexes.md — BTREE on `id`, `src`, `dst` and on ordered
/// scalar or enum `@index`/`@key` properties; an inverted full-text index on
/// free-text String `@index`/`@key` properties).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexSpec {
    Btree(String),
    FullText(String),
}

impl IndexSpec {
    /// The column the index covers.
    pub fn column(&self) -> &str {
        match self {
            IndexSpec::Btree(c) | IndexSpec::FullText(c) => c,
        }
    }

    /// The Lance index name: `<column>_btree` or `<column>_fts`.
    pub fn name(&self) -> String {
        match self {
            IndexSpec::Btree(c) => format!("{c}_btree"),
            IndexSpec::FullText(c) => format!("{c}_fts"),
        }
    }
}

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

/// The small fragments (fewer than [`SMALL_FRAGMENT_ROWS`] rows) a table
/// may hold before a write compacts them. Every small write (a mutation, a
/// small load) adds a fragment; a table of thousands of one-row fragments
/// has a manifest, scans and lookups that grow with history.
pub const MAX_SMALL_FRAGMENTS: usize = 10;

/// A fragment with fewer rows than this is small; compaction merges
/// adjacent small fragments up to this size (Lance's
/// `target_rows_per_fragment`), so the big fragments a bulk load writes are
/// never rewritten by it.
pub const SMALL_FRAGMENT_ROWS: usize = 10_000;

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
    for spec in specs {
        let unindexed = ds
            .unindexed_fragments(&spec.name())
            .await
            .map_err(|e| terr(ds.uri(), e))?;
        if unindexed.is_empty() {
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

/// The compaction `ds` is due for, as Lance options, or `None`:
///
/// - more than [`MAX_UNINDEXED_FRAGMENTS`] small fragments that no index
///   covers (the single-row writes since the last index extension): only
///   those are merged (every covered fragment is in
///   `excluded_fragment_ids`), so no index covers a rewritten fragment and
///   Lance's commit remaps none. A BTREE remap rewrites the whole index
///   inside the commit, which grew with the index (measured: commit turns
///   up to about 300 ms under a `load/ndjson` flood). The index is extended
///   later over the one merged fragment, once it holds more than
///   [`MAX_UNINDEXED_ROWS`] rows;
/// - else more than [`MAX_SMALL_FRAGMENTS`] small fragments: all of them
///   (covered ones too, so the indexes over them are remapped), which the
///   first rule makes rare (each covered small fragment then holds about
///   [`MAX_UNINDEXED_ROWS`] rows).
///
/// A table without indexes has nothing to remap and takes the second rule
/// only. Errors: Lance failing to read the index section.
pub async fn compaction_due(
    ds: &Dataset,
) -> Result<Option<lance::dataset::optimize::CompactionOptions>, TableError> {
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
                .is_some_and(|r| r < SMALL_FRAGMENT_ROWS)
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
            return Ok(Some(lance::dataset::optimize::CompactionOptions {
                excluded_fragment_ids: covered.into_iter().collect(),
                ..options
            }));
        }
    }
    Ok((small.len() > MAX_SMALL_FRAGMENTS).then_some(options))
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
        return Ok(ds.version().version);
    }
    ensure_indexes(ds, &due).await
}

/// The upkeep after a write on a table's branch head: compacts small
/// fragments when [`compaction_due`] says so (Lance `compact_files`), then
/// [`ensure_indexes`]. Returns the resulting version. Together these keep a
/// warm write's storage requests the same whatever the history
/// (`scripts/bench` measures it).
pub async fn upkeep(mut ds: Dataset, specs: &[IndexSpec]) -> Result<u64, TableError> {
    if let Some(options) = compaction_due(&ds).await? {
        let uri = ds.uri().to_string();
        lance::dataset::optimize::compact_files(&mut ds, options, None)
            .await
            .map_err(|e| terr(&uri, e))?;
    }
    // Only the indexes due after it: the merged fragment of uncovered
    // writes waits for [`MAX_UNINDEXED_ROWS`] like any other.
    let due = indexes_due(&ds, specs).await?;
    if due.is_empty() {
        return Ok(ds.version().version);
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

/// The upkeep `ds` is due for, done as far as it can be without
/// committing: compaction first when [`compaction_due`] (its indexes
/// follow in the next round), else every
/// index [`indexes_due`] names, each extended by a delta segment or, at
/// [`MAX_INDEX_SEGMENTS`] segments, folded. `None` when nothing is due.
/// Errors: Lance failing to read `ds` or write the new files.
pub async fn prepare_upkeep(
    ds: &Dataset,
    specs: &[IndexSpec],
) -> Result<Option<PreparedUpkeep>, TableError> {
    use lance::index::DatasetIndexExt;
    use lance_index::optimize::OptimizeOptions;
    let uri = ds.uri().to_string();
    if let Some(options) = compaction_due(ds).await? {
        let plan = lance::dataset::optimize::plan_compaction(ds, &options)
            .await
            .map_err(|e| terr(&uri, e))?;
        let mut results = Vec::new();
        for task in plan.compaction_tasks() {
            results.push(task.execute(ds).await.map_err(|e| terr(&uri, e))?);
        }
        if !results.is_empty() {
            return Ok(Some(PreparedUpkeep::Compaction { results, options }));
        }
    }
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
            results,
            mut options,
        } => {
            options.transaction_properties = Some(Arc::new(props));
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
    keep(&ds);
    Ok(ds.version().version)
}

/// Builds the index `spec` over `ds` without committing it: its files are
/// written, the returned metadata names them for a `CreateIndex`
/// transaction ([`commit_upkeep`]). Errors: Lance failing to build.
async fn build_uncommitted(
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
    let (col, ty, params): (&str, IndexType, &dyn lance_index::IndexParams) = match spec {
        IndexSpec::Btree(c) => (c.as_str(), IndexType::BTree, &btree),
        IndexSpec::FullText(c) => (c.as_str(), IndexType::Inverted, &fts),
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
fn segment_sizes(
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
        return Ok(ds.version().version);
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
    Ok(ds.version().version)
}

/// The rows of `ds` matching `filter` (a Lance SQL predicate), only the
/// given `columns`; an indexed `IN (…)` is served from the index.
pub async fn scan_where_columns(
    ds: &Dataset,
    filter: &str,
    columns: &[&str],
) -> Result<Vec<RecordBatch>, TableError> {
    let uri = ds.uri().to_string();
    let mut sc = ds.scan();
    sc.project(columns).map_err(|e| terr(&uri, e))?;
    sc.filter(filter).map_err(|e| terr(&uri, e))?;
    let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
    stream.map_err(|e| terr(&uri, e)).try_collect().await
}

/// Rows whose `filter` (a Lance/DataFusion SQL predicate) holds, as batches.
/// Lance serves the predicate from a scalar index when one covers it.
pub async fn scan_where(ds: &Dataset, filter: &str) -> Result<Vec<RecordBatch>, TableError> {
    let uri = ds.uri().to_string();
    let mut sc = ds.scan();
    sc.filter(filter).map_err(|e| terr(&uri, e))?;
    let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
    stream.map_err(|e| terr(&uri, e)).try_collect().await
}

/// How a full-text query combines its tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextMode {
    /// Any token matches (`search`, `bm25`).
    Any,
    /// Every token matches (`match_text`).
    All,
    /// Any token within this many edits of an indexed term (`fuzzy`).
    Fuzzy(u32),
}

/// Full-text search on `column` through its inverted index: the matching
/// rows' `id`s with their BM25 scores (Lance: k1 = 1.2, b = 0.75).
pub async fn full_text(
    ds: &Dataset,
    column: &str,
    query: &str,
    mode: TextMode,
) -> Result<Vec<(String, f32)>, TableError> {
    use lance_index::scalar::FullTextSearchQuery;
    use lance_index::scalar::inverted::query::{MatchQuery, Operator};
    let uri = ds.uri().to_string();
    // Lowercased here as well as by the tokenizer: Lance's fuzzy expansion
    // compares the raw query term with the (lowercased) index vocabulary.
    let mut m = MatchQuery::new(query.to_lowercase()).with_column(Some(column.to_string()));
    m = match mode {
        TextMode::Any => m.with_operator(Operator::Or).with_fuzziness(Some(0)),
        TextMode::All => m.with_operator(Operator::And).with_fuzziness(Some(0)),
        TextMode::Fuzzy(k) => m
            .with_operator(Operator::Or)
            .with_fuzziness(Some(k))
            .with_max_expansions(10_000),
    };
    let mut sc = ds.scan();
    sc.full_text_search(FullTextSearchQuery::new_query(m.into()))
        .map_err(|e| terr(&uri, e))?;
    sc.project(&["id"]).map_err(|e| terr(&uri, e))?;
    let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
    let batches: Vec<RecordBatch> = stream.map_err(|e| terr(&uri, e)).try_collect().await?;
    let mut out = scored_ids(&uri, batches)?;
    if let TextMode::Fuzzy(k) = mode {
        fuzzy_unindexed(ds, column, query, k, &mut out).await?;
    }
    Ok(out)
}

/// The `(id, _score)` pairs of a full-text search's batches.
fn scored_ids(uri: &str, batches: Vec<RecordBatch>) -> Result<Vec<(String, f32)>, TableError> {
    use arrow_array::{Array, Float32Array, StringArray};
    let mut out = Vec::new();
    for b in batches {
        let ids = b
            .column_by_name("id")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let scores = b
            .column_by_name("_score")
            .and_then(|c| c.as_any().downcast_ref::<Float32Array>());
        let (Some(ids), Some(scores)) = (ids, scores) else {
            return Err(TableError {
                uri: uri.to_string(),
                message: "full-text search returned no id/_score columns".into(),
                conflict: false,
            });
        };
        for i in 0..b.num_rows() {
            if ids.is_valid(i) {
                out.push((ids.value(i).to_string(), scores.value(i)));
            }
        }
    }
    Ok(out)
}

/// The tokens of `text` as every full-text index here splits them
/// ([`fts_params`]: runs of alphanumeric characters, lowercased).
pub fn fts_tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
}

/// Completes a `fuzzy` search over the fragments the full-text index does
/// not cover yet (index upkeep is deferred, [`indexes_due`]): Lance expands
/// a fuzzy term against the index's vocabulary only and searches uncovered
/// fragments for the exact terms. This reads those fragments' `column`,
/// finds their terms within `k` edits (Levenshtein, as Lance's automaton)
/// of a query term but not equal to one, searches them exactly and adds
/// each uncovered row's scores to what `out` already holds for it, so a
/// row scores the sum over its matching terms, as an index covering it
/// would give. Nothing is read when the index covers every fragment.
async fn fuzzy_unindexed(
    ds: &Dataset,
    column: &str,
    query: &str,
    k: u32,
    out: &mut Vec<(String, f32)>,
) -> Result<(), TableError> {
    use arrow_array::{Array, StringArray};
    use lance::index::DatasetIndexInternalExt;
    use lance_index::scalar::FullTextSearchQuery;
    use lance_index::scalar::inverted::query::{MatchQuery, Operator};
    let uri = ds.uri().to_string();
    let unindexed = ds
        .unindexed_fragments(&IndexSpec::FullText(column.to_string()).name())
        .await
        .map_err(|e| terr(&uri, e))?;
    if unindexed.is_empty() {
        return Ok(());
    }
    let wanted: Vec<String> = fts_tokens(query).collect();
    let mut sc = ds.scan();
    sc.with_fragments(unindexed);
    sc.project(&["id", column]).map_err(|e| terr(&uri, e))?;
    let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
    let batches: Vec<RecordBatch> = stream.map_err(|e| terr(&uri, e)).try_collect().await?;
    let mut extra: std::collections::BTreeSet<String> = Default::default();
    let mut rows: std::collections::HashSet<String> = Default::default();
    for b in &batches {
        let ids = b
            .column_by_name("id")
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let texts = b
            .column_by_name(column)
            .and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let (Some(ids), Some(texts)) = (ids, texts) else {
            continue;
        };
        for i in 0..b.num_rows() {
            if !ids.is_valid(i) || !texts.is_valid(i) {
                continue;
            }
            let mut near = false;
            for t in fts_tokens(texts.value(i)) {
                if wanted.contains(&t) {
                    continue;
                }
                if wanted
                    .iter()
                    .any(|w| strsim::levenshtein(w, &t) <= k as usize)
                {
                    near = true;
                    extra.insert(t);
                }
            }
            if near {
                rows.insert(ids.value(i).to_string());
            }
        }
    }
    if extra.is_empty() {
        return Ok(());
    }
    let terms = extra.into_iter().collect::<Vec<_>>().join(" ");
    let m = MatchQuery::new(terms)
        .with_column(Some(column.to_string()))
        .with_operator(Operator::Or)
        .with_fuzziness(Some(0));
    let mut sc = ds.scan();
    sc.full_text_search(FullTextSearchQuery::new_query(m.into()))
        .map_err(|e| terr(&uri, e))?;
    sc.project(&["id"]).map_err(|e| terr(&uri, e))?;
    let stream = sc.try_into_stream().await.map_err(|e| terr(&uri, e))?;
    let found: Vec<RecordBatch> = stream.map_err(|e| terr(&uri, e)).try_collect().await?;
    let mut add: std::collections::HashMap<String, f32> = scored_ids(&uri, found)?
        .into_iter()
        .filter(|(id, _)| rows.contains(id))
        .collect();
    for (id, score) in out.iter_mut() {
        if let Some(s) = add.remove(id) {
            *score += s;
        }
    }
    out.extend(add);
    Ok(())
}

/// Whether the version after `at` exists on `at`'s Lance branch: one
/// probe of that version's manifest, never a listing of `_versions/`
/// (which grows with history, and which Lance reads with `read_dir` on a
/// local filesystem). Lance versions are dense, so this is exactly "the
/// branch head is ahead of `at`".
pub async fn has_newer_version(at: &TableAt) -> Result<bool, TableError> {
    let next = at.version + 1;
    let b = match &at.branch {
        Some(br) => branch_builder(&at.uri).with_branch(br, Some(next)),
        None => builder(&at.uri).with_version(next),
    };
    match b.load().await {
        Ok(_) => Ok(true),
        Err(
            lance::Error::NotFound { .. }
            | lance::Error::DatasetNotFound { .. }
            | lance::Error::VersionNotFound { .. },
        ) => Ok(false),
        Err(e) => Err(terr(&at.uri, e)),
    }
}

/// The newest version on a Lance branch (`None` for the main line); `None`
/// when that branch does not exist.
pub async fn head_version(uri: &str, branch: Option<&str>) -> Result<Option<u64>, TableError> {
    let root = builder(uri).load().await.map_err(|e| terr(uri, e))?;
    let Some(br) = branch else {
        return Ok(Some(root.version().version));
    };
    let branches = root.list_branches().await.map_err(|e| terr(uri, e))?;
    if !branches.contains_key(br) {
        return Ok(None);
    }
    let ds = branch_builder(uri)
        .with_branch(br, None)
        .load()
        .await
        .map_err(|e| terr(uri, e))?;
    Ok(Some(ds.version().version))
}

/// Makes the content of `at` the newest version of its branch again, as
/// version `head + 1` exactly (Lance `Operation::Restore`, committed through
/// the fence of [`commit_staged`]): `head` is the branch head the caller
/// decided on, so a version anyone committed after it (another process
/// healing the same write, a write published meanwhile) makes this refuse
/// with [`TableError::conflict`] instead of undoing that version. Used to
/// roll back an unpublished write. Returns the new version.
pub async fn restore(at: &TableAt, head: u64) -> Result<u64, TableError> {
    use lance::dataset::transaction::{Operation, Transaction};
    let ds = open(&TableAt {
        version: head,
        ..at.clone()
    })
    .await?;
    let inner = lance_table::io::commit::commit_handler_from_url(&at.uri, &None)
        .await
        .map_err(|e| terr(&at.uri, e))?;
    let fence = Arc::new(fence::Fence {
        inner,
        expected: Some(std::sync::atomic::AtomicU64::new(head + 1)),
        head: None,
        head_used: Default::default(),
    });
    let tx = Transaction::new(
        head,
        Operation::Restore {
            version: at.version,
        },
        None,
    );
    let ds = lance::dataset::CommitBuilder::new(Arc::new(ds))
        .with_commit_handler(fence)
        .with_max_retries(1)
        .with_skip_auto_cleanup(true)
        .execute(tx)
        .await
        .map_err(|e| terr(&at.uri, e))?;
    Ok(ds.version().version)
}

/// The version whose content version `at` restored (a roll back by heal,
/// [`restore`]); `None` when `at` was committed by anything but a restore.
pub async fn restored_from(at: &TableAt) -> Result<Option<u64>, TableError> {
    use lance::dataset::transaction::Operation;
    let ds = open(at).await?;
    let t = ds.read_transaction().await.map_err(|e| terr(&at.uri, e))?;
    Ok(t.and_then(|t| match t.operation {
        Operation::Restore { version } => Some(version),
        _ => None,
    }))
}

#[cfg(test)]
mod tests {
    use super::{FOLD_RATIO, MAX_INDEX_SEGMENTS, fold_width};

    #[test]
    fn below_the_cap_an_extension_adds_a_delta() {
        assert_eq!(fold_width(&[], 10), 0);
        assert_eq!(fold_width(&[100_000, 1, 1, 1, 1], 1), 0);
    }

    #[test]
    fn at_the_cap_small_deltas_merge_and_the_base_is_kept() {
        // Five one-row deltas over a large base: all five merge, not the base.
        assert_eq!(fold_width(&[100_000, 1, 1, 1, 1, 1], 1), 5);
        // A middle segment four times what is merged is kept as well.
        assert_eq!(fold_width(&[100_000, 40, 2, 2, 2, 1], 1), 4);
        assert_eq!(fold_width(&[100_000, 40, 40, 2, 1, 1], 1), 3);
        // Once the newer segments reach a quarter of the base, it joins.
        assert_eq!(fold_width(&[100, 20, 2, 1, 1, 1], 1), 6);
    }

    /// Drives `fold_width` through `extensions` extensions of `delta` rows
    /// each over a `base`-row index, as upkeep does; returns the most
    /// segments seen, the total rows rewritten and how often the base was.
    fn simulate(base: u64, delta: u64, extensions: usize) -> (usize, u64, usize) {
        let mut segments = vec![base];
        let (mut most, mut rewritten, mut base_rewrites) = (1, 0, 0);
        for _ in 0..extensions {
            let n = fold_width(&segments, delta);
            let k = segments.len();
            let merged: u64 = segments[k - n..].iter().sum::<u64>() + delta;
            if n == k {
                base_rewrites += 1;
            }
            segments.truncate(k - n);
            segments.push(merged);
            rewritten += merged;
            most = most.max(segments.len());
        }
        (most, rewritten, base_rewrites)
    }

    #[test]
    fn tiered_folding_rewrites_each_row_a_logarithmic_number_of_times() {
        for (extensions, per_row) in [(1_000, 20), (10_000, 20), (100_000, 30)] {
            let (most, rewritten, base_rewrites) = simulate(100_000, 1, extensions);
            assert!(most <= MAX_INDEX_SEGMENTS, "{most} segments");
            // Folding every delta into one beside the base rewrote about
            // extensions / 2 rows per extension (1,000 at 10,000).
            let mean = rewritten / extensions as u64;
            assert!(
                mean <= per_row,
                "{mean} rows rewritten per extension after {extensions}"
            );
            // The base is rewritten only when the rest reaches a quarter of it.
            let grown = 100_000 + extensions as u64;
            assert!(
                base_rewrites as u64 <= extensions as u64 * FOLD_RATIO / grown + 1,
                "{base_rewrites} base rewrites after {extensions}"
            );
        }
    }
}
