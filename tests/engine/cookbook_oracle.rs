//! Every read query of every cookbook, run on its loaded seed with
//! parameters drawn from the seed's own rows, against an independent
//! oracle.
//!
//! The oracle reads the seed file itself (not the graph), and the match
//! block as written (the parsed AST, not the planner's lowered pipeline) the
//! naive way: generate and test over every row in the order written, traversal by
//! shortest distance within the hop bounds (the reference rule: each
//! destination once per source, visited nodes not revisited, a self-loop
//! reports its node one hop later), comparisons, grouping, aggregates, the
//! total order (keys, then the bound node ids) and limit — with none of the
//! engine's indexes, CSR, full-text index or caches. Text predicates use the
//! documented tokenizer (split on non-alphanumerics, lowercase); `bm25` is
//! scored over every non-null value of the property in the table.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;

use omnigraph::engine::load::{LoadMode, node_id};
use omnigraph::engine::values::{Cell, format_datetime, from_json, to_json};
use omnigraph::engine::{Graph, ReadAt};
use omnigraph::query::ast::{
    BodyAst, ClauseAst, CmpOp, ExprAst, QueryFile, ReadAst, parse_queries,
};
use omnigraph::query::compile_queries;
use omnigraph::query::ir::*;
use omnigraph::schema::{Catalog, PropType, ScalarType};
use serde_json::{Map, Value as Json, json};

/// One seed row as the oracle sees it.
#[derive(Debug, Clone)]
struct ORow {
    id: String,
    src: String,
    dst: String,
    props: HashMap<String, Cell>,
}

/// The seed graph: rows per node type and per edge type.
struct Seed {
    nodes: HashMap<String, Vec<ORow>>,
    edges: HashMap<String, Vec<ORow>>,
}

fn read_seed(cat: &Catalog, text: &str) -> Seed {
    let mut seed = Seed {
        nodes: HashMap::new(),
        edges: HashMap::new(),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Json = serde_json::from_str(line).expect("seed json");
        let data = v.get("data").cloned().unwrap_or(json!({}));
        let cells = |props: &[omnigraph::schema::Property]| -> (Vec<Cell>, HashMap<String, Cell>) {
            let mut list = Vec::new();
            let mut map = HashMap::new();
            for p in props {
                let c = match data.get(&p.name) {
                    Some(j) if !j.is_null() => from_json(j, &p.ty, p.nullable).expect("seed value"),
                    _ => p
                        .default
                        .as_ref()
                        .map(|d| omnigraph::engine::values::default_cell(p, d))
                        .unwrap_or(Cell::Null),
                };
                list.push(c.clone());
                map.insert(p.name.clone(), c);
            }
            (list, map)
        };
        if let Some(t) = v.get("type").and_then(Json::as_str) {
            let n = cat.node(t).expect("seed node type");
            let (list, props) = cells(&n.properties);
            let id = data
                .get("id")
                .and_then(Json::as_str)
                .map(str::to_string)
                .or_else(|| node_id(n, &list))
                .expect("seed node id");
            seed.nodes.entry(t.to_string()).or_default().push(ORow {
                id,
                src: String::new(),
                dst: String::new(),
                props,
            });
        } else if let Some(e) = v.get("edge").and_then(Json::as_str) {
            let et = cat.edge(e).expect("seed edge type");
            let (_, props) = cells(&et.properties);
            let end = |k: &str| match v.get(k) {
                Some(Json::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            let rows = seed.edges.entry(e.to_string()).or_default();
            let id = data
                .get("id")
                .and_then(Json::as_str)
                .map_or_else(|| format!("{e}#{}", rows.len()), str::to_string);
            rows.push(ORow {
                id,
                src: end("from"),
                dst: end("to"),
                props,
            });
        }
    }
    seed
}

/// A bound variable: edge or node, its type, its row.
#[derive(Debug, Clone, PartialEq)]
struct Ent {
    edge: bool,
    ty: String,
    i: usize,
}

type OBinding = BTreeMap<String, Ent>;

struct Oracle<'a> {
    seed: &'a Seed,
    params: &'a HashMap<String, Cell>,
    now: i64,
}

fn num(c: &Cell) -> Option<f64> {
    Some(match c {
        Cell::I32(x) => f64::from(*x),
        Cell::I64(x) => *x as f64,
        Cell::U32(x) => f64::from(*x),
        Cell::U64(x) => *x as f64,
        Cell::F32(x) => f64::from(*x),
        Cell::F64(x) => *x,
        _ => return None,
    })
}

/// The oracle's own value order; `None` for incomparable values and nulls.
fn ocmp(a: &Cell, b: &Cell) -> Option<Ordering> {
    if let (Some(x), Some(y)) = (num(a), num(b)) {
        return x.partial_cmp(&y);
    }
    match (a, b) {
        (Cell::Str(x), Cell::Str(y)) => Some(x.cmp(y)),
        (Cell::Bool(x), Cell::Bool(y)) => Some(x.cmp(y)),
        (Cell::Date(x), Cell::Date(y)) => Some(x.cmp(y)),
        (Cell::DateTime(x), Cell::DateTime(y)) => Some(x.cmp(y)),
        (Cell::Date(d), Cell::DateTime(t)) => Some((i64::from(*d) * 86_400_000).cmp(t)),
        (Cell::DateTime(t), Cell::Date(d)) => Some(t.cmp(&(i64::from(*d) * 86_400_000))),
        (Cell::List(x), Cell::List(y)) => {
            for (p, q) in x.iter().zip(y) {
                match ocmp(p, q)? {
                    Ordering::Equal => {}
                    o => return Some(o),
                }
            }
            Some(x.len().cmp(&y.len()))
        }
        _ => None,
    }
}

fn oholds(l: &Cell, op: CmpOp, r: &Cell) -> bool {
    match op {
        CmpOp::Contains => match (l, r) {
            (Cell::List(items), v) => items.iter().any(|i| ocmp(i, v) == Some(Ordering::Equal)),
            (Cell::Str(s), Cell::Str(t)) => s.contains(t.as_str()),
            _ => false,
        },
        CmpOp::StartsWith => {
            matches!((l, r), (Cell::Str(s), Cell::Str(t)) if s.starts_with(t.as_str()))
        }
        _ => match ocmp(l, r) {
            None => false,
            Some(o) => match op {
                CmpOp::Eq => o == Ordering::Equal,
                CmpOp::Ne => o != Ordering::Equal,
                CmpOp::Lt => o == Ordering::Less,
                CmpOp::Le => o != Ordering::Greater,
                CmpOp::Gt => o == Ordering::Greater,
                CmpOp::Ge => o != Ordering::Less,
                _ => false,
            },
        },
    }
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn text_of(c: &Cell) -> String {
    match c {
        Cell::Str(s) => s.clone(),
        Cell::List(items) => items.iter().map(text_of).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

fn edits(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let sub = prev[j - 1] + usize::from(a[i - 1] != b[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn lit(v: &LiteralValue) -> Cell {
    match v {
        LiteralValue::Null => Cell::Null,
        LiteralValue::Bool(b) => Cell::Bool(*b),
        LiteralValue::Int(i) => Cell::I64(*i),
        LiteralValue::Float(f) => Cell::F64(*f),
        LiteralValue::String(s) => Cell::Str(s.clone()),
        LiteralValue::Date(d) => Cell::Date(*d),
        LiteralValue::DateTime(ms) => Cell::DateTime(*ms),
        LiteralValue::List(items) => Cell::List(items.iter().map(lit).collect()),
    }
}

impl Oracle<'_> {
    fn row(&self, e: &Ent) -> &ORow {
        let t = if e.edge {
            &self.seed.edges[&e.ty]
        } else {
            &self.seed.nodes[&e.ty]
        };
        &t[e.i]
    }

    fn rows_of(&self, ty: &str) -> &[ORow] {
        self.seed.nodes.get(ty).map_or(&[], Vec::as_slice)
    }

    fn prop(&self, b: &OBinding, var: &str, p: &str) -> Cell {
        match b.get(var) {
            Some(e) if p == "id" => Cell::Str(self.row(e).id.clone()),
            Some(e) => self.row(e).props.get(p).cloned().unwrap_or(Cell::Null),
            None => Cell::Null,
        }
    }

    fn eval(&self, e: &Expr, b: &OBinding) -> Cell {
        match e {
            Expr::Literal { value } => lit(value),
            Expr::Param { name } => self.params.get(name).cloned().unwrap_or(Cell::Null),
            Expr::Now => Cell::DateTime(self.now),
            Expr::Property { var, property } | Expr::EdgeProperty { var, property } => {
                self.prop(b, var, property)
            }
            Expr::Node { var } => b
                .get(var)
                .map_or(Cell::Null, |e| Cell::Str(self.row(e).id.clone())),
            Expr::List { items } => Cell::List(items.iter().map(|i| self.eval(i, b)).collect()),
            Expr::TextMatch {
                func,
                var,
                property,
                query,
                max_edits,
            } => {
                let doc = words(&text_of(&self.prop(b, var, property)));
                let q = words(&text_of(&self.eval(query, b)));
                let hit = |w: &String, k: usize| doc.iter().any(|d| edits(w, d) <= k);
                Cell::Bool(
                    !q.is_empty()
                        && match func {
                            TextSearch::Search => q.iter().any(|w| hit(w, 0)),
                            TextSearch::MatchText => q.iter().all(|w| hit(w, 0)),
                            TextSearch::Fuzzy => {
                                let k = max_edits
                                    .as_ref()
                                    .and_then(|m| num(&self.eval(m, b)))
                                    .map_or(1, |k| k.max(0.0) as usize);
                                q.iter().any(|w| hit(w, k))
                            }
                        },
                )
            }
            _ => Cell::Null,
        }
    }

    /// Nodes reachable from `start` as the reference defines variable-length
    /// traversal: shortest distance within bounds, or one more for a
    /// self-loop on a node that is expanded.
    fn reach(
        &self,
        edge: &str,
        start: &str,
        fwd: bool,
        bwd: bool,
        min: u32,
        max: Option<u32>,
    ) -> Vec<String> {
        let edges = self.seed.edges.get(edge).map_or(&[][..], Vec::as_slice);
        let next = |u: &str| -> Vec<String> {
            let mut v = Vec::new();
            for e in edges {
                if fwd && e.src == u {
                    v.push(e.dst.clone());
                }
                if bwd && e.dst == u {
                    v.push(e.src.clone());
                }
            }
            v
        };
        let mut dist: HashMap<String, u32> = HashMap::from([(start.to_string(), 0)]);
        let mut q = VecDeque::from([start.to_string()]);
        while let Some(u) = q.pop_front() {
            let d = dist[&u];
            if max.is_some_and(|m| d >= m) {
                continue;
            }
            for v in next(&u) {
                if !dist.contains_key(&v) {
                    dist.insert(v.clone(), d + 1);
                    q.push_back(v);
                }
            }
        }
        let within = |h: u32| h >= min && max.is_none_or(|m| h <= m);
        let mut out: Vec<String> = dist
            .iter()
            .filter(|(v, d)| within(**d) || (next(v).contains(v) && within(**d + 1)))
            .map(|(v, _)| v.clone())
            .collect();
        out.sort();
        out
    }

    /// BM25 (k1 = 1.2, b = 0.75) of each row's text against `q`, with the
    /// corpus statistics of every non-null value in the table.
    fn bm25(&self, ty: &str, property: &str, q: &str, docs: &[Vec<String>]) -> Vec<f64> {
        let corpus: Vec<Vec<String>> = self
            .rows_of(ty)
            .iter()
            .filter_map(|r| match r.props.get(property) {
                Some(Cell::Null) | None => None,
                Some(c) => Some(words(&text_of(c))),
            })
            .filter(|w| !w.is_empty())
            .collect();
        let n = corpus.len() as f64;
        let avg = corpus.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1.0);
        let q = words(q);
        docs.iter()
            .map(|d| {
                q.iter()
                    .map(|w| {
                        let df = corpus.iter().filter(|c| c.contains(w)).count() as f64;
                        let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                        let tf = d.iter().filter(|x| *x == w).count() as f64;
                        if tf == 0.0 {
                            0.0
                        } else {
                            idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * d.len() as f64 / avg))
                        }
                    })
                    .sum()
            })
            .collect()
    }

    fn var_type<'p>(plan: &'p ReadPlan, var: &str) -> Option<&'p str> {
        plan.variables
            .iter()
            .find(|(v, _)| v == var)
            .map(|(_, t)| t.as_str())
    }

    /// A projection or order expression over every row.
    fn column(&self, plan: &ReadPlan, e: &Expr, rows: &[OBinding]) -> Vec<Cell> {
        match e {
            // Reciprocal rank fusion (reference docs/user/search/index.md):
            // sum of 1 / (k + rank), rank 1 = best; equal scores share the
            // rank of the first of them, null scores rank last.
            Expr::Rrf { a, b, k } => {
                let k = match rows.first().map(|r| self.eval(k, r)) {
                    Some(Cell::I64(k)) => k as f64,
                    _ => 60.0,
                };
                let rank = |scores: Vec<Cell>, best_high: bool| -> Vec<f64> {
                    let num = |c: &Cell| match c {
                        Cell::F64(x) => Some(if best_high { -*x } else { *x }),
                        _ => None,
                    };
                    scores
                        .iter()
                        .map(|c| {
                            let better = match num(c) {
                                Some(me) => scores
                                    .iter()
                                    .filter(|o| num(o).is_some_and(|x| x < me))
                                    .count(),
                                None => scores.iter().filter(|o| num(o).is_some()).count(),
                            };
                            1.0 / (k + better as f64 + 1.0)
                        })
                        .collect()
                };
                let ra = rank(self.column(plan, a, rows), matches!(**a, Expr::Bm25 { .. }));
                let rb = rank(self.column(plan, b, rows), matches!(**b, Expr::Bm25 { .. }));
                ra.iter().zip(&rb).map(|(x, y)| Cell::F64(x + y)).collect()
            }
            Expr::Bm25 {
                var,
                property,
                query,
            } => {
                let q = rows
                    .first()
                    .map(|b| text_of(&self.eval(query, b)))
                    .unwrap_or_default();
                let ty = Self::var_type(plan, var).unwrap_or_default();
                let docs: Vec<Vec<String>> = rows
                    .iter()
                    .map(|b| words(&text_of(&self.prop(b, var, property))))
                    .collect();
                self.bm25(ty, property, &q, &docs)
                    .into_iter()
                    .map(Cell::F64)
                    .collect()
            }
            Expr::Nearest {
                var,
                property,
                query,
            } => rows
                .iter()
                .map(
                    |b| match (self.prop(b, var, property), self.eval(query, b)) {
                        // Text: the mock provider's vector of it (cosine
                        // ignores its length).
                        (Cell::Vector(a), Cell::Str(text)) => {
                            let q = omnigraph::embed::mock_vector(&text, a.len());
                            Cell::F64(cosine(&a, &q))
                        }
                        (Cell::Vector(a), Cell::Vector(q)) => Cell::F64(cosine(&a, &q)),
                        _ => Cell::Null,
                    },
                )
                .collect(),
            _ => rows.iter().map(|b| self.eval(e, b)).collect(),
        }
    }

    fn node_json(&self, b: &OBinding, var: &str, cat: &Catalog) -> Json {
        let Some(e) = b.get(var) else {
            return Json::Null;
        };
        let r = self.row(e);
        let mut m = Map::new();
        m.insert("id".into(), Json::from(r.id.clone()));
        let props = if e.edge {
            cat.edge(&e.ty).map(|t| t.properties.clone())
        } else {
            cat.node(&e.ty).map(|t| t.properties.clone())
        };
        for p in props.unwrap_or_default() {
            match r.props.get(&p.name) {
                Some(Cell::Null) | None => {}
                Some(_) if p.ty.is_blob() => {}
                Some(c) => {
                    m.insert(p.name.clone(), cell_json(c));
                }
            }
        }
        Json::Object(m)
    }

    fn aggregate(func: AggFunc, vals: &[Cell]) -> Cell {
        let present: Vec<&Cell> = vals.iter().filter(|c| **c != Cell::Null).collect();
        let ints = present
            .iter()
            .all(|c| matches!(c, Cell::I32(_) | Cell::I64(_) | Cell::U32(_) | Cell::U64(_)));
        let total: f64 = present.iter().filter_map(|c| num(c)).sum();
        let pick = |want: Ordering| {
            present
                .iter()
                .copied()
                .reduce(|a, b| if ocmp(b, a) == Some(want) { b } else { a })
                .cloned()
                .unwrap_or(Cell::Null)
        };
        match func {
            AggFunc::Count => Cell::I64(present.len() as i64),
            AggFunc::Sum if ints => Cell::I64(total as i64),
            AggFunc::Sum => Cell::F64(total),
            AggFunc::Avg if present.is_empty() => Cell::Null,
            AggFunc::Avg => Cell::F64(total / present.len() as f64),
            AggFunc::Min => pick(Ordering::Less),
            AggFunc::Max => pick(Ordering::Greater),
        }
    }

    /// The query's rows as JSON objects, in the engine's documented order:
    /// the match block as written ([`Oracle::match_ast`]), then the checked
    /// projections, grouping, order and limit.
    fn answer(&self, w: &Written, plan: &ReadPlan, cat: &Catalog) -> Vec<Map<String, Json>> {
        let rows = self.match_ast(w, &w.read.clauses, vec![OBinding::new()]);
        let nulls_first = |a: &Cell, b: &Cell| match (a == &Cell::Null, b == &Cell::Null) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Less,
            (false, true) => Ordering::Greater,
            _ => ocmp(a, b).unwrap_or(Ordering::Equal),
        };
        // (cells, json, order keys, tie ids)
        let mut outs: Vec<(Vec<Cell>, Vec<Json>, Vec<Cell>, Vec<String>)> = Vec::new();
        if let Some(group) = &plan.group_by {
            let keys: Vec<Vec<Cell>> = group
                .iter()
                .map(|&i| self.column(plan, &plan.projections[i].expr, &rows))
                .collect();
            let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for r in 0..rows.len() {
                let k: Vec<Json> = keys.iter().map(|col| cell_json(&col[r])).collect();
                groups
                    .entry(serde_json::to_string(&k).expect("key"))
                    .or_default()
                    .push(r);
            }
            if groups.is_empty() && group.is_empty() {
                groups.insert(String::new(), Vec::new());
            }
            for members in groups.values() {
                let sub: Vec<OBinding> = members.iter().map(|&i| rows[i].clone()).collect();
                let mut cells = Vec::new();
                let mut js = Vec::new();
                for p in &plan.projections {
                    let c = match &p.expr {
                        Expr::Aggregate { func, arg } => {
                            let vals = self.column(plan, arg, &sub);
                            Self::aggregate(*func, &vals)
                        }
                        other => sub.first().map_or(Cell::Null, |b| {
                            self.column(plan, other, std::slice::from_ref(b)).remove(0)
                        }),
                    };
                    js.push(match &p.expr {
                        Expr::Node { var } => sub
                            .first()
                            .map_or(Json::Null, |b| self.node_json(b, var, cat)),
                        _ => cell_json(&c),
                    });
                    cells.push(c);
                }
                let order: Vec<Cell> = plan
                    .order
                    .iter()
                    .map(|k| match &k.expr {
                        Expr::Alias { index, .. } => cells[*index].clone(),
                        e => plan
                            .projections
                            .iter()
                            .position(|p| p.expr == *e)
                            .map_or(Cell::Null, |i| cells[i].clone()),
                    })
                    .collect();
                outs.push((cells, js, order, Vec::new()));
            }
        } else {
            let cols: Vec<Vec<Cell>> = plan
                .projections
                .iter()
                .map(|p| self.column(plan, &p.expr, &rows))
                .collect();
            let ocols: Vec<Option<Vec<Cell>>> = plan
                .order
                .iter()
                .map(|k| match &k.expr {
                    Expr::Alias { .. } => None,
                    e => Some(self.column(plan, e, &rows)),
                })
                .collect();
            for (r, b) in rows.iter().enumerate() {
                let cells: Vec<Cell> = cols.iter().map(|c| c[r].clone()).collect();
                let js = plan
                    .projections
                    .iter()
                    .zip(&cells)
                    .map(|(p, c)| match &p.expr {
                        Expr::Node { var } => self.node_json(b, var, cat),
                        _ => cell_json(c),
                    })
                    .collect();
                let order = plan
                    .order
                    .iter()
                    .zip(&ocols)
                    .map(|(k, col)| match (&k.expr, col) {
                        (Expr::Alias { index, .. }, _) => cells[*index].clone(),
                        (_, Some(col)) => col[r].clone(),
                        _ => Cell::Null,
                    })
                    .collect();
                let ids = plan
                    .variables
                    .iter()
                    .map(|(v, _)| b.get(v).map(|e| self.row(e).id.clone()).unwrap_or_default())
                    .collect();
                outs.push((cells, js, order, ids));
            }
        }
        if !plan.order.is_empty() || plan.group_by.is_none() {
            outs.sort_by(|a, b| {
                for (i, k) in plan.order.iter().enumerate() {
                    let o = nulls_first(&a.2[i], &b.2[i]);
                    let o = if k.descending { o.reverse() } else { o };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                a.3.cmp(&b.3)
            });
        }
        let limit = match &plan.limit {
            Some(e) => num(&self.eval(e, &OBinding::new())).map_or(usize::MAX, |n| n as usize),
            None => usize::MAX,
        };
        outs.into_iter()
            .take(limit)
            .map(|(_, js, _, _)| {
                plan.projections
                    .iter()
                    .zip(js)
                    .map(|(p, j)| (p.name.clone(), j))
                    .collect()
            })
            .collect()
    }
}

/// Node and edge variable → type, read from the match block as written
/// (bindings name their type; a traversal's ends take its edge's endpoint
/// types unless a binding says otherwise), including `not { }` blocks.
fn ast_var_types(cat: &Catalog, clauses: &[ClauseAst], out: &mut HashMap<String, String>) {
    for c in clauses {
        match c {
            ClauseAst::Binding { var, ty, .. } => {
                out.insert(var.name.clone(), ty.name.clone());
            }
            ClauseAst::Traversal {
                src,
                edge_var,
                edge,
                dst,
                ..
            } => {
                if let Some(e) = cat.edge_ci(&edge.name) {
                    out.entry(src.name.clone()).or_insert(e.from.clone());
                    out.entry(dst.name.clone()).or_insert(e.to.clone());
                    if let Some(ev) = edge_var {
                        out.insert(ev.name.clone(), e.name.clone());
                    }
                }
            }
            ClauseAst::Not { clauses, .. } => ast_var_types(cat, clauses, out),
            ClauseAst::Filter { .. } => {}
        }
    }
}

/// The read body of query `name` in `file`, as parsed (not checked).
fn read_ast<'f>(file: &'f QueryFile, name: &str) -> (&'f ReadAst, HashSet<String>) {
    let q = file
        .queries
        .iter()
        .find(|q| q.name.name == name)
        .unwrap_or_else(|| panic!("query `{name}` parsed"));
    let BodyAst::Read(r) = &q.body else {
        panic!("`{name}` is a read query")
    };
    (r, q.params.iter().map(|p| p.name.name.clone()).collect())
}

/// Makes a string literal comparable with a date or timestamp on the other
/// side (the language's literal rule: `"2026-01-01"` compared with a
/// `Date`).
fn coerce(l: Cell, r: Cell) -> (Cell, Cell) {
    let parse = |s: &str, scalar: ScalarType| {
        from_json(
            &Json::from(s.to_string()),
            &PropType::Scalar { scalar },
            true,
        )
        .unwrap_or(Cell::Null)
    };
    match (&l, &r) {
        (Cell::Date(_), Cell::Str(s)) => (l.clone(), parse(s, ScalarType::Date)),
        (Cell::DateTime(_), Cell::Str(s)) => (l.clone(), parse(s, ScalarType::DateTime)),
        (Cell::Str(s), Cell::Date(_)) => (parse(s, ScalarType::Date), r.clone()),
        (Cell::Str(s), Cell::DateTime(_)) => (parse(s, ScalarType::DateTime), r.clone()),
        _ => (l, r),
    }
}

/// What the oracle reads of one query as written: its match block, its
/// declared parameters, and its variables' types.
struct Written<'a> {
    cat: &'a Catalog,
    read: &'a ReadAst,
    declared: HashSet<String>,
    types: HashMap<String, String>,
}

impl<'a> Written<'a> {
    /// Query `name` of `file` as written, against `cat`.
    fn of(cat: &'a Catalog, file: &'a QueryFile, name: &str) -> Written<'a> {
        let (read, declared) = read_ast(file, name);
        let mut types = HashMap::new();
        ast_var_types(cat, &read.clauses, &mut types);
        Written {
            cat,
            read,
            declared,
            types,
        }
    }
}

impl Oracle<'_> {
    /// An expression as written, over one binding: a `$name` is the
    /// parameter when the query declares one of that name, else the bound
    /// node's id.
    fn eval_ast(&self, w: &Written, e: &ExprAst, b: &OBinding) -> Cell {
        match e {
            ExprAst::Var(v) if w.declared.contains(&v.name) => {
                self.params.get(&v.name).cloned().unwrap_or(Cell::Null)
            }
            ExprAst::Var(v) => b
                .get(&v.name)
                .map_or(Cell::Null, |e| Cell::Str(self.row(e).id.clone())),
            ExprAst::Prop { var, prop, .. } => self.prop(b, &var.name, &prop.name),
            ExprAst::Str { value, .. } => Cell::Str(value.clone()),
            ExprAst::Int { value, .. } => Cell::I64(*value),
            ExprAst::Float { value, .. } => Cell::F64(*value),
            ExprAst::Bool { value, .. } => Cell::Bool(*value),
            ExprAst::Null { .. } => Cell::Null,
            ExprAst::List { items, .. } => {
                Cell::List(items.iter().map(|i| self.eval_ast(w, i, b)).collect())
            }
            ExprAst::Call { func, args, .. } => match func.name.as_str() {
                "now" => Cell::DateTime(self.now),
                f @ ("search" | "fuzzy" | "match_text") => {
                    let doc = match args.first() {
                        Some(a) => words(&text_of(&self.eval_ast(w, a, b))),
                        None => Vec::new(),
                    };
                    let q = match args.get(1) {
                        Some(a) => words(&text_of(&self.eval_ast(w, a, b))),
                        None => Vec::new(),
                    };
                    let k = match (f, args.get(2)) {
                        ("fuzzy", Some(m)) => {
                            num(&self.eval_ast(w, m, b)).map_or(1, |k| k.max(0.0) as usize)
                        }
                        ("fuzzy", None) => 1,
                        _ => 0,
                    };
                    let hit = |x: &String| doc.iter().any(|d| edits(x, d) <= k);
                    Cell::Bool(
                        !q.is_empty()
                            && if f == "match_text" {
                                q.iter().all(hit)
                            } else {
                                q.iter().any(hit)
                            },
                    )
                }
                _ => Cell::Null,
            },
            ExprAst::Alias(_) => Cell::Null,
        }
    }

    /// Every row of type `ty` as an entity.
    fn ents(&self, ty: &str) -> Vec<Ent> {
        (0..self.rows_of(ty).len())
            .map(|i| Ent {
                edge: false,
                ty: ty.to_string(),
                i,
            })
            .collect()
    }

    /// The bindings the match block as written admits, by generate and
    /// test in the order written: bindings and traversals first (each
    /// extends or checks every binding so far), then the filters, then
    /// each `not { }` (a binding stays when its block admits nothing).
    /// Nothing of the planner: no reordering, no index, no lowered plan.
    fn match_ast(&self, w: &Written, clauses: &[ClauseAst], rows: Vec<OBinding>) -> Vec<OBinding> {
        let mut rows = rows;
        let mut fresh = 0usize;
        // `$_` matches anything, each time anew.
        let mut name = |v: &str| {
            if v == "_" {
                fresh += 1;
                format!("_#{fresh}")
            } else {
                v.to_string()
            }
        };
        for c in clauses {
            rows = match c {
                ClauseAst::Binding { var, ty, props, .. } => {
                    let var = name(&var.name);
                    let mut out = Vec::new();
                    for b in rows {
                        let candidates = match b.get(&var) {
                            Some(e) if e.ty == ty.name && !e.edge => vec![e.clone()],
                            Some(_) => Vec::new(),
                            None => self.ents(&ty.name),
                        };
                        for e in candidates {
                            let mut nb = b.clone();
                            nb.insert(var.clone(), e);
                            let ok = props.iter().all(|(p, x)| {
                                let (l, r) =
                                    coerce(self.prop(&nb, &var, &p.name), self.eval_ast(w, x, &nb));
                                oholds(&l, CmpOp::Eq, &r)
                            });
                            if ok {
                                out.push(nb);
                            }
                        }
                    }
                    out
                }
                ClauseAst::Traversal {
                    src,
                    edge_var,
                    edge,
                    undirected,
                    bounds,
                    dst,
                    ..
                } => {
                    let Some(e) = w.cat.edge_ci(&edge.name) else {
                        return Vec::new();
                    };
                    // (from type, to type, the edge type's name)
                    let et = (e.from.clone(), e.to.clone(), e.name.clone());
                    let (src, dst) = (name(&src.name), name(&dst.name));
                    let src_ty = w.types.get(&src).cloned().unwrap_or(et.0.clone());
                    let dst_ty = w.types.get(&dst).cloned().unwrap_or(et.1.clone());
                    let (min, max) = bounds.as_ref().map_or((1, Some(1)), |h| (h.min, h.max));
                    let mut out = Vec::new();
                    for b in rows {
                        let froms = match b.get(&src) {
                            Some(e) => vec![e.clone()],
                            None => self.ents(&src_ty),
                        };
                        for from in froms {
                            let start = self.row(&from).id.clone();
                            // (the other end's id, the edge row when named)
                            let mut ends: Vec<(String, Option<usize>)> = Vec::new();
                            if let Some(_ev) = edge_var {
                                let edges =
                                    self.seed.edges.get(&et.2).map_or(&[][..], Vec::as_slice);
                                for (i, e) in edges.iter().enumerate() {
                                    if e.src == start {
                                        ends.push((e.dst.clone(), Some(i)));
                                    } else if *undirected && e.dst == start {
                                        ends.push((e.src.clone(), Some(i)));
                                    }
                                }
                            } else {
                                for v in self.reach(&et.2, &start, true, *undirected, min, max) {
                                    ends.push((v, None));
                                }
                            }
                            for (other, edge_row) in ends {
                                let Some(i) =
                                    self.rows_of(&dst_ty).iter().position(|r| r.id == other)
                                else {
                                    continue;
                                };
                                let to = Ent {
                                    edge: false,
                                    ty: dst_ty.clone(),
                                    i,
                                };
                                if b.get(&dst).is_some_and(|t| *t != to) {
                                    continue;
                                }
                                let mut nb = b.clone();
                                nb.insert(src.clone(), from.clone());
                                nb.insert(dst.clone(), to);
                                if let (Some(ev), Some(i)) = (edge_var, edge_row) {
                                    nb.insert(
                                        ev.name.clone(),
                                        Ent {
                                            edge: true,
                                            ty: et.2.clone(),
                                            i,
                                        },
                                    );
                                }
                                out.push(nb);
                            }
                        }
                    }
                    out
                }
                ClauseAst::Filter { .. } | ClauseAst::Not { .. } => rows,
            };
        }
        for c in clauses {
            if let ClauseAst::Filter {
                left, op, right, ..
            } = c
            {
                rows.retain(|b| match (op, right) {
                    (Some((op, _)), Some(r)) => {
                        let (l, r) = coerce(self.eval_ast(w, left, b), self.eval_ast(w, r, b));
                        oholds(&l, *op, &r)
                    }
                    _ => self.eval_ast(w, left, b) == Cell::Bool(true),
                });
            }
        }
        for c in clauses {
            if let ClauseAst::Not { clauses, .. } = c {
                rows.retain(|b| self.match_ast(w, clauses, vec![b.clone()]).is_empty());
            }
        }
        rows
    }
}

fn cell_json(c: &Cell) -> Json {
    match c {
        Cell::DateTime(ms) => Json::from(format_datetime(*ms)),
        other => to_json(other),
    }
}

/// JSON equality with a relative tolerance on numbers.
fn same(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            (x - y).abs() <= 1e-4 * x.abs().max(y.abs()).max(1.0)
        }
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Where each parameter is used: a (node type, property) it is compared
/// with, or a text query against one.
#[derive(Debug, Clone)]
enum Use {
    Value(String, String),
    Text(String, String),
    Vector(String, String),
}

fn param_uses(w: &Written, plan: &ReadPlan) -> HashMap<String, Use> {
    let ty = |var: &str| w.types.get(var).cloned();
    let mut uses = HashMap::new();
    // Projections and order keys: scoring functions over a parameter.
    let expr = |e: &Expr, uses: &mut HashMap<String, Use>| {
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match e {
                Expr::TextMatch {
                    var,
                    property,
                    query,
                    ..
                }
                | Expr::Bm25 {
                    var,
                    property,
                    query,
                } => {
                    if let (Expr::Param { name }, Some(t)) = (query.as_ref(), ty(var)) {
                        uses.entry(name.clone())
                            .or_insert(Use::Text(t, property.clone()));
                    }
                }
                Expr::Nearest {
                    var,
                    property,
                    query,
                } => {
                    if let (Expr::Param { name }, Some(t)) = (query.as_ref(), ty(var)) {
                        uses.entry(name.clone())
                            .or_insert(Use::Vector(t, property.clone()));
                    }
                }
                Expr::Rrf { a, b, .. } => {
                    stack.push(a);
                    stack.push(b);
                }
                _ => {}
            }
        }
    };
    // The match block as written: a parameter compared with a property,
    // or searched for in one.
    fn walk(w: &Written, clauses: &[ClauseAst], uses: &mut HashMap<String, Use>) {
        let param = |e: &ExprAst| match e {
            ExprAst::Var(v) if w.declared.contains(&v.name) => Some(v.name.clone()),
            _ => None,
        };
        let prop_of = |e: &ExprAst| match e {
            ExprAst::Prop { var, prop, .. } => w
                .types
                .get(&var.name)
                .map(|t| (t.clone(), prop.name.clone())),
            _ => None,
        };
        for c in clauses {
            match c {
                ClauseAst::Binding { ty, props, .. } => {
                    for (p, e) in props {
                        if let Some(name) = param(e) {
                            uses.entry(name)
                                .or_insert(Use::Value(ty.name.clone(), p.name.clone()));
                        }
                    }
                }
                ClauseAst::Filter {
                    left,
                    right: Some(right),
                    ..
                } => {
                    if let (Some((t, p)), Some(name)) = (prop_of(left), param(right)) {
                        uses.entry(name).or_insert(Use::Value(t, p));
                    }
                }
                ClauseAst::Filter {
                    left: ExprAst::Call { func, args, .. },
                    right: None,
                    ..
                } if matches!(func.name.as_str(), "search" | "fuzzy" | "match_text") => {
                    if let (Some((t, p)), Some(name)) =
                        (args.first().and_then(prop_of), args.get(1).and_then(param))
                    {
                        uses.entry(name).or_insert(Use::Text(t, p));
                    }
                }
                ClauseAst::Not { clauses, .. } => walk(w, clauses, uses),
                _ => {}
            }
        }
    }
    walk(w, &w.read.clauses, &mut uses);
    for p in &plan.projections {
        expr(&p.expr, &mut uses);
    }
    for o in &plan.order {
        expr(&o.expr, &mut uses);
    }
    uses
}

/// Parameter sets for a query: for each pick (first, middle, last seed row
/// of the type a parameter is compared with), a value from that row.
fn param_sets(
    q: &CheckedQuery,
    w: &Written,
    plan: &ReadPlan,
    seed: &Seed,
    cat: &Catalog,
) -> Vec<(Json, HashMap<String, Cell>)> {
    let uses = param_uses(w, plan);
    let mut sets = Vec::new();
    for pick in 0..3usize {
        let mut js = Map::new();
        let mut cells = HashMap::new();
        for p in &q.params {
            let from_rows = |ty: &str, prop: &str| -> Option<Cell> {
                let vals: Vec<Cell> = seed
                    .nodes
                    .get(ty)?
                    .iter()
                    .map(|r| {
                        if prop == "id" {
                            Cell::Str(r.id.clone())
                        } else {
                            r.props.get(prop).cloned().unwrap_or(Cell::Null)
                        }
                    })
                    .filter(|c| *c != Cell::Null)
                    .collect();
                let i = [0, vals.len() / 2, vals.len().saturating_sub(1)][pick];
                vals.get(i).cloned()
            };
            let cell = match uses.get(&p.name) {
                Some(Use::Value(t, prop)) => from_rows(t, prop).map(|c| match (&p.ty, c) {
                    // A list parameter compared with a scalar: a one-item list.
                    (PropType::List { .. }, c @ Cell::List(_)) => c,
                    (PropType::List { .. }, c) => Cell::List(vec![c]),
                    (_, Cell::List(items)) => items.into_iter().next().unwrap_or(Cell::Null),
                    (_, c) => c,
                }),
                Some(Use::Text(t, prop)) => from_rows(t, prop)
                    .and_then(|c| words(&text_of(&c)).into_iter().next())
                    .map(Cell::Str),
                // A String parameter of `nearest`: a few words of the
                // vector's `@embed` source text.
                Some(Use::Vector(t, prop)) if p.ty.is_textual() => cat
                    .node(t)
                    .and_then(|n| n.properties.iter().find(|x| &x.name == prop))
                    .and_then(|x| x.embed.as_ref())
                    .and_then(|e| from_rows(t, &e.source))
                    .map(|c| {
                        Cell::Str(
                            words(&text_of(&c))
                                .into_iter()
                                .take(3)
                                .collect::<Vec<_>>()
                                .join(" "),
                        )
                    }),
                Some(Use::Vector(t, prop)) => from_rows(t, prop),
                None => match &p.ty {
                    PropType::Scalar {
                        scalar:
                            ScalarType::I32 | ScalarType::I64 | ScalarType::U32 | ScalarType::U64,
                    } => Some(Cell::I64([3, 1, 10][pick])),
                    _ => None,
                },
            };
            match cell {
                Some(c) => {
                    js.insert(p.name.clone(), cell_json(&c));
                    cells.insert(p.name.clone(), c);
                }
                None if p.optional => {}
                None => return Vec::new(),
            }
        }
        sets.push((Json::Object(js), cells));
    }
    sets
}

/// A fresh graph under `dir` with `schema`, loaded with `jsonl`, and the
/// oracle's own reading of the same file.
fn loaded(rt: &tokio::runtime::Runtime, dir: &Path, schema: &str, jsonl: &str) -> (Graph, Seed) {
    // The mock embedding provider: `@embed` vectors are filled at load and
    // `nearest($v, "text")` embeds its text.
    let graph = rt
        .block_on(Graph::init(
            dir.join("g").to_str().expect("utf8"),
            "schema.pg",
            schema,
        ))
        .expect("init")
        .with_embedding(omnigraph::embed::EmbeddingConfig::mock());
    let extra = embedded_rows(&graph.catalog(), jsonl);
    let all = format!("{jsonl}\n{extra}");
    rt.block_on(graph.load(
        std::io::Cursor::new(all.as_bytes().to_vec()),
        LoadMode::Overwrite,
        "main",
        None,
        "oracle",
    ))
    .expect("load");
    // The oracle reads what the engine stored (the filled vectors too).
    let stored = if extra.is_empty() {
        jsonl.to_string()
    } else {
        rt.block_on(crate::support::export_sorted(
            &graph,
            &ReadAt::Branch("main".into()),
        ))
        .join("\n")
    };
    let seed = read_seed(&graph.catalog(), &stored);
    (graph, seed)
}

/// The engine's rows equal the oracle's, in order, numbers within 1e-4.
fn assert_same_rows(label: &str, got: &[Map<String, Json>], want: &[Map<String, Json>]) {
    let equal = got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(a, b)| same(&Json::Object(a.clone()), &Json::Object(b.clone())));
    assert!(
        equal,
        "{label}\nengine ({} rows): {}\noracle ({} rows): {}",
        got.len(),
        serde_json::to_string_pretty(got).unwrap_or_default(),
        want.len(),
        serde_json::to_string_pretty(want).unwrap_or_default()
    );
}

#[test]
fn every_cookbook_read_query_matches_the_oracle() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let mut runs = 0usize;
    let mut non_empty = 0usize;
    let mut queries = 0usize;
    let mut skipped: Vec<String> = Vec::new();
    for book in crate::support::cookbooks() {
        let schema = std::fs::read_to_string(book.join("schema.pg")).expect("schema");
        let seed_text = std::fs::read_to_string(book.join("seed.jsonl")).expect("seed");
        let tmp = tempfile::tempdir().expect("tmp");
        let (graph, seed) = loaded(&rt, tmp.path(), &schema, &seed_text);
        let cat = (*graph.catalog()).clone();
        let mut files: Vec<_> = std::fs::read_dir(book.join("queries"))
            .expect("queries dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "gq"))
            .collect();
        files.sort();
        for file in files {
            let src = std::fs::read_to_string(&file).expect("gq");
            let compiled = compile_queries(&cat, &src);
            assert!(
                !compiled.has_errors(),
                "{}: {:#?}",
                file.display(),
                compiled.diagnostics
            );
            let written = parse_queries(&src).expect("parses");
            for q in &compiled.queries {
                let QueryKind::Read(plan) = &q.body else {
                    continue;
                };
                let label = format!("{}::{}", rel(&file), q.name);
                queries += 1;
                let w = Written::of(&cat, &written, &q.name);
                let sets = param_sets(q, &w, plan, &seed, &cat);
                if sets.is_empty() {
                    skipped.push(format!("{label}: no parameter values in the seed"));
                    continue;
                }
                for (pj, pc) in sets {
                    let got = rt.block_on(graph.query(q, &pj, &ReadAt::Branch("main".into())));
                    let got = match got {
                        Ok(r) => r,
                        Err(e) => panic!("{label} with {pj}: {e}"),
                    };
                    let oracle = Oracle {
                        seed: &seed,
                        params: &pc,
                        now: chrono::Utc::now().timestamp_millis(),
                    };
                    let want = oracle.answer(&w, plan, &cat);
                    assert_same_rows(&format!("{label} with params {pj}"), &got.rows, &want);
                    runs += 1;
                    non_empty += usize::from(!want.is_empty());
                }
            }
        }
    }
    eprintln!(
        "cookbook oracle: {queries} read queries, {runs} runs, {non_empty} with rows; skipped: {skipped:#?}"
    );
    assert!(queries > 50, "only {queries} read queries found");
    assert!(
        non_empty * 2 > runs,
        "most runs should return rows: {non_empty}/{runs}"
    );
    assert!(
        skipped.len() * 10 < queries,
        "too many skipped: {skipped:#?}"
    );
}

/// Cosine distance, 1 when either vector has no direction.
fn cosine(a: &[f32], q: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(q)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nq = q.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nq == 0.0 {
        1.0
    } else {
        1.0 - dot / (na * nq)
    }
}

/// Rows for the node types whose `@embed` vector the seed leaves empty
/// (the cookbooks' `Chunk`): a dozen per type, their text taken from the
/// seed's longer strings, each linked where an edge `@card(1..)` requires
/// it to the first seed node of the edge's target. Their vectors are
/// left out: the load fills them (the mock provider).
fn embedded_rows(cat: &Catalog, seed_text: &str) -> String {
    let lines: Vec<Json> = seed_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("seed json"))
        .collect();
    let mut texts: Vec<String> = Vec::new();
    for v in &lines {
        if let Some(d) = v.get("data").and_then(Json::as_object) {
            for x in d.values() {
                if let Some(t) = x.as_str()
                    && t.split_whitespace().count() >= 6
                    && !texts.contains(&t.to_string())
                {
                    texts.push(t.to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    for (name, n) in &cat.nodes {
        let Some(source) = n
            .properties
            .iter()
            .find_map(|p| p.embed.as_ref().map(|e| e.source.clone()))
        else {
            continue;
        };
        if lines.iter().any(|v| v["type"] == name.as_str()) {
            continue;
        }
        for (i, text) in texts.iter().take(12).enumerate() {
            let mut data = serde_json::Map::new();
            data.insert("id".into(), json!(format!("syn-{name}-{i}")));
            for p in &n.properties {
                if p.name == source {
                    data.insert(p.name.clone(), json!(text));
                } else if p.embed.is_none() && p.is_required() {
                    let v = match &p.ty {
                        PropType::Scalar {
                            scalar: ScalarType::DateTime,
                        } => json!("2025-01-01T00:00:00Z"),
                        PropType::Scalar {
                            scalar: ScalarType::Date,
                        } => json!("2025-01-01"),
                        PropType::Scalar {
                            scalar: ScalarType::Bool,
                        } => json!(false),
                        PropType::Scalar {
                            scalar: ScalarType::String,
                        } => json!(format!("{name} {i}")),
                        PropType::Enum { values } => json!(values[0]),
                        PropType::Scalar { .. } => json!(i),
                        other => panic!("no synthetic value for {other:?}"),
                    };
                    data.insert(p.name.clone(), v);
                }
            }
            out.push(json!({"type": name, "data": data}).to_string());
            for e in cat
                .edges
                .values()
                .filter(|e| &e.from == name && e.cardinality.min > 0)
            {
                let target = cat.node(&e.to).expect("edge target");
                let to = lines
                    .iter()
                    .find(|v| v["type"] == e.to.as_str())
                    .and_then(|v| {
                        let d = &v["data"];
                        match &target.key {
                            Some(k) => d[&k[0]].as_str().map(str::to_string),
                            None => d["id"].as_str().map(str::to_string),
                        }
                    })
                    .expect("a seed node to link to");
                out.push(
                    json!({"edge": e.name, "from": format!("syn-{name}-{i}"), "to": to})
                        .to_string(),
                );
            }
        }
    }
    out.join("\n")
}

fn rel(p: &Path) -> String {
    let parts: Vec<_> = p.iter().rev().take(3).collect();
    parts
        .into_iter()
        .rev()
        .map(|s| s.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

const DOCS_SCHEMA: &str = "node Doc {\n  slug: String @key\n  body: String? @index\n  n: I32?\n}\n";

const VOCAB: [&str; 16] = [
    "graph", "graphs", "grape", "lance", "lancer", "index", "indexes", "query", "queries",
    "branch", "brunch", "commit", "vector", "the", "a", "Graph",
];

/// Deterministic documents: bodies of 0–9 words from a vocabulary with
/// near-miss spellings (for `fuzzy`), repeated words (for term frequency)
/// and some null bodies.
fn docs_jsonl(seed: u64, n: usize) -> String {
    let mut x = seed;
    let mut next = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    let mut out = String::new();
    for i in 0..n {
        let words = next() % 10;
        let body: Vec<&str> = (0..words).map(|_| VOCAB[next() % VOCAB.len()]).collect();
        let mut d = json!({"slug": format!("d{i:03}"), "n": (next() % 5) as i32});
        if next() % 7 != 0 {
            d["body"] = Json::from(body.join(if next() % 2 == 0 { " " } else { ", " }));
        }
        out += &json!({"type": "Doc", "data": d}).to_string();
        out.push('\n');
    }
    out
}

/// `search`, `match_text`, `fuzzy` and `bm25` run through Lance's inverted
/// index and must agree with the oracle's definitions of the same tokenizer
/// and BM25.
#[test]
fn full_text_search_matches_the_oracle() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let queries = "
query s($q: String) { match { $d: Doc  search($d.body, $q) } return { $d.slug } }
query m($q: String) { match { $d: Doc  match_text($d.body, $q) } return { $d.slug } }
query f($q: String) { match { $d: Doc  fuzzy($d.body, $q) } return { $d.slug } }
query f2($q: String) { match { $d: Doc  fuzzy($d.body, $q, 2) } return { $d.slug } }
query b($q: String) { match { $d: Doc } return { $d.slug, bm25($d.body, $q) as score } order { score desc } limit 7 }
query sb($q: String) { match { $d: Doc { n: 2 }  search($d.body, $q) } return { $d.slug, bm25($d.body, $q) as score } order { score desc, $d.slug } }
";
    let mut checked = 0;
    for seed in [1u64, 7, 42] {
        let jsonl = docs_jsonl(seed, 80);
        let tmp = tempfile::tempdir().expect("tmp");
        let (graph, seed_rows) = loaded(&rt, tmp.path(), DOCS_SCHEMA, &jsonl);
        let cat = (*graph.catalog()).clone();
        let compiled = compile_queries(&cat, queries);
        assert!(!compiled.has_errors(), "{:#?}", compiled.diagnostics);
        let written = parse_queries(queries).expect("parses");
        for text in [
            "graph",
            "GRAPH lance",
            "grapes",
            "indexs queries",
            "brnch",
            "the vector",
            "zzz",
            "a",
        ] {
            for q in &compiled.queries {
                let QueryKind::Read(plan) = &q.body else {
                    continue;
                };
                let params = HashMap::from([("q".to_string(), Cell::Str(text.to_string()))]);
                let got = rt
                    .block_on(graph.query(q, &json!({"q": text}), &ReadAt::Branch("main".into())))
                    .unwrap_or_else(|e| panic!("{} {text:?}: {e}", q.name));
                let oracle = Oracle {
                    seed: &seed_rows,
                    params: &params,
                    now: 0,
                };
                let want = oracle.answer(&Written::of(&cat, &written, &q.name), plan, &cat);
                assert_same_rows(
                    &format!("seed {seed}, query {} with {text:?}", q.name),
                    &got.rows,
                    &want,
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 8 * 6);
}
