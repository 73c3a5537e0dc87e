//! Reading a graph's published state: manifests, views and snapshots,
//! branches (list, create, delete) and commits.

use super::*;

impl Graph {
    /// The physical indexes a table carries (docs/storage.md, "Indexes"):
    /// BTREE on `id` (and `src`, `dst` for edges) and on every BTREE
    /// declaration; an inverted index on every full-text declaration; a
    /// vector index on every `Vector @index` (built once the table holds
    /// [`table::VECTOR_INDEX_MIN_ROWS`] rows).
    pub(crate) fn index_specs(&self, key: &TableKey) -> Vec<table::IndexSpec> {
        use crate::schema::IndexKind;
        let mut specs = vec![table::IndexSpec::Btree("id".into())];
        if key.is_edge() {
            specs.push(table::IndexSpec::Btree("src".into()));
            specs.push(table::IndexSpec::Btree("dst".into()));
        }
        for (col, kind) in self.index_decls(key) {
            let spec = match kind {
                IndexKind::Btree => table::IndexSpec::Btree(col),
                IndexKind::FullText => table::IndexSpec::FullText(col),
                IndexKind::Vector => table::IndexSpec::Vector(col),
                IndexKind::LabelList => continue,
            };
            if !specs.contains(&spec) {
                specs.push(spec);
            }
        }
        specs
    }

    pub(super) fn at(&self, key: &TableKey, r: &TableRef) -> TableAt {
        TableAt {
            uri: self.table_uri(key),
            branch: r.lance_branch.clone(),
            version: r.version,
        }
    }

    /// The newest manifest. When it names another schema than this
    /// handle holds, that schema is loaded first.
    pub async fn manifest(&self) -> Result<Manifest, EngineError> {
        let known = self.known_head();
        let m = match known {
            Some(k) => {
                let was = k.version;
                let m = self.manifests.newer_than(k).await?;
                if m.version > was {
                    // Published by another process (this one's publishes
                    // are remembered as they land; a read racing one of
                    // them may count it too, which only refreshes waiters
                    // more often for a while).
                    self.waiters.note_foreign();
                }
                m
            }
            None => self.manifests.latest().await?,
        };
        self.remember(&m);
        if m.schema != self.schema_state().id {
            self.load_schema(m.schema.as_deref()).await?;
        }
        Ok(m)
    }

    /// The newest manifest this handle has seen, without a request.
    pub(super) fn known_head(&self) -> Option<Manifest> {
        self.manifests.known()
    }

    /// Remembers `m` as the newest manifest seen, unless a newer one is
    /// already remembered.
    pub(crate) fn remember(&self, m: &Manifest) {
        self.manifests.remember(m);
    }

    pub(super) fn unknown_branch(m: &Manifest, name: &str) -> EngineError {
        let names: Vec<&str> = m.branches.keys().map(String::as_str).collect();
        EngineError::UnknownBranch {
            name: name.to_string(),
            valid: crate::diag::did_you_mean(name, names.iter().copied())
                .unwrap_or_else(|| crate::diag::valid_list("branches", names.iter().copied())),
        }
    }

    /// Resolves what a read sees.
    pub async fn view(&self, at: &ReadAt) -> Result<View, EngineError> {
        match at {
            ReadAt::Branch(b) => {
                let m = self.manifest().await?;
                let bs = m
                    .branches
                    .get(b)
                    .ok_or_else(|| Self::unknown_branch(&m, b))?;
                Ok(View {
                    branch: Some(b.clone()),
                    commit: bs.head.clone(),
                    tables: bs.tables.clone(),
                    catalog: self.catalog(),
                })
            }
            ReadAt::Commit(id) => {
                let c = self.commit(id).await?;
                let current = self.schema_state();
                let catalog = if c.schema == current.id {
                    current.catalog.clone()
                } else {
                    Arc::new(self.read_schema(c.schema.as_deref()).await?.0)
                };
                Ok(View {
                    branch: None,
                    commit: c.id,
                    tables: c.tables,
                    catalog,
                })
            }
        }
    }

    /// The rows table `key` holds in `view` (0 when the view has no such
    /// table).
    pub(super) async fn row_count_at(
        &self,
        view: &View,
        key: &TableKey,
    ) -> Result<usize, EngineError> {
        let Some(r) = view.tables.get(key) else {
            return Ok(0);
        };
        let ds = table::open(&self.at(key, r)).await?;
        Ok(table::count(&ds).await?)
    }

    /// Each table's version and row count.
    pub async fn snapshot(&self, at: &ReadAt) -> Result<Snapshot, EngineError> {
        let m = self.manifest().await?;
        let view = self.view(at).await?;
        let mut tables = Vec::new();
        for (key, r) in &view.tables {
            let ds = table::open(&self.at(key, r)).await?;
            tables.push(TableSnapshot {
                table: key.clone(),
                version: r.version,
                lance_branch: r.lance_branch.clone(),
                rows: table::count(&ds).await?,
            });
        }
        Ok(Snapshot {
            branch: view.branch,
            commit: view.commit,
            manifest_version: m.version,
            tables,
        })
    }

    /// Branches and heads, sorted by name.
    pub async fn branches(&self) -> Result<Vec<BranchInfo>, EngineError> {
        let m = self.manifest().await?;
        Ok(m.branches
            .iter()
            .map(|(name, b)| BranchInfo {
                name: name.clone(),
                head: b.head.clone(),
            })
            .collect())
    }

    /// Creates branch `name` (checked where it entered, [`BranchName`]) at
    /// the head of `from`. No data is copied: the new branch starts with
    /// `from`'s table versions and forks each table lazily on its first
    /// write.
    pub async fn create_branch(
        &self,
        name: &BranchName,
        from: &str,
        actor: &str,
    ) -> Result<BranchInfo, EngineError> {
        let name = name.as_str();
        self.authorize(actor, crate::policy::Action::BranchCreate, name)?;
        let base = self.manifest().await?;
        let (m, _) = self
            .manifests
            .publish(base, |cur| {
                if cur.branches.contains_key(name) {
                    return Err(EngineError::BranchExists {
                        name: name.to_string(),
                    });
                }
                let src = cur
                    .branches
                    .get(from)
                    .ok_or_else(|| Self::unknown_branch(cur, from))?;
                let mut next = cur.clone();
                let mut state = src.clone();
                state.lance_branch = Some(lance_branch_for(name));
                next.branches.insert(name.to_string(), state);
                Ok((next, None))
            })
            .await?;
        Ok(BranchInfo {
            name: name.to_string(),
            head: m.branches[name].head.clone(),
        })
    }

    /// Deletes a branch (never `main`). Its commits stay readable by id.
    pub async fn delete_branch(&self, name: &str, actor: &str) -> Result<(), EngineError> {
        if name == MAIN {
            return Err(EngineError::MainProtected);
        }
        self.authorize(actor, crate::policy::Action::BranchDelete, name)?;
        let base = self.manifest().await?;
        self.manifests
            .publish(base, |cur| {
                if !cur.branches.contains_key(name) {
                    return Err(Self::unknown_branch(cur, name));
                }
                let mut next = cur.clone();
                next.branches.remove(name);
                Ok((next, None))
            })
            .await?;
        if let Some(mut l) = self.manifests.inserted() {
            // Its Lance branches may be made again with the same versions.
            l.clear();
        }
        Ok(())
    }

    /// The commits reachable from a branch head, newest first.
    pub async fn commits(&self, branch: &str) -> Result<Vec<Commit>, EngineError> {
        let m = self.manifest().await?;
        let bs = m
            .branches
            .get(branch)
            .ok_or_else(|| Self::unknown_branch(&m, branch))?;
        self.manifests.history(&bs.head).await
    }

    /// One commit by id. Errors: `HistoryRemoved` when `cleanup` removed
    /// it, `UnknownCommit` otherwise.
    /// Read from storage (one request), so a commit another process's
    /// `cleanup` removed is gone here too.
    pub async fn commit(&self, id: &str) -> Result<Commit, EngineError> {
        match self.manifests.stored_commit(id).await? {
            Some(c) => Ok(c),
            None => Err(self.missing_commit(id).await),
        }
    }

    /// The error for a commit id with no record.
    pub(crate) async fn missing_commit(&self, id: &str) -> EngineError {
        if self.removed_by_cleanup(id).await {
            EngineError::HistoryRemoved { id: id.to_string() }
        } else {
            EngineError::UnknownCommit { id: id.to_string() }
        }
    }
}
