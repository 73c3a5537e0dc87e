//! Schema apply: move a live graph to a new `.pg` schema in one commit.
//!
//! The plan comes from [`crate::schema::migrate::plan`]; apply refuses an
//! unsupported plan (every reason listed), a data-losing one without
//! `allow_data_loss`, and — while branches other than `main` exist — any
//! step that would have to rewrite their tables (only adding types and
//! catalog-only changes apply to every branch at once).
//!
//! Per table of the new catalog:
//! - a new type: an empty table, added to every branch;
//! - a renamed type (`@rename_from`): a new table at the new name holding
//!   the old rows (remapped), the old name dropped from the manifest;
//! - a type whose Arrow schema changed (a property added, renamed, dropped,
//!   or made nullable): its rows remapped by property name (or the
//!   property's `@rename_from`), added properties filled with their
//!   `@default` or null, written as one overwrite of that table;
//! - a type whose indexes changed only: index upkeep, no data rewrite;
//! - anything else: untouched.
//!
//! Dropped types leave the manifest; their data stays on disk, so commits
//! from before the apply still read it. A new constraint is checked
//! against every existing row first. The changed tables go through the
//! recovery protocol like every write; the sidecar carries the schema
//! switch (new schema id, tables dropped and created), so a rolled-forward
//! apply switches the schema too. The schema files
//! `_graph/schema/{id}.pg|.json` are content-addressed and written before
//! the sidecar; the manifest names the id.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::load::{self, Row, Staged};
use super::manifest::{Commit, MAIN, TableKey, TableRef};
use super::{EngineError, Graph, ReadAt, SchemaState, TableWrite, edge_key, node_key, values};
use crate::schema::migrate::{self, MigrationPlan, StepKind};
use crate::schema::{Catalog, Property, compile_schema_file};
use crate::storage::table;

/// The schema part of a write: recorded in its sidecar, applied by the
/// publish that makes its tables visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaSwitch {
    /// The new schema id.
    pub id: String,
    /// Tables removed from every branch (dropped types, renamed types' old
    /// names).
    #[serde(default)]
    pub drop: Vec<TableKey>,
    /// Tables added to every branch (new types; renamed types' new names).
    #[serde(default)]
    pub created: BTreeMap<TableKey, TableRef>,
}

/// What `schema apply` did.
#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    /// Every step of the plan is supported.
    pub supported: bool,
    /// A commit was published (false for an empty plan).
    pub applied: bool,
    pub steps: Vec<migrate::Step>,
    /// The new schema id (`None` when nothing was applied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<Commit>,
    pub manifest_version: u64,
    /// Rows rewritten per table (remapped into the new shape).
    pub rewritten: BTreeMap<TableKey, usize>,
    pub created: Vec<TableKey>,
    pub dropped: Vec<TableKey>,
}

/// Steps that change no stored table of any branch, so they apply while
/// branches other than `main` exist.
fn branch_safe(kind: StepKind) -> bool {
    matches!(
        kind,
        StepKind::AddType
            | StepKind::ExtendEnum
            | StepKind::DropIndex
            | StepKind::DropConstraint
            | StepKind::UpdateMetadata
    )
}

fn schema_path(id: &str, ext: &str) -> String {
    format!("schema/{id}.{ext}")
}

fn refused(reason: String) -> EngineError {
    EngineError::SchemaRefused { reason }
}

/// The old type a new type takes its rows from: its `@rename_from` hint
/// when the old catalog has that name, else the same name.
fn old_type_name<'a>(
    name: &'a str,
    annotations: &'a [crate::schema::catalog::Annotation],
    exists: impl Fn(&str) -> bool,
) -> Option<String> {
    let hint = annotations
        .iter()
        .find(|a| a.name == "rename_from")
        .and_then(|a| a.args.first())
        .map(|s| s.trim_matches('"').to_string());
    match hint {
        Some(h) if exists(&h) && !exists(name) => Some(h),
        _ => exists(name).then(|| name.to_string()),
    }
}

/// Remaps rows of `old` properties into `new` properties.
fn remap(rows: Vec<Row>, old: &[Property], new: &[Property]) -> Vec<Row> {
    let from: Vec<Option<usize>> = new
        .iter()
        .map(|p| {
            let by = |n: &str| old.iter().position(|o| o.name == n);
            match &p.rename_from {
                Some(h) if by(&p.name).is_none() && by(h).is_some() => by(h),
                _ => by(&p.name),
            }
        })
        .collect();
    rows.into_iter()
        .map(|r| Row {
            cells: new
                .iter()
                .zip(&from)
                .map(|(p, f)| match f {
                    Some(i) => r.cells.get(*i).cloned().unwrap_or(values::Cell::Null),
                    None => p
                        .default
                        .as_ref()
                        .map_or(values::Cell::Null, |d| values::default_cell(p, d)),
                })
                .collect(),
            ..r
        })
        .collect()
}

/// A content address for a schema: sha256 of its catalog JSON, 16 bytes.
fn schema_id(catalog_json: &[u8]) -> String {
    let d = Sha256::digest(catalog_json);
    d.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

impl Graph {
    /// Loads schema `id` (`None`: the one `init` wrote) into this handle.
    pub(crate) async fn load_schema(&self, id: Option<&str>) -> Result<(), EngineError> {
        if self.schema_pinned {
            return Ok(());
        }
        let (catalog, source) = self.read_schema(id).await?;
        let state = Arc::new(SchemaState {
            id: id.map(str::to_string),
            catalog: Arc::new(catalog),
            source,
        });
        match self.schema.write() {
            Ok(mut s) => *s = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
        Ok(())
    }

    /// Reads schema `id`'s catalog and source.
    pub(crate) async fn read_schema(
        &self,
        id: Option<&str>,
    ) -> Result<(Catalog, String), EngineError> {
        let control = self.manifests.control();
        let (cat_path, pg_path) = match id {
            Some(id) => (schema_path(id, "json"), schema_path(id, "pg")),
            None => ("catalog.json".to_string(), "schema.pg".to_string()),
        };
        let bytes = control.get(&cat_path).await?;
        let catalog: Catalog =
            serde_json::from_slice(&bytes).map_err(|e| EngineError::Corrupt {
                path: format!("{}/{cat_path}", super::GRAPH_DIR),
                reason: e.to_string(),
            })?;
        let source = String::from_utf8_lossy(&control.get(&pg_path).await?).into_owned();
        Ok((catalog, source))
    }

    /// Refuses a write prepared against another catalog than the one the
    /// graph has now (the schema changed between parse and lock).
    pub(crate) fn same_schema(&self, prepared: &Arc<Catalog>) -> Result<(), EngineError> {
        if Arc::ptr_eq(prepared, &self.catalog()) {
            Ok(())
        } else {
            Err(EngineError::Conflict {
                reason: "the schema changed while this write was prepared; retry it against the new schema".into(),
            })
        }
    }

    /// Applies a new `.pg` schema (`file` names it in diagnostics). See the
    /// module docs for what each step does. Errors: the schema's own
    /// errors ([`EngineError::Schema`]); [`EngineError::SchemaRefused`] for
    /// an unsupported plan, data loss without `allow_data_loss`, branches
    /// the plan cannot apply to, or existing rows that break a new
    /// constraint. Nothing is written in those cases.
    ///
    /// A table another process published while the apply ran (its write
    /// or its upkeep; in this process the apply holds the commit turn)
    /// refuses the commit ([`EngineError::Stale`]); the apply then runs
    /// again against the new head, at most [`super::STALE_ATTEMPTS`] times.
    pub async fn apply_schema(
        &self,
        file: &str,
        source: &str,
        allow_data_loss: bool,
        actor: &str,
    ) -> Result<ApplyReport, EngineError> {
        let mut attempt = 1;
        loop {
            match self
                .apply_schema_once(file, source, allow_data_loss, actor)
                .await
            {
                Err(EngineError::Stale { .. }) if attempt < super::STALE_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    async fn apply_schema_once(
        &self,
        file: &str,
        source: &str,
        allow_data_loss: bool,
        actor: &str,
    ) -> Result<ApplyReport, EngineError> {
        self.authorize(actor, crate::policy::Action::SchemaApply, MAIN)?;
        let new = compile_schema_file(file, source).map_err(|d| EngineError::Schema {
            rendered: d.render(false),
        })?;
        let _lock = self.begin_write(actor).await?;
        let m = self.manifest().await?;
        let old = self.catalog();
        let plan: MigrationPlan = migrate::plan(&old, &new);
        let mut report = ApplyReport {
            supported: plan.supported,
            applied: false,
            steps: plan.steps.clone(),
            schema_id: None,
            commit: None,
            manifest_version: m.version,
            rewritten: BTreeMap::new(),
            created: Vec::new(),
            dropped: Vec::new(),
        };
        if !plan.supported {
            let reasons: Vec<String> = plan
                .steps
                .iter()
                .filter(|s| !s.supported)
                .map(|s| format!("  {}: {}", s.detail, s.reason.clone().unwrap_or_default()))
                .collect();
            return Err(refused(format!(
                "the migration has unsupported steps:\n{}",
                reasons.join("\n")
            )));
        }
        if plan.steps.is_empty() {
            return Ok(report);
        }
        if plan.data_loss && !allow_data_loss {
            let drops: Vec<String> = plan
                .steps
                .iter()
                .filter(|s| s.data_loss)
                .map(|s| format!("  {}", s.detail))
                .collect();
            return Err(refused(format!(
                "the migration drops data; rerun with --allow-data-loss (`allow_data_loss: true`) to apply it (older commits keep reading the dropped data):\n{}",
                drops.join("\n")
            )));
        }
        let others: Vec<&String> = m.branches.keys().filter(|b| *b != MAIN).collect();
        let unsafe_steps: Vec<String> = plan
            .steps
            .iter()
            .filter(|s| !branch_safe(s.kind))
            .map(|s| format!("  {}", s.detail))
            .collect();
        if !others.is_empty() && !unsafe_steps.is_empty() {
            let names: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
            return Err(refused(format!(
                "branches other than main exist ({}) and these steps would have to rewrite their tables; merge or delete those branches first:\n{}",
                names.join(", "),
                unsafe_steps.join("\n")
            )));
        }

        // The schema files, content-addressed.
        let cat_json = serde_json::to_vec_pretty(&new).map_err(|e| EngineError::Corrupt {
            path: "catalog".into(),
            reason: e.to_string(),
        })?;
        let id = schema_id(&cat_json);
        let control = self.manifests.control();
        control
            .put(&schema_path(&id, "pg"), source.as_bytes().to_vec())
            .await?;
        control.put(&schema_path(&id, "json"), cat_json).await?;
        // A handle on the new schema builds batches and index specs.
        let next = Graph {
            schema: SchemaState::cell(Some(id.clone()), new.clone(), source.to_string()),
            schema_pinned: true,
            ..self.clone()
        };

        let view = self.view(&ReadAt::Branch(MAIN.to_string())).await?;
        let mut switch = SchemaSwitch {
            id: id.clone(),
            drop: Vec::new(),
            created: BTreeMap::new(),
        };
        let mut writes: BTreeMap<TableKey, TableWrite> = BTreeMap::new();
        // Every row of the new graph, for checking new constraints.
        let check = plan.steps.iter().any(|s| s.kind == StepKind::AddConstraint);
        let mut staged = Staged::default();
        let mut kept: Vec<TableKey> = Vec::new();
        let types = new
            .nodes
            .values()
            .map(|n| (node_key(&n.name), n.name.clone(), &n.annotations, true))
            .chain(
                new.edges
                    .values()
                    .map(|e| (edge_key(&e.name), e.name.clone(), &e.annotations, false)),
            )
            .collect::<Vec<_>>();
        for (key, name, annotations, is_node) in types {
            let exists = |n: &str| {
                if is_node {
                    old.node(n).is_some()
                } else {
                    old.edge(n).is_some()
                }
            };
            let old_name = old_type_name(&name, annotations, exists);
            let old_key = old_name
                .as_ref()
                .map(|n| if is_node { node_key(n) } else { edge_key(n) });
            let (old_props, new_props) = (
                old_key.as_ref().map(|k| self.props(k)).unwrap_or_default(),
                next.props(&key),
            );
            let base = old_key.as_ref().and_then(|k| view.tables.get(k));
            let renamed = old_key.as_ref().is_some_and(|k| *k != key);
            let reshaped = old_key
                .as_ref()
                .is_some_and(|k| self.arrow_schema(k) != next.arrow_schema(&key));
            let reindexed = old_key
                .as_ref()
                .is_some_and(|k| self.index_specs(k) != next.index_specs(&key));
            let rows = match (base, renamed || reshaped || check) {
                (Some(r), true) => remap(
                    self.read_rows(old_key.as_ref().unwrap_or(&key), r).await?,
                    &old_props,
                    &new_props,
                ),
                _ => Vec::new(),
            };
            if check {
                let target = if is_node {
                    &mut staged.nodes
                } else {
                    &mut staged.edges
                };
                target.insert(name.clone(), rows.clone());
            }
            match (&old_key, base) {
                (None, _) | (Some(_), None) => {
                    // A new type (or one main never had): an empty table.
                    let batch = next.batch(&key, &[])?;
                    let version = table::create_or_replace(&next.table_uri(&key), batch).await?;
                    let ds = table::open(&table::TableAt {
                        uri: next.table_uri(&key),
                        branch: None,
                        version,
                    })
                    .await?;
                    let version = table::ensure_indexes(ds, &next.index_specs(&key))
                        .await
                        .unwrap_or(version);
                    switch.created.insert(
                        key.clone(),
                        TableRef {
                            version,
                            lance_branch: None,
                            rows_of: None,
                        },
                    );
                    report.created.push(key.clone());
                }
                (Some(ok), Some(_)) if renamed => {
                    report.rewritten.insert(key.clone(), rows.len());
                    let batch = next.batch(&key, &rows)?;
                    let version = table::create_or_replace(&next.table_uri(&key), batch).await?;
                    let ds = table::open(&table::TableAt {
                        uri: next.table_uri(&key),
                        branch: None,
                        version,
                    })
                    .await?;
                    let version = table::ensure_indexes(ds, &next.index_specs(&key))
                        .await
                        .unwrap_or(version);
                    switch.created.insert(
                        key.clone(),
                        TableRef {
                            version,
                            lance_branch: None,
                            rows_of: None,
                        },
                    );
                    switch.drop.push(ok.clone());
                    report.created.push(key.clone());
                    report.dropped.push(ok.clone());
                }
                (Some(_), Some(_)) => {
                    kept.push(key.clone());
                    if reshaped {
                        report.rewritten.insert(key.clone(), rows.len());
                        writes.insert(key.clone(), TableWrite::Overwrite(next.batch(&key, &rows)?));
                    } else if reindexed {
                        writes.insert(key.clone(), TableWrite::Reindex);
                    }
                }
            }
        }
        if !others.is_empty() && (!writes.is_empty() || !switch.drop.is_empty()) {
            return Err(refused(
                "branches other than main exist and this migration would change stored tables; merge or delete those branches first".into(),
            ));
        }
        // Dropped types: every old table no new type took over.
        for key in self.table_keys() {
            if !kept.contains(&key) && !switch.drop.contains(&key) {
                switch.drop.push(key.clone());
                report.dropped.push(key);
            }
        }
        if check {
            // Number the rows so each error names its type and id.
            let mut line = 0;
            let mut who: HashMap<usize, (String, String)> = HashMap::new();
            for (t, rows) in staged.nodes.iter_mut().chain(staged.edges.iter_mut()) {
                for r in rows.iter_mut() {
                    line += 1;
                    r.line = line;
                    who.insert(line, (t.clone(), r.id.clone()));
                }
            }
            let mut errors = load::validate_graph(
                &new,
                &staged,
                &load::Existing::default(),
                load::LoadMode::Overwrite,
            );
            for (t, rows) in &staged.nodes {
                if let Some(n) = new.node(t) {
                    let checks = load::compiled_checks(n);
                    for r in rows {
                        load::check_constraints(r.line, n, &r.cells, &checks, &mut errors);
                    }
                }
            }
            if !errors.is_empty() {
                let lines: Vec<String> = errors
                    .iter()
                    .take(20)
                    .map(|e| match who.get(&e.line) {
                        Some((t, id)) => format!("  `{t}` `{id}`: {}", e.message),
                        None => format!("  {}", e.message),
                    })
                    .collect();
                return Err(refused(format!(
                    "existing rows break the new constraints ({} problem(s)); fix the data or the schema:\n{}",
                    errors.len(),
                    lines.join("\n")
                )));
            }
        }
        report.created.sort();
        report.dropped.sort();
        let message = format!("schema apply ({} steps)", plan.steps.len());
        let (manifest, commit) = next
            .commit_writes_with(
                MAIN,
                &view,
                writes,
                actor,
                &message,
                super::Extra {
                    merge_parent: None,
                    schema: Some(&switch),
                    expect_head: None,
                },
            )
            .await?;
        self.load_schema(Some(&id)).await?;
        report.applied = true;
        report.schema_id = Some(id);
        report.manifest_version = manifest.version;
        report.commit = Some(commit);
        Ok(report)
    }
}
