//! The GraphActor: the single owner of one open graph and of its write
//! path (docs/architecture.md, "The write path").
//!
//! Routes send it typed messages ([`super::ops`]); none of them hands the
//! graph out.
//! - [`Read`] of a [`GraphRead`]: runs at once on the Lance runtime
//!   against the shared [`Graph`] (each read pins its own manifest
//!   snapshot); reads never wait for writes or for the mailbox beyond the
//!   dispatch itself.
//! - [`Write`] of a [`GraphWrite`]: names its caller and the branches it
//!   holds whole (none for a mutation or a load; the actor expands them
//!   to (table, branch) keys from its catalog). The actor's mailbox owns
//!   the write queues ([`FairQueues`]): one FIFO per caller, served
//!   round-robin, at most [`MAX_WRITES_RUNNING`] writes running and
//!   [`MAX_WRITES_PER_CALLER`] of one caller, so one caller's flood leaves
//!   room for the others. A running write *prepares* on the Lance runtime
//!   (binds, validates against a pinned head, stages its table changes
//!   uncommitted), concurrently with other writes.
//! - [`CommitRequest`]: a prepared write's *commit step*, sent by the
//!   graph handle's commit path back to this actor. The mailbox owns the
//!   commit queue: one turn at a time, each turn taking every write that
//!   queued while the previous turn ran: heal when due, then the turn's
//!   writes as one group where they can share it (one sidecar, fenced
//!   table commits, one manifest publish; [`Graph::commit_group_here`]),
//!   the others one by one; each write keeps its own commit and reply.
//! - Upkeep (index extension and folding, compaction) is not part of a
//!   commit turn: the actor runs one step at a time between turns
//!   ([`Graph::upkeep_once`]), yielding to queued commits for at most
//!   [`UPKEEP_MAX_YIELD`]; only the step's short commit takes a turn.
//! - A write or commit task that panics is reported to the supervisor as a
//!   crash; the supervisor restarts the actor with backoff. A read that
//!   panics fails only its own request (500, logged): it shares no state
//!   with the graph's other work.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use std::collections::VecDeque;

use actix::{
    Actor, Addr, AsyncContext, Context, Handler, Message, Recipient, ResponseFuture, WeakAddr,
};
use futures::future::BoxFuture;
use omnigraph_sync::commit::CommitQueue;
use omnigraph_sync::fair::FairQueues;
use omnigraph_sync::keylock::KeyLocks;

use super::ops::{GraphRead, GraphWrite, OpContext, Read, Write};
use super::supervisor::Crashed;
use super::{ActorError, Metrics};
use crate::engine::{CommitPath, EngineError, Graph, PreparedWrite, WriteReport};

/// Writes running (preparing or waiting for their commit) at once.
pub const MAX_WRITES_RUNNING: usize = 16;
/// Writes of one caller running at once.
pub const MAX_WRITES_PER_CALLER: usize = 4;

/// A (table key, branch) pair: the unit of write queueing.
pub type WriteKey = (crate::engine::TableKey, String);

type Job<T> = Box<dyn FnOnce(Arc<Graph>) -> BoxFuture<'static, Result<T, EngineError>> + Send>;

/// A queued write, type-erased: started with its key guard, it runs the
/// job and delivers the result itself.
struct Pending {
    start: Box<
        dyn FnOnce(omnigraph_sync::keylock::KeyGuard<WriteKey>) -> BoxFuture<'static, ()> + Send,
    >,
}

/// Sent by a finished write to its actor: its slot and keys are free,
/// dispatch again.
#[derive(Message)]
#[rtype(result = "()")]
struct WriteDone {
    caller: String,
}

/// A prepared write's commit step, queued in the actor's mailbox.
pub struct CommitRequest {
    pub write: PreparedWrite,
    pub reply: tokio::sync::oneshot::Sender<Result<WriteReport, EngineError>>,
}

impl Message for CommitRequest {
    type Result = ();
}

/// Sent when a commit turn ends: start the next.
#[derive(Message)]
#[rtype(result = "()")]
struct TurnDone;

/// The graph handle's commit path: sends each prepared write to the actor.
/// Holds the actor weakly, so a stopped actor's handles do not keep it.
#[derive(Debug)]
struct ToActor(WeakAddr<GraphActor>);

impl CommitPath for ToActor {
    fn submit(&self, write: PreparedWrite) -> BoxFuture<'static, Result<WriteReport, EngineError>> {
        let addr = self.0.upgrade();
        Box::pin(async move {
            let gone = || EngineError::Conflict {
                reason: "the graph stopped before the write committed; read the branch, then retry"
                    .into(),
            };
            let addr: Addr<GraphActor> = addr.ok_or_else(gone)?;
            let (reply, rx) = tokio::sync::oneshot::channel();
            let asked = Instant::now();
            addr.send(CommitRequest { write, reply })
                .await
                .map_err(|_| gone())?;
            let r = rx.await.map_err(|_| gone())?;
            tracing::debug!(
                commit_ms = asked.elapsed().as_secs_f64() * 1e3,
                "commit step answered"
            );
            r
        })
    }
}

/// One open graph's actor.
pub struct GraphActor {
    id: String,
    /// Bumped on every (re)start so a crash report names the incarnation.
    generation: u64,
    graph: Arc<Graph>,
    /// Reads and light writes.
    rt: tokio::runtime::Handle,
    /// Commit turns ([`super::Runtimes::commit`]).
    commit_rt: tokio::runtime::Handle,
    /// Big loads' prepares, and upkeep steps while a bulk write is queued
    /// or running.
    bulk: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
    supervisor: Option<Recipient<Crashed>>,
    /// Queued writes per caller, served round-robin over the (table,
    /// branch) key locks, bounded in number.
    queues: FairQueues<WriteKey, (String, Pending)>,
    /// Prepared writes waiting for the next commit turn, and whether one
    /// runs ([`CommitQueue`], model-checked in `loom-tests`).
    commits: CommitQueue<CommitRequest>,
    /// The handle commit turns use (commits here, not through the actor).
    committer: Arc<Graph>,
    /// An upkeep step ([`Graph::upkeep_once`]) is running.
    upkeeping: bool,
    /// Since when upkeep has waited for a quiet moment.
    upkeep_waiting_since: Option<Instant>,
    /// Where upkeep steps prepare while a bulk write is queued or running
    /// ([`super::Runtimes::upkeep`]).
    upkeep_rt: tokio::runtime::Handle,
    /// Bulk writes queued or running ([`BulkWrite`]): while there are
    /// any, upkeep steps run on the bulk runtime beside them; otherwise on
    /// the main runtime (see [`GraphActor::run_upkeep`]).
    bulk_writes: Arc<AtomicUsize>,
}

/// Counts one bulk write in [`GraphActor::bulk_writes`] from when it is
/// queued until it has run (or is dropped unrun).
struct BulkWrite(Arc<AtomicUsize>);

impl BulkWrite {
    fn new(count: &Arc<AtomicUsize>) -> BulkWrite {
        count.fetch_add(1, Ordering::SeqCst);
        BulkWrite(count.clone())
    }
}

impl Drop for BulkWrite {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long upkeep yields to queued commits before it runs anyway: under a
/// steady stream of writes it still keeps up, one step at a time. At
/// 500 ms, 16 callers' single-row inserts left about 300 one-row
/// fragments between two compactions, and every commit's Lance manifest
/// (built, encoded and written per version) grew with them: 50 ms took
/// that phase of `omnigraph-bench group-commit` from about 560 to 660
/// commits/s (docs/performance.md, "Inserts staged as appends").
pub const UPKEEP_MAX_YIELD: std::time::Duration = std::time::Duration::from_millis(50);
/// The pause between two upkeep steps, and before looking again when
/// upkeep yields to queued commits.
pub const UPKEEP_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);

/// Sent when an upkeep step ends.
#[derive(Message)]
#[rtype(result = "()")]
struct UpkeepStepDone;

impl GraphActor {
    pub fn new(
        id: String,
        generation: u64,
        graph: Arc<Graph>,
        rt: super::Runtimes,
        metrics: Arc<Metrics>,
        supervisor: Option<Recipient<Crashed>>,
    ) -> GraphActor {
        GraphActor {
            id,
            generation,
            committer: graph.clone(),
            graph,
            rt: rt.main,
            bulk: rt.bulk,
            upkeep_rt: rt.upkeep,
            commit_rt: rt.commit,
            metrics,
            supervisor,
            queues: FairQueues::with_limits(
                KeyLocks::new(),
                MAX_WRITES_RUNNING,
                MAX_WRITES_PER_CALLER,
            ),
            commits: CommitQueue::new(),
            upkeeping: false,
            upkeep_waiting_since: None,
            bulk_writes: Arc::default(),
        }
    }

    /// Starts one upkeep step when one is wanted and none runs. It yields
    /// to queued commits (looks again after [`UPKEEP_PAUSE`]) for at most
    /// [`UPKEEP_MAX_YIELD`]; its dear part runs outside the commit turn,
    /// and only its short commit takes a turn.
    ///
    /// The step's dear part (new index segments, compacted fragments)
    /// runs on the upkeep runtime (nice 10, a thread of its own beside
    /// the bulk runtime's) while a bulk write is queued or running, so
    /// that a flood's compactions and index builds yield the CPU to light
    /// writers like the flood itself does, without waiting behind the
    /// flood's prepares; otherwise on the main runtime. Its commit turn always runs on the main runtime: on
    /// the bulk one it waited behind the flood's prepares while it held
    /// the turn every light writer's commit needs
    /// ([`Graph::upkeep_once_beside_flood`]). A compaction that would remap
    /// indexes inside its commit turn is held meanwhile and released when
    /// the last bulk write is done ([`Graph::release_held_upkeep`]).
    /// Starved of CPU under a steady stream of small
    /// writes, upkeep fell behind: uncovered one-row fragments piled up
    /// (20 to 60 between compactions instead of 5) and every write's key
    /// join scanned them all, which cost each commit more CPU than the
    /// upkeep itself (docs/performance.md, "Upkeep at the priority of the
    /// work that made it due").
    fn run_upkeep(&mut self, ctx: &mut Context<Self>) {
        let flood = self.bulk_writes.load(Ordering::SeqCst) > 0;
        if !flood {
            self.committer.release_held_upkeep();
        }
        if self.upkeeping || self.committer.upkeep_pending() == 0 {
            self.upkeep_waiting_since = None;
            return;
        }
        if !self.commits.is_idle() {
            let since = *self.upkeep_waiting_since.get_or_insert_with(Instant::now);
            if since.elapsed() < UPKEEP_MAX_YIELD {
                ctx.run_later(UPKEEP_PAUSE, |act, ctx| act.run_upkeep(ctx));
                return;
            }
        }
        self.upkeep_waiting_since = None;
        self.upkeeping = true;
        let graph = self.committer.clone();
        let me = ctx.address();
        let crash = self.crash_reporter();
        let id = self.id.clone();
        let bulk = flood.then(|| self.upkeep_rt.clone());
        let step_rt = self.rt.clone();
        self.rt.spawn(async move {
            let t = Instant::now();
            let r = step_rt
                .spawn(async move { graph.upkeep_once_beside_flood(bulk).await })
                .await;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            match r {
                Ok(Ok(done)) => tracing::debug!(graph = %id, ?done, ms, "upkeep step"),
                Ok(Err(e)) => tracing::warn!(graph = %id, error = %e, "upkeep step failed"),
                Err(e) => crash(join_error(e)).await,
            }
            me.do_send(UpkeepStepDone);
        });
    }

    /// Starts every queued write that can start now ([`FairQueues::start`]).
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        for ((caller, p), guard) in self.queues.start() {
            let me = ctx.address();
            let run = (p.start)(guard);
            self.rt.spawn(async move {
                run.await;
                me.do_send(WriteDone { caller });
            });
        }
    }

    /// Runs a commit turn the queue handed out ([`CommitQueue::push`],
    /// [`CommitQueue::turn_done`]): it heals when due and commits the
    /// turn's writes on the Lance runtime; writes that queue meanwhile wait
    /// for the next turn, which [`TurnDone`] starts.
    fn run_turn(&mut self, turn: Vec<CommitRequest>, ctx: &mut Context<Self>) {
        let graph = self.committer.clone();
        let me = ctx.address();
        let crash = self.crash_reporter();
        let rt = self.commit_rt.clone();
        self.rt.spawn(async move {
            let task = rt.spawn(commit_turn(graph, turn));
            if let Err(e) = task.await {
                crash(join_error(e)).await;
            }
            me.do_send(TurnDone);
        });
    }

    /// Reports a crash to the supervisor and waits until it has taken the
    /// graph out of service, so the caller's 500 is never followed by a
    /// request to the crashed instance.
    fn crash_reporter(&self) -> impl FnOnce(String) -> BoxFuture<'static, ()> + Send + 'static {
        let sup = self.supervisor.clone();
        let id = self.id.clone();
        let generation = self.generation;
        move |reason: String| {
            Box::pin(async move {
                if let Some(s) = sup {
                    let _ = s
                        .send(Crashed {
                            id,
                            generation,
                            reason,
                        })
                        .await;
                }
            })
        }
    }
}

impl Actor for GraphActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // Big writes (loads up to 32 MiB) queue here; keep the mailbox deep.
        ctx.set_mailbox_capacity(4096);
        // The graph's prepared writes come back here for their commit step.
        let base = self.graph.committing_here().with_background_upkeep();
        self.committer = Arc::new(base.clone());
        self.graph = Arc::new(base.with_commit_path(Arc::new(ToActor(ctx.address().downgrade()))));
        tracing::info!(graph = %self.id, generation = self.generation, "graph actor started");
    }
}

fn join_error(e: tokio::task::JoinError) -> String {
    if e.is_panic() {
        let p = e.into_panic();
        p.downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string())
    } else {
        "cancelled".to_string()
    }
}

impl<O: GraphRead> Handler<Read<O>> for GraphActor {
    type Result = ResponseFuture<Result<O::Output, ActorError>>;

    fn handle(&mut self, msg: Read<O>, _: &mut Context<Self>) -> Self::Result {
        let task = self
            .rt
            .spawn(msg.0.run(self.graph.clone(), &self.op_context()));
        let id = self.id.clone();
        Box::pin(async move {
            match task.await {
                Ok(r) => r.map_err(ActorError::Engine),
                Err(e) => {
                    // A read holds nothing the graph's other work shares
                    // (its own pinned snapshot, its own memory grant), so
                    // its panic fails only this request: logged, answered
                    // 500, not counted as a crash of the graph.
                    let why = join_error(e);
                    tracing::error!(graph = %id, panic = %why, "a read panicked; answered 500, the graph keeps serving");
                    Err(ActorError::ReadPanicked(why))
                }
            }
        })
    }
}

impl<O: GraphWrite> Handler<Write<O>> for GraphActor {
    type Result = ResponseFuture<Result<O::Output, ActorError>>;

    fn handle(&mut self, msg: Write<O>, ctx: &mut Context<Self>) -> Self::Result {
        let op = msg.0;
        let actor = op.actor().to_string();
        let (branches, bulk) = (op.branches(), op.bulk());
        let cx = self.op_context();
        let job: Job<O::Output> = Box::new(move |g| op.run(g, &cx));
        self.queue_write(actor, branches, bulk, job, ctx)
    }
}

impl GraphActor {
    /// What an op may know of this actor.
    fn op_context(&self) -> OpContext {
        OpContext {
            graph: self.id.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Queues `job` as `actor`'s write, holding every (table, branch) key
    /// of `branches` (expanded from the graph's catalog now), prepared on
    /// the bulk runtime when `bulk`; answers when it has run.
    fn queue_write<T: Send + 'static>(
        &mut self,
        actor: String,
        branches: Vec<String>,
        bulk: bool,
        job: Job<T>,
        ctx: &mut Context<Self>,
    ) -> ResponseFuture<Result<T, ActorError>> {
        let graph = self.graph.clone();
        let metrics = self.metrics.clone();
        let id = self.id.clone();
        let crash = self.crash_reporter();
        let mut keys: Vec<WriteKey> = Vec::new();
        for b in branches {
            keys.extend(self.graph.table_keys().into_iter().map(|k| (k, b.clone())));
        }
        metrics.queue(&id, 1);
        let started = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<Result<T, EngineError>, String>>();
        let rt = if bulk {
            self.bulk.clone()
        } else {
            self.rt.clone()
        };
        let counted = bulk.then(|| BulkWrite::new(&self.bulk_writes));
        let who = actor.clone();
        let pending = Pending {
            start: Box::new(move |guard| {
                Box::pin(async move {
                    let _counted = counted;
                    let queue_ms = started.elapsed().as_secs_f64() * 1e3;
                    // The job runs as its own task so a panic is caught and
                    // reported instead of taking the queue down.
                    let r = rt.spawn(job(graph)).await.map_err(join_error);
                    drop(guard);
                    tracing::debug!(
                        actor = %who,
                        queue_ms,
                        total_ms = started.elapsed().as_secs_f64() * 1e3,
                        "write done"
                    );
                    let _ = tx.send(r);
                })
            }),
        };
        self.queues.push(&actor, keys, (actor.clone(), pending));
        self.dispatch(ctx);
        Box::pin(async move {
            let r = rx.await;
            metrics.queue(&id, -1);
            metrics.write_latency(&id, started.elapsed().as_secs_f64());
            match r {
                // The write's commit step panicked in a commit turn.
                Ok(Ok(Err(EngineError::Crashed { reason }))) | Ok(Err(reason)) => {
                    crash(reason.clone()).await;
                    Err(ActorError::Crashed(reason))
                }
                Ok(Ok(r)) => r.map_err(ActorError::Engine),
                Err(_) => Err(ActorError::Gone),
            }
        })
    }
}

impl Handler<WriteDone> for GraphActor {
    type Result = ();

    fn handle(&mut self, done: WriteDone, ctx: &mut Context<Self>) {
        self.queues.finished(&done.caller);
        self.dispatch(ctx);
        // The last bulk write of a flood releases the upkeep held beside it.
        if self.bulk_writes.load(Ordering::SeqCst) == 0 && self.committer.release_held_upkeep() > 0
        {
            self.run_upkeep(ctx);
        }
    }
}

impl Handler<CommitRequest> for GraphActor {
    type Result = ();

    fn handle(&mut self, req: CommitRequest, ctx: &mut Context<Self>) {
        if let Some(turn) = self.commits.push(req) {
            self.run_turn(turn, ctx);
        }
    }
}

impl Handler<TurnDone> for GraphActor {
    type Result = ();

    fn handle(&mut self, _: TurnDone, ctx: &mut Context<Self>) {
        if let Some(turn) = self.commits.turn_done() {
            self.run_turn(turn, ctx);
        }
        self.run_upkeep(ctx);
    }
}

impl Handler<UpkeepStepDone> for GraphActor {
    type Result = ();

    fn handle(&mut self, _: UpkeepStepDone, ctx: &mut Context<Self>) {
        self.upkeeping = false;
        ctx.run_later(UPKEEP_PAUSE, |act, ctx| act.run_upkeep(ctx));
    }
}

/// One commit turn: takes the graph's commit turn (healing when due), then
/// commits every write of the turn as a group where they can share one
/// ([`Graph::commit_group_here`]) and answers each. When the turn cannot
/// start (heal refused: an unreadable sidecar, storage down), each write
/// gets the reason from its own attempt. A commit that panics answers
/// [`EngineError::Crashed`] to every write of the turn; each write's
/// handler reports the crash to the supervisor.
async fn commit_turn(graph: Arc<Graph>, turn: Vec<CommitRequest>) {
    let started = Instant::now();
    let writes = turn.len();
    commit_turn_inner(graph, turn).await;
    tracing::debug!(
        writes,
        ms = started.elapsed().as_secs_f64() * 1e3,
        "commit turn done"
    );
}

async fn commit_turn_inner(graph: Arc<Graph>, turn: Vec<CommitRequest>) {
    let mut turn = VecDeque::from(turn);
    while let Some(req) = turn.pop_front() {
        let guard = match graph.begin_write(req.write.actor()).await {
            Ok(g) => g,
            Err(e) => {
                let _ = req.reply.send(Err(e));
                continue;
            }
        };
        let (writes, replies): (Vec<_>, Vec<_>) = std::iter::once(req)
            .chain(turn.drain(..))
            .map(|r| (r.write, r.reply))
            .unzip();
        let g = graph.clone();
        // Its own task, so a panic is caught and answered.
        match tokio::spawn(async move { g.commit_group_here(writes).await }).await {
            Ok(results) => {
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(r);
                }
            }
            Err(e) => {
                let why = join_error(e);
                for reply in replies {
                    let _ = reply.send(Err(EngineError::Crashed {
                        reason: why.clone(),
                    }));
                }
            }
        }
        drop(guard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bulk_write_counts_from_queued_until_run_or_dropped() {
        let count = Arc::new(AtomicUsize::new(0));
        let ran = BulkWrite::new(&count);
        let unrun = BulkWrite::new(&count);
        assert_eq!(count.load(Ordering::SeqCst), 2);
        // A queued write's start closure owns its count: run or dropped
        // unrun, the count goes.
        let start = move || drop(ran);
        start();
        assert_eq!(count.load(Ordering::SeqCst), 1);
        let never_started: Box<dyn FnOnce() + Send> = Box::new(move || drop(unrun));
        drop(never_started);
        assert_eq!(count.load(Ordering::SeqCst), 0);
    }
}
