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

pub mod error;
pub mod exec;
pub mod export;
pub mod load;
pub mod manifest;
pub mod merge;
pub mod mutate;
pub mod recovery;
pub mod schema_apply;
pub mod values;

use std::collections::{BTreeMap, HashSet};
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

/// Checks a branch name: path-safe, 1–100 characters of `A-Z a-z 0-9 . _ -`,
/// starting with a letter or digit.
pub fn check_branch_name(name: &str) -> Result<(), EngineError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(EngineError::BadBranchName {
            name: name.to_string(),
            reason: "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
                .into(),
        })
    }
}

/// Resolves a graph URI (a local path or `file://…`) to a directory.
pub fn local_root(uri: &str) -> Result<PathBuf, EngineError> {
    if let Some(rest) = uri.strip_prefix("file://") {
        return Ok(PathBuf::from(rest));
    }
    if uri.contains("://") {
        return Err(EngineError::BadUri {
            uri: uri.to_string(),
            reason: "only local paths and file:// URIs are supported by this build".into(),
        });
    }
    Ok(PathBuf::from(uri))
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
            root,
            manifests: ManifestStore::new(control),
            schema: SchemaState::cell(None, catalog, schema_source),
            schema_pinned: false,
            cache: exec::TableCache::default(),
            gate: None,
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
        let m = self.manifests.latest().await?;
        if m.schema != self.schema_state().id {
            self.load_schema(m.schema.as_deref()).await?;
        }
        Ok(m)
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
                state.lance_branch = Some(format!("{name}-{}", ulid::Ulid::new()));
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

    /// What validation needs to know about the stored rows of `keys`.
    async fn existing(
        &self,
        view: &View,
        node_types: &HashSet<String>,
        edge_types: &HashSet<String>,
    ) -> Result<Existing, EngineError> {
        let catalog = self.catalog();
        let mut ex = Existing::default();
        for t in node_types {
            let key = node_key(t);
            let Some(r) = view.tables.get(&key) else {
                continue;
            };
            let Some(n) = catalog.node(t) else {
                continue;
            };
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

    /// Loads JSONL into `branch` as one commit. With `from`, a missing
    /// branch is first created from `from`; without it, a missing branch is
    /// an error. Validation runs before any table is touched; a failed load
    /// leaves the graph exactly as it was.
    pub async fn load(
        &self,
        input: impl std::io::BufRead,
        mode: LoadMode,
        branch: &str,
        from: Option<&str>,
        actor: &str,
    ) -> Result<WriteReport, EngineError> {
        self.authorize(actor, crate::policy::Action::Change, branch)?;
        let catalog = self.catalog();
        let started = std::time::Instant::now();
        let staged = load::parse(&catalog, input).map_err(|errors| EngineError::Load { errors })?;
        let parsed = started.elapsed();
        let _lock = self.begin_write(actor).await?;
        self.same_schema(&catalog)?;
        let m = self.manifest().await?;
        if !m.branches.contains_key(branch) {
            match from {
                Some(base) => {
                    self.create_branch(branch, base, actor).await?;
                }
                None => {
                    return Err(Self::unknown_branch(&m, branch));
                }
            }
        }
        let view = self.view(&ReadAt::Branch(branch.to_string())).await?;
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
        let existing = if mode == LoadMode::Overwrite {
            Existing::default()
        } else {
            self.existing(&view, &node_types, &edge_types).await?
        };
        let validate_started = std::time::Instant::now();
        let errors = load::validate_graph(&catalog, &staged, &existing, mode);
        if !errors.is_empty() {
            return Err(EngineError::Load { errors });
        }
        let validated = validate_started.elapsed();
        let batch_started = std::time::Instant::now();
        let mut writes = BTreeMap::new();
        let mut written = BTreeMap::new();
        let keys: Vec<TableKey> = if mode == LoadMode::Overwrite {
            self.table_keys()
        } else {
            staged_keys(&staged)
        };
        for key in keys {
            let rows = staged_rows(&staged, &key);
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
        let batched = batch_started.elapsed();
        let commit_started = std::time::Instant::now();
        let (manifest, commit) = self
            .commit_writes(branch, &view, writes, actor, &message)
            .await?;
        tracing::debug!(
            rows = staged.row_count(),
            parse_ms = parsed.as_millis() as u64,
            validate_ms = validated.as_millis() as u64,
            batch_ms = batched.as_millis() as u64,
            commit_ms = commit_started.elapsed().as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "load phases"
        );
        Ok(WriteReport {
            commit: Some(commit),
            manifest_version: Some(manifest.version),
            written,
            deleted: BTreeMap::new(),
            message,
        })
    }

    /// Commits one Lance transaction per table (plus its upkeep: compaction
    /// of small fragments and index extension, [`table::upkeep`]), then
    /// publishes them together as one graph commit on `branch`, fenced by a
    /// recovery sidecar (docs/architecture.md, "Recovery protocol"):
    /// A. the sidecar names every table and its base version; B. each table
    /// commits and the sidecar records the version; C. one manifest publish
    /// makes them visible; D. the sidecar is deleted. The caller holds the
    /// write lock and has healed.
    pub(crate) async fn commit_writes(
        &self,
        branch: &str,
        view: &View,
        writes: BTreeMap<TableKey, TableWrite>,
        actor: &str,
        message: &str,
    ) -> Result<(Manifest, Commit), EngineError> {
        self.commit_writes_with(branch, view, writes, actor, message, Extra::default())
            .await
    }

    /// [`Graph::commit_writes`] with a second parent (a merge's source
    /// head) and/or a schema switch (a schema apply), both recorded in the
    /// sidecar so a roll forward publishes them too.
    pub(crate) async fn commit_writes_with(
        &self,
        branch: &str,
        view: &View,
        writes: BTreeMap<TableKey, TableWrite>,
        actor: &str,
        message: &str,
        extra: Extra<'_>,
    ) -> Result<(Manifest, Commit), EngineError> {
        let m = self.manifest().await?;
        let target = m
            .branches
            .get(branch)
            .ok_or_else(|| Self::unknown_branch(&m, branch))?
            .lance_branch
            .clone();
        let mut sidecar = recovery::Sidecar {
            id: ulid::Ulid::new().to_string(),
            branch: branch.to_string(),
            lance_branch: target.clone(),
            actor: actor.to_string(),
            message: message.to_string(),
            started_ms: now_ms(),
            tables: BTreeMap::new(),
            merge_parent: extra.merge_parent.map(str::to_string),
            schema: extra.schema.cloned(),
        };
        for key in writes.keys() {
            let base = view.tables.get(key).ok_or_else(|| EngineError::Corrupt {
                path: "manifest".into(),
                reason: format!("branch `{branch}` has no table `{key}`"),
            })?;
            self.drift_guard(key, branch, base, target.as_deref())
                .await?;
            sidecar.tables.insert(
                key.clone(),
                recovery::SidecarTable {
                    base: base.clone(),
                    committed: None,
                },
            );
        }
        // Phase A.
        self.write_sidecar(&sidecar).await?;
        // Phase B.
        let mut new_refs: BTreeMap<TableKey, TableRef> = BTreeMap::new();
        for (key, w) in writes {
            fail::fail_point!("table.commit", |_| Err(fault("table.commit")));
            let base = &sidecar.tables[&key].base;
            let ds = table::open_for_write(&self.at(&key, base), target.as_deref()).await?;
            let version = match w {
                TableWrite::Append(b) => table::append(ds, b).await?,
                TableWrite::Upsert(b) => table::upsert(ds, b).await?,
                TableWrite::Overwrite(b) => table::overwrite(ds, b).await?,
                TableWrite::Delete(ids) => table::delete_where_in(ds, "id", &ids).await?,
                TableWrite::Reindex => ds.version().version,
                TableWrite::Merge { upsert, delete } => {
                    let mut ds = ds;
                    let mut version = ds.version().version;
                    if !delete.is_empty() {
                        version = table::delete_where_in(ds, "id", &delete).await?;
                        ds = table::open(&TableAt {
                            uri: self.table_uri(&key),
                            branch: target.clone(),
                            version,
                        })
                        .await?;
                    }
                    if let Some(b) = upsert {
                        version = table::upsert(ds, b).await?;
                    }
                    version
                }
            };
            // Indexes are derived state: a failure to build one leaves the
            // data version in place, and reads fall back to scanning.
            let written = TableAt {
                uri: self.table_uri(&key),
                branch: target.clone(),
                version,
            };
            let version = match table::open(&written).await {
                Ok(ds) => match table::upkeep(ds, &self.index_specs(&key)).await {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::warn!(table = %key, error = %e, "index maintenance failed");
                        version
                    }
                },
                Err(_) => version,
            };
            if let Some(t) = sidecar.tables.get_mut(&key) {
                t.committed = Some(version);
            }
            self.write_sidecar(&sidecar).await?;
            new_refs.insert(
                key,
                TableRef {
                    version,
                    lance_branch: target.clone(),
                },
            );
        }
        // Phase C.
        fail::fail_point!("publish.before", |_| Err(fault("publish.before")));
        let (m, commit) = self
            .publish_tables(
                &m,
                branch,
                &new_refs,
                (actor, message, &sidecar.id),
                extra,
                None,
            )
            .await?;
        fail::fail_point!("publish.after", |_| Err(fault("publish.after")));
        // Phase D.
        self.delete_sidecar(&sidecar.id).await?;
        Ok((m, commit))
    }

    /// Publishes `new_refs` on `branch` as one commit; `who` is (actor,
    /// message, write id); `extra` adds a second parent and/or switches the
    /// schema (dropping and adding tables on every branch).
    pub(crate) async fn publish_tables(
        &self,
        base: &Manifest,
        branch: &str,
        new_refs: &BTreeMap<TableKey, TableRef>,
        who: (&str, &str, &str),
        extra: Extra<'_>,
        recovery: Option<&str>,
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
