//! The commit protocol of one write (docs/architecture.md, "The write
//! path"): sidecar, fenced table commits, manifest publish with
//! create-if-absent, sidecar removal; leases, read checks, kept stagings.

use super::*;

impl Graph {
    /// The commit step of one prepared write, for a caller that holds the
    /// commit turn and has healed ([`Graph::begin_write`]): the GraphActor's
    /// commit queue calls it for each write of a turn. Errors as
    /// [`Graph::commit_prepared`]'s.
    pub async fn commit_prepared_here(&self, w: PreparedWrite) -> Result<WriteReport, EngineError> {
        let mut w = w;
        self.yield_to_waiters(
            w.writes
                .keys()
                .map(|k| (w.branch.clone(), k.to_string()))
                .collect(),
        )
        .await;
        let mut head = None;
        if let Some(want) = &w.expect_head {
            // Refused here, before any effect, when the head this process
            // knows has moved; the publish decides for other processes.
            let m = match self.known_head() {
                Some(m) => m,
                None => self.manifest().await?,
            };
            Self::require_head(&m, &w.branch, want)?;
        }
        if let Some(redo) = w.redo.take() {
            // The head this handle last saw (its own publishes included);
            // one another process published since is met by the fences.
            let m = match self.known_head() {
                Some(m) => m,
                None => self.manifest().await?,
            };
            let moved = match m.branches.get(&w.branch) {
                Some(bs) => w.reads.iter().any(|k| {
                    !self.read_holds(
                        k,
                        w.view.tables.get(k),
                        bs.tables.get(k),
                        w.absent.get(k).map(|a| &**a),
                    )
                }),
                None => false,
            };
            if moved {
                // Prepared again with the write's own condition, which
                // that preparation checks against the head it reads.
                let g = self.clone().if_head(w.expect_head.clone()).in_commit_turn();
                w = match (redo.0)(g).await? {
                    Prepared::Write(again) => again,
                    Prepared::Nothing(report) => return Ok(report),
                };
            } else {
                head = Some(m);
            }
        }
        let PreparedWrite {
            branch,
            actor,
            message,
            view,
            reads,
            absent,
            writes,
            staged,
            written,
            deleted,
            expect_head,
            ..
        } = w;
        let (manifest, commit) = self
            .commit_core(CommitInput {
                head,
                branch: &branch,
                view: &view,
                reads: &reads,
                absent: &absent,
                writes,
                staged,
                actor: &actor,
                message: &message,
                extra: Extra {
                    expect_head: expect_head.as_ref(),
                    ..Extra::default()
                },
            })
            .await?;
        Ok(WriteReport {
            commit: Some(commit),
            manifest_version: Some(manifest.version),
            written,
            deleted,
            message,
        })
    }

    /// Commits one Lance transaction per table (plus its upkeep when due:
    /// compaction of small fragments and index extension,
    /// [`table::upkeep_if_due`]), then
    /// publishes them together as one graph commit on `branch`, fenced by a
    /// recovery sidecar (docs/architecture.md, "Recovery protocol"). The
    /// caller holds the commit turn and has healed; every table of `view`
    /// counts as read (a merge, a schema apply): the commit refuses with
    /// [`EngineError::Stale`] when any moved.
    pub(crate) async fn commit_writes_with(
        &self,
        branch: &str,
        view: &View,
        writes: BTreeMap<TableKey, TableWrite>,
        actor: &str,
        message: &str,
        extra: Extra<'_>,
    ) -> Result<(Manifest, Commit), EngineError> {
        let reads: BTreeSet<TableKey> = view.tables.keys().cloned().collect();
        self.commit_core(CommitInput {
            head: None,
            branch,
            view,
            reads: &reads,
            absent: &BTreeMap::new(),
            writes,
            staged: BTreeMap::new(),
            actor,
            message,
            extra,
        })
        .await
    }

    /// The commit protocol: A. the sidecar names every table, its base
    /// (the version published now) and this process as owner, with a
    /// lease renewed while the write runs; B. each table's staged change
    /// commits through the fence (exactly the version after the published
    /// one, [`table::commit_staged`]) and the sidecar records it; C. one
    /// manifest publish (create-if-absent) makes them visible, refused if
    /// anything the write read or writes was published meanwhile; D. the
    /// sidecar is deleted. A write that fails after A leaves its sidecar
    /// for heal; one that lost a fence or a read check is healed at once
    /// so that preparing it again can commit.
    pub(super) async fn commit_core(
        &self,
        input: CommitInput<'_>,
    ) -> Result<(Manifest, Commit), EngineError> {
        let CommitInput {
            head,
            branch,
            view,
            reads,
            absent,
            writes,
            mut staged,
            actor,
            message,
            extra,
        } = input;
        let m = match head {
            Some(m) => m,
            None => self.manifest().await?,
        };
        let bs = m
            .branches
            .get(branch)
            .ok_or_else(|| Self::unknown_branch(&m, branch))?;
        // A conditional write whose head moved says so, not that a read
        // went stale (it is never prepared again).
        if let Some(want) = extra.expect_head {
            Self::require_head(&m, branch, want)?;
        }
        for key in reads {
            if !self.read_holds(
                key,
                view.tables.get(key),
                bs.tables.get(key),
                absent.get(key).map(|a| &**a),
            ) {
                return Err(stale(key, "it was read at an older version"));
            }
        }
        let target = bs.lance_branch.clone();
        let now = now_ms();
        let mut sidecar = recovery::Sidecar {
            id: ulid::Ulid::new().to_string(),
            branch: branch.to_string(),
            lance_branch: target.clone(),
            actor: actor.to_string(),
            message: message.to_string(),
            started_ms: now,
            tables: BTreeMap::new(),
            merge_parent: extra.merge_parent.map(str::to_string),
            schema: extra.schema.cloned(),
            owner: Some(lease::me().clone()),
            lease_until_ms: Some(now + lease::LEASE_MS),
        };
        for key in writes.keys() {
            let base = bs.tables.get(key).ok_or_else(|| EngineError::Corrupt {
                path: "manifest".into(),
                reason: format!("branch `{branch}` has no table `{key}`"),
            })?;
            sidecar.tables.insert(
                key.clone(),
                recovery::SidecarTable {
                    base: base.clone(),
                    committed: None,
                    one_commit: writes.get(key).and_then(TableWrite::change_op).is_some(),
                },
            );
        }
        let live = lease::running(&sidecar.id);
        // Phase A.
        self.write_sidecar(&sidecar).await?;
        let shared = Arc::new(tokio::sync::Mutex::new(sidecar.clone()));
        let _renewer = self.renew_lease(shared.clone());
        // Set once any table of this write has a committed version.
        let moved = std::sync::atomic::AtomicBool::new(false);
        let result = async {
            // Phase B.
            let mut new_refs: BTreeMap<TableKey, TableRef> = BTreeMap::new();
            for (key, w) in writes {
                fail::fail_point!("table.commit", |_| Err(fault("table.commit")));
                let base = sidecar.tables[&key].base.clone();
                let version = self
                    .commit_table(
                        &key,
                        branch,
                        &base,
                        target.as_deref(),
                        w,
                        staged.remove(&key),
                        &sidecar.id,
                        &moved,
                    )
                    .await?;
                // Indexes are derived state: a failure to build one leaves the
                // data version in place, and reads fall back to scanning.
                let written = TableAt {
                    uri: self.table_uri(&key),
                    branch: target.clone(),
                    version,
                };
                let data_version = version;
                // Left to the background (recorded once published,
                // below), or run here.
                let version = if self.upkeep_background {
                    version
                } else {
                    match table::open(&written).await {
                    Ok(ds) => match table::upkeep_if_due(ds, &self.index_specs(&key)).await {
                        Ok(v) => v,
                        Err(e) => {
                            tracing::warn!(table = %key, error = %e, "index maintenance failed");
                            version
                        }
                    },
                    Err(_) => version,
                    }
                };
                if version > data_version
                    && let Some(mut l) = self.manifests.inserted()
                {
                    l.record_no_rows(&key, target.as_deref(), data_version + 1, version);
                }
                {
                    // With one data commit here, kept in memory only: heal
                    // tells the version by its write-id tag
                    // (`Graph::committed_by`).
                    let mut sc = shared.lock().await;
                    let mut record = false;
                    if let Some(t) = sc.tables.get_mut(&key) {
                        t.committed = Some(version);
                        record = !t.one_commit;
                    }
                    if record {
                        self.write_sidecar(&sc).await?;
                    }
                }
                new_refs.insert(
                    key,
                    TableRef {
                        version,
                        lance_branch: target.clone(),
                        rows_of: None,
                    },
                );
            }
            // Phase C.
            fail::fail_point!("publish.before", |_| Err(fault("publish.before")));
            let lease_until = shared.lock().await.lease_until_ms.unwrap_or(0);
            if now_ms() > lease_until - lease::LEASE_MS / 3 {
                return Err(EngineError::LeaseLost {
                    write_id: sidecar.id.clone(),
                });
            }
            // A read that holds at the base (checked above) is expected at
            // the base, like every table written.
            let mut expect: BTreeMap<TableKey, Option<TableRef>> = reads
                .iter()
                .map(|k| {
                    let at = if absent.contains_key(k) {
                        bs.tables.get(k)
                    } else {
                        view.tables.get(k)
                    };
                    (k.clone(), at.cloned())
                })
                .collect();
            for (k, t) in &sidecar.tables {
                expect.insert(k.clone(), Some(t.base.clone()));
            }
            let (m, commit) = self
                .publish_tables(
                    &m,
                    branch,
                    &new_refs,
                    (actor, message, &sidecar.id),
                    extra,
                    None,
                    Some(&expect),
                )
                .await?;
            fail::fail_point!("publish.after", |_| Err(fault("publish.after")));
            Ok((m, commit))
        }
        .await;
        drop(_renewer);
        drop(live);
        let moved = moved.load(std::sync::atomic::Ordering::SeqCst);
        match result {
            Ok((m, commit)) => {
                self.remember(&m);
                // Wanted only now: an upkeep task woken earlier would
                // read the manifest before this publish, find nothing
                // due and drop the table.
                for k in sidecar.tables.keys() {
                    self.upkeep_after(branch, k);
                }
                // Phase D. A sidecar left behind is retired by the next
                // commit step's heal.
                if let Err(e) = self.delete_sidecar(&sidecar.id).await {
                    self.heal_due
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                    return Err(e);
                }
                Ok((m, commit))
            }
            Err(
                e @ (EngineError::Stale { .. }
                | EngineError::Busy { .. }
                | EngineError::Drift { .. }
                | EngineError::PreconditionFailed { .. }),
            ) if !moved => {
                // Refused before any table moved: nothing of this write to
                // heal, but what refused it may be another's dead write,
                // which the next commit step heals.
                if let Err(d) = self.delete_sidecar(&sidecar.id).await {
                    tracing::warn!(error = %d, "removing the sidecar of a refused write failed");
                    self.release_lease(&shared).await;
                }
                self.heal_due
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Err(e)
            }
            Err(
                e @ (EngineError::Stale { .. }
                | EngineError::Busy { .. }
                | EngineError::PreconditionFailed { .. }),
            ) => {
                // Undo this write's table commits now, so that preparing it
                // again meets the published versions.
                if let Err(h) = self.heal(actor).await {
                    tracing::warn!(error = %h, "heal after a lost commit failed");
                    self.heal_due
                        .store(true, std::sync::atomic::Ordering::SeqCst);
                }
                Err(e)
            }
            Err(e) => {
                // Left for heal; other processes may heal it at once.
                self.release_lease(&shared).await;
                self.heal_due
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Marks a failed write's sidecar as no longer held (lease end 0), so
    /// other processes' heal need not wait for the lease. Best effort.
    pub(crate) async fn release_lease(&self, shared: &tokio::sync::Mutex<recovery::Sidecar>) {
        let mut sc = shared.lock().await;
        sc.lease_until_ms = Some(0);
        if let Err(e) = self.write_sidecar(&sc).await {
            tracing::debug!(write = %sc.id, error = %e, "releasing the lease failed");
        }
    }

    /// Keeps a running write's lease: rewrites its sidecar with a later
    /// lease end every [`lease::RENEW_EVERY_MS`] until the returned guard
    /// drops.
    pub(super) fn renew_lease(
        &self,
        shared: Arc<tokio::sync::Mutex<recovery::Sidecar>>,
    ) -> AbortOnDrop {
        let g = self.clone();
        AbortOnDrop(tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(lease::RENEW_EVERY_MS)).await;
                let mut sc = shared.lock().await;
                sc.lease_until_ms = Some(now_ms() + lease::LEASE_MS);
                if let Err(e) = g.write_sidecar(&sc).await {
                    tracing::warn!(write = %sc.id, error = %e, "lease renewal failed");
                }
            }
        }))
    }

    /// Whether `change`, staged at an older version than `head`, may be
    /// committed over `head` as staged: it only adds rows, and every
    /// version after its read version up to `head` is one this process
    /// committed that inserted none of `ids` ([`ledger`]). Otherwise the
    /// caller stages it again.
    /// Whether what a write read of `key` at `read` (its view's table)
    /// still holds at `now` (the head's): the same rows, or, for a read
    /// that only checked that the write's own ids were `absent`, every
    /// version since is known to this process and inserted none of them
    /// (the insert ledger, [`ledger`]).
    pub(crate) fn read_holds(
        &self,
        key: &TableKey,
        read: Option<&TableRef>,
        now: Option<&TableRef>,
        absent: Option<&HashSet<String>>,
    ) -> bool {
        if TableRef::same_rows(now, read) {
            return true;
        }
        let (Some(ids), Some(r), Some(n)) = (absent, read, now) else {
            return false;
        };
        r.lance_branch == n.lance_branch
            && self.manifests.inserted().is_some_and(|l| {
                l.none_inserted(key, r.lance_branch.as_deref(), r.version, n.version, ids)
            })
    }

    pub(crate) fn keeps_staged(
        &self,
        key: &TableKey,
        target: Option<&str>,
        change: &table::StagedChange,
        head: u64,
        ids: Option<&std::collections::HashSet<String>>,
    ) -> bool {
        let Some(ids) = ids else { return false };
        change.inserts_only()
            && self
                .manifests
                .inserted()
                .is_some_and(|l| l.none_inserted(key, target, change.read_version, head, ids))
    }

    /// Commits one table's change on Lance branch `target` as the version
    /// after `base` (forking the table onto `target` first when `base` is
    /// on another Lance branch). A lost fence is explained
    /// ([`Graph::moved_head`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn commit_table(
        &self,
        key: &TableKey,
        branch: &str,
        base: &TableRef,
        target: Option<&str>,
        w: TableWrite,
        staged: Option<table::StagedChange>,
        write_id: &str,
        moved: &std::sync::atomic::AtomicBool,
    ) -> Result<u64, EngineError> {
        let done = |v: u64| {
            moved.store(true, std::sync::atomic::Ordering::SeqCst);
            v
        };
        let forked = base.lance_branch.as_deref() != target;
        if forked {
            // Forking replaces a Lance branch of the same name left by a
            // dead write; never one a running write (another process's)
            // is committing to.
            if let Some(writer) = self.live_writer(key, target, write_id).await? {
                return Err(EngineError::Busy {
                    table: key.to_string(),
                    branch: branch.to_string(),
                    writer,
                });
            }
        }
        let ds = Arc::new(table::open_for_write(&self.at(key, base), target).await?);
        let lost = |e: table::TableError| async move {
            if e.conflict {
                self.moved_head(key, branch, base, target, write_id).await
            } else {
                EngineError::from(e)
            }
        };
        // A staged upsert or delete decided which rows match against its
        // read version; when another write published the table since, it
        // is staged again here so it matches what is there now (an insert
        // of the same key must become an update, not a second row).
        let inserted = w.inserted();
        let staged = match staged {
            Some(c)
                if !forked
                    && (c.read_version == base.version
                        || w.is_blind()
                        || self.keeps_staged(
                            key,
                            target,
                            &c,
                            base.version,
                            inserted.as_deref(),
                        )) =>
            {
                Some(c)
            }
            _ => None,
        };
        if forked && let Some(mut l) = self.manifests.inserted() {
            // The Lance branch is made (again): its versions are new.
            l.clear();
        }
        match w {
            TableWrite::Reindex => Ok(ds.manifest().version),
            TableWrite::Merge { upsert, delete } => {
                let mut ds = ds;
                let mut version = base.version;
                if !delete.is_empty() {
                    let change = table::stage(ds.clone(), table::ChangeOp::Delete(delete)).await?;
                    version = match table::commit_staged(ds, change, version + 1, write_id).await {
                        Ok(d) => done(d.manifest().version),
                        Err(e) => return Err(lost(e).await),
                    };
                    ds = Arc::new(
                        table::open(&TableAt {
                            uri: self.table_uri(key),
                            branch: target.map(str::to_string),
                            version,
                        })
                        .await?,
                    );
                }
                if let Some(b) = upsert {
                    let change = table::stage(ds.clone(), table::ChangeOp::Upsert(b)).await?;
                    version = match table::commit_staged(ds, change, version + 1, write_id).await {
                        Ok(d) => done(d.manifest().version),
                        Err(e) => return Err(lost(e).await),
                    };
                }
                Ok(version)
            }
            other => {
                let change = match staged {
                    Some(c) => c,
                    None => {
                        let op = other.change_op().ok_or_else(|| EngineError::Corrupt {
                            path: key.to_string(),
                            reason: "a table write without a change".into(),
                        })?;
                        table::stage(ds.clone(), op).await?
                    }
                };
                match table::commit_staged(ds, change, base.version + 1, write_id).await {
                    Ok(d) => {
                        let v = d.manifest().version;
                        if let Some(mut l) = self.manifests.inserted() {
                            l.record(key, target, v, inserted);
                        }
                        Ok(done(v))
                    }
                    Err(e) => Err(lost(e).await),
                }
            }
        }
    }

    /// [`EngineError::PreconditionFailed`] unless `branch`'s head in `m`
    /// is `want` (a conditional write).
    pub(crate) fn require_head(
        m: &Manifest,
        branch: &str,
        want: &CommitId,
    ) -> Result<(), EngineError> {
        let actual = m.branches.get(branch).map(|b| &b.head);
        if actual == Some(want) {
            return Ok(());
        }
        Err(EngineError::PreconditionFailed {
            branch: branch.to_string(),
            expected: want.to_string(),
            actual: actual.map(ToString::to_string),
        })
    }

    /// Publishes `new_refs` on `branch` as one commit; `who` is (actor,
    /// message, write id); `extra` adds a second parent and/or switches the
    /// schema (dropping and adding tables on every branch). With `expect`,
    /// the publish refuses ([`EngineError::Stale`]) when the branch's
    /// version of any of those tables is not the expected one (`None`: the
    /// table must be absent) in the manifest it publishes over, which a
    /// lost race re-reads.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn publish_tables(
        &self,
        base: &Manifest,
        branch: &str,
        new_refs: &BTreeMap<TableKey, TableRef>,
        who: (&str, &str, &str),
        extra: Extra<'_>,
        recovery: Option<&str>,
        expect: Option<&BTreeMap<TableKey, Option<TableRef>>>,
    ) -> Result<(Manifest, Commit), EngineError> {
        let (actor, message, write_id) = who;
        let merge_parent = extra.merge_parent;
        let branch_s = branch.to_string();
        let (m, commit) =
            self.manifests
                .publish(base.clone(), |cur| {
                    let mut next = cur.clone();
                    if let Some(sw) = extra.schema {
                        next.schema = Some(sw.id.clone());
                        for b in next.branches.values_mut() {
                            for k in &sw.drop {
                                b.tables.remove(k);
                            }
                            for (k, r) in &sw.created {
                                b.tables.insert(k.clone(), r.clone());
                            }
                        }
                    }
                    if let (Some(expect), Some(now)) = (expect, cur.branches.get(&branch_s)) {
                        for (k, want) in expect {
                            if !TableRef::same_rows(now.tables.get(k), want.as_ref()) {
                                return Err(stale(k, "another write published it first"));
                            }
                        }
                    }
                    let bs = next
                        .branches
                        .get_mut(&branch_s)
                        .ok_or_else(|| Self::unknown_branch(cur, &branch_s))?;
                    // A conditional write: decided here, atomically with
                    // the publish (a lost race re-reads `cur`).
                    if let Some(want) = extra.expect_head
                        && bs.head != *want
                    {
                        return Err(EngineError::PreconditionFailed {
                            branch: branch_s.clone(),
                            expected: want.to_string(),
                            actual: Some(bs.head.to_string()),
                        });
                    }
                    for (k, r) in new_refs {
                        // A newer version of the same Lance branch already
                        // contains ours (Lance histories are linear): keep it.
                        let keep_current = bs.tables.get(k).is_some_and(|c| {
                            c.lance_branch == r.lance_branch && c.version > r.version
                        });
                        if !keep_current {
                            bs.tables.insert(k.clone(), r.clone());
                        }
                    }
                    let commit = Commit {
                        id: CommitId::new(ulid::Ulid::new()),
                        parents: std::iter::once(bs.head.clone())
                            .chain(merge_parent.map(CommitId::from_text))
                            .collect(),
                        branch: branch_s.clone(),
                        actor: actor.to_string(),
                        timestamp_ms: now_ms(),
                        message: message.to_string(),
                        tables: bs.tables.clone(),
                        write_id: Some(write_id.to_string()),
                        recovery: recovery.map(str::to_string),
                        schema: next.schema.clone(),
                        // Set by the publish.
                        manifest_version: None,
                    };
                    bs.head = commit.id.clone();
                    Ok((next, Some(commit)))
                })
                .await?;
        let commit = commit.ok_or_else(|| EngineError::Corrupt {
            path: "manifest".into(),
            reason: "publish returned no commit".into(),
        })?;
        Ok((m, commit))
    }
}
