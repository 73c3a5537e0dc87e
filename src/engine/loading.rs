//! Loads: reading what validation must see (stored ids, edges, unique
//! values), then validating and staging a load's tables (`prepare_load`).

use super::*;

impl Graph {
    /// Builds an Arrow batch of rows for a table.
    pub(crate) fn batch(&self, key: &TableKey, rows: &[Row]) -> Result<RecordBatch, EngineError> {
        let schema = Arc::new(self.arrow_schema(key));
        let props = self.props(key);
        let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.id.as_str()),
        ))];
        if key.is_edge() {
            cols.push(Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.src.as_deref().unwrap_or_default()),
            )));
            cols.push(Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| r.dst.as_deref().unwrap_or_default()),
            )));
        }
        for (i, p) in props.iter().enumerate() {
            let cells: Vec<values::Cell> = rows.iter().map(|r| r.cells[i].clone()).collect();
            cols.push(values::column(&cells, &p.ty));
        }
        RecordBatch::try_new(schema, cols).map_err(|e| EngineError::Table {
            table: key.to_string(),
            reason: format!("building a batch: {e}"),
        })
    }

    /// Reads every row of a table at a pinned version.
    pub(crate) async fn read_rows(
        &self,
        key: &TableKey,
        r: &TableRef,
    ) -> Result<Vec<Row>, EngineError> {
        let ds = table::open(&self.at(key, r)).await?;
        let batches = table::scan_all(&ds, None).await?;
        let props = self.props(key).to_vec();
        let edge = key.is_edge();
        let mut out = Vec::new();
        for b in batches {
            out.extend(rows_of(&b, &props, edge));
        }
        Ok(out)
    }

    /// What validation needs to know about the stored rows of the types a
    /// load touches, read as narrowly as it can be (never the whole table
    /// for a type with no `@unique`):
    ///
    /// - node types: the stored ids among those the load names (its own
    ///   nodes' keys, its edges' endpoints), probed through the `id` index
    ///   ([`Graph::stored_ids`]);
    /// - edge types: the stored ids among the load's edge ids, and, for a
    ///   type with `@card`, the stored edges of the sources whose count
    ///   the load can change (`src IN …`);
    /// - a type with `@unique`: every stored row (its tuples are compared
    ///   with the load's).
    pub(super) async fn existing(
        &self,
        view: &View,
        staged: &Staged,
        node_types: &HashSet<String>,
        edge_types: &HashSet<String>,
    ) -> Result<Existing, EngineError> {
        let catalog = self.catalog();
        let mut ex = Existing::default();
        // The ids each node type is asked about.
        let mut named: std::collections::HashMap<&str, HashSet<&str>> = Default::default();
        for (t, rows) in &staged.nodes {
            named
                .entry(t.as_str())
                .or_default()
                .extend(rows.iter().map(|r| r.id.as_str()));
        }
        for (t, rows) in &staged.edges {
            let Some(e) = catalog.edge(t) else { continue };
            for r in rows {
                if let Some(s) = &r.src {
                    named.entry(e.from.as_str()).or_default().insert(s);
                }
                if let Some(d) = &r.dst {
                    named.entry(e.to.as_str()).or_default().insert(d);
                }
            }
        }
        for t in node_types {
            let key = node_key(t);
            let Some(r) = view.tables.get(&key) else {
                continue;
            };
            let Some(n) = catalog.node(t) else {
                continue;
            };
            if n.unique.is_empty() {
                let ids: Vec<&str> = named
                    .get(t.as_str())
                    .map(|s| s.iter().copied().collect())
                    .unwrap_or_default();
                ex.node_ids
                    .insert(t.clone(), self.stored_ids(&key, r, &ids).await?);
                continue;
            }
            let rows = self.read_rows(&key, r).await?;
            let ids: HashSet<String> = rows.iter().map(|r| r.id.clone()).collect();
            for (ci, cols) in n.unique.iter().enumerate() {
                let m = ex.unique.entry((t.clone(), ci)).or_default();
                for row in &rows {
                    if let Some(tuple) = load::unique_tuple(&n.properties, cols, row) {
                        m.insert(tuple, row.id.clone());
                    }
                }
            }
            ex.node_ids.insert(t.clone(), ids);
        }
        for t in edge_types {
            let key = edge_key(t);
            let Some(r) = view.tables.get(&key) else {
                continue;
            };
            let Some(e) = catalog.edge(t) else {
                continue;
            };
            let new: &[Row] = staged.edges.get(t).map_or(&[], |v| v.as_slice());
            if e.unique.is_empty() {
                let ids: Vec<&str> = new.iter().map(|r| r.id.as_str()).collect();
                ex.edge_ids
                    .insert(t.clone(), self.stored_ids(&key, r, &ids).await?);
                let card = e.cardinality;
                if card.min > 0 || card.max.is_some() {
                    let mut srcs: HashSet<&str> =
                        new.iter().filter_map(|r| r.src.as_deref()).collect();
                    if card.min > 0 {
                        srcs.extend(
                            staged
                                .nodes
                                .get(&e.from)
                                .into_iter()
                                .flatten()
                                .map(|r| r.id.as_str()),
                        );
                    }
                    let srcs: Vec<&str> = srcs.into_iter().collect();
                    ex.edges
                        .insert(t.clone(), self.stored_edges_from(&key, r, &srcs).await?);
                }
                continue;
            }
            let rows = self.read_rows(&key, r).await?;
            for (ci, cols) in e.unique.iter().enumerate() {
                let m = ex.unique.entry((t.clone(), ci)).or_default();
                for row in &rows {
                    if let Some(tuple) = load::unique_tuple(&e.properties, cols, row) {
                        m.insert(tuple, row.id.clone());
                    }
                }
            }
            ex.edge_ids
                .insert(t.clone(), rows.iter().map(|r| r.id.clone()).collect());
            ex.edges.insert(
                t.clone(),
                rows.into_iter()
                    .map(|r| (r.id, r.src.unwrap_or_default(), r.dst.unwrap_or_default()))
                    .collect(),
            );
        }
        Ok(ex)
    }

    /// The values of `ids` that table `key` at `r` holds as row ids: an
    /// `id IN (…)` lookup per [`PROBE_CHUNK`] ids, which Lance answers
    /// from the `id` BTREE, and the fragments the BTREE does not cover
    /// yet answered once for all chunks ([`table::stored_split`]; without
    /// it, Lance scans them in every chunk); past [`PROBE_MAX_IDS`] ids,
    /// the `id` column read whole (then every stored id is returned).
    pub(super) async fn stored_ids(
        &self,
        key: &TableKey,
        r: &TableRef,
        ids: &[&str],
    ) -> Result<HashSet<String>, EngineError> {
        let mut out = HashSet::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut ds = table::open(&self.at(key, r)).await?;
        let batches = if ids.len() > PROBE_MAX_IDS {
            table::scan_all(&ds, Some(&["id"])).await?
        } else {
            // The fragments the `id` index does not cover answered once
            // (their ids known or read), the rest through the index
            // ([`table::stored_split`]).
            // Boxed, as the upkeep step is: inlined, the futures nest
            // deeper than rustc's layout query allows in callers' async
            // bodies (a clean build of `tests/engine`, `omnigraph-bench`).
            if let Some((covered, found)) = Box::pin(table::stored_split(&ds, ids)).await {
                ds = covered;
                out = found;
            }
            let mut all = Vec::new();
            for chunk in ids.chunks(PROBE_CHUNK) {
                let list: Vec<String> = chunk.iter().map(|i| exec::sql_string(i)).collect();
                let filter = format!("id IN ({})", list.join(", "));
                all.extend(table::scan_where_columns(&ds, &filter, &["id"]).await?);
            }
            all
        };
        for b in batches {
            if let Some(col) = b
                .column_by_name("id")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            {
                out.extend(
                    (0..col.len())
                        .filter(|i| col.is_valid(*i))
                        .map(|i| col.value(i).to_string()),
                );
            }
        }
        Ok(out)
    }

    /// The stored edges of edge table `key` at `r` whose source is one of
    /// `srcs`, as (id, src, dst): through the `src` BTREE, or the three
    /// columns whole past [`PROBE_MAX_IDS`] sources.
    pub(super) async fn stored_edges_from(
        &self,
        key: &TableKey,
        r: &TableRef,
        srcs: &[&str],
    ) -> Result<Vec<(String, String, String)>, EngineError> {
        let mut out = Vec::new();
        if srcs.is_empty() {
            return Ok(out);
        }
        let ds = table::open(&self.at(key, r)).await?;
        let cols = ["id", "src", "dst"];
        let batches = if srcs.len() > PROBE_MAX_IDS {
            table::scan_all(&ds, Some(&cols)).await?
        } else {
            let mut all = Vec::new();
            for chunk in srcs.chunks(PROBE_CHUNK) {
                let list: Vec<String> = chunk.iter().map(|i| exec::sql_string(i)).collect();
                let filter = format!("src IN ({})", list.join(", "));
                all.extend(table::scan_where_columns(&ds, &filter, &cols).await?);
            }
            all
        };
        for b in batches {
            let col = |name: &str| {
                b.column_by_name(name)
                    .and_then(|c| c.as_any().downcast_ref::<StringArray>())
            };
            let (Some(id), Some(src), Some(dst)) = (col("id"), col("src"), col("dst")) else {
                continue;
            };
            for i in 0..id.len() {
                out.push((
                    id.value(i).to_string(),
                    src.value(i).to_string(),
                    dst.value(i).to_string(),
                ));
            }
        }
        Ok(out)
    }

    /// Loads JSONL into `branch` as one commit. With `from`, a missing
    /// branch is first created from `from`; without it, a missing branch is
    /// an error. Validation runs before any table is touched; a failed load
    /// leaves the graph exactly as it was. The load is parsed once, then
    /// prepared ([`Graph::prepare_load`]) and committed
    /// ([`Graph::commit_prepared`]), prepared again when the commit finds
    /// what it read has changed ([`Graph::write_with_retry`]).
    pub async fn load(
        &self,
        input: impl std::io::BufRead,
        mode: LoadMode,
        branch: &str,
        from: Option<&str>,
        actor: &str,
    ) -> Result<WriteReport, EngineError> {
        // Boxed: keeps callers' future types shallow (the bench's suite
        // otherwise overflows the compiler's layout depth limit).
        Box::pin(self.load_with(input, mode, false, branch, from, actor)).await
    }

    /// [`Graph::load`], where `allow_empty` lets an overwrite with no rows
    /// empty the branch (refused otherwise: [`EngineError::EmptyOverwrite`]).
    /// An append or merge with no rows publishes nothing and says so
    /// (`commit: None`), like a mutation that matched nothing.
    pub async fn load_with(
        &self,
        input: impl std::io::BufRead,
        mode: LoadMode,
        allow_empty: bool,
        branch: &str,
        from: Option<&str>,
        actor: &str,
    ) -> Result<WriteReport, EngineError> {
        self.authorize(actor, crate::policy::Action::Change, branch)?;
        let catalog = self.catalog();
        let started = std::time::Instant::now();
        let mut rows =
            load::parse(&catalog, input).map_err(|errors| EngineError::Load { errors })?;
        // `@embed` vectors the input left out: filled from their source
        // text before anything is staged, so a provider failure writes
        // nothing.
        self.fill_staged_embeddings(&catalog, &mut rows).await?;
        if rows.row_count() == 0 {
            if mode == LoadMode::Overwrite && !allow_empty {
                return Err(EngineError::EmptyOverwrite {
                    branch: branch.to_string(),
                });
            }
            // (A missing branch goes the usual way: created from `from`, or
            // refused.)
            let m = self.manifest().await?;
            if mode != LoadMode::Overwrite && m.branches.contains_key(branch) {
                if let Some(want) = &self.expect_head {
                    Self::require_head(&m, branch, want)?;
                }
                return Ok(WriteReport {
                    commit: None,
                    manifest_version: None,
                    written: BTreeMap::new(),
                    deleted: BTreeMap::new(),
                    message: "the input has no rows; nothing was published".into(),
                });
            }
        }
        tracing::debug!(
            rows = rows.row_count(),
            parse_ms = started.elapsed().as_millis() as u64,
            "load parsed"
        );
        let rows = Arc::new(rows);
        let (b, f, a) = (
            branch.to_string(),
            from.map(str::to_string),
            actor.to_string(),
        );
        let redo = {
            let (rows, catalog) = (rows.clone(), catalog.clone());
            Redo::new(move |g: Graph| {
                let (rows, catalog, b, f, a) = (
                    rows.clone(),
                    catalog.clone(),
                    b.clone(),
                    f.clone(),
                    a.clone(),
                );
                Box::pin(async move {
                    g.prepare_load(&catalog, &rows, mode, &b, f.as_deref(), &a)
                        .await
                })
            })
        };
        let report = self.write_prepared_by(redo).await?;
        tracing::debug!(
            rows = rows.row_count(),
            total_ms = started.elapsed().as_millis() as u64,
            "load done"
        );
        Ok(report)
    }

    /// Validates a parsed load against `branch`'s head and stages its
    /// tables without committing them. Nothing becomes visible; the
    /// returned write goes to [`Graph::commit_prepared`]. Creates a missing
    /// branch from `from` first (its own commit).
    pub async fn prepare_load(
        &self,
        catalog: &Arc<Catalog>,
        staged: &Staged,
        mode: LoadMode,
        branch: &str,
        from: Option<&str>,
        actor: &str,
    ) -> Result<Prepared, EngineError> {
        self.same_schema(catalog)?;
        let mut m = self.manifest().await?;
        if !m.branches.contains_key(branch) {
            match from {
                Some(base) => {
                    match self
                        .create_branch(&BranchName::parse(branch)?, base, actor)
                        .await
                    {
                        Ok(_) | Err(EngineError::BranchExists { .. }) => {}
                        Err(e) => return Err(e),
                    }
                    m = self.manifest().await?;
                }
                None => {
                    return Err(Self::unknown_branch(&m, branch));
                }
            }
        }
        let (view, target) = self.branch_view(&m, branch)?;
        if let Some(want) = &self.expect_head {
            Self::require_head(&m, branch, want)?;
        }
        // Types whose stored rows validation must see.
        let mut node_types: HashSet<String> = staged.nodes.keys().cloned().collect();
        let mut edge_types: HashSet<String> = staged.edges.keys().cloned().collect();
        for e in catalog.edges.values() {
            if staged.edges.contains_key(&e.name) {
                node_types.insert(e.from.clone());
                node_types.insert(e.to.clone());
            }
            if staged.nodes.contains_key(&e.from) && e.cardinality.min > 0 {
                edge_types.insert(e.name.clone());
            }
        }
        let mut reads = BTreeSet::new();
        let mut absent = BTreeMap::new();
        let existing = if mode == LoadMode::Overwrite {
            Existing::default()
        } else {
            // The node types whose stored ids only answer "are this load's
            // keys new?": an append's own types that no edge of the load
            // ends at and that have no `@unique`. A merge needs nothing
            // stored of them.
            let endpoints: HashSet<&str> = staged
                .edges
                .keys()
                .filter_map(|t| catalog.edge(t))
                .flat_map(|e| [e.from.as_str(), e.to.as_str()])
                .collect();
            let mut needed = HashSet::new();
            for t in &node_types {
                let key = node_key(t);
                let unique = catalog.node(t).is_some_and(|n| !n.unique.is_empty());
                if unique || endpoints.contains(t.as_str()) {
                    reads.insert(key);
                    needed.insert(t.clone());
                } else if mode == LoadMode::Append {
                    let ids: HashSet<String> = staged_rows(staged, &key)
                        .iter()
                        .map(|r| r.id.clone())
                        .collect();
                    reads.insert(key.clone());
                    absent.insert(key, Arc::new(ids));
                    needed.insert(t.clone());
                }
            }
            reads.extend(edge_types.iter().map(|t| edge_key(t)));
            self.existing(&view, staged, &needed, &edge_types).await?
        };
        let errors = load::validate_graph(catalog, staged, &existing, mode);
        if !errors.is_empty() {
            return Err(EngineError::Load { errors });
        }
        let mut writes = BTreeMap::new();
        let mut written = BTreeMap::new();
        let mut deleted = BTreeMap::new();
        let keys: Vec<TableKey> = if mode == LoadMode::Overwrite {
            self.table_keys()
        } else {
            staged_keys(staged)
        };
        if mode == LoadMode::Overwrite {
            // An overwrite replaces every row the branch held: report them.
            for key in &keys {
                let held = self.row_count_at(&view, key).await?;
                if held > 0 {
                    deleted.insert(key.clone(), held);
                }
            }
        }
        for key in keys {
            let rows = staged_rows(staged, &key);
            let batch = self.batch(&key, rows)?;
            written.insert(key.clone(), rows.len());
            let w = match mode {
                LoadMode::Overwrite => TableWrite::Overwrite(batch),
                LoadMode::Append => TableWrite::Append(batch),
                LoadMode::Merge => TableWrite::Upsert(batch),
            };
            writes.insert(key, w);
        }
        let message = format!("load ({}, {} rows)", mode_name(mode), staged.row_count());
        self.prepared(PreparedWrite {
            branch: branch.to_string(),
            actor: actor.to_string(),
            message,
            target,
            view,
            reads,
            absent,
            writes,
            staged: BTreeMap::new(),
            written,
            deleted,
            expect_head: self.expect_head.clone(),
            redo: None,
        })
        .await
    }
}
