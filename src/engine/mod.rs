//! The embedded graph engine: a graph of Lance tables published atomically
//! through a versioned manifest.
//!
//! Layout of a graph root (a local directory; `file://` accepted):
//! - `_graph/schema.pg`, `_graph/catalog.json` — the accepted schema and its
//!   compiled catalog;
//! - `_graph/manifest/…`, `_graph/commits/…` — see [`manifest`];
//! - `nodes/<Type>.lance`, `edges/<Edge>.lance` — one Lance dataset per type.
//!
//! A write stages and commits each touched table's Lance transaction, then
//! publishes one manifest version naming every new table version and a new
//! commit: the tables flip visible together or not at all. Reads resolve a
//! branch head or a commit to pinned table versions.

pub mod budget;
pub mod error;
pub mod exec;
pub mod export;
pub mod group;
pub mod lease;
pub mod ledger;
pub use omnigraph_data::load;
pub mod manifest;
pub mod merge;
pub mod mutate;
pub mod recovery;
pub mod schema_apply;
pub mod table_cache;
pub mod upkeep;
pub use omnigraph_data::values;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow_schema::Schema;
use serde::Serialize;

pub use error::EngineError;
use load::{Existing, LoadMode, Row, Staged};
use manifest::{BranchState, Commit, MAIN, Manifest, ManifestStore, TableKey, TableRef};

use crate::schema::{Catalog, Property, compile_schema_file};
use crate::storage::ControlStore;
use crate::storage::table::{self, TableAt, TableError};

impl From<TableError> for EngineError {
    fn from(e: TableError) -> Self {
        if e.conflict {
            EngineError::Conflict {
                reason: format!("{}; retry the write", e.message),
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
    Commit(String),
}

/// The state a read sees: table versions and the commit they belong to.
#[derive(Debug, Clone)]
pub struct View {
    pub branch: Option<String>,
    pub commit: String,
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
    pub commit: String,
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
    pub head: String,
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
pub(crate) fn stale(key: &str, why: &str) -> EngineError {
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
}

/// `node:Type` for a node table.
pub fn node_key(name: &str) -> TableKey {
    format!("node:{name}")
}

/// `edge:Type` for an edge table.
pub fn edge_key(name: &str) -> TableKey {
    format!("edge:{name}")
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

/// Resolves a graph URI (a local path or `file://…`) to an absolute
/// directory (`std::path::absolute`: a relative path is taken from the
/// current directory, nothing else is resolved). Absolute because Lance
/// records the parent's location in a branch's manifest: a graph made
/// with `graph.omni` from one directory must open from any other (a
/// server started elsewhere serving it). Errors: another scheme, a path
/// the current directory cannot make absolute.
pub fn local_root(uri: &str) -> Result<PathBuf, EngineError> {
    let path = match uri.strip_prefix("file://") {
        Some(rest) => PathBuf::from(rest),
        None if uri.contains("://") => {
            return Err(EngineError::BadUri {
                uri: uri.to_string(),
                reason: "only local paths and file:// URIs are supported by this build".into(),
            });
        }
        None => PathBuf::from(uri),
    };
    std::path::absolute(&path).map_err(|e| EngineError::BadUri {
        uri: uri.to_string(),
        reason: format!("cannot make the path absolute: {e}"),
    })
}

/// An open graph. Cheap to share behind an `Arc`; every method reads the
/// manifest it needs, so several handles (and processes) may write.
#[derive(Debug, Clone)]
pub struct Graph {
    uri: String,
    root: PathBuf,
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
    /// The upkeep task of a handle made with [`Graph::with_upkeep_task`],
    /// woken by each commit that leaves upkeep wanted; shared by the
    /// user's clones (the last one dropped stops it), `None` elsewhere.
    upkeep_task: Option<Arc<upkeep::UpkeepTaskOwner>>,
    /// One read query's limits ([`EngineError::Budget`];
    /// [`Graph::with_query_limits`]).
    query_limits: budget::QueryLimits,
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
    std::sync::Mutex<std::collections::HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
> = std::sync::LazyLock::new(Default::default);

fn commit_lock_for(root: &Path) -> Arc<tokio::sync::Mutex<()>> {
    let key = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    match COMMIT_TURNS.lock() {
        Ok(mut m) => m.entry(key).or_default().clone(),
        Err(_) => Arc::default(),
    }
}

const GRAPH_DIR: &str = "_graph";

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
    /// Creates a graph at `uri` from `.pg` source (`schema_file` names it in
    /// diagnostics). Refuses a location that already holds a graph, schema
    /// files or tables; on failure removes only what it created.
    pub async fn init(
        uri: &str,
        schema_file: &str,
        schema_source: &str,
    ) -> Result<Graph, EngineError> {
        let root = local_root(uri)?;
        let catalog =
            compile_schema_file(schema_file, schema_source).map_err(|d| EngineError::Schema {
                rendered: d.render(false),
            })?;
        for existing in [GRAPH_DIR, "nodes", "edges"] {
            if root.join(existing).exists() {
                return Err(EngineError::AlreadyExists {
                    uri: uri.to_string(),
                    what: format!("`{existing}/` (a graph or its files)"),
                });
            }
        }
        let created_root = !root.exists();
        // A root made again where one was deleted reuses table URIs and
        // version numbers: nothing cached about the old one may serve it.
        table::forget_cached();
        let mut created: Vec<PathBuf> = Vec::new();
        let result = Self::init_inner(uri, &root, catalog, schema_source, &mut created).await;
        if result.is_err() {
            // Remove only what this call created, newest first.
            for p in created.iter().rev() {
                let _ = std::fs::remove_dir_all(p);
            }
            if created_root {
                let _ = std::fs::remove_dir(&root);
            }
        }
        result
    }

    async fn init_inner(
        uri: &str,
        root: &Path,
        catalog: Catalog,
        schema_source: &str,
        created: &mut Vec<PathBuf>,
    ) -> Result<Graph, EngineError> {
        std::fs::create_dir_all(root).map_err(|source| EngineError::Io {
            path: root.display().to_string(),
            source,
        })?;
        created.push(root.join(GRAPH_DIR));
        let control = ControlStore::local(&root.join(GRAPH_DIR))?;
        control
            .create("schema.pg", schema_source.as_bytes().to_vec())
            .await?;
        let cat_json = serde_json::to_vec_pretty(&catalog).map_err(|e| EngineError::Corrupt {
            path: "catalog.json".into(),
            reason: e.to_string(),
        })?;
        control.create("catalog.json", cat_json).await?;
        for dir in ["nodes", "edges"] {
            created.push(root.join(dir));
            std::fs::create_dir_all(root.join(dir)).map_err(|source| EngineError::Io {
                path: root.join(dir).display().to_string(),
                source,
            })?;
        }
        let graph = Graph {
            uri: uri.to_string(),
            root: root.to_path_buf(),
            manifests: ManifestStore::new(control),
            schema: SchemaState::cell(None, catalog, schema_source.to_string()),
            schema_pinned: false,
            cache: exec::TableCache::default(),
            gate: None,
            commit_lock: commit_lock_for(root),
            commit_path: None,
            heal_due: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            upkeep_background: false,
            upkeep_wanted: Default::default(),
            upkeep_task: None,
            query_limits: budget::QueryLimits::server(),
        };
        let mut tables = BTreeMap::new();
        for key in graph.table_keys() {
            let schema = Arc::new(graph.arrow_schema(&key));
            let version = table::create_empty(&graph.table_uri(&key), schema).await?;
            tables.insert(
                key,
                TableRef {
                    version,
                    lance_branch: None,
                    rows_of: None,
                },
            );
        }
        let commit = Commit {
            id: ulid::Ulid::new().to_string(),
            parents: Vec::new(),
            branch: MAIN.to_string(),
            actor: "init".to_string(),
            timestamp_ms: now_ms(),
            message: "init".to_string(),
            tables: tables.clone(),
            write_id: None,
            recovery: None,
            schema: None,
            manifest_version: Some(1),
        };
        graph.manifests.write_commit(&commit).await?;
        let mut branches = BTreeMap::new();
        branches.insert(
            MAIN.to_string(),
            BranchState {
                head: commit.id.clone(),
                tables,
                lance_branch: None,
            },
        );
        graph
            .manifests
            .create_first(&Manifest {
                version: 1,
                branches,
                schema: None,
            })
            .await?;
        Ok(graph)
    }

    /// Opens an existing graph.
    pub async fn open(uri: &str) -> Result<Graph, EngineError> {
        let root = local_root(uri)?;
        if !root.join(GRAPH_DIR).join("catalog.json").exists() {
            return Err(EngineError::NotAGraph {
                uri: uri.to_string(),
            });
        }
        let control = ControlStore::local(&root.join(GRAPH_DIR))?;
        let cat_bytes = control.get("catalog.json").await?;
        let catalog: Catalog =
            serde_json::from_slice(&cat_bytes).map_err(|e| EngineError::Corrupt {
                path: root
                    .join(GRAPH_DIR)
                    .join("catalog.json")
                    .display()
                    .to_string(),
                reason: e.to_string(),
            })?;
        let schema_source = String::from_utf8_lossy(&control.get("schema.pg").await?).into_owned();
        let g = Graph {
            uri: uri.to_string(),
            commit_lock: commit_lock_for(&root),
            root,
            manifests: ManifestStore::new(control),
            schema: SchemaState::cell(None, catalog, schema_source),
            schema_pinned: false,
            cache: exec::TableCache::default(),
            gate: None,
            commit_path: None,
            heal_due: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            upkeep_background: false,
            upkeep_wanted: Default::default(),
            upkeep_task: None,
            query_limits: budget::QueryLimits::server(),
        };
        // Loads the schema the newest manifest names, if it was changed.
        g.manifest().await?;
        Ok(g)
    }

    /// Installs a policy gate: from now on every write (load, mutate,
    /// branch create/delete) is decided by `gate` for its actor, with
    /// `graph_id` as the Cedar resource, and refused with
    /// [`EngineError::Forbidden`] when denied. The server installs the same
    /// gate it checks at the HTTP boundary (reference: policy.md,
    /// "Enforcement": defense in depth).
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

    fn table_uri(&self, key: &str) -> String {
        let (kind, name) = key.split_once(':').unwrap_or(("node", key));
        let dir = if kind == "edge" { "edges" } else { "nodes" };
        self.root
            .join(dir)
            .join(format!("{name}.lance"))
            .display()
            .to_string()
    }

    fn arrow_schema(&self, key: &str) -> Schema {
        let cat = self.catalog();
        match key.split_once(':') {
            Some(("edge", name)) => cat.edge(name).map(values::edge_schema),
            Some((_, name)) => cat.node(name).map(values::node_schema),
            None => None,
        }
        .unwrap_or_else(Schema::empty)
    }

    /// The properties of a table's type.
    fn props(&self, key: &str) -> Vec<Property> {
        props_of(&self.catalog(), key)
    }

    /// The declared indexes of a table's properties: (column, kind).
    pub(crate) fn index_decls(&self, key: &str) -> Vec<(String, crate::schema::IndexKind)> {
        index_decls_of(&self.catalog(), key)
    }

    /// The schema a read position sees (see [`View::catalog`]): compile a
    /// query against it to read a commit from before a schema apply.
    pub async fn catalog_at(&self, at: &ReadAt) -> Result<Arc<Catalog>, EngineError> {
        Ok(self.view(at).await?.catalog)
    }
}

/// The properties of a table's type in `cat` (empty for an unknown key).
pub(crate) fn props_of(cat: &Catalog, key: &str) -> Vec<Property> {
    match key.split_once(':') {
        Some(("edge", name)) => cat.edge(name).map(|e| e.properties.clone()),
        Some((_, name)) => cat.node(name).map(|n| n.properties.clone()),
        None => None,
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
pub(crate) fn index_decls_of(cat: &Catalog, key: &str) -> Vec<(String, crate::schema::IndexKind)> {
    {
        let decls = match key.split_once(':') {
            Some(("edge", name)) => cat.edge(name).map(|e| e.indexes.as_slice()),
            Some((_, name)) => cat.node(name).map(|n| n.indexes.as_slice()),
            None => None,
        };
        decls
            .unwrap_or(&[])
            .iter()
            .map(|d| (d.property.clone(), d.kind))
            .collect()
    }
}

impl Graph {
    /// The physical indexes a table carries (docs/storage.md, "Indexes"):
    /// BTREE on `id` (and `src`, `dst` for edges) and on every BTREE
    /// declaration; an inverted index on every full-text declaration.
    pub(crate) fn index_specs(&self, key: &str) -> Vec<table::IndexSpec> {
        use crate::schema::IndexKind;
        let mut specs = vec![table::IndexSpec::Btree("id".into())];
        if key.starts_with("edge:") {
            specs.push(table::IndexSpec::Btree("src".into()));
            specs.push(table::IndexSpec::Btree("dst".into()));
        }
        for (col, kind) in self.index_decls(key) {
            let spec = match kind {
                IndexKind::Btree => table::IndexSpec::Btree(col),
                IndexKind::FullText => table::IndexSpec::FullText(col),
                IndexKind::Vector | IndexKind::LabelList => continue,
            };
            if !specs.contains(&spec) {
                specs.push(spec);
            }
        }
        specs
    }

    fn at(&self, key: &str, r: &TableRef) -> TableAt {
        TableAt {
            uri: self.table_uri(key),
            branch: r.lance_branch.clone(),
            version: r.version,
        }
    }

    /// The newest manifest. When it names another schema than this
    /// handle holds, that schema is loaded first.
    pub async fn manifest(&self) -> Result<Manifest, EngineError> {
        let known = self.known_head();
        let m = match known {
            Some(k) => self.manifests.newer_than(k).await?,
            None => self.manifests.latest().await?,
        };
        self.remember(&m);
        if m.schema != self.schema_state().id {
            self.load_schema(m.schema.as_deref()).await?;
        }
        Ok(m)
    }

    /// The newest manifest this handle has seen, without a request.
    fn known_head(&self) -> Option<Manifest> {
        self.manifests.known()
    }

    /// Remembers `m` as the newest manifest seen, unless a newer one is
    /// already remembered.
    pub(crate) fn remember(&self, m: &Manifest) {
        self.manifests.remember(m);
    }

    fn unknown_branch(m: &Manifest, name: &str) -> EngineError {
        let names: Vec<&str> = m.branches.keys().map(String::as_str).collect();
        EngineError::UnknownBranch {
            name: name.to_string(),
            valid: crate::diag::did_you_mean(name, names.iter().copied())
                .unwrap_or_else(|| crate::diag::valid_list("branches", names.iter().copied())),
        }
    }

    /// Resolves what a read sees.
    pub async fn view(&self, at: &ReadAt) -> Result<View, EngineError> {
        match at {
            ReadAt::Branch(b) => {
                let m = self.manifest().await?;
                let bs = m
                    .branches
                    .get(b)
                    .ok_or_else(|| Self::unknown_branch(&m, b))?;
                Ok(View {
                    branch: Some(b.clone()),
                    commit: bs.head.clone(),
                    tables: bs.tables.clone(),
                    catalog: self.catalog(),
                })
            }
            ReadAt::Commit(id) => {
                let c = self
                    .manifests
                    .commit(id)
                    .await?
                    .ok_or_else(|| EngineError::UnknownCommit { id: id.clone() })?;
                let current = self.schema_state();
                let catalog = if c.schema == current.id {
                    current.catalog.clone()
                } else {
                    Arc::new(self.read_schema(c.schema.as_deref()).await?.0)
                };
                Ok(View {
                    branch: None,
                    commit: c.id,
                    tables: c.tables,
                    catalog,
                })
            }
        }
    }

    /// The rows table `key` holds in `view` (0 when the view has no such
    /// table).
    async fn row_count_at(&self, view: &View, key: &TableKey) -> Result<usize, EngineError> {
        let Some(r) = view.tables.get(key) else {
            return Ok(0);
        };
        let ds = table::open(&self.at(key, r)).await?;
        Ok(table::count(&ds).await?)
    }

    /// Each table's version and row count.
    pub async fn snapshot(&self, at: &ReadAt) -> Result<Snapshot, EngineError> {
        let m = self.manifest().await?;
        let view = self.view(at).await?;
        let mut tables = Vec::new();
        for (key, r) in &view.tables {
            let ds = table::open(&self.at(key, r)).await?;
            tables.push(TableSnapshot {
                table: key.clone(),
                version: r.version,
                lance_branch: r.lance_branch.clone(),
                rows: table::count(&ds).await?,
            });
        }
        Ok(Snapshot {
            branch: view.branch,
            commit: view.commit,
            manifest_version: m.version,
            tables,
        })
    }

    /// Branches and heads, sorted by name.
    pub async fn branches(&self) -> Result<Vec<BranchInfo>, EngineError> {
        let m = self.manifest().await?;
        Ok(m.branches
            .iter()
            .map(|(name, b)| BranchInfo {
                name: name.clone(),
                head: b.head.clone(),
            })
            .collect())
    }

    /// Creates branch `name` at the head of `from`. No data is copied: the
    /// new branch starts with `from`'s table versions and forks each table
    /// lazily on its first write.
    pub async fn create_branch(
        &self,
        name: &str,
        from: &str,
        actor: &str,
    ) -> Result<BranchInfo, EngineError> {
        check_branch_name(name)?;
        self.authorize(actor, crate::policy::Action::BranchCreate, name)?;
        let base = self.manifest().await?;
        let (m, _) = self
            .manifests
            .publish(base, |cur| {
                if cur.branches.contains_key(name) {
                    return Err(EngineError::BranchExists {
                        name: name.to_string(),
                    });
                }
                let src = cur
                    .branches
                    .get(from)
                    .ok_or_else(|| Self::unknown_branch(cur, from))?;
                let mut next = cur.clone();
                let mut state = src.clone();
                state.lance_branch = Some(lance_branch_for(name));
                next.branches.insert(name.to_string(), state);
                Ok((next, None))
            })
            .await?;
        Ok(BranchInfo {
            name: name.to_string(),
            head: m.branches[name].head.clone(),
        })
    }

    /// Deletes a branch (never `main`). Its commits stay readable by id.
    pub async fn delete_branch(&self, name: &str, actor: &str) -> Result<(), EngineError> {
        if name == MAIN {
            return Err(EngineError::MainProtected);
        }
        self.authorize(actor, crate::policy::Action::BranchDelete, name)?;
        let base = self.manifest().await?;
        self.manifests
            .publish(base, |cur| {
                if !cur.branches.contains_key(name) {
                    return Err(Self::unknown_branch(cur, name));
                }
                let mut next = cur.clone();
                next.branches.remove(name);
                Ok((next, None))
            })
            .await?;
        if let Some(mut l) = self.manifests.inserted() {
            // Its Lance branches may be made again with the same versions.
            l.clear();
        }
        Ok(())
    }

    /// The commits reachable from a branch head, newest first.
    pub async fn commits(&self, branch: &str) -> Result<Vec<Commit>, EngineError> {
        let m = self.manifest().await?;
        let bs = m
            .branches
            .get(branch)
            .ok_or_else(|| Self::unknown_branch(&m, branch))?;
        self.manifests.history(&bs.head).await
    }

    /// One commit by id.
    pub async fn commit(&self, id: &str) -> Result<Commit, EngineError> {
        self.manifests
            .commit(id)
            .await?
            .ok_or_else(|| EngineError::UnknownCommit { id: id.to_string() })
    }

    /// Builds an Arrow batch of rows for a table.
    pub(crate) fn batch(&self, key: &str, rows: &[Row]) -> Result<RecordBatch, EngineError> {
        let schema = Arc::new(self.arrow_schema(key));
        let props = self.props(key);
        let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.id.as_str()),
        ))];
        if key.starts_with("edge:") {
            cols.push(Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.src.as_deref().unwrap_or_default()),
            )));
            cols.push(Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.dst.as_deref().unwrap_or_default()),
            )));
        }
        for (i, p) in props.iter().enumerate() {
            let cells: Vec<values::Cell> = rows.iter().map(|r| r.cells[i].clone()).collect();
            cols.push(values::column(&cells, &p.ty));
        }
        RecordBatch::try_new(schema, cols).map_err(|e| EngineError::Table {
            table: key.to_string(),
            reason: format!("building a batch: {e}"),
        })
    }

    /// Reads every row of a table at a pinned version.
    pub(crate) async fn read_rows(&self, key: &str, r: &TableRef) -> Result<Vec<Row>, EngineError> {
        let ds = table::open(&self.at(key, r)).await?;
        let batches = table::scan_all(&ds, None).await?;
        let props = self.props(key).to_vec();
        let edge = key.starts_with("edge:");
        let mut out = Vec::new();
        for b in batches {
            out.extend(rows_of(&b, &props, edge));
        }
        Ok(out)
    }

    /// What validation needs to know about the stored rows of the types a
    /// load touches, read as narrowly as it can be (never the whole table
    /// for a type with no `@unique`):
    ///
    /// - node types: the stored ids among those the load names (its own
    ///   nodes' keys, its edges' endpoints), probed through the `id` index
    ///   ([`Graph::stored_ids`]);
    /// - edge types: the stored ids among the load's edge ids, and, for a
    ///   type with `@card`, the stored edges of the sources whose count
    ///   the load can change (`src IN …`);
    /// - a type with `@unique`: every stored row (its tuples are compared
    ///   with the load's).
    async fn existing(
        &self,
        view: &View,
        staged: &Staged,
        node_types: &HashSet<String>,
        edge_types: &HashSet<String>,
    ) -> Result<Existing, EngineError> {
        let catalog = self.catalog();
        let mut ex = Existing::default();
        // The ids each node type is asked about.
        let mut named: std::collections::HashMap<&str, HashSet<&str>> = Default::default();
        for (t, rows) in &staged.nodes {
            named
                .entry(t.as_str())
                .or_default()
                .extend(rows.iter().map(|r| r.id.as_str()));
        }
        for (t, rows) in &staged.edges {
            let Some(e) = catalog.edge(t) else { continue };
            for r in rows {
                if let Some(s) = &r.src {
                    named.entry(e.from.as_str()).or_default().insert(s);
                }
                if let Some(d) = &r.dst {
                    named.entry(e.to.as_str()).or_default().insert(d);
                }
            }
        }
        for t in node_types {
            let key = node_key(t);
            let Some(r) = view.tables.get(&key) else {
                continue;
            };
            let Some(n) = catalog.node(t) else {
                continue;
            };
            if n.unique.is_empty() {
                let ids: Vec<&str> = named
                    .get(t.as_str())
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                ex.node_ids
                    .insert(t.clone(), self.stored_ids(&key, r, &ids).await?);
                continue;
            }
            let rows = self.read_rows(&key, r).await?;
            let ids: HashSet<String> = rows.iter().map(|r| r.id.clone()).collect();
            for (ci, cols) in n.unique.iter().enumerate() {
                let m = ex.unique.entry((t.clone(), ci)).or_default();
                for row in &rows {
                    if let Some(tuple) = load::unique_tuple(&n.properties, cols, row) {
                        m.insert(tuple, row.id.clone());
                    }
                }
            }
            ex.node_ids.insert(t.clone(), ids);
        }
        for t in edge_types {
            let key = edge_key(t);
            let Some(r) = view.tables.get(&key) else {
                continue;
            };
            let Some(e) = catalog.edge(t) else {
                continue;
            };
            let new: &[Row] = staged.edges.get(t).map_or(&[], |v| v.as_slice());
            if e.unique.is_empty() {
                let ids: Vec<&str> = new.iter().map(|r| r.id.as_str()).collect();
                ex.edge_ids
                    .insert(t.clone(), self.stored_ids(&key, r, &ids).await?);
                let card = e.cardinality;
                if card.min > 0 || card.max.is_some() {
                    let mut srcs: HashSet<&str> =
                        new.iter().filter_map(|r| r.src.as_deref()).collect();
                    if card.min > 0 {
                        srcs.extend(
                            staged
                                .nodes
                                .get(&e.from)
                                .into_iter()
                                .flatten()
                                .map(|r| r.id.as_str()),
                        );
                    }
                    let srcs: Vec<&str> = srcs.into_iter().collect();
                    ex.edges
                        .insert(t.clone(), self.stored_edges_from(&key, r, &srcs).await?);
                }
                continue;
            }
            let rows = self.read_rows(&key, r).await?;
            for (ci, cols) in e.unique.iter().enumerate() {
                let m = ex.unique.entry((t.clone(), ci)).or_default();
                for row in &rows {
                    if let Some(tuple) = load::unique_tuple(&e.properties, cols, row) {
                        m.insert(tuple, row.id.clone());
                    }
                }
            }
            ex.edge_ids
                .insert(t.clone(), rows.iter().map(|r| r.id.clone()).collect());
            ex.edges.insert(
                t.clone(),
                rows.into_iter()
                    .map(|r| (r.id, r.src.unwrap_or_default(), r.dst.unwrap_or_default()))
                    .collect(),
            );
        }
        Ok(ex)
    }

    /// The values of `ids` that table `key` at `r` holds as row ids: an
    /// `id IN (…)` lookup per [`PROBE_CHUNK`] ids, which Lance answers
    /// from the `id` BTREE plus a scan of the few fragments it does not
    /// cover yet; past [`PROBE_MAX_IDS`] ids, the `id` column read whole
    /// (then every stored id is returned).
    async fn stored_ids(
        &self,
        key: &str,
        r: &TableRef,
        ids: &[&str],
    ) -> Result<HashSet<String>, EngineError> {
        let mut out = HashSet::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let ds = table::open(&self.at(key, r)).await?;
        let batches = if ids.len() > PROBE_MAX_IDS {
            table::scan_all(&ds, Some(&["id"])).await?
        } else {
            let mut all = Vec::new();
            for chunk in ids.chunks(PROBE_CHUNK) {
                let list: Vec<String> = chunk.iter().map(|i| exec::sql_string(i)).collect();
                let filter = format!("id IN ({})", list.join(", "));
                all.extend(table::scan_where_columns(&ds, &filter, &["id"]).await?);
            }
            all
        };
        for b in batches {
            if let Some(col) = b
                .column_by_name("id")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            {
                out.extend(
                    (0..col.len())
                        .filter(|i| col.is_valid(*i))
                        .map(|i| col.value(i).to_string()),
                );
            }
        }
        Ok(out)
    }

    /// The stored edges of edge table `key` at `r` whose source is one of
    /// `srcs`, as (id, src, dst): through the `src` BTREE, or the three
    /// columns whole past [`PROBE_MAX_IDS`] sources.
    async fn stored_edges_from(
        &self,
        key: &str,
        r: &TableRef,
        srcs: &[&str],
    ) -> Result<Vec<(String, String, String)>, EngineError> {
        let mut out = Vec::new();
        if srcs.is_empty() {
            return Ok(out);
        }
        let ds = table::open(&self.at(key, r)).await?;
        let cols = ["id", "src", "dst"];
        let batches = if srcs.len() > PROBE_MAX_IDS {
            table::scan_all(&ds, Some(&cols)).await?
        } else {
            let mut all = Vec::new();
            for chunk in srcs.chunks(PROBE_CHUNK) {
                let list: Vec<String> = chunk.iter().map(|i| exec::sql_string(i)).collect();
                let filter = format!("src IN ({})", list.join(", "));
                all.extend(table::scan_where_columns(&ds, &filter, &cols).await?);
            }
            all
        };
        for b in batches {
            let col = |name: &str| {
                b.column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            };
            let (Some(id), Some(src), Some(dst)) = (col("id"), col("src"), col("dst")) else {
                continue;
            };
            for i in 0..id.len() {
                out.push((
                    id.value(i).to_string(),
                    src.value(i).to_string(),
                    dst.value(i).to_string(),
                ));
            }
        }
        Ok(out)
    }

    /// Loads JSONL into `branch` as one commit. With `from`, a missing
    /// branch is first created from `from`; without it, a missing branch is
    /// an error. Validation runs before any table is touched; a failed load
    /// leaves the graph exactly as it was. The load is parsed once, then
    /// prepared ([`Graph::prepare_load`]) and committed
    /// ([`Graph::commit_prepared`]), prepared again when the commit finds
    /// what it read has changed ([`Graph::write_with_retry`]).
    pub async fn load(
        &self,
        input: impl std::io::BufRead,
        mode: LoadMode,
        branch: &str,
        from: Option<&str>,
        actor: &str,
    ) -> Result<WriteReport, EngineError> {
        // Boxed: keeps callers' future types shallow (the bench's suite
        // otherwise overflows the compiler's layout depth limit).
        Box::pin(self.load_with(input, mode, false, branch, from, actor)).await
    }

    /// [`Graph::load`], where `allow_empty` lets an overwrite with no rows
    /// empty the branch (refused otherwise: [`EngineError::EmptyOverwrite`]).
    /// An append or merge with no rows publishes nothing and says so
    /// (`commit: None`), like a mutation that matched nothing.
    pub async fn load_with(
        &self,
        input: impl std::io::BufRead,
        mode: LoadMode,
        allow_empty: bool,
        branch: &str,
        from: Option<&str>,
        actor: &str,
    ) -> Result<WriteReport, EngineError> {
        self.authorize(actor, crate::policy::Action::Change, branch)?;
        let catalog = self.catalog();
        let started = std::time::Instant::now();
        let rows = load::parse(&catalog, input).map_err(|errors| EngineError::Load { errors })?;
        if rows.row_count() == 0 {
            if mode == LoadMode::Overwrite && !allow_empty {
                return Err(EngineError::EmptyOverwrite {
                    branch: branch.to_string(),
                });
            }
            // (A missing branch goes the usual way: created from `from`, or
            // refused.)
            if mode != LoadMode::Overwrite && self.manifest().await?.branches.contains_key(branch) {
                return Ok(WriteReport {
                    commit: None,
                    manifest_version: None,
                    written: BTreeMap::new(),
                    deleted: BTreeMap::new(),
                    message: "the input has no rows; nothing was published".into(),
                });
            }
        }
        tracing::debug!(
            rows = rows.row_count(),
            parse_ms = started.elapsed().as_millis() as u64,
            "load parsed"
        );
        let rows = Arc::new(rows);
        let (b, f, a) = (
            branch.to_string(),
            from.map(str::to_string),
            actor.to_string(),
        );
        let redo = {
            let (rows, catalog) = (rows.clone(), catalog.clone());
            Redo::new(move |g: Graph| {
                let (rows, catalog, b, f, a) = (
                    rows.clone(),
                    catalog.clone(),
                    b.clone(),
                    f.clone(),
                    a.clone(),
                );
                Box::pin(async move {
                    g.prepare_load(&catalog, &rows, mode, &b, f.as_deref(), &a)
                        .await
                })
            })
        };
        let report = self.write_prepared_by(redo).await?;
        tracing::debug!(
            rows = rows.row_count(),
            total_ms = started.elapsed().as_millis() as u64,
            "load done"
        );
        Ok(report)
    }

    /// Prepares the write with `redo` and commits it
    /// ([`Graph::write_with_retry`]); the commit step runs `redo` again
    /// when what the write read has moved since.
    pub(crate) async fn write_prepared_by(&self, redo: Redo) -> Result<WriteReport, EngineError> {
        self.write_with_retry(|| {
            let redo = redo.clone();
            let g = self.clone();
            async move {
                Ok(match (redo.0)(g).await? {
                    Prepared::Write(w) => Prepared::Write(w.with_redo(redo)),
                    nothing => nothing,
                })
            }
        })
        .await
    }

    /// Runs `prepare` then [`Graph::commit_prepared`]. A commit that finds
    /// what the write read has changed ([`EngineError::Stale`]: another
    /// process published meanwhile; conflicts within this process are
    /// prepared again in the commit step) is prepared again, at most
    /// [`STALE_ATTEMPTS`] times, after a short random pause that grows with
    /// each attempt (so two processes writing the same tables do not keep
    /// meeting); a table another process is writing ([`EngineError::Busy`])
    /// is waited for (backing off). Both stop at [`BUSY_WAIT`] from the
    /// start.
    pub async fn write_with_retry<F, Fut>(&self, mut prepare: F) -> Result<WriteReport, EngineError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Prepared, EngineError>>,
    {
        let started = std::time::Instant::now();
        let mut attempts = 1;
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            let w = match prepare().await? {
                Prepared::Nothing(report) => return Ok(report),
                Prepared::Write(w) => w,
            };
            let committed = match &self.commit_path {
                Some(path) => path.submit(w).await,
                None => self.commit_prepared(w).await,
            };
            match committed {
                Err(EngineError::Stale { .. })
                    if attempts < STALE_ATTEMPTS && started.elapsed() < BUSY_WAIT =>
                {
                    // Up to 20 ms per attempt so far, at random.
                    let ms = (ulid::Ulid::new().random() % 20) as u64 * attempts as u64;
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    attempts += 1;
                }
                Err(EngineError::Busy { .. }) if started.elapsed() < BUSY_WAIT => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    /// Validates a parsed load against `branch`'s head and stages its
    /// tables without committing them. Nothing becomes visible; the
    /// returned write goes to [`Graph::commit_prepared`]. Creates a missing
    /// branch from `from` first (its own commit).
    pub async fn prepare_load(
        &self,
        catalog: &Arc<Catalog>,
        staged: &Staged,
        mode: LoadMode,
        branch: &str,
        from: Option<&str>,
        actor: &str,
    ) -> Result<Prepared, EngineError> {
        self.same_schema(catalog)?;
        let mut m = self.manifest().await?;
        if !m.branches.contains_key(branch) {
            match from {
                Some(base) => {
                    match self.create_branch(branch, base, actor).await {
                        Ok(_) | Err(EngineError::BranchExists { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    m = self.manifest().await?;
                }
                None => {
                    return Err(Self::unknown_branch(&m, branch));
                }
            }
        }
        let (view, target) = self.branch_view(&m, branch)?;
        // Types whose stored rows validation must see.
        let mut node_types: HashSet<String> = staged.nodes.keys().cloned().collect();
        let mut edge_types: HashSet<String> = staged.edges.keys().cloned().collect();
        for e in catalog.edges.values() {
            if staged.edges.contains_key(&e.name) {
                node_types.insert(e.from.clone());
                node_types.insert(e.to.clone());
            }
            if staged.nodes.contains_key(&e.from) && e.cardinality.min > 0 {
                edge_types.insert(e.name.clone());
            }
        }
        let mut reads = BTreeSet::new();
        let mut absent = BTreeMap::new();
        let existing = if mode == LoadMode::Overwrite {
            Existing::default()
        } else {
            // The node types whose stored ids only answer "are this load's
            // keys new?": an append's own types that no edge of the load
            // ends at and that have no `@unique`. A merge needs nothing
            // stored of them.
            let endpoints: HashSet<&str> = staged
                .edges
                .keys()
                .filter_map(|t| catalog.edge(t))
                .flat_map(|e| [e.from.as_str(), e.to.as_str()])
                .collect();
            let mut needed = HashSet::new();
            for t in &node_types {
                let key = node_key(t);
                let unique = catalog.node(t).is_some_and(|n| !n.unique.is_empty());
                if unique || endpoints.contains(t.as_str()) {
                    reads.insert(key);
                    needed.insert(t.clone());
                } else if mode == LoadMode::Append {
                    let ids: HashSet<String> = staged_rows(staged, &key)
                        .iter()
                        .map(|r| r.id.clone())
                        .collect();
                    reads.insert(key.clone());
                    absent.insert(key, Arc::new(ids));
                    needed.insert(t.clone());
                }
            }
            reads.extend(edge_types.iter().map(|t| edge_key(t)));
            self.existing(&view, staged, &needed, &edge_types).await?
        };
        let errors = load::validate_graph(catalog, staged, &existing, mode);
        if !errors.is_empty() {
            return Err(EngineError::Load { errors });
        }
        let mut writes = BTreeMap::new();
        let mut written = BTreeMap::new();
        let mut deleted = BTreeMap::new();
        let keys: Vec<TableKey> = if mode == LoadMode::Overwrite {
            self.table_keys()
        } else {
            staged_keys(staged)
        };
        if mode == LoadMode::Overwrite {
            // An overwrite replaces every row the branch held: report them.
            for key in &keys {
                let held = self.row_count_at(&view, key).await?;
                if held > 0 {
                    deleted.insert(key.clone(), held);
                }
            }
        }
        for key in keys {
            let rows = staged_rows(staged, &key);
            let batch = self.batch(&key, rows)?;
            written.insert(key.clone(), rows.len());
            let w = match mode {
                LoadMode::Overwrite => TableWrite::Overwrite(batch),
                LoadMode::Append => TableWrite::Append(batch),
                LoadMode::Merge => TableWrite::Upsert(batch),
            };
            writes.insert(key, w);
        }
        let message = format!("load ({}, {} rows)", mode_name(mode), staged.row_count());
        self.prepared(PreparedWrite {
            branch: branch.to_string(),
            actor: actor.to_string(),
            message,
            target,
            view,
            reads,
            absent,
            writes,
            staged: BTreeMap::new(),
            written,
            deleted,
            redo: None,
        })
        .await
    }

    /// The head of `branch` in `m` as a read sees it, and the Lance branch
    /// the graph branch writes.
    pub(crate) fn branch_view(
        &self,
        m: &Manifest,
        branch: &str,
    ) -> Result<(View, Option<String>), EngineError> {
        let bs = m
            .branches
            .get(branch)
            .ok_or_else(|| Self::unknown_branch(m, branch))?;
        Ok((
            View {
                branch: Some(branch.to_string()),
                commit: bs.head.clone(),
                tables: bs.tables.clone(),
                catalog: self.catalog(),
            },
            bs.lance_branch.clone(),
        ))
    }

    /// Stages every table change of `w` that can be staged before its
    /// commit step (the table's published version is on the Lance branch
    /// the write targets; a first write on a branch forks the table in the
    /// commit step and stages there). Stages run concurrently.
    pub(crate) async fn prepared(&self, mut w: PreparedWrite) -> Result<Prepared, EngineError> {
        let mut jobs = Vec::new();
        for (key, tw) in &w.writes {
            let Some(op) = tw.change_op() else { continue };
            let Some(base) = w.view.tables.get(key) else {
                continue;
            };
            if base.lance_branch != w.target {
                continue;
            }
            let at = self.at(key, base);
            let key = key.clone();
            jobs.push(async move {
                let ds = table::open(&at).await?;
                let change = table::stage(Arc::new(ds), op).await?;
                Ok::<_, EngineError>((key, change))
            });
        }
        for (key, change) in futures::future::try_join_all(jobs).await? {
            w.staged.insert(key, change);
        }
        Ok(Prepared::Write(w))
    }

    /// A prepared write's commit step: waits for this process's turn and
    /// heals dead sidecars, then commits it ([`Graph::commit_writes_with`]).
    /// Errors: [`EngineError::Stale`] when a table it read or writes moved
    /// since it was prepared (prepare it again); [`EngineError::Busy`] when
    /// another process is writing one of its tables; the commit protocol's
    /// errors.
    pub async fn commit_prepared(&self, w: PreparedWrite) -> Result<WriteReport, EngineError> {
        let _turn = self.begin_write(&w.actor).await?;
        self.commit_prepared_here(w).await
    }

    /// The commit step of one prepared write, for a caller that holds the
    /// commit turn and has healed ([`Graph::begin_write`]): the GraphActor's
    /// commit queue calls it for each write of a turn. Errors as
    /// [`Graph::commit_prepared`]'s.
    pub async fn commit_prepared_here(&self, w: PreparedWrite) -> Result<WriteReport, EngineError> {
        let mut w = w;
        let mut head = None;
        if let Some(redo) = w.redo.take() {
            // The head this handle last saw (its own publishes included);
            // one another process published since is met by the fences.
            let m = match self.known_head() {
                Some(m) => m,
                None => self.manifest().await?,
            };
            let moved = match m.branches.get(&w.branch) {
                Some(bs) => w.reads.iter().any(|k| {
                    !self.read_holds(
                        k,
                        w.view.tables.get(k),
                        bs.tables.get(k),
                        w.absent.get(k).map(|a| &**a),
                    )
                }),
                None => false,
            };
            if moved {
                w = match (redo.0)(self.clone()).await? {
                    Prepared::Write(again) => again,
                    Prepared::Nothing(report) => return Ok(report),
                };
            } else {
                head = Some(m);
            }
        }
        let PreparedWrite {
            branch,
            actor,
            message,
            view,
            reads,
            absent,
            writes,
            staged,
            written,
            deleted,
            ..
        } = w;
        let (manifest, commit) = self
            .commit_core(CommitInput {
                head,
                branch: &branch,
                view: &view,
                reads: &reads,
                absent: &absent,
                writes,
                staged,
                actor: &actor,
                message: &message,
                extra: Extra::default(),
            })
            .await?;
        Ok(WriteReport {
            commit: Some(commit),
            manifest_version: Some(manifest.version),
            written,
            deleted,
            message,
        })
    }

    /// Commits one Lance transaction per table (plus its upkeep when due:
    /// compaction of small fragments and index extension,
    /// [`table::upkeep_if_due`]), then
    /// publishes them together as one graph commit on `branch`, fenced by a
    /// recovery sidecar (docs/architecture.md, "Recovery protocol"). The
    /// caller holds the commit turn and has healed; every table of `view`
    /// counts as read (a merge, a schema apply): the commit refuses with
    /// [`EngineError::Stale`] when any moved.
    pub(crate) async fn commit_writes_with(
        &self,
        branch: &str,
        view: &View,
        writes: BTreeMap<TableKey, TableWrite>,
        actor: &str,
        message: &str,
        extra: Extra<'_>,
    ) -> Result<(Manifest, Commit), EngineError> {
        let reads: BTreeSet<TableKey> = view.tables.keys().cloned().collect();
        self.commit_core(CommitInput {
            head: None,
            branch,
            view,
            reads: &reads,
            absent: &BTreeMap::new(),
            writes,
            staged: BTreeMap::new(),
            actor,
            message,
            extra,
        })
        .await
    }

    /// The commit protocol: A. the sidecar names every table, its base
    /// (the version published now) and this process as owner, with a
    /// lease renewed while the write runs; B. each table's staged change
    /// commits through the fence (exactly the version after the published
    /// one, [`table::commit_staged`]) and the sidecar records it; C. one
    /// manifest publish (create-if-absent) makes them visible, refused if
    /// anything the write read or writes was published meanwhile; D. the
    /// sidecar is deleted. A write that fails after A leaves its sidecar
    /// for heal; one that lost a fence or a read check is healed at once
    /// so that preparing it again can commit.
    async fn commit_core(&self, input: CommitInput<'_>) -> Result<(Manifest, Commit), EngineError> {
        let CommitInput {
            head,
            branch,
            view,
            reads,
            absent,
            writes,
            mut staged,
            actor,
            message,
            extra,
        } = input;
        let m = match head {
            Some(m) => m,
            None => self.manifest().await?,
        };
        let bs = m
            .branches
            .get(branch)
            .ok_or_else(|| Self::unknown_branch(&m, branch))?;
        for key in reads {
            if !self.read_holds(
                key,
                view.tables.get(key),
                bs.tables.get(key),
                absent.get(key).map(|a| &**a),
            ) {
                return Err(stale(key, "it was read at an older version"));
            }
        }
        let target = bs.lance_branch.clone();
        let now = now_ms();
        let mut sidecar = recovery::Sidecar {
            id: ulid::Ulid::new().to_string(),
            branch: branch.to_string(),
            lance_branch: target.clone(),
            actor: actor.to_string(),
            message: message.to_string(),
            started_ms: now,
            tables: BTreeMap::new(),
            merge_parent: extra.merge_parent.map(str::to_string),
            schema: extra.schema.cloned(),
            owner: Some(lease::me().clone()),
            lease_until_ms: Some(now + lease::LEASE_MS),
        };
        for key in writes.keys() {
            let base = bs.tables.get(key).ok_or_else(|| EngineError::Corrupt {
                path: "manifest".into(),
                reason: format!("branch `{branch}` has no table `{key}`"),
            })?;
            sidecar.tables.insert(
                key.clone(),
                recovery::SidecarTable {
                    base: base.clone(),
                    committed: None,
                    one_commit: writes.get(key).and_then(TableWrite::change_op).is_some(),
                },
            );
        }
        let live = lease::running(&sidecar.id);
        // Phase A.
        self.write_sidecar(&sidecar).await?;
        let shared = Arc::new(tokio::sync::Mutex::new(sidecar.clone()));
        let _renewer = self.renew_lease(shared.clone());
        // Set once any table of this write has a committed version.
        let moved = std::sync::atomic::AtomicBool::new(false);
        let result = async {
            // Phase B.
            let mut new_refs: BTreeMap<TableKey, TableRef> = BTreeMap::new();
            for (key, w) in writes {
                fail::fail_point!("table.commit", |_| Err(fault("table.commit")));
                let base = sidecar.tables[&key].base.clone();
                let version = self
                    .commit_table(
                        &key,
                        branch,
                        &base,
                        target.as_deref(),
                        w,
                        staged.remove(&key),
                        &sidecar.id,
                        &moved,
                    )
                    .await?;
                // Indexes are derived state: a failure to build one leaves the
                // data version in place, and reads fall back to scanning.
                let written = TableAt {
                    uri: self.table_uri(&key),
                    branch: target.clone(),
                    version,
                };
                let data_version = version;
                let version = if self.upkeep_after(branch, &key) {
                    version
                } else {
                    match table::open(&written).await {
                    Ok(ds) => match table::upkeep_if_due(ds, &self.index_specs(&key)).await {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!(table = %key, error = %e, "index maintenance failed");
                            version
                        }
                    },
                    Err(_) => version,
                    }
                };
                if version > data_version
                    && let Some(mut l) = self.manifests.inserted()
                {
                    l.record_no_rows(&key, target.as_deref(), data_version + 1, version);
                }
                {
                    // With one data commit here, kept in memory only: heal
                    // tells the version by its write-id tag
                    // (`Graph::committed_by`).
                    let mut sc = shared.lock().await;
                    let mut record = false;
                    if let Some(t) = sc.tables.get_mut(&key) {
                        t.committed = Some(version);
                        record = !t.one_commit;
                    }
                    if record {
                        self.write_sidecar(&sc).await?;
                    }
                }
                new_refs.insert(
                    key,
                    TableRef {
                        version,
                        lance_branch: target.clone(),
                        rows_of: None,
                    },
                );
            }
            // Phase C.
            fail::fail_point!("publish.before", |_| Err(fault("publish.before")));
            let lease_until = shared.lock().await.lease_until_ms.unwrap_or(0);
            if now_ms() > lease_until - lease::LEASE_MS / 3 {
                return Err(EngineError::LeaseLost {
                    write_id: sidecar.id.clone(),
                });
            }
            // A read that holds at the base (checked above) is expected at
            // the base, like every table written.
            let mut expect: BTreeMap<TableKey, Option<TableRef>> = reads
                .iter()
                .map(|k| {
                    let at = if absent.contains_key(k) {
                        bs.tables.get(k)
                    } else {
                        view.tables.get(k)
                    };
                    (k.clone(), at.cloned())
                })
                .collect();
            for (k, t) in &sidecar.tables {
                expect.insert(k.clone(), Some(t.base.clone()));
            }
            let (m, commit) = self
                .publish_tables(
                    &m,
                    branch,
                    &new_refs,
                    (actor, message, &sidecar.id),
                    extra,
                    None,
                    Some(&expect),
                )
                .await?;
            fail::fail_point!("publish.after", |_| Err(fault("publish.after")));
            Ok((m, commit))
        }
        .await;
        drop(_renewer);
        drop(live);
        let moved = moved.load(std::sync::atomic::Ordering::SeqCst);
        match result {
            Ok((m, commit)) => {
                self.remember(&m);
                // Phase D. A sidecar left behind is retired by the next
                // commit step's heal.
                if let Err(e) = self.delete_sidecar(&sidecar.id).await {
                    self.heal_due
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    return Err(e);
                }
                Ok((m, commit))
            }
            Err(
                e @ (EngineError::Stale { .. }
                | EngineError::Busy { .. }
                | EngineError::Drift { .. }),
            ) if !moved => {
                // Refused before any table moved: nothing of this write to
                // heal, but what refused it may be another's dead write,
                // which the next commit step heals.
                if let Err(d) = self.delete_sidecar(&sidecar.id).await {
                    tracing::warn!(error = %d, "removing the sidecar of a refused write failed");
                    self.release_lease(&shared).await;
                }
                self.heal_due
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Err(e)
            }
            Err(e @ (EngineError::Stale { .. } | EngineError::Busy { .. })) => {
                // Undo this write's table commits now, so that preparing it
                // again meets the published versions.
                if let Err(h) = self.heal(actor).await {
                    tracing::warn!(error = %h, "heal after a lost commit failed");
                    self.heal_due
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Err(e)
            }
            Err(e) => {
                // Left for heal; other processes may heal it at once.
                self.release_lease(&shared).await;
                self.heal_due
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Marks a failed write's sidecar as no longer held (lease end 0), so
    /// other processes' heal need not wait for the lease. Best effort.
    pub(crate) async fn release_lease(&self, shared: &tokio::sync::Mutex<recovery::Sidecar>) {
        let mut sc = shared.lock().await;
        sc.lease_until_ms = Some(0);
        if let Err(e) = self.write_sidecar(&sc).await {
            tracing::debug!(write = %sc.id, error = %e, "releasing the lease failed");
        }
    }

    /// Keeps a running write's lease: rewrites its sidecar with a later
    /// lease end every [`lease::RENEW_EVERY_MS`] until the returned guard
    /// drops.
    fn renew_lease(&self, shared: Arc<tokio::sync::Mutex<recovery::Sidecar>>) -> AbortOnDrop {
        let g = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(lease::RENEW_EVERY_MS)).await;
                let mut sc = shared.lock().await;
                sc.lease_until_ms = Some(now_ms() + lease::LEASE_MS);
                if let Err(e) = g.write_sidecar(&sc).await {
                    tracing::warn!(write = %sc.id, error = %e, "lease renewal failed");
                }
            }
        }))
    }

    /// Whether `change`, staged at an older version than `head`, may be
    /// committed over `head` as staged: it only adds rows, and every
    /// version after its read version up to `head` is one this process
    /// committed that inserted none of `ids` ([`ledger`]). Otherwise the
    /// caller stages it again.
    /// Whether what a write read of `key` at `read` (its view's table)
    /// still holds at `now` (the head's): the same rows, or, for a read
    /// that only checked that the write's own ids were `absent`, every
    /// version since is known to this process and inserted none of them
    /// (the insert ledger, [`ledger`]).
    pub(crate) fn read_holds(
        &self,
        key: &str,
        read: Option<&TableRef>,
        now: Option<&TableRef>,
        absent: Option<&HashSet<String>>,
    ) -> bool {
        if TableRef::same_rows(now, read) {
            return true;
        }
        let (Some(ids), Some(r), Some(n)) = (absent, read, now) else {
            return false;
        };
        r.lance_branch == n.lance_branch
            && self.manifests.inserted().is_some_and(|l| {
                l.none_inserted(key, r.lance_branch.as_deref(), r.version, n.version, ids)
            })
    }

    pub(crate) fn keeps_staged(
        &self,
        key: &str,
        target: Option<&str>,
        change: &table::StagedChange,
        head: u64,
        ids: Option<&std::collections::HashSet<String>>,
    ) -> bool {
        let Some(ids) = ids else { return false };
        change.inserts_only()
            && self
                .manifests
                .inserted()
                .is_some_and(|l| l.none_inserted(key, target, change.read_version, head, ids))
    }

    /// Commits one table's change on Lance branch `target` as the version
    /// after `base` (forking the table onto `target` first when `base` is
    /// on another Lance branch). A lost fence is explained
    /// ([`Graph::moved_head`]).
    #[allow(clippy::too_many_arguments)]
    async fn commit_table(
        &self,
        key: &str,
        branch: &str,
        base: &TableRef,
        target: Option<&str>,
        w: TableWrite,
        staged: Option<table::StagedChange>,
        write_id: &str,
        moved: &std::sync::atomic::AtomicBool,
    ) -> Result<u64, EngineError> {
        let done = |v: u64| {
            moved.store(true, std::sync::atomic::Ordering::SeqCst);
            v
        };
        let forked = base.lance_branch.as_deref() != target;
        if forked {
            // Forking replaces a Lance branch of the same name left by a
            // dead write; never one a running write (another process's)
            // is committing to.
            if let Some(writer) = self.live_writer(key, target, write_id).await? {
                return Err(EngineError::Busy {
                    table: key.to_string(),
                    branch: branch.to_string(),
                    writer,
                });
            }
        }
        let ds = Arc::new(table::open_for_write(&self.at(key, base), target).await?);
        let lost = |e: table::TableError| async move {
            if e.conflict {
                self.moved_head(key, branch, base, target, write_id).await
            } else {
                EngineError::from(e)
            }
        };
        // A staged upsert or delete decided which rows match against its
        // read version; when another write published the table since, it
        // is staged again here so it matches what is there now (an insert
        // of the same key must become an update, not a second row).
        let inserted = w.inserted();
        let staged = match staged {
            Some(c)
                if !forked
                    && (c.read_version == base.version
                        || w.is_blind()
                        || self.keeps_staged(
                            key,
                            target,
                            &c,
                            base.version,
                            inserted.as_deref(),
                        )) =>
            {
                Some(c)
            }
            _ => None,
        };
        if forked && let Some(mut l) = self.manifests.inserted() {
            // The Lance branch is made (again): its versions are new.
            l.clear();
        }
        match w {
            TableWrite::Reindex => Ok(ds.version().version),
            TableWrite::Merge { upsert, delete } => {
                let mut ds = ds;
                let mut version = base.version;
                if !delete.is_empty() {
                    let change = table::stage(ds.clone(), table::ChangeOp::Delete(delete)).await?;
                    version = match table::commit_staged(ds, change, version + 1, write_id).await {
                        Ok(d) => done(d.version().version),
                        Err(e) => return Err(lost(e).await),
                    };
                    ds = Arc::new(
                        table::open(&TableAt {
                            uri: self.table_uri(key),
                            branch: target.map(str::to_string),
                            version,
                        })
                        .await?,
                    );
                }
                if let Some(b) = upsert {
                    let change = table::stage(ds.clone(), table::ChangeOp::Upsert(b)).await?;
                    version = match table::commit_staged(ds, change, version + 1, write_id).await {
                        Ok(d) => done(d.version().version),
                        Err(e) => return Err(lost(e).await),
                    };
                }
                Ok(version)
            }
            other => {
                let change = match staged {
                    Some(c) => c,
                    None => {
                        let op = other.change_op().ok_or_else(|| EngineError::Corrupt {
                            path: key.to_string(),
                            reason: "a table write without a change".into(),
                        })?;
                        table::stage(ds.clone(), op).await?
                    }
                };
                match table::commit_staged(ds, change, base.version + 1, write_id).await {
                    Ok(d) => {
                        let v = d.version().version;
                        if let Some(mut l) = self.manifests.inserted() {
                            l.record(key, target, v, inserted);
                        }
                        Ok(done(v))
                    }
                    Err(e) => Err(lost(e).await),
                }
            }
        }
    }

    /// Publishes `new_refs` on `branch` as one commit; `who` is (actor,
    /// message, write id); `extra` adds a second parent and/or switches the
    /// schema (dropping and adding tables on every branch). With `expect`,
    /// the publish refuses ([`EngineError::Stale`]) when the branch's
    /// version of any of those tables is not the expected one (`None`: the
    /// table must be absent) in the manifest it publishes over, which a
    /// lost race re-reads.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn publish_tables(
        &self,
        base: &Manifest,
        branch: &str,
        new_refs: &BTreeMap<TableKey, TableRef>,
        who: (&str, &str, &str),
        extra: Extra<'_>,
        recovery: Option<&str>,
        expect: Option<&BTreeMap<TableKey, Option<TableRef>>>,
    ) -> Result<(Manifest, Commit), EngineError> {
        let (actor, message, write_id) = who;
        let merge_parent = extra.merge_parent;
        let branch_s = branch.to_string();
        let (m, commit) =
            self.manifests
                .publish(base.clone(), |cur| {
                    let mut next = cur.clone();
                    if let Some(sw) = extra.schema {
                        next.schema = Some(sw.id.clone());
                        for b in next.branches.values_mut() {
                            for k in &sw.drop {
                                b.tables.remove(k);
                            }
                            for (k, r) in &sw.created {
                                b.tables.insert(k.clone(), r.clone());
                            }
                        }
                    }
                    if let (Some(expect), Some(now)) = (expect, cur.branches.get(&branch_s)) {
                        for (k, want) in expect {
                            if !TableRef::same_rows(now.tables.get(k), want.as_ref()) {
                                return Err(stale(k, "another write published it first"));
                            }
                        }
                    }
                    let bs = next
                        .branches
                        .get_mut(&branch_s)
                        .ok_or_else(|| Self::unknown_branch(cur, &branch_s))?;
                    for (k, r) in new_refs {
                        // A newer version of the same Lance branch already
                        // contains ours (Lance histories are linear): keep it.
                        let keep_current = bs.tables.get(k).is_some_and(|c| {
                            c.lance_branch == r.lance_branch && c.version > r.version
                        });
                        if !keep_current {
                            bs.tables.insert(k.clone(), r.clone());
                        }
                    }
                    let commit = Commit {
                        id: ulid::Ulid::new().to_string(),
                        parents: std::iter::once(bs.head.clone())
                            .chain(merge_parent.map(str::to_string))
                            .collect(),
                        branch: branch_s.clone(),
                        actor: actor.to_string(),
                        timestamp_ms: now_ms(),
                        message: message.to_string(),
                        tables: bs.tables.clone(),
                        write_id: Some(write_id.to_string()),
                        recovery: recovery.map(str::to_string),
                        schema: next.schema.clone(),
                        // Set by the publish.
                        manifest_version: None,
                    };
                    bs.head = commit.id.clone();
                    Ok((next, Some(commit)))
                })
                .await?;
        let commit = commit.ok_or_else(|| EngineError::Corrupt {
            path: "manifest".into(),
            reason: "publish returned no commit".into(),
        })?;
        Ok((m, commit))
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

fn staged_rows<'s>(s: &'s Staged, key: &str) -> &'s [Row] {
    let rows = match key.split_once(':') {
        Some(("edge", n)) => s.edges.get(n),
        Some((_, n)) => s.nodes.get(n),
        None => None,
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
