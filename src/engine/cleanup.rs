//! `cleanup`: removes history below a kept window — old Lance versions of
//! every table (their manifests, transaction files and the data, deletion
//! and index files only they reference) and the commit records of the
//! commits it does not keep — while writers keep writing (reference
//! docs/user/operations/maintenance.md, "cleanup — destructive").
//!
//! **Kept:** per live branch, the newest `keep` commits of its history
//! and every commit younger than `older_than` (a commit goes only when it
//! is outside every window given), each branch head, the merge base of
//! every pair of branches (recorded in `_graph/cleanup.json`, so a merge
//! whose walk of the history stops at the removed records still finds
//! it). **Needed table
//! versions:** per (table, Lance branch), the oldest version any kept
//! commit, branch state or recovery sidecar (its base: what heal may
//! restore) names; Lance removes every other version
//! (`CleanupPolicy::versions`), never the newest, never a file a kept
//! version or another Lance branch references, and never a file it cannot
//! prove old (`delete_unverified` stays off, so the staged files of a
//! write in flight are safe). So a branch forked long ago pins only the
//! versions it names, not everything after them.
//!
//! Safe beside a server: a write builds on its branch head (needed) and
//! adds versions above it; a commit record is removed only when it is
//! reachable from the manifest cleanup read (published) and outside the
//! window, never one a write in flight has stored but not yet published.
//! Not removed: graph manifest versions (`_graph/manifest/v*.json`; a
//! writer whose newest known version is below a removed one could create
//! it again and fork the history, so they stay until a version floor
//! exists) and Lance branches of deleted graph branches.
//!
//! After a cleanup, a removed commit answers `HistoryRemoved` (410) and
//! the change feed from a cursor below the window `ChangeFeedGap` (410).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::manifest::Commit;
use super::{CommitId, EngineError, Graph, TableKey};
use crate::storage::table;

/// What to keep (at least one of the two).
#[derive(Debug, Clone, Copy, Default)]
pub struct CleanupPolicy {
    /// The newest commits of each branch's history to keep (its head
    /// always; 0 keeps only heads).
    pub keep: Option<usize>,
    /// Keep every commit younger than this many milliseconds.
    pub older_than_ms: Option<i64>,
}

/// One table line's cleanup.
#[derive(Debug, Clone, Serialize)]
pub struct TableCleanup {
    pub table: TableKey,
    /// The Lance branch (`None`: the dataset's main line).
    pub lance_branch: Option<String>,
    /// The versions kept for kept commits, branch heads and sidecars
    /// (the newest is kept besides).
    pub versions_kept: usize,
    pub versions_removed: u64,
    pub files_removed: u64,
    pub bytes_removed: u64,
    /// Set when this table's cleanup failed (the others went on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a cleanup removed, or would remove (`confirmed` false: a dry run).
#[derive(Debug, Clone, Serialize)]
pub struct CleanupReport {
    pub confirmed: bool,
    pub commits_kept: usize,
    pub commits_removed: usize,
    /// The commit ids removed (or to be removed), oldest first.
    pub removed_commit_ids: Vec<String>,
    pub tables: Vec<TableCleanup>,
}

impl CleanupReport {
    pub fn versions_removed(&self) -> u64 {
        self.tables.iter().map(|t| t.versions_removed).sum()
    }
    pub fn files_removed(&self) -> u64 {
        self.tables.iter().map(|t| t.files_removed).sum()
    }
    pub fn bytes_removed(&self) -> u64 {
        self.tables.iter().map(|t| t.bytes_removed).sum()
    }
}

/// The marker a cleanup leaves (`_graph/cleanup.json`): a commit record
/// missing afterwards, minted before `at_ms`, was removed by it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CleanupMarker {
    pub at_ms: i64,
    /// The merge base of each pair of branches when it ran: `(a, b,
    /// base)`; a merge whose walk of the history meets the removed
    /// records uses it (both heads only moved forward since, so it is
    /// still their common ancestor, and newer ones are found by the walk).
    #[serde(default)]
    pub bases: Vec<(String, String, CommitId)>,
}

pub(crate) const MARKER: &str = "cleanup.json";

impl Graph {
    /// Removes (with `confirm`) or lists what lies below the kept window.
    /// Errors: a policy with neither bound (`Source`), a commit record
    /// that does not parse, storage. A table whose Lance cleanup fails is
    /// reported with its error and the others go on.
    pub async fn cleanup(
        &self,
        policy: CleanupPolicy,
        confirm: bool,
    ) -> Result<CleanupReport, EngineError> {
        if policy.keep.is_none() && policy.older_than_ms.is_none() {
            return Err(EngineError::Source {
                reason: "cleanup needs a window: --keep N (commits per branch) and/or --older-than DURATION".into(),
            });
        }
        let now = super::now_ms();
        let m = self.manifest().await?;
        // Every commit reachable from a live head, per branch newest first.
        let mut records: HashMap<CommitId, Commit> = HashMap::new();
        let mut kept: HashSet<CommitId> = HashSet::new();
        for bs in m.branches.values() {
            let history = self.retained_history(&bs.head, &mut records).await?;
            for (i, c) in history.iter().enumerate() {
                let young = policy
                    .older_than_ms
                    .is_some_and(|d| c.timestamp_ms >= now - d);
                let recent = policy.keep.is_some_and(|n| i < n.max(1));
                if young || recent {
                    kept.insert(c.id.clone());
                }
            }
            kept.insert(bs.head.clone());
        }
        // Every pair's merge base stays readable and is recorded, so a
        // merge still finds it once the commits between are removed.
        let mut bases = Vec::new();
        let names: Vec<&String> = m.branches.keys().collect();
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                let (ha, hb) = (&m.branches[*a].head, &m.branches[*b].head);
                if let Ok(base) = self.merge_base_of(a, ha, b, hb).await {
                    kept.insert(base.clone());
                    bases.push(((*a).clone(), (*b).clone(), base));
                }
            }
        }
        // The versions each (table, Lance branch) must keep.
        let mut needed: BTreeMap<(TableKey, Option<String>), BTreeSet<u64>> = BTreeMap::new();
        let mut need = |key: &TableKey, lance: &Option<String>, v: u64| {
            needed
                .entry((key.clone(), lance.clone()))
                .or_default()
                .insert(v);
        };
        for bs in m.branches.values() {
            for (k, r) in &bs.tables {
                need(k, &r.lance_branch, r.version);
            }
        }
        for id in &kept {
            let c = match records.get(id) {
                Some(c) => c.clone(),
                None => match self.manifests.commit(id).await? {
                    Some(c) => c,
                    None => continue,
                },
            };
            for (k, r) in &c.tables {
                need(k, &r.lance_branch, r.version);
            }
        }
        for sc in self.sidecars().await? {
            for (k, t) in &sc.tables {
                need(k, &t.base.lance_branch, t.base.version);
            }
        }
        let mut tables = Vec::new();
        for ((key, lance), keep) in needed {
            tables.push(self.clean_table(&key, lance, &keep, confirm).await);
        }
        let mut removed: Vec<&Commit> =
            records.values().filter(|c| !kept.contains(&c.id)).collect();
        removed.sort_by(|a, b| a.id.cmp(&b.id));
        let removed_commit_ids: Vec<String> = removed.iter().map(|c| c.id.to_string()).collect();
        if confirm && !removed.is_empty() {
            let marker =
                serde_json::to_vec(&CleanupMarker { at_ms: now, bases }).unwrap_or_default();
            self.manifests.control().put(MARKER, marker).await?;
            for c in &removed {
                self.manifests
                    .control()
                    .delete(&format!("commits/{}.json", c.id))
                    .await?;
                self.manifests.forget_record(&c.id);
            }
        }
        Ok(CleanupReport {
            confirmed: confirm,
            commits_kept: kept.len(),
            commits_removed: removed_commit_ids.len(),
            removed_commit_ids,
            tables,
        })
    }

    /// The history from `head`, newest first, as far as records exist
    /// (a previous cleanup removed the rest); fills `records`.
    async fn retained_history(
        &self,
        head: &CommitId,
        records: &mut HashMap<CommitId, Commit>,
    ) -> Result<Vec<Commit>, EngineError> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![head.clone()];
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            let c = match records.get(&id) {
                Some(c) => c.clone(),
                None => match self.manifests.commit(&id).await? {
                    Some(c) => c,
                    None => continue,
                },
            };
            stack.extend(c.parents.iter().cloned());
            records.insert(c.id.clone(), c.clone());
            out.push(c);
        }
        Ok(super::manifest::newest_first(out))
    }

    /// Lance's cleanup of one table line: every version but `keep` (and
    /// the newest).
    async fn clean_table(
        &self,
        key: &TableKey,
        lance: Option<String>,
        keep: &BTreeSet<u64>,
        confirm: bool,
    ) -> TableCleanup {
        let mut out = TableCleanup {
            table: key.clone(),
            lance_branch: lance.clone(),
            versions_kept: keep.len(),
            versions_removed: 0,
            files_removed: 0,
            bytes_removed: 0,
            error: None,
        };
        let uri = self.table_uri(key);
        match table::remove_versions_except(&uri, lance.as_deref(), keep, confirm).await {
            Ok(s) => {
                out.versions_removed = s.versions;
                out.files_removed = s.files;
                out.bytes_removed = s.bytes;
            }
            Err(e) => out.error = Some(e.to_string()),
        }
        out
    }

    /// The merge base of branches `a` and `b` (heads `ha`, `hb`): by
    /// walking their histories, else, when a cleanup removed the commits
    /// between, the base it recorded for the pair. Errors as
    /// [`Graph::merge_base`].
    pub(crate) async fn merge_base_of(
        &self,
        a: &str,
        ha: &str,
        b: &str,
        hb: &str,
    ) -> Result<CommitId, EngineError> {
        let walked = self.merge_base(ha, hb).await;
        if walked.is_ok() {
            return walked;
        }
        if let Some(m) = self.marker().await {
            let recorded = m
                .bases
                .into_iter()
                .filter(|(x, y, _)| (x == a && y == b) || (x == b && y == a))
                .map(|(_, _, base)| base)
                .max();
            if let Some(base) = recorded {
                return Ok(base);
            }
        }
        walked
    }

    async fn marker(&self) -> Option<CleanupMarker> {
        let bytes = self.manifests.control().get_opt(MARKER).await.ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// Whether commit `id` (not found) was removed by a cleanup: a
    /// cleanup ran, and the id was minted before it.
    pub(crate) async fn removed_by_cleanup(&self, id: &str) -> bool {
        let Ok(ulid) = ulid::Ulid::from_string(id) else {
            return false;
        };
        self.marker()
            .await
            .is_some_and(|m| (ulid.timestamp_ms() as i64) < m.at_ms)
    }
}
