//! The GraphActor: the single owner of one open graph.
//!
//! - [`Read`]: runs at once on the Lance runtime against the shared
//!   [`Graph`] (each read pins its own manifest snapshot); reads never wait
//!   for writes or for the mailbox beyond the dispatch itself.
//! - [`Write`]: names the (table, branch) keys it touches. The actor owns the
//!   [`KeyLocks`] write queues: a write waits until it holds all its keys
//!   (all at once, so overlapping writers run one after another and waiting
//!   cannot deadlock), then runs. Writes on disjoint keys stage concurrently;
//!   the engine's commit step (sidecar, table commits, manifest publish)
//!   is serialized by the graph's write lock, which also heals first.
//! - A task that panics is reported to the supervisor as a crash; the
//!   supervisor restarts the actor with backoff.

use std::sync::Arc;
use std::time::Instant;

use actix::{Actor, Context, Handler, Message, Recipient, ResponseFuture};
use futures::future::BoxFuture;
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

/// A write: the keys it touches and a closure given the open graph.
pub struct Write<T> {
    pub keys: Vec<WriteKey>,
    pub job: Job<T>,
}

impl<T: Send + 'static> Write<T> {
    pub fn new<F>(keys: Vec<WriteKey>, f: F) -> Write<T>
    where
        F: FnOnce(Arc<Graph>) -> BoxFuture<'static, Result<T, EngineError>> + Send + 'static,
    {
        Write {
            keys,
            job: Box::new(f),
        }
    }
}

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
    locks: Arc<KeyLocks<WriteKey>>,
    metrics: Arc<Metrics>,
    supervisor: Option<Recipient<Crashed>>,
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
            locks: Arc::new(KeyLocks::new()),
            metrics,
            supervisor,
        }
    }

    fn crash_reporter(&self) -> impl Fn(String) + Send + 'static {
        let sup = self.supervisor.clone();
        let id = self.id.clone();
        let generation = self.generation;
        move |reason: String| {
            if let Some(s) = &sup {
                s.do_send(Crashed {
                    id: id.clone(),
                    generation,
                    reason,
                });
            }
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
                    crash(why.clone());
                    Err(ActorError::Crashed(why))
                }
            }
        })
    }
}

impl<T: Send + 'static> Handler<Write<T>> for GraphActor {
    type Result = ResponseFuture<Result<T, ActorError>>;

    fn handle(&mut self, msg: Write<T>, _: &mut Context<Self>) -> Self::Result {
        let locks = self.locks.clone();
        let graph = self.graph.clone();
        let metrics = self.metrics.clone();
        let id = self.id.clone();
        let crash = self.crash_reporter();
        let Write { keys, job } = msg;
        metrics.queue(&id, 1);
        let start = Instant::now();
        let task = self.rt.spawn(async move {
            // Waiting for the keys blocks a thread, so it happens on the
            // runtime's blocking pool, never on an actor or worker thread.
            let guard = match locks.try_acquire(keys.iter().cloned()) {
                Some(g) => g,
                None => tokio::task::spawn_blocking(move || locks.acquire(keys))
                    .await
                    .map_err(|e| EngineError::Conflict {
                        reason: format!("waiting for the write queue failed: {e}"),
                    })?,
            };
            let r = job(graph).await;
            drop(guard);
            r
        });
        Box::pin(async move {
            let r = task.await;
            metrics.queue(&id, -1);
            metrics.write_latency(&id, start.elapsed().as_secs_f64());
            match r {
                Ok(r) => r.map_err(ActorError::Engine),
                Err(e) => {
                    let why = join_error(e);
                    crash(why.clone());
                    Err(ActorError::Crashed(why))
                }
            }
        })
    }
}
