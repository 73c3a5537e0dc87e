//! Wire types of the HTTP API: requests, responses and the one error shape.
//! Field names and shapes follow the reference `openapi.json` (ModernRelay/
//! omnigraph), so a client written for it works against this server; the
//! OpenAPI document at `/openapi.json` is generated from these types.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use utoipa::ToSchema;

use crate::engine::load::LoadMode;
use crate::engine::manifest::Commit;
use crate::engine::{TableKind, WriteReport};

/// The closed set of error codes (reference `ErrorCode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Unauthorized,
    Forbidden,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    Conflict,
    TooManyRequests,
    Internal,
}

/// Every error response: `{error, code, ...}`. `retry_after_seconds`
/// accompanies 429 (also sent as the `Retry-After` header).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorOutput {
    /// A human-readable message naming the input at fault and the remedy.
    pub error: String,
    pub code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
    /// Every conflict of a refused merge (409); nothing was published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge_conflicts: Vec<MergeConflictOutput>,
    /// Set with 412: a conditional write's branch head had moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precondition_failure: Option<PreconditionFailureOutput>,
    /// Set with 409: a strict insert (`mode=append`) named an id its type
    /// already holds; nothing was written. Load again with `mode=merge`
    /// to update it, or choose another id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_conflict: Option<KeyConflictOutput>,
    /// Set with 409 on the change routes: the commit cannot be diffed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_diff_refusal: Option<ChangeDiffRefusalOutput>,
    /// Set with 410: the feed cannot continue from retained history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_feed_gap: Option<ChangeFeedGapOutput>,
    /// Set with 413: a request above an explicit ceiling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_limit: Option<ResourceLimitOutput>,
    /// Set with 416: the unsatisfiable Blob range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob_range: Option<BlobRangeOutput>,
    /// Set with 409 when what a prepared write read (a table, `member`)
    /// was published again before it could commit, even after preparing
    /// it once more; retry the write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_set_conflict: Option<ReadSetConflictOutput>,
}

/// A prepared write's read set moved (HTTP 409, reference
/// `ReadSetConflictOutput`): `member` names the table (`node:Person`);
/// `expected`/`actual` are not reported here (`null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReadSetConflictOutput {
    pub member: String,
    pub expected: Option<String>,
    pub actual: Option<String>,
}

/// A strict insert's id conflict (reference `KeyConflictOutput`):
/// `entity_kind` is `node` or `edge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct KeyConflictOutput {
    pub entity_kind: String,
    pub type_name: String,
    pub entity_id: Option<String>,
}

/// A conditional write's refusal (HTTP 412, reference
/// `PreconditionFailureOutput`): the request carried
/// `Omnigraph-If-Graph-Commit: <expected>` and the branch head was
/// `actual` (`null` on a branch with no commits). The write had no
/// effect; re-read the branch and decide again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PreconditionFailureOutput {
    pub expected: String,
    pub actual: Option<String>,
}

/// One conflict of a refused merge (reference `MergeConflictOutput`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MergeConflictOutput {
    /// `divergent_insert`, `divergent_update`, `delete_vs_update`,
    /// `orphan_edge`, `unique_violation` or `cardinality_violation`.
    pub kind: String,
    /// `node` or `edge`.
    pub entity_kind: String,
    pub type_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity_id: Option<String>,
    pub message: String,
}

impl From<&crate::engine::merge::MergeConflict> for MergeConflictOutput {
    fn from(c: &crate::engine::merge::MergeConflict) -> Self {
        MergeConflictOutput {
            kind: c.kind.name().to_string(),
            entity_kind: c.entity_kind.clone(),
            type_name: c.type_name.clone(),
            entity_id: c.entity_id.clone(),
            message: c.message.clone(),
        }
    }
}

/// `POST /graphs/{id}/schema/apply`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchemaApplyRequest {
    /// The desired schema, `.pg` source.
    pub schema_source: String,
    /// Apply steps that drop a type or property (older commits keep
    /// reading the dropped data).
    #[serde(default)]
    pub allow_data_loss: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchemaApplyOutput {
    pub uri: String,
    pub supported: bool,
    /// False when the graph already had this schema (nothing published).
    pub applied: bool,
    pub step_count: usize,
    pub graph_manifest_version: u64,
    /// `{kind, entity, type_name, property?, detail, supported, reason?,
    /// data_loss}` per step.
    pub steps: Vec<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph_commit_id: Option<String>,
    pub actor_id: Option<String>,
}

impl SchemaApplyOutput {
    /// The answer of `POST /graphs/{id}/schema/apply` (and `omnigraph
    /// schema apply --json`) for the engine's report on graph `uri`,
    /// applied by `actor`.
    pub fn of(uri: &str, actor: &str, r: &crate::engine::schema_apply::ApplyReport) -> Self {
        SchemaApplyOutput {
            uri: uri.to_string(),
            supported: r.supported,
            applied: r.applied,
            step_count: r.steps.len(),
            graph_manifest_version: r.manifest_version,
            steps: r
                .steps
                .iter()
                .map(|s| serde_json::to_value(s).unwrap_or_default())
                .collect(),
            schema_id: r.schema_id.clone(),
            graph_commit_id: r.commit.as_ref().map(|c| c.id.to_string()),
            actor_id: Some(actor.to_string()),
        }
    }
}

/// `POST /graphs/{id}/branches/merge`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BranchMergeRequest {
    /// The branch whose changes are merged.
    pub source: String,
    /// The branch that receives them (default `main`).
    #[serde(default)]
    pub target: Option<String>,
    /// Delete the source after a successful merge (its own `branch_delete`
    /// decision; a refusal is reported, never fails the merge).
    #[serde(default)]
    pub delete_branch: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BranchMergeOutput {
    pub source: String,
    pub target: String,
    /// `already_up_to_date`, `fast_forward` or `merged`.
    pub outcome: String,
    /// The merge base commit.
    pub base: String,
    /// The target's head after the merge.
    pub graph_commit_id: String,
    pub actor_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_deleted: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch_delete_error: Option<String>,
}

/// `GET /healthz`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthOutput {
    pub status: String,
    pub version: String,
    /// The storage-format version this binary reads and writes.
    pub internal_schema_version: u32,
}

/// One served graph in `GET /graphs`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GraphInfo {
    pub graph_id: String,
    pub uri: String,
}

/// `GET /graphs`: ready graphs only.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GraphListResponse {
    pub graphs: Vec<GraphInfo>,
}

/// One graph in `GET /admin/graphs`, whatever its state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminGraphInfo {
    pub graph_id: String,
    pub uri: String,
    /// `ready`, `quarantined` or `restarting`.
    pub state: String,
    /// Why the graph is quarantined (or last failed).
    pub reason: Option<String>,
    /// Crashes since the graph last opened cleanly.
    pub crashes: u32,
}

/// `GET /admin/graphs`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdminGraphListOutput {
    pub graphs: Vec<AdminGraphInfo>,
}

/// A commit as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CommitOutput {
    pub graph_commit_id: String,
    /// The graph manifest version that published the commit (the members
    /// of one group commit share it); `null` only for commits recorded by
    /// builds before 2026-12-04, which did not keep it. The reference's
    /// `openapi.json` requires an integer.
    pub graph_manifest_version: Option<u64>,
    pub graph_branch: Option<String>,
    pub parent_commit_id: Option<String>,
    pub merged_parent_commit_id: Option<String>,
    pub actor_id: Option<String>,
    /// Unix epoch microseconds.
    pub created_at: i64,
    pub message: String,
}

impl CommitOutput {
    pub fn from_commit(c: &Commit, manifest_version: Option<u64>) -> CommitOutput {
        CommitOutput {
            graph_commit_id: c.id.to_string(),
            graph_manifest_version: manifest_version.or(c.manifest_version),
            graph_branch: Some(c.branch.clone()),
            parent_commit_id: c.parents.first().map(ToString::to_string),
            merged_parent_commit_id: c.parents.get(1).map(ToString::to_string),
            actor_id: Some(c.actor.clone()),
            created_at: c.timestamp_ms.saturating_mul(1000),
            message: c.message.clone(),
        }
    }
}

impl CommitOutput {
    /// The commit a write published (`None`: the write changed nothing).
    pub fn of_write(r: &WriteReport) -> Option<CommitOutput> {
        r.commit
            .as_ref()
            .map(|c| CommitOutput::from_commit(c, r.manifest_version))
    }
}

/// Rows a write inserted, updated or deleted in the tables of `kind`.
fn affected(r: &WriteReport, kind: TableKind) -> usize {
    r.written
        .iter()
        .chain(r.deleted.iter())
        .filter(|(k, _)| k.kind() == kind)
        .map(|(_, n)| n)
        .sum()
}

impl ChangeOutput {
    /// A mutation's result, the same for `POST /graphs/{id}/change` and
    /// `omnigraph mutate --json`: rows inserted, updated or deleted per
    /// kind, and the commit it published (`null` when it changed nothing;
    /// the reference's CLI reference, "Effectful commands").
    pub fn of_write(branch: &str, query_name: &str, actor: &str, r: &WriteReport) -> ChangeOutput {
        ChangeOutput {
            branch: branch.to_string(),
            query_name: query_name.to_string(),
            affected_nodes: affected(r, TableKind::Node),
            affected_edges: affected(r, TableKind::Edge),
            actor_id: Some(actor.to_string()),
            commit: CommitOutput::of_write(r),
        }
    }
}

impl From<LoadMode> for LoadModeWire {
    fn from(m: LoadMode) -> LoadModeWire {
        match m {
            LoadMode::Overwrite => LoadModeWire::Overwrite,
            LoadMode::Append => LoadModeWire::Append,
            LoadMode::Merge => LoadModeWire::Merge,
        }
    }
}

impl From<LoadModeWire> for LoadMode {
    fn from(m: LoadModeWire) -> LoadMode {
        match m {
            LoadModeWire::Overwrite => LoadMode::Overwrite,
            LoadModeWire::Append => LoadMode::Append,
            LoadModeWire::Merge => LoadMode::Merge,
        }
    }
}

impl GraphBatchLoadOutput {
    /// A load's result, the same for both load routes and `omnigraph load
    /// --json`: entities loaded per node and edge type (written rows, in
    /// name order), whether `base_branch` forked the branch first, and the
    /// commit (`null` when nothing changed).
    pub fn of_write(
        branch: &str,
        branch_created: bool,
        base_branch: Option<String>,
        mode: LoadModeWire,
        actor: &str,
        r: &WriteReport,
    ) -> GraphBatchLoadOutput {
        let decls = |kind: TableKind| -> Vec<GraphBatchDeclarationOutput> {
            r.written
                .iter()
                .filter(|(k, _)| k.kind() == kind)
                .map(|(k, n)| GraphBatchDeclarationOutput {
                    name: k.name().to_string(),
                    entities_loaded: *n,
                })
                .collect()
        };
        let nodes = decls(TableKind::Node);
        let edges = decls(TableKind::Edge);
        let total_entities = nodes
            .iter()
            .chain(edges.iter())
            .map(|d| d.entities_loaded)
            .sum();
        GraphBatchLoadOutput {
            branch: branch.to_string(),
            branch_created,
            base_branch,
            mode,
            nodes,
            edges,
            total_entities,
            actor_id: Some(actor.to_string()),
            commit: CommitOutput::of_write(r),
        }
    }
}

/// `GET /graphs/{id}/commits`: newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CommitListOutput {
    pub commits: Vec<CommitOutput>,
}

/// One table of a snapshot.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotDatasetOutput {
    /// `node` or `edge`.
    pub entity_kind: String,
    pub type_name: String,
    pub dataset_path: String,
    pub published_dataset_version: u64,
    pub native_dataset_branch: Option<String>,
    pub entity_count: u64,
}

/// `GET /graphs/{id}/snapshot?branch=`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SnapshotOutput {
    pub graph_branch: String,
    pub graph_commit_id: String,
    pub graph_manifest_version: u64,
    pub internal_schema_version: u32,
    pub datasets: Vec<SnapshotDatasetOutput>,
}

impl SnapshotOutput {
    /// The answer of `GET /graphs/{id}/snapshot` (and `omnigraph snapshot
    /// --json`) for a snapshot of the engine: one dataset per table, named
    /// `nodes/<Type>.lance` or `edges/<Type>.lance`. `graph_branch` is
    /// empty for a snapshot of a commit (`--snapshot ID`).
    pub fn of(s: &crate::engine::Snapshot) -> SnapshotOutput {
        SnapshotOutput {
            graph_branch: s.branch.clone().unwrap_or_default(),
            graph_commit_id: s.commit.to_string(),
            graph_manifest_version: s.manifest_version,
            internal_schema_version: crate::engine::INTERNAL_SCHEMA_VERSION,
            datasets: s
                .tables
                .iter()
                .map(|t| {
                    let (kind, name) = (t.table.kind().as_str(), t.table.name());
                    SnapshotDatasetOutput {
                        entity_kind: kind.to_string(),
                        type_name: name.to_string(),
                        dataset_path: format!("{kind}s/{name}.lance"),
                        published_dataset_version: t.version,
                        native_dataset_branch: t.lance_branch.clone(),
                        entity_count: t.rows as u64,
                    }
                })
                .collect(),
        }
    }
}

/// `POST /graphs/{id}/query`: an inline read query.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueryRequest {
    /// `.gq` source; may declare several queries (pick one with `name`).
    #[serde(alias = "query_source")]
    pub query: String,
    #[serde(default, alias = "query_name")]
    pub name: Option<String>,
    /// An object whose keys are the query's parameters.
    #[serde(default)]
    pub params: Option<Json>,
    /// Branch to read (default `main`); exclusive with `snapshot`.
    #[serde(default)]
    pub branch: Option<String>,
    /// A commit id to read at (time travel).
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Lower limits for this query only (an Omnigraph extension); a value
    /// above the graph's limit keeps the graph's.
    #[serde(default)]
    pub limits: Option<QueryLimitsInput>,
}

/// A request's own query limits: each one given lowers the graph's for
/// this request (docs/server.md, "Limits").
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryLimitsInput {
    /// Intermediate rows (bindings) one operator may build.
    pub max_rows: Option<u64>,
    /// Wall time, milliseconds.
    pub max_ms: Option<u64>,
    /// Bytes of bindings and output rows held at once.
    pub max_bytes: Option<u64>,
    /// Adjacency entries the query's traversals may walk in all.
    pub max_expansions: Option<u64>,
}

impl From<QueryLimitsInput> for crate::engine::budget::LowerLimits {
    fn from(l: QueryLimitsInput) -> Self {
        crate::engine::budget::LowerLimits {
            max_rows: l.max_rows,
            max_ms: l.max_ms,
            max_bytes: l.max_bytes,
            max_expansions: l.max_expansions,
        }
    }
}

/// Where a read was served from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadTargetOutput {
    pub branch: Option<String>,
    pub snapshot: Option<String>,
}

/// A read query's result.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadOutput {
    pub query_name: String,
    pub target: ReadTargetOutput,
    pub columns: Vec<String>,
    pub row_count: usize,
    /// One object per row, keyed by column.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<serde_json::Map<String, Json>>,
    pub graph_commit_id: Option<String>,
}

/// `POST /graphs/{id}/mutate`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChangeRequest {
    #[serde(alias = "query_source")]
    pub query: String,
    #[serde(default, alias = "query_name")]
    pub name: Option<String>,
    #[serde(default)]
    pub params: Option<Json>,
    /// Target branch (default `main`).
    #[serde(default)]
    pub branch: Option<String>,
}

/// A mutation's result; `commit` is null when nothing changed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChangeOutput {
    pub branch: String,
    pub query_name: String,
    pub affected_nodes: usize,
    pub affected_edges: usize,
    pub actor_id: Option<String>,
    pub commit: Option<CommitOutput>,
}

/// How a load treats existing entities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LoadModeWire {
    Overwrite,
    Append,
    Merge,
}

/// `POST /graphs/{id}/load`: the JSON envelope (`data` holds NDJSON).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LoadRequest {
    pub data: String,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub mode: Option<LoadModeWire>,
    /// Let an `overwrite` with no rows empty the branch (refused with 400
    /// otherwise).
    #[serde(default)]
    pub allow_empty: Option<bool>,
}

/// Query parameters of `POST /graphs/{id}/load/ndjson`.
#[derive(Debug, Serialize, Deserialize, ToSchema, utoipa::IntoParams)]
pub struct LoadParams {
    pub branch: Option<String>,
    pub from: Option<String>,
    pub mode: Option<LoadModeWire>,
    /// Let an `overwrite` with no rows empty the branch (refused with 400
    /// otherwise).
    pub allow_empty: Option<bool>,
}

/// Entities loaded into one type.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GraphBatchDeclarationOutput {
    pub name: String,
    pub entities_loaded: usize,
}

/// A load's result: one commit.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GraphBatchLoadOutput {
    pub branch: String,
    pub branch_created: bool,
    pub base_branch: Option<String>,
    pub mode: LoadModeWire,
    pub nodes: Vec<GraphBatchDeclarationOutput>,
    pub edges: Vec<GraphBatchDeclarationOutput>,
    pub total_entities: usize,
    pub actor_id: Option<String>,
    pub commit: Option<CommitOutput>,
}

/// The JSON-envelope load's result (`POST /graphs/{id}/load` and the
/// deprecated `/ingest`): a [`GraphBatchLoadOutput`] plus `uri`, the graph's
/// storage URI as the server opened it (the reference's `IngestOutput`,
/// openapi.json; `load/ndjson` answers without it).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IngestOutput {
    pub uri: String,
    #[serde(flatten)]
    pub load: GraphBatchLoadOutput,
}

/// `POST /graphs/{id}/export`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    pub branch: Option<String>,
    /// Only these node/edge types; empty exports all.
    #[serde(default)]
    pub type_names: Vec<String>,
}

/// `GET /graphs/{id}/schema`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SchemaOutput {
    pub schema_source: String,
}

/// `GET /graphs/{id}/branches`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BranchListOutput {
    pub branches: Vec<String>,
}

/// `POST /graphs/{id}/branches`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BranchCreateRequest {
    pub name: String,
    /// Parent branch (default `main`).
    #[serde(default)]
    pub from: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BranchCreateOutput {
    pub uri: String,
    pub from: String,
    pub name: String,
    pub actor_id: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BranchDeleteOutput {
    pub uri: String,
    pub name: String,
    pub actor_id: Option<String>,
}

/// A stored query's parameter kind (reference `ParamKind`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ParamKind {
    String,
    Bool,
    Int,
    Bigint,
    Float,
    Date,
    Datetime,
    Blob,
    Vector,
    List,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ParamDescriptor {
    pub name: String,
    pub kind: ParamKind,
    pub item_kind: Option<ParamKind>,
    pub vector_dim: Option<u32>,
    pub nullable: bool,
}

/// One stored query in `GET /graphs/{id}/queries`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueryCatalogEntry {
    pub name: String,
    pub tool_name: String,
    pub description: Option<String>,
    pub instruction: Option<String>,
    pub mutation: bool,
    pub params: Vec<ParamDescriptor>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueriesCatalogOutput {
    pub queries: Vec<QueryCatalogEntry>,
}

/// `POST /graphs/{id}/queries/{name}`; every field optional.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct InvokeStoredQueryRequest {
    #[serde(default)]
    pub params: Option<Json>,
    #[serde(default)]
    pub branch: Option<String>,
    #[serde(default)]
    pub snapshot: Option<String>,
    /// Lower limits for a stored read query (as in `QueryRequest`).
    #[serde(default)]
    pub limits: Option<QueryLimitsInput>,
}

/// Query parameter `?branch=`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct BranchParam {
    pub branch: Option<String>,
}

pub use crate::engine::changes::{
    ChangeCause, ChangeEndpoints, ChangeImage, ChangeOp, ChangeType, EntityChange, EntityKind,
    RefusalReason,
};
pub use crate::engine::feed::{ChangeBlock, CommitChangesPage, FeedPage};

/// A diff this commit cannot answer (HTTP 409, reference
/// `ChangeDiffRefusalOutput`): `type_name` names the type at a schema
/// boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangeDiffRefusalOutput {
    pub reason: RefusalReason,
    pub graph_commit_id: String,
    pub type_name: Option<String>,
}

/// The change feed cannot continue from retained history (HTTP 410,
/// reference `ChangeFeedGapOutput`): take a new baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ChangeFeedGapOutput {
    pub cursor: Option<String>,
    pub first_unreadable_commit_id: String,
}

/// A request above an explicit ceiling (HTTP 413, reference
/// `ResourceLimitOutput`): `resource` names it (`changes_per_page`),
/// `limit` is the ceiling, `actual` what was asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ResourceLimitOutput {
    pub resource: String,
    pub limit: u64,
    pub actual: u64,
}

/// `POST /graphs/{id}/changes/baseline` (reference
/// `ChangeBaselineRequest`): the branch (default `main`) and the scope
/// the resume cursor is bound to; the snapshot honours `kind` and `type`.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeBaselineRequest {
    pub branch: Option<String>,
    #[serde(default)]
    pub kind: Vec<EntityKind>,
    #[serde(default, rename = "type")]
    pub type_names: Vec<String>,
    #[serde(default)]
    pub op: Vec<ChangeOp>,
}

/// The final line of a baseline stream (reference
/// `ChangeBaselineOutput`): the commit the snapshot holds and the cursor
/// that resumes the feed right after it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeBaselineOutput {
    pub snapshot_commit_id: String,
    pub resume_cursor: String,
}

/// `{"baseline": {...}}`, the last line of a baseline stream, sent only
/// after every snapshot line (reference `ChangeBaselineRecord`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ChangeBaselineRecord {
    pub baseline: ChangeBaselineOutput,
}

/// Query parameters of `GET /graphs/{id}/changes` (`kind`, `type`, `op`
/// repeatable; any other name is refused with 400).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ChangeFeedParams {
    /// The branch followed (default: the cursor's, else `main`).
    pub branch: Option<String>,
    /// Resume after this cursor (from a terminal page or a baseline).
    pub cursor: Option<String>,
    /// First poll only: `now` (default), `beginning` or `after:<commit_id>`.
    pub start: Option<String>,
    /// Continue this poll (from `next_page_token`).
    pub page_token: Option<String>,
    /// Changes per page, 1 to 10,000 (default 1,000; above: 413).
    pub limit: Option<u64>,
    pub kind: Option<Vec<EntityKind>>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub type_names: Option<Vec<String>>,
    pub op: Option<Vec<ChangeOp>>,
}

/// Query parameters of `GET /graphs/{id}/commits/{commit_id}/changes`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CommitChangesParams {
    /// Continue this commit's changes (from `next_page_token`).
    pub page_token: Option<String>,
    /// Changes per page, 1 to 10,000 (default 1,000; above: 413).
    pub limit: Option<u64>,
    pub kind: Option<Vec<EntityKind>>,
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub type_names: Option<Vec<String>>,
    pub op: Option<Vec<ChangeOp>>,
}

/// Query parameters of `GET`/`HEAD /graphs/{id}/blob` (reference
/// docs/user/cli/reference.md, "Blob read commands"): which cell, and
/// where to read it (a branch head, default `main`, or a commit).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BlobParams {
    /// `node` or `edge`.
    pub entity: EntityKind,
    /// The node or edge type.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub type_name: String,
    /// The entity's id (a node's key).
    pub id: String,
    /// The `Blob` property.
    pub property: String,
    pub branch: Option<String>,
    /// A commit id (time travel).
    pub snapshot: Option<String>,
}

/// An unsatisfiable byte range (HTTP 416, reference `BlobRangeOutput`):
/// the requested `start..end` (half-open) and the Blob's `length`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BlobRangeOutput {
    pub start: u64,
    pub end: u64,
    pub length: u64,
}
