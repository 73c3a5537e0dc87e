//! Executing a read query's IR against a pinned view of the graph.
//!
//! Each (table, Lance branch, version) has one [`TableState`], shared through
//! the graph's cache and filled lazily: the opened dataset, the fully
//! decoded rows (only when a query scans the whole table), and for edge
//! tables a compact CSR/CSC adjacency ([`Csr`]) built on the first
//! traversal. A new table version is a new cache entry, so cached state is
//! never stale and never rebuilt per query; the cache is bounded by entries
//! and bytes, least recently used first ([`super::table_cache`]).
//!
//! Access paths: a binding whose property match names `id` or a BTREE-indexed
//! property is answered by an `IN (…)` predicate that Lance serves from the
//! BTREE index; traversal targets are fetched by `id` the same way; edge
//! bindings read the edge rows through the `src`/`dst` BTREE indexes;
//! `search`/`fuzzy`/`match_text`/`bm25` on a property with a full-text index
//! run through Lance's inverted index. Only a binding with no usable index
//! decodes the whole table.
//!
//! Rows flowing through the pipeline are vectors of bound entities, one slot
//! per variable. Ordering is total: user keys, then the ids of the bound
//! variables in bind order.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use lance::Dataset;
use serde::Serialize;
use serde_json::{Map, Value as Json};
use tokio::sync::OnceCell;

use super::budget::{self, Charge, LowerLimits, QueryLimits};
use super::load::Row;
use super::mutate::{bind_params, holds};
use super::values::{Cell, format_datetime, to_json};
use super::{EngineError, Graph, ReadAt, TableKey, View, edge_key, node_key, rows_of};
use crate::query::ast::CmpOp;
use crate::query::ir::*;
use crate::schema::{IndexKind, Property};
use crate::storage::table::{self, TableAt, TextMode};

mod cache;
mod eval;
mod pipeline;
mod project;
mod text;

pub(crate) use cache::sql_string;
use cache::*;
pub use cache::{Csr, Decoded, TableCache, TableState};
use eval::*;
use pipeline::*;
use project::*;
use text::*;

/// A query's result: column names and rows as JSON objects.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Json>>,
    /// The commit the rows were read from.
    pub graph_commit_id: String,
}

/// A bound entity: a node or edge row of table `table` (an index into the
/// query's tables).
#[derive(Debug, Clone)]
struct Bound {
    table: usize,
    row: Arc<Row>,
}

impl PartialEq for Bound {
    fn eq(&self, o: &Self) -> bool {
        self.table == o.table && self.row.id == o.row.id
    }
}

/// Full-text results computed before the pipeline runs, keyed by (table,
/// property, mode, query text): matching ids with their BM25 scores.
type FtsKey = (usize, String, String, String);

/// Execution context: the tables a query touches, indexed by slot.
struct Ctx<'a> {
    tables: Vec<Arc<TableState>>,
    table_ix: HashMap<TableKey, usize>,
    props: Vec<Vec<Property>>,
    slots: HashMap<String, usize>,
    /// Variable → table index, for node variables.
    var_table: HashMap<String, usize>,
    params: &'a HashMap<String, Cell>,
    fts: HashMap<FtsKey, HashMap<String, f32>>,
    /// Embedded query texts of `nearest(…, "text")`.
    query_vectors: QueryVectors,
    /// Variable → the ids an indexed `nearest` chose for it: its scan
    /// reads only those rows ([`prepare_vector_search`]).
    var_ann: HashMap<String, HashSet<String>>,
    /// Variable → full-text filters that must hold for it, from the same
    /// pipeline level as its scan: the scan reads only their hits.
    var_fts: HashMap<String, Vec<FtsKey>>,
    now: i64,
    /// This query's limits.
    limits: QueryLimits,
    /// When the query's wall-time budget ends.
    deadline: std::time::Instant,
    /// Set by the caller to stop the query (its client went away).
    cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Row checks since the clock was last read.
    ticks: std::sync::atomic::AtomicU32,
    /// Bytes one intermediate binding is charged ([`budget::binding_bytes`]).
    binding_bytes: u64,
    /// Rows the running operator was given (charged with what it builds).
    op_input: std::sync::atomic::AtomicU64,
    /// What the query holds of its byte limit and the process pool.
    mem: Charge,
    /// Adjacency entries walked by the query's traversals so far.
    expansions: std::sync::atomic::AtomicU64,
}

impl Ctx<'_> {
    /// [`EngineError::Budget`] for the intermediate-row limit.
    fn over_budget(&self) -> EngineError {
        EngineError::Budget {
            limit: "intermediate rows (bindings)".into(),
            value: self.limits.max_rows as u64,
            raise: "OMNIGRAPH_QUERY_MAX_ROWS or the graph's --query-limits max_rows (or Graph::with_query_max_rows)".into(),
        }
    }

    /// Refuses once `n` rows exceed the row budget, or once `n` bindings
    /// (beside the operator's input) exceed the byte budget or the
    /// process pool; every 256th call also refuses when the wall-time
    /// budget is spent or the query was cancelled ([`Ctx::check_time`]).
    fn check_rows(&self, n: usize) -> Result<(), EngineError> {
        if n > self.limits.max_rows {
            return Err(self.over_budget());
        }
        let t = self
            .ticks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if t % 256 == 0 {
            self.check_time()?;
            let input = self.op_input.load(std::sync::atomic::Ordering::Relaxed);
            self.mem
                .ensure((input.saturating_add(n as u64)).saturating_mul(self.binding_bytes))?;
        }
        Ok(())
    }

    /// Charges `bytes` beside the operator's input bindings (ids a
    /// traversal reached, output rows).
    fn check_bytes(&self, bytes: u64) -> Result<(), EngineError> {
        let input = self.op_input.load(std::sync::atomic::Ordering::Relaxed);
        self.mem.ensure(
            input
                .saturating_mul(self.binding_bytes)
                .saturating_add(bytes),
        )
    }

    /// Counts `n` adjacency entries walked; refuses past the expansion
    /// budget, and checks the clock and the cancel flag on the way.
    fn check_expansions(&self, n: u64) -> Result<(), EngineError> {
        let before = self
            .expansions
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        if before + n > self.limits.max_expansions {
            return Err(EngineError::Budget {
                limit: "traversal expansions (adjacency entries walked)".into(),
                value: self.limits.max_expansions,
                raise:
                    "OMNIGRAPH_QUERY_MAX_EXPANSIONS or the graph's --query-limits max_expansions"
                        .into(),
            });
        }
        if before / 4096 != (before + n) / 4096 {
            self.check_time()?;
        }
        Ok(())
    }

    /// An operator starts with `n` input rows: it is charged for them
    /// from now on, and what earlier operators held beyond that is given
    /// back.
    fn begin_op(&self, n: usize) -> Result<(), EngineError> {
        self.op_input
            .store(n as u64, std::sync::atomic::Ordering::Relaxed);
        let bytes = (n as u64).saturating_mul(self.binding_bytes);
        self.mem.shrink_to(bytes);
        self.mem.ensure(bytes)
    }

    /// Refuses when the wall-time budget is spent
    /// ([`EngineError::Budget`]) or the caller cancelled the query
    /// ([`EngineError::Cancelled`]).
    fn check_time(&self) -> Result<(), EngineError> {
        if self
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
        {
            return Err(EngineError::Cancelled {
                reason: "its caller went away".into(),
            });
        }
        if std::time::Instant::now() >= self.deadline {
            return Err(self.out_of_time());
        }
        Ok(())
    }

    fn out_of_time(&self) -> EngineError {
        out_of_time(self.limits.max_ms)
    }
}

/// [`EngineError::Budget`] for the wall-time limit of `max_ms` ms.
fn out_of_time(max_ms: u64) -> EngineError {
    EngineError::Budget {
        limit: "wall time (ms)".into(),
        value: max_ms,
        raise: "OMNIGRAPH_QUERY_MAX_MS or the graph's --query-limits max_ms (or Graph::with_query_max_ms)".into(),
    }
}

/// How one read query runs beyond its text and parameters: a flag the
/// caller sets to stop it, and limits lower than the handle's for this
/// query only.
#[derive(Clone, Debug, Default)]
pub struct QueryControl {
    /// Set it to stop the query at its next check
    /// ([`EngineError::Cancelled`]); the server sets it when the client
    /// disconnects.
    pub cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Limits for this query only; each lowers the handle's
    /// ([`QueryLimits::lowered`]).
    pub lower: LowerLimits,
}

type Binding = Vec<Option<Bound>>;

impl Graph {
    fn table_state(&self, view: &View, key: &TableKey) -> Arc<TableState> {
        let r = view.tables.get(key);
        let mut btree = vec!["id".to_string()];
        let mut fulltext = Vec::new();
        let mut vector = Vec::new();
        let edge = key.is_edge();
        if edge {
            btree.extend(["src".to_string(), "dst".to_string()]);
        }
        for (col, kind) in super::index_decls_of(&view.catalog, key) {
            match kind {
                IndexKind::Btree if !btree.contains(&col) => btree.push(col),
                IndexKind::FullText => fulltext.push(col),
                IndexKind::Vector => vector.push(col),
                _ => {}
            }
        }
        let fresh = || TableState {
            at: r.map(|r| self.at(key, r)),
            props: super::props_of(&view.catalog, key),
            edge,
            btree: btree.clone(),
            fulltext: fulltext.clone(),
            vector: vector.clone(),
            ds: OnceCell::new(),
            full: OnceCell::new(),
            csr: OnceCell::new(),
            bytes: Default::default(),
        };
        let Some(r) = r else {
            return Arc::new(fresh());
        };
        let ck = (key.to_string(), r.lance_branch.clone(), r.version);
        self.cache.get_or_insert_with(ck, fresh)
    }

    /// This handle with its own read cache bounded to `max_entries` table
    /// versions and `max_bytes` of decoded rows and adjacency (defaults:
    /// [`super::table_cache::MAX_ENTRIES`], [`super::table_cache::MAX_BYTES`]).
    pub fn with_read_cache(mut self, max_entries: usize, max_bytes: u64) -> Graph {
        self.cache = TableCache::new(max_entries, max_bytes);
        self
    }

    /// What the read cache holds now: (table versions, estimated bytes).
    pub fn read_cache_usage(&self) -> (usize, u64) {
        self.cache.usage()
    }

    /// Runs a checked read query at `at` under this handle's budgets
    /// ([`Graph::with_query_limits`]).
    pub async fn query(
        &self,
        q: &CheckedQuery,
        params: &Json,
        at: &ReadAt,
    ) -> Result<QueryResult, EngineError> {
        self.query_with(q, params, at, QueryControl::default())
            .await
    }

    /// [`Graph::query`] with a cancel flag and lower limits for this query
    /// ([`QueryControl`]). It stops with [`EngineError::Cancelled`] soon
    /// after the flag is set, and with [`EngineError::Budget`] (naming the
    /// limit, its value and how to raise it) past a limit; the wall-time
    /// budget bounds the whole query, waits for storage included. Past the
    /// process's query memory pool it stops with
    /// [`EngineError::Overloaded`]. Whatever it held is freed either way.
    pub async fn query_with(
        &self,
        q: &CheckedQuery,
        params: &Json,
        at: &ReadAt,
        control: QueryControl,
    ) -> Result<QueryResult, EngineError> {
        let limits = self.query_limits.lowered(&control.lower);
        let budget = std::time::Duration::from_millis(limits.max_ms);
        match tokio::time::timeout(
            budget,
            self.query_inner(q, params, at, limits, control.cancel),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(out_of_time(limits.max_ms)),
        }
    }

    async fn query_inner(
        &self,
        q: &CheckedQuery,
        params: &Json,
        at: &ReadAt,
        limits: QueryLimits,
        cancel: Option<Arc<std::sync::atomic::AtomicBool>>,
    ) -> Result<QueryResult, EngineError> {
        // Tests make a read panic here (`FAILPOINTS=read.run=panic`) to
        // check that the server answers 500 and keeps serving the graph.
        fail::fail_point!("read.run");
        let started = std::time::Instant::now();
        let QueryKind::Read(plan) = &q.body else {
            return Err(EngineError::Param {
                name: q.name.clone(),
                reason: "is a mutation; run it with `omnigraph mutate`".into(),
            });
        };
        let params = bind_params(q, params)?;
        limit_param_is_positive(plan, &params)?;
        let view = self.view(at).await?;
        let mut ctx = Ctx {
            tables: Vec::new(),
            table_ix: HashMap::new(),
            props: Vec::new(),
            slots: HashMap::new(),
            var_table: HashMap::new(),
            params: &params,
            fts: HashMap::new(),
            query_vectors: HashMap::new(),
            var_ann: HashMap::new(),
            var_fts: HashMap::new(),
            now: super::now_ms(),
            limits,
            deadline: started + std::time::Duration::from_millis(limits.max_ms),
            cancel,
            ticks: Default::default(),
            binding_bytes: 0,
            op_input: Default::default(),
            mem: Charge::new(limits.max_bytes),
            expansions: Default::default(),
        };
        ctx.check_time()?;
        for r in &q.reads {
            let key = if r.kind == "edge" {
                edge_key(&r.type_name)
            } else {
                node_key(&r.type_name)
            };
            ctx.table_ix.insert(key.clone(), ctx.tables.len());
            ctx.tables.push(self.table_state(&view, &key));
            ctx.props.push(super::props_of(&view.catalog, &key));
        }
        for (var, ty) in &plan.variables {
            if let Some(&t) = ctx.table_ix.get(&node_key(ty)) {
                ctx.var_table.insert(var.clone(), t);
            }
        }
        collect_slots(&plan.pipeline, &mut ctx.slots);
        ctx.binding_bytes = budget::binding_bytes(ctx.slots.len());
        prepare_text_search(&mut ctx, plan).await?;
        prepare_query_vectors(self, &mut ctx, plan).await?;
        prepare_vector_search(&mut ctx, plan).await?;
        let n = ctx.slots.len();
        let rows = run_ops(&ctx, &plan.pipeline, vec![vec![None; n]], true).await?;
        ctx.check_time()?;
        // The output: one JSON object per row, a cell per projection.
        let cells = plan.projections.len().max(1) as u64;
        ctx.check_bytes((rows.len() as u64).saturating_mul(cells * budget::OUTPUT_CELL_BYTES))?;
        let result = project(&ctx, plan, rows);
        Ok(QueryResult {
            columns: plan.projections.iter().map(|p| p.name.clone()).collect(),
            rows: result,
            graph_commit_id: view.commit.to_string(),
        })
    }
}
