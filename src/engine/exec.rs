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
use super::{EngineError, Graph, ReadAt, View, edge_key, node_key, rows_of};
use crate::query::ast::CmpOp;
use crate::query::ir::*;
use crate::schema::{IndexKind, Property};
use crate::storage::table::{self, TableAt, TextMode};

/// Decoded rows of one table version, with an id index.
#[derive(Debug, Default)]
pub struct Decoded {
    pub rows: Vec<Arc<Row>>,
    pub by_id: HashMap<String, Arc<Row>>,
}

/// Compact adjacency of one edge table version: node ids interned to dense
/// `u32`s, out-neighbours in CSR form (`out_off[n]..out_off[n+1]` indexes
/// `out_to`) and in-neighbours in CSC form, one entry per stored edge.
#[derive(Debug, Default)]
pub struct Csr {
    pub ids: Vec<String>,
    pub dense: HashMap<String, u32>,
    pub out_off: Vec<u32>,
    pub out_to: Vec<u32>,
    pub in_off: Vec<u32>,
    pub in_to: Vec<u32>,
}

impl Csr {
    fn build(pairs: &[(u32, u32)], ids: Vec<String>, dense: HashMap<String, u32>) -> Csr {
        let n = ids.len();
        let side = |key: fn(&(u32, u32)) -> (u32, u32)| {
            let mut off = vec![0u32; n + 1];
            for p in pairs {
                off[key(p).0 as usize + 1] += 1;
            }
            for i in 0..n {
                off[i + 1] += off[i];
            }
            let mut fill = off.clone();
            let mut to = vec![0u32; pairs.len()];
            for p in pairs {
                let (a, b) = key(p);
                to[fill[a as usize] as usize] = b;
                fill[a as usize] += 1;
            }
            (off, to)
        };
        let (out_off, out_to) = side(|&(s, d)| (s, d));
        let (in_off, in_to) = side(|&(s, d)| (d, s));
        Csr {
            ids,
            dense,
            out_off,
            out_to,
            in_off,
            in_to,
        }
    }

    /// Neighbours of dense node `n`: forward (src→dst), backward, or both.
    fn neighbours(&self, n: u32, fwd: bool, bwd: bool, out: &mut Vec<u32>) {
        let n = n as usize;
        if fwd {
            out.extend_from_slice(
                &self.out_to[self.out_off[n] as usize..self.out_off[n + 1] as usize],
            );
        }
        if bwd {
            out.extend_from_slice(
                &self.in_to[self.in_off[n] as usize..self.in_off[n + 1] as usize],
            );
        }
    }
}

/// One table at a pinned version, filled lazily (see the module docs).
#[derive(Debug)]
pub struct TableState {
    /// `None`: the table does not exist in the view (no rows).
    at: Option<TableAt>,
    props: Vec<Property>,
    edge: bool,
    /// Columns carrying a BTREE index (`id`, `src`, `dst`, declared ones).
    btree: Vec<String>,
    /// Columns carrying a full-text index.
    fulltext: Vec<String>,
    ds: OnceCell<Arc<Dataset>>,
    full: OnceCell<Arc<Decoded>>,
    csr: OnceCell<Arc<Csr>>,
    /// An estimate of what `full` and `csr` hold, for the cache's bound.
    bytes: std::sync::atomic::AtomicU64,
}

impl super::table_cache::Weighed for TableState {
    fn bytes(&self) -> u64 {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Table states keyed by (table, Lance branch, version), least recently
/// used dropped first past [`super::table_cache::MAX_ENTRIES`] entries or
/// [`super::table_cache::MAX_BYTES`] of decoded rows and adjacency.
pub type TableCache = super::table_cache::Bounded<(String, Option<String>, u64), TableState>;

/// More ids than this are resolved by decoding the whole table instead of an
/// indexed `IN (…)` lookup.
const MAX_INDEXED_IDS: usize = 20_000;
/// Values per `IN (…)` predicate.
const IN_CHUNK: usize = 1_000;

impl TableState {
    async fn dataset(&self) -> Result<Option<Arc<Dataset>>, EngineError> {
        let Some(at) = &self.at else {
            return Ok(None);
        };
        let ds = self
            .ds
            .get_or_try_init(|| async { Ok::<_, EngineError>(Arc::new(table::open(at).await?)) })
            .await?;
        Ok(Some(ds.clone()))
    }

    /// Every row, decoded once.
    async fn full(&self) -> Result<Arc<Decoded>, EngineError> {
        let d = self
            .full
            .get_or_try_init(|| async {
                let mut d = Decoded::default();
                if let Some(ds) = self.dataset().await? {
                    for b in table::scan_all(&ds, None).await? {
                        // Decoded rows (strings, cells, the id map) take
                        // about three times their Arrow form.
                        self.bytes.fetch_add(
                            3 * b.get_array_memory_size() as u64,
                            std::sync::atomic::Ordering::Relaxed,
                        );
                        for r in rows_of(&b, &self.props, self.edge) {
                            let r = Arc::new(r);
                            d.by_id.insert(r.id.clone(), r.clone());
                            d.rows.push(r);
                        }
                    }
                }
                Ok::<_, EngineError>(Arc::new(d))
            })
            .await?;
        Ok(d.clone())
    }

    /// Rows whose `column` is one of `values` (SQL literals), through the
    /// column's BTREE index.
    async fn rows_where_in(
        &self,
        column: &str,
        values: &[String],
    ) -> Result<Vec<Arc<Row>>, EngineError> {
        let mut out = Vec::new();
        let Some(ds) = self.dataset().await? else {
            return Ok(out);
        };
        for chunk in values.chunks(IN_CHUNK) {
            let filter = format!("{column} IN ({})", chunk.join(", "));
            for b in table::scan_where(&ds, &filter).await? {
                out.extend(
                    rows_of(&b, &self.props, self.edge)
                        .into_iter()
                        .map(Arc::new),
                );
            }
        }
        Ok(out)
    }

    /// Rows by id: from the decoded table when it is already in memory or
    /// the id set is large, else through the `id` BTREE index.
    async fn rows_by_id(
        &self,
        ids: &HashSet<String>,
    ) -> Result<HashMap<String, Arc<Row>>, EngineError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        if self.full.initialized() || ids.len() > MAX_INDEXED_IDS {
            let full = self.full().await?;
            return Ok(ids
                .iter()
                .filter_map(|i| full.by_id.get(i).map(|r| (i.clone(), r.clone())))
                .collect());
        }
        let lits: Vec<String> = ids.iter().map(|i| sql_string(i)).collect();
        Ok(self
            .rows_where_in("id", &lits)
            .await?
            .into_iter()
            .map(|r| (r.id.clone(), r))
            .collect())
    }

    /// The adjacency of an edge table, built once from its `src`/`dst`.
    async fn csr(&self) -> Result<Arc<Csr>, EngineError> {
        let c = self
            .csr
            .get_or_try_init(|| async {
                use arrow_array::{Array, StringArray};
                let mut ids: Vec<String> = Vec::new();
                let mut dense: HashMap<String, u32> = HashMap::new();
                let mut pairs: Vec<(u32, u32)> = Vec::new();
                let mut intern = |s: &str| -> u32 {
                    if let Some(&d) = dense.get(s) {
                        return d;
                    }
                    let d = ids.len() as u32;
                    ids.push(s.to_string());
                    dense.insert(s.to_string(), d);
                    d
                };
                if let Some(ds) = self.dataset().await? {
                    for b in table::scan_all(&ds, Some(&["src", "dst"])).await? {
                        let col = |n: &str| {
                            b.column_by_name(n)
                                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                                .cloned()
                        };
                        let (Some(s), Some(d)) = (col("src"), col("dst")) else {
                            continue;
                        };
                        for i in 0..b.num_rows() {
                            if s.is_valid(i) && d.is_valid(i) {
                                let a = intern(s.value(i));
                                let z = intern(d.value(i));
                                pairs.push((a, z));
                            }
                        }
                    }
                }
                // Four u32 arrays, the ids and the map from id to index.
                let id_bytes: usize = ids.iter().map(|i| 2 * i.len() + 80).sum();
                let est = 16 * (pairs.len() + ids.len()) + id_bytes;
                self.bytes
                    .fetch_add(est as u64, std::sync::atomic::Ordering::Relaxed);
                Ok::<_, EngineError>(Arc::new(Csr::build(&pairs, ids, dense)))
            })
            .await?;
        Ok(c.clone())
    }
}

/// A SQL string literal.
/// `s` as a SQL string literal (quotes doubled).
pub(crate) fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A cell as a SQL literal for an indexed `IN (…)` lookup; `None` for
/// values that path does not take (they fall back to a scan).
fn sql_literal(c: &Cell) -> Option<String> {
    match c {
        Cell::Str(s) => Some(sql_string(s)),
        Cell::I32(x) => Some(x.to_string()),
        Cell::I64(x) => Some(x.to_string()),
        Cell::U32(x) => Some(x.to_string()),
        Cell::U64(x) => Some(x.to_string()),
        Cell::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

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
    table_ix: HashMap<String, usize>,
    props: Vec<Vec<Property>>,
    slots: HashMap<String, usize>,
    /// Variable → table index, for node variables.
    var_table: HashMap<String, usize>,
    params: &'a HashMap<String, Cell>,
    fts: HashMap<FtsKey, HashMap<String, f32>>,
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
    fn table_state(&self, view: &View, key: &str) -> Arc<TableState> {
        let r = view.tables.get(key);
        let mut btree = vec!["id".to_string()];
        let mut fulltext = Vec::new();
        let edge = key.starts_with("edge:");
        if edge {
            btree.extend(["src".to_string(), "dst".to_string()]);
        }
        for (col, kind) in super::index_decls_of(&view.catalog, key) {
            match kind {
                IndexKind::Btree if !btree.contains(&col) => btree.push(col),
                IndexKind::FullText => fulltext.push(col),
                _ => {}
            }
        }
        let fresh = || TableState {
            at: r.map(|r| self.at(key, r)),
            props: super::props_of(&view.catalog, key),
            edge,
            btree: btree.clone(),
            fulltext: fulltext.clone(),
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
        needs_no_embedder(q, plan)?;
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
            graph_commit_id: view.commit,
        })
    }
}

/// The mode and query text of a full-text expression whose query does not
/// depend on a binding; `None` when it must be evaluated row by row.
fn text_query(ctx: &Ctx<'_>, e: &Expr) -> Option<(usize, String, TextMode, String)> {
    let constant = |q: &Expr| match q {
        Expr::Literal { .. } | Expr::Param { .. } => Some(text_cell(&eval(ctx, q, &Vec::new()))),
        _ => None,
    };
    let (var, property, mode, q) = match e {
        Expr::TextMatch {
            func,
            var,
            property,
            query,
            max_edits,
        } => {
            let mode = match func {
                TextSearch::Search => TextMode::Any,
                TextSearch::MatchText => TextMode::All,
                TextSearch::Fuzzy => {
                    TextMode::Fuzzy(fuzzy_edits(ctx, max_edits.as_deref(), &Vec::new()))
                }
            };
            (var, property, mode, constant(query)?)
        }
        Expr::Bm25 {
            var,
            property,
            query,
        } => (var, property, TextMode::Any, constant(query)?),
        _ => return None,
    };
    let t = *ctx.var_table.get(var)?;
    if !ctx.tables[t].fulltext.contains(property) || tokens(&q).is_empty() {
        return None;
    }
    Some((t, property.clone(), mode, q))
}

fn fts_key(t: usize, property: &str, mode: TextMode, q: &str) -> FtsKey {
    (t, property.to_string(), format!("{mode:?}"), q.to_string())
}

/// Runs every constant full-text predicate and score of the plan through
/// the inverted index once, before the pipeline.
async fn prepare_text_search(ctx: &mut Ctx<'_>, plan: &ReadPlan) -> Result<(), EngineError> {
    fn walk<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
        match e {
            Expr::TextMatch { .. } | Expr::Bm25 { .. } => out.push(e),
            Expr::Rrf { a, b, .. } => {
                walk(a, out);
                walk(b, out);
            }
            _ => {}
        }
    }
    fn ops<'e>(o: &'e [Op], out: &mut Vec<&'e Expr>) {
        for op in o {
            match op {
                Op::Filter { left, right, .. } => {
                    walk(left, out);
                    if let Some(r) = right {
                        walk(r, out);
                    }
                }
                Op::AntiJoin { ops: inner } => ops(inner, out),
                _ => {}
            }
        }
    }
    // Conjunctive full-text filters on a variable scanned at the same level.
    fn required<'e>(o: &'e [Op], out: &mut Vec<(&'e str, &'e Expr)>) {
        let scanned: HashSet<&str> = o
            .iter()
            .filter_map(|op| match op {
                Op::Scan { var, .. } => Some(var.as_str()),
                _ => None,
            })
            .collect();
        for op in o {
            match op {
                Op::Filter {
                    left: e @ Expr::TextMatch { var, .. },
                    op: None,
                    ..
                } if scanned.contains(var.as_str()) => out.push((var, e)),
                Op::AntiJoin { ops: inner } => required(inner, out),
                _ => {}
            }
        }
    }
    let mut req = Vec::new();
    required(&plan.pipeline, &mut req);
    for (var, e) in req {
        if let Some((t, property, mode, q)) = text_query(ctx, e) {
            ctx.var_fts
                .entry(var.to_string())
                .or_default()
                .push(fts_key(t, &property, mode, &q));
        }
    }
    let mut exprs = Vec::new();
    ops(&plan.pipeline, &mut exprs);
    for p in &plan.projections {
        walk(&p.expr, &mut exprs);
    }
    for o in &plan.order {
        walk(&o.expr, &mut exprs);
    }
    for e in exprs {
        let Some((t, property, mode, q)) = text_query(ctx, e) else {
            continue;
        };
        let key = fts_key(t, &property, mode, &q);
        if ctx.fts.contains_key(&key) {
            continue;
        }
        let hits = match ctx.tables[t].dataset().await? {
            Some(ds) => table::full_text(&ds, &property, &q, mode).await?,
            None => Vec::new(),
        };
        ctx.fts.insert(key, hits.into_iter().collect());
    }
    Ok(())
}

/// A `nearest` whose query is text must embed it, and no embedding provider
/// exists yet: refuse with a clear error instead of returning no distances.
fn needs_no_embedder(q: &CheckedQuery, plan: &ReadPlan) -> Result<(), EngineError> {
    fn walk(e: &Expr, q: &CheckedQuery) -> Option<String> {
        match e {
            Expr::Nearest {
                property, query, ..
            } => {
                let text = match query.as_ref() {
                    Expr::Literal {
                        value: LiteralValue::String(_),
                    } => true,
                    Expr::Param { name } => q
                        .params
                        .iter()
                        .any(|p| &p.name == name && p.ty.is_textual()),
                    _ => false,
                };
                text.then(|| property.clone())
            }
            Expr::Rrf { a, b, .. } => walk(a, q).or_else(|| walk(b, q)),
            _ => None,
        }
    }
    let exprs = plan
        .projections
        .iter()
        .map(|p| &p.expr)
        .chain(plan.order.iter().map(|o| &o.expr));
    for e in exprs {
        if let Some(property) = walk(e, q) {
            return Err(EngineError::Param {
                name: "nearest".into(),
                reason: format!(
                    "`{}` passes text to `nearest(…{property}…)`, which needs an embedding provider to turn it into a vector; none is configured in this build — pass a Vector parameter instead",
                    q.name
                ),
            });
        }
    }
    Ok(())
}

fn collect_slots(ops: &[Op], slots: &mut HashMap<String, usize>) {
    let add = |v: &str, slots: &mut HashMap<String, usize>| {
        if !slots.contains_key(v) {
            let n = slots.len();
            slots.insert(v.to_string(), n);
        }
    };
    for op in ops {
        match op {
            Op::Scan { var, .. } => add(var, slots),
            Op::Expand {
                from_var,
                to_var,
                edge_var,
                ..
            } => {
                add(from_var, slots);
                add(to_var, slots);
                if let Some(e) = edge_var {
                    add(e, slots);
                }
            }
            Op::AntiJoin { ops } => collect_slots(ops, slots),
            Op::Filter { .. } => {}
        }
    }
}

/// Runs `ops` over `rows`. `top` is the query's own pipeline, whose
/// operators are charged for their input ([`Ctx::begin_op`]); an
/// anti-join's inner pipeline, run per row, is charged inside the
/// operator that runs it.
fn run_ops<'a>(
    ctx: &'a Ctx<'a>,
    ops: &'a [Op],
    rows: Vec<Binding>,
    top: bool,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<Binding>, EngineError>> + Send + 'a>,
> {
    Box::pin(async move {
        let mut rows = rows;
        for op in ops {
            if top {
                ctx.begin_op(rows.len())?;
            }
            rows = match op {
                Op::Scan {
                    var,
                    node_type,
                    equals,
                    ..
                } => scan(ctx, var, node_type, equals, rows).await?,
                Op::Expand {
                    from_var,
                    edge,
                    to_var,
                    to_type,
                    reverse,
                    undirected,
                    min_hops,
                    max_hops,
                    edge_var,
                    to_bound,
                } => {
                    let step = Step {
                        edge,
                        to_type,
                        fwd: !*reverse || *undirected,
                        bwd: *reverse || *undirected,
                        from: ctx.slots[from_var],
                        to: ctx.slots[to_var],
                        to_bound: *to_bound,
                    };
                    match edge_var {
                        Some(ev) => expand_edges(ctx, &step, ctx.slots[ev], rows).await?,
                        None => expand(ctx, &step, *min_hops, *max_hops, rows).await?,
                    }
                }
                Op::Filter { left, op, right } => rows
                    .into_iter()
                    .filter(|b| match (op, right) {
                        (Some(op), Some(r)) => {
                            let l = eval(ctx, left, b);
                            let r = eval(ctx, r, b);
                            holds(&l, *op, &r)
                        }
                        _ => eval(ctx, left, b) == Cell::Bool(true),
                    })
                    .collect(),
                Op::AntiJoin { ops } => {
                    let mut out = Vec::new();
                    for b in rows {
                        if run_ops(ctx, ops, vec![b.clone()], false).await?.is_empty() {
                            out.push(b);
                        }
                    }
                    out
                }
            };
            ctx.check_rows(rows.len())?;
        }
        Ok(rows)
    })
}

/// Binds `var` to the rows of `node_type` matching `equals`, per input row.
async fn scan(
    ctx: &Ctx<'_>,
    var: &str,
    node_type: &str,
    equals: &[(String, Expr)],
    rows: Vec<Binding>,
) -> Result<Vec<Binding>, EngineError> {
    let ti = ctx.table_ix[&node_key(node_type)];
    let t = &ctx.tables[ti];
    let slot = ctx.slots[var];
    // An equality on `id` or a BTREE-indexed property: one indexed lookup
    // for every value the input rows ask for.
    let mut candidates: Option<Vec<Arc<Row>>> = None;
    for (p, e) in equals {
        if !t.btree.contains(p) {
            continue;
        }
        let lits: Option<HashSet<String>> = rows
            .iter()
            .filter_map(|b| match eval(ctx, e, b) {
                Cell::Null => None,
                c => Some(sql_literal(&c)),
            })
            .collect();
        if let Some(lits) = lits {
            let lits: Vec<String> = lits.into_iter().collect();
            candidates = Some(t.rows_where_in(p, &lits).await?);
            break;
        }
    }
    // Else a full-text filter on this variable: only its hits.
    if candidates.is_none()
        && let Some(keys) = ctx.var_fts.get(var)
    {
        let mut ids: Option<HashSet<String>> = None;
        for k in keys {
            let Some(hits) = ctx.fts.get(k) else { continue };
            let these: HashSet<String> = hits.keys().cloned().collect();
            ids = Some(match ids {
                Some(prev) => prev.intersection(&these).cloned().collect(),
                None => these,
            });
        }
        if let Some(ids) = ids {
            candidates = Some(t.rows_by_id(&ids).await?.into_values().collect());
        }
    }
    let full;
    let candidates: &[Arc<Row>] = match &candidates {
        Some(c) => c,
        None => {
            full = t.full().await?;
            &full.rows
        }
    };
    // Without equalities every input row pairs with every candidate (an
    // unconnected binding: a cross product): refuse before building it.
    if equals.is_empty() {
        let product = rows.len().saturating_mul(candidates.len());
        ctx.check_rows(product)?;
        ctx.check_bytes((product as u64).saturating_mul(ctx.binding_bytes))?;
    }
    let mut out = Vec::new();
    for b in rows {
        for r in candidates {
            if equals.iter().all(|(p, e)| {
                let left = prop_of(&ctx.props[ti], r, p);
                let right = eval(ctx, e, &b);
                holds(&left, CmpOp::Eq, &right)
            }) {
                let mut nb = b.clone();
                nb[slot] = Some(Bound {
                    table: ti,
                    row: r.clone(),
                });
                out.push(nb);
                ctx.check_rows(out.len())?;
            }
        }
    }
    Ok(out)
}

/// One traversal step's shape.
struct Step<'s> {
    edge: &'s str,
    to_type: &'s str,
    fwd: bool,
    bwd: bool,
    from: usize,
    to: usize,
    to_bound: bool,
}

/// Variable-length traversal over the edge table's CSR.
///
/// Breadth-first (reference: docs/user/queries, "Traversal"): a destination
/// is reported at most once per source; a node is expanded once; reaching an
/// already visited node is pruned, except a self-loop, which reports its
/// node at the current hop when the hop is within bounds.
async fn expand(
    ctx: &Ctx<'_>,
    s: &Step<'_>,
    min_hops: u32,
    max_hops: Option<u32>,
    rows: Vec<Binding>,
) -> Result<Vec<Binding>, EngineError> {
    let ei = ctx.table_ix[&edge_key(s.edge)];
    let ti = ctx.table_ix[&node_key(s.to_type)];
    let csr = ctx.tables[ei].csr().await?;
    // Per input row: the ids reached.
    let mut reached_per_row: Vec<Vec<String>> = Vec::with_capacity(rows.len());
    // Pairs reached so far, over every input row (the budget's count).
    let mut total = 0usize;
    let mut wanted: HashSet<String> = HashSet::new();
    let mut buf = Vec::new();
    for b in &rows {
        let Some(from) = &b[s.from] else {
            reached_per_row.push(Vec::new());
            continue;
        };
        let start_id = &from.row.id;
        let mut reached: Vec<String> = Vec::new();
        if min_hops == 0 {
            reached.push(start_id.clone());
        }
        if let Some(&start) = csr.dense.get(start_id) {
            let mut reported: HashSet<u32> = HashSet::new();
            if min_hops == 0 {
                reported.insert(start);
            }
            let mut visited: HashSet<u32> = HashSet::from([start]);
            let mut frontier = vec![start];
            let mut hop = 0u32;
            while !frontier.is_empty() && max_hops.is_none_or(|m| hop < m) {
                hop += 1;
                let mut next = Vec::new();
                for &n in &frontier {
                    buf.clear();
                    csr.neighbours(n, s.fwd, s.bwd, &mut buf);
                    ctx.check_expansions(buf.len() as u64 + 1)?;
                    for &other in &buf {
                        if other != n && !visited.insert(other) {
                            continue;
                        }
                        if other != n {
                            next.push(other);
                        }
                        if hop >= min_hops && reported.insert(other) {
                            reached.push(csr.ids[other as usize].clone());
                        }
                    }
                }
                frontier = next;
            }
        }
        total += reached.len();
        ctx.check_rows(total)?;
        // Each reached id, and the binding it becomes.
        ctx.check_bytes(
            (total as u64).saturating_mul(budget::REACHED_ID_BYTES + ctx.binding_bytes),
        )?;
        wanted.extend(reached.iter().cloned());
        reached_per_row.push(reached);
    }
    let targets = ctx.tables[ti].rows_by_id(&wanted).await?;
    let mut out = Vec::new();
    for (b, reached) in rows.into_iter().zip(reached_per_row) {
        for id in reached {
            let Some(r) = targets.get(&id) else {
                continue;
            };
            let bound = Bound {
                table: ti,
                row: r.clone(),
            };
            if s.to_bound {
                if b[s.to].as_ref() == Some(&bound) {
                    out.push(b.clone());
                }
                continue;
            }
            let mut nb = b.clone();
            nb[s.to] = Some(bound);
            out.push(nb);
        }
    }
    Ok(out)
}

/// A single hop that binds the edge too: one output row per matching edge,
/// with the edge rows read through the `src`/`dst` BTREE indexes.
async fn expand_edges(
    ctx: &Ctx<'_>,
    s: &Step<'_>,
    eslot: usize,
    rows: Vec<Binding>,
) -> Result<Vec<Binding>, EngineError> {
    let ei = ctx.table_ix[&edge_key(s.edge)];
    let ti = ctx.table_ix[&node_key(s.to_type)];
    let et = &ctx.tables[ei];
    let starts: HashSet<String> = rows
        .iter()
        .filter_map(|b| b[s.from].as_ref().map(|f| f.row.id.clone()))
        .collect();
    let lits: Vec<String> = starts.iter().map(|i| sql_string(i)).collect();
    let mut by_src: HashMap<String, Vec<Arc<Row>>> = HashMap::new();
    let mut by_dst: HashMap<String, Vec<Arc<Row>>> = HashMap::new();
    if s.fwd && !lits.is_empty() {
        for r in et.rows_where_in("src", &lits).await? {
            by_src
                .entry(r.src.clone().unwrap_or_default())
                .or_default()
                .push(r);
        }
    }
    if s.bwd && !lits.is_empty() {
        for r in et.rows_where_in("dst", &lits).await? {
            by_dst
                .entry(r.dst.clone().unwrap_or_default())
                .or_default()
                .push(r);
        }
    }
    // (input row, edge row, other end)
    let mut hits: Vec<(usize, Arc<Row>, String)> = Vec::new();
    let mut wanted = HashSet::new();
    for (i, b) in rows.iter().enumerate() {
        let Some(f) = &b[s.from] else { continue };
        let mut seen = HashSet::new();
        for e in by_src.get(&f.row.id).into_iter().flatten() {
            if seen.insert(e.id.clone())
                && let Some(d) = &e.dst
            {
                wanted.insert(d.clone());
                hits.push((i, e.clone(), d.clone()));
            }
        }
        for e in by_dst.get(&f.row.id).into_iter().flatten() {
            if seen.insert(e.id.clone())
                && let Some(src) = &e.src
            {
                wanted.insert(src.clone());
                hits.push((i, e.clone(), src.clone()));
            }
        }
        ctx.check_rows(hits.len())?;
    }
    let targets = ctx.tables[ti].rows_by_id(&wanted).await?;
    let mut out = Vec::new();
    for (i, e, other) in hits {
        let Some(r) = targets.get(&other) else {
            continue;
        };
        let b = &rows[i];
        let bound = Bound {
            table: ti,
            row: r.clone(),
        };
        if s.to_bound && b[s.to].as_ref() != Some(&bound) {
            continue;
        }
        let mut nb = b.clone();
        nb[s.to] = Some(bound);
        nb[eslot] = Some(Bound { table: ei, row: e });
        out.push(nb);
        ctx.check_rows(out.len())?;
    }
    Ok(out)
}

fn prop_of(props: &[Property], r: &Row, p: &str) -> Cell {
    match p {
        "id" => Cell::Str(r.id.clone()),
        _ => props
            .iter()
            .position(|x| x.name == p)
            .map_or(Cell::Null, |i| r.cells[i].clone()),
    }
}

fn bound_row<'c>(ctx: &Ctx<'_>, b: &'c Binding, var: &str) -> Option<(usize, &'c Row)> {
    let slot = *ctx.slots.get(var)?;
    let bound = b.get(slot)?.as_ref()?;
    Some((bound.table, &bound.row))
}

fn fuzzy_edits(ctx: &Ctx<'_>, max_edits: Option<&Expr>, b: &Binding) -> u32 {
    match max_edits.map(|m| eval(ctx, m, b)) {
        Some(Cell::I64(k)) => u32::try_from(k.max(0)).unwrap_or(u32::MAX),
        Some(Cell::I32(k)) => u32::try_from(k.max(0)).unwrap_or(u32::MAX),
        _ => 1,
    }
}

/// Lowercased word tokens, for the in-memory text predicates.
fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn text_cell(c: &Cell) -> String {
    match c {
        Cell::Str(s) => s.clone(),
        Cell::List(items) => items.iter().map(text_cell).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

fn eval(ctx: &Ctx<'_>, e: &Expr, b: &Binding) -> Cell {
    match e {
        Expr::Literal { value } => literal(value),
        Expr::Param { name } => ctx.params.get(name).cloned().unwrap_or(Cell::Null),
        Expr::Now => Cell::DateTime(ctx.now),
        Expr::Property { var, property } | Expr::EdgeProperty { var, property } => {
            match bound_row(ctx, b, var) {
                Some((t, r)) => prop_of(&ctx.props[t], r, property),
                None => Cell::Null,
            }
        }
        Expr::Node { var } => match bound_row(ctx, b, var) {
            Some((_, r)) => Cell::Str(r.id.clone()),
            None => Cell::Null,
        },
        Expr::TextMatch {
            func,
            var,
            property,
            query,
            max_edits,
        } => {
            let Some((t, r)) = bound_row(ctx, b, var) else {
                return Cell::Bool(false);
            };
            if let Some((ft, p, mode, q)) = text_query(ctx, e)
                && ft == t
                && let Some(hits) = ctx.fts.get(&fts_key(ft, &p, mode, &q))
            {
                return Cell::Bool(hits.contains_key(&r.id));
            }
            let text = text_cell(&prop_of(&ctx.props[t], r, property));
            let q = text_cell(&eval(ctx, query, b));
            let doc = tokens(&text);
            let qt = tokens(&q);
            if qt.is_empty() {
                return Cell::Bool(false);
            }
            let ok = match func {
                TextSearch::Search => qt.iter().any(|w| doc.contains(w)),
                TextSearch::MatchText => qt.iter().all(|w| doc.contains(w)),
                TextSearch::Fuzzy => {
                    let k = fuzzy_edits(ctx, max_edits.as_deref(), b) as usize;
                    qt.iter()
                        .any(|w| doc.iter().any(|d| crate::diag::levenshtein(w, d) <= k))
                }
            };
            Cell::Bool(ok)
        }
        Expr::List { items } => Cell::List(items.iter().map(|i| eval(ctx, i, b)).collect()),
        // Scores and aggregates are computed over the whole result set.
        _ => Cell::Null,
    }
}

fn literal(v: &LiteralValue) -> Cell {
    match v {
        LiteralValue::Null => Cell::Null,
        LiteralValue::Bool(b) => Cell::Bool(*b),
        LiteralValue::Int(i) => Cell::I64(*i),
        LiteralValue::Float(f) => Cell::F64(*f),
        LiteralValue::String(s) => Cell::Str(s.clone()),
        LiteralValue::Date(d) => Cell::Date(*d),
        LiteralValue::DateTime(ms) => Cell::DateTime(*ms),
        LiteralValue::List(items) => Cell::List(items.iter().map(literal).collect()),
    }
}

/// BM25 over the rows' texts for one query (k1 = 1.2, b = 0.75).
fn bm25_scores(docs: &[Vec<String>], query: &[String]) -> Vec<f64> {
    let n = docs.len() as f64;
    let avg = docs.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1.0);
    let df = |w: &String| docs.iter().filter(|d| d.contains(w)).count() as f64;
    let idf: Vec<f64> = query
        .iter()
        .map(|w| ((n - df(w) + 0.5) / (df(w) + 0.5) + 1.0).ln())
        .collect();
    docs.iter()
        .map(|d| {
            query
                .iter()
                .zip(&idf)
                .map(|(w, idf)| {
                    let tf = d.iter().filter(|x| *x == w).count() as f64;
                    idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * d.len() as f64 / avg.max(1.0)))
                })
                .sum()
        })
        .collect()
}

fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        1.0
    } else {
        1.0 - dot / (na * nb)
    }
}

/// A score per row for a ranking expression (bm25, nearest, rrf).
fn scores(ctx: &Ctx<'_>, e: &Expr, rows: &[Binding]) -> Option<Vec<Cell>> {
    match e {
        Expr::Bm25 {
            var,
            property,
            query,
        } => {
            if let Some((t, p, mode, q)) = text_query(ctx, e)
                && let Some(hits) = ctx.fts.get(&fts_key(t, &p, mode, &q))
            {
                return Some(
                    rows.iter()
                        .map(|b| match bound_row(ctx, b, var) {
                            Some((bt, r)) if bt == t => {
                                Cell::F64(hits.get(&r.id).copied().map_or(0.0, f64::from))
                            }
                            _ => Cell::F64(0.0),
                        })
                        .collect(),
                );
            }
            let docs: Vec<Vec<String>> = rows
                .iter()
                .map(|b| match bound_row(ctx, b, var) {
                    Some((t, r)) => tokens(&text_cell(&prop_of(&ctx.props[t], r, property))),
                    None => Vec::new(),
                })
                .collect();
            let q = rows
                .first()
                .map(|b| tokens(&text_cell(&eval(ctx, query, b))))
                .unwrap_or_default();
            Some(bm25_scores(&docs, &q).into_iter().map(Cell::F64).collect())
        }
        Expr::Nearest {
            var,
            property,
            query,
        } => Some(
            rows.iter()
                .map(|b| {
                    let v =
                        bound_row(ctx, b, var).map(|(t, r)| prop_of(&ctx.props[t], r, property));
                    match (v, eval(ctx, query, b)) {
                        (Some(Cell::Vector(a)), Cell::Vector(q)) => {
                            Cell::F64(cosine_distance(&a, &q))
                        }
                        _ => Cell::Null,
                    }
                })
                .collect(),
        ),
        Expr::Rrf { a, b, k } => {
            let k = match rows.first().map(|r| eval(ctx, k, r)) {
                Some(Cell::I64(k)) => k as f64,
                _ => 60.0,
            };
            let ranks = |s: Vec<Cell>, best_high: bool| -> Vec<f64> {
                let mut idx: Vec<usize> = (0..s.len()).collect();
                idx.sort_by(|&x, &y| {
                    let o = cmp_cells_nulls(&s[x], &s[y]);
                    if best_high { o.reverse() } else { o }
                });
                let mut r = vec![0.0; s.len()];
                for (rank, i) in idx.into_iter().enumerate() {
                    r[i] = 1.0 / (k + rank as f64 + 1.0);
                }
                r
            };
            let ra = ranks(scores(ctx, a, rows)?, matches!(**a, Expr::Bm25 { .. }));
            let rb = ranks(scores(ctx, b, rows)?, matches!(**b, Expr::Bm25 { .. }));
            Some(ra.iter().zip(&rb).map(|(x, y)| Cell::F64(x + y)).collect())
        }
        _ => None,
    }
}

/// Orders cells with nulls first.
fn cmp_cells_nulls(a: &Cell, b: &Cell) -> Ordering {
    match (a, b) {
        (Cell::Null, Cell::Null) => Ordering::Equal,
        (Cell::Null, _) => Ordering::Less,
        (_, Cell::Null) => Ordering::Greater,
        _ => {
            if holds(a, CmpOp::Lt, b) {
                Ordering::Less
            } else if holds(a, CmpOp::Gt, b) {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
    }
}

/// The value of a projection or order expression for every row.
fn column(ctx: &Ctx<'_>, e: &Expr, rows: &[Binding]) -> Vec<Cell> {
    scores(ctx, e, rows).unwrap_or_else(|| rows.iter().map(|b| eval(ctx, e, b)).collect())
}

fn node_json(ctx: &Ctx<'_>, b: &Binding, var: &str) -> Json {
    match bound_row(ctx, b, var) {
        Some((t, r)) => {
            let mut m = Map::new();
            m.insert("id".into(), Json::from(r.id.clone()));
            for (p, c) in ctx.props[t].iter().zip(&r.cells) {
                if *c != Cell::Null && !p.ty.is_blob() {
                    m.insert(p.name.clone(), to_json(c));
                }
            }
            Json::Object(m)
        }
        None => Json::Null,
    }
}

fn aggregate(func: AggFunc, vals: &[Cell]) -> Cell {
    let present: Vec<&Cell> = vals.iter().filter(|c| **c != Cell::Null).collect();
    let num = |c: &Cell| match c {
        Cell::I32(x) => f64::from(*x),
        Cell::I64(x) => *x as f64,
        Cell::U32(x) => f64::from(*x),
        Cell::U64(x) => *x as f64,
        Cell::F32(x) => f64::from(*x),
        Cell::F64(x) => *x,
        _ => 0.0,
    };
    match func {
        AggFunc::Count => Cell::I64(present.len() as i64),
        AggFunc::Sum => {
            if present
                .iter()
                .all(|c| matches!(c, Cell::I32(_) | Cell::I64(_) | Cell::U32(_) | Cell::U64(_)))
            {
                Cell::I64(present.iter().map(|c| num(c) as i64).sum())
            } else {
                Cell::F64(present.iter().map(|c| num(c)).sum())
            }
        }
        AggFunc::Avg if present.is_empty() => Cell::Null,
        AggFunc::Avg => {
            Cell::F64(present.iter().map(|c| num(c)).sum::<f64>() / present.len() as f64)
        }
        AggFunc::Min => present
            .into_iter()
            .min_by(|a, b| cmp_cells_nulls(a, b))
            .cloned()
            .unwrap_or(Cell::Null),
        AggFunc::Max => present
            .into_iter()
            .max_by(|a, b| cmp_cells_nulls(a, b))
            .cloned()
            .unwrap_or(Cell::Null),
    }
}

fn cell_json(c: &Cell) -> Json {
    match c {
        Cell::DateTime(ms) => Json::from(format_datetime(*ms)),
        other => to_json(other),
    }
}

/// `limit $n` takes a positive `$n`, as a literal limit must be (`T34`):
/// a zero or negative value is [`EngineError::Param`] naming the parameter
/// (a 400 on the server), never an empty answer.
fn limit_param_is_positive(
    plan: &ReadPlan,
    params: &HashMap<String, Cell>,
) -> Result<(), EngineError> {
    let Some(Expr::Param { name }) = &plan.limit else {
        return Ok(());
    };
    let n: Option<i128> = match params.get(name) {
        Some(Cell::I64(n)) => Some(i128::from(*n)),
        Some(Cell::I32(n)) => Some(i128::from(*n)),
        Some(Cell::U32(n)) => Some(i128::from(*n)),
        Some(Cell::U64(n)) => Some(i128::from(*n)),
        _ => None,
    };
    match n {
        Some(n) if n < 1 => Err(EngineError::Param {
            name: name.clone(),
            reason: format!("is used as the limit and must be at least 1, got {n}"),
        }),
        _ => Ok(()),
    }
}

/// Projection, grouping, ordering and limit.
fn project(ctx: &Ctx<'_>, plan: &ReadPlan, rows: Vec<Binding>) -> Vec<Map<String, Json>> {
    // Each output row: its projected cells (for order/aggregates), JSON, and
    // the tie-break ids of the bound variables.
    struct Out {
        cells: Vec<Cell>,
        json: Vec<Json>,
        ids: Vec<String>,
    }
    let tie_ids = |b: &Binding| -> Vec<String> {
        plan.variables
            .iter()
            .map(|(v, _)| {
                bound_row(ctx, b, v)
                    .map(|(_, r)| r.id.clone())
                    .unwrap_or_default()
            })
            .collect()
    };
    let mut outs: Vec<Out> = Vec::new();
    let mut order_cols: Vec<Vec<Cell>> = Vec::new();
    if let Some(group) = &plan.group_by {
        // Group rows by the group-key projections.
        let keys: Vec<Vec<Cell>> = group
            .iter()
            .map(|&i| column(ctx, &plan.projections[i].expr, &rows))
            .collect();
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for r in 0..rows.len() {
            let k: Vec<Json> = keys.iter().map(|col| cell_json(&col[r])).collect();
            groups
                .entry(serde_json::to_string(&k).unwrap_or_default())
                .or_default()
                .push(r);
        }
        if groups.is_empty() && group.is_empty() {
            groups.insert(String::new(), Vec::new());
        }
        for members in groups.values() {
            let mut cells = Vec::new();
            let mut json = Vec::new();
            for p in &plan.projections {
                let c = match &p.expr {
                    Expr::Aggregate { func, arg } => {
                        let sub: Vec<Binding> = members.iter().map(|&i| rows[i].clone()).collect();
                        let vals = match arg.as_ref() {
                            Expr::Node { var } => sub
                                .iter()
                                .map(|b| {
                                    bound_row(ctx, b, var)
                                        .map_or(Cell::Null, |(_, r)| Cell::Str(r.id.clone()))
                                })
                                .collect(),
                            other => column(ctx, other, &sub),
                        };
                        aggregate(*func, &vals)
                    }
                    other => members
                        .first()
                        .map_or(Cell::Null, |&i| column(ctx, other, &rows[i..=i]).remove(0)),
                };
                json.push(match &p.expr {
                    Expr::Node { var } => members
                        .first()
                        .map_or(Json::Null, |&i| node_json(ctx, &rows[i], var)),
                    _ => cell_json(&c),
                });
                cells.push(c);
            }
            outs.push(Out {
                cells,
                json,
                ids: Vec::new(),
            });
        }
        for k in &plan.order {
            let col = outs
                .iter()
                .map(|o| match &k.expr {
                    Expr::Alias { index, .. } => o.cells[*index].clone(),
                    e => plan
                        .projections
                        .iter()
                        .position(|p| p.expr == *e)
                        .map_or(Cell::Null, |i| o.cells[i].clone()),
                })
                .collect();
            order_cols.push(col);
        }
    } else {
        let cols: Vec<Vec<Cell>> = plan
            .projections
            .iter()
            .map(|p| column(ctx, &p.expr, &rows))
            .collect();
        for (r, b) in rows.iter().enumerate() {
            let cells: Vec<Cell> = cols.iter().map(|c| c[r].clone()).collect();
            let json = plan
                .projections
                .iter()
                .zip(&cells)
                .map(|(p, c)| match &p.expr {
                    Expr::Node { var } => node_json(ctx, b, var),
                    _ => cell_json(c),
                })
                .collect();
            outs.push(Out {
                cells,
                json,
                ids: tie_ids(b),
            });
        }
        for k in &plan.order {
            let col = match &k.expr {
                Expr::Alias { index, .. } => outs.iter().map(|o| o.cells[*index].clone()).collect(),
                e => column(ctx, e, &rows),
            };
            order_cols.push(col);
        }
    }
    let mut idx: Vec<usize> = (0..outs.len()).collect();
    if !plan.order.is_empty() || plan.group_by.is_none() {
        idx.sort_by(|&a, &b| {
            for (k, col) in plan.order.iter().zip(&order_cols) {
                let o = cmp_cells_nulls(&col[a], &col[b]);
                let o = if k.descending { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            outs[a].ids.cmp(&outs[b].ids)
        });
    }
    let limit = match &plan.limit {
        Some(Expr::Literal {
            value: LiteralValue::Int(n),
        }) => usize::try_from(*n).unwrap_or(usize::MAX),
        Some(Expr::Param { name }) => match ctx.params.get(name) {
            Some(Cell::I64(n)) => usize::try_from(*n).unwrap_or(0),
            Some(Cell::I32(n)) => usize::try_from(*n).unwrap_or(0),
            Some(Cell::U32(n)) => *n as usize,
            Some(Cell::U64(n)) => usize::try_from(*n).unwrap_or(usize::MAX),
            _ => usize::MAX,
        },
        _ => usize::MAX,
    };
    idx.into_iter()
        .take(limit)
        .map(|i| {
            plan.projections
                .iter()
                .zip(&outs[i].json)
                .map(|(p, j)| (p.name.clone(), j.clone()))
                .collect()
        })
        .collect()
}
