//! The write entry points every write path goes through: prepare (with
//! the retry that prepares again on a stale read), then commit through the
//! graph's commit path (the GraphActor's commit turn, or here).

use super::*;

impl Graph {
    /// Prepares the write with `redo` and commits it
    /// ([`Graph::write_with_retry`]); the commit step runs `redo` again
    /// when what the write read has moved since.
    pub(crate) async fn write_prepared_by(&self, redo: Redo) -> Result<WriteReport, EngineError> {
        self.write_with_retry(|| {
            let redo = redo.clone();
            let g = self.clone();
            async move {
                Ok(match (redo.0)(g).await? {
                    Prepared::Write(w) => Prepared::Write(w.with_redo(redo)),
                    nothing => nothing,
                })
            }
        })
        .await
    }

    /// Runs `prepare` then [`Graph::commit_prepared`]. A commit that finds
    /// what the write read has changed ([`EngineError::Stale`]: another
    /// process published meanwhile; conflicts within this process are
    /// prepared again in the commit step) is prepared again, at most
    /// [`STALE_ATTEMPTS`] times, after a short random pause that grows with
    /// each attempt (so two processes writing the same tables do not keep
    /// meeting); a table another process is writing ([`EngineError::Busy`])
    /// is waited for until that process publishes (`Graph::await_publish`)
    /// and prepared again. Both stop at [`BUSY_WAIT`] from the start.
    pub async fn write_with_retry<F, Fut>(&self, mut prepare: F) -> Result<WriteReport, EngineError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Prepared, EngineError>>,
    {
        // The waiters this write stands as (`engine/waiting.rs`), removed
        // when it ends however it ends.
        let mut waiting: Vec<String> = Vec::new();
        let out = self.retry_loop(&mut prepare, &mut waiting).await;
        for path in waiting {
            self.unmark_waiting(&path).await;
        }
        out
    }

    async fn retry_loop<F, Fut>(
        &self,
        prepare: &mut F,
        waiting: &mut Vec<String>,
    ) -> Result<WriteReport, EngineError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Prepared, EngineError>>,
    {
        let started = std::time::Instant::now();
        let mut attempts = 1;
        let mut pause = std::time::Duration::from_millis(5);
        loop {
            let w = match prepare().await? {
                Prepared::Nothing(report) => return Ok(report),
                Prepared::Write(w) => w,
            };
            let branch = w.branch.clone();
            let committed = match &self.commit_path {
                Some(path) => path.submit(w).await,
                None => self.commit_prepared(w).await,
            };
            // A table lost to another process: stand as its waiter.
            if let Err(EngineError::Stale { table, .. } | EngineError::Busy { table, .. }) =
                &committed
                && started.elapsed() < BUSY_WAIT
            {
                let path = self.mark_waiting(&branch, table).await;
                if !waiting.contains(&path) {
                    waiting.push(path);
                }
            }
            match committed {
                Err(EngineError::Stale { .. })
                    if attempts < STALE_ATTEMPTS && started.elapsed() < BUSY_WAIT =>
                {
                    // Up to 20 ms per attempt so far, at random.
                    let ms = (ulid::Ulid::new().random() % 20) as u64 * attempts as u64;
                    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                    attempts += 1;
                }
                Err(EngineError::Busy { .. }) if started.elapsed() < BUSY_WAIT => {
                    self.await_publish(pause, started).await;
                    pause = (pause * 2).min(BUSY_PAUSE_MAX);
                }
                other => return other,
            }
        }
    }

    /// Waits while another process holds a table this write wants (it has
    /// committed the table and not yet published): until a manifest newer
    /// than the one this handle knows appears (looked for every 10–25 ms,
    /// at random), for at most `pause`, and never past [`BUSY_WAIT`] from
    /// `started`. Coming back as soon as the holder publishes keeps a
    /// process that lost a race from falling behind the processes that
    /// keep writing the same table: with a pause that only grew (to
    /// 500 ms), the writers of one of three replicas loading into one
    /// table landed nothing for 30 s (`tests/server/replicas.rs`). A
    /// failed read of the manifest ends the wait; preparing again meets
    /// the error.
    async fn await_publish(&self, pause: std::time::Duration, started: std::time::Instant) {
        let seen = self.known_head().map(|m| m.version);
        let until = std::time::Instant::now() + pause;
        loop {
            let ms = 10 + (ulid::Ulid::new().random() % 16) as u64;
            tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            if std::time::Instant::now() >= until || started.elapsed() >= BUSY_WAIT {
                return;
            }
            match self.manifest().await {
                Ok(m) if Some(m.version) > seen => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }

    /// The head of `branch` in `m` as a read sees it, and the Lance branch
    /// the graph branch writes.
    pub(crate) fn branch_view(
        &self,
        m: &Manifest,
        branch: &str,
    ) -> Result<(View, Option<String>), EngineError> {
        let bs = m
            .branches
            .get(branch)
            .ok_or_else(|| Self::unknown_branch(m, branch))?;
        Ok((
            View {
                branch: Some(branch.to_string()),
                commit: bs.head.clone(),
                tables: bs.tables.clone(),
                catalog: self.catalog(),
            },
            bs.lance_branch.clone(),
        ))
    }

    /// Stages every table change of `w` that can be staged before its
    /// commit step (the table's published version is on the Lance branch
    /// the write targets; a first write on a branch forks the table in the
    /// commit step and stages there). Stages run concurrently.
    pub(crate) async fn prepared(&self, mut w: PreparedWrite) -> Result<Prepared, EngineError> {
        let mut jobs = Vec::new();
        for (key, tw) in &w.writes {
            let Some(op) = tw.change_op() else { continue };
            let Some(base) = w.view.tables.get(key) else {
                continue;
            };
            if base.lance_branch != w.target {
                continue;
            }
            let at = self.at(key, base);
            let key = key.clone();
            jobs.push(async move {
                let ds = table::open(&at).await?;
                let change = table::stage(Arc::new(ds), op).await?;
                Ok::<_, EngineError>((key, change))
            });
        }
        for (key, change) in futures::future::try_join_all(jobs).await? {
            w.staged.insert(key, change);
        }
        Ok(Prepared::Write(w))
    }

    /// A prepared write's commit step: waits for this process's turn and
    /// heals dead sidecars, then commits it ([`Graph::commit_writes_with`]).
    /// Errors: [`EngineError::Stale`] when a table it read or writes moved
    /// since it was prepared (prepare it again); [`EngineError::Busy`] when
    /// another process is writing one of its tables; the commit protocol's
    /// errors.
    pub async fn commit_prepared(&self, w: PreparedWrite) -> Result<WriteReport, EngineError> {
        let _turn = self.begin_write(&w.actor).await?;
        self.commit_prepared_here(w).await
    }
}
