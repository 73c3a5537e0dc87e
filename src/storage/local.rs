//! Local files for the commit turn without thread hops: an
//! [`ObjectStore`] over the local file system ([`LocalFileSystem`]) whose
//! puts run on the calling thread when that thread has said it may block
//! ([`allow_inline_io`]; the server's commit runtime does), and go to
//! `LocalFileSystem` (tokio's blocking pool) everywhere else.
//!
//! Why: Lance writes local files through tokio's blocking pool, several
//! hops per file (`create_dir_all`, `tempfile`, each write, the rename),
//! and each member of a group's chain writes two (its transaction file and
//! its manifest); a hop across CPUs costs about 12 µs of CPU here, one on
//! the same CPU about 3 µs, a small write on the thread itself about 2 µs
//! (`omnigraph-bench hops`). Measured: one caller's commits 439–465 →
//! 498–531 per second, 16 callers' 1,191–1,198 → 1,180–1,232
//! (docs/performance.md, "Commit turns without thread hops"). The fenced
//! handles the commit turn opens ([`super::table`]'s `open_fenced`) reach
//! their files through this store, addressed as Lance's
//! `file-object-store` scheme (the local file system driven like an object
//! store: one `put` per small file instead of a local writer), so a turn's
//! transaction files and manifests are each one write and
//! one rename (or link) on the commit thread.
//!
//! A put writes a staging file beside its target (`<name>#<digits>`, a
//! name `LocalFileSystem`'s listings skip as its own staging files), then
//! renames it over the target (`PutMode::Overwrite`) or links it to the
//! target and removes it (`PutMode::Create`: an existing target is
//! `Error::AlreadyExists`, the create-if-absent the fence relies on). The
//! e-tag is `LocalFileSystem`'s (inode, modification time in µs, size), so
//! a manifest's e-tag from the commit matches a later read's. Listings
//! come sorted by path: Lance takes a store handed to it by URL to list in
//! lexical order, as object stores do, and reads a table's newest version
//! off the first entry of `_versions/` (so it writes no version hint
//! through such a store either; local readers that open a table by path
//! read the directory instead). Other operations, and puts with other
//! modes or attributes, go to `LocalFileSystem` unchanged.

use std::cell::Cell;
use std::fmt;
use std::io::Write;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

thread_local! {
    static INLINE: Cell<bool> = const { Cell::new(false) };
}

/// Lets [`InlineLocal`] put files on this thread without handing them to
/// tokio's blocking pool. For threads whose only work is the commit turn
/// (the server's commit runtime calls it on each of its threads): a small
/// local write there costs microseconds, and nothing else waits on the
/// thread meanwhile.
pub fn allow_inline_io() {
    INLINE.with(|c| c.set(true));
}

fn inline_here() -> bool {
    INLINE.with(Cell::get)
}

/// The store (see the module docs). One per process is enough; it holds
/// no state but `LocalFileSystem`'s configuration.
#[derive(Debug)]
pub struct InlineLocal {
    fs: LocalFileSystem,
}

impl InlineLocal {
    /// Over the whole local file system (absolute paths), as Lance's own
    /// local store.
    pub fn new() -> Self {
        Self {
            fs: LocalFileSystem::new(),
        }
    }
}

impl InlineLocal {
    /// Under `dir` (object paths relative to it), as `LocalFileSystem::
    /// new_with_prefix`. Errors: `dir` cannot be made absolute.
    pub fn with_prefix(dir: &std::path::Path) -> Result<Self> {
        Ok(Self {
            fs: LocalFileSystem::new_with_prefix(dir)?,
        })
    }
}

impl Default for InlineLocal {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for InlineLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InlineLocal({})", self.fs)
    }
}

/// The shared store.
pub fn shared() -> Arc<InlineLocal> {
    static STORE: std::sync::OnceLock<Arc<InlineLocal>> = std::sync::OnceLock::new();
    STORE.get_or_init(|| Arc::new(InlineLocal::new())).clone()
}

fn io_error(path: &std::path::Path, e: std::io::Error) -> object_store::Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => object_store::Error::NotFound {
            path: path.display().to_string(),
            source: Box::new(e),
        },
        std::io::ErrorKind::AlreadyExists => object_store::Error::AlreadyExists {
            path: path.display().to_string(),
            source: Box::new(e),
        },
        _ => object_store::Error::Generic {
            store: "InlineLocal",
            source: format!("{}: {e}", path.display()).into(),
        },
    }
}

/// `LocalFileSystem`'s e-tag for a file's metadata (object_store 0.14,
/// `local::get_etag`): inode, modification time in µs and size, in hex.
fn e_tag(m: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(m);
    #[cfg(not(unix))]
    let inode = 0u64;
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{inode:x}-{mtime:x}-{:x}\"", m.len())
}

/// Writes `payload` to `target` through a staging file beside it, now, on
/// this thread: renamed over it, or with `create` linked to it (refused
/// when it exists). Parent directories are made when missing.
fn put_now(target: &std::path::Path, payload: &PutPayload, create: bool) -> Result<PutResult> {
    let mut staging = target.as_os_str().to_owned();
    // Digits only after `#`: `LocalFileSystem`'s listings skip such names
    // as staging files, so one a crash leaves is never read as an object.
    staging.push(format!("#{}", ulid::Ulid::new().0));
    let staging = std::path::PathBuf::from(staging);
    let open = || {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&staging)
    };
    let mut file = match open() {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = target.parent() {
                std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
            }
            open().map_err(|e| io_error(&staging, e))?
        }
        Err(e) => return Err(io_error(&staging, e)),
    };
    let written = payload
        .iter()
        .try_for_each(|chunk| file.write_all(chunk))
        .and_then(|()| file.metadata());
    drop(file);
    let meta = match written {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_file(&staging);
            return Err(io_error(&staging, e));
        }
    };
    let published = if create {
        let linked = std::fs::hard_link(&staging, target);
        let _ = std::fs::remove_file(&staging);
        linked
    } else {
        std::fs::rename(&staging, target).inspect_err(|_| {
            let _ = std::fs::remove_file(&staging);
        })
    };
    published.map_err(|e| io_error(target, e))?;
    Ok(PutResult {
        e_tag: Some(e_tag(&meta)),
        version: None,
        extensions: Default::default(),
    })
}

/// `listing` sorted by path, as an object store lists. Lance takes a
/// store it is handed by URL (not under the `file` scheme) to list in
/// lexical order, as S3 and GCS do, and reads a table's newest version
/// off the first entry of `_versions/` (lance-table 14,
/// `current_manifest_path`); a directory's order is the file system's.
fn in_lexical_order(
    listing: BoxStream<'static, Result<ObjectMeta>>,
) -> BoxStream<'static, Result<ObjectMeta>> {
    futures::stream::once(async move {
        let mut all: Vec<ObjectMeta> = listing.try_collect().await?;
        all.sort_by(|a, b| a.location.cmp(&b.location));
        Ok::<_, object_store::Error>(futures::stream::iter(all.into_iter().map(Ok)))
    })
    .try_flatten()
    .boxed()
}

#[async_trait]
impl ObjectStore for InlineLocal {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let create = match opts.mode {
            PutMode::Overwrite => false,
            PutMode::Create => true,
            PutMode::Update(_) => return self.fs.put_opts(location, payload, opts).await,
        };
        if !inline_here() || !opts.attributes.is_empty() {
            return self.fs.put_opts(location, payload, opts).await;
        }
        let target = self.fs.path_to_filesystem(location)?;
        put_now(&target, &payload, create)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.fs.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.fs.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.fs.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.fs.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        in_lexical_order(self.fs.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        in_lexical_order(self.fs.list_with_offset(prefix, offset))
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let mut r = self.fs.list_with_delimiter(prefix).await?;
        r.objects.sort_by(|a, b| a.location.cmp(&b.location));
        r.common_prefixes.sort();
        Ok(r)
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.fs.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.fs.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    fn location(dir: &tempfile::TempDir, name: &str) -> Path {
        Path::from_absolute_path(dir.path().join(name)).expect("absolute path")
    }

    /// On a thread that allows it and on one that does not, a put lands,
    /// a create-if-absent of an existing object is refused as
    /// `AlreadyExists` and leaves it as it was, no staging file is left,
    /// and the e-tag is the one a later read reports.
    #[tokio::test(flavor = "current_thread")]
    async fn puts_inline_and_through_the_pool_behave_alike() {
        for inline in [true, false] {
            INLINE.with(|c| c.set(inline));
            let dir = tempfile::tempdir().expect("tempdir");
            let store = InlineLocal::new();
            let at = location(&dir, "a/b/obj");
            let put = store
                .put_opts(&at, PutPayload::from_static(b"one"), PutOptions::default())
                .await
                .expect("put");
            let read = store.get(&at).await.expect("get");
            assert_eq!(put.e_tag, read.meta.e_tag, "inline={inline}");
            assert_eq!(&read.bytes().await.expect("bytes")[..], b"one");
            let again = store
                .put_opts(
                    &at,
                    PutPayload::from_static(b"two"),
                    PutOptions {
                        mode: PutMode::Create,
                        ..Default::default()
                    },
                )
                .await;
            assert!(
                matches!(again, Err(object_store::Error::AlreadyExists { .. })),
                "inline={inline}: {again:?}"
            );
            let kept = store
                .get(&at)
                .await
                .expect("get")
                .bytes()
                .await
                .expect("bytes");
            assert_eq!(&kept[..], b"one", "inline={inline}");
            store
                .put_opts(
                    &at,
                    PutPayload::from_static(b"three"),
                    PutOptions::default(),
                )
                .await
                .expect("overwrite");
            let names: Vec<String> = std::fs::read_dir(dir.path().join("a/b"))
                .expect("read_dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            assert_eq!(names, vec!["obj".to_string()], "inline={inline}");
        }
        INLINE.with(|c| c.set(false));
    }

    /// Listings come in path order whatever the directory's order.
    #[tokio::test(flavor = "current_thread")]
    async fn listings_are_in_lexical_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = InlineLocal::new();
        let names = ["m", "b", "z", "a", "q", "c"];
        for n in names {
            store
                .put_opts(
                    &location(&dir, &format!("v/{n}")),
                    PutPayload::from_static(b"x"),
                    PutOptions::default(),
                )
                .await
                .expect("put");
        }
        let base = Path::from_absolute_path(dir.path().join("v")).expect("absolute");
        let listed: Vec<String> = store
            .list(Some(&base))
            .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
            .try_collect()
            .await
            .expect("list");
        let mut sorted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        sorted.sort();
        assert_eq!(listed, sorted);
        let after: Vec<String> = store
            .list_with_offset(Some(&base), &location(&dir, "v/c"))
            .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
            .try_collect()
            .await
            .expect("list");
        assert_eq!(after, vec!["m", "q", "z"]);
        let delimited = store.list_with_delimiter(Some(&base)).await.expect("list");
        let objects: Vec<String> = delimited
            .objects
            .iter()
            .map(|m| m.location.filename().unwrap_or_default().to_string())
            .collect();
        assert_eq!(objects, sorted);
    }
}
