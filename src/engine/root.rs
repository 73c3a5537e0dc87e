//! Where a graph lives: a local directory or an S3 prefix
//! (docs/storage.md). One [`Root::parse`] for every command and route; the
//! rest of the engine reaches storage only through the root's control
//! store (`_graph/`) and table URIs.

use std::path::{Path, PathBuf};

use super::EngineError;
use crate::storage::ControlStore;
use crate::storage::s3::S3Location;

/// The control objects' folder under a graph root.
pub(super) const GRAPH_DIR: &str = "_graph";

/// A graph root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// An absolute local directory (`/path`, `./rel`, `file:///path`).
    Local(PathBuf),
    /// `s3://bucket/prefix` on S3 or an S3-compatible server, configured
    /// as [`crate::storage::s3`] describes.
    S3(S3Location),
}

impl Root {
    /// Parses a graph URI: a local path (made absolute: Lance records a
    /// branch's parent location in its manifest, so a graph made from one
    /// directory must open from any other), `file://…`, or
    /// `s3://bucket[/prefix]`.
    ///
    /// # Errors
    /// [`EngineError::BadUri`]: another scheme, an empty bucket name, a
    /// path the current directory cannot make absolute.
    pub fn parse(uri: &str) -> Result<Root, EngineError> {
        let bad = |reason: String| EngineError::BadUri {
            uri: uri.to_string(),
            reason,
        };
        if uri.starts_with("s3://") {
            return S3Location::parse(uri)
                .map(Root::S3)
                .map_err(|e| bad(e.to_string()));
        }
        let path = match uri.strip_prefix("file://") {
            Some(rest) => PathBuf::from(rest),
            None if uri.contains("://") => {
                return Err(bad(
                    "expected a local path, file://… or s3://bucket/prefix".into()
                ));
            }
            None => PathBuf::from(uri),
        };
        std::path::absolute(&path)
            .map(Root::Local)
            .map_err(|e| bad(format!("cannot make the path absolute: {e}")))
    }

    /// The URI of `path` (`/`-separated) under the root.
    pub fn join(&self, path: &str) -> String {
        match self {
            Root::Local(p) => p.join(path).display().to_string(),
            Root::S3(at) => at.join(path).uri(),
        }
    }

    /// The local directory, for a local root.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Root::Local(p) => Some(p),
            Root::S3(_) => None,
        }
    }

    /// The root's control objects (`_graph/`).
    ///
    /// # Errors
    /// [`EngineError::Control`] when the store cannot be configured.
    pub fn control(&self) -> Result<ControlStore, EngineError> {
        self.store_at(GRAPH_DIR)
    }

    /// A control store over the folder `dir` (`/`-separated) of the root:
    /// checks of what a root already holds, clean-up, and the cluster
    /// control plane's `__cluster/` objects. A local folder is created
    /// when missing.
    ///
    /// # Errors
    /// [`EngineError::Control`] when the store cannot be configured.
    pub fn store_at(&self, dir: &str) -> Result<ControlStore, EngineError> {
        Ok(match self {
            Root::Local(p) => ControlStore::local(&p.join(dir))?,
            Root::S3(at) => ControlStore::s3(&at.join(dir).uri(), Vec::<(String, String)>::new())?,
        })
    }

    /// A key naming the root within this process (for the commit turns
    /// shared by handles on one root).
    pub fn key(&self) -> String {
        match self {
            Root::Local(p) => std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
            Root::S3(at) => at.uri(),
        }
    }

    /// Whether the root holds a graph (`_graph/catalog.json`).
    ///
    /// # Errors
    /// [`EngineError::Control`]: the store could not be asked.
    pub async fn has_graph(&self) -> Result<bool, EngineError> {
        match self {
            Root::Local(p) => Ok(p.join(GRAPH_DIR).join("catalog.json").exists()),
            Root::S3(_) => Ok(self.control()?.exists("catalog.json").await?),
        }
    }

    /// The first of `_graph/`, `nodes/`, `edges/` that already holds
    /// something, if any: `init` refuses such a root.
    ///
    /// # Errors
    /// [`EngineError::Control`]: the store could not be asked.
    pub async fn first_occupied(&self) -> Result<Option<&'static str>, EngineError> {
        for dir in [GRAPH_DIR, "nodes", "edges"] {
            let taken = match self {
                Root::Local(p) => p.join(dir).exists(),
                Root::S3(_) => !self.store_at(dir)?.list("").await?.is_empty(),
            };
            if taken {
                return Ok(Some(dir));
            }
        }
        Ok(None)
    }

    /// Removes what `init` created under the root (`dirs`, then the
    /// directory itself when `created_root`), after a failed `init`. Best
    /// effort: errors are ignored, there is nothing more to do about them.
    pub async fn remove_created(&self, dirs: &[&str], created_root: bool) {
        match self {
            Root::Local(p) => {
                for d in dirs.iter().rev() {
                    let _ = std::fs::remove_dir_all(p.join(d));
                }
                if created_root {
                    let _ = std::fs::remove_dir(p);
                }
            }
            Root::S3(_) => {
                for d in dirs.iter().rev() {
                    if let Ok(s) = self.store_at(d) {
                        let _ = s.delete_prefix("").await;
                    }
                }
            }
        }
    }
}

impl Root {
    /// Removes everything under the root (a local directory and its
    /// contents; every object under an S3 prefix). A missing root is not
    /// an error.
    ///
    /// # Errors
    /// [`EngineError::Control`] when the object store fails;
    /// [`EngineError::BadUri`] (naming the root) when a local directory
    /// cannot be removed.
    pub async fn remove_all(&self) -> Result<(), EngineError> {
        match self {
            Root::Local(p) => match std::fs::remove_dir_all(p) {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(EngineError::BadUri {
                    uri: p.display().to_string(),
                    reason: format!("cannot remove it: {e}"),
                }),
            },
            Root::S3(_) => {
                self.store_at("")?.delete_prefix("").await?;
                Ok(())
            }
        }
    }
}

impl std::fmt::Display for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Root::Local(p) => write!(f, "{}", p.display()),
            Root::S3(at) => f.write_str(&at.uri()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_parse_by_scheme() {
        assert!(matches!(
            Root::parse("/tmp/g").expect("path"),
            Root::Local(_)
        ));
        assert!(matches!(
            Root::parse("file:///tmp/g").expect("file"),
            Root::Local(p) if p == Path::new("/tmp/g")
        ));
        let s3 = Root::parse("s3://bucket/graphs/g/").expect("s3");
        assert_eq!(s3.to_string(), "s3://bucket/graphs/g");
        assert_eq!(
            s3.join("nodes/Person.lance"),
            "s3://bucket/graphs/g/nodes/Person.lance"
        );
        for bad in ["gs://b/g", "s3://", "s3:///g", "http://x/y"] {
            let e = Root::parse(bad).expect_err(bad);
            assert!(matches!(e, EngineError::BadUri { .. }), "{bad}: {e}");
        }
    }
}
