//! The graph manifest: which version of every table each branch sees, each
//! branch's head commit; and the commit records that form the DAG.
//!
//! Layout under `<root>/_graph/` (Delta-log style, so a write's cost does not
//! grow with history):
//! - `manifest/v{N:020}.json` — immutable manifest version `N`. Publishing is
//!   one create-if-absent PUT of version `N+1`: exactly one writer wins; the
//!   loser re-reads and retries.
//! - `manifest/_latest` — a hint (`{"version": N}`) overwritten every eighth
//!   publish; readers start there and probe forward, so a stale hint costs a
//!   few requests, never a full listing. A [`ManifestStore`] remembers the
//!   newest manifest it read or published and probes only the version after.
//! - `commits/{ULID}.json` — one immutable record per commit: parents, branch,
//!   actor, time, message and the branch's table versions at that commit
//!   (which is what time travel reads).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use ulid::Ulid;

use super::EngineError;
use crate::storage::{ControlError, ControlStore};

/// The name of the branch that always exists.
pub const MAIN: &str = "main";

pub use super::ids::{CommitId, TableKey};

/// One table version as a branch sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRef {
    /// The Lance dataset version.
    pub version: u64,
    /// The Lance branch holding that version; `None` is the dataset's main line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lance_branch: Option<String>,
    /// Set on a version upkeep made (compaction, index segments: no row
    /// changed): the version whose rows it holds (docs/architecture.md,
    /// "Upkeep"). `None`: the version's own rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows_of: Option<u64>,
}

impl TableRef {
    /// The version whose rows this one holds: itself, or the version an
    /// upkeep rewrote.
    pub fn rows_version(&self) -> u64 {
        self.rows_of.unwrap_or(self.version)
    }

    /// Whether `a` and `b` hold the same rows: the same Lance branch and
    /// rows version, or both absent. What a write read is still what is
    /// there when only upkeep moved the table since.
    pub fn same_rows(a: Option<&TableRef>, b: Option<&TableRef>) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                a.lance_branch == b.lance_branch && a.rows_version() == b.rows_version()
            }
            _ => false,
        }
    }
}

/// A graph branch's state in one manifest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BranchState {
    pub head: CommitId,
    pub tables: BTreeMap<TableKey, TableRef>,
    /// The Lance branch this graph branch writes (`None` for `main`, which
    /// writes the datasets' main line). Unique per branch incarnation, so a
    /// deleted and recreated branch never reuses, or breaks, an old one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lance_branch: Option<String>,
}

/// One immutable manifest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u64,
    pub branches: BTreeMap<String, BranchState>,
    /// The accepted schema (`_graph/schema/{id}.json` and `.pg`); `None`:
    /// the schema `init` wrote (`_graph/catalog.json`, `schema.pg`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
}

/// One commit of the DAG.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    /// A ULID: sortable by creation time.
    pub id: CommitId,
    /// First parent is the branch's previous head; a merge has two.
    pub parents: Vec<CommitId>,
    pub branch: String,
    pub actor: String,
    /// Milliseconds since the epoch (UTC).
    pub timestamp_ms: i64,
    pub message: String,
    /// The branch's tables as of this commit.
    pub tables: BTreeMap<TableKey, TableRef>,
    /// The write (its recovery sidecar id) this commit published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_id: Option<String>,
    /// Set on commits published by recovery: `rolled_forward` or
    /// `rolled_back` (heal finishing or undoing an interrupted write), or
    /// `repair`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<String>,
    /// The schema id the graph had when this commit was published (see
    /// [`Manifest::schema`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The graph manifest version that published this commit (the members
    /// of one group commit share it); `None` in records of older builds.
    /// The API's `graph_manifest_version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest_version: Option<u64>,
}

fn manifest_path(v: u64) -> String {
    format!("manifest/v{v:020}.json")
}

const LATEST_HINT: &str = "manifest/_latest";

/// Publishes between two updates of the hint: a reader starting from the
/// hint probes at most this many versions forward.
const HINT_EVERY: u64 = 8;

fn commit_path(id: &str) -> String {
    format!("commits/{id}.json")
}

fn corrupt(path: &str, e: impl std::fmt::Display) -> EngineError {
    EngineError::Corrupt {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

/// Reads and publishes manifests and commit records.
#[derive(Debug, Clone)]
pub struct ManifestStore {
    control: ControlStore,
    /// The newest manifest this store (or a clone) read as the latest or
    /// published: what a warm read probes forward from.
    head: std::sync::Arc<std::sync::Mutex<Option<Manifest>>>,
    /// What this process's table commits inserted ([`super::ledger`]),
    /// shared by clones; forgotten when a manifest this store did not
    /// publish is met.
    inserted: std::sync::Arc<std::sync::Mutex<super::ledger::Ledger>>,
    /// Commit records read or written, by id (immutable once written, so
    /// never stale; at most [`RECORDS_KEPT`], emptied when full): a
    /// change-feed poll walks the first-parent chain from the head on
    /// every poll.
    records: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<CommitId, Commit>>>,
}

/// Commit records a [`ManifestStore`] keeps in memory (about 1 KiB each).
const RECORDS_KEPT: usize = 65_536;

impl ManifestStore {
    /// The control store the manifests live in.
    pub fn control(&self) -> &ControlStore {
        &self.control
    }

    pub fn new(control: ControlStore) -> Self {
        Self {
            control,
            head: Default::default(),
            inserted: Default::default(),
            records: Default::default(),
        }
    }

    /// The ledger of what this process's own table commits inserted
    /// ([`super::ledger`]). Errors: none; a poisoned lock yields `None`
    /// (callers then treat every version as unknown).
    pub fn inserted(&self) -> Option<std::sync::MutexGuard<'_, super::ledger::Ledger>> {
        self.inserted.lock().ok()
    }

    /// A manifest this store did not publish was met: another process
    /// (or another handle) wrote, so the ledger no longer vouches.
    fn met_foreign(&self) {
        if let Some(mut l) = self.inserted() {
            l.clear();
        }
    }

    /// The newest manifest this store has seen (read as the latest, or
    /// published), without a request; `None` before the first.
    pub fn known(&self) -> Option<Manifest> {
        self.head.lock().ok().and_then(|h| h.clone())
    }

    /// Remembers `m` as seen, unless a newer one already is.
    pub fn remember(&self, m: &Manifest) {
        if let Ok(mut h) = self.head.lock()
            && h.as_ref().is_none_or(|k| k.version < m.version)
        {
            *h = Some(m.clone());
        }
    }

    /// Reads manifest version `v`, `None` when it does not exist.
    pub async fn read(&self, v: u64) -> Result<Option<Manifest>, EngineError> {
        let path = manifest_path(v);
        match self.control.get_opt(&path).await? {
            None => Ok(None),
            Some(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| corrupt(&path, e)),
        }
    }

    /// The newest manifest: from the hint, probing forward.
    pub async fn latest(&self) -> Result<Manifest, EngineError> {
        let mut v = match self.control.get_opt(LATEST_HINT).await? {
            Some(b) => serde_json::from_slice::<serde_json::Value>(&b)
                .ok()
                .and_then(|j| j["version"].as_u64())
                .unwrap_or(1),
            None => self.highest_listed().await?,
        };
        let mut current = match self.read(v).await? {
            Some(m) => m,
            None => {
                // A hint can only be behind, never ahead; fall back to a listing.
                v = self.highest_listed().await?;
                self.read(v).await?.ok_or(EngineError::NotAGraph {
                    uri: "manifest".into(),
                })?
            }
        };
        while let Some(next) = self.read(current.version + 1).await? {
            current = next;
        }
        if self.known().is_none_or(|k| k.version < current.version) {
            self.met_foreign();
        }
        self.remember(&current);
        Ok(current)
    }

    /// The newest manifest, knowing `known` is published: probes the
    /// versions after it (one request when nothing newer exists).
    pub async fn newer_than(&self, known: Manifest) -> Result<Manifest, EngineError> {
        let mut current = known;
        while let Some(next) = self.read(current.version + 1).await? {
            current = next;
        }
        if self.known().is_none_or(|k| k.version < current.version) {
            self.met_foreign();
        }
        self.remember(&current);
        Ok(current)
    }

    async fn highest_listed(&self) -> Result<u64, EngineError> {
        let names = self.control.list("manifest").await?;
        Ok(names
            .iter()
            .filter_map(|n| {
                n.rsplit('/')
                    .next()?
                    .strip_prefix('v')?
                    .strip_suffix(".json")?
                    .parse::<u64>()
                    .ok()
            })
            .max()
            .unwrap_or(1))
    }

    /// Writes the first manifest. Fails if the graph already has one.
    pub async fn create_first(&self, m: &Manifest) -> Result<(), EngineError> {
        let data = serde_json::to_vec_pretty(m).map_err(|e| corrupt("manifest", e))?;
        self.control.create(&manifest_path(m.version), data).await?;
        self.control
            .put(
                LATEST_HINT,
                serde_json::to_vec(&serde_json::json!({"version": m.version})).unwrap_or_default(),
            )
            .await?;
        Ok(())
    }

    /// Publishes the next manifest with one create-if-absent. `change`
    /// derives the new state (and the commit it records, if any) from the
    /// current manifest; after a lost race it runs again against the newer
    /// one (at most `MAX_RETRIES` times), so it must depend only on its input.
    /// The commit record is stored before the manifest that names it, so a
    /// published head always resolves. Returns what was published.
    pub async fn publish<F>(
        &self,
        base: Manifest,
        mut change: F,
    ) -> Result<(Manifest, Option<Commit>), EngineError>
    where
        F: FnMut(&Manifest) -> Result<(Manifest, Option<Commit>), EngineError>,
    {
        let (m, mut commits) = self
            .publish_many(base, |cur| {
                let (next, c) = change(cur)?;
                Ok((next, c.into_iter().collect()))
            })
            .await?;
        Ok((m, commits.pop()))
    }

    /// [`ManifestStore::publish`] recording several commits in one manifest
    /// version (a group commit: a chain of commits on one branch). Every
    /// commit record is stored before the manifest.
    pub async fn publish_many<F>(
        &self,
        mut base: Manifest,
        mut change: F,
    ) -> Result<(Manifest, Vec<Commit>), EngineError>
    where
        F: FnMut(&Manifest) -> Result<(Manifest, Vec<Commit>), EngineError>,
    {
        const MAX_RETRIES: usize = 64;
        for _ in 0..MAX_RETRIES {
            let (mut next, mut commits) = change(&base)?;
            next.version = base.version + 1;
            for c in &mut commits {
                c.manifest_version = Some(next.version);
            }
            // Every record lands before the manifest that names them; the
            // records of one group are written at once, not one by one
            // (a group commit's publish costs one PUT's latency for them).
            futures::future::try_join_all(commits.iter().map(|c| self.write_commit(c))).await?;
            let data = serde_json::to_vec_pretty(&next).map_err(|e| corrupt("manifest", e))?;
            match self
                .control
                .create(&manifest_path(next.version), data)
                .await
            {
                Ok(()) => {
                    // Best effort, and only every HINT_EVERY versions: a
                    // stale hint costs a cold reader a few probes, a fresh
                    // one would cost every write a request.
                    if next.version % HINT_EVERY == 0 {
                        let hint =
                            serde_json::to_vec(&serde_json::json!({"version": next.version}))
                                .unwrap_or_default();
                        let _ = self.control.put(LATEST_HINT, hint).await;
                    }
                    self.remember(&next);
                    return Ok((next, commits));
                }
                Err(ControlError::AlreadyExists { .. }) => {
                    // Lost the race. The orphaned commit records are never
                    // reachable from a head; the retry records new ones.
                    base = self.newer_than(base).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict {
            reason: format!(
                "the manifest moved {MAX_RETRIES} times while publishing; retry the write"
            ),
        })
    }

    /// Stores a commit record (before the manifest that names it).
    pub async fn write_commit(&self, c: &Commit) -> Result<(), EngineError> {
        let data = serde_json::to_vec_pretty(c).map_err(|e| corrupt("commit", e))?;
        self.control.create(&commit_path(&c.id), data).await?;
        self.keep_record(c);
        Ok(())
    }

    fn keep_record(&self, c: &Commit) {
        if let Ok(mut r) = self.records.lock() {
            if r.len() >= RECORDS_KEPT {
                r.clear();
            }
            r.insert(c.id.clone(), c.clone());
        }
    }

    /// Forgets a commit record (`cleanup` removed it).
    pub fn forget_record(&self, id: &str) {
        if let Ok(mut r) = self.records.lock() {
            r.remove(&CommitId::from_text(id));
        }
    }

    /// Reads a commit record.
    pub async fn commit(&self, id: &str) -> Result<Option<Commit>, EngineError> {
        if Ulid::from_string(id).is_err() {
            return Ok(None);
        }
        if let Some(c) = self
            .records
            .lock()
            .ok()
            .and_then(|r| r.get(&CommitId::from_text(id)).cloned())
        {
            return Ok(Some(c));
        }
        self.stored_commit(id).await
    }

    /// Reads a commit record from storage, not from memory: what a read
    /// at that commit uses, so a record another process's `cleanup`
    /// removed is seen to be gone.
    pub async fn stored_commit(&self, id: &str) -> Result<Option<Commit>, EngineError> {
        if Ulid::from_string(id).is_err() {
            return Ok(None);
        }
        let path = commit_path(id);
        match self.control.get_opt(&path).await? {
            None => Ok(None),
            Some(b) => {
                let c: Commit = serde_json::from_slice(&b).map_err(|e| corrupt(&path, e))?;
                self.keep_record(&c);
                Ok(Some(c))
            }
        }
    }

    /// The history reachable from `head` (as far as `cleanup` kept it),
    /// newest first: every commit
    /// before its parents (ids alone cannot order commits made in the same
    /// millisecond by different writers), ties broken by the larger id (first parents and
    /// merge parents alike), each commit once.
    pub async fn history(&self, head: &str) -> Result<Vec<Commit>, EngineError> {
        let mut out: Vec<Commit> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut frontier = vec![CommitId::from_text(head)];
        while let Some(id) = frontier.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let Some(c) = self.commit(&id).await? else {
                if out.is_empty() {
                    return Err(corrupt(&commit_path(&id), "commit record is missing"));
                }
                // Below the window `cleanup` kept: history ends here.
                continue;
            };
            frontier.extend(c.parents.iter().cloned());
            out.push(c);
        }
        Ok(newest_first(out))
    }
}

/// Orders commits so each comes before its parents, preferring the larger
/// (later) id among those that may come next.
pub(crate) fn newest_first(commits: Vec<Commit>) -> Vec<Commit> {
    use std::collections::{BinaryHeap, HashMap};
    let mut children: HashMap<CommitId, usize> =
        commits.iter().map(|c| (c.id.clone(), 0)).collect();
    for c in &commits {
        for p in &c.parents {
            if let Some(n) = children.get_mut(p) {
                *n += 1;
            }
        }
    }
    let mut by_id: HashMap<CommitId, Commit> =
        commits.into_iter().map(|c| (c.id.clone(), c)).collect();
    let mut ready: BinaryHeap<CommitId> = children
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(id, _)| id.clone())
        .collect();
    let mut out = Vec::with_capacity(by_id.len());
    while let Some(id) = ready.pop() {
        let Some(c) = by_id.remove(&id) else { continue };
        for p in &c.parents {
            if let Some(n) = children.get_mut(p) {
                *n -= 1;
                if *n == 0 {
                    ready.push(p.clone());
                }
            }
        }
        out.push(c);
    }
    // A cycle cannot happen (a parent exists before its child); keep
    // anything left rather than lose it.
    let mut rest: Vec<Commit> = by_id.into_values().collect();
    rest.sort_by(|a, b| b.id.cmp(&a.id));
    out.extend(rest);
    out
}
