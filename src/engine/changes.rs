//! Entity changes: what a commit changed relative to its first parent, and
//! the difference between any two read targets, in graph vocabulary
//! (node or edge, type, id, insert/update/delete, exact before and after
//! images). Reference: docs/user/branching/changes.md ("Commit changes").
//!
//! A table whose rows did not change between the two states
//! ([`TableRef::same_rows`]) is skipped without a read. For the others
//! only the fragments the two versions do not share are read
//! ([`table::differing_rows`]), and their rows are matched by `id`: an id
//! only after is an insert, only before a delete, in both with different
//! values an update, in both with equal values nothing (compaction and
//! rewrites of equal values never surface). Physical-only commits
//! (upkeep, `optimize`) therefore have no changes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

use super::manifest::{Commit, TableRef};
use super::values::{Cell, cell_at, to_json};
use super::{EngineError, Graph, ReadAt, TableKey, TableKind, View};
use crate::schema::{Catalog, PropType, Property, ScalarType};
use arrow_array::RecordBatch;
use lance::Dataset;

use crate::storage::table;

/// A node or an edge (reference `EntityKindOutput`).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[schema(as = EntityKindOutput)]
pub enum EntityKind {
    Node,
    Edge,
}

impl EntityKind {
    fn of(key: &TableKey) -> EntityKind {
        match key.kind() {
            TableKind::Node => EntityKind::Node,
            TableKind::Edge => EntityKind::Edge,
        }
    }
}

/// What happened to one entity; ordered insert < update < delete
/// (reference `ChangeOpOutput`, "ordering rank is frozen").
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[schema(as = ChangeOpOutput)]
pub enum ChangeOp {
    Insert,
    Update,
    Delete,
}

/// An edge image's endpoints: the ids of its source and target nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ChangeEndpointsOutput)]
pub struct ChangeEndpoints {
    pub from: String,
    pub to: String,
}

/// One exact entity image: every property the type declares in the
/// schema of that state (a null value as `null`), and for an edge its
/// endpoints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ChangeImageOutput)]
pub struct ChangeImage {
    #[schema(value_type = Object)]
    pub properties: Map<String, Json>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<ChangeEndpoints>,
}

/// A type as the change names it: `id` is `node:<Name>` or
/// `edge:<Name>` (stable while the type exists under that name), `name`
/// the schema's name.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[schema(as = ChangeTypeOutput)]
pub struct ChangeType {
    pub id: String,
    pub name: String,
}

/// One entity change: an insert carries `after`, an update `before` and
/// `after`, a delete `before`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = EntityChangeOutput)]
pub struct EntityChange {
    pub kind: EntityKind,
    #[serde(rename = "type")]
    pub type_: ChangeType,
    pub id: String,
    pub op: ChangeOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<ChangeImage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<ChangeImage>,
}

impl EntityChange {
    /// The frozen order: nodes before edges, then type, then id, then op.
    fn order(&self) -> (EntityKind, &str, &str, ChangeOp) {
        (self.kind, &self.type_.id, &self.id, self.op)
    }
}

/// The commit a block of changes belongs to (reference
/// `ChangeCauseOutput`): `authored_at` is the commit's time in
/// microseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ChangeCauseOutput)]
pub struct ChangeCause {
    pub graph_commit_id: String,
    pub parent_commit_id: Option<String>,
    pub merged_parent_commit_id: Option<String>,
    pub authored_branch: String,
    pub actor_id: Option<String>,
    pub authored_at: i64,
}

impl ChangeCause {
    pub fn of(c: &Commit) -> ChangeCause {
        ChangeCause {
            graph_commit_id: c.id.to_string(),
            parent_commit_id: c.parents.first().map(|p| p.to_string()),
            merged_parent_commit_id: c.parents.get(1).map(|p| p.to_string()),
            authored_branch: c.branch.clone(),
            actor_id: Some(c.actor.clone()),
            authored_at: c.timestamp_ms.saturating_mul(1000),
        }
    }
}

/// Which changes a caller wants; an empty list selects everything of
/// that dimension. Filters name graph concepts only.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeFilter {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<EntityKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub types: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ops: Vec<ChangeOp>,
}

impl ChangeFilter {
    fn wants_table(&self, key: &TableKey) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&EntityKind::of(key)))
            && (self.types.is_empty() || self.types.iter().any(|t| t == key.name()))
    }

    fn wants_op(&self, op: ChangeOp) -> bool {
        self.ops.is_empty() || self.ops.contains(&op)
    }

    /// The same filter in a canonical form (sorted, without repeats), so
    /// a cursor's scope compares equal however the filters were listed.
    pub fn canonical(mut self) -> ChangeFilter {
        self.kinds.sort();
        self.kinds.dedup();
        self.types.sort();
        self.types.dedup();
        self.ops.sort();
        self.ops.dedup();
        self
    }

    /// Errors: a type the graph's schema does not declare (with the
    /// closest name), so a typo is not silently an empty answer.
    pub fn check(&self, cat: &Catalog) -> Result<(), EngineError> {
        for t in &self.types {
            if cat.node(t).is_none() && cat.edge(t).is_none() {
                let names = cat.nodes.keys().chain(cat.edges.keys()).map(String::as_str);
                let hint = crate::diag::did_you_mean(t, names.clone())
                    .unwrap_or_else(|| crate::diag::valid_list("types", names));
                return Err(EngineError::Source {
                    reason: format!("type `{t}` is not a node or edge type of this graph; {hint}"),
                });
            }
        }
        Ok(())
    }
}

/// Why a well-formed diff request cannot be answered (HTTP 409,
/// reference `ChangeDiffRefusalReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ChangeDiffRefusalReason)]
pub enum RefusalReason {
    /// The graph's first commit has no parent to diff against: start
    /// from a baseline instead.
    ParentlessCommit,
    /// The two states have different properties for a type whose rows
    /// changed (a schema apply rewrote it), or a type holding rows was
    /// dropped: schema evolution is not turned into entity changes.
    SchemaBoundary,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::ParentlessCommit => "parentless_commit",
            RefusalReason::SchemaBoundary => "schema_boundary",
        }
    }
}

/// The changes two states differ by, in the frozen order.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeSet {
    pub from_commit_id: String,
    pub to_commit_id: String,
    pub changes: Vec<EntityChange>,
}

impl Graph {
    /// The entity changes commit `id` made relative to its first parent
    /// (a merge commit too), filtered, in the frozen order, with its
    /// cause. Errors: `UnknownCommit` (404); `ChangeRefused` with
    /// `parentless_commit` for the graph's first commit, `schema_boundary`
    /// across a schema change (409); `ChangeFeedGap` when the parent's
    /// record or a table version it needs was removed by `cleanup` (410).
    pub async fn commit_changes(
        &self,
        id: &str,
        filter: &ChangeFilter,
    ) -> Result<(ChangeCause, Vec<EntityChange>), EngineError> {
        filter.check(&self.catalog())?;
        let c = self.commit(id).await?;
        let Some(parent) = c.parents.first() else {
            return Err(EngineError::ChangeRefused {
                commit: c.id.to_string(),
                reason: RefusalReason::ParentlessCommit,
                type_name: None,
            });
        };
        let p = self
            .manifests
            .commit(parent)
            .await?
            .ok_or_else(|| EngineError::ChangeFeedGap {
                cursor: None,
                first_unreadable: c.id.to_string(),
            })?;
        let changes = match self.block_changes(&p, &c, filter).await {
            Err(EngineError::TableVersionGone { .. }) => {
                return Err(EngineError::ChangeFeedGap {
                    cursor: None,
                    first_unreadable: c.id.to_string(),
                });
            }
            r => r?,
        };
        Ok((ChangeCause::of(&c), changes))
    }

    /// The changes `c` made over `parent` (its first parent's record).
    pub(crate) async fn block_changes(
        &self,
        parent: &Commit,
        c: &Commit,
        filter: &ChangeFilter,
    ) -> Result<Vec<EntityChange>, EngineError> {
        let from = self.view_of(parent).await?;
        let to = self.view_of(c).await?;
        self.diff_views(&from, &to, filter).await
    }

    /// What `to` holds that `from` does not, as entity changes (`omnigraph
    /// diff FROM TO`): any two branch heads or commits, on one branch or
    /// across branches. Errors as [`Graph::commit_changes`], plus
    /// `UnknownBranch`.
    pub async fn diff(
        &self,
        from: &ReadAt,
        to: &ReadAt,
        filter: &ChangeFilter,
    ) -> Result<ChangeSet, EngineError> {
        filter.check(&self.catalog())?;
        let a = self.view(from).await?;
        let b = self.view(to).await?;
        let changes = self.diff_views(&a, &b, filter).await?;
        Ok(ChangeSet {
            from_commit_id: a.commit.to_string(),
            to_commit_id: b.commit.to_string(),
            changes,
        })
    }

    /// The read state of a commit already read.
    pub(crate) async fn view_of(&self, c: &Commit) -> Result<View, EngineError> {
        let current = self.schema_state();
        let catalog = if c.schema == current.id {
            current.catalog.clone()
        } else {
            std::sync::Arc::new(self.read_schema(c.schema.as_deref()).await?.0)
        };
        Ok(View {
            branch: None,
            commit: c.id.clone(),
            tables: c.tables.clone(),
            catalog,
        })
    }

    /// The changes from `from` to `to`, table by table (see the module
    /// docs), sorted in the frozen order.
    pub(crate) async fn diff_views(
        &self,
        from: &View,
        to: &View,
        filter: &ChangeFilter,
    ) -> Result<Vec<EntityChange>, EngineError> {
        let mut keys: Vec<&TableKey> = from.tables.keys().chain(to.tables.keys()).collect();
        keys.sort();
        keys.dedup();
        let mut out = Vec::new();
        for key in keys {
            if !filter.wants_table(key) {
                continue;
            }
            let (a, b) = (from.tables.get(key), to.tables.get(key));
            if TableRef::same_rows(a, b) {
                continue;
            }
            let props_a = super::props_of(&from.catalog, key);
            let props_b = super::props_of(&to.catalog, key);
            let before = self.retained(key, a, &to.commit).await?;
            let after = self.retained(key, b, &to.commit).await?;
            let (rows_a, rows_b) = table::differing_rows(before.as_ref(), after.as_ref()).await?;
            let boundary = match (a, b) {
                (Some(_), Some(_)) => !same_properties(&props_a, &props_b),
                // A dropped type: refused only when it held rows.
                (Some(_), None) => rows_a.iter().any(|r| r.num_rows() > 0),
                _ => false,
            };
            if boundary {
                return Err(EngineError::ChangeRefused {
                    commit: to.commit.to_string(),
                    reason: RefusalReason::SchemaBoundary,
                    type_name: Some(key.name().to_string()),
                });
            }
            let old = images(&rows_a, &props_a, key.is_edge());
            let mut new = images(&rows_b, &props_b, key.is_edge());
            let type_ = ChangeType {
                id: key.as_str().to_string(),
                name: key.name().to_string(),
            };
            let change = |id: String, op, before, after| EntityChange {
                kind: EntityKind::of(key),
                type_: type_.clone(),
                id,
                op,
                before,
                after,
            };
            for (id, was) in old {
                match new.remove(&id) {
                    Some(now) if now == was => {}
                    Some(now) => out.push(change(id, ChangeOp::Update, Some(was), Some(now))),
                    None => out.push(change(id, ChangeOp::Delete, Some(was), None)),
                }
            }
            for (id, now) in new {
                out.push(change(id, ChangeOp::Insert, None, Some(now)));
            }
        }
        out.retain(|c| filter.wants_op(c.op));
        out.sort_by(|x, y| x.order().cmp(&y.order()));
        Ok(out)
    }

    /// Opens the table version `r` names; `None` for no table. Errors:
    /// `ChangeFeedGap` naming `commit` when the version was removed.
    async fn retained(
        &self,
        key: &TableKey,
        r: Option<&TableRef>,
        commit: &super::CommitId,
    ) -> Result<Option<Dataset>, EngineError> {
        let Some(r) = r else { return Ok(None) };
        match table::open_retained(&self.at(key, r)).await? {
            Some(ds) => Ok(Some(ds)),
            None => Err(EngineError::ChangeFeedGap {
                cursor: None,
                first_unreadable: commit.to_string(),
            }),
        }
    }
}

/// Whether two declarations of a type have the same properties (names
/// and types, in any order).
fn same_properties(a: &[Property], b: &[Property]) -> bool {
    let key = |ps: &[Property]| {
        let mut v: Vec<(String, String)> = ps
            .iter()
            .map(|p| (p.name.clone(), format!("{:?}", p.ty)))
            .collect();
        v.sort();
        v
    };
    key(a) == key(b)
}

/// Each row's image by id (rows without an id are skipped).
fn images(
    batches: &[RecordBatch],
    props: &[Property],
    edge: bool,
) -> BTreeMap<String, ChangeImage> {
    let text = PropType::scalar(ScalarType::String);
    let mut out = BTreeMap::new();
    for b in batches {
        let col = |n: &str| b.schema().index_of(n).ok().map(|i| b.column(i).clone());
        let (ids, src, dst) = (col("id"), col("src"), col("dst"));
        let cols: Vec<_> = props.iter().map(|p| col(&p.name)).collect();
        let str_at = |c: &Option<arrow_array::ArrayRef>, i: usize| match c {
            Some(a) => match cell_at(a.as_ref(), i, &text) {
                Cell::Str(s) => Some(s),
                _ => None,
            },
            None => None,
        };
        for i in 0..b.num_rows() {
            let Some(id) = str_at(&ids, i) else { continue };
            let mut properties = Map::new();
            for (p, c) in props.iter().zip(&cols) {
                let v = match c {
                    Some(a) => to_json(&cell_at(a.as_ref(), i, &p.ty)),
                    None => Json::Null,
                };
                properties.insert(p.name.clone(), v);
            }
            let endpoints = edge.then(|| ChangeEndpoints {
                from: str_at(&src, i).unwrap_or_default(),
                to: str_at(&dst, i).unwrap_or_default(),
            });
            out.insert(
                id,
                ChangeImage {
                    properties,
                    endpoints,
                },
            );
        }
    }
    out
}
