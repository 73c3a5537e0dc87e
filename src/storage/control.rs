//! Control objects (manifest versions, commit records, schema, locks) behind
//! one adapter over `object_store`.
//!
//! Guarantees the engine relies on, per backend (local filesystem, memory;
//! s3 later):
//! - **atomic visibility**: a reader sees a whole object or none (local:
//!   written to a temporary file, then renamed/linked into place);
//! - **create-if-absent** with exactly one winner ([`ControlStore::create`],
//!   `PutMode::Create`);
//! - overwrite ([`ControlStore::put`]) for best-effort hints.

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

/// Errors from the control store. `AlreadyExists` is the losing side of a
/// create-if-absent; everything else is a storage failure.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("control object {path} already exists")]
    AlreadyExists { path: String },
    #[error("control object {path} not found")]
    NotFound { path: String },
    #[error("storage error on {path}: {source}")]
    Storage {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("invalid storage location {uri}: {reason}")]
    BadLocation { uri: String, reason: String },
}

impl ControlError {
    fn from_store(path: &Path, e: object_store::Error) -> Self {
        match e {
            object_store::Error::AlreadyExists { .. } => ControlError::AlreadyExists {
                path: path.to_string(),
            },
            object_store::Error::NotFound { .. } => ControlError::NotFound {
                path: path.to_string(),
            },
            source => ControlError::Storage {
                path: path.to_string(),
                source,
            },
        }
    }
}

/// A cheap-to-clone handle on the control objects under one graph root.
#[derive(Debug, Clone)]
pub struct ControlStore {
    store: Arc<dyn ObjectStore>,
}

impl ControlStore {
    /// Control objects under a local directory (created if missing).
    pub fn local(dir: &std::path::Path) -> Result<Self, ControlError> {
        std::fs::create_dir_all(dir).map_err(|e| ControlError::BadLocation {
            uri: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir).map_err(|e| {
            ControlError::BadLocation {
                uri: dir.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        Ok(Self {
            store: Arc::new(store),
        })
    }

    /// Control objects in memory (tests).
    pub fn memory() -> Self {
        Self {
            store: Arc::new(object_store::memory::InMemory::new()),
        }
    }

    /// Reads a whole object.
    pub async fn get(&self, path: &str) -> Result<bytes_vec::Bytes, ControlError> {
        let p = Path::from(path);
        let r = self
            .store
            .get(&p)
            .await
            .map_err(|e| ControlError::from_store(&p, e))?;
        let b = r
            .bytes()
            .await
            .map_err(|e| ControlError::from_store(&p, e))?;
        Ok(b.to_vec())
    }

    /// Reads an object, `None` when it does not exist.
    pub async fn get_opt(&self, path: &str) -> Result<Option<bytes_vec::Bytes>, ControlError> {
        match self.get(path).await {
            Ok(b) => Ok(Some(b)),
            Err(ControlError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// True when the object exists.
    pub async fn exists(&self, path: &str) -> Result<bool, ControlError> {
        let p = Path::from(path);
        match self.store.head(&p).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(ControlError::from_store(&p, e)),
        }
    }

    /// Creates an object only if absent; exactly one concurrent caller wins,
    /// the others get [`ControlError::AlreadyExists`].
    pub async fn create(&self, path: &str, data: Vec<u8>) -> Result<(), ControlError> {
        let p = Path::from(path);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&p, PutPayload::from(data), opts)
            .await
            .map_err(|e| ControlError::from_store(&p, e))?;
        Ok(())
    }

    /// Writes (or replaces) an object atomically.
    pub async fn put(&self, path: &str, data: Vec<u8>) -> Result<(), ControlError> {
        let p = Path::from(path);
        self.store
            .put(&p, PutPayload::from(data))
            .await
            .map_err(|e| ControlError::from_store(&p, e))?;
        Ok(())
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, path: &str) -> Result<(), ControlError> {
        let p = Path::from(path);
        match self.store.delete(&p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ControlError::from_store(&p, e)),
        }
    }

    /// Lists object paths under `prefix` (recursively), sorted.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, ControlError> {
        let p = Path::from(prefix);
        let mut out: Vec<String> = self
            .store
            .list(Some(&p))
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .map_err(|e| ControlError::from_store(&p, e))?;
        out.sort();
        Ok(out)
    }
}

/// Plain byte vectors: control objects are small JSON documents.
pub mod bytes_vec {
    pub type Bytes = Vec<u8>;
}
