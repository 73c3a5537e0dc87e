//! Three-way merge of one branch into another, entity by entity.
//!
//! The merge base is the newest common ancestor of the two heads in the
//! commit DAG. Outcomes (reference: `docs/user/branching/merge.md`):
//! - **already up to date** — the target contains the source head;
//! - **fast-forward** — the target head is an ancestor of the source head:
//!   the target adopts the source's table versions and head; no data is
//!   written. The target gets a fresh Lance branch name, so its next write
//!   forks the adopted versions instead of rewriting its old line;
//! - **merged** — both sides moved: for every table the source changed,
//!   each entity (by `id`) is classified against base, source and target:
//!
//! | source \ target | untouched | inserted / updated | deleted |
//! |---|---|---|---|
//! | untouched | keep | keep target | keep deleted |
//! | inserted / updated | take source | same value: keep; else `divergent_insert` (no base row) / `divergent_update` | `delete_vs_update` |
//! | deleted | delete | `delete_vs_update` | keep deleted |
//!
//! The merged state is then checked where the merge changed it: edges whose
//! endpoint no longer exists (`orphan_edge`), `@unique` tuples
//! (`unique_violation`) and `@card` bounds (`cardinality_violation`). Value
//! constraints (`@range`, `@check`, enums) hold per row on both sides and the
//! merge takes whole rows, so they cannot fail here. Any conflict refuses the
//! whole merge and nothing is published; otherwise one commit with two
//! parents (target head, source head) is published through the same
//! recovery-fenced protocol as every write.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use serde::Serialize;

use super::load::{Row, unique_tuple};
use super::manifest::{Commit, TableKey, TableRef};
use super::{CommitId, EngineError, Graph, TableKind, TableWrite, edge_key, node_key};

/// How a merge resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeOutcome {
    AlreadyUpToDate,
    FastForward,
    Merged,
}

/// Why an entity could not be merged (reference: `MergeConflictKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// The same id was inserted on both sides with different values.
    DivergentInsert,
    /// The same entity was updated differently on both sides.
    DivergentUpdate,
    /// One side deleted an entity the other side inserted or updated.
    DeleteVsUpdate,
    /// An edge of the merged state references a node that no longer exists.
    OrphanEdge,
    /// The merged state repeats a `@unique` tuple.
    UniqueViolation,
    /// The merged state breaks an edge's `@card` bounds.
    CardinalityViolation,
}

impl ConflictKind {
    pub fn name(self) -> &'static str {
        match self {
            ConflictKind::DivergentInsert => "divergent_insert",
            ConflictKind::DivergentUpdate => "divergent_update",
            ConflictKind::DeleteVsUpdate => "delete_vs_update",
            ConflictKind::OrphanEdge => "orphan_edge",
            ConflictKind::UniqueViolation => "unique_violation",
            ConflictKind::CardinalityViolation => "cardinality_violation",
        }
    }
}

/// One structured merge conflict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct MergeConflict {
    pub kind: ConflictKind,
    /// `node` or `edge`.
    pub entity_kind: String,
    pub type_name: String,
    /// The entity's `id` (for `@card` conflicts: the source node's id).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    pub message: String,
}

impl std::fmt::Display for MergeConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} `{}`",
            self.kind.name(),
            self.entity_kind,
            self.type_name
        )?;
        if let Some(id) = &self.entity_id {
            write!(f, " `{id}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// What a merge did.
#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    pub source: String,
    pub target: String,
    pub outcome: MergeOutcome,
    /// The merge base commit.
    pub base: CommitId,
    /// The target's head after the merge.
    pub head: CommitId,
    /// The two-parent commit a `merged` outcome published.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<Commit>,
    /// Rows the merge upserted and deleted on the target, per table.
    pub written: BTreeMap<TableKey, usize>,
    pub deleted: BTreeMap<TableKey, usize>,
    /// Set when `delete_branch` was asked for: whether the source is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_deleted: Option<bool>,
    /// Why the requested deletion did not happen (the merge still landed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_delete_error: Option<String>,
}

type Rows = BTreeMap<String, Row>;

/// One table's entity changes to apply to the target.
#[derive(Debug, Default)]
struct TableChange {
    upsert: Vec<Row>,
    delete: Vec<String>,
}

fn entity(key: &TableKey) -> (String, String) {
    (key.kind().as_str().to_string(), key.name().to_string())
}

fn conflict(
    kind: ConflictKind,
    key: &TableKey,
    id: Option<&str>,
    message: String,
) -> MergeConflict {
    let (entity_kind, type_name) = entity(key);
    MergeConflict {
        kind,
        entity_kind,
        type_name,
        entity_id: id.map(str::to_string),
        message,
    }
}

/// Classifies one entity. `Ok(None)`: nothing to apply; `Ok(Some(row))`:
/// take the source's version (`None` inside: delete).
#[allow(clippy::type_complexity)]
fn classify(
    base: Option<&Row>,
    source: Option<&Row>,
    target: Option<&Row>,
) -> Result<Option<Option<Row>>, ConflictKind> {
    if source == base || source == target {
        return Ok(None);
    }
    if target == base {
        return Ok(Some(source.cloned()));
    }
    Err(match (base, source, target) {
        (None, _, _) => ConflictKind::DivergentInsert,
        (Some(_), None, _) | (Some(_), _, None) => ConflictKind::DeleteVsUpdate,
        (Some(_), Some(_), Some(_)) => ConflictKind::DivergentUpdate,
    })
}

impl Graph {
    /// Merges branch `source` into `target` (reference:
    /// `omnigraph branch merge SRC --into DST`). Takes the commit turn and
    /// heals first, like every writer. On conflicts returns
    /// [`EngineError::MergeConflicts`] with every conflict found and
    /// publishes nothing. With `delete_branch`, deletes the source after a
    /// successful merge (under its own `branch_delete` decision); a refused
    /// or failed deletion is reported in the result, never as an error.
    ///
    /// A table another process published while the merge ran refuses its
    /// commit ([`EngineError::Stale`]); the merge then runs again against
    /// the new heads, at most [`super::STALE_ATTEMPTS`] times.
    pub async fn merge(
        &self,
        source: &str,
        target: &str,
        actor: &str,
        delete_branch: bool,
    ) -> Result<MergeReport, EngineError> {
        let mut attempt = 1;
        loop {
            match self.merge_once(source, target, actor, delete_branch).await {
                Err(EngineError::Stale { .. }) if attempt < super::STALE_ATTEMPTS => attempt += 1,
                other => return other,
            }
        }
    }

    async fn merge_once(
        &self,
        source: &str,
        target: &str,
        actor: &str,
        delete_branch: bool,
    ) -> Result<MergeReport, EngineError> {
        self.authorize_ctx(
            actor,
            crate::policy::Action::BranchMerge,
            Some(source),
            Some(target),
            target,
        )?;
        if source == target {
            return Err(EngineError::MergeRefused {
                reason: format!("cannot merge branch `{source}` into itself"),
            });
        }
        let mut report = {
            let _lock = self.begin_write(actor).await?;
            self.merge_locked(source, target, actor).await?
        };
        if delete_branch {
            match self.delete_branch(source, actor).await {
                Ok(()) => report.branch_deleted = Some(true),
                Err(e) => {
                    report.branch_deleted = Some(false);
                    report.branch_delete_error = Some(e.to_string());
                }
            }
        }
        Ok(report)
    }

    async fn merge_locked(
        &self,
        source: &str,
        target: &str,
        actor: &str,
    ) -> Result<MergeReport, EngineError> {
        let m = self.manifest().await?;
        let src = m
            .branches
            .get(source)
            .ok_or_else(|| Self::unknown_branch(&m, source))?
            .clone();
        let tgt = m
            .branches
            .get(target)
            .ok_or_else(|| Self::unknown_branch(&m, target))?
            .clone();
        let base = self
            .merge_base_of(source, &src.head, target, &tgt.head)
            .await?;
        let mut report = MergeReport {
            source: source.to_string(),
            target: target.to_string(),
            outcome: MergeOutcome::AlreadyUpToDate,
            base: base.clone(),
            head: tgt.head.clone(),
            commit: None,
            written: BTreeMap::new(),
            deleted: BTreeMap::new(),
            branch_deleted: None,
            branch_delete_error: None,
        };
        if src.head == tgt.head || base == src.head {
            return Ok(report);
        }
        if base == tgt.head {
            // Fast-forward: adopt the source's versions; a fresh Lance
            // branch name makes the target's next write fork them.
            let (next, _) = self
                .manifests
                .publish(m.clone(), |cur| {
                    let mut next = cur.clone();
                    let bs = next
                        .branches
                        .get_mut(target)
                        .ok_or_else(|| Self::unknown_branch(cur, target))?;
                    if bs.head != tgt.head {
                        return Err(EngineError::Conflict {
                            reason: format!("branch `{target}` moved during the merge; retry"),
                        });
                    }
                    bs.tables = src.tables.clone();
                    bs.head = src.head.clone();
                    bs.lance_branch = Some(super::lance_branch_for(target));
                    Ok((next, None))
                })
                .await?;
            report.outcome = MergeOutcome::FastForward;
            report.head = next.branches[target].head.clone();
            return Ok(report);
        }
        let base_commit = self.commit(&base).await?;
        let changes = self
            .three_way(&base_commit.tables, &src.tables, &tgt.tables)
            .await?;
        let view = self
            .view(&super::ReadAt::Branch(target.to_string()))
            .await?;
        if view.commit != tgt.head {
            return Err(EngineError::Conflict {
                reason: format!("branch `{target}` moved during the merge; retry"),
            });
        }
        let mut writes = BTreeMap::new();
        for (key, ch) in changes {
            if ch.upsert.is_empty() && ch.delete.is_empty() {
                continue;
            }
            if !ch.upsert.is_empty() {
                report.written.insert(key.clone(), ch.upsert.len());
            }
            if !ch.delete.is_empty() {
                report.deleted.insert(key.clone(), ch.delete.len());
            }
            let upsert = if ch.upsert.is_empty() {
                None
            } else {
                Some(self.batch(&key, &ch.upsert)?)
            };
            writes.insert(
                key,
                TableWrite::Merge {
                    upsert,
                    delete: ch.delete,
                },
            );
        }
        let message = format!("merge {source} into {target}");
        let (_, commit) = self
            .commit_writes_with(
                target,
                &view,
                writes,
                actor,
                &message,
                super::Extra {
                    merge_parent: Some(&src.head),
                    schema: None,
                    expect_head: None,
                },
            )
            .await?;
        report.outcome = MergeOutcome::Merged;
        report.head = commit.id.clone();
        report.commit = Some(commit);
        Ok(report)
    }

    /// The newest common ancestor of two commits (ULIDs sort by time).
    pub async fn merge_base(&self, a: &str, b: &str) -> Result<CommitId, EngineError> {
        let ours = self.ancestors(a).await?;
        let mut best: Option<CommitId> = None;
        let mut seen: HashSet<CommitId> = HashSet::new();
        let mut queue: VecDeque<CommitId> = VecDeque::from([CommitId::from_text(b)]);
        while let Some(id) = queue.pop_front() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if ours.contains(&id) {
                if best.as_ref().is_none_or(|cur| id > *cur) {
                    best = Some(id);
                }
                // Its ancestors are common too, and older.
                continue;
            }
            // Below the window `cleanup` kept, history ends.
            if let Some(c) = self.manifests.commit(&id).await? {
                queue.extend(c.parents);
            }
        }
        best.ok_or_else(|| EngineError::MergeRefused {
            reason: format!("commits `{a}` and `{b}` share no history"),
        })
    }

    async fn ancestors(&self, head: &str) -> Result<HashSet<CommitId>, EngineError> {
        let mut seen: HashSet<CommitId> = HashSet::new();
        let mut stack = vec![CommitId::from_text(head)];
        while let Some(id) = stack.pop() {
            if !seen.insert(id.clone()) {
                continue;
            }
            if let Some(c) = self.manifests.commit(&id).await? {
                stack.extend(c.parents);
            }
        }
        Ok(seen)
    }

    async fn rows_at(&self, key: &TableKey, r: Option<&TableRef>) -> Result<Rows, EngineError> {
        let Some(r) = r else {
            return Ok(Rows::new());
        };
        Ok(self
            .read_rows(key, r)
            .await?
            .into_iter()
            .map(|row| (row.id.clone(), row))
            .collect())
    }

    /// Classifies every entity of every table the source changed, then
    /// checks the merged state. Returns the changes per table, or every
    /// conflict.
    async fn three_way(
        &self,
        base: &BTreeMap<TableKey, TableRef>,
        source: &BTreeMap<TableKey, TableRef>,
        target: &BTreeMap<TableKey, TableRef>,
    ) -> Result<BTreeMap<TableKey, TableChange>, EngineError> {
        let mut conflicts: BTreeSet<MergeConflict> = BTreeSet::new();
        let mut changes: BTreeMap<TableKey, TableChange> = BTreeMap::new();
        // The merged state of every table read so far (target + changes).
        let mut merged: HashMap<TableKey, Rows> = HashMap::new();
        for key in self.table_keys() {
            let (b, s, t) = (base.get(&key), source.get(&key), target.get(&key));
            if s == b || s == t {
                continue;
            }
            let (br, sr, mut tr) = (
                self.rows_at(&key, b).await?,
                self.rows_at(&key, s).await?,
                self.rows_at(&key, t).await?,
            );
            let ids: BTreeSet<&String> = br.keys().chain(sr.keys()).collect();
            let mut ch = TableChange::default();
            for id in ids {
                match classify(br.get(id), sr.get(id), tr.get(id)) {
                    Ok(None) => {}
                    Ok(Some(Some(row))) => ch.upsert.push(row),
                    Ok(Some(None)) => ch.delete.push(id.clone()),
                    Err(kind) => {
                        let message = match kind {
                            ConflictKind::DivergentInsert => {
                                "inserted on both branches with different values".to_string()
                            }
                            ConflictKind::DivergentUpdate => {
                                "updated differently on both branches".to_string()
                            }
                            _ => {
                                let side = if sr.contains_key(id) {
                                    "the target deleted it; the source changed it"
                                } else {
                                    "the source deleted it; the target changed it"
                                };
                                side.to_string()
                            }
                        };
                        conflicts.insert(conflict(kind, &key, Some(id), message));
                    }
                }
            }
            for id in &ch.delete {
                tr.remove(id);
            }
            for row in &ch.upsert {
                tr.insert(row.id.clone(), row.clone());
            }
            merged.insert(key.clone(), tr);
            changes.insert(key, ch);
        }
        // Integrity of the merged state where the merge changed it.
        let changed: HashSet<&TableKey> = changes
            .iter()
            .filter(|(_, c)| !c.upsert.is_empty() || !c.delete.is_empty())
            .map(|(k, _)| k)
            .collect();
        let catalog = self.catalog();
        for e in catalog.edges.values() {
            let (ek, fk, tk) = (edge_key(&e.name), node_key(&e.from), node_key(&e.to));
            let endpoints_changed = changed.contains(&fk) || changed.contains(&tk);
            let card_applies = e.cardinality.min > 0 || e.cardinality.max.is_some();
            if !(changed.contains(&ek) || endpoints_changed) {
                continue;
            }
            for k in [&ek, &fk, &tk] {
                if !merged.contains_key(k) {
                    let rows = self.rows_at(k, target.get(k)).await?;
                    merged.insert(k.clone(), rows);
                }
            }
            let (edges, from, to) = (&merged[&ek], &merged[&fk], &merged[&tk]);
            for row in edges.values() {
                for (end, ty, nodes) in [(&row.src, &e.from, from), (&row.dst, &e.to, to)] {
                    let end = end.as_deref().unwrap_or_default();
                    if !nodes.contains_key(end) {
                        conflicts.insert(conflict(
                            ConflictKind::OrphanEdge,
                            &ek,
                            Some(&row.id),
                            format!("`{ty}` `{end}` does not exist after the merge"),
                        ));
                    }
                }
            }
            if card_applies {
                // Only nodes whose edge count or row the merge changed: the
                // target alone was valid.
                let count = |edges: &Rows| {
                    let mut c: HashMap<String, usize> = HashMap::new();
                    for row in edges.values() {
                        *c.entry(row.src.clone().unwrap_or_default()).or_default() += 1;
                    }
                    c
                };
                let after = count(edges);
                let before = count(&self.rows_at(&ek, target.get(&ek)).await?);
                let upserted: HashSet<&str> = changes
                    .get(&fk)
                    .map(|c| c.upsert.iter().map(|r| r.id.as_str()).collect())
                    .unwrap_or_default();
                for id in from.keys() {
                    let n = after.get(id).copied().unwrap_or(0);
                    if n == before.get(id).copied().unwrap_or(0) && !upserted.contains(id.as_str())
                    {
                        continue;
                    }
                    let over = e.cardinality.max.is_some_and(|max| n > max as usize);
                    if n < e.cardinality.min as usize || over {
                        conflicts.insert(conflict(
                            ConflictKind::CardinalityViolation,
                            &ek,
                            Some(id),
                            format!(
                                "@card({}): `{}` `{id}` would have {n} edges",
                                e.cardinality, e.from
                            ),
                        ));
                    }
                }
            }
        }
        for key in &changed {
            let Some((props, uniques)) = (match key.kind() {
                TableKind::Edge => catalog.edge(key.name()).map(|e| (&e.properties, &e.unique)),
                TableKind::Node => catalog.node(key.name()).map(|n| (&n.properties, &n.unique)),
            }) else {
                continue;
            };
            for cols in uniques {
                let mut seen: HashMap<Vec<String>, &str> = HashMap::new();
                for row in merged[*key].values() {
                    let Some(tuple) = unique_tuple(props, cols, row) else {
                        continue;
                    };
                    if let Some(other) = seen.insert(tuple.clone(), &row.id) {
                        conflicts.insert(conflict(
                            ConflictKind::UniqueViolation,
                            key,
                            Some(&row.id),
                            format!(
                                "@unique({}) ({}) is also held by `{other}`",
                                cols.join(", "),
                                tuple.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
        if conflicts.is_empty() {
            Ok(changes)
        } else {
            Err(EngineError::MergeConflicts {
                conflicts: conflicts.into_iter().collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::values::Cell;

    fn row(v: &str) -> Row {
        Row {
            id: "x".into(),
            src: None,
            dst: None,
            cells: vec![Cell::Str(v.into())],
            line: 0,
        }
    }

    /// The truth table over (untouched, insert/update, delete) per side.
    #[test]
    fn classify_truth_table() {
        use ConflictKind::*;
        let (b, s, t, u) = (row("base"), row("src"), row("tgt"), row("same"));
        // No base row: inserts.
        assert_eq!(classify(None, None, None), Ok(None));
        assert_eq!(classify(None, Some(&s), None), Ok(Some(Some(s.clone()))));
        assert_eq!(classify(None, None, Some(&t)), Ok(None));
        assert_eq!(classify(None, Some(&u), Some(&u)), Ok(None));
        assert_eq!(classify(None, Some(&s), Some(&t)), Err(DivergentInsert));
        // A base row: updates and deletes.
        let base = Some(&b);
        assert_eq!(classify(base, base, base), Ok(None));
        assert_eq!(classify(base, Some(&s), base), Ok(Some(Some(s.clone()))));
        assert_eq!(classify(base, base, Some(&t)), Ok(None));
        assert_eq!(classify(base, Some(&u), Some(&u)), Ok(None));
        assert_eq!(classify(base, Some(&s), Some(&t)), Err(DivergentUpdate));
        assert_eq!(classify(base, None, base), Ok(Some(None)));
        assert_eq!(classify(base, base, None), Ok(None));
        assert_eq!(classify(base, None, None), Ok(None));
        assert_eq!(classify(base, None, Some(&t)), Err(DeleteVsUpdate));
        assert_eq!(classify(base, Some(&s), None), Err(DeleteVsUpdate));
    }
}
