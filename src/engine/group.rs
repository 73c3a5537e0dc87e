//! Group commit: the prepared writes that queued while a commit step ran
//! are committed together (docs/architecture.md, "Group commit").
//!
//! One sidecar covers the whole group; each write's staged changes commit
//! in queue order through the table fence (each its own Lance version, so
//! time travel to any member still works); each touched table runs its
//! upkeep once, after the group's last change to it; one manifest publish
//! records one commit per write, chained on the branch (own id, actor,
//! parent, message) and answers each write with its own report.
//!
//! A group holds only writes that can share it: the same branch, tables
//! already on the branch's Lance branch (no fork), and nothing read that
//! an earlier member writes. Others are committed one by one after it. When
//! a member's table commit is refused (a Lance conflict with an earlier
//! member, a lost fence), the group's table commits are undone by heal and
//! its writes are committed one by one instead, each re-staged.

use std::collections::{BTreeMap, HashSet};

use std::sync::Arc;

use super::manifest::{Commit, TableKey, TableRef};
#[cfg_attr(not(feature = "failpoints"), allow(unused_imports))]
use super::{
    CommitId, EngineError, Graph, PreparedWrite, TableWrite, WriteReport, fault, lease, now_ms,
    recovery, stale,
};
use crate::storage::table::{self, TableAt};

/// The row ids an insert or upsert writes; `None` for a delete or an
/// overwrite (they take the whole table within a group).
fn row_ids(w: &TableWrite) -> Option<HashSet<String>> {
    match w {
        TableWrite::Append(b) | TableWrite::Upsert(b) => table::batch_ids(b),
        _ => None,
    }
}

/// What one member of a published group gets back.
type Answers = Vec<Result<WriteReport, EngineError>>;

impl Graph {
    /// Commits `writes` (in order) for a caller that holds the commit turn
    /// and has healed: as one group where they can share it, one by one
    /// otherwise. Answers one result per write, in order.
    pub async fn commit_group_here(&self, writes: Vec<PreparedWrite>) -> Answers {
        if writes.len() < 2 {
            let mut out = Vec::new();
            for w in writes {
                out.push(self.commit_prepared_here(w).await);
            }
            return out;
        }
        self.yield_to_waiters(
            writes
                .iter()
                .flat_map(|w| w.writes.keys().map(|k| (w.branch.clone(), k.to_string())))
                .collect(),
        )
        .await;
        let m = match self.manifest().await {
            Ok(m) => m,
            Err(e) => {
                let why = e.to_string();
                return writes
                    .iter()
                    .map(|_| {
                        Err(EngineError::Conflict {
                            reason: format!("reading the manifest failed: {why}"),
                        })
                    })
                    .collect();
            }
        };
        // Choose the members: index into `writes`.
        let branch = writes[0].branch.clone();
        let mut members: Vec<usize> = Vec::new();
        // Per table the group writes: the row ids its members write, or
        // `None` when a member deletes or replaces rows there (no other
        // member may then touch the table).
        let mut written: BTreeMap<TableKey, Option<HashSet<String>>> = BTreeMap::new();
        if let Some(bs) = m.branches.get(&branch) {
            for (i, w) in writes.iter().enumerate() {
                // A read of a table an earlier member writes fits only when
                // it checked just the absence of this write's own ids there
                // (an append's keys): the earlier members' ids must then
                // differ from them, which the claims below check.
                // A conditional write commits alone: its condition names
                // the head before it, which an earlier member moves.
                let mut fits = w.expect_head.is_none()
                    && w.branch == branch
                    && w.reads.iter().all(|k| {
                        let absent = w.absent.get(k).map(|a| &**a);
                        (!written.contains_key(k) || absent.is_some())
                            && self.read_holds(k, w.view.tables.get(k), bs.tables.get(k), absent)
                    })
                    && w.writes.iter().all(|(k, tw)| {
                        tw.change_op().is_some()
                            && bs
                                .tables
                                .get(k)
                                .is_some_and(|r| r.lance_branch == bs.lance_branch)
                    });
                let mut claims: Vec<(TableKey, Option<HashSet<String>>)> = Vec::new();
                for (k, tw) in &w.writes {
                    let ids = row_ids(tw);
                    let free = match (written.get(k), &ids) {
                        (None, _) => true,
                        (Some(Some(taken)), Some(mine)) => taken.is_disjoint(mine),
                        _ => false,
                    };
                    fits &= free;
                    claims.push((k.clone(), ids));
                }
                if fits {
                    members.push(i);
                    for (k, ids) in claims {
                        match (written.get_mut(&k), ids) {
                            (Some(Some(taken)), Some(mine)) => taken.extend(mine),
                            (Some(slot), _) => *slot = None,
                            (None, ids) => {
                                written.insert(k, ids);
                            }
                        }
                    }
                }
            }
        }
        tracing::debug!(
            writes = writes.len(),
            members = members.len(),
            "commit turn: group chosen"
        );
        let mut slots: Vec<Option<PreparedWrite>> = writes.into_iter().map(Some).collect();
        let mut answers: Vec<Option<Result<WriteReport, EngineError>>> =
            slots.iter().map(|_| None).collect();
        if members.len() >= 2 {
            let mut group: Vec<PreparedWrite> =
                members.iter().filter_map(|i| slots[*i].take()).collect();
            match self.group_core(&m, &branch, &mut group).await {
                Ok(reports) => {
                    for (i, r) in members.iter().zip(reports) {
                        answers[*i] = Some(Ok(r));
                    }
                }
                Err((e, true)) => {
                    tracing::debug!(error = %e, members = group.len(), "group commit falls back to one by one");
                    // Undo what the group committed, then commit each
                    // member alone (re-staged against the published head).
                    match self.heal("group-commit").await {
                        Ok(_) => {
                            for (i, w) in members.iter().zip(group) {
                                slots[*i] = Some(w);
                            }
                        }
                        Err(h) => {
                            let why = format!("a group commit failed ({e}) and heal failed: {h}");
                            for i in &members {
                                answers[*i] = Some(Err(EngineError::Conflict {
                                    reason: why.clone(),
                                }));
                            }
                        }
                    }
                }
                Err((e, false)) => {
                    // Like a single write's failure: the sidecar stays for
                    // heal, every member hears why.
                    let why = e.to_string();
                    let mut first = Some(e);
                    for i in &members {
                        answers[*i] =
                            Some(Err(first.take().unwrap_or_else(|| EngineError::Conflict {
                                reason: format!(
                                    "the group this write was committed in failed: {why}"
                                ),
                            })));
                    }
                }
            }
        }
        for (i, slot) in slots.iter_mut().enumerate() {
            if let Some(w) = slot.take() {
                answers[i] = Some(self.commit_prepared_here(w).await);
            }
        }
        answers
            .into_iter()
            .map(|a| {
                a.unwrap_or_else(|| {
                    Err(EngineError::Conflict {
                        reason: "the write was not committed; retry it".into(),
                    })
                })
            })
            .collect()
    }

    /// The group's commit protocol (A, B per member in order, upkeep per
    /// table, C one publish with a commit per member, D). On error after A
    /// the sidecar stays for heal. The flag beside an error says whether
    /// the members may be committed again one by one: only when a table
    /// commit was refused in B (nothing was published); the members keep
    /// their writes (staged changes consumed, re-staged then).
    async fn group_core(
        &self,
        m: &super::manifest::Manifest,
        branch: &str,
        group: &mut [PreparedWrite],
    ) -> Result<Vec<WriteReport>, (EngineError, bool)> {
        let bs = m
            .branches
            .get(branch)
            .ok_or_else(|| (Self::unknown_branch(m, branch), false))?;
        let target = bs.lance_branch.clone();
        let now = now_ms();
        let messages: Vec<&str> = group.iter().map(|w| w.message.as_str()).collect();
        let mut sidecar = recovery::Sidecar {
            id: ulid::Ulid::new().to_string(),
            branch: branch.to_string(),
            lance_branch: target.clone(),
            actor: group[0].actor.clone(),
            message: format!("group of {} writes: {}", group.len(), messages.join("; ")),
            started_ms: now,
            tables: BTreeMap::new(),
            merge_parent: None,
            schema: None,
            owner: Some(lease::me().clone()),
            lease_until_ms: Some(now + lease::LEASE_MS),
        };
        for w in group.iter() {
            for key in w.writes.keys() {
                let base = bs.tables.get(key).ok_or_else(|| {
                    (
                        EngineError::Corrupt {
                            path: "manifest".into(),
                            reason: format!("branch `{branch}` has no table `{key}`"),
                        },
                        false,
                    )
                })?;
                sidecar
                    .tables
                    .entry(key.clone())
                    .and_modify(|t| t.one_commit = false)
                    .or_insert_with(|| recovery::SidecarTable {
                        base: base.clone(),
                        committed: None,
                        one_commit: true,
                    });
            }
        }
        let live = lease::running(&sidecar.id);
        let t0 = std::time::Instant::now();
        // Where the turn's time went, for the debug line at its end.
        let mut restaged = 0usize;
        let mut stage_time = std::time::Duration::ZERO;
        let mut commit_time = std::time::Duration::ZERO;
        let mut publish_time = std::time::Duration::ZERO;
        // Phase A.
        self.write_sidecar(&sidecar).await.map_err(|e| (e, false))?;
        let shared = Arc::new(tokio::sync::Mutex::new(sidecar.clone()));
        let renewer = self.renew_lease(shared.clone());
        let result = async {
            // Phase B: each table's members in queue order, the tables
            // concurrently (nothing is shared between them until C).
            let mut chains: BTreeMap<TableKey, Vec<Link>> = BTreeMap::new();
            for (i, w) in group.iter_mut().enumerate() {
                let keys: Vec<TableKey> = w.writes.keys().cloned().collect();
                for key in keys {
                    let tw = w.writes.get(&key);
                    let link = Link {
                        member: i,
                        blind: tw.is_some_and(TableWrite::is_blind),
                        inserted: tw.and_then(TableWrite::inserted),
                        op: tw.and_then(TableWrite::change_op),
                        staged: w.staged.remove(&key),
                    };
                    chains.entry(key).or_default().push(link);
                }
            }
            let runs = chains.into_iter().map(|(key, links)| {
                let base = sidecar.tables[&key].base.clone();
                self.commit_chain(key, base, target.clone(), links, &sidecar.id)
            });
            let done = futures::future::try_join_all(runs).await?;
            let mut versions: Vec<BTreeMap<TableKey, u64>> = vec![BTreeMap::new(); group.len()];
            let mut finals: BTreeMap<TableKey, u64> = BTreeMap::new();
            for c in done {
                restaged += c.restaged;
                stage_time += c.stage_time;
                commit_time += c.commit_time;
                for (member, v) in c.versions {
                    versions[member].insert(c.key.clone(), v);
                }
                finals.insert(c.key, c.upkept);
            }
            {
                // Written only when a table took more than one member's
                // change: with one, heal tells it by its write-id tag.
                let mut sc = shared.lock().await;
                for (k, v) in &finals {
                    if let Some(t) = sc.tables.get_mut(k) {
                        t.committed = Some(*v);
                    }
                }
                if sc.tables.values().any(|t| !t.one_commit) {
                    self.write_sidecar(&sc).await.map_err(|e| (e, false))?;
                }
            }
            // The last member to change a table records its upkept version.
            let mut last_toucher: BTreeMap<&TableKey, usize> = BTreeMap::new();
            for (i, mine) in versions.iter().enumerate() {
                for k in mine.keys() {
                    last_toucher.insert(k, i);
                }
            }
            let steps: Vec<BTreeMap<TableKey, TableRef>> = versions
                .iter()
                .enumerate()
                .map(|(i, mine)| {
                    mine.iter()
                        .map(|(k, v)| {
                            let v = if last_toucher.get(k) == Some(&i) {
                                finals.get(k).copied().unwrap_or(*v)
                            } else {
                                *v
                            };
                            (
                                k.clone(),
                                TableRef {
                                    version: v,
                                    lance_branch: target.clone(),
                                    rows_of: None,
                                },
                            )
                        })
                        .collect()
                })
                .collect();
            // Phase C.
            fail::fail_point!("publish.before", |_| Err((fault("publish.before"), false)));
            let lease_until = shared.lock().await.lease_until_ms.unwrap_or(0);
            if now_ms() > lease_until - lease::LEASE_MS / 3 {
                return Err((
                    EngineError::LeaseLost {
                        write_id: sidecar.id.clone(),
                    },
                    false,
                ));
            }
            // What members read is expected as they read it; a read that
            // held at the group's base (membership) is expected at the
            // base, like every table written.
            let mut expect: BTreeMap<TableKey, Option<TableRef>> = BTreeMap::new();
            for w in group.iter() {
                for k in &w.reads {
                    let at = if w.absent.contains_key(k) {
                        bs.tables.get(k)
                    } else {
                        w.view.tables.get(k)
                    };
                    expect.insert(k.clone(), at.cloned());
                }
            }
            for (k, t) in &sidecar.tables {
                expect.insert(k.clone(), Some(t.base.clone()));
            }
            let who: Vec<(String, String)> = group
                .iter()
                .map(|w| (w.actor.clone(), w.message.clone()))
                .collect();
            let group_id = sidecar.id.clone();
            let t = std::time::Instant::now();
            let (published, commits) = self
                .manifests
                .publish_many(m.clone(), |cur| {
                    let now = cur
                        .branches
                        .get(branch)
                        .ok_or_else(|| Self::unknown_branch(cur, branch))?;
                    for (k, want) in &expect {
                        if !TableRef::same_rows(now.tables.get(k), want.as_ref()) {
                            return Err(stale(k, "another write published it first"));
                        }
                    }
                    let mut next = cur.clone();
                    let bs = next
                        .branches
                        .get_mut(branch)
                        .ok_or_else(|| Self::unknown_branch(cur, branch))?;
                    let mut commits = Vec::new();
                    // Monotonic within the group: ids sort in chain order.
                    let mut ids = ulid::Generator::new();
                    for ((actor, message), refs) in who.iter().zip(&steps) {
                        for (k, r) in refs {
                            bs.tables.insert(k.clone(), r.clone());
                        }
                        let id = ids.generate().unwrap_or_else(|_| ulid::Ulid::new());
                        let c = Commit {
                            id: CommitId::new(id),
                            parents: vec![bs.head.clone()],
                            branch: branch.to_string(),
                            actor: actor.clone(),
                            timestamp_ms: now_ms(),
                            message: message.clone(),
                            tables: bs.tables.clone(),
                            write_id: Some(group_id.clone()),
                            recovery: None,
                            schema: next.schema.clone(),
                            // Set by the publish.
                            manifest_version: None,
                        };
                        bs.head = c.id.clone();
                        commits.push(c);
                    }
                    Ok((next, commits))
                })
                .await
                .map_err(|e| (e, false))?;
            publish_time = t.elapsed();
            fail::fail_point!("publish.after", |_| Err((fault("publish.after"), false)));
            Ok((published, commits))
        }
        .await;
        drop(renewer);
        drop(live);
        let (published, commits) = match result {
            Ok(r) => r,
            Err(e) => {
                // Left for heal; other processes may heal it at once.
                self.release_lease(&shared).await;
                self.heal_due
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                return Err(e);
            }
        };
        self.remember(&published);
        // Wanted only once published (see `commit_prepared_here`).
        for k in sidecar.tables.keys() {
            self.upkeep_after(branch, k);
        }
        // Phase D. A sidecar left behind is retired by the next commit
        // step's heal.
        if let Err(e) = self.delete_sidecar(&sidecar.id).await {
            self.heal_due
                .store(true, std::sync::atomic::Ordering::SeqCst);
            return Err((e, false));
        }
        tracing::debug!(
            members = group.len(),
            restaged,
            stage_ms = stage_time.as_secs_f64() * 1e3,
            table_commits_ms = commit_time.as_secs_f64() * 1e3,
            publish_ms = publish_time.as_secs_f64() * 1e3,
            total_ms = t0.elapsed().as_secs_f64() * 1e3,
            "group committed"
        );
        Ok(group
            .iter_mut()
            .zip(commits)
            .map(|(w, c)| WriteReport {
                commit: Some(c),
                manifest_version: Some(published.version),
                written: std::mem::take(&mut w.written),
                deleted: std::mem::take(&mut w.deleted),
                message: w.message.clone(),
            })
            .collect())
    }

    /// Phase B for one table of a group: commits its members' changes in
    /// queue order, each exactly as the version after the one before
    /// (staged again when its staging no longer holds, see
    /// [`Graph::keeps_staged`]), then its upkeep once when it is not left
    /// to the upkeep task. Errors as [`Graph::group_core`]'s.
    async fn commit_chain(
        &self,
        key: TableKey,
        base: TableRef,
        target: Option<String>,
        links: Vec<Link>,
        write_id: &str,
    ) -> Result<ChainDone, (EngineError, bool)> {
        let mut done = ChainDone {
            key: key.clone(),
            versions: Vec::with_capacity(links.len()),
            upkept: base.version,
            restaged: 0,
            stage_time: std::time::Duration::ZERO,
            commit_time: std::time::Duration::ZERO,
        };
        // Fenced (its handler knows the head), like a single write's: the
        // chain's commits list no versions after the one before
        // ([`table::open_for_write`]).
        let ds = table::open_for_write(
            &TableAt {
                uri: self.table_uri(&key),
                branch: target.clone(),
                version: base.version,
            },
            target.as_deref(),
        )
        .await
        .map_err(|e| (e.into(), false))?;
        let mut ds = Arc::new(ds);
        let mut current = base.version;
        let members = links.len();
        for (at, link) in links.into_iter().enumerate() {
            fail::fail_point!("table.commit", |_| Err((fault("table.commit"), false)));
            // Staged against an older version than the group's base:
            // staged again (see `Graph::commit_table`), unless it only
            // inserts ids no version since did.
            let staged = link.staged.filter(|c| {
                link.blind
                    || c.read_version == base.version
                    || self.keeps_staged(
                        &key,
                        target.as_deref(),
                        c,
                        current,
                        link.inserted.as_deref(),
                    )
            });
            let change = match staged {
                Some(c) => c,
                None => {
                    done.restaged += 1;
                    let t = std::time::Instant::now();
                    let op = link.op.ok_or_else(|| {
                        (
                            EngineError::Corrupt {
                                path: key.to_string(),
                                reason: "a grouped write without a change".into(),
                            },
                            false,
                        )
                    })?;
                    let c = table::stage(ds.clone(), op)
                        .await
                        .map_err(|e| (e.into(), false))?;
                    done.stage_time += t.elapsed();
                    c
                }
            };
            let t = std::time::Instant::now();
            // Only the chain's last commit writes Lance's version hint.
            let commit = table::commit_staged(ds, change, current + 1, write_id);
            let next = if at + 1 < members {
                table::without_version_hint(commit).await
            } else {
                commit.await
            }
            .map_err(|e| {
                if e.conflict {
                    // Commit the members one by one instead.
                    let why = format!("a grouped commit was refused: {}", e.message);
                    (stale(&key, &why), true)
                } else {
                    (e.into(), false)
                }
            })?;
            done.commit_time += t.elapsed();
            current = next.manifest().version;
            if let Some(mut l) = self.manifests.inserted() {
                l.record(&key, target.as_deref(), current, link.inserted);
            }
            done.versions.push((link.member, current));
            ds = Arc::new(next);
        }
        done.upkept = current;
        // Left to the background: recorded once the group is published.
        if self.upkeep_background {
            return Ok(done);
        }
        let ds = Arc::try_unwrap(ds).unwrap_or_else(|a| (*a).clone());
        let upkept = match table::upkeep_if_due(ds, &self.index_specs(&key)).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(table = %key, error = %e, "index maintenance failed");
                current
            }
        };
        if upkept > current
            && let Some(mut l) = self.manifests.inserted()
        {
            l.record_no_rows(&key, target.as_deref(), current + 1, upkept);
        }
        done.upkept = upkept;
        Ok(done)
    }
}

/// One member's change to one table of a group, taken from the member so
/// that the group's tables can commit concurrently.
struct Link {
    /// The member's index in the group.
    member: usize,
    /// The change as staged while the write was prepared.
    staged: Option<table::StagedChange>,
    /// The change to stage again when that staging no longer holds.
    op: Option<table::ChangeOp>,
    /// [`TableWrite::is_blind`].
    blind: bool,
    /// [`TableWrite::inserted`].
    inserted: super::ledger::Inserted,
}

/// What Phase B did on one table of a group.
struct ChainDone {
    key: TableKey,
    /// (member, the version its change committed as), in queue order.
    versions: Vec<(usize, u64)>,
    /// The table's version after the last change and its upkeep.
    upkept: u64,
    restaged: usize,
    stage_time: std::time::Duration,
    commit_time: std::time::Duration,
}
