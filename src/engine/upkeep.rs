//! Upkeep between commits (docs/architecture.md, "Upkeep"): index
//! extension, index folding and compaction of small fragments, off the
//! commit step.
//!
//! A handle made with [`Graph::with_background_upkeep`] (the GraphActor's)
//! commits a write's tables without their upkeep and records the (branch,
//! table) pair as wanting it. [`Graph::upkeep_once`] then takes one pair:
//! it writes the new index segments or compacted fragments *outside* the
//! commit turn, against the published version ([`table::prepare_upkeep`]),
//! and takes the commit turn only to commit them as the table's next
//! Lance version ([`table::commit_upkeep`]: one transaction that Lance
//! rebases over the writes committed meanwhile) and to publish that
//! version in the manifest. Upkeep changes no row, so it records no commit
//! in the branch's history: the branch's table reference moves, its head
//! commit stays, and time travel to any commit reads what it read before.
//! The step is fenced like a write (sidecar, fenced table commit, publish
//! refused if the table moved), so heal treats an interrupted one as an
//! interrupted write and rolls it back.
//!
//! Reads stay exact while upkeep lags: Lance answers an indexed filter
//! from the index plus a scan of the fragments it does not cover, and
//! `fuzzy` completes its search of uncovered fragments itself
//! ([`table::full_text`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::manifest::{TableKey, TableRef};
use super::{CommitId, EngineError, Graph, lease, now_ms, recovery, stale};
use crate::storage::table::{self, TableAt};

/// The (branch, table) pairs written since their last upkeep.
pub type Wanted = Arc<Mutex<WantedSet>>;

/// A set of (branch, table) pairs taken round-robin: [`WantedSet::pop_next`]
/// takes the first pair after the one it took last (in (branch, table)
/// order, wrapping), so a table written again while its upkeep runs
/// cannot keep the others waiting. Taking the smallest pair each time did:
/// under 8 callers each inserting into its own node type, `node:W0` was
/// compacted about every 6 versions and the seven other tables not at
/// all, their Lance commits building and writing manifests of hundreds of
/// one-row fragments (docs/performance.md,
/// "Upkeep round-robin, huge pages off, commit turns on one CPU").
#[derive(Debug, Default)]
pub struct WantedSet {
    pairs: BTreeSet<(String, TableKey)>,
    last: Option<(String, TableKey)>,
}

impl WantedSet {
    /// Adds `pair`; false when it was already wanted.
    pub fn insert(&mut self, pair: (String, TableKey)) -> bool {
        self.pairs.insert(pair)
    }

    /// Removes `pair`; false when it was not wanted.
    pub fn remove(&mut self, pair: &(String, TableKey)) -> bool {
        self.pairs.remove(pair)
    }

    /// How many pairs are wanted.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// Takes the pair after the one taken last (the first pair when none
    /// is after it), or `None` when the set is empty.
    pub fn pop_next(&mut self) -> Option<(String, TableKey)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let next = match &self.last {
            Some(last) => self
                .pairs
                .range((Excluded(last), Unbounded))
                .next()
                .or_else(|| self.pairs.first()),
            None => self.pairs.first(),
        }
        .cloned()?;
        self.pairs.remove(&next);
        self.last = Some(next.clone());
        Some(next)
    }
}

impl Extend<(String, TableKey)> for WantedSet {
    fn extend<I: IntoIterator<Item = (String, TableKey)>>(&mut self, pairs: I) {
        self.pairs.extend(pairs);
    }
}

impl IntoIterator for WantedSet {
    type Item = (String, TableKey);
    type IntoIter = std::collections::btree_set::IntoIter<(String, TableKey)>;
    fn into_iter(self) -> Self::IntoIter {
        self.pairs.into_iter()
    }
}

/// The actor named in an upkeep's sidecar and in heal's audit of it.
pub const UPKEEP_ACTOR: &str = "omnigraph-upkeep";

/// What one [`Graph::upkeep_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpkeepDone {
    /// Nothing was wanted.
    Idle,
    /// The table needed nothing (yet): its uncovered fragments are within
    /// the bounds of [`table::indexes_due`].
    NothingDue { branch: String, table: TableKey },
    /// Committed and published: the table's new version and what was done.
    Published {
        branch: String,
        table: TableKey,
        version: u64,
        what: String,
    },
    /// A write changed what the upkeep rewrote, or another process holds
    /// the table: wanted again, tried in a later round. `reason`: Lance's
    /// refusal.
    Deferred {
        branch: String,
        table: TableKey,
        reason: String,
    },
}

/// How long the upkeep task of [`Graph::with_upkeep_task`] waits after
/// being woken, so that a burst of writes commits before its step reads
/// the table.
pub const UPKEEP_PAUSE: Duration = Duration::from_millis(20);

/// What a handle's upkeep task and its owners share.
#[derive(Default, Debug)]
pub(crate) struct UpkeepTask {
    /// Woken by each commit that leaves upkeep wanted, and by the owner's drop.
    wake: tokio::sync::Notify,
    /// Set when the last user handle is gone: the task ends.
    closed: AtomicBool,
}

/// Held by the user's clones of a handle with an upkeep task; dropping the
/// last one stops the task.
#[derive(Debug)]
pub(crate) struct UpkeepTaskOwner(Arc<UpkeepTask>);

impl Drop for UpkeepTaskOwner {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        self.0.wake.notify_one();
    }
}

/// How long the upkeep task waits before it retries a deferred step when
/// no commit wakes it first.
pub const UPKEEP_RETRY: Duration = Duration::from_millis(200);

/// The longest wait before the upkeep task retries after failed steps (the
/// wait doubles from [`UPKEEP_RETRY`] with each failure in a row).
pub const UPKEEP_RETRY_MAX: Duration = Duration::from_secs(10);

/// The upkeep task: after each wake-up (and [`UPKEEP_PAUSE`]), upkeep
/// steps until nothing is wanted, or one is deferred or fails: that table
/// stays wanted and is retried at the next commit's wake-up or after
/// [`UPKEEP_RETRY`] (doubling after failures in a row, up to
/// [`UPKEEP_RETRY_MAX`]), whichever comes first, so upkeep wanted after
/// the last write still happens. A step that panics is logged and the task
/// goes on.
async fn upkeep_loop(g: Graph, task: Arc<UpkeepTask>) {
    // Set when a step was deferred or failed: retry after this long even
    // if no commit wakes the task.
    let mut retry: Option<Duration> = None;
    let mut failures: u32 = 0;
    loop {
        match retry {
            None => task.wake.notified().await,
            Some(d) => {
                let _ = tokio::time::timeout(d, task.wake.notified()).await;
            }
        }
        if task.closed.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(UPKEEP_PAUSE).await;
        retry = None;
        while !task.closed.load(Ordering::SeqCst) {
            let step = g.clone();
            let t = std::time::Instant::now();
            let r = tokio::spawn(async move { step.upkeep_once().await }).await;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            let failed = |failures: &mut u32| {
                *failures = failures.saturating_add(1);
                let d = UPKEEP_RETRY.saturating_mul(1u32 << (*failures).min(6));
                Some(d.min(UPKEEP_RETRY_MAX))
            };
            match r {
                Ok(Ok(UpkeepDone::Idle)) => {
                    failures = 0;
                    break;
                }
                Ok(Ok(done @ UpkeepDone::Deferred { .. })) => {
                    tracing::debug!(?done, ms, "upkeep step");
                    retry = Some(UPKEEP_RETRY);
                    break;
                }
                Ok(Ok(done)) => {
                    failures = 0;
                    tracing::debug!(?done, ms, "upkeep step");
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "upkeep step failed");
                    retry = failed(&mut failures);
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, "upkeep step panicked");
                    retry = failed(&mut failures);
                    break;
                }
            }
        }
    }
}

impl Graph {
    /// This handle with upkeep left to [`Graph::upkeep_once`]: its commits
    /// record the tables they wrote instead of extending indexes and
    /// compacting in the commit step. Clones share the record.
    pub fn with_background_upkeep(mut self) -> Graph {
        self.upkeep_background = true;
        self
    }

    /// This handle with its own upkeep task: like
    /// [`Graph::with_background_upkeep`], commits leave index extension,
    /// folding and compaction out of the commit step, and a task spawned on
    /// the current tokio runtime runs them ([`Graph::upkeep_once`]) after
    /// each commit that wants some, [`UPKEEP_PAUSE`] later, one step at a
    /// time until nothing is wanted; a write never waits for it beyond the
    /// step's short commit turn. For a long-lived embedded handle (a
    /// library user, `omnigraph-bench`); a one-shot process (the CLI)
    /// keeps upkeep in the commit step, since its task would die with it.
    /// Upkeep that was wanted when the last clone is dropped is left to
    /// the next write of that table (reads stay exact meanwhile: module
    /// docs). Outside a tokio runtime the handle comes back unchanged.
    pub fn with_upkeep_task(mut self) -> Graph {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return self;
        };
        self.upkeep_background = true;
        let task = Arc::new(UpkeepTask::default());
        let mut worker = self.clone();
        worker.upkeep_task = None;
        self.upkeep_task = Some(Arc::new(UpkeepTaskOwner(task.clone())));
        rt.spawn(upkeep_loop(worker, task));
        self
    }

    /// Caps the intermediate rows (bindings) one read query through this
    /// handle may build at `rows` (at least 1); a query that would build
    /// more fails with [`EngineError::Budget`] as soon as it gets there,
    /// before its memory grows further. Default:
    /// [`super::budget::QUERY_MAX_ROWS`] or `OMNIGRAPH_QUERY_MAX_ROWS`.
    pub fn with_query_max_rows(mut self, rows: usize) -> Graph {
        self.query_limits.max_rows = rows.max(1);
        self
    }

    /// Caps one read query's wall time through this handle at `ms`
    /// milliseconds (at least 1), waits for storage included; a query that
    /// runs longer fails with [`EngineError::Budget`] naming `wall time
    /// (ms)` and frees what it held. Default:
    /// [`super::budget::QUERY_MAX_MS`] or `OMNIGRAPH_QUERY_MAX_MS`.
    pub fn with_query_max_ms(mut self, ms: u64) -> Graph {
        self.query_limits.max_ms = ms.max(1);
        self
    }

    /// Every limit of one read query through this handle (rows, wall
    /// time, bytes, traversal expansions; docs/server.md, "Limits").
    /// Default: [`super::budget::QueryLimits::server`]; the CLI uses
    /// [`super::budget::QueryLimits::cli`].
    pub fn with_query_limits(mut self, limits: super::budget::QueryLimits) -> Graph {
        self.query_limits = limits;
        self
    }

    /// This handle with every write conditional on `branch head ==
    /// expected` (`None`: unconditional): a write whose branch head is
    /// another commit when it is prepared, when it commits, or when it
    /// publishes fails with [`EngineError::PreconditionFailed`] and has
    /// no effect; it is never prepared again. A write that changes
    /// nothing answers the same when the head moved. Reference:
    /// docs/user/mutations/index.md, "Conditional writes".
    pub fn if_head(mut self, expected: Option<CommitId>) -> Graph {
        self.expect_head = expected;
        self
    }

    /// The branch head writes through this handle require.
    pub fn expected_head(&self) -> Option<&CommitId> {
        self.expect_head.as_ref()
    }

    /// This handle's query limits.
    pub fn query_limits(&self) -> super::budget::QueryLimits {
        self.query_limits
    }

    /// Records that `key` on `branch` was written and wants upkeep, when
    /// this handle leaves upkeep to the background; `false` (record
    /// nothing) when the commit step runs it itself.
    pub(crate) fn upkeep_after(&self, branch: &str, key: &TableKey) -> bool {
        if !self.upkeep_background {
            return false;
        }
        if let Ok(mut w) = self.upkeep_wanted.lock() {
            w.insert((branch.to_string(), key.clone()));
        }
        if let Some(t) = &self.upkeep_task {
            t.0.wake.notify_one();
        }
        true
    }

    /// How many (branch, table) pairs want upkeep, counting the one an
    /// upkeep step of this handle (or a clone) is running now: 0 means
    /// no upkeep is wanted or under way.
    pub fn upkeep_pending(&self) -> usize {
        self.upkeep_wanted.lock().map(|w| w.len()).unwrap_or(0)
            + self.upkeep_running.load(Ordering::SeqCst)
    }

    /// Moves the (branch, table) pairs whose compaction was held beside a
    /// flood ([`Graph::upkeep_once_beside_flood`]) back to the wanted
    /// ones, for the next upkeep step; returns how many. The GraphActor
    /// calls it once no bulk write is queued or running. Held pairs are
    /// not counted by [`Graph::upkeep_pending`].
    pub fn release_held_upkeep(&self) -> usize {
        let held = match self.upkeep_held.lock() {
            Ok(mut h) => std::mem::take(&mut *h),
            Err(_) => return 0,
        };
        let n = held.len();
        if n > 0
            && let Ok(mut w) = self.upkeep_wanted.lock()
        {
            w.extend(held);
        }
        n
    }

    /// What upkeep `key` on `branch` is due for at its published version:
    /// `compaction` when [`table::compaction_due`], then the name of
    /// every index [`table::indexes_due`] names. Empty when none; errors:
    /// an unknown branch or table, storage.
    pub async fn upkeep_due(
        &self,
        branch: &str,
        key: &TableKey,
    ) -> Result<Vec<String>, EngineError> {
        let m = self.manifest().await?;
        let bs = m
            .branches
            .get(branch)
            .ok_or_else(|| Self::unknown_branch(&m, branch))?;
        let r = bs.tables.get(key).ok_or_else(|| EngineError::Corrupt {
            path: "manifest".into(),
            reason: format!("branch `{branch}` has no table `{key}`"),
        })?;
        let ds = table::open(&TableAt {
            uri: self.table_uri(key),
            branch: r.lance_branch.clone(),
            version: r.version,
        })
        .await?;
        let mut due = Vec::new();
        if table::compaction_due(&ds).await?.is_some() {
            due.push("compaction".to_string());
        }
        for spec in table::indexes_due(&ds, &self.index_specs(key)).await? {
            due.push(spec.name());
        }
        Ok(due)
    }

    fn want_again(&self, branch: &str, key: &TableKey) {
        if let Ok(mut w) = self.upkeep_wanted.lock() {
            w.insert((branch.to_string(), key.clone()));
        }
    }

    /// Runs the upkeep one wanted table is due for, if any: prepares it
    /// outside the commit turn, then commits and publishes it in a short
    /// turn (module docs). A table with more due (indexes after a
    /// compaction, the next missing index) stays wanted. Errors: storage or Lance failing; the
    /// table is wanted again and an interrupted step is left to heal.
    pub async fn upkeep_once(&self) -> Result<UpkeepDone, EngineError> {
        self.upkeep_once_beside_flood(None).await
    }

    /// [`Graph::upkeep_once`] beside a flood when `bulk` is given (the
    /// GraphActor's bulk runtime, nice 10, while a bulk write is queued or
    /// running): the step's dear part (the new index segments or
    /// compacted fragments, written outside the commit turn) runs there,
    /// and a compaction whose commit would remap indexes
    /// ([`table::Compaction::remaps`]) is held until
    /// [`Graph::release_held_upkeep`] (the flood's end) while the indexes
    /// due are kept up. Its commit turn (Lance commit, publish) runs where
    /// the caller runs it: a commit turn run on the bulk runtime waited
    /// there behind the flood's prepares, and a compaction's index remap
    /// held the turn for 163 ms, while every light writer's commit waited
    /// for that turn (docs/architecture.md, "Upkeep"). Errors as
    /// [`Graph::upkeep_once`]'s.
    pub async fn upkeep_once_beside_flood(
        &self,
        bulk: Option<tokio::runtime::Handle>,
    ) -> Result<UpkeepDone, EngineError> {
        /// Counts a running step until dropped (the step's future may be
        /// dropped mid-way).
        struct Running(Arc<std::sync::atomic::AtomicUsize>);
        impl Drop for Running {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        // Counted as running before the pair leaves the wanted set (under
        // its lock), so [`Graph::upkeep_pending`] never reads 0 between
        // the two while a step is about to run.
        let next = self.upkeep_wanted.lock().ok().and_then(|mut w| {
            self.upkeep_running.fetch_add(1, Ordering::SeqCst);
            let running = Running(self.upkeep_running.clone());
            w.pop_next().map(|p| (p, running))
        });
        let Some(((branch, key), _running)) = next else {
            return Ok(UpkeepDone::Idle);
        };
        // Boxed: inlined, the step's future nested deeper than rustc's
        // layout query allows in callers' async bodies (a clean build of
        // `tests/engine` failed on `optimize`'s).
        let r = Box::pin(self.upkeep_table(&branch, &key, bulk)).await;
        if r.is_err() {
            self.want_again(&branch, &key);
        }
        r
    }

    async fn upkeep_table(
        &self,
        branch: &str,
        key: &TableKey,
        bulk: Option<tokio::runtime::Handle>,
    ) -> Result<UpkeepDone, EngineError> {
        let idle = || UpkeepDone::NothingDue {
            branch: branch.to_string(),
            table: key.clone(),
        };
        let m = self.manifest().await?;
        let Some(bs) = m.branches.get(branch) else {
            return Ok(idle());
        };
        let Some(planned) = bs.tables.get(key).cloned() else {
            return Ok(idle());
        };
        if planned.lance_branch != bs.lance_branch {
            // Still the parent's lineage: the branch's first write forks it.
            return Ok(idle());
        }
        let specs = self.index_specs(key);
        let ds = table::open(&TableAt {
            uri: self.table_uri(key),
            branch: planned.lance_branch.clone(),
            version: planned.version,
        })
        .await?;
        // The dear part, outside the commit turn.
        let t0 = std::time::Instant::now();
        let prepared = match bulk {
            Some(rt) => rt
                .spawn(async move { table::prepare_upkeep(&ds, &specs, true).await })
                .await
                .map_err(|e| {
                    if e.is_panic() {
                        // A panic stays a panic (the actor's supervisor
                        // restarts it), wherever the part ran.
                        std::panic::resume_unwind(e.into_panic());
                    }
                    EngineError::Table {
                        table: key.to_string(),
                        reason: format!("upkeep prepare cancelled: {e}"),
                    }
                })?,
            None => table::prepare_upkeep(&ds, &specs, false).await,
        }?;
        if prepared.held {
            if let Ok(mut h) = self.upkeep_held.lock() {
                h.insert((branch.to_string(), key.clone()));
            }
        }
        let Some(work) = prepared.work else {
            return Ok(idle());
        };
        let what = work.describe();
        let prepare_ms = t0.elapsed().as_secs_f64() * 1e3;
        let _turn = self.begin_write(UPKEEP_ACTOR).await?;
        let turn_started = std::time::Instant::now();
        let m = self.manifest().await?;
        let Some(bs) = m.branches.get(branch) else {
            return Ok(idle());
        };
        let Some(base) = bs.tables.get(key).cloned() else {
            return Ok(idle());
        };
        if base.lance_branch != planned.lance_branch || bs.lance_branch != base.lance_branch {
            return Ok(idle());
        }
        let now = now_ms();
        let sidecar = recovery::Sidecar {
            id: ulid::Ulid::new().to_string(),
            branch: branch.to_string(),
            lance_branch: bs.lance_branch.clone(),
            actor: UPKEEP_ACTOR.to_string(),
            message: format!("{what} of {key}"),
            started_ms: now,
            tables: BTreeMap::from([(
                key.clone(),
                recovery::SidecarTable {
                    base: base.clone(),
                    committed: None,
                    one_commit: false,
                },
            )]),
            merge_parent: None,
            schema: None,
            owner: Some(lease::me().clone()),
            lease_until_ms: Some(now + lease::LEASE_MS),
        };
        let live = lease::running(&sidecar.id);
        self.write_sidecar(&sidecar).await?;
        let at = TableAt {
            uri: self.table_uri(key),
            branch: base.lance_branch.clone(),
            version: base.version,
        };
        let version = match table::commit_upkeep(&at, work, &sidecar.id).await {
            Ok(v) => v,
            Err(e) => {
                drop(live);
                // Left to heal, which rolls back whatever landed (a
                // compaction commits twice) and finds nothing to undo when
                // Lance refused before anything landed (a rebase conflict,
                // a lost fence). The lease is released so that any process
                // may heal it at once.
                self.release_lease(&tokio::sync::Mutex::new(sidecar)).await;
                self.heal_due
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                self.want_again(branch, key);
                if e.conflict {
                    return Ok(UpkeepDone::Deferred {
                        branch: branch.to_string(),
                        table: key.clone(),
                        reason: e.message,
                    });
                }
                return Err(e.into());
            }
        };
        if version == base.version {
            drop(live);
            self.delete_sidecar(&sidecar.id).await?;
            return Ok(idle());
        }
        fail::fail_point!("upkeep.publish", |_| {
            self.heal_due
                .store(true, std::sync::atomic::Ordering::SeqCst);
            Err(super::fault("upkeep.publish"))
        });
        let moved = TableRef {
            version,
            lance_branch: base.lance_branch.clone(),
            rows_of: Some(base.rows_version()),
        };
        let published = self
            .manifests
            .publish(m.clone(), |cur| {
                let now = cur
                    .branches
                    .get(branch)
                    .ok_or_else(|| Self::unknown_branch(cur, branch))?;
                if now.tables.get(key) != Some(&base) {
                    return Err(stale(key, "a write published it during upkeep"));
                }
                let mut next = cur.clone();
                if let Some(bs) = next.branches.get_mut(branch) {
                    bs.tables.insert(key.clone(), moved.clone());
                }
                Ok((next, None))
            })
            .await;
        drop(live);
        let (published, _) = match published {
            Ok(p) => p,
            Err(e) => {
                // Left for heal, which rolls the table back.
                self.release_lease(&tokio::sync::Mutex::new(sidecar)).await;
                self.heal_due
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                return Err(e);
            }
        };
        self.remember(&published);
        if let Some(mut l) = self.manifests.inserted() {
            l.record_no_rows(key, base.lance_branch.as_deref(), base.version + 1, version);
        }
        if let Err(e) = self.delete_sidecar(&sidecar.id).await {
            self.heal_due
                .store(true, std::sync::atomic::Ordering::SeqCst);
            return Err(e);
        }
        // More may be due: the indexes after a compaction, the next
        // missing index after a build. The next round looks.
        self.want_again(branch, key);
        tracing::debug!(
            table = %key,
            branch,
            version,
            what = %what,
            prepare_ms,
            turn_ms = turn_started.elapsed().as_secs_f64() * 1e3,
            "upkeep published"
        );
        Ok(UpkeepDone::Published {
            branch: branch.to_string(),
            table: key.clone(),
            version,
            what,
        })
    }
}

/// Upkeep steps one `optimize` runs at most (each is one table's
/// compaction or one index build or fold).
const OPTIMIZE_STEPS: usize = 10_000;

impl Graph {
    /// `omnigraph optimize`: every upkeep step due on every table of
    /// every branch, one after the other until none is (compaction of
    /// small fragments, index builds for declared indexes a table lacks —
    /// one declared after its data, say — and folds of index deltas; the
    /// same steps a server runs between commits, docs/architecture.md
    /// "Upkeep"). Non-destructive: old versions stay until `cleanup`.
    /// Returns each step that published, and the tables deferred (a write
    /// held them; run it again). Errors: storage, Lance.
    pub async fn optimize(&self) -> Result<Vec<UpkeepDone>, EngineError> {
        let m = self.manifest().await?;
        if let Ok(mut w) = self.upkeep_wanted.lock() {
            for (name, bs) in &m.branches {
                for key in bs.tables.keys() {
                    w.insert((name.clone(), key.clone()));
                }
            }
        }
        let mut done = Vec::new();
        let mut deferred = 0;
        for _ in 0..OPTIMIZE_STEPS {
            match self.upkeep_once().await? {
                UpkeepDone::Idle => break,
                UpkeepDone::NothingDue { .. } => {}
                d @ UpkeepDone::Published { .. } => done.push(d),
                d @ UpkeepDone::Deferred { .. } => {
                    // Wanted again; after a few tries, leave it.
                    deferred += 1;
                    if deferred > 8 {
                        if let (UpkeepDone::Deferred { branch, table, .. }, Ok(mut w)) =
                            (&d, self.upkeep_wanted.lock())
                        {
                            w.remove(&(branch.clone(), table.clone()));
                        }
                        done.push(d);
                    }
                }
            }
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(table: &str) -> (String, TableKey) {
        ("main".to_string(), TableKey::node(table))
    }

    #[test]
    fn wanted_pairs_are_taken_round_robin_even_when_one_is_wanted_again_at_once() {
        let mut w = WantedSet::default();
        w.extend(["W0", "W1", "W2"].map(pair));
        let mut taken = Vec::new();
        for _ in 0..6 {
            let p = w.pop_next().expect("a pair is wanted");
            taken.push(p.1.name().to_string());
            // Every table is written again while its upkeep runs.
            w.insert(p);
        }
        assert_eq!(taken, ["W0", "W1", "W2", "W0", "W1", "W2"]);
        assert_eq!(w.len(), 3);
        assert!(w.remove(&pair("W1")));
        assert!(!w.remove(&pair("W1")));
        assert_eq!(
            w.pop_next().map(|p| p.1.name().to_string()).as_deref(),
            Some("W0")
        );
        assert_eq!(
            w.pop_next().map(|p| p.1.name().to_string()).as_deref(),
            Some("W2")
        );
        assert!(w.pop_next().is_none());
        assert!(w.is_empty());
    }
}
