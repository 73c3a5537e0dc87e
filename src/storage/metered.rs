//! Storage-operation counting: a wrapper around any [`ObjectStore`] that
//! counts the requests a remote object store would bill (GET, HEAD, PUT,
//! LIST, DELETE, COPY) and the entries listings return, process-wide.
//!
//! Off by default and free when off (nothing is wrapped). [`enable`] turns
//! it on for every table and control store opened afterwards: Lance tables
//! through Lance's `WrappingObjectStore` hook (`ObjectStoreParams::
//! object_store_wrapper`, lance-io 14), control objects by wrapping the
//! store [`super::ControlStore`] holds. The benchmarks use it to show that
//! a warm write costs the same number of requests whatever the history.
//!
//! Counting rules, chosen to match what S3 bills: `get_opts` is one GET (or
//! one HEAD when `options.head`); `get_ranges` is one GET per range; a
//! multipart upload counts one PUT (its parts are not counted); each
//! listing call is one LIST, and `listed` adds the entries it returned, so
//! a listing that grows with history shows up even when the call count
//! does not; each deleted path is one DELETE; copy and rename are one COPY.
//!
//! Not seen: on a local filesystem Lance lists a table's `_versions/` with
//! `read_dir` rather than through the object store (resolving a dataset's
//! latest version does this), so such a listing is not counted; the write
//! path avoids it (`table::has_newer_version`), and `strace -e getdents64`
//! shows whether anything else does.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use lance::io::{ObjectStoreParams, WrappingObjectStore};
use object_store::list::{PaginatedListOptions, PaginatedListResult, PaginatedListStore};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use serde::Serialize;

static ENABLED: AtomicBool = AtomicBool::new(false);

struct Counters {
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    list: AtomicU64,
    listed: AtomicU64,
    delete: AtomicU64,
    copy: AtomicU64,
}

static COUNTERS: Counters = Counters {
    get: AtomicU64::new(0),
    head: AtomicU64::new(0),
    put: AtomicU64::new(0),
    list: AtomicU64::new(0),
    listed: AtomicU64::new(0),
    delete: AtomicU64::new(0),
    copy: AtomicU64::new(0),
};

fn bump(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// `OMNIGRAPH_METER_TRACE=1` prints every metered request (class and
/// path) to stderr, to see where a count comes from; `stack` prints each
/// with the backtrace of the task that asked (the chain of `async fn`
/// polls, which names the caller even in a release build's symbols).
fn trace(class: &str, path: &dyn fmt::Display) {
    static ON: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    let on = *ON.get_or_init(|| match std::env::var("OMNIGRAPH_METER_TRACE").as_deref() {
        Ok("1") => 1,
        Ok("stack") => 2,
        _ => 0,
    });
    if on > 0 {
        eprintln!("storage {class} {path}");
    }
    if on > 1 {
        eprintln!("{}", std::backtrace::Backtrace::force_capture());
    }
}

/// Request counts since the process started (or between two snapshots,
/// by subtraction). `listed` is the number of entries listings returned,
/// not a request count; [`StorageOps::requests`] leaves it out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StorageOps {
    pub get: u64,
    pub head: u64,
    pub put: u64,
    pub list: u64,
    pub listed: u64,
    pub delete: u64,
    pub copy: u64,
}

impl StorageOps {
    /// All requests: GET + HEAD + PUT + LIST + DELETE + COPY.
    pub fn requests(&self) -> u64 {
        self.get + self.head + self.put + self.list + self.delete + self.copy
    }

    /// `self - earlier`, field by field (saturating).
    pub fn since(&self, earlier: &StorageOps) -> StorageOps {
        StorageOps {
            get: self.get.saturating_sub(earlier.get),
            head: self.head.saturating_sub(earlier.head),
            put: self.put.saturating_sub(earlier.put),
            list: self.list.saturating_sub(earlier.list),
            listed: self.listed.saturating_sub(earlier.listed),
            delete: self.delete.saturating_sub(earlier.delete),
            copy: self.copy.saturating_sub(earlier.copy),
        }
    }
}

impl fmt::Display for StorageOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GET {} HEAD {} PUT {} LIST {} (entries {}) DELETE {} COPY {}",
            self.get, self.head, self.put, self.list, self.listed, self.delete, self.copy
        )
    }
}

/// Turns counting on for stores opened from now on (process-wide; there is
/// no way back, which is what a benchmark process wants).
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

/// Whether [`enable`] was called.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The counts so far.
pub fn snapshot() -> StorageOps {
    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    StorageOps {
        get: l(&COUNTERS.get),
        head: l(&COUNTERS.head),
        put: l(&COUNTERS.put),
        list: l(&COUNTERS.list),
        listed: l(&COUNTERS.listed),
        delete: l(&COUNTERS.delete),
        copy: l(&COUNTERS.copy),
    }
}

/// Lance store parameters that meter every request, when counting is on.
pub fn lance_store_params() -> Option<ObjectStoreParams> {
    enabled().then(|| ObjectStoreParams {
        object_store_wrapper: Some(Arc::new(MeteredWrapper)),
        ..ObjectStoreParams::default()
    })
}

/// `store` itself, or `store` metered when counting is on.
pub fn wrap(store: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
    if enabled() {
        Arc::new(MeteredStore { inner: store })
    } else {
        store
    }
}

/// Lance's hook: meters the stores Lance opens for a dataset, and keeps
/// its pushed-down paginated listing (metered too).
#[derive(Debug)]
pub struct MeteredWrapper;

impl WrappingObjectStore for MeteredWrapper {
    fn wrap(&self, _store_prefix: &str, original: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
        Arc::new(MeteredStore { inner: original })
    }

    fn wrap_paginated(
        &self,
        _store_prefix: &str,
        original: Arc<dyn PaginatedListStore>,
    ) -> Option<Arc<dyn PaginatedListStore>> {
        Some(Arc::new(MeteredLister { inner: original }))
    }
}

struct MeteredLister {
    inner: Arc<dyn PaginatedListStore>,
}

#[async_trait]
impl PaginatedListStore for MeteredLister {
    async fn list_paginated(
        &self,
        prefix: Option<&str>,
        opts: PaginatedListOptions,
    ) -> Result<PaginatedListResult> {
        bump(&COUNTERS.list, 1);
        trace("LIST", &prefix.unwrap_or(""));
        let r = self.inner.list_paginated(prefix, opts).await?;
        bump(
            &COUNTERS.listed,
            (r.result.objects.len() + r.result.common_prefixes.len()) as u64,
        );
        Ok(r)
    }
}

/// An [`ObjectStore`] that counts and forwards every call.
#[derive(Debug)]
pub struct MeteredStore {
    inner: Arc<dyn ObjectStore>,
}

impl MeteredStore {
    /// Meters `inner` whether or not [`enable`] was called.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }
}

impl fmt::Display for MeteredStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Metered({})", self.inner)
    }
}

fn counted_listing(
    prefix: Option<&Path>,
    s: BoxStream<'static, Result<ObjectMeta>>,
) -> BoxStream<'static, Result<ObjectMeta>> {
    bump(&COUNTERS.list, 1);
    trace("LIST", &prefix.map(Path::as_ref).unwrap_or(""));
    s.inspect(|r| {
        if r.is_ok() {
            bump(&COUNTERS.listed, 1);
        }
    })
    .boxed()
}

#[async_trait]
impl ObjectStore for MeteredStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        bump(&COUNTERS.put, 1);
        trace("PUT", location);
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        bump(&COUNTERS.put, 1);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            bump(&COUNTERS.head, 1);
            trace("HEAD", location);
        } else {
            bump(&COUNTERS.get, 1);
            trace("GET", location);
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        bump(&COUNTERS.get, ranges.len() as u64);
        trace(&format!("GET x{}", ranges.len()), location);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(
            locations
                .inspect(|p| {
                    bump(&COUNTERS.delete, 1);
                    if let Ok(p) = p {
                        trace("DELETE", p);
                    }
                })
                .boxed(),
        )
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        counted_listing(prefix, self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        counted_listing(prefix, self.inner.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        bump(&COUNTERS.list, 1);
        trace("LIST", &prefix.map(Path::as_ref).unwrap_or(""));
        let r = self.inner.list_with_delimiter(prefix).await?;
        bump(
            &COUNTERS.listed,
            (r.objects.len() + r.common_prefixes.len()) as u64,
        );
        Ok(r)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        bump(&COUNTERS.copy, 1);
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        bump(&COUNTERS.copy, 1);
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::ObjectStoreExt;

    /// Each call counts once in its class; listings add their entries;
    /// deletes count per path. Other tests may meter concurrently, so the
    /// deltas are checked as lower bounds on a store only this test uses,
    /// and exactly on the classes this test alone touches through it.
    #[test]
    fn every_request_is_counted_in_its_class() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(counted());
    }

    async fn counted() {
        let store = MeteredStore::new(Arc::new(object_store::memory::InMemory::new()));
        let before = snapshot();
        for i in 0..3 {
            store
                .put(
                    &Path::from(format!("d/o{i}")),
                    PutPayload::from_static(b"x"),
                )
                .await
                .expect("put");
        }
        store.get(&Path::from("d/o0")).await.expect("get");
        store.head(&Path::from("d/o1")).await.expect("head");
        let listed: Vec<_> = store
            .list(Some(&Path::from("d")))
            .try_collect()
            .await
            .expect("list");
        assert_eq!(listed.len(), 3);
        store.delete(&Path::from("d/o2")).await.expect("delete");
        let d = snapshot().since(&before);
        assert!(d.put >= 3, "{d}");
        assert!(d.get >= 1 && d.head >= 1, "{d}");
        assert!(d.list >= 1 && d.listed >= 3, "{d}");
        assert!(d.delete >= 1, "{d}");
        assert!(d.requests() >= 7, "{d}");
    }

    #[test]
    fn since_subtracts_each_class() {
        let a = StorageOps {
            get: 5,
            head: 1,
            put: 3,
            list: 2,
            listed: 40,
            delete: 1,
            copy: 0,
        };
        let b = StorageOps {
            get: 2,
            put: 1,
            listed: 10,
            ..StorageOps::default()
        };
        let d = a.since(&b);
        assert_eq!((d.get, d.put, d.listed, d.head), (3, 2, 30, 1));
        assert_eq!(d.requests(), 3 + 1 + 2 + 2 + 1);
    }
}
