//! Executing a read query's IR against a pinned view of the graph.
//!
//! Tables are decoded once per (table, Lance branch, version) into
//! [`TableData`] (rows, an id index, and for edges out/in adjacency) and
//! shared as `Arc`s through the graph's cache; a new table version is a new
//! cache entry, so cached data is never stale and never rebuilt per query.
//!
//! Rows flowing through the pipeline are vectors of bound entities, one slot
//! per variable. Ordering is total: user keys, then the ids of the bound
//! variables in bind order.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Map, Value as Json};

use super::load::Row;
use super::mutate::{bind_params, holds};
use super::values::{Cell, format_datetime, to_json};
use super::{EngineError, Graph, ReadAt, View, edge_key, node_key};
use crate::query::ast::CmpOp;
use crate::query::ir::*;
use crate::schema::Property;

/// One decoded table version.
#[derive(Debug)]
pub struct TableData {
    pub rows: Vec<Row>,
    pub by_id: HashMap<String, usize>,
    /// Edges only: row indexes by `src` and by `dst`.
    pub out: HashMap<String, Vec<usize>>,
    pub inc: HashMap<String, Vec<usize>>,
}

impl TableData {
    fn new(rows: Vec<Row>) -> Self {
        let by_id = rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let mut out: HashMap<String, Vec<usize>> = HashMap::new();
        let mut inc: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            if let (Some(s), Some(d)) = (&r.src, &r.dst) {
                out.entry(s.clone()).or_default().push(i);
                inc.entry(d.clone()).or_default().push(i);
            }
        }
        Self {
            rows,
            by_id,
            out,
            inc,
        }
    }
}

/// Decoded tables keyed by (table, Lance branch, version).
pub type TableCache = Arc<Mutex<HashMap<(String, Option<String>, u64), Arc<TableData>>>>;

/// A query's result: column names and rows as JSON objects.
#[derive(Debug, Clone, Serialize)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Map<String, Json>>,
    /// The commit the rows were read from.
    pub graph_commit_id: String,
}

/// A bound entity: a node or edge row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bound {
    Node(usize, usize),
    Edge(usize, usize),
}

/// Execution context: the tables a query touches, indexed by slot.
struct Ctx<'a> {
    tables: Vec<Arc<TableData>>,
    table_ix: HashMap<String, usize>,
    props: Vec<Vec<Property>>,
    slots: HashMap<String, usize>,
    params: &'a HashMap<String, Cell>,
    now: i64,
}

type Binding = Vec<Option<Bound>>;

impl Graph {
    async fn table_data(&self, view: &View, key: &str) -> Result<Arc<TableData>, EngineError> {
        let Some(r) = view.tables.get(key) else {
            return Ok(Arc::new(TableData::new(Vec::new())));
        };
        let ck = (key.to_string(), r.lance_branch.clone(), r.version);
        if let Some(t) = self.cache.lock().ok().and_then(|c| c.get(&ck).cloned()) {
            return Ok(t);
        }
        let rows = self.read_rows(key, r).await?;
        let t = Arc::new(TableData::new(rows));
        if let Ok(mut c) = self.cache.lock() {
            c.insert(ck, t.clone());
        }
        Ok(t)
    }

    /// Runs a checked read query at `at`.
    pub async fn query(
        &self,
        q: &CheckedQuery,
        params: &Json,
        at: &ReadAt,
    ) -> Result<QueryResult, EngineError> {
        let QueryKind::Read(plan) = &q.body else {
            return Err(EngineError::Param {
                name: q.name.clone(),
                reason: "is a mutation; run it with `omnigraph mutate`".into(),
            });
        };
        let params = bind_params(q, params)?;
        needs_no_embedder(q, plan)?;
        let view = self.view(at).await?;
        let mut ctx = Ctx {
            tables: Vec::new(),
            table_ix: HashMap::new(),
            props: Vec::new(),
            slots: HashMap::new(),
            params: &params,
            now: super::now_ms(),
        };
        for r in &q.reads {
            let key = if r.kind == "edge" {
                edge_key(&r.type_name)
            } else {
                node_key(&r.type_name)
            };
            let data = self.table_data(&view, &key).await?;
            ctx.table_ix.insert(key.clone(), ctx.tables.len());
            ctx.tables.push(data);
            ctx.props.push(self.props(&key).to_vec());
        }
        collect_slots(&plan.pipeline, &mut ctx.slots);
        let n = ctx.slots.len();
        let rows = run_ops(&ctx, &plan.pipeline, vec![vec![None; n]])?;
        let result = project(&ctx, plan, rows);
        Ok(QueryResult {
            columns: plan.projections.iter().map(|p| p.name.clone()).collect(),
            rows: result,
            graph_commit_id: view.commit,
        })
    }
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

fn run_ops(ctx: &Ctx<'_>, ops: &[Op], mut rows: Vec<Binding>) -> Result<Vec<Binding>, EngineError> {
    for op in ops {
        rows = match op {
            Op::Scan {
                var,
                node_type,
                equals,
                ..
            } => {
                let ti = ctx.table_ix[&node_key(node_type)];
                let t = &ctx.tables[ti];
                let slot = ctx.slots[var];
                let mut out = Vec::new();
                for b in rows {
                    for (i, r) in t.rows.iter().enumerate() {
                        if equals.iter().all(|(p, e)| {
                            let left = prop_of(&ctx.props[ti], r, p);
                            let right = eval(ctx, e, &b);
                            holds(&left, CmpOp::Eq, &right)
                        }) {
                            let mut nb = b.clone();
                            nb[slot] = Some(Bound::Node(ti, i));
                            out.push(nb);
                        }
                    }
                }
                out
            }
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
                let ei = ctx.table_ix[&edge_key(edge)];
                let et = &ctx.tables[ei];
                let ti = ctx.table_ix[&node_key(to_type)];
                let tt = &ctx.tables[ti];
                let fslot = ctx.slots[from_var];
                let tslot = ctx.slots[to_var];
                let mut out = Vec::new();
                for b in rows {
                    let Some(Bound::Node(fti, fi)) = b[fslot] else {
                        continue;
                    };
                    let start = ctx.tables[fti].rows[fi].id.clone();
                    // Neighbours of an id: (edge row, other end).
                    let step = |id: &str| -> Vec<(usize, String)> {
                        let mut v = Vec::new();
                        let fwd = !*reverse || *undirected;
                        let bwd = *reverse || *undirected;
                        if fwd {
                            for &e in et.out.get(id).map_or(&[][..], |x| x.as_slice()) {
                                if let Some(d) = &et.rows[e].dst {
                                    v.push((e, d.clone()));
                                }
                            }
                        }
                        if bwd {
                            for &e in et.inc.get(id).map_or(&[][..], |x| x.as_slice()) {
                                if let Some(s) = &et.rows[e].src {
                                    v.push((e, s.clone()));
                                }
                            }
                        }
                        v
                    };
                    if let Some(ev) = edge_var {
                        // One row per matching edge (single hop).
                        let eslot = ctx.slots[ev];
                        let mut seen = HashSet::new();
                        for (e, other) in step(&start) {
                            if !seen.insert(e) {
                                continue;
                            }
                            let Some(&oi) = tt.by_id.get(&other) else {
                                continue;
                            };
                            if *to_bound && b[tslot] != Some(Bound::Node(ti, oi)) {
                                continue;
                            }
                            let mut nb = b.clone();
                            nb[tslot] = Some(Bound::Node(ti, oi));
                            nb[eslot] = Some(Bound::Edge(ei, e));
                            out.push(nb);
                        }
                        continue;
                    }
                    // Breadth-first (reference: docs/user/queries, "Traversal"):
                    // a destination is reported at most once per source; a
                    // node is expanded once; reaching an already visited node
                    // is pruned, except a self-loop, which reports its node
                    // at the current hop when the hop is within bounds.
                    let mut reached: Vec<String> = Vec::new();
                    let mut reported: HashSet<String> = HashSet::new();
                    if *min_hops == 0 {
                        reported.insert(start.clone());
                        reached.push(start.clone());
                    }
                    let mut visited: HashSet<String> = HashSet::from([start.clone()]);
                    let mut frontier = vec![start.clone()];
                    let mut hop = 0u32;
                    while !frontier.is_empty() && max_hops.is_none_or(|m| hop < m) {
                        hop += 1;
                        let mut next = Vec::new();
                        for id in &frontier {
                            for (_, other) in step(id) {
                                let fresh = if other == *id {
                                    false
                                } else {
                                    visited.insert(other.clone())
                                };
                                if fresh {
                                    next.push(other.clone());
                                } else if other != *id {
                                    continue;
                                }
                                if hop >= *min_hops && reported.insert(other.clone()) {
                                    reached.push(other);
                                }
                            }
                        }
                        frontier = next;
                    }
                    for other in reached {
                        let Some(&oi) = tt.by_id.get(&other) else {
                            continue;
                        };
                        if *to_bound {
                            if b[tslot] == Some(Bound::Node(ti, oi)) {
                                out.push(b.clone());
                            }
                            continue;
                        }
                        let mut nb = b.clone();
                        nb[tslot] = Some(Bound::Node(ti, oi));
                        out.push(nb);
                    }
                }
                out
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
                    if run_ops(ctx, ops, vec![b.clone()])?.is_empty() {
                        out.push(b);
                    }
                }
                out
            }
        };
    }
    Ok(rows)
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

fn bound_row<'c>(ctx: &'c Ctx<'_>, b: &Binding, var: &str) -> Option<(usize, &'c Row)> {
    let slot = *ctx.slots.get(var)?;
    match b.get(slot).copied().flatten()? {
        Bound::Node(t, i) | Bound::Edge(t, i) => Some((t, &ctx.tables[t].rows[i])),
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
                    let k = match max_edits.as_ref().map(|m| eval(ctx, m, b)) {
                        Some(Cell::I64(k)) => k.max(0) as usize,
                        _ => 1,
                    };
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
