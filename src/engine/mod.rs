//! The embedded graph engine: a graph of Lance tables published atomically
//! through a versioned manifest.
//!
//! Layout of a graph root (a local directory; `file://` accepted):
//! - `_graph/schema.pg`, `_graph/catalog.json` — the schema `init` wrote
//!   and its compiled catalog; after a schema apply the accepted one is
//!   `_graph/schema/<id>.pg|.json`, named by the manifest;
//! - `_graph/manifest/…`, `_graph/commits/…` — see [`manifest`];
//! - `_graph/__recovery/`, `_graph/audit/` — write sidecars and heal's
//!   audit records ([`recovery`]);
//! - `nodes/<Type>.lance`, `edges/<Edge>.lance` — one Lance dataset per type.
//!
//! A write stages and commits each touched table's Lance transaction, then
//! publishes one manifest version naming every new table version and a new
//! commit: the tables flip visible together or not at all. Reads resolve a
//! branch head or a commit to pinned table versions.
//!
//! Where `impl Graph` lives: this file holds the handle (fields, builders,
//! catalog, table naming); `open` creates and opens graphs; `state` reads
//! manifests, views, snapshots, branches and commits; `loading` validates
//! and stages loads; `mutate` evaluates mutations; `write` is the one home
//! of the write entry points (prepare with retry, then commit through the
//! commit path); `commit` the commit protocol of one write and `group` of
//! a group; `merge`, `schema_apply`, `recovery` (heal) and `upkeep` their
//! own operations; `exec` runs read queries; `export` streams rows.

pub mod blob;
pub mod budget;
pub mod changes;
pub mod cleanup;
mod embedding;
pub use embedding::{EmbedMode, EmbedProgress, EmbedReport};
mod commit;
pub mod error;
pub mod exec;
pub mod export;
pub mod feed;
pub mod group;
pub mod ids;
pub mod lease;
pub mod ledger;
pub use omnigraph_data::load;
mod loading;
pub mod manifest;
pub mod merge;
pub mod mutate;
mod open;
pub mod recovery;
pub mod root;
pub mod schema_apply;
mod state;
pub mod table_cache;
pub mod upkeep;
pub mod waiting;
mod write;
pub use omnigraph_data::values;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::Schema;
use serde::Serialize;

pub use error::EngineError;
pub use ids::{BranchName, CommitId, GraphId, TableKey, TableKind};
use load::{Existing, LoadMode, Row, Staged};
use manifest::{BranchState, Commit, MAIN, Manifest, ManifestStore, TableRef};
use root::GRAPH_DIR;
pub use root::Root;

use crate::schema::{Catalog, Property, compile_schema_file};
use crate::storage::table::{self, TableAt, TableError};

impl From<TableError> for EngineError {
    fn from(e: TableError) -> Self {
        if e.conflict {
            EngineError::Conflict {
                reason: format!("{}; retry the write", e.message),
            }
        } else if e.missing {
            EngineError::TableVersionGone {
                table: e.uri,
                reason: e.message,
            }
        } else {
            EngineError::Table {
                table: e.uri,
                reason: e.message,
            }
        }
    }
}

/// Which state of the graph to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadAt {
    /// The head of a branch.
    Branch(String),
    /// Any commit, on any branch (time travel).
    Commit(CommitId),
}

/// The state a read sees: table versions and the commit they belong to.
#[derive(Debug, Clone)]
pub struct View {
    pub branch: Option<String>,
    pub commit: CommitId,
    pub tables: BTreeMap<TableKey, TableRef>,
    /// The schema of that state: the current one for a branch head, the
    /// one the commit was published under for a commit (so time travel
    /// across a schema apply reads old tables with their old properties).
    pub catalog: Arc<Catalog>,
}

/// One table in a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct TableSnapshot {
    pub table: TableKey,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lance_branch: Option<String>,
    pub rows: usize,
}

/// `omnigraph snapshot`: each table's version and row count.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    pub commit: CommitId,
    pub manifest_version: u64,
    pub tables: Vec<TableSnapshot>,
}

/// What a write did.
#[derive(Debug, Clone, Serialize)]
pub struct WriteReport {
    /// The published commit; `None` when nothing changed.
    pub commit: Option<Commit>,
    pub manifest_version: Option<u64>,
    /// Rows written (inserted or updated) and deleted, per table.
    pub written: BTreeMap<TableKey, usize>,
    pub deleted: BTreeMap<TableKey, usize>,
    pub message: String,
}

/// A branch and its head.
#[derive(Debug, Clone, Serialize)]
pub struct BranchInfo {
    pub name: String,
    pub head: CommitId,
}

/// One table's change in a write: exactly one Lance commit per table.
#[derive(Debug)]
pub(crate) enum TableWrite {
    Append(RecordBatch),
    Upsert(RecordBatch),
    Overwrite(RecordBatch),
    /// Delete rows by `id`.
    Delete(Vec<String>),
    /// A merge's changes: delete rows by `id`, then upsert (two Lance
    /// commits at most; the sidecar covers both).
    Merge {
        upsert: Option<RecordBatch>,
        delete: Vec<String>,
    },
    /// No data change: only the index upkeep every table write runs (an
    /// index a schema apply added).
    Reindex,
}

impl TableWrite {
    /// Whether the change does not depend on which rows the table holds
    /// (an append, an overwrite): staged against an older version, it may
    /// be committed over newer ones as it is.
    fn is_blind(&self) -> bool {
        matches!(self, TableWrite::Append(_) | TableWrite::Overwrite(_))
    }

    /// The ids this change inserts, for the ledger ([`ledger`]): the rows
    /// of an append or upsert, none for a delete, `None` (unknown) for an
    /// overwrite, a merge or a reindex.
    fn inserted(&self) -> ledger::Inserted {
        match self {
            TableWrite::Append(b) | TableWrite::Upsert(b) => {
                let ids = b
                    .column_by_name("id")?
                    .as_any()
                    .downcast_ref::<arrow_array::StringArray>()?;
                Some(Arc::new(
                    (0..ids.len())
                        .filter(|i| ids.is_valid(*i))
                        .map(|i| ids.value(i).to_string())
                        .collect(),
                ))
            }
            TableWrite::Delete(_) => Some(Arc::new(Default::default())),
            TableWrite::Overwrite(_) | TableWrite::Merge { .. } | TableWrite::Reindex => None,
        }
    }

    /// The single staged change this write is, if it is one (a merge's two
    /// steps and a reindex are committed step by step instead).
    fn change_op(&self) -> Option<table::ChangeOp> {
        Some(match self {
            TableWrite::Append(b) => table::ChangeOp::Append(b.clone()),
            TableWrite::Upsert(b) => table::ChangeOp::Upsert(b.clone()),
            TableWrite::Overwrite(b) => table::ChangeOp::Overwrite(b.clone()),
            TableWrite::Delete(ids) => table::ChangeOp::Delete(ids.clone()),
            TableWrite::Merge { .. } | TableWrite::Reindex => return None,
        })
    }
}

/// The storage-format version of a graph root this build reads and writes
/// (the `_graph/` manifest, commit and sidecar layout of docs/storage.md).
/// Reported by `omnigraph version` (`internal-schema N`), `GET /healthz`
/// and `snapshot` as `internal_schema_version`, as the reference does
/// (docs/user/operations/upgrade.md).
pub const INTERNAL_SCHEMA_VERSION: u32 = 1;

/// How long a write waits, backing off, for a table that another process
/// is writing before it answers [`EngineError::Busy`].
pub const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The longest a write waits for another process's publish before it
/// prepares again ([`Graph::write_with_retry`]); the pause starts at 5 ms
/// and doubles.
pub const BUSY_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(200);

/// A write validated against one branch head, its table changes staged
/// (where they can be) but not committed: nothing is visible yet. Made by
/// [`Graph::prepare_load`] or [`Graph::prepare_mutation`], committed by
/// [`Graph::commit_prepared`].
#[derive(Debug)]
pub struct PreparedWrite {
    branch: String,
    actor: String,
    message: String,
    /// The Lance branch the graph branch writes, as of the view.
    target: Option<String>,
    /// The branch head it was prepared against.
    view: View,
    /// Tables whose rows validation read: the commit refuses when one of
    /// them was published again since ([`EngineError::Stale`]), unless
    /// the read still holds ([`Graph::read_holds`]).
    reads: BTreeSet<TableKey>,
    /// Reads that only checked that the write's own ids were absent (an
    /// append's key-conflict check on a type with no `@unique` whose
    /// stored ids nothing else needed): such a read still holds over
    /// versions that inserted none of them, and the write may share a
    /// group with earlier members inserting other ids there.
    absent: BTreeMap<TableKey, Arc<HashSet<String>>>,
    writes: BTreeMap<TableKey, TableWrite>,
    /// Changes staged while preparing, by table.
    staged: BTreeMap<TableKey, table::StagedChange>,
    written: BTreeMap<TableKey, usize>,
    deleted: BTreeMap<TableKey, usize>,
    /// The branch head the write requires (a conditional write): checked
    /// when prepared, in the commit step, and atomically with the publish.
    expect_head: Option<CommitId>,
    /// Prepares the write again against the newest head; the commit step
    /// calls it (once) when what the write read has moved, so the redo
    /// runs while nothing in this process can move it again.
    redo: Option<Redo>,
}

/// A write's preparation, kept to run again in the commit step
/// ([`PreparedWrite::with_redo`]).
#[derive(Clone)]
pub struct Redo(
    Arc<
        dyn Fn(Graph) -> futures::future::BoxFuture<'static, Result<Prepared, EngineError>>
            + Send
            + Sync,
    >,
);

impl std::fmt::Debug for Redo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Redo")
    }
}

impl Redo {
    /// Wraps a preparation that owns what it needs.
    pub fn new<F>(f: F) -> Redo
    where
        F: Fn(Graph) -> futures::future::BoxFuture<'static, Result<Prepared, EngineError>>
            + Send
            + Sync
            + 'static,
    {
        Redo(Arc::new(f))
    }
}

impl PreparedWrite {
    /// The same write, able to prepare itself again in the commit step.
    pub fn with_redo(mut self, redo: Redo) -> PreparedWrite {
        self.redo = Some(redo);
        self
    }

    /// The caller who asked for the write.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// The graph branch it writes.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The tables it writes.
    pub fn tables(&self) -> impl Iterator<Item = &TableKey> {
        self.writes.keys()
    }
}

/// What preparing a write produced.
#[derive(Debug)]
pub enum Prepared {
    /// Nothing to commit (a mutation that matched no rows): the report.
    Nothing(WriteReport),
    /// A write for the commit step.
    Write(PreparedWrite),
}

/// Everything one commit step needs.
struct CommitInput<'a> {
    /// The newest manifest, when the caller just read it.
    head: Option<Manifest>,
    branch: &'a str,
    view: &'a View,
    reads: &'a BTreeSet<TableKey>,
    /// Reads that only checked the absence of these ids
    /// ([`PreparedWrite::absent`]).
    absent: &'a BTreeMap<TableKey, Arc<HashSet<String>>>,
    writes: BTreeMap<TableKey, TableWrite>,
    staged: BTreeMap<TableKey, table::StagedChange>,
    actor: &'a str,
    message: &'a str,
    extra: Extra<'a>,
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The error for a write whose table `key` moved since it was prepared.
pub(crate) fn stale(key: &TableKey, why: &str) -> EngineError {
    EngineError::Stale {
        table: key.to_string(),
        reason: why.to_string(),
    }
}

/// What a write publishes besides its tables.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Extra<'a> {
    /// A merge's source head: the commit's second parent.
    pub merge_parent: Option<&'a str>,
    /// A schema apply's switch.
    pub schema: Option<&'a schema_apply::SchemaSwitch>,
    /// A conditional write's required branch head: the publish refuses
    /// ([`EngineError::PreconditionFailed`]) when the manifest it
    /// publishes over has another.
    pub expect_head: Option<&'a CommitId>,
}

/// The table of node type `name` ([`TableKey::node`]).
pub fn node_key(name: &str) -> TableKey {
    TableKey::node(name)
}

/// The table of edge type `name` ([`TableKey::edge`]).
pub fn edge_key(name: &str) -> TableKey {
    TableKey::edge(name)
}

/// Whether `name` is one path-safe component: 1–100 characters of
/// `A-Z a-z 0-9 . _ -`, starting with a letter or digit, no `..`. The rule
/// for graph ids (a graph root is `graphs/<id>.omni`).
pub fn is_path_safe_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.contains("..")
}

/// Checks a branch name: 1–100 characters of path-safe components
/// ([`is_path_safe_name`]) joined by `/` (the reference's quickstart uses
/// `review/new-hires`); no empty component, no leading or trailing `/`.
/// The name never becomes a storage path as given: a branch's Lance branch
/// is the name with `/` replaced by `-`, plus a ULID (`create_branch`).
pub fn check_branch_name(name: &str) -> Result<(), EngineError> {
    let ok = name.len() <= 100 && name.split('/').all(is_path_safe_name);
    if ok {
        Ok(())
    } else {
        Err(EngineError::BadBranchName {
            name: name.to_string(),
            reason: "use 1-100 letters, digits, '.', '_', '-' or '/' between parts, each part starting with a letter or digit"
                .into(),
        })
    }
}

/// The Lance branch name for a new lineage of graph branch `name`: path
/// separators replaced, unique by a ULID.
pub(crate) fn lance_branch_for(name: &str) -> String {
    format!("{}-{}", name.replace('/', "-"), ulid::Ulid::new())
}

/// An open graph. Cheap to share behind an `Arc`; every method reads the
/// manifest it needs, so several handles (and processes) may write.
#[derive(Debug, Clone)]
pub struct Graph {
    uri: String,
    root: Root,
    manifests: ManifestStore,
    /// The accepted schema, shared by clones of this handle and swapped
    /// when the manifest names a newer one (a schema apply, here or in
    /// another process, or one recovered by heal).
    schema: Arc<std::sync::RwLock<Arc<SchemaState>>>,
    /// A handle a schema apply builds on the new schema: never reloads.
    schema_pinned: bool,
    /// Decoded tables per (table, Lance branch, version), shared by reads.
    cache: exec::TableCache,
    /// The policy gate every write asks first, with the graph id it names
    /// as the resource; `None` (embedded and CLI default) allows all.
    gate: Option<(String, crate::policy::Gate)>,
    /// Turns at the commit step, shared by every handle on this root in
    /// this process ([`Graph::commit_turn`]).
    commit_lock: Arc<tokio::sync::Mutex<()>>,
    /// Where prepared writes go for their commit step; `None`: committed
    /// by the caller's task after taking the commit turn.
    commit_path: Option<Arc<dyn CommitPath>>,
    /// Set when the next commit step must heal first: when the handle
    /// opens, and when a commit met something it did not expect (a failed
    /// write, a lost fence, a refused publish). Other processes' crashed
    /// writes are met that way: their unpublished version holds the fence.
    heal_due: Arc<std::sync::atomic::AtomicBool>,
    /// Commits through this handle leave index upkeep and compaction to
    /// [`Graph::upkeep_once`] (the GraphActor runs it between commits)
    /// instead of running it in the commit step.
    upkeep_background: bool,
    /// The (branch, table) pairs written since their last upkeep, shared
    /// by clones ([`Graph::upkeep_once`]).
    upkeep_wanted: upkeep::Wanted,
    /// The pairs whose index-remapping compaction was held beside a flood
    /// ([`Graph::upkeep_once_beside_flood`]), until
    /// [`Graph::release_held_upkeep`]; shared by clones.
    upkeep_held: upkeep::Wanted,
    /// Other processes' writes waiting for tables this process keeps
    /// winning ([`waiting`]), shared by clones.
    waiters: Arc<waiting::Waiters>,
    /// Upkeep steps running now ([`Graph::upkeep_once`]), shared by
    /// clones: a pair taken out of `upkeep_wanted` is still pending until
    /// its step ends.
    upkeep_running: Arc<std::sync::atomic::AtomicUsize>,
    /// The upkeep task of a handle made with [`Graph::with_upkeep_task`],
    /// woken by each commit that leaves upkeep wanted; shared by the
    /// user's clones (the last one dropped stops it), `None` elsewhere.
    upkeep_task: Option<Arc<upkeep::UpkeepTaskOwner>>,
    /// One read query's limits ([`EngineError::Budget`];
    /// [`Graph::with_query_limits`]).
    query_limits: budget::QueryLimits,
    /// The branch head every write through this handle requires
    /// ([`Graph::if_head`]); `None`: unconditional.
    expect_head: Option<CommitId>,
    /// The embedding client for `@embed` and `nearest($v, "text")`, built
    /// on first use and shared by clones ([`Graph::with_embedding`]).
    embedding: Arc<embedding::EmbeddingSlot>,
}

/// Ids one `IN (…)` lookup of [`Graph::stored_ids`] names.
const PROBE_CHUNK: usize = 1_000;
/// Past this many ids a load's validation reads the `id` column whole
/// instead of probing the index ([`Graph::stored_ids`]).
const PROBE_MAX_IDS: usize = 20_000;

/// Where a handle's prepared writes go for their commit step. The
/// GraphActor installs one that sends them to its mailbox, which commits
/// them one turn at a time; [`Graph::commit_prepared_here`] is the step
/// itself.
pub trait CommitPath: Send + Sync + std::fmt::Debug {
    /// Commits `w` (eventually by calling [`Graph::commit_prepared_here`]
    /// on the owning handle) and answers with its report.
    fn submit(
        &self,
        w: PreparedWrite,
    ) -> futures::future::BoxFuture<'static, Result<WriteReport, EngineError>>;
}

/// How many times a write, a schema apply or a merge runs when another
/// process published a table it read or commits meanwhile
/// ([`EngineError::Stale`]).
pub const STALE_ATTEMPTS: usize = 8;

/// The commit turns of the graph roots this process has open, by root.
static COMMIT_TURNS: std::sync::LazyLock<
    std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
> = std::sync::LazyLock::new(Default::default);

fn commit_lock_for(root: &Root) -> Arc<tokio::sync::Mutex<()>> {
    let key = root.key();
    match COMMIT_TURNS.lock() {
        Ok(mut m) => m.entry(key).or_default().clone(),
        Err(_) => Arc::default(),
    }
}

/// One accepted schema: its id in the manifest (`None`: the one `init`
/// wrote, `_graph/catalog.json`), compiled catalog and `.pg` source.
#[derive(Debug)]
pub struct SchemaState {
    pub id: Option<String>,
    pub catalog: Arc<Catalog>,
    pub source: String,
}

impl SchemaState {
    fn cell(
        id: Option<String>,
        catalog: Catalog,
        source: String,
    ) -> Arc<std::sync::RwLock<Arc<Self>>> {
        Arc::new(std::sync::RwLock::new(Arc::new(SchemaState {
            id,
            catalog: Arc::new(catalog),
            source,
        })))
    }
}

impl Graph {
    /// Installs a policy gate: from now on every write (load, mutate,
    /// branch create/delete) is decided by `gate` for its actor, with
    /// `graph_id` as the Cedar resource, and refused with
    /// [`EngineError::Forbidden`] when denied. The CLI installs its gate
    /// here; the server does not (each route decides once, before any
    /// engine work: `src/http/mod.rs`).
    pub fn with_gate(mut self, graph_id: &str, gate: crate::policy::Gate) -> Graph {
        self.gate = Some((graph_id.to_string(), gate));
        self
    }

    /// Sends this handle's prepared writes to `path` for their commit step
    /// (the GraphActor's mailbox).
    pub fn with_commit_path(mut self, path: Arc<dyn CommitPath>) -> Graph {
        self.commit_path = Some(path);
        self
    }

    /// The same graph without a commit path: writes through it take the
    /// commit turn themselves (what the GraphActor's commit step uses).
    pub fn committing_here(&self) -> Graph {
        Graph {
            commit_path: None,
            ..self.clone()
        }
    }

    /// Waits for this process's turn at the graph's commit step (shared by
    /// every handle on the same root). Only one commit step of a graph
    /// runs at a time in a process, so this process's writers never fence
    /// each other out; across processes the fences decide.
    pub async fn commit_turn(&self) -> tokio::sync::OwnedMutexGuard<()> {
        self.commit_lock.clone().lock_owned().await
    }

    /// Asks the installed gate, if any.
    pub(crate) fn authorize(
        &self,
        actor: &str,
        action: crate::policy::Action,
        branch: &str,
    ) -> Result<(), EngineError> {
        self.authorize_ctx(actor, action, Some(branch), Some(branch), branch)
    }

    /// Asks the installed gate with a distinct source `branch` and
    /// `target` (a merge); `shown` names the branch in the refusal.
    pub(crate) fn authorize_ctx(
        &self,
        actor: &str,
        action: crate::policy::Action,
        branch: Option<&str>,
        target: Option<&str>,
        shown: &str,
    ) -> Result<(), EngineError> {
        let Some((id, gate)) = &self.gate else {
            return Ok(());
        };
        let ctx = crate::policy::BranchCtx { branch, target };
        if gate.decide(actor, action, id, &ctx).allowed {
            Ok(())
        } else {
            Err(EngineError::Forbidden {
                actor: actor.to_string(),
                action: action.name().to_string(),
                branch: shown.to_string(),
            })
        }
    }

    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The accepted schema's catalog (as of the last manifest this handle
    /// read).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.schema_state().catalog.clone()
    }

    /// The accepted schema: id, catalog and source.
    pub fn schema_state(&self) -> Arc<SchemaState> {
        match self.schema.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The accepted `.pg` source.
    pub fn schema_source(&self) -> String {
        self.schema_state().source.clone()
    }

    /// Every table key, nodes then edges, sorted.
    pub fn table_keys(&self) -> Vec<TableKey> {
        let cat = self.catalog();
        let mut keys: Vec<TableKey> = cat.nodes.keys().map(|n| node_key(n)).collect();
        keys.extend(cat.edges.keys().map(|e| edge_key(e)));
        keys
    }

    /// The main-line version of `key` whose open handle the next commit on
    /// it starts from when the manifest names that version: the newest one
    /// this process committed ([`table::warm_version`]); `None` when it
    /// committed none.
    pub fn warm_version(&self, key: &TableKey) -> Option<u64> {
        table::warm_version(&self.table_uri(key))
    }

    fn table_uri(&self, key: &TableKey) -> String {
        self.root
            .join(&format!("{}/{}.lance", key.kind().dir(), key.name()))
    }

    fn arrow_schema(&self, key: &TableKey) -> Schema {
        let cat = self.catalog();
        match key.kind() {
            TableKind::Edge => cat.edge(key.name()).map(values::edge_schema),
            TableKind::Node => cat.node(key.name()).map(values::node_schema),
        }
        .unwrap_or_else(Schema::empty)
    }

    /// The properties of a table's type.
    fn props(&self, key: &TableKey) -> Vec<Property> {
        props_of(&self.catalog(), key)
    }

    /// The declared indexes of a table's properties: (column, kind).
    pub(crate) fn index_decls(&self, key: &TableKey) -> Vec<(String, crate::schema::IndexKind)> {
        index_decls_of(&self.catalog(), key)
    }

    /// The schema a read position sees (see [`View::catalog`]): compile a
    /// query against it to read a commit from before a schema apply.
    pub async fn catalog_at(&self, at: &ReadAt) -> Result<Arc<Catalog>, EngineError> {
        Ok(self.view(at).await?.catalog)
    }
}

/// The properties of a table's type in `cat` (empty for an unknown key).
pub(crate) fn props_of(cat: &Catalog, key: &TableKey) -> Vec<Property> {
    match key.kind() {
        TableKind::Edge => cat.edge(key.name()).map(|e| e.properties.clone()),
        TableKind::Node => cat.node(key.name()).map(|n| n.properties.clone()),
    }
    .unwrap_or_default()
}

/// Every table key of `cat`, nodes then edges, sorted.
pub(crate) fn keys_of(cat: &Catalog) -> Vec<TableKey> {
    let mut keys: Vec<TableKey> = cat.nodes.keys().map(|n| node_key(n)).collect();
    keys.extend(cat.edges.keys().map(|e| edge_key(e)));
    keys
}

/// The declared indexes of a table's properties in `cat`: (column, kind).
pub(crate) fn index_decls_of(
    cat: &Catalog,
    key: &TableKey,
) -> Vec<(String, crate::schema::IndexKind)> {
    {
        let decls = match key.kind() {
            TableKind::Edge => cat.edge(key.name()).map(|e| e.indexes.as_slice()),
            TableKind::Node => cat.node(key.name()).map(|n| n.indexes.as_slice()),
        };
        decls
            .unwrap_or(&[])
            .iter()
            .map(|d| (d.property.clone(), d.kind))
            .collect()
    }
}

/// The error an injected fault returns (used only with `failpoints`).
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub(crate) fn fault(point: &str) -> EngineError {
    EngineError::Fault {
        point: point.to_string(),
    }
}

fn mode_name(m: LoadMode) -> &'static str {
    match m {
        LoadMode::Overwrite => "overwrite",
        LoadMode::Append => "append",
        LoadMode::Merge => "merge",
    }
}

fn staged_keys(s: &Staged) -> Vec<TableKey> {
    let mut keys: Vec<TableKey> = s.nodes.keys().map(|n| node_key(n)).collect();
    keys.extend(s.edges.keys().map(|e| edge_key(e)));
    keys
}

fn staged_rows<'s>(s: &'s Staged, key: &TableKey) -> &'s [Row] {
    let rows = match key.kind() {
        TableKind::Edge => s.edges.get(key.name()),
        TableKind::Node => s.nodes.get(key.name()),
    };
    rows.map_or(&[], Vec::as_slice)
}

/// Decodes a batch into rows (`props` in schema order after the physical
/// columns).
pub(crate) fn rows_of(b: &RecordBatch, props: &[Property], edge: bool) -> Vec<Row> {
    let col = |name: &str| b.column_by_name(name).cloned();
    let ids = col("id");
    let srcs = if edge { col("src") } else { None };
    let dsts = if edge { col("dst") } else { None };
    let prop_cols: Vec<Option<ArrayRef>> = props.iter().map(|p| col(&p.name)).collect();
    let text = |a: &Option<ArrayRef>, i: usize| -> Option<String> {
        a.as_ref()
            .and_then(|a| a.as_any().downcast_ref::<StringArray>())
            .filter(|s| !s.is_null(i))
            .map(|s| s.value(i).to_string())
    };
    (0..b.num_rows())
        .map(|i| Row {
            id: text(&ids, i).unwrap_or_default(),
            src: text(&srcs, i),
            dst: text(&dsts, i),
            cells: props
                .iter()
                .zip(&prop_cols)
                .map(|(p, c)| match c {
                    Some(a) => values::cell_at(a.as_ref(), i, &p.ty),
                    None => values::Cell::Null,
                })
                .collect(),
            line: 0,
        })
        .collect()
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
