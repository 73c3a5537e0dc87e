//! A `CommitHandler` that lets a commit land only as one given version
//! (the fence of docs/architecture.md, "Fencing and leases"): Lance writes version
//! `N + 1` with create-if-absent, so exactly one writer gets a version
//! number, and this handler refuses every number but the expected one.

use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU64};

use futures::StreamExt;

use lance::io::ObjectStore;
use lance_table::format::{IndexMetadata, Manifest, Transaction};
use lance_table::io::commit::{
    CommitError, CommitHandler, ManifestLocation, ManifestNamingScheme, ManifestWriter,
};
use object_store::path::Path;

tokio::task_local! {
    /// The version a commit running in this task knows to be its Lance
    /// branch's newest ([`super::commit_staged`] sets it around Lance's
    /// commit): a fenced handler's listing of the versions after it
    /// answers empty, as the armed shortcut does. It keeps that shortcut
    /// for every commit of a group's chain on one table, whose datasets
    /// carry the handler they were opened with (its one armed listing used
    /// up by the chain's first commit): without it, each later member's
    /// commit read the version hint and probed for newer versions (a
    /// 16-caller group-commit profile, docs/performance.md, "Inserts
    /// staged as appends").
    pub(super) static KNOWN_HEAD: u64;

    /// Set (true) around a commit that another commit of the same task
    /// follows on the same table at once (a member of a group's chain
    /// other than its last, [`super::without_version_hint`]): the fence
    /// writes its manifest as Lance's conditional-put handler does but
    /// leaves out Lance's version hint (`_versions/latest_version_hint.json`),
    /// which the chain's last commit writes. The hint only spares readers
    /// of stores without ordered listings a listing (lance-table
    /// `write_version_hint`: best effort, readers probe upward from it),
    /// and a reader meeting it one chain behind probes those versions by
    /// name. Each hint is a file written by blocking tasks: 8.6% of the
    /// commit threads' samples in a 16-caller profile.
    pub(super) static SKIP_HINT: bool;
}

/// Delegates to `inner` (Lance's handler for the URI) with two
/// changes, each optional: with `expected`, a commit lands only as that
/// version (the fence), and a further commit through the same handler
/// only as the version after its own last one; with `head`, the next
/// listing of versions after `head` answers empty, because the caller
/// knows `head` is the newest published version and a version someone
/// else wrote after it makes the fenced commit refuse instead of being
/// missed (this spares a commit Lance's read of the version hint and its
/// probes). A listing from a little before `head` names the versions up
/// to `head` one by one (a HEAD each) instead of listing `_versions/`: a
/// commit rebased from an older read version (upkeep prepared while
/// writes went on) then costs no LIST on object storage.
///
/// The shortcut holds for one listing, then again after each commit
/// through this handler (whose version was the newest when it landed):
/// Lance hands a dataset's handler on to the datasets a commit or
/// checkout derives from it, which may be kept and used later, when
/// `head` is no longer the newest. A stale answer there can only make
/// a commit try a version that is taken, which create-if-absent refuses
/// and the retry lists for real.
#[derive(Debug)]
pub(super) struct Fence {
    inner: Arc<dyn CommitHandler>,
    expected: Option<AtomicU64>,
    head: AtomicU64,
    armed: AtomicBool,
    /// `inner` is Lance's `ConditionalPutCommitHandler` (local paths and
    /// object stores; told by its `Debug` name), whose commit the fence
    /// can repeat without the version hint ([`HintlessPut`], [`SKIP_HINT`]).
    conditional_put: bool,
}

/// Lance's `ConditionalPutCommitHandler` (lance-table 14) without the
/// last step of its commit, the version hint ([`SKIP_HINT`]): the
/// manifest encoded in memory, then written to its version's path with
/// create-if-absent (`PutMode::Create`), an existing one being a commit
/// conflict. Only [`Fence::commit`] calls it.
#[derive(Debug)]
struct HintlessPut;

#[async_trait::async_trait]
impl CommitHandler for HintlessPut {
    async fn commit(
        &self,
        manifest: &mut Manifest,
        indices: Option<Vec<IndexMetadata>>,
        base_path: &Path,
        object_store: &ObjectStore,
        manifest_writer: ManifestWriter,
        naming_scheme: ManifestNamingScheme,
        transaction: Option<Transaction>,
    ) -> Result<ManifestLocation, CommitError> {
        let path = naming_scheme.manifest_path(base_path, manifest.version);
        let memory = ObjectStore::memory();
        let staged = Path::from("manifest");
        manifest_writer(&memory, manifest, indices, &staged, transaction).await?;
        let bytes = memory.read_one_all(&staged).await?;
        let size = bytes.len() as u64;
        let put = object_store
            .inner
            .put_opts(
                &path,
                bytes.into(),
                object_store::PutOptions {
                    mode: object_store::PutMode::Create,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| match e {
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. } => CommitError::CommitConflict,
                e => CommitError::OtherError(e.into()),
            })?;
        Ok(ManifestLocation {
            version: manifest.version,
            path,
            size: Some(size),
            naming_scheme,
            e_tag: put.e_tag,
            identity: None,
        })
    }
}

/// How many versions behind the known head a listing may start for
/// [`Fence`] to name each version rather than list them.
const RESOLVE_BY_NAME_MAX: u64 = 64;

impl Fence {
    /// `expected`: the only version a commit may land as (then the one
    /// after each own commit); `head`: the newest published version, as
    /// far as the caller knows.
    pub(super) fn new(
        inner: Arc<dyn CommitHandler>,
        expected: Option<u64>,
        head: Option<u64>,
    ) -> Self {
        let conditional_put = format!("{inner:?}") == "ConditionalPutCommitHandler";
        Self {
            inner,
            conditional_put,
            expected: expected.map(AtomicU64::new),
            head: AtomicU64::new(head.unwrap_or(0)),
            armed: AtomicBool::new(head.is_some()),
        }
    }
}

#[async_trait::async_trait]
impl CommitHandler for Fence {
    fn is_version_not_found_definitive(&self) -> bool {
        self.inner.is_version_not_found_definitive()
    }

    fn propagate_commit_error_after_success(&self) -> bool {
        self.inner.propagate_commit_error_after_success()
    }

    async fn resolve_latest_location(
        &self,
        base_path: &Path,
        object_store: &ObjectStore,
    ) -> lance::Result<ManifestLocation> {
        self.inner
            .resolve_latest_location(base_path, object_store)
            .await
    }

    async fn resolve_version_location(
        &self,
        base_path: &Path,
        version: u64,
        object_store: &dyn object_store::ObjectStore,
    ) -> lance::Result<ManifestLocation> {
        self.inner
            .resolve_version_location(base_path, version, object_store)
            .await
    }

    async fn version_exists(
        &self,
        base_path: &Path,
        version: u64,
        object_store: &dyn object_store::ObjectStore,
        naming_scheme: ManifestNamingScheme,
    ) -> lance::Result<bool> {
        self.inner
            .version_exists(base_path, version, object_store, naming_scheme)
            .await
    }

    fn list_detached_manifest_locations<'a>(
        &self,
        base_path: &Path,
        object_store: &'a ObjectStore,
    ) -> futures::stream::BoxStream<'a, lance::Result<ManifestLocation>> {
        self.inner
            .list_detached_manifest_locations(base_path, object_store)
    }

    fn list_manifest_locations<'a>(
        &self,
        base_path: &Path,
        object_store: &'a ObjectStore,
        sorted_descending: bool,
    ) -> futures::stream::BoxStream<'a, lance::Result<ManifestLocation>> {
        self.inner
            .list_manifest_locations(base_path, object_store, sorted_descending)
    }

    fn list_manifest_locations_since<'a>(
        &self,
        base_path: &Path,
        object_store: &'a ObjectStore,
        since_version: u64,
    ) -> futures::stream::BoxStream<'a, lance::Result<ManifestLocation>> {
        // A commit whose caller vouches that `since_version` is the head
        // ([`KNOWN_HEAD`]): nothing after it to list.
        if KNOWN_HEAD
            .try_with(|h| *h == since_version)
            .unwrap_or(false)
        {
            return futures::stream::empty().boxed();
        }
        // Whatever it asks for, a listing uses up the shortcut.
        if self.armed.swap(false, SeqCst) {
            let head = self.head.load(SeqCst);
            if since_version == head {
                return futures::stream::empty().boxed();
            }
            if since_version < head && head - since_version <= RESOLVE_BY_NAME_MAX {
                // Newest first: Lance takes the first as the latest.
                let inner = self.inner.clone();
                let base = base_path.clone();
                let store = object_store.inner.clone();
                return futures::stream::iter((since_version + 1..=head).rev())
                    .map(move |v| {
                        let (inner, base, store) = (inner.clone(), base.clone(), store.clone());
                        async move {
                            inner
                                .resolve_version_location(&base, v, store.as_ref())
                                .await
                        }
                    })
                    .buffered(8)
                    .boxed();
            }
        }
        self.inner
            .list_manifest_locations_since(base_path, object_store, since_version)
    }

    async fn commit(
        &self,
        manifest: &mut Manifest,
        indices: Option<Vec<IndexMetadata>>,
        base_path: &Path,
        object_store: &ObjectStore,
        manifest_writer: ManifestWriter,
        naming_scheme: ManifestNamingScheme,
        transaction: Option<Transaction>,
    ) -> Result<ManifestLocation, CommitError> {
        let want = self.expected.as_ref().map(|e| e.load(SeqCst));
        if want.is_some_and(|v| v != manifest.version) {
            return Err(CommitError::CommitConflict);
        }
        let handler: &dyn CommitHandler =
            if self.conditional_put && SKIP_HINT.try_with(|s| *s).unwrap_or(false) {
                &HintlessPut
            } else {
                self.inner.as_ref()
            };
        let r = handler
            .commit(
                manifest,
                indices,
                base_path,
                object_store,
                manifest_writer,
                naming_scheme,
                transaction,
            )
            .await;
        // The fence moves with its own commits: an operation that
        // commits twice (a compaction reserves its fragment ids first)
        // lands both, in order, and nothing of anyone else's between.
        if r.is_ok()
            && let (Some(e), Some(v)) = (&self.expected, want)
        {
            e.store(v + 1, SeqCst);
        }
        // The version just landed was the newest: the next listing may
        // take the shortcut from it.
        if let Ok(loc) = &r {
            self.head.store(loc.version, SeqCst);
            self.armed.store(true, SeqCst);
        }
        r
    }

    // A fenced handler takes no predecessor-conditioned commits: Lance
    // then always calls `commit`, where the fence is.
    fn supports_predecessor_condition(&self) -> bool {
        self.expected.is_none() && self.inner.supports_predecessor_condition()
    }

    async fn forget_version(
        &self,
        base_path: &Path,
        version: u64,
        identity: &str,
    ) -> lance::Result<()> {
        self.inner
            .forget_version(base_path, version, identity)
            .await
    }

    async fn delete(&self, base_path: &Path) -> lance::Result<()> {
        self.inner.delete(base_path).await
    }
}
