//! `@embed` in the engine: the graph's embedding client (built once per
//! handle, on first use), filling `@embed` vectors on load, insert and
//! update, embedding the text of `nearest($v, "text")`, and the graph
//! backfill behind `omnigraph embed` ([`Graph::embed_branch`]).
//!
//! A vector is filled when it is absent (or null) and its source text is
//! present; an update that sets the source text and not the vector
//! re-embeds it. All texts of one load or mutation go to the provider in
//! batches before anything is staged, so a provider failure writes
//! nothing (reference docs/user/search/embeddings.md; executing `@embed`
//! at ingest is this project's extension of it, issue 24).

use std::collections::{HashMap, HashSet};

use super::*;
use crate::embed::{EmbedError, Embedder, EmbeddingConfig, Task};
use crate::engine::values::Cell;

/// A handle's embedding client: the injected configuration, if any (a
/// cluster's `providers.embedding`), else the environment's, resolved on
/// first use.
#[derive(Debug, Default)]
pub(crate) struct EmbeddingSlot {
    config: Option<EmbeddingConfig>,
    client: tokio::sync::OnceCell<Arc<Embedder>>,
    /// Set on the handle a commit step prepares a write again with: a
    /// provider call there would hold every writer's turn, so a text not
    /// embedded before is refused as [`EngineError::Stale`] and the write
    /// is prepared again outside the turn.
    no_calls: bool,
}

/// Vectors a write already embedded, by (width, text): a write prepared
/// again reuses them instead of calling the provider again.
pub(crate) type EmbedMemo = Arc<std::sync::Mutex<HashMap<(usize, String), Vec<f32>>>>;

/// One `@embed` property of a node type: the vector's and the source's
/// positions in the type's properties, the width, the recorded model.
#[derive(Debug, Clone)]
pub(crate) struct EmbedTarget {
    pub vector: usize,
    pub source: usize,
    pub dim: usize,
    pub name: String,
    pub source_name: String,
    pub nullable: bool,
    /// `@embed(…, model=…)`.
    pub model: Option<String>,
}

/// The `@embed` properties of `props`.
pub(crate) fn embed_targets(props: &[Property]) -> Vec<EmbedTarget> {
    props
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let spec = p.embed.as_ref()?;
            let dim = match &p.ty {
                crate::schema::PropType::Vector { dim } => *dim as usize,
                _ => return None,
            };
            let source = props.iter().position(|s| s.name == spec.source)?;
            Some(EmbedTarget {
                vector: i,
                source,
                dim,
                name: p.name.clone(),
                source_name: spec.source.clone(),
                nullable: p.nullable,
                model: spec.model.clone(),
            })
        })
        .collect()
}

/// What [`Graph::embed_branch`] does to `@embed` vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedMode {
    /// Only vectors that are null (the default).
    FillMissing,
    /// Every vector whose source text is present.
    ReembedAll,
    /// Sets every nullable `@embed` vector to null.
    Clean,
}

/// Progress of [`Graph::embed_branch`], after each committed chunk.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EmbedProgress {
    /// `node:<Type>`.
    pub table: String,
    pub property: String,
    /// Rows of this property done so far, and in all.
    pub done: usize,
    pub total: usize,
}

/// The outcome of [`Graph::embed_branch`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EmbedReport {
    /// Vectors written (or cleared), per `node:<Type>.<property>`.
    pub written: BTreeMap<String, usize>,
    /// Rows skipped: no source text (or, for `clean`, a required vector).
    pub skipped: BTreeMap<String, usize>,
    /// Commits published, one per chunk.
    pub commits: Vec<String>,
}

impl Graph {
    /// This handle with its own embedding configuration instead of the
    /// environment's (a cluster's `providers.embedding.<name>`, tests).
    pub fn with_embedding(mut self, config: EmbeddingConfig) -> Graph {
        self.embedding = Arc::new(EmbeddingSlot {
            config: Some(config),
            client: Default::default(),
            no_calls: false,
        });
        self
    }

    /// This handle for preparing a write again inside a commit turn: it
    /// never calls the embedding provider ([`EmbeddingSlot::no_calls`]).
    pub(crate) fn in_commit_turn(mut self) -> Graph {
        self.embedding = Arc::new(EmbeddingSlot {
            config: self.embedding.config.clone(),
            client: Default::default(),
            no_calls: true,
        });
        self
    }

    /// The graph's embedding client, built on first use from the injected
    /// configuration or the environment ([`EmbeddingConfig::from_env`])
    /// and reused by every clone of this handle. Errors:
    /// [`EmbedError::Config`] (nothing cached, so fixing the environment
    /// and retrying works).
    pub async fn embedder(&self) -> Result<Arc<Embedder>, EngineError> {
        let slot = self.embedding.clone();
        if slot.no_calls {
            return Err(EngineError::Stale {
                table: "embeddings".into(),
                reason:
                    "the write has new text to embed; it is prepared again outside the commit step"
                        .into(),
            });
        }
        let client = slot
            .client
            .get_or_try_init(|| async {
                let config = match &slot.config {
                    Some(c) => c.clone(),
                    None => EmbeddingConfig::from_env()?,
                };
                Ok::<_, EmbedError>(Arc::new(Embedder::new(config)?))
            })
            .await?;
        Ok(client.clone())
    }

    /// Fills the null `@embed` vectors of `rows` (rows of node type
    /// `type_name`, cells in `props` order) from their source text, all
    /// texts in one batched call per property. A required vector whose
    /// source is null is an error naming the row's line. Texts `memo`
    /// holds are not sent again; the ones embedded are added to it.
    /// Returns how many vectors were filled.
    pub(crate) async fn fill_embeddings(
        &self,
        type_name: &str,
        props: &[Property],
        rows: &mut [&mut Row],
        memo: Option<&EmbedMemo>,
        only: Option<&HashSet<(String, usize)>>,
    ) -> Result<usize, EngineError> {
        let targets = embed_targets(props);
        let mut filled = 0;
        let mut errors = Vec::new();
        for t in &targets {
            let mut at = Vec::new();
            let mut texts = Vec::new();
            for (i, r) in rows.iter_mut().enumerate() {
                if r.cells[t.vector] != Cell::Null
                    || only.is_some_and(|o| !o.contains(&(r.id.clone(), t.vector)))
                {
                    continue;
                }
                match &r.cells[t.source] {
                    Cell::Str(s) if !s.trim().is_empty() => {
                        let known = memo.and_then(|m| {
                            m.lock().ok()?.get(&(t.dim, s.clone())).cloned()
                        });
                        match known {
                            Some(v) => {
                                r.cells[t.vector] = Cell::Vector(v);
                                filled += 1;
                            }
                            None => {
                                at.push(i);
                                texts.push(s.clone());
                            }
                        }
                    }
                    _ if !t.nullable => errors.push(load::LoadError {
                        line: r.line,
                        field: Some(t.name.clone()),
                        message: format!(
                            "`{type_name}.{}` is missing and its @embed source `{}` is empty; give the vector or the text",
                            t.name, t.source_name
                        ),
                        key_conflict: None,
                    }),
                    _ => {}
                }
            }
            if texts.is_empty() || !errors.is_empty() {
                continue;
            }
            let embedder = self.embedder().await?;
            embedder.check_model(&t.name, t.model.as_deref())?;
            let vectors = embedder.embed(&texts, t.dim, Task::Document).await?;
            if let Some(Ok(mut m)) = memo.map(|m| m.lock()) {
                for (text, v) in texts.iter().zip(&vectors) {
                    m.insert((t.dim, text.clone()), v.clone());
                }
            }
            for (i, v) in at.into_iter().zip(vectors) {
                rows[i].cells[t.vector] = Cell::Vector(v);
                filled += 1;
            }
        }
        if !errors.is_empty() {
            return Err(EngineError::Load { errors });
        }
        Ok(filled)
    }

    /// [`Graph::fill_embeddings`] for every node type of a parsed load.
    pub(crate) async fn fill_staged_embeddings(
        &self,
        catalog: &Catalog,
        staged: &mut Staged,
    ) -> Result<usize, EngineError> {
        let mut filled = 0;
        for (t, rows) in staged.nodes.iter_mut() {
            let Some(n) = catalog.node(t) else { continue };
            if !n.properties.iter().any(|p| p.embed.is_some()) {
                continue;
            }
            let mut refs: Vec<&mut Row> = rows.iter_mut().collect();
            filled += self
                .fill_embeddings(t, &n.properties, &mut refs, None, None)
                .await?;
        }
        Ok(filled)
    }

    /// Embeds the text of `nearest($v.<property>, "text")` as a query
    /// vector of `dim` floats, checking the model `@embed` recorded.
    pub(crate) async fn embed_query_text(
        &self,
        property: &Property,
        text: &str,
        dim: usize,
    ) -> Result<Vec<f32>, EngineError> {
        let embedder = self.embedder().await?;
        embedder.check_model(
            &property.name,
            property.embed.as_ref().and_then(|e| e.model.as_deref()),
        )?;
        let mut v = embedder
            .embed(&[text.to_string()], dim, Task::Query)
            .await?;
        Ok(v.pop().unwrap_or_default())
    }

    /// Backfills (or re-embeds, or clears) the `@embed` vectors of
    /// `branch`: for each node type (all, or those in `types`) and each of
    /// its `@embed` properties, the rows `mode` selects are embedded in
    /// chunks of `chunk_rows` and each chunk is published as its own
    /// commit, so an interrupted run resumes where it stopped (run it
    /// again with `fill_missing`). A chunk's commit rewrites a row only if
    /// its source text is still the text that was embedded; rows changed
    /// meanwhile are left for the next run. `progress` is called after
    /// each chunk. Errors: an unknown type or branch, the provider's
    /// ([`EmbedError`]), a write conflict, policy.
    pub async fn embed_branch(
        &self,
        branch: &str,
        mode: EmbedMode,
        types: &[String],
        chunk_rows: usize,
        actor: &str,
        progress: &(dyn Fn(&EmbedProgress) + Send + Sync),
    ) -> Result<EmbedReport, EngineError> {
        self.authorize(actor, crate::policy::Action::Change, branch)?;
        let catalog = self.catalog();
        for t in types {
            if catalog.node(t).is_none() {
                return Err(EngineError::Param {
                    name: t.clone(),
                    reason: format!(
                        "is not a node type of this graph; {}",
                        crate::diag::valid_list(
                            "node types",
                            catalog.nodes.keys().map(|k| k.as_str())
                        )
                    ),
                });
            }
        }
        let chunk_rows = chunk_rows.max(1);
        let mut report = EmbedReport::default();
        for (type_name, n) in &catalog.nodes {
            if !types.is_empty() && !types.contains(type_name) {
                continue;
            }
            let key = node_key(type_name);
            for t in embed_targets(&n.properties) {
                let label = format!("{key}.{}", t.name);
                let m = self.manifest().await?;
                let (view, _) = self.branch_view(&m, branch)?;
                let Some(r) = view.tables.get(&key) else {
                    continue;
                };
                let rows = self.read_rows(&key, r).await?;
                let mut skipped = 0;
                let pending: Vec<(String, Option<String>)> = rows
                    .iter()
                    .filter_map(|row| {
                        let text = match &row.cells[t.source] {
                            Cell::Str(s) if !s.trim().is_empty() => Some(s.clone()),
                            _ => None,
                        };
                        let has = row.cells[t.vector] != Cell::Null;
                        match mode {
                            EmbedMode::FillMissing if has => None,
                            EmbedMode::FillMissing | EmbedMode::ReembedAll => match text {
                                Some(text) => Some((row.id.clone(), Some(text))),
                                None => {
                                    skipped += usize::from(!has || mode == EmbedMode::ReembedAll);
                                    None
                                }
                            },
                            EmbedMode::Clean if !has => None,
                            EmbedMode::Clean if !t.nullable => {
                                skipped += 1;
                                None
                            }
                            EmbedMode::Clean => Some((row.id.clone(), None)),
                        }
                    })
                    .collect();
                drop(rows);
                if skipped > 0 {
                    report.skipped.insert(label.clone(), skipped);
                }
                let total = pending.len();
                if total > 0 && mode != EmbedMode::Clean {
                    self.embedder()
                        .await?
                        .check_model(&t.name, t.model.as_deref())?;
                }
                let mut done = 0;
                for chunk in pending.chunks(chunk_rows) {
                    let texts: Vec<String> = chunk.iter().filter_map(|(_, t)| t.clone()).collect();
                    let vectors = if texts.is_empty() {
                        Vec::new()
                    } else {
                        self.embedder()
                            .await?
                            .embed(&texts, t.dim, Task::Document)
                            .await?
                    };
                    let mut vectors = vectors.into_iter();
                    let wanted: Arc<HashMap<String, (Option<String>, Cell)>> = Arc::new(
                        chunk
                            .iter()
                            .map(|(id, text)| {
                                let cell = match text {
                                    Some(_) => Cell::Vector(vectors.next().unwrap_or_default()),
                                    None => Cell::Null,
                                };
                                (id.clone(), (text.clone(), cell))
                            })
                            .collect(),
                    );
                    let redo = {
                        let (b, a, k, tg, label) = (
                            branch.to_string(),
                            actor.to_string(),
                            key.clone(),
                            t.clone(),
                            label.clone(),
                        );
                        Redo::new(move |g: Graph| {
                            let (b, a, k, tg, w, label) = (
                                b.clone(),
                                a.clone(),
                                k.clone(),
                                tg.clone(),
                                wanted.clone(),
                                label.clone(),
                            );
                            Box::pin(async move {
                                g.prepare_embed_chunk(&b, &a, &k, &tg, &w, &label, mode)
                                    .await
                            })
                        })
                    };
                    let w = self.write_prepared_by(redo).await?;
                    let n: usize = w.written.values().sum();
                    *report.written.entry(label.clone()).or_default() += n;
                    if let Some(c) = &w.commit {
                        report.commits.push(c.id.to_string());
                    }
                    done += chunk.len();
                    progress(&EmbedProgress {
                        table: key.to_string(),
                        property: t.name.clone(),
                        done,
                        total,
                    });
                }
            }
        }
        Ok(report)
    }

    /// One chunk of [`Graph::embed_branch`] against the branch's head:
    /// the rows of `wanted` whose source text is unchanged get the new
    /// vector (with `FillMissing`, only those still without one).
    #[allow(clippy::too_many_arguments)]
    async fn prepare_embed_chunk(
        &self,
        branch: &str,
        actor: &str,
        key: &TableKey,
        t: &EmbedTarget,
        wanted: &HashMap<String, (Option<String>, Cell)>,
        label: &str,
        mode: EmbedMode,
    ) -> Result<Prepared, EngineError> {
        let m = self.manifest().await?;
        let (view, target) = self.branch_view(&m, branch)?;
        let mut rows = Vec::new();
        if let Some(r) = view.tables.get(key) {
            let ds = table::open(&self.at(key, r)).await?;
            let ids: Vec<String> = wanted.keys().map(|id| exec::sql_string(id)).collect();
            let props = self.props(key);
            for part in ids.chunks(PROBE_CHUNK) {
                let filter = format!("id IN ({})", part.join(", "));
                for b in table::scan_where(&ds, &filter).await? {
                    rows.extend(rows_of(&b, &props, false));
                }
            }
        }
        rows.retain_mut(|row| {
            let Some((text, cell)) = wanted.get(&row.id) else {
                return false;
            };
            let now = match &row.cells[t.source] {
                Cell::Str(s) => Some(s),
                _ => None,
            };
            if text.is_some() && now != text.as_ref() {
                return false;
            }
            if mode == EmbedMode::FillMissing && row.cells[t.vector] != Cell::Null {
                return false;
            }
            row.cells[t.vector] = cell.clone();
            true
        });
        if rows.is_empty() {
            return Ok(Prepared::Nothing(WriteReport {
                commit: None,
                manifest_version: None,
                written: BTreeMap::new(),
                deleted: BTreeMap::new(),
                message: format!("embed {label}: no row to change"),
            }));
        }
        let mut written = BTreeMap::new();
        written.insert(key.clone(), rows.len());
        let mut writes = BTreeMap::new();
        writes.insert(key.clone(), TableWrite::Upsert(self.batch(key, &rows)?));
        self.prepared(PreparedWrite {
            branch: branch.to_string(),
            actor: actor.to_string(),
            message: format!("embed {label} ({} rows)", rows.len()),
            target,
            view,
            reads: [key.clone()].into(),
            absent: BTreeMap::new(),
            writes,
            staged: BTreeMap::new(),
            written,
            deleted: BTreeMap::new(),
            expect_head: self.expect_head.clone(),
            redo: None,
        })
        .await
    }
}
