//! Control objects (manifest versions, commit records, schema, recovery
//! sidecars, audit records; the cluster's ledger) behind one adapter over
//! `object_store`.
//!
//! Guarantees the engine relies on, per backend (local filesystem, memory,
//! s3 and S3-compatible servers):
//! - **atomic visibility**: a reader sees a whole object or none (local:
//!   written to a temporary file, then renamed/linked into place; S3: a
//!   single-part PUT is atomic);
//! - **create-if-absent** with exactly one winner ([`ControlStore::create`],
//!   `PutMode::Create`; S3: `If-None-Match: *`, which AWS S3 honours since
//!   August 2024, as do MinIO and Cloudflare R2);
//! - overwrite ([`ControlStore::put`]) for best-effort hints;
//! - conditional replace ([`ControlStore::replace_if`]): compare-and-swap
//!   against the version a reader saw (memory: `PutMode::Update`; S3:
//!   `If-Match: <etag>`; local: the check and the atomic rename run under an
//!   OS file lock, since `object_store`'s local backend has no conditional
//!   update);
//! - list, delete, delete-prefix.
//!
//! The contract tests at the bottom of this file run against every backend;
//! the s3 one against an S3-compatible server the test starts on 127.0.0.1
//! (`scripts/s3_test_server.py`, moto, run by `OMNIGRAPH_MOTO_PYTHON` or
//! `python3`; `.ci/run` installs it).

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
    #[error("control object {path} changed since it was read; re-read and retry")]
    Precondition { path: String },
    #[error("invalid storage location {uri}: {reason}")]
    BadLocation { uri: String, reason: String },
    /// The store answered 401 or 403 (object_store's `Unauthenticated`,
    /// `PermissionDenied`): credentials it does not accept, or a policy
    /// that denies them this location.
    #[error(
        "storage refused access to `{path}`: {reason}; check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE) and the bucket's policy"
    )]
    AccessRefused { path: String, reason: String },
}

/// The store's own words for a refusal: the `<Code>`/`<Message>` of an
/// S3 error body when the error text carries one, else the status.
fn refusal_reason(e: &(dyn std::error::Error + 'static)) -> String {
    let text = e.to_string();
    let tag = |t: &str| {
        let open = format!("<{t}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{t}>"))? + start;
        Some(text[start..end].to_string())
    };
    match (tag("Code"), tag("Message")) {
        (Some(c), Some(m)) => format!("{c}: {}", m.trim_end_matches('.')),
        (Some(c), None) => c,
        // A HEAD answer has no body to explain itself.
        _ if text.contains("403 Forbidden") => "HTTP 403 Forbidden".to_string(),
        _ if text.contains("401 Unauthorized") => "HTTP 401 Unauthorized".to_string(),
        _ => text,
    }
}

/// Whether `e` or an error it wraps is an HTTP 401 or 403 answer.
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut at = Some(e);
    while let Some(e) = at {
        let text = e.to_string();
        if text.contains("403 Forbidden") || text.contains("401 Unauthorized") {
            return true;
        }
        at = e.source();
    }
    false
}

impl ControlError {
    fn from_store(path: String, e: object_store::Error) -> Self {
        match e {
            object_store::Error::AlreadyExists { .. } => ControlError::AlreadyExists { path },
            object_store::Error::NotFound { .. } => ControlError::NotFound { path },
            object_store::Error::Precondition { .. } => ControlError::Precondition { path },
            object_store::Error::PermissionDenied { source, .. }
            | object_store::Error::Unauthenticated { source, .. } => ControlError::AccessRefused {
                path,
                reason: refusal_reason(source.as_ref()),
            },
            // Listings fail as `Generic` whatever the status; their text
            // carries it (object_store keeps the HTTP error private).
            source if refused(&source) => ControlError::AccessRefused {
                path,
                reason: refusal_reason(&source),
            },
            source => ControlError::Storage { path, source },
        }
    }
}

/// A cheap-to-clone handle on the control objects under one graph root.
#[derive(Debug, Clone)]
pub struct ControlStore {
    store: Arc<dyn ObjectStore>,
    /// The local directory, for the file lock that makes `replace_if`
    /// atomic there; `None` for backends with native conditional updates.
    local: Option<std::path::PathBuf>,
    /// Where the objects are (a directory or `s3://…` URI), for errors.
    base: String,
}

/// The version of an object a reader saw (its e-tag), for
/// [`ControlStore::replace_if`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub e_tag: Option<String>,
    pub version: Option<String>,
}

impl ControlStore {
    /// Control objects under a local directory (created if missing),
    /// through [`super::local::InlineLocal`].
    pub fn local(dir: &std::path::Path) -> Result<Self, ControlError> {
        std::fs::create_dir_all(dir).map_err(|e| ControlError::BadLocation {
            uri: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        // Puts run on the commit thread when it allows it (a turn's
        // sidecar and graph manifest, [`super::local`]).
        let store =
            super::local::InlineLocal::with_prefix(dir).map_err(|e| ControlError::BadLocation {
                uri: dir.display().to_string(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            store: super::metered::wrap(Arc::new(store)),
            local: Some(dir.to_path_buf()),
            base: dir.display().to_string(),
        })
    }

    /// Control objects in memory (tests).
    pub fn memory() -> Self {
        Self {
            store: super::metered::wrap(Arc::new(object_store::memory::InMemory::new())),
            local: None,
            base: "memory:".to_string(),
        }
    }

    /// Control objects under `s3://<bucket>[/<prefix>]` on AWS S3 or an
    /// S3-compatible server.
    ///
    /// Configuration: the `AWS_*` environment variables, then the options
    /// registered for the bucket, then `options` ([`super::s3`], the same
    /// for Lance tables). Keys are `object_store`'s `AmazonS3ConfigKey`
    /// names (`aws_endpoint`, `aws_region`, `aws_access_key_id`,
    /// `aws_secret_access_key`, `allow_http`, …). Conditional writes use
    /// the HTTP precondition headers (`aws_conditional_put = etag`, the
    /// only mode accepted: a store that ignores them would break
    /// create-if-absent).
    ///
    /// Nothing is contacted here; a wrong endpoint surfaces on the first
    /// request as [`ControlError::Storage`], refused credentials as
    /// [`ControlError::AccessRefused`].
    ///
    /// # Errors
    /// [`ControlError::BadLocation`] when `uri` is not `s3://bucket[/prefix]`,
    /// an option key is unknown, or conditional puts are disabled.
    pub fn s3<K, V>(
        uri: &str,
        options: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ControlError>
    where
        K: AsRef<str>,
        V: Into<String>,
    {
        let (builder, at) = super::s3::builder(uri, options)?;
        let store = builder.build().map_err(|e| ControlError::BadLocation {
            uri: uri.to_string(),
            reason: e.to_string(),
        })?;
        let prefix = at.prefix.as_str();
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(store)
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        };
        Ok(Self {
            store: super::metered::wrap(store),
            local: None,
            base: uri.trim_end_matches('/').to_string(),
        })
    }

    /// `e` from the store, naming `p` by its full location.
    fn fail(&self, p: &Path, e: object_store::Error) -> ControlError {
        let at = if p.as_ref().is_empty() {
            self.base.clone()
        } else {
            format!("{}/{p}", self.base)
        };
        ControlError::from_store(at, e)
    }

    /// Reads a whole object.
    pub async fn get(&self, path: &str) -> Result<bytes_vec::Bytes, ControlError> {
        let p = Path::from(path);
        let r = self.store.get(&p).await.map_err(|e| self.fail(&p, e))?;
        let b = r.bytes().await.map_err(|e| self.fail(&p, e))?;
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
            Err(e) => Err(self.fail(&p, e)),
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
            .map_err(|e| self.fail(&p, e))?;
        Ok(())
    }

    /// Writes (or replaces) an object atomically.
    pub async fn put(&self, path: &str, data: Vec<u8>) -> Result<(), ControlError> {
        let p = Path::from(path);
        self.store
            .put(&p, PutPayload::from(data))
            .await
            .map_err(|e| self.fail(&p, e))?;
        Ok(())
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, path: &str) -> Result<(), ControlError> {
        let p = Path::from(path);
        match self.store.delete(&p).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.fail(&p, e)),
        }
    }

    /// Reads an object with the version to pass to [`Self::replace_if`].
    pub async fn get_versioned(
        &self,
        path: &str,
    ) -> Result<Option<(bytes_vec::Bytes, ObjectVersion)>, ControlError> {
        let p = Path::from(path);
        let r = match self.store.get(&p).await {
            Ok(r) => r,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.fail(&p, e)),
        };
        let v = ObjectVersion {
            e_tag: r.meta.e_tag.clone(),
            version: r.meta.version.clone(),
        };
        let b = r.bytes().await.map_err(|e| self.fail(&p, e))?;
        Ok(Some((b.to_vec(), v)))
    }

    /// Replaces an object only if it is still at `expected` (compare and
    /// swap); otherwise [`ControlError::Precondition`]. Of concurrent
    /// replacers holding the same version, exactly one wins.
    pub async fn replace_if(
        &self,
        path: &str,
        expected: &ObjectVersion,
        data: Vec<u8>,
    ) -> Result<(), ControlError> {
        let p = Path::from(path);
        let Some(dir) = &self.local else {
            let opts = PutOptions {
                mode: PutMode::Update(object_store::UpdateVersion {
                    e_tag: expected.e_tag.clone(),
                    version: expected.version.clone(),
                }),
                ..PutOptions::default()
            };
            self.store
                .put_opts(&p, PutPayload::from(data), opts)
                .await
                .map_err(|e| self.fail(&p, e))?;
            return Ok(());
        };
        let lock_path = dir.join(".cas.lock");
        let lock = tokio::task::spawn_blocking(move || {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)?;
            f.lock()?;
            Ok::<_, std::io::Error>(f)
        })
        .await
        .map_err(|e| ControlError::BadLocation {
            uri: dir.display().to_string(),
            reason: e.to_string(),
        })?
        .map_err(|e| ControlError::BadLocation {
            uri: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let current = match self.store.head(&p).await {
            Ok(m) => Some(ObjectVersion {
                e_tag: m.e_tag,
                version: m.version,
            }),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => return Err(self.fail(&p, e)),
        };
        if current.as_ref() != Some(expected) {
            return Err(ControlError::Precondition {
                path: path.to_string(),
            });
        }
        let r = self.put(path, data).await;
        drop(lock);
        r
    }

    /// Deletes every object under `prefix`; returns how many.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, ControlError> {
        let paths = self.list(prefix).await?;
        for p in &paths {
            self.delete(p).await?;
        }
        Ok(paths.len())
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
            .map_err(|e| self.fail(&p, e))?;
        out.sort();
        Ok(out)
    }
}

/// Plain byte vectors: control objects are small JSON documents.
pub mod bytes_vec {
    pub type Bytes = Vec<u8>;
}

#[cfg(test)]
mod contract {
    //! The storage contract, run against every backend.
    use super::*;

    async fn backends() -> Vec<(&'static str, ControlStore, Option<tempfile::TempDir>)> {
        let dir = tempfile::tempdir().expect("tmp");
        let local = ControlStore::local(dir.path()).expect("local");
        vec![
            ("memory", ControlStore::memory(), None),
            ("local", local, Some(dir)),
            ("s3", s3_store(), None),
        ]
    }

    /// The S3-compatible server of this test process: `scripts/s3_test_server.py`
    /// (moto) under the Python `OMNIGRAPH_MOTO_PYTHON` names, else `python3`,
    /// started once on 127.0.0.1 at an OS-chosen port. It exits when this
    /// process does (its stdin, held here, closes). Without moto the
    /// contract fails rather than skipping its s3 backend.
    struct S3Server {
        port: u16,
        _stdin: std::process::ChildStdin,
        /// Kept, never waited on: the server outlives every test and ends
        /// with this process.
        _child: std::process::Child,
    }

    const TEST_BUCKET: &str = "omnigraph-test";

    fn s3_server() -> &'static S3Server {
        use std::io::BufRead;
        static SERVER: std::sync::OnceLock<S3Server> = std::sync::OnceLock::new();
        SERVER.get_or_init(|| {
            let python =
                std::env::var_os("OMNIGRAPH_MOTO_PYTHON").unwrap_or_else(|| "python3".into());
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/s3_test_server.py");
            let mut child = std::process::Command::new(&python)
                .arg(script)
                .arg(TEST_BUCKET)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("starting {python:?} {script}: {e}"));
            let mut line = String::new();
            std::io::BufReader::new(child.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("read the server's port");
            let port = line.trim().parse().unwrap_or_else(|_| {
                panic!(
                    "the S3 test server ({python:?} {script}) did not print its port \
                         (got {line:?}); it needs moto: `python3 -m venv V && \
                         V/bin/pip install 'moto[server]==5.2.5'`, then \
                         OMNIGRAPH_MOTO_PYTHON=V/bin/python (.ci/run does this)"
                )
            });
            S3Server {
                port,
                _stdin: child.stdin.take().expect("stdin"),
                _child: child,
            }
        })
    }

    /// A store under a fresh prefix of the test bucket, so tests sharing
    /// the server never see each other's objects.
    fn s3_store_at(prefix: &str) -> ControlStore {
        let server = s3_server();
        let uri = format!("s3://{TEST_BUCKET}/{prefix}");
        ControlStore::s3(
            &uri,
            [
                ("aws_endpoint", format!("http://127.0.0.1:{}", server.port)),
                ("allow_http", "true".to_string()),
                ("aws_access_key_id", "test".to_string()),
                ("aws_secret_access_key", "test".to_string()),
                ("aws_region", "us-east-1".to_string()),
            ],
        )
        .expect("s3 store")
    }

    fn s3_store() -> ControlStore {
        s3_store_at(&format!("contract-{}", ulid::Ulid::new()))
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("rt")
    }

    #[test]
    fn create_if_absent_has_exactly_one_winner_and_reads_back() {
        rt().block_on(async {
            for (name, store, _keep) in backends().await {
                let tasks: Vec<_> = (0..16)
                    .map(|i| {
                        let s = store.clone();
                        tokio::spawn(async move { s.create("x/claim", vec![i]).await })
                    })
                    .collect();
                let mut winners = Vec::new();
                for (i, t) in tasks.into_iter().enumerate() {
                    match t.await.expect("join") {
                        Ok(()) => winners.push(i as u8),
                        Err(ControlError::AlreadyExists { .. }) => {}
                        Err(e) => panic!("{name}: {e}"),
                    }
                }
                assert_eq!(winners.len(), 1, "{name}: winners {winners:?}");
                // The acknowledged write is what a reader sees.
                assert_eq!(store.get("x/claim").await.expect("get"), winners, "{name}");
            }
        });
    }

    #[test]
    fn put_get_list_delete_and_delete_prefix() {
        rt().block_on(async {
            for (name, store, _keep) in backends().await {
                assert!(store.get_opt("a/1").await.expect("get").is_none(), "{name}");
                assert!(matches!(
                    store.get("a/1").await,
                    Err(ControlError::NotFound { .. })
                ));
                store.put("a/1", b"one".to_vec()).await.expect("put");
                store.put("a/1", b"uno".to_vec()).await.expect("replace");
                store.put("a/2", b"two".to_vec()).await.expect("put");
                store.put("b/1", b"b".to_vec()).await.expect("put");
                assert_eq!(store.get("a/1").await.expect("get"), b"uno", "{name}");
                assert!(store.exists("a/2").await.expect("exists"), "{name}");
                assert_eq!(
                    store.list("a/").await.expect("list"),
                    ["a/1", "a/2"],
                    "{name}"
                );
                store.delete("a/2").await.expect("delete");
                store.delete("a/2").await.expect("delete missing is fine");
                assert_eq!(store.list("a/").await.expect("list"), ["a/1"], "{name}");
                assert_eq!(
                    store.delete_prefix("a/").await.expect("prefix"),
                    1,
                    "{name}"
                );
                assert!(store.list("a/").await.expect("list").is_empty(), "{name}");
                assert_eq!(store.list("b/").await.expect("list"), ["b/1"], "{name}");
            }
        });
    }

    #[test]
    fn replace_if_is_compare_and_swap_with_one_winner() {
        rt().block_on(async {
            for (name, store, _keep) in backends().await {
                store.put("s/state", b"v0".to_vec()).await.expect("put");
                let (_, v0) = store
                    .get_versioned("s/state")
                    .await
                    .expect("get")
                    .expect("some");
                store
                    .replace_if("s/state", &v0, b"v1".to_vec())
                    .await
                    .expect("cas");
                // The version we read is stale now.
                assert!(
                    matches!(
                        store.replace_if("s/state", &v0, b"v2".to_vec()).await,
                        Err(ControlError::Precondition { .. })
                    ),
                    "{name}"
                );
                assert_eq!(store.get("s/state").await.expect("get"), b"v1", "{name}");
                let (_, v1) = store
                    .get_versioned("s/state")
                    .await
                    .expect("get")
                    .expect("some");
                let tasks: Vec<_> = (0..8u8)
                    .map(|i| {
                        let s = store.clone();
                        let v = v1.clone();
                        tokio::spawn(async move { s.replace_if("s/state", &v, vec![i]).await })
                    })
                    .collect();
                let mut ok = 0;
                for t in tasks {
                    match t.await.expect("join") {
                        Ok(()) => ok += 1,
                        Err(ControlError::Precondition { .. }) => {}
                        Err(e) => panic!("{name}: {e}"),
                    }
                }
                assert_eq!(ok, 1, "{name}");
            }
        });
    }

    #[test]
    fn s3_prefixes_are_separate_graph_roots() {
        rt().block_on(async {
            let (a, b) = (s3_store(), s3_store());
            a.put("m/1", b"a".to_vec()).await.expect("put a");
            b.create("m/1", b"b".to_vec()).await.expect("b's own m/1");
            assert_eq!(a.get("m/1").await.expect("get a"), b"a");
            assert_eq!(b.list("m/").await.expect("list b"), ["m/1"]);
            assert_eq!(a.delete_prefix("m/").await.expect("delete a"), 1);
            assert_eq!(b.get("m/1").await.expect("b intact"), b"b");
        });
    }

    #[test]
    fn s3_locations_and_options_are_checked() {
        let err = |uri: &str, opts: &[(&str, &str)]| match ControlStore::s3(
            uri,
            opts.iter().map(|(k, v)| (*k, v.to_string())),
        ) {
            Err(ControlError::BadLocation { reason, .. }) => reason,
            Err(e) => panic!("{uri}: unexpected {e}"),
            Ok(_) => panic!("{uri}: accepted"),
        };
        assert!(err("file:///tmp/x", &[]).contains("s3://<bucket>"));
        assert!(err("s3://", &[]).contains("bucket name is empty"));
        assert!(err("s3:///prefix", &[]).contains("bucket name is empty"));
        assert!(err("s3://b/p", &[("aws_endpiont", "http://x")]).contains("aws_endpiont"));
        assert!(err("s3://b/p", &[("aws_conditional_put", "disabled")]).contains("If-None-Match"));
        // A well-formed location builds without contacting anything.
        ControlStore::s3(
            "s3://bucket/some/prefix/",
            [
                ("aws_region", "eu-west-1"),
                ("aws_access_key_id", "k"),
                ("aws_secret_access_key", "s"),
            ],
        )
        .expect("valid");
    }
}
