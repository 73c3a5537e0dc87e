//! Crash safety: recovery sidecars, heal, the drift guard and repair
//! (docs/architecture.md, "Recovery protocol").
//!
//! No lock decides who may write: the fences do (a table commit lands only
//! as the version after the published one, a manifest version is created
//! only if absent). A sidecar names its owner and a lease
//! ([`super::lease`]), and heal acts only on sidecars whose writer cannot
//! still be running. Within one process, the commit steps of a graph's
//! handles take turns ([`Graph::commit_turn`]) so they do not fence each
//! other out; that is an optimisation, never what makes a write safe.
//!
//! Heal classifies each dead sidecar `__recovery/<write id>.json`:
//!
//! | state | action |
//! |---|---|
//! | its branch is gone (or was deleted and re-created) | discard |
//! | a commit on the branch records its write id | retire |
//! | every table committed, each Lance head is that version, the manifest still at the base | roll forward: publish them |
//! | anything else (a table not committed, or moved since) | roll back: restore moved tables to their base |
//!
//! Each action writes one audit record `audit/<write id>.json`
//! (create-if-absent, so a heal interrupted and retried still leaves one).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[cfg_attr(not(feature = "failpoints"), allow(unused_imports))]
use super::fault;
use super::manifest::{TableKey, TableRef};
use super::{CommitId, EngineError, Graph, now_ms};
use crate::storage::ControlError;
use crate::storage::table::{self, TableAt};

const SIDECAR_DIR: &str = "__recovery/";
const AUDIT_DIR: &str = "audit/";

/// A write's recovery sidecar: what it is about to change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sidecar {
    /// The write id (a ULID); the published commit records it.
    pub id: String,
    pub branch: String,
    /// The Lance branch the write commits to (`None`: the main line).
    pub lance_branch: Option<String>,
    pub actor: String,
    pub message: String,
    pub started_ms: i64,
    pub tables: BTreeMap<TableKey, SidecarTable>,
    /// A merge's source head: the published commit's second parent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge_parent: Option<String>,
    /// A schema apply's switch, published with the tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<super::schema_apply::SchemaSwitch>,
    /// The process running the write (`None` in sidecars written before
    /// owners existed: treated as dead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<super::lease::Owner>,
    /// Milliseconds since the epoch until which the owner holds the write;
    /// renewed while it runs ([`super::lease`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until_ms: Option<i64>,
}

impl Sidecar {
    /// Whether the write may still be running ([`super::lease::may_be_live`]).
    pub fn may_be_live(&self, now_ms: i64) -> bool {
        super::lease::may_be_live(self.owner.as_ref(), self.lease_until_ms, &self.id, now_ms)
    }
}

/// One table of a sidecar: the version the write builds on, and the
/// version it committed, recorded after the table's commits, except when
/// the write makes exactly one data commit there (`one_commit`): then the
/// sidecar is not written again for it (one storage request less per
/// write) and heal tells the committed version by its write-id tag
/// (`Graph::committed_by`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SidecarTable {
    pub base: TableRef,
    pub committed: Option<u64>,
    /// The write commits one data change on this table (then its upkeep,
    /// if any): a version tagged with the write's id right after the base
    /// is the whole change. `false` in sidecars of older builds.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub one_commit: bool,
}

/// What heal did with one sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealAction {
    RolledForward,
    RolledBack,
    Retired,
    Discarded,
}

/// One audit record: who healed what, when, and the outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub write_id: String,
    pub action: HealAction,
    /// The actor whose write entry ran the heal (or `repair`).
    pub healed_by: String,
    pub time_ms: i64,
    /// The interrupted write.
    pub write: Sidecar,
    /// The commit a roll forward or repair published.
    pub commit: Option<CommitId>,
}

/// A table whose Lance head is ahead of the published manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drift {
    pub branch: String,
    pub table: TableKey,
    pub published: u64,
    pub head: u64,
}

/// What `repair` found and did.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub healed: Vec<(String, HealAction)>,
    pub drift: Vec<Drift>,
    /// Commits published (with `--confirm`), one per branch with drift.
    pub published: Vec<CommitId>,
}

fn sidecar_path(id: &str) -> String {
    format!("{SIDECAR_DIR}{id}.json")
}

/// `actor (pid P on HOST)` for a sidecar's writer.
fn describe_writer(sc: &Sidecar) -> String {
    sc.owner
        .as_ref()
        .map(|o| format!("{} (pid {} on {})", sc.actor, o.pid, o.host))
        .unwrap_or_else(|| sc.actor.clone())
}

const REPAIR_ADVICE: &str = "it was written outside a recorded write; run `omnigraph repair URI` to preview, then `omnigraph repair --confirm URI` to publish it";

impl Graph {
    /// Waits for this process's turn at the graph's commit step, then
    /// heals every dead sidecar when a heal is due (the handle is new, or
    /// a commit met something it did not expect). Every write's commit step starts
    /// here; the turn is held until the returned guard drops.
    pub async fn begin_write(
        &self,
        actor: &str,
    ) -> Result<tokio::sync::OwnedMutexGuard<()>, EngineError> {
        let turn = self.commit_turn().await;
        let due = self
            .heal_due
            .swap(false, std::sync::atomic::Ordering::SeqCst);
        if due {
            if let Err(e) = self.heal(actor).await {
                self.heal_due
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                return Err(e);
            }
        }
        Ok(turn)
    }

    pub(crate) async fn write_sidecar(&self, sc: &Sidecar) -> Result<(), EngineError> {
        fail::fail_point!("sidecar.write", |_| Err(fault("sidecar.write")));
        let data = serde_json::to_vec_pretty(sc).map_err(|e| EngineError::Corrupt {
            path: sidecar_path(&sc.id),
            reason: e.to_string(),
        })?;
        self.manifests
            .control()
            .put(&sidecar_path(&sc.id), data)
            .await?;
        Ok(())
    }

    pub(crate) async fn delete_sidecar(&self, id: &str) -> Result<(), EngineError> {
        fail::fail_point!("sidecar.delete", |_| Err(fault("sidecar.delete")));
        self.manifests.control().delete(&sidecar_path(id)).await?;
        Ok(())
    }

    /// Every sidecar on disk, parsed; an unreadable one is refused loudly
    /// (and left in place).
    pub(crate) async fn sidecars(&self) -> Result<Vec<Sidecar>, EngineError> {
        let listed: Result<Vec<String>, EngineError> = async {
            fail::fail_point!("sidecar.list", |_| Err(fault("sidecar.list")));
            Ok(self.manifests.control().list(SIDECAR_DIR).await?)
        }
        .await;
        let paths = listed.map_err(|e| EngineError::SidecarsUnlisted {
            reason: e.to_string(),
            advice: "if a write was interrupted, retry or reopen so heal can finish it; if a table has drifted, run `omnigraph repair URI`".into(),
        })?;
        let mut out = Vec::new();
        for p in paths.iter().filter(|p| p.ends_with(".json")) {
            // Deleted since the listing (its write finished, or another
            // process healed it): nothing left to heal.
            let Some(bytes) = self.manifests.control().get_opt(p).await? else {
                continue;
            };
            let sc: Sidecar =
                serde_json::from_slice(&bytes).map_err(|e| EngineError::CorruptSidecar {
                    path: format!("{}/{p}", super::GRAPH_DIR),
                    reason: e.to_string(),
                })?;
            out.push(sc);
        }
        Ok(out)
    }

    /// The version write `sc` committed table `key` up to: the one its
    /// sidecar records, or else, for a table with one data commit (whose
    /// version the commit step keeps in memory only), the Lance head when
    /// the version after the write's base carries the write's id ([`table::WRITE_ID_PROPERTY`]): the fence lets no one
    /// else commit past that version, and every version after it up to the
    /// head is the write's own (its data, then its upkeep). `None`: the
    /// write committed nothing there.
    async fn committed_by(
        &self,
        sc: &Sidecar,
        key: &TableKey,
        t: &SidecarTable,
        head: Option<u64>,
    ) -> Result<Option<u64>, EngineError> {
        if t.committed.is_some() || !t.one_commit {
            return Ok(t.committed);
        }
        let Some(head) = head.filter(|h| *h > t.base.version) else {
            return Ok(None);
        };
        // On the write's Lance branch: a fork continues the base's version
        // numbers there.
        let next = TableAt {
            uri: self.table_uri(key),
            branch: sc.lance_branch.clone(),
            version: t.base.version + 1,
        };
        Ok((table::written_by(&next).await?.as_deref() == Some(sc.id.as_str())).then_some(head))
    }

    /// The newest version of a table on a Lance branch (`None`: the branch
    /// does not exist).
    async fn lance_head(
        &self,
        key: &TableKey,
        lance_branch: Option<&str>,
    ) -> Result<Option<u64>, EngineError> {
        table::head_version(&self.table_uri(key), lance_branch)
            .await
            .map_err(EngineError::from)
    }

    /// The writer (actor, pid, host) of a running write other than `own`
    /// whose sidecar covers table `key` on Lance branch `target`.
    pub(crate) async fn live_writer(
        &self,
        key: &TableKey,
        target: Option<&str>,
        own: &str,
    ) -> Result<Option<String>, EngineError> {
        let now = now_ms();
        Ok(self
            .sidecars()
            .await?
            .into_iter()
            .find(|sc| {
                sc.id != own
                    && sc.lance_branch.as_deref() == target
                    && sc.tables.contains_key(key)
                    && sc.may_be_live(now)
            })
            .map(|sc| describe_writer(&sc)))
    }

    /// Explains a table commit that lost its fence (another version was
    /// committed after the published `published` on `target`):
    /// [`EngineError::Busy`] when a write that may still be running covers
    /// the table, [`EngineError::Stale`] when a dead one does (heal undoes
    /// it; prepare again) or when the head is not ahead after all (a
    /// publish in between), else [`EngineError::Drift`] with the remedy.
    /// `own` is the asking write's id.
    pub(crate) async fn moved_head(
        &self,
        key: &TableKey,
        branch: &str,
        published: &TableRef,
        target: Option<&str>,
        own: &str,
    ) -> EngineError {
        let covering = match self.sidecars().await {
            Ok(all) => all
                .into_iter()
                .filter(|sc| {
                    sc.id != own
                        && sc.lance_branch.as_deref() == target
                        && sc.tables.contains_key(key)
                })
                .collect::<Vec<_>>(),
            Err(e) => return e,
        };
        let now = now_ms();
        if let Some(sc) = covering.iter().find(|sc| sc.may_be_live(now)) {
            return EngineError::Busy {
                table: key.to_string(),
                branch: branch.to_string(),
                writer: describe_writer(sc),
            };
        }
        if !covering.is_empty() {
            return super::stale(key, "an interrupted write covers it; heal undoes it");
        }
        let at = TableAt {
            uri: self.table_uri(key),
            branch: target.map(str::to_string),
            version: published.version,
        };
        match table::has_newer_version(&at).await {
            Ok(false) => super::stale(key, "it was published again meanwhile"),
            // The commit step checks against the head this handle
            // remembers; another process may have published the table since.
            Ok(true)
                if self.manifest().await.is_ok_and(|m| {
                    m.branches
                        .get(branch)
                        .is_some_and(|bs| bs.tables.get(key) != Some(published))
                }) =>
            {
                super::stale(key, "it was published again meanwhile")
            }
            Ok(true) => {
                let head = self
                    .lance_head(key, target)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(published.version + 1);
                EngineError::Drift {
                    table: key.to_string(),
                    branch: branch.to_string(),
                    head,
                    published: published.version,
                    advice: REPAIR_ADVICE.into(),
                }
            }
            Err(e) => e.into(),
        }
    }

    /// Finds the commit on `head`'s history that published `write_id`,
    /// looking back no further than the write's start.
    async fn published_by(
        &self,
        head: &str,
        write_id: &str,
        started_ms: i64,
    ) -> Result<Option<super::manifest::Commit>, EngineError> {
        let mut cur = Some(CommitId::from_text(head));
        while let Some(id) = cur {
            let Some(c) = self.manifests.commit(&id).await? else {
                return Ok(None);
            };
            if c.write_id.as_deref() == Some(write_id) {
                return Ok(Some(c));
            }
            // Clocks may differ between writers: allow a minute of skew.
            if c.timestamp_ms < started_ms - 60_000 {
                return Ok(None);
            }
            cur = c.parents.first().cloned();
        }
        Ok(None)
    }

    /// Heals every interrupted write whose writer is gone, now (what a
    /// write's commit step does first). Returns what it did, per write id;
    /// sidecars of writes that may still be running are left alone.
    pub async fn recover(&self, actor: &str) -> Result<Vec<(String, HealAction)>, EngineError> {
        let _turn = self.commit_turn().await;
        self.heal(actor).await
    }

    /// Heals every dead sidecar; the caller holds the commit turn.
    pub(crate) async fn heal(&self, actor: &str) -> Result<Vec<(String, HealAction)>, EngineError> {
        let mut done = Vec::new();
        let all = self.sidecars().await?;
        let now = now_ms();
        // What running writes (of other processes) hold: their unpublished
        // versions are theirs, never undone by heal.
        let busy: Vec<(Option<String>, TableKey)> = all
            .iter()
            .filter(|sc| sc.may_be_live(now))
            .flat_map(|sc| {
                sc.tables
                    .keys()
                    .map(|k| (sc.lance_branch.clone(), k.clone()))
            })
            .collect();
        for sc in all {
            if sc.may_be_live(now) {
                continue;
            }
            let Some((action, commit)) = self.heal_one(&sc, &busy).await? else {
                // Another process is healing it (its restore or publish came
                // first): look again at the next commit step.
                tracing::debug!(write = %sc.id, "heal: another process heals this write");
                self.heal_due
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                continue;
            };
            self.audit(&sc, action, actor, commit).await?;
            self.delete_sidecar(&sc.id).await?;
            done.push((sc.id.clone(), action));
        }
        if !done.is_empty() {
            // Tables moved: drop cached state (versions key it, but a rolled
            // back version number may be reused by a later write).
            self.cache.clear();
        }
        Ok(done)
    }

    /// Heals one dead sidecar. A table is rolled back only when the version
    /// after its base is this write's (tagged with its id,
    /// [`table::written_by`]); `busy` lists the (Lance branch, table) pairs
    /// that running writes cover, which decides only for an untagged
    /// version of an old build's write.
    ///
    /// Several processes may heal the same sidecar at once, so every step
    /// is conditional: the table heads are read before the manifest (a
    /// table published since the write's base was published by a heal of
    /// this write, since nothing else can commit past the write's
    /// unpublished version), a restore lands only right after the head
    /// decided on ([`table::restore`]), a head that already restores the
    /// base is published rather than restored again, and the publish
    /// expects every table still at the write's base. `Ok(None)`: another
    /// process got there first; the sidecar is left for it (or for the
    /// next look).
    async fn heal_one(
        &self,
        sc: &Sidecar,
        busy: &[(Option<String>, TableKey)],
    ) -> Result<Option<(HealAction, Option<CommitId>)>, EngineError> {
        let mut heads = BTreeMap::new();
        for key in sc.tables.keys() {
            let head = self.lance_head(key, sc.lance_branch.as_deref()).await?;
            heads.insert(key.clone(), head);
        }
        let m = self.manifest().await?;
        // Between what heal decided on and what it does (a test stalls a
        // heal here while another process heals the same write).
        fail::fail_point!("heal.decided");
        let Some(bs) = m.branches.get(&sc.branch) else {
            return Ok(Some((HealAction::Discarded, None)));
        };
        if bs.lance_branch != sc.lance_branch {
            return Ok(Some((HealAction::Discarded, None)));
        }
        if let Some(c) = self.published_by(&bs.head, &sc.id, sc.started_ms).await? {
            // A roll forward interrupted before its audit record is still a
            // roll forward.
            let action = match c.recovery.as_deref() {
                Some("rolled_forward") => HealAction::RolledForward,
                Some("rolled_back") => HealAction::RolledBack,
                _ => HealAction::Retired,
            };
            return Ok(Some((action, Some(c.id))));
        }
        let mut committed: BTreeMap<&TableKey, Option<u64>> = BTreeMap::new();
        for (key, t) in &sc.tables {
            let head = heads.get(key).copied().flatten();
            committed.insert(key, self.committed_by(sc, key, t, head).await?);
        }
        let forward = sc.tables.iter().all(|(key, t)| {
            let c = committed.get(key).copied().flatten();
            bs.tables.get(key) == Some(&t.base)
                && c.is_some()
                && heads.get(key).copied().flatten() == c
        });
        if forward {
            let refs: BTreeMap<TableKey, TableRef> = sc
                .tables
                .iter()
                .filter_map(|(k, _)| {
                    committed.get(k).copied().flatten().map(|v| {
                        (
                            k.clone(),
                            TableRef {
                                version: v,
                                lance_branch: sc.lance_branch.clone(),
                                rows_of: None,
                            },
                        )
                    })
                })
                .collect();
            let expect: BTreeMap<TableKey, Option<TableRef>> = sc
                .tables
                .iter()
                .map(|(k, t)| (k.clone(), Some(t.base.clone())))
                .collect();
            if sc.actor == super::upkeep::UPKEEP_ACTOR {
                return self
                    .publish_upkeep_heal(&m, sc, &refs)
                    .await
                    .map(|done| done.then_some((HealAction::RolledForward, None)));
            }
            let message = format!("{} (recovered)", sc.message);
            let published = self
                .publish_tables(
                    &m,
                    &sc.branch,
                    &refs,
                    (&sc.actor, &message, &sc.id),
                    super::Extra {
                        merge_parent: sc.merge_parent.as_deref(),
                        schema: sc.schema.as_ref(),
                        expect_head: None,
                    },
                    Some("rolled_forward"),
                    Some(&expect),
                )
                .await;
            return match published {
                Ok((_, c)) => Ok(Some((HealAction::RolledForward, Some(c.id)))),
                Err(EngineError::Stale { .. }) => Ok(None),
                Err(e) => Err(e),
            };
        }
        // Roll back: put every moved table of this lineage back to its base.
        // A restore is a new Lance version with the base's content; one
        // commit publishes those versions so the drift guard sees no drift.
        let mut restored: BTreeMap<TableKey, TableRef> = BTreeMap::new();
        for (key, t) in &sc.tables {
            if t.base.lance_branch != sc.lance_branch {
                // The write forked a new Lance branch, which the next write
                // replaces; the published lineage never moved.
                continue;
            }
            let Some(head) = heads
                .get(key)
                .copied()
                .flatten()
                .filter(|h| *h > t.base.version)
            else {
                continue;
            };
            if bs.tables.get(key) != Some(&t.base) {
                // Published since the write's base: by a heal of this write
                // (its versions block everyone else), so nothing is left here.
                continue;
            }
            // The fence lets only the write that made the version after the
            // base have unpublished versions on the table: that version's
            // tag says whose they are. Another writer's (a running one's,
            // or a dead one's without a sidecar: drift for repair) are never
            // undone here.
            let next = TableAt {
                uri: self.table_uri(key),
                branch: t.base.lance_branch.clone(),
                version: t.base.version + 1,
            };
            let ours = match table::written_by(&next).await? {
                Some(id) => id == sc.id,
                // Untagged: an upkeep's (a compaction reserves its fragment
                // ids untagged, an index build is untagged) or, for a
                // write, an old build's that recorded its commit.
                None => {
                    sc.actor == super::upkeep::UPKEEP_ACTOR
                        || (t.committed.is_some()
                            && !busy.contains(&(sc.lance_branch.clone(), key.clone())))
                }
            };
            if !ours {
                continue;
            }
            let at = TableAt {
                uri: self.table_uri(key),
                branch: t.base.lance_branch.clone(),
                version: t.base.version,
            };
            let head_at = TableAt {
                version: head,
                ..at.clone()
            };
            // Another heal of this write restored it and has not published
            // (or died before it could): publish that version.
            let v = if table::restored_from(&head_at).await? == Some(t.base.version) {
                head
            } else {
                match table::restore(&at, head).await {
                    Ok(v) => v,
                    Err(e) if e.conflict => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            };
            restored.insert(
                key.clone(),
                TableRef {
                    version: v,
                    lance_branch: t.base.lance_branch.clone(),
                    rows_of: None,
                },
            );
        }
        if restored.is_empty() {
            return Ok(Some((HealAction::RolledBack, None)));
        }
        if sc.actor == super::upkeep::UPKEEP_ACTOR {
            return self
                .publish_upkeep_heal(&m, sc, &restored)
                .await
                .map(|done| done.then_some((HealAction::RolledBack, None)));
        }
        let expect: BTreeMap<TableKey, Option<TableRef>> = restored
            .keys()
            .filter_map(|k| sc.tables.get(k).map(|t| (k.clone(), Some(t.base.clone()))))
            .collect();
        let message = format!("roll back interrupted write: {}", sc.message);
        match self
            .publish_tables(
                &m,
                &sc.branch,
                &restored,
                (&sc.actor, &message, &sc.id),
                super::Extra::default(),
                Some("rolled_back"),
                Some(&expect),
            )
            .await
        {
            Ok((_, c)) => Ok(Some((HealAction::RolledBack, Some(c.id)))),
            Err(EngineError::Stale { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Publishes the table versions `refs` that heal made of the upkeep
    /// step `sc` (its own version rolled forward, or a restore of the
    /// base) the way upkeep publishes: the tables' references move, no
    /// commit is recorded and the branch's head stays, since upkeep
    /// changes no row (docs/architecture.md, "Upkeep"); otherwise a
    /// killed server's interrupted upkeep moved the head its callers
    /// read, and their `--if-commit` writes were refused. `Ok(false)`:
    /// a table is no longer at the step's base (another process healed
    /// it first).
    async fn publish_upkeep_heal(
        &self,
        m: &super::manifest::Manifest,
        sc: &Sidecar,
        refs: &BTreeMap<TableKey, TableRef>,
    ) -> Result<bool, EngineError> {
        let refs: BTreeMap<TableKey, TableRef> = refs
            .iter()
            .filter_map(|(k, r)| {
                let base = &sc.tables.get(k)?.base;
                Some((
                    k.clone(),
                    TableRef {
                        rows_of: Some(base.rows_version()),
                        ..r.clone()
                    },
                ))
            })
            .collect();
        let published = self
            .manifests
            .publish(m.clone(), |cur| {
                let now = cur
                    .branches
                    .get(&sc.branch)
                    .ok_or_else(|| Self::unknown_branch(cur, &sc.branch))?;
                for k in refs.keys() {
                    let base = sc.tables.get(k).map(|t| &t.base);
                    if now.tables.get(k) != base {
                        return Err(super::stale(k, "another process healed it first"));
                    }
                }
                let mut next = cur.clone();
                if let Some(bs) = next.branches.get_mut(&sc.branch) {
                    for (k, r) in &refs {
                        bs.tables.insert(k.clone(), r.clone());
                    }
                }
                Ok((next, None))
            })
            .await;
        match published {
            Ok((published, _)) => {
                self.remember(&published);
                Ok(true)
            }
            Err(EngineError::Stale { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn audit(
        &self,
        sc: &Sidecar,
        action: HealAction,
        actor: &str,
        commit: Option<CommitId>,
    ) -> Result<(), EngineError> {
        fail::fail_point!("audit.append", |_| Err(fault("audit.append")));
        let rec = AuditRecord {
            write_id: sc.id.clone(),
            action,
            healed_by: actor.to_string(),
            time_ms: now_ms(),
            write: sc.clone(),
            commit,
        };
        let data = serde_json::to_vec_pretty(&rec).map_err(|e| EngineError::Corrupt {
            path: "audit".into(),
            reason: e.to_string(),
        })?;
        match self
            .manifests
            .control()
            .create(&format!("{AUDIT_DIR}{}.json", sc.id), data)
            .await
        {
            Ok(()) | Err(ControlError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every audit record, oldest first.
    pub async fn audit_records(&self) -> Result<Vec<AuditRecord>, EngineError> {
        let mut out = Vec::new();
        for p in self.manifests.control().list(AUDIT_DIR).await? {
            let bytes = self.manifests.control().get(&p).await?;
            out.push(
                serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt {
                    path: p.clone(),
                    reason: e.to_string(),
                })?,
            );
        }
        out.sort_by_key(|r: &AuditRecord| r.time_ms);
        Ok(out)
    }

    /// Heals, then finds every table whose Lance head is ahead of what its
    /// branch publishes; with `confirm`, verifies each head is readable and
    /// publishes them (one commit per branch, audited).
    pub async fn repair(&self, confirm: bool, actor: &str) -> Result<RepairReport, EngineError> {
        let _turn = self.commit_turn().await;
        let healed = self.heal(actor).await?;
        // Tables a running write (another process's) has moved are not drift.
        let now = now_ms();
        let busy: Vec<(Option<String>, TableKey)> = self
            .sidecars()
            .await?
            .into_iter()
            .filter(|sc| sc.may_be_live(now))
            .flat_map(|sc| {
                let lb = sc.lance_branch.clone();
                sc.tables.into_keys().map(move |k| (lb.clone(), k))
            })
            .collect();
        let m = self.manifest().await?;
        let mut drift = Vec::new();
        for (branch, bs) in &m.branches {
            for (key, r) in &bs.tables {
                if r.lance_branch != bs.lance_branch
                    || busy.contains(&(r.lance_branch.clone(), key.clone()))
                {
                    continue;
                }
                if let Some(head) = self.lance_head(key, r.lance_branch.as_deref()).await?
                    && head > r.version
                {
                    drift.push(Drift {
                        branch: branch.clone(),
                        table: key.clone(),
                        published: r.version,
                        head,
                    });
                }
            }
        }
        let mut published = Vec::new();
        if confirm {
            let mut by_branch: BTreeMap<&str, BTreeMap<TableKey, TableRef>> = BTreeMap::new();
            for d in &drift {
                let lance_branch = m.branches[&d.branch].lance_branch.clone();
                let at = TableAt {
                    uri: self.table_uri(&d.table),
                    branch: lance_branch.clone(),
                    version: d.head,
                };
                // Verified: the head opens and counts.
                let ds = table::open(&at).await?;
                table::count(&ds).await?;
                by_branch.entry(&d.branch).or_default().insert(
                    d.table.clone(),
                    TableRef {
                        version: d.head,
                        lance_branch,
                        rows_of: None,
                    },
                );
            }
            for (branch, refs) in by_branch {
                let id = ulid::Ulid::new().to_string();
                let names: Vec<&str> = refs.keys().map(TableKey::as_str).collect();
                let message = format!("repair: publish drifted {}", names.join(", "));
                let cur = self.manifest().await?;
                let (_, c) = self
                    .publish_tables(
                        &cur,
                        branch,
                        &refs,
                        (actor, &message, &id),
                        super::Extra::default(),
                        Some("repair"),
                        None,
                    )
                    .await?;
                let sc = Sidecar {
                    id: id.clone(),
                    branch: branch.to_string(),
                    lance_branch: cur
                        .branches
                        .get(branch)
                        .and_then(|b| b.lance_branch.clone()),
                    actor: actor.to_string(),
                    message,
                    started_ms: now_ms(),
                    tables: BTreeMap::new(),
                    merge_parent: None,
                    schema: None,
                    owner: Some(super::lease::me().clone()),
                    lease_until_ms: None,
                };
                self.audit(&sc, HealAction::RolledForward, actor, Some(c.id.clone()))
                    .await?;
                published.push(c.id);
            }
        }
        Ok(RepairReport {
            healed,
            drift,
            published,
        })
    }
}
