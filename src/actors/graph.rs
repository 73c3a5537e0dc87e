//! The GraphActor: the single owner of one open graph.
//!
//! - [`Read`]: runs at once on the Lance runtime against the shared
//!   [`Graph`] (each read pins its own manifest snapshot); reads never wait
//!   for writes or for the mailbox beyond the dispatch itself.
//! - [`Write`]: names its caller and the (table, branch) keys it touches.
//!   The actor's mailbox owns the write queues ([`FairQueues`]): one FIFO
//!   per caller, served round-robin across callers, over the [`KeyLocks`]
//!   on (table, branch).
//!   A write starts when it is at the front of its caller's queue and all
//!   its keys are free (taken all at once, so overlapping writers run one
//!   after another and waiting cannot deadlock); after a caller's write
//!   starts, that caller goes to the back of the round. So a caller with
//!   many writes queued delays another caller by at most one of its writes
//!   per conflicting key. Writes on disjoint keys run concurrently; the
//!   engine's commit step (sidecar, table commits, manifest publish) is
//!   serialized by the graph's write lock, which also heals first.
//! - A task that panics is reported to the supervisor as a crash; the
//!   supervisor restarts the actor with backoff.

use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, AsyncContext, Context, Handler, Message, Recipient, ResponseFuture};
use futures::future::BoxFuture;
use omnigraph_sync::fair::FairQueues;
use omnigraph_sync::keylock::KeyLocks;

use super::supervisor::Crashed;
use super::{ActorError, Metrics};
use crate::engine::{EngineError, Graph};

/// A (table key, branch) pair: the unit of write queueing.
pub type WriteKey = (String, String);

type Job<T> = Box<dyn FnOnce(Arc<Graph>) -> BoxFuture<'static, Result<T, EngineError>> + Send>;

/// A read: a closure given the open graph.
pub struct Read<T>(pub Job<T>);

impl<T: Send + 'static> Read<T> {
    pub fn new<F>(f: F) -> Read<T>
    where
        F: FnOnce(Arc<Graph>) -> BoxFuture<'static, Result<T, EngineError>> + Send + 'static,
    {
        Read(Box::new(f))
    }
}

impl<T: Send + 'static> Message for Read<T> {
    type Result = Result<T, ActorError>;
}

/// A write: the caller (for fair queueing), the keys it touches and a
/// closure given the open graph.
pub struct Write<T> {
    pub actor: String,
    pub keys: Vec<WriteKey>,
    pub job: Job<T>,
}

impl<T: Send + 'static> Write<T> {
    pub fn new<F>(actor: &str, keys: Vec<WriteKey>, f: F) -> Write<T>
    where
        F: FnOnce(Arc<Graph>) -> BoxFuture<'static, Result<T, EngineError>> + Send + 'static,
    {
        Write {
            actor: actor.to_string(),
            keys,
            job: Box::new(f),
        }
    }
}

/// A queued write, type-erased: started with its key guard, it runs the
/// job and delivers the result itself.
struct Pending {
    start: Box<
        dyn FnOnce(omnigraph_sync::keylock::KeyGuard<WriteKey>) -> BoxFuture<'static, ()> + Send,
    >,
}

/// Sent by a finished write to its actor: keys are free, dispatch again.
#[derive(Message)]
#[rtype(result = "()")]
struct WriteDone;

impl<T: Send + 'static> Message for Write<T> {
    type Result = Result<T, ActorError>;
}

/// One open graph's actor.
pub struct GraphActor {
    id: String,
    /// Bumped on every (re)start so a crash report names the incarnation.
    generation: u64,
    graph: Arc<Graph>,
    rt: tokio::runtime::Handle,
    metrics: Arc<Metrics>,
    supervisor: Option<Recipient<Crashed>>,
    /// Queued writes per caller, served round-robin over the (table,
    /// branch) key locks.
    queues: FairQueues<WriteKey, Pending>,
}

impl GraphActor {
    pub fn new(
        id: String,
        generation: u64,
        graph: Arc<Graph>,
        rt: tokio::runtime::Handle,
        metrics: Arc<Metrics>,
        supervisor: Option<Recipient<Crashed>>,
    ) -> GraphActor {
        GraphActor {
            id,
            generation,
            graph,
            rt,
            metrics,
            supervisor,
            queues: FairQueues::new(KeyLocks::new()),
        }
    }

    /// Starts every queued write that can start now ([`FairQueues::start`]).
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        for (p, guard) in self.queues.start() {
            let me = ctx.address();
            let run = (p.start)(guard);
            self.rt.spawn(async move {
                run.await;
                me.do_send(WriteDone);
            });
        }
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

impl<T: Send + 'static> Handler<Read<T>> for GraphActor {
    type Result = ResponseFuture<Result<T, ActorError>>;

    fn handle(&mut self, msg: Read<T>, _: &mut Context<Self>) -> Self::Result {
        let task = self.rt.spawn((msg.0)(self.graph.clone()));
        let crash = self.crash_reporter();
        Box::pin(async move {
            match task.await {
                Ok(r) => r.map_err(ActorError::Engine),
                Err(e) => {
                    let why = join_error(e);
                    crash(why.clone()).await;
                    Err(ActorError::Crashed(why))
                }
            }
        })
    }
}

impl<T: Send + 'static> Handler<Write<T>> for GraphActor {
    type Result = ResponseFuture<Result<T, ActorError>>;

    fn handle(&mut self, msg: Write<T>, ctx: &mut Context<Self>) -> Self::Result {
        let graph = self.graph.clone();
        let metrics = self.metrics.clone();
        let id = self.id.clone();
        let crash = self.crash_reporter();
        let Write { actor, keys, job } = msg;
        metrics.queue(&id, 1);
        let started = Instant::now();
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<Result<T, EngineError>, String>>();
        let rt = self.rt.clone();
        let pending = Pending {
            start: Box::new(move |guard| {
                Box::pin(async move {
                    // The job runs as its own task so a panic is caught and
                    // reported instead of taking the queue down.
                    let r = rt.spawn(job(graph)).await.map_err(join_error);
                    drop(guard);
                    let _ = tx.send(r);
                })
            }),
        };
        self.queues.push(&actor, keys, pending);
        self.dispatch(ctx);
        Box::pin(async move {
            let r = rx.await;
            metrics.queue(&id, -1);
            metrics.write_latency(&id, started.elapsed().as_secs_f64());
            match r {
                Ok(Ok(r)) => r.map_err(ActorError::Engine),
                Ok(Err(why)) => {
                    crash(why.clone()).await;
                    Err(ActorError::Crashed(why))
                }
                Err(_) => Err(ActorError::Gone),
            }
        })
    }
}

impl Handler<WriteDone> for GraphActor {
    type Result = ();

    fn handle(&mut self, _: WriteDone, ctx: &mut Context<Self>) {
        self.dispatch(ctx);
    }
}
