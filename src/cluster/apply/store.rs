//! Where a cluster keeps its state: the storage root (`storage:` in
//! `cluster.yaml`, else the config folder), a local directory or
//! `s3://bucket/prefix`. Every control-plane object under `__cluster/`
//! goes through one [`ControlStore`] (create-if-absent for the lock,
//! compare-and-swap for the ledger, listing for intents and approvals), so
//! the same code runs on both backends; graph roots are
//! `graphs/<id>.omni` under the storage root, opened by the engine.

use std::sync::Arc;

use super::*;
use crate::engine::root::Root;
use crate::storage::{ControlError, ControlStore, control::ObjectVersion};

/// The control plane's folder under a storage root.
pub const CLUSTER_DIR: &str = "__cluster";

/// A handle on one cluster's storage root: its `__cluster/` objects and
/// its graph roots. Blocking: the control plane runs from the CLI and from
/// the server's boot, never inside an async task (each handle owns a small
/// runtime). Cheap to clone.
#[derive(Clone)]
pub struct ClusterStore {
    root: Root,
    /// The `__cluster/` store, made on first use: a local one only once
    /// something is written, so read-only commands (`plan`, `status`) on a
    /// folder with no cluster state leave it as it was.
    objects: Arc<std::sync::OnceLock<ControlStore>>,
    rt: Arc<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for ClusterStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterStore({})", self.root)
    }
}

impl ClusterStore {
    /// Opens the storage root `root`. Nothing is contacted or created
    /// until the first read or write.
    ///
    /// # Errors
    /// `runtime` when the handle's runtime cannot start.
    pub fn open(root: &Root) -> Result<Self, ClusterError> {
        Ok(Self {
            root: root.clone(),
            objects: Arc::default(),
            rt: Arc::new(rt()?),
        })
    }

    /// The `__cluster/` store; `None` for a read of a local root that has
    /// no `__cluster/` folder (nothing to read, and nothing is created).
    ///
    /// # Errors
    /// `storage_error` when the store cannot be configured (a bad S3
    /// option, an uncreatable local folder).
    fn objects(&self, write: bool) -> Result<Option<ControlStore>, ClusterError> {
        if let Some(s) = self.objects.get() {
            return Ok(Some(s.clone()));
        }
        if let Root::Local(p) = &self.root
            && !write
            && !p.join(CLUSTER_DIR).exists()
        {
            return Ok(None);
        }
        let s = self.root.store_at(CLUSTER_DIR).map_err(|e| {
            cerr(
                "storage_error",
                format!("{}: {e}", self.root.join(CLUSTER_DIR)),
            )
        })?;
        Ok(Some(self.objects.get_or_init(|| s).clone()))
    }

    /// Opens the storage root at `uri` (a local path, `file://…` or
    /// `s3://bucket/prefix`).
    ///
    /// # Errors
    /// `bad_storage` for a URI no backend takes; as [`Self::open`].
    pub fn open_uri(uri: &str) -> Result<Self, ClusterError> {
        let root = Root::parse(uri).map_err(|e| cerr("bad_storage", e.to_string()))?;
        Self::open(&root)
    }

    /// The storage root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The full URI of `path` under `__cluster/`, for messages.
    pub fn uri(&self, path: &str) -> String {
        self.root.join(&format!("{CLUSTER_DIR}/{path}"))
    }

    /// Runs a future on this handle's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    fn unwritable(&self) -> ClusterError {
        cerr(
            "storage_error",
            format!("{}: cannot be created", self.root.join(CLUSTER_DIR)),
        )
    }

    fn fail(&self, path: &str, e: ControlError) -> ClusterError {
        cerr("storage_error", format!("{}: {e}", self.uri(path)))
    }

    /// Reads `__cluster/<path>`; `None` when absent.
    pub fn read(&self, path: &str) -> Result<Option<Vec<u8>>, ClusterError> {
        let Some(o) = self.objects(false)? else {
            return Ok(None);
        };
        self.block_on(o.get_opt(path))
            .map_err(|e| self.fail(path, e))
    }

    /// Reads `__cluster/<path>` with its version, for [`Self::replace_if`].
    pub fn read_versioned(
        &self,
        path: &str,
    ) -> Result<Option<(Vec<u8>, ObjectVersion)>, ClusterError> {
        let Some(o) = self.objects(false)? else {
            return Ok(None);
        };
        self.block_on(o.get_versioned(path))
            .map_err(|e| self.fail(path, e))
    }

    /// Creates `__cluster/<path>` only if absent; `Ok(false)` when another
    /// writer's object is already there (exactly one creator wins).
    pub fn create(&self, path: &str, bytes: Vec<u8>) -> Result<bool, ClusterError> {
        let o = self.objects(true)?.ok_or_else(|| self.unwritable())?;
        match self.block_on(o.create(path, bytes)) {
            Ok(()) => Ok(true),
            Err(ControlError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(self.fail(path, e)),
        }
    }

    /// Writes (or replaces) `__cluster/<path>` atomically.
    pub fn write(&self, path: &str, bytes: Vec<u8>) -> Result<(), ClusterError> {
        let o = self.objects(true)?.ok_or_else(|| self.unwritable())?;
        self.block_on(o.put(path, bytes))
            .map_err(|e| self.fail(path, e))
    }

    /// Replaces `__cluster/<path>` only if it is still at `expected`;
    /// `Ok(false)` when it changed (compare and swap).
    pub fn replace_if(
        &self,
        path: &str,
        expected: &ObjectVersion,
        bytes: Vec<u8>,
    ) -> Result<bool, ClusterError> {
        let o = self.objects(true)?.ok_or_else(|| self.unwritable())?;
        match self.block_on(o.replace_if(path, expected, bytes)) {
            Ok(()) => Ok(true),
            Err(ControlError::Precondition { .. } | ControlError::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.fail(path, e)),
        }
    }

    /// Deletes `__cluster/<path>` (a missing object is not an error).
    pub fn delete(&self, path: &str) -> Result<(), ClusterError> {
        let Some(o) = self.objects(false)? else {
            return Ok(());
        };
        self.block_on(o.delete(path))
            .map_err(|e| self.fail(path, e))
    }

    /// The objects under `__cluster/<prefix>/`, as paths relative to
    /// `__cluster/`, sorted.
    pub fn list(&self, prefix: &str) -> Result<Vec<String>, ClusterError> {
        let Some(o) = self.objects(false)? else {
            return Ok(Vec::new());
        };
        self.block_on(o.list(prefix))
            .map_err(|e| self.fail(prefix, e))
    }

    /// The root URI of graph `id` (`graphs/<id>.omni`).
    pub fn graph_uri(&self, id: &str) -> String {
        self.root.join(&format!("graphs/{id}.omni"))
    }

    fn graph_root(&self, id: &str) -> Result<Root, ClusterError> {
        Root::parse(&self.graph_uri(id)).map_err(|e| cerr("bad_storage", e.to_string()))
    }

    /// Whether graph `id`'s root holds anything (a graph, or what a
    /// partial `init` left).
    pub fn graph_exists(&self, id: &str) -> Result<bool, ClusterError> {
        let root = self.graph_root(id)?;
        if let Root::Local(p) = &root {
            return Ok(p.exists());
        }
        self.block_on(root.first_occupied())
            .map(|o| o.is_some())
            .map_err(|e| cerr("storage_error", format!("{}: {e}", self.graph_uri(id))))
    }

    /// Removes graph `id`'s root and everything under it.
    pub fn remove_graph(&self, id: &str) -> Result<(), ClusterError> {
        let root = self.graph_root(id)?;
        self.block_on(root.remove_all())
            .map_err(|e| cerr("storage_error", format!("{}: {e}", self.graph_uri(id))))
    }

    /// Opens graph `id`.
    pub fn open_graph(&self, id: &str) -> Result<Graph, crate::engine::EngineError> {
        self.block_on(Graph::open(&self.graph_uri(id)))
    }
}

/// A storage root named by `cluster.yaml`'s folder and `storage:`.
pub(super) fn store_for(report: &ValidationReport) -> Result<ClusterStore, ClusterError> {
    ClusterStore::open(&report.storage_root)
}
