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

mod covered;
mod fence;
mod history;
mod index;
mod search;

pub use covered::{batch_ids, stored_split};
pub use history::*;
pub use index::*;
pub use search::*;

/// A Lance failure on one table.
#[derive(Debug, thiserror::Error)]
#[error("table {uri}: {message}")]
pub struct TableError {
    pub uri: String,
    pub message: String,
    /// True for a commit that lost against a concurrent writer.
    pub conflict: bool,
    /// True when the dataset or the version asked for does not exist
    /// (never written, or removed by `cleanup`).
    pub missing: bool,
}

fn terr(uri: &str, e: lance::Error) -> TableError {
    let conflict = matches!(
        e,
        lance::Error::CommitConflict { .. }
            | lance::Error::RetryableCommitConflict { .. }
            | lance::Error::IncompatibleTransaction { .. }
            | lance::Error::TooMuchWriteContention { .. }
    );
    // Also a data file gone under a dataset handle opened before it was
    // removed (`cleanup` in another process): Lance reports the object
    // store's not-found inside an IO or execution error whose text says so.
    let missing = matches!(
        e,
        lance::Error::NotFound { .. }
            | lance::Error::DatasetNotFound { .. }
            | lance::Error::VersionNotFound { .. }
    ) || e.to_string().contains("Not found: ");
    TableError {
        uri: uri.to_string(),
        message: e.to_string(),
        conflict,
        missing,
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

/// [`params`] for creating the dataset at `uri`, with its store
/// parameters ([`store_params`]).
fn create_params(uri: &str) -> WriteParams {
    WriteParams {
        store_params: store_params(uri),
        ..params(WriteMode::Create)
    }
}

/// Lance store parameters for `uri`: metered when counting is on
/// ([`super::metered`]), with the S3 options registered for its bucket
/// ([`super::s3::lance_options`]); `None` when neither applies. Lance
/// hands them on to the datasets it derives (branches, checkouts).
fn store_params(uri: &str) -> Option<lance::io::ObjectStoreParams> {
    let options = super::s3::lance_options(uri);
    let metered = super::metered::lance_store_params();
    if options.is_none() {
        return metered;
    }
    Some(lance::io::ObjectStoreParams {
        storage_options_accessor: options
            .map(|o| Arc::new(lance::io::StorageOptionsAccessor::with_static_options(o))),
        ..metered.unwrap_or_default()
    })
}

/// A dataset builder for `uri` on the main line (the shared [`session`]),
/// metered when storage counting is on ([`super::metered`]).
fn builder(uri: &str) -> DatasetBuilder {
    with_store(uri, DatasetBuilder::from_uri(uri).with_session(session()))
}

/// A dataset builder for `uri` to open a Lance branch with: a session of
/// its own (see [`session`]), metered when storage counting is on.
fn branch_builder(uri: &str) -> DatasetBuilder {
    with_store(uri, DatasetBuilder::from_uri(uri))
}

/// [`store_params`] for the handles a commit goes through
/// ([`open_fenced`]): a table on the local file system is handed to Lance
/// as an object store over [`crate::storage::local::InlineLocal`], under
/// Lance's `file-object-store` scheme (the local file system driven like
/// an object store), so each file a commit writes (transaction file,
/// manifest) is one put, which a commit thread that allows it writes
/// itself instead of hopping to tokio's blocking pool several times per
/// file (docs/performance.md, "Commit turns without thread hops"). Lance
/// takes a store handed to it this way to list in lexical order (and
/// writes no version hint through it), which `InlineLocal`'s sorted
/// listings keep true. The dataset's URI, and so every cache keyed by it,
/// stays the same. Tables on object storage get [`store_params`]
/// unchanged.
fn fenced_store_params(uri: &str) -> Option<lance::io::ObjectStoreParams> {
    let Some(url) = inline_store_url(uri) else {
        return store_params(uri);
    };
    // Lance 14 marks the field deprecated in favour of a registered
    // provider, which would need a URI of that scheme: the dataset's URI
    // would then differ from every other handle's of the same table.
    #[allow(deprecated)]
    Some(lance::io::ObjectStoreParams {
        object_store: Some((crate::storage::local::shared(), url)),
        ..store_params(uri).unwrap_or_default()
    })
}

/// The `file-object-store:///…` URL of a table at an absolute local path
/// (`/…` or `file:///…`); `None` otherwise.
fn inline_store_url(uri: &str) -> Option<url::Url> {
    let path = if uri.starts_with("file://") {
        url::Url::parse(uri).ok()?.to_file_path().ok()?
    } else if uri.starts_with('/') {
        std::path::PathBuf::from(uri)
    } else {
        return None;
    };
    let file = url::Url::from_file_path(&path).ok()?;
    url::Url::parse(&format!("file-object-store://{}", file.path())).ok()
}

fn with_store(uri: &str, b: DatasetBuilder) -> DatasetBuilder {
    match store_params(uri) {
        Some(p) => b.with_store_params(p),
        None => b,
    }
}

/// Creates an empty dataset with `schema`; returns its version (1).
pub async fn create_empty(uri: &str, schema: SchemaRef) -> Result<u64, TableError> {
    let reader = RecordBatchIterator::new(Vec::<Result<RecordBatch, ArrowError>>::new(), schema);
    forget(uri);
    let ds = Dataset::write(reader, uri, Some(create_params(uri)))
        .await
        .map_err(|e| terr(uri, e))?;
    Ok(ds.manifest().version)
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
            forget(uri);
            let ds = Dataset::write(reader, uri, Some(create_params(uri)))
                .await
                .map_err(|e| terr(uri, e))?;
            Ok(ds.manifest().version)
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
        handles().insert((ds.uri().to_string(), ds.manifest().version), ds.clone());
    }
}

/// The newest main-line version this process committed per table URI, as
/// the dataset its commit returned: the warm head's open table handle
/// (docs/architecture.md, "The write path"), which the next commit on the
/// table starts from while the graph's manifest names that version
/// ([`open_for_write`]). A Lance version is written once, with
/// create-if-absent, and never again: heal undoes a failed write with a
/// new version (a restore), cleanup removes only versions no kept commit
/// names, and a type dropped and added again keeps its dataset and its
/// versions ([`create_or_replace`]). So a handle of the version the
/// manifest names is that version, whichever write's publish named it.
fn warm() -> &'static quick_cache::sync::Cache<String, Dataset> {
    static WARM: std::sync::OnceLock<quick_cache::sync::Cache<String, Dataset>> =
        std::sync::OnceLock::new();
    WARM.get_or_init(|| quick_cache::sync::Cache::new(OPEN_HANDLES))
}

/// Keeps `ds`, a version this process just committed, for later [`open`]s
/// of it and, on the main line, as the handle the next commit on its table
/// starts from ([`warm`]).
fn keep_committed(ds: &Dataset) {
    keep(ds);
    if ds.manifest().branch.is_some() {
        return;
    }
    let newer = warm()
        .get(ds.uri())
        .is_none_or(|w| w.manifest().version < ds.manifest().version);
    if newer {
        warm().insert(ds.uri().to_string(), ds.clone());
    }
}

/// Forgets every handle kept of the table at `uri` ([`keep`], [`warm`]):
/// a dataset created there numbers its versions from 1 again, so a handle
/// of an earlier dataset at the same place (a graph this process deleted
/// and created again at the same root) would be another dataset's version.
fn forget(uri: &str) {
    warm().remove(uri);
    handles().retain(|(u, _), _| u != uri);
}

/// The main-line version of the table at `uri` whose handle the next
/// commit there starts from when the manifest names it ([`warm`]), if any.
pub fn warm_version(uri: &str) -> Option<u64> {
    warm().get(uri).map(|ds| ds.manifest().version)
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
    if at.branch.is_none()
        && let Some(ds) = warm().get(&at.uri)
        && ds.manifest().version == at.version
    {
        return Ok(ds);
    }
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
    let handler = Arc::new(fence::Fence::new(inner, expected, Some(at.version)));
    let b = match &at.branch {
        Some(br) => DatasetBuilder::from_uri(&at.uri)
            .with_commit_handler(handler)
            .with_branch(br, Some(at.version)),
        None => DatasetBuilder::from_uri(&at.uri)
            .with_session(session())
            .with_commit_handler(handler)
            .with_version(at.version),
    };
    let b = match fenced_store_params(&at.uri) {
        Some(p) => b.with_store_params(p),
        None => b,
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
            missing: false,
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
    Ok(out.manifest().version)
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
    Ok(out.manifest().version)
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
    Ok(out.new_dataset.manifest().version)
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

    /// Whether the change is staged as a Lance append: a load's append, or
    /// an upsert of ids the table did not hold ([`stage`]).
    pub fn appends(&self) -> bool {
        matches!(
            self.transaction.operation,
            lance::dataset::transaction::Operation::Append { .. }
        )
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
/// Lance transaction. An upsert is a Lance merge-insert on `id`, or an
/// append when none of its ids is stored ([`covered::all_absent`]).
/// Errors: Lance refusing the rows or the write.
pub async fn stage(ds: Arc<Dataset>, op: ChangeOp) -> Result<StagedChange, TableError> {
    let uri = ds.uri().to_string();
    let read_version = ds.manifest().version;
    let insert = async |ds: Arc<Dataset>, b: RecordBatch, mode: WriteMode| {
        let p = params(mode);
        InsertBuilder::new(ds)
            .with_params(&p)
            .execute_uncommitted(vec![b])
            .await
            .map_err(|e| terr(&uri, e))
    };
    // The rows new fragments get, for [`covered`]'s record of their ids.
    let mut wrote: Option<RecordBatch> = None;
    let mut append = matches!(op, ChangeOp::Append(_));
    let (transaction, affected_rows) = match op {
        ChangeOp::Append(b) => {
            wrote = Some(b.clone());
            (insert(ds, b, WriteMode::Append).await?, None)
        }
        ChangeOp::Overwrite(b) => (insert(ds, b, WriteMode::Overwrite).await?, None),
        // An upsert of ids the table does not hold only inserts: staged as
        // an append, without Lance's merge-insert ([`covered::all_absent`]).
        ChangeOp::Upsert(b) if covered::all_absent(&ds, &b).await => {
            wrote = Some(b.clone());
            append = true;
            (insert(ds, b, WriteMode::Append).await?, None)
        }
        ChangeOp::Upsert(b) => {
            wrote = Some(b.clone());
            // Read through the key index alone when no uncovered fragment
            // holds one of the ids ([`covered`]).
            let reads = match covered::covered_only(&ds, &b).await {
                Some(restricted) => Arc::new(restricted),
                None => ds,
            };
            let mut mb = MergeInsertBuilder::try_new(reads, vec!["id".to_string()])
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
    if let Some(b) = wrote {
        use lance::dataset::transaction::Operation;
        let fragments = match &transaction.operation {
            Operation::Append { fragments } => &fragments[..],
            Operation::Update { new_fragments, .. } => &new_fragments[..],
            _ => &[],
        };
        let append = append && matches!(&transaction.operation, Operation::Append { .. });
        covered::remember(&uri, fragments, &b, append);
    }
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
    let head = ds.manifest().version;
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
    let fence = Arc::new(fence::Fence::new(inner, Some(expected), Some(head)));
    let mut b = lance::dataset::CommitBuilder::new(ds)
        .with_commit_handler(fence)
        .with_max_retries(1)
        .with_skip_auto_cleanup(true);
    if let Some(rows) = change.affected_rows {
        b = b.with_affected_rows(rows);
    }
    let ds = fence::KNOWN_HEAD
        .scope(head, b.execute(change.transaction))
        .await
        .map_err(|e| terr(&uri, e))?;
    keep_committed(&ds);
    Ok(ds)
}

/// Runs `commit` (a [`commit_staged`]) without Lance's version hint when
/// another commit on the same table follows it at once, as within a
/// group's chain ([`fence::SKIP_HINT`]); the last commit writes it.
pub async fn without_version_hint<F: std::future::Future>(commit: F) -> F::Output {
    fence::SKIP_HINT.scope(true, commit).await
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
