//! The SupervisorActor and the graph registry it owns.
//!
//! The registry maps a graph id to its entry: state (`ready`,
//! `quarantined{reason}`, `restarting`), the GraphActor's address when
//! ready, and the graph's stored queries. HTTP handlers read it (a
//! `DashMap`, so lookups never wait on the supervisor); only the supervisor
//! changes it, except for [`Registry::replace_queries`]: the stored queries
//! re-checked after the graph's schema changed.
//!
//! - Boot opens every graph in parallel (at most [`BOOT_PARALLELISM`] at
//!   once): open, heal (an unreadable sidecar fails here), load and type
//!   check the stored queries. A failure quarantines that graph alone.
//! - A GraphActor whose task panicked is restarted after a backoff
//!   (200 ms × 2^(crashes−1)); after [`MAX_CRASHES`] crashes the graph is
//!   quarantined. A clean reopen does not reset the count (a graph that
//!   opens fine and crashes on its next write still ends quarantined); an
//!   operator's [`Restart`] does.
//! - Ops: [`Quarantine`] stops serving a graph; [`Restart`] reopens, heals
//!   and serves it again, without a process restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseActFuture,
    WrapFuture,
};
use dashmap::DashMap;
use futures::StreamExt;

use super::{GraphActor, Metrics};
use crate::engine::Graph;
use crate::policy::Gate;
use crate::query::CheckedQuery;
use crate::schema::Catalog;

/// Graphs opened at once during boot (the reference's bound).
pub const BOOT_PARALLELISM: usize = 4;
/// Crashes after which a graph is quarantined instead of restarted.
pub const MAX_CRASHES: u32 = 3;

/// How to open one graph.
#[derive(Debug, Clone)]
pub struct GraphSpec {
    pub id: crate::engine::GraphId,
    pub uri: String,
    /// A directory of `.gq` files: the graph's stored queries.
    pub queries_dir: Option<PathBuf>,
    /// More stored queries as (where they came from, source): a
    /// `--cluster` server's verified blobs.
    pub query_sources: Vec<(String, String)>,
    /// The gate for this graph's requests (each route decides once,
    /// before any engine work; the engine has no gate of its own here).
    pub gate: Gate,
    /// This graph's read-query limits (the server's defaults, or its
    /// `--query-limits`).
    pub limits: crate::engine::budget::QueryLimits,
    /// This graph's embedding provider (a cluster's
    /// `providers.embedding`); `None`: the environment's
    /// (`OMNIGRAPH_EMBED_*`), resolved on first use.
    pub embedding: Option<crate::embed::EmbeddingConfig>,
}

/// A graph's serving state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphState {
    Ready,
    Quarantined { reason: String },
    Restarting,
}

impl GraphState {
    pub fn name(&self) -> &'static str {
        match self {
            GraphState::Ready => "ready",
            GraphState::Quarantined { .. } => "quarantined",
            GraphState::Restarting => "restarting",
        }
    }
}

/// A graph's stored queries, by name, type checked against its schema.
#[derive(Debug, Default)]
pub struct StoredQueries {
    pub queries: std::collections::BTreeMap<String, CheckedQuery>,
    /// The files the queries came from, as (displayed path, source), in
    /// load order: what [`Self::recheck`] checks against another schema.
    pub sources: Vec<(String, String)>,
    /// The schema the queries were checked against (`None`: the one `init`
    /// wrote; otherwise the id `schema apply` gave it).
    pub schema_id: Option<String>,
}

impl StoredQueries {
    /// Loads every `.gq` file in `dir` (sorted), then the `extra` sources
    /// (origin, text), and type checks each against `graph`'s catalog.
    /// Errors: an unreadable directory or file, a query that does not
    /// check (the rendered diagnostics), a name declared in two files.
    pub fn load(
        dir: Option<&PathBuf>,
        extra: &[(String, String)],
        graph: &Graph,
    ) -> Result<StoredQueries, String> {
        let mut files: Vec<PathBuf> = match dir {
            Some(dir) => std::fs::read_dir(dir)
                .map_err(|e| format!("cannot read stored queries in {}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "gq"))
                .collect(),
            None => Vec::new(),
        };
        files.sort();
        let mut sources = files
            .iter()
            .map(|f| {
                std::fs::read_to_string(f)
                    .map(|src| (f.display().to_string(), src))
                    .map_err(|e| format!("cannot read {}: {e}", f.display()))
            })
            .collect::<Result<Vec<_>, String>>()?;
        sources.extend(extra.iter().cloned());
        let schema = graph.schema_state();
        Self::check(sources, &schema.catalog, schema.id.clone())
    }

    /// Type checks `sources` (displayed path, text) against `catalog`, the
    /// catalog of schema `schema_id`. Errors as [`Self::load`]'s.
    pub fn check(
        sources: Vec<(String, String)>,
        catalog: &Catalog,
        schema_id: Option<String>,
    ) -> Result<StoredQueries, String> {
        let mut queries = std::collections::BTreeMap::new();
        let mut origin: HashMap<String, &str> = HashMap::new();
        for (name, src) in &sources {
            let (compiled, diags) = crate::query::compile_queries_file(catalog, name, src);
            if compiled.has_errors() {
                return Err(format!(
                    "stored queries in {name} do not type check against the graph's schema:\n{}",
                    diags.render(false)
                ));
            }
            for q in compiled.queries {
                if let Some(prev) = origin.insert(q.name.clone(), name) {
                    return Err(format!(
                        "stored query `{}` is declared in both {prev} and {name}",
                        q.name
                    ));
                }
                queries.insert(q.name.clone(), q);
            }
        }
        Ok(StoredQueries {
            queries,
            sources,
            schema_id,
        })
    }

    /// The same query files checked against another schema: what a schema
    /// apply would leave the graph serving. Errors as [`Self::check`]'s.
    pub fn recheck(
        &self,
        catalog: &Catalog,
        schema_id: Option<String>,
    ) -> Result<StoredQueries, String> {
        Self::check(self.sources.clone(), catalog, schema_id)
    }
}

/// One registry entry.
#[derive(Clone)]
pub struct GraphEntry {
    pub spec: Arc<GraphSpec>,
    pub state: GraphState,
    pub addr: Option<Addr<GraphActor>>,
    pub queries: Arc<StoredQueries>,
    /// Crashes since the last clean open.
    pub crashes: u32,
    pub generation: u64,
}

/// The registry: graph id → entry.
#[derive(Default)]
pub struct Registry {
    pub graphs: DashMap<String, GraphEntry>,
}

impl Registry {
    /// A ready graph's entry; `None` for an unknown, quarantined or
    /// restarting graph (all answered 404).
    pub fn ready(&self, id: &str) -> Option<GraphEntry> {
        self.graphs
            .get(id)
            .filter(|e| e.state == GraphState::Ready && e.addr.is_some())
            .map(|e| e.clone())
    }

    /// Serves `queries` for graph `id` from now on, if the entry is still
    /// the incarnation `generation` (a restart in between loaded its own).
    /// Used when the graph's schema changed under its stored queries.
    pub fn replace_queries(&self, id: &str, generation: u64, queries: Arc<StoredQueries>) {
        if let Some(mut e) = self.graphs.get_mut(id)
            && e.generation == generation
        {
            e.queries = queries;
        }
    }

    /// How many graphs are ready.
    pub fn ready_count(&self) -> usize {
        self.graphs
            .iter()
            .filter(|e| e.state == GraphState::Ready)
            .count()
    }

    /// Every entry, sorted by id.
    pub fn all(&self) -> Vec<GraphEntry> {
        let mut v: Vec<GraphEntry> = self.graphs.iter().map(|e| e.clone()).collect();
        v.sort_by(|a, b| a.spec.id.cmp(&b.spec.id));
        v
    }
}

/// A graph opened and healed with its checked stored queries, or why not.
type Opened = Result<(Arc<Graph>, StoredQueries), String>;

/// Opens, heals and loads the stored queries of one graph.
async fn open_graph(spec: Arc<GraphSpec>) -> Opened {
    // No engine gate: every route decides policy once, first, before any
    // engine work (src/http/mod.rs); the engine trusts that decision. The
    // CLI, which has no routes, installs its gate on the graph instead.
    let mut graph = Graph::open(&spec.uri)
        .await
        .map_err(|e| e.to_string())?
        .with_query_limits(spec.limits);
    if let Some(c) = &spec.embedding {
        graph = graph.with_embedding(c.clone());
    }
    let healed = graph
        .recover("omnigraph-server")
        .await
        .map_err(|e| e.to_string())?;
    for (sidecar, action) in healed {
        tracing::info!(graph = %spec.id, %sidecar, ?action, "healed at open");
    }
    let queries = StoredQueries::load(spec.queries_dir.as_ref(), &spec.query_sources, &graph)?;
    Ok((Arc::new(graph), queries))
}

/// Owns the registry.
pub struct SupervisorActor {
    registry: Arc<Registry>,
    rt: super::Runtimes,
    metrics: Arc<Metrics>,
}

impl SupervisorActor {
    /// Opens every graph (bounded parallelism), starts the supervisor and a
    /// GraphActor per graph that opened. Returns the supervisor and the
    /// graphs that failed with why; they are in the registry as
    /// quarantined. Must run inside an actix system.
    pub async fn boot(
        specs: Vec<GraphSpec>,
        rt: super::Runtimes,
        metrics: Arc<Metrics>,
    ) -> (Addr<SupervisorActor>, Arc<Registry>, Vec<(String, String)>) {
        let registry = Arc::new(Registry::default());
        let opened: Vec<(Arc<GraphSpec>, Opened)> = {
            let rt2 = rt.main.clone();
            let work = futures::stream::iter(specs.into_iter().map(Arc::new))
                .map(move |spec| {
                    let rt = rt2.clone();
                    async move {
                        let s = spec.clone();
                        let r = match rt.spawn(open_graph(s)).await {
                            Ok(r) => r,
                            Err(e) => Err(format!("opening panicked: {e}")),
                        };
                        (spec, r)
                    }
                })
                .buffer_unordered(BOOT_PARALLELISM)
                .collect::<Vec<_>>();
            work.await
        };
        let sup = SupervisorActor {
            registry: registry.clone(),
            rt: rt.clone(),
            metrics: metrics.clone(),
        }
        .start();
        let mut failed = Vec::new();
        for (spec, r) in opened {
            let entry = match r {
                Ok((graph, queries)) => {
                    let addr = GraphActor::new(
                        spec.id.to_string(),
                        1,
                        graph,
                        rt.clone(),
                        metrics.clone(),
                        Some(sup.clone().recipient()),
                    )
                    .start();
                    GraphEntry {
                        spec: spec.clone(),
                        state: GraphState::Ready,
                        addr: Some(addr),
                        queries: Arc::new(queries),
                        crashes: 0,
                        generation: 1,
                    }
                }
                Err(reason) => {
                    tracing::error!(graph = %spec.id, %reason, "graph quarantined at boot");
                    failed.push((spec.id.to_string(), reason.clone()));
                    GraphEntry {
                        spec: spec.clone(),
                        state: GraphState::Quarantined { reason },
                        addr: None,
                        queries: Arc::new(StoredQueries::default()),
                        crashes: 0,
                        generation: 0,
                    }
                }
            };
            registry.graphs.insert(spec.id.to_string(), entry);
        }
        (sup, registry, failed)
    }

    fn reopen(
        &mut self,
        id: String,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<(), String>> {
        let Some(mut entry) = self.registry.graphs.get(&id).map(|e| e.clone()) else {
            return Box::pin(actix::fut::ready(Err(format!(
                "no graph `{id}` is configured"
            ))));
        };
        entry.state = GraphState::Restarting;
        entry.addr = None;
        self.registry.graphs.insert(id.clone(), entry.clone());
        let spec = entry.spec.clone();
        let task = self.rt.main.spawn(open_graph(spec.clone()));
        let me = ctx.address();
        Box::pin(
            async move {
                match task.await {
                    Ok(r) => r,
                    Err(e) => Err(format!("opening panicked: {e}")),
                }
            }
            .into_actor(self)
            .map(move |r, act, _| {
                let Some(mut entry) = act.registry.graphs.get(&id).map(|e| e.clone()) else {
                    return Err(format!("graph `{id}` was removed"));
                };
                match r {
                    Ok((graph, queries)) => {
                        let generation = entry.generation + 1;
                        let addr = GraphActor::new(
                            id.clone(),
                            generation,
                            graph,
                            act.rt.clone(),
                            act.metrics.clone(),
                            Some(me.recipient()),
                        )
                        .start();
                        entry.state = GraphState::Ready;
                        entry.addr = Some(addr);
                        entry.queries = Arc::new(queries);
                        entry.generation = generation;
                        act.registry.graphs.insert(id.clone(), entry);
                        tracing::info!(graph = %id, generation, "graph serving again");
                        Ok(())
                    }
                    Err(reason) => {
                        tracing::error!(graph = %id, %reason, "reopen failed; graph quarantined");
                        entry.state = GraphState::Quarantined {
                            reason: reason.clone(),
                        };
                        entry.addr = None;
                        act.registry.graphs.insert(id.clone(), entry);
                        Err(reason)
                    }
                }
            }),
        )
    }
}

impl Actor for SupervisorActor {
    type Context = Context<Self>;
}

/// Ops: stop serving a graph (its routes answer 404) until restarted.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Quarantine {
    pub id: String,
    pub reason: String,
}

impl Handler<Quarantine> for SupervisorActor {
    type Result = Result<(), String>;

    fn handle(&mut self, msg: Quarantine, _: &mut Context<Self>) -> Self::Result {
        let mut e = self
            .registry
            .graphs
            .get_mut(&msg.id)
            .ok_or_else(|| format!("no graph `{}` is configured", msg.id))?;
        tracing::warn!(graph = %msg.id, reason = %msg.reason, "graph quarantined by operator");
        e.state = GraphState::Quarantined { reason: msg.reason };
        // Dropping the address stops the actor once in-flight work ends.
        e.addr = None;
        Ok(())
    }
}

/// Ops: reopen, heal and serve a graph again (also clears its crash count).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), String>")]
pub struct Restart {
    pub id: String,
}

impl Handler<Restart> for SupervisorActor {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, msg: Restart, ctx: &mut Context<Self>) -> Self::Result {
        if let Some(mut e) = self.registry.graphs.get_mut(&msg.id) {
            e.crashes = 0;
        }
        self.reopen(msg.id, ctx)
    }
}

/// A GraphActor's task panicked.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Crashed {
    pub id: String,
    pub generation: u64,
    pub reason: String,
}

impl Handler<Crashed> for SupervisorActor {
    type Result = ();

    fn handle(&mut self, msg: Crashed, ctx: &mut Context<Self>) {
        let crashes = {
            let Some(mut e) = self.registry.graphs.get_mut(&msg.id) else {
                return;
            };
            // A late report from an older incarnation changes nothing.
            if e.generation != msg.generation || e.state != GraphState::Ready {
                return;
            }
            e.crashes += 1;
            e.addr = None;
            if e.crashes >= MAX_CRASHES {
                tracing::error!(graph = %msg.id, crashes = e.crashes, reason = %msg.reason, "graph keeps crashing; quarantined");
                e.state = GraphState::Quarantined {
                    reason: format!("crashed {} times; last: {}", e.crashes, msg.reason),
                };
                return;
            }
            e.state = GraphState::Restarting;
            e.crashes
        };
        let backoff = Duration::from_millis(200 << (crashes - 1).min(6));
        tracing::warn!(graph = %msg.id, crashes, ?backoff, reason = %msg.reason, "graph actor crashed; restarting");
        let id = msg.id;
        ctx.run_later(backoff, move |act, ctx| {
            let f = act.reopen(id, ctx).map(|_, _, _| ());
            ctx.spawn(f);
        });
    }
}
