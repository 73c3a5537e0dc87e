//! The typed messages a route sends a [`GraphActor`](super::GraphActor):
//! each names one piece of work on one graph and its answer. A route never
//! holds the graph: it sends [`Read`]`(op)` or [`Write`]`(op)` and gets
//! the op's output (or an [`ActorError`](super::ActorError)).
//!
//! - A [`GraphRead`] runs on the graph's Lance runtime; a panic fails that
//!   request alone (500).
//! - A [`GraphWrite`] is queued as its caller's write (fair queues, per-
//!   caller limits), prepared off the mailbox and committed in a commit
//!   turn; one that holds whole branches ([`GraphWrite::branches`]) waits
//!   for every (table, branch) key of them, expanded by the actor from its
//!   catalog.
//!
//! Policy has been decided by the route before any of these is sent (see
//! `crate::http`); the ops do not decide it again.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::engine::load::LoadMode;
use crate::engine::manifest::Commit;
use crate::engine::merge::MergeReport;
use crate::engine::schema_apply::ApplyReport;
use crate::engine::{BranchInfo, EngineError, Graph, ReadAt, SchemaState, Snapshot, WriteReport};
use crate::query::CheckedQuery;

/// Work that reads one graph. `Output` is what the route gets back.
pub trait GraphRead: Send + 'static {
    /// The answer.
    type Output: Send + 'static;
    /// Runs against the actor's graph.
    fn run(
        self,
        g: Arc<Graph>,
        cx: &OpContext,
    ) -> BoxFuture<'static, Result<Self::Output, EngineError>>;
}

/// Work that writes one graph, queued as `actor`'s write.
pub trait GraphWrite: Send + 'static {
    /// The answer.
    type Output: Send + 'static;
    /// The caller the write is queued under (fair queueing).
    fn actor(&self) -> &str;
    /// Branches whose every table the write holds while it runs (a
    /// merge's target, a branch delete, a schema apply on `main`); none
    /// for writes ordered by the commit queue alone.
    fn branches(&self) -> Vec<String> {
        Vec::new()
    }
    /// Whether it is big work, prepared on the bulk runtime
    /// ([`Runtimes`](super::Runtimes)); its commit step still takes the
    /// actor's commit turn.
    fn bulk(&self) -> bool {
        false
    }
    /// Runs against the actor's graph once the write's turn comes.
    fn run(
        self,
        g: Arc<Graph>,
        cx: &OpContext,
    ) -> BoxFuture<'static, Result<Self::Output, EngineError>>;
}

/// What an op may know of the actor running it.
#[derive(Clone)]
pub struct OpContext {
    /// The graph's id.
    pub graph: String,
    /// The server's metrics.
    pub metrics: Arc<super::Metrics>,
}

impl OpContext {
    /// Runs a query counted in the graph's query metrics (running while
    /// it runs; its outcome after).
    async fn counted(
        &self,
        q: impl std::future::Future<Output = Result<crate::engine::exec::QueryResult, EngineError>>,
    ) -> Result<crate::engine::exec::QueryResult, EngineError> {
        let running = self.metrics.query_running(&self.graph);
        let r = q.await;
        drop(running);
        self.metrics
            .query_outcome(&self.graph, super::metrics::query_outcome(&r));
        r
    }
}

/// The message carrying a [`GraphRead`].
pub struct Read<O>(pub O);

/// The message carrying a [`GraphWrite`].
pub struct Write<O>(pub O);

impl<O: GraphRead> actix::Message for Read<O> {
    type Result = Result<O::Output, super::ActorError>;
}

impl<O: GraphWrite> actix::Message for Write<O> {
    type Result = Result<O::Output, super::ActorError>;
}

/// A branch's tables and head ([`Graph::snapshot`]).
pub struct TakeSnapshot {
    /// Where to read: a branch's head or a commit.
    pub at: ReadAt,
}

impl GraphRead for TakeSnapshot {
    type Output = Snapshot;
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<Snapshot, EngineError>> {
        async move { g.snapshot(&self.at).await }.boxed()
    }
}

/// Every branch and its head ([`Graph::branches`]).
pub struct ListBranches;

impl GraphRead for ListBranches {
    type Output = Vec<BranchInfo>;
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<Vec<BranchInfo>, EngineError>> {
        async move { g.branches().await }.boxed()
    }
}

/// A branch's commits, newest first ([`Graph::commits`]).
pub struct ListCommits {
    /// The graph branch.
    pub branch: String,
}

impl GraphRead for ListCommits {
    type Output = Vec<Commit>;
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<Vec<Commit>, EngineError>> {
        async move { g.commits(&self.branch).await }.boxed()
    }
}

/// One commit by id ([`Graph::commit`]); `UnknownCommit` (404) otherwise.
pub struct ShowCommit {
    /// The commit's id.
    pub id: crate::engine::CommitId,
}

impl GraphRead for ShowCommit {
    type Output = Commit;
    fn run(self, g: Arc<Graph>, _: &OpContext) -> BoxFuture<'static, Result<Commit, EngineError>> {
        async move { g.commit(&self.id).await }.boxed()
    }
}

/// The schema the graph holds now, after reading its newest manifest (a
/// schema another handle or process applied included): its source, id
/// and catalog.
pub struct CurrentSchema;

impl GraphRead for CurrentSchema {
    type Output = Arc<SchemaState>;
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<Arc<SchemaState>, EngineError>> {
        async move {
            g.manifest().await?;
            Ok(g.schema_state())
        }
        .boxed()
    }
}

/// Runs a checked read query at `at` ([`Graph::query_with`]), counted in
/// the query metrics of graph `graph` (running, outcome).
pub struct RunChecked {
    /// The checked query (a stored one).
    pub query: CheckedQuery,
    /// Parameter values by name (JSON; `null` for none).
    pub params: serde_json::Value,
    /// Where to read: a branch's head or a commit.
    pub at: ReadAt,
    /// The request's cancellation flag and lowered limits.
    pub control: crate::engine::exec::QueryControl,
}

impl GraphRead for RunChecked {
    type Output = crate::engine::exec::QueryResult;
    fn run(
        self,
        g: Arc<Graph>,
        cx: &OpContext,
    ) -> BoxFuture<'static, Result<crate::engine::exec::QueryResult, EngineError>> {
        let cx = cx.clone();
        async move {
            cx.counted(g.query_with(&self.query, &self.params, &self.at, self.control))
                .await
        }
        .boxed()
    }
}

/// Exports every row visible at `at` (only `types` when given) as load
/// lines into `sink` ([`Graph::export`]). Answers once the export is
/// known to start: the types exist in the graph's catalog and `at` can be
/// read (else the error, before any byte is written: `Source` 400,
/// `UnknownBranch` 404); the rows are then
/// written on a blocking thread of the actor's runtime while the caller
/// streams them. An error after that is logged and ends `sink` early
/// (`on_error` is given its message).
pub struct Export {
    /// Where to read: a branch's head or a commit.
    pub at: ReadAt,
    /// Only these node or edge types; `None` for all.
    pub types: Option<Vec<String>>,
    /// Where the load-format lines go (the response's chunk queue).
    pub sink: Box<dyn std::io::Write + Send>,
    /// Called with the error's message when the export fails after it answered.
    pub on_error: Box<dyn FnOnce(String) + Send>,
    /// Bytes written after the last row, only when every row was (a
    /// baseline's terminal record).
    pub trailer: Option<Vec<u8>>,
}

impl GraphRead for Export {
    type Output = ();
    fn run(self, g: Arc<Graph>, cx: &OpContext) -> BoxFuture<'static, Result<(), EngineError>> {
        let graph = cx.graph.clone();
        async move {
            let Export {
                at,
                types,
                mut sink,
                on_error,
                trailer,
            } = self;
            let catalog = g.catalog();
            for t in types.iter().flatten() {
                if catalog.node(t).is_none() && catalog.edge(t).is_none() {
                    return Err(EngineError::Source {
                        reason: format!("`{t}` is not a node or edge type of graph `{graph}`"),
                    });
                }
            }
            // The branch must exist before the caller answers 200.
            g.view(&at).await?;
            let rt = tokio::runtime::Handle::current();
            // The sink blocks while the client is slow: a blocking thread,
            // not one of the runtime's workers.
            rt.clone().spawn_blocking(move || {
                let r = rt.block_on(g.export(&at, types.as_deref(), &mut sink, |_| {}));
                let r = r.and_then(|_| match &trailer {
                    Some(t) => sink.write_all(t).map_err(|e| EngineError::Io {
                        path: "<response>".into(),
                        source: e,
                    }),
                    None => Ok(()),
                });
                let r = r.and_then(|_| {
                    sink.flush().map_err(|e| EngineError::Io {
                        path: "<response>".into(),
                        source: e,
                    })
                });
                if let Err(e) = r {
                    tracing::error!(graph = %graph, error = %e, "export failed after 200; the body ends early");
                    on_error(e.to_string());
                }
            });
            Ok(())
        }
        .boxed()
    }
}

/// One page of a commit's entity changes ([`Graph::commit_changes_page`]).
pub struct CommitChanges {
    pub id: String,
    pub filter: crate::engine::changes::ChangeFilter,
    pub page_token: Option<String>,
    pub limit: Option<u64>,
}

impl GraphRead for CommitChanges {
    type Output = crate::engine::feed::CommitChangesPage;
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<Self::Output, EngineError>> {
        async move {
            g.commit_changes_page(
                &self.id,
                self.filter,
                self.page_token.as_deref(),
                self.limit,
            )
            .await
        }
        .boxed()
    }
}

/// One page of the change feed ([`Graph::poll_changes`]).
pub struct PollChanges(pub crate::engine::feed::FeedRequest);

impl GraphRead for PollChanges {
    type Output = crate::engine::feed::FeedPage;
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<Self::Output, EngineError>> {
        async move { g.poll_changes(self.0).await }.boxed()
    }
}

/// A baseline's capture ([`Graph::capture_baseline`]): the head commit,
/// the resume cursor and the types the snapshot holds (`None`: all).
pub struct CaptureBaseline {
    pub branch: String,
    pub filter: crate::engine::changes::ChangeFilter,
}

impl GraphRead for CaptureBaseline {
    type Output = (crate::engine::CommitId, String, Option<Vec<String>>);
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<Self::Output, EngineError>> {
        async move {
            let (head, cursor) = g
                .capture_baseline(&self.branch, self.filter.clone())
                .await?;
            let types = g
                .baseline_types(&ReadAt::Commit(head.clone()), &self.filter)
                .await?;
            Ok((head, cursor, types))
        }
        .boxed()
    }
}

/// Creates branch `name` at the head of `from` ([`Graph::create_branch`]).
pub struct CreateBranch {
    /// The new branch's name.
    pub name: crate::engine::BranchName,
    /// The branch whose head it starts at.
    pub from: String,
    /// The caller the write is made as and queued under.
    pub actor: String,
}

impl GraphWrite for CreateBranch {
    type Output = BranchInfo;
    fn actor(&self) -> &str {
        &self.actor
    }
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<BranchInfo, EngineError>> {
        async move { g.create_branch(&self.name, &self.from, &self.actor).await }.boxed()
    }
}

/// Deletes branch `name` ([`Graph::delete_branch`]), holding its tables.
pub struct DeleteBranch {
    /// The branch to delete (never `main`).
    pub name: String,
    /// The caller the write is made as and queued under.
    pub actor: String,
}

impl GraphWrite for DeleteBranch {
    type Output = ();
    fn actor(&self) -> &str {
        &self.actor
    }
    fn branches(&self) -> Vec<String> {
        vec![self.name.clone()]
    }
    fn run(self, g: Arc<Graph>, _: &OpContext) -> BoxFuture<'static, Result<(), EngineError>> {
        async move { g.delete_branch(&self.name, &self.actor).await }.boxed()
    }
}

/// Merges `source` into `target` ([`Graph::merge`]), holding the target's
/// tables and, with `delete_source`, the source's.
pub struct MergeBranches {
    /// The branch merged from.
    pub source: String,
    /// The branch merged into.
    pub target: String,
    /// The caller the write is made as and queued under.
    pub actor: String,
    /// Delete the source branch after a successful merge.
    pub delete_source: bool,
}

impl GraphWrite for MergeBranches {
    type Output = MergeReport;
    fn actor(&self) -> &str {
        &self.actor
    }
    fn branches(&self) -> Vec<String> {
        let mut b = vec![self.target.clone()];
        if self.delete_source {
            b.push(self.source.clone());
        }
        b
    }
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<MergeReport, EngineError>> {
        async move {
            g.merge(&self.source, &self.target, &self.actor, self.delete_source)
                .await
        }
        .boxed()
    }
}

/// Applies schema `source` to `main` ([`Graph::apply_schema`]), holding
/// every table of `main`. Answers the report and the schema the graph
/// holds after it.
pub struct ApplySchema {
    /// The new schema's `.pg` source.
    pub source: String,
    /// Allow steps that drop data (a dropped type or property).
    pub allow_data_loss: bool,
    /// The caller the write is made as and queued under.
    pub actor: String,
}

impl GraphWrite for ApplySchema {
    type Output = (ApplyReport, Arc<SchemaState>);
    fn actor(&self) -> &str {
        &self.actor
    }
    fn branches(&self) -> Vec<String> {
        vec![crate::engine::manifest::MAIN.to_string()]
    }
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<Self::Output, EngineError>> {
        async move {
            let r = g
                .apply_schema("<request>", &self.source, self.allow_data_loss, &self.actor)
                .await?;
            Ok((r, g.schema_state()))
        }
        .boxed()
    }
}

/// Loads JSONL `data` into `branch` ([`Graph::load_with`]; created from
/// `from` when given and missing). Prepared on the bulk runtime when
/// `bulk`; ordered by the commit queue like a mutation.
pub struct Load {
    /// The JSONL rows, as sent.
    pub data: bytes::Bytes,
    /// Overwrite, append or merge.
    pub mode: LoadMode,
    /// Allow an overwrite with no rows (it deletes every row of the branch).
    pub allow_empty: bool,
    /// The graph branch.
    pub branch: String,
    /// Create `branch` from this one when it does not exist.
    pub from: Option<String>,
    /// The caller the write is made as and queued under.
    pub actor: String,
    /// Prepare on the bulk runtime (a big body).
    pub bulk: bool,
}

impl GraphWrite for Load {
    type Output = WriteReport;
    fn actor(&self) -> &str {
        &self.actor
    }
    fn bulk(&self) -> bool {
        self.bulk
    }
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<WriteReport, EngineError>> {
        async move {
            g.load_with(
                std::io::Cursor::new(self.data),
                self.mode,
                self.allow_empty,
                &self.branch,
                self.from.as_deref(),
                &self.actor,
            )
            .await
        }
        .boxed()
    }
}

/// Runs a checked mutation (a stored one) on `branch` ([`Graph::mutate`]);
/// ordered by the commit queue.
pub struct RunMutation {
    /// The checked query (a stored one).
    pub query: CheckedQuery,
    /// Parameter values by name (JSON; `null` for none).
    pub params: serde_json::Value,
    /// The graph branch.
    pub branch: String,
    /// The caller the write is made as and queued under.
    pub actor: String,
    /// A conditional write's required branch head ([`Graph::if_head`]).
    pub expect_head: Option<crate::engine::CommitId>,
}

impl GraphWrite for RunMutation {
    type Output = WriteReport;
    fn actor(&self) -> &str {
        &self.actor
    }
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<WriteReport, EngineError>> {
        async move {
            (*g).clone()
                .if_head(self.expect_head)
                .mutate(&self.query, &self.params, &self.branch, &self.actor)
                .await
        }
        .boxed()
    }
}

/// A mutation request as sent (`POST /graphs/{id}/mutate`): compiled
/// against the graph's catalog ([`crate::engine::mutate::compile_request`]),
/// then run as the caller's write: prepared off the mailbox, committed in
/// a commit turn; ordered by the commit queue. Answers the query's name
/// and the write's report; a source that does not compile, names no
/// declared query or is a read query is [`EngineError::Source`] (400).
pub struct Mutate {
    /// The caller the write is made as and queued under.
    pub actor: String,
    /// The graph branch.
    pub branch: String,
    /// The request's `.gq` source.
    pub source: String,
    /// Which query of the source to run; `None` when it declares one.
    pub name: Option<String>,
    /// Parameter values by name (JSON; `null` for none).
    pub params: serde_json::Value,
    /// A conditional write's required branch head ([`Graph::if_head`]).
    pub expect_head: Option<crate::engine::CommitId>,
}

impl GraphWrite for Mutate {
    type Output = (String, WriteReport);
    fn actor(&self) -> &str {
        &self.actor
    }
    fn run(
        self,
        g: Arc<Graph>,
        cx: &OpContext,
    ) -> BoxFuture<'static, Result<(String, WriteReport), EngineError>> {
        let id = cx.graph.clone();
        async move {
            let q = crate::engine::mutate::compile_request(
                &g.catalog(),
                &self.source,
                self.name.as_deref(),
            )?;
            if !q.is_mutation() {
                return Err(EngineError::Source {
                    reason: format!(
                        "`{}` is a read query; send it to POST /graphs/{id}/query",
                        q.name
                    ),
                });
            }
            let r = (*g)
                .clone()
                .if_head(self.expect_head)
                .mutate(&q, &self.params, &self.branch, &self.actor)
                .await?;
            Ok((q.name.clone(), r))
        }
        .boxed()
    }
}

/// A read query as sent (`POST /graphs/{id}/query`): compiled against the
/// catalog at `at` (the graph's for a branch, the commit's for a
/// snapshot), a mutation refused, then run like [`RunChecked`]. Answers
/// the query's name and its rows; a source that does not compile or is a
/// mutation is [`EngineError::Source`] (400).
pub struct RunQuery {
    /// The request's `.gq` source.
    pub source: String,
    /// Which query of the source to run; `None` when it declares one.
    pub name: Option<String>,
    /// Parameter values by name (JSON; `null` for none).
    pub params: serde_json::Value,
    /// Where to read: a branch's head or a commit.
    pub at: ReadAt,
    /// The request's cancellation flag and lowered limits.
    pub control: crate::engine::exec::QueryControl,
}

impl GraphRead for RunQuery {
    type Output = (String, crate::engine::exec::QueryResult);
    fn run(
        self,
        g: Arc<Graph>,
        cx: &OpContext,
    ) -> BoxFuture<'static, Result<Self::Output, EngineError>> {
        let cx = cx.clone();
        async move {
            let RunQuery {
                source,
                name,
                params,
                at,
                control,
            } = self;
            let catalog = match &at {
                ReadAt::Commit(_) => g.catalog_at(&at).await?,
                _ => g.catalog(),
            };
            let q = crate::engine::mutate::compile_request(&catalog, &source, name.as_deref())?;
            if q.is_mutation() {
                return Err(EngineError::Source {
                    reason: format!(
                        "`{}` is a mutation; send it to POST /graphs/{}/mutate",
                        q.name, cx.graph
                    ),
                });
            }
            let r = cx.counted(g.query_with(&q, &params, &at, control)).await?;
            Ok((q.name.clone(), r))
        }
        .boxed()
    }
}

/// One Blob cell ([`Graph::blob`]).
pub struct ReadBlob {
    pub at: ReadAt,
    pub kind: crate::engine::changes::EntityKind,
    pub type_name: String,
    pub id: String,
    pub property: String,
}

impl GraphRead for ReadBlob {
    type Output = crate::engine::blob::BlobCell;
    fn run(
        self,
        g: Arc<Graph>,
        _: &OpContext,
    ) -> BoxFuture<'static, Result<Self::Output, EngineError>> {
        async move {
            g.blob(
                &self.at,
                self.kind,
                &self.type_name,
                &self.id,
                &self.property,
            )
            .await
        }
        .boxed()
    }
}
