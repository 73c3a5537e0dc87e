//! Running `.gq` mutation queries: every statement accumulates in memory
//! (later statements see earlier ones), then each touched table gets one
//! Lance commit and the whole query publishes one graph commit.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::Value as Json;

use super::load::{self, Existing, Row, Staged};
use super::values::{Cell, format_datetime, from_json, key_string, to_json};
use super::{
    EngineError, Graph, Prepared, PreparedWrite, TableKey, TableKind, TableWrite, View,
    WriteReport, edge_key, node_key,
};
use crate::query::ast::CmpOp;
use crate::query::ir::{
    CheckedQuery, Expr, LiteralValue, MutationOp, Predicate, QueryKind, TargetKind,
};
use crate::schema::{PropType, Property};

/// Compiles a request's `.gq` source against `catalog` and picks the
/// query named `name`, or the only one it declares. Errors
/// ([`EngineError::Source`], a 400 on the wire): the source does not check
/// (the rendered diagnostics, positions in `<request>`), `name` is not
/// declared (the names it does declare), or the source declares several
/// and `name` is missing.
pub fn compile_request(
    catalog: &crate::schema::Catalog,
    src: &str,
    name: Option<&str>,
) -> Result<CheckedQuery, EngineError> {
    let (compiled, diags) = crate::query::compile_queries_file(catalog, "<request>", src);
    if compiled.has_errors() {
        return Err(EngineError::Source {
            reason: format!("the query does not check:\n{}", diags.render(false)),
        });
    }
    match name {
        Some(n) => compiled
            .query(n)
            .cloned()
            .ok_or_else(|| EngineError::Source {
                reason: format!(
                    "no query named `{n}` in the source; it declares: {}",
                    compiled.declared.join(", ")
                ),
            }),
        None => match compiled.queries.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(EngineError::Source {
                reason: format!(
                    "the source declares {} queries; pick one with `name` ({})",
                    compiled.queries.len(),
                    compiled.declared.join(", ")
                ),
            }),
        },
    }
}

/// Binds a query's parameters from a JSON object: every required parameter
/// present, every value of its declared type, no undeclared names.
pub fn bind_params(q: &CheckedQuery, params: &Json) -> Result<HashMap<String, Cell>, EngineError> {
    let empty = serde_json::Map::new();
    let obj = match params {
        Json::Null => &empty,
        Json::Object(m) => m,
        _ => {
            return Err(EngineError::Param {
                name: "params".into(),
                reason: "parameters must be a JSON object".into(),
            });
        }
    };
    for k in obj.keys() {
        if !q.params.iter().any(|p| &p.name == k) {
            let names: Vec<String> = q.params.iter().map(|p| p.name.clone()).collect();
            return Err(EngineError::Param {
                name: k.clone(),
                reason: format!(
                    "`{}` declares no such parameter; {}",
                    q.name,
                    crate::diag::valid_list("parameters", names.iter().map(String::as_str))
                ),
            });
        }
    }
    let mut out = HashMap::new();
    for p in &q.params {
        let v = obj.get(&p.name).unwrap_or(&Json::Null);
        if v.is_null() && !p.optional {
            return Err(EngineError::Param {
                name: p.name.clone(),
                reason: format!("missing required parameter of type {}", p.ty),
            });
        }
        let cell = from_json(v, &p.ty, p.optional).map_err(|reason| EngineError::Param {
            name: p.name.clone(),
            reason,
        })?;
        out.insert(p.name.clone(), cell);
    }
    Ok(out)
}

/// Evaluates a mutation value to JSON (then typed by its target).
fn eval(e: &Expr, params: &HashMap<String, Cell>, now: i64) -> Json {
    match e {
        Expr::Literal { value } => literal_json(value),
        Expr::Param { name } => params.get(name).map_or(Json::Null, to_json),
        Expr::Now => Json::from(format_datetime(now)),
        Expr::List { items } => Json::Array(items.iter().map(|i| eval(i, params, now)).collect()),
        _ => Json::Null,
    }
}

fn literal_json(v: &LiteralValue) -> Json {
    match v {
        LiteralValue::Null => Json::Null,
        LiteralValue::Bool(b) => Json::from(*b),
        LiteralValue::Int(i) => Json::from(*i),
        LiteralValue::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        LiteralValue::String(s) => Json::from(s.clone()),
        LiteralValue::Date(d) => to_json(&Cell::Date(*d)),
        LiteralValue::DateTime(ms) => to_json(&Cell::DateTime(*ms)),
        LiteralValue::List(items) => Json::Array(items.iter().map(literal_json).collect()),
    }
}

/// Orders two cells of compatible types (numbers across widths).
fn cmp_cells(a: &Cell, b: &Cell) -> Option<Ordering> {
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
    match (a, b) {
        (Cell::I64(x), Cell::I64(y)) => Some(x.cmp(y)),
        (Cell::U64(x), Cell::U64(y)) => Some(x.cmp(y)),
        (Cell::Str(x), Cell::Str(y)) => Some(x.cmp(y)),
        (Cell::Bool(x), Cell::Bool(y)) => Some(x.cmp(y)),
        (Cell::Date(x), Cell::Date(y)) => Some(x.cmp(y)),
        (Cell::DateTime(x), Cell::DateTime(y)) => Some(x.cmp(y)),
        (Cell::List(x), Cell::List(y)) => (x == y).then_some(Ordering::Equal),
        _ => num(a)?.partial_cmp(&num(b)?),
    }
}

/// Does `left op right` hold? Null never matches, except `= null` /
/// `!= null`.
pub fn holds(left: &Cell, op: CmpOp, right: &Cell) -> bool {
    if *right == Cell::Null {
        return match op {
            CmpOp::Eq => *left == Cell::Null,
            CmpOp::Ne => *left != Cell::Null,
            _ => false,
        };
    }
    if *left == Cell::Null {
        return false;
    }
    match op {
        CmpOp::Contains => match (left, right) {
            (Cell::List(items), x) => items
                .iter()
                .any(|i| cmp_cells(i, x) == Some(Ordering::Equal)),
            (Cell::Str(s), Cell::Str(n)) => s.contains(n.as_str()),
            _ => false,
        },
        CmpOp::StartsWith => {
            matches!((left, right), (Cell::Str(s), Cell::Str(n)) if s.starts_with(n.as_str()))
        }
        _ => match cmp_cells(left, right) {
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

/// The mutable state of one mutation query before it commits.
struct Pending<'g> {
    graph: &'g Graph,
    view: View,
    /// Stored rows per table, read once.
    stored: HashMap<TableKey, Vec<Row>>,
    /// Rows to upsert per table, by id.
    upserts: BTreeMap<TableKey, BTreeMap<String, Row>>,
    /// Ids to delete per table.
    deletes: BTreeMap<TableKey, BTreeSet<String>>,
}

impl<'g> Pending<'g> {
    async fn stored(&mut self, key: &TableKey) -> Result<&Vec<Row>, EngineError> {
        if !self.stored.contains_key(key) {
            let rows = match self.view.tables.get(key) {
                Some(r) => self.graph.read_rows(key, r).await?,
                None => Vec::new(),
            };
            self.stored.insert(key.clone(), rows);
        }
        Ok(&self.stored[key])
    }

    /// Rows visible to a later statement: stored, overlaid by upserts,
    /// minus deletes.
    async fn visible(&mut self, key: &TableKey) -> Result<Vec<Row>, EngineError> {
        let stored = self.stored(key).await?.clone();
        let ups = self.upserts.get(key).cloned().unwrap_or_default();
        let dels = self.deletes.get(key).cloned().unwrap_or_default();
        let mut out: Vec<Row> = stored
            .into_iter()
            .filter(|r| !dels.contains(&r.id))
            .map(|r| ups.get(&r.id).cloned().unwrap_or(r))
            .collect();
        let have: HashSet<String> = out.iter().map(|r| r.id.clone()).collect();
        out.extend(ups.into_values().filter(|r| !have.contains(&r.id)));
        Ok(out)
    }
}

fn prop_cell(p: &Property, v: &Json) -> Result<Cell, EngineError> {
    from_json(v, &p.ty, p.nullable).map_err(|reason| EngineError::Param {
        name: p.name.clone(),
        reason,
    })
}

/// The value a predicate compares against, typed like its property.
fn predicate_value(
    props: &[Property],
    pred: &Predicate,
    params: &HashMap<String, Cell>,
    now: i64,
) -> Result<Cell, EngineError> {
    let v = eval(&pred.value, params, now);
    match props.iter().find(|p| p.name == pred.property) {
        Some(p) => {
            // `contains` on a list compares with one item.
            let ty = match (&p.ty, pred.op) {
                (PropType::List { item }, CmpOp::Contains) => PropType::scalar(*item),
                (t, _) => t.clone(),
            };
            from_json(&v, &ty, true).map_err(|reason| EngineError::Param {
                name: pred.property.clone(),
                reason,
            })
        }
        None => Ok(match v {
            Json::String(s) => Cell::Str(s),
            Json::Null => Cell::Null,
            other => Cell::Str(other.to_string()),
        }),
    }
}

fn row_value(props: &[Property], row: &Row, name: &str) -> Cell {
    match name {
        "id" => Cell::Str(row.id.clone()),
        "src" => row.src.clone().map_or(Cell::Null, Cell::Str),
        "dst" => row.dst.clone().map_or(Cell::Null, Cell::Str),
        _ => props
            .iter()
            .position(|p| p.name == name)
            .map_or(Cell::Null, |i| row.cells[i].clone()),
    }
}

impl Graph {
    /// Runs a checked mutation query on `branch` as one commit. A query whose
    /// updates and deletes match nothing (and inserts nothing) publishes
    /// nothing and says so. Prepared ([`Graph::prepare_mutation`]) and
    /// committed ([`Graph::commit_prepared`]), prepared again when the
    /// commit finds what it read has changed.
    pub async fn mutate(
        &self,
        q: &CheckedQuery,
        params: &Json,
        branch: &str,
        actor: &str,
    ) -> Result<WriteReport, EngineError> {
        // The vectors the first preparation embedded, reused when the
        // commit step prepares the write again (inside its commit turn,
        // where no provider call may wait).
        let memo = super::embedding::EmbedMemo::default();
        let redo = {
            let (q, params, b, a) = (
                q.clone(),
                params.clone(),
                branch.to_string(),
                actor.to_string(),
            );
            super::Redo::new(move |g: Graph| {
                let (q, params, b, a, memo) = (
                    q.clone(),
                    params.clone(),
                    b.clone(),
                    a.clone(),
                    memo.clone(),
                );
                Box::pin(async move { g.prepare_mutation_with(&q, &params, &b, &a, &memo).await })
            })
        };
        self.write_prepared_by(redo).await
    }

    /// Evaluates a mutation against `branch`'s head and stages its table
    /// changes without committing them: nothing becomes visible. Errors:
    /// a read query, bad parameters, rows that break the schema's
    /// constraints, policy.
    pub async fn prepare_mutation(
        &self,
        q: &CheckedQuery,
        params: &Json,
        branch: &str,
        actor: &str,
    ) -> Result<Prepared, EngineError> {
        self.prepare_mutation_with(q, params, branch, actor, &Default::default())
            .await
    }

    /// [`Graph::prepare_mutation`], taking `@embed` vectors of texts
    /// already embedded from `memo` and adding the ones it embeds.
    pub(crate) async fn prepare_mutation_with(
        &self,
        q: &CheckedQuery,
        params: &Json,
        branch: &str,
        actor: &str,
        memo: &super::embedding::EmbedMemo,
    ) -> Result<Prepared, EngineError> {
        let QueryKind::Mutation(plan) = &q.body else {
            return Err(EngineError::Param {
                name: q.name.clone(),
                reason: "is a read query; run it with `omnigraph query`".into(),
            });
        };
        self.authorize(actor, crate::policy::Action::Change, branch)?;
        let params = bind_params(q, params)?;
        let catalog = self.catalog();
        let now = super::now_ms();
        let m = self.manifest().await?;
        let (view, target) = self.branch_view(&m, branch)?;
        if let Some(want) = &self.expect_head {
            Self::require_head(&m, branch, want)?;
        }
        let mut st = Pending {
            graph: self,
            view: view.clone(),
            stored: HashMap::new(),
            upserts: BTreeMap::new(),
            deletes: BTreeMap::new(),
        };
        let mut errors = Vec::new();
        // The `@embed` vectors this mutation must fill: (table, row id,
        // vector position) of inserts that left them out and updates that
        // set their source text; no other null vector is touched.
        let mut to_embed: HashSet<(TableKey, String, usize)> = HashSet::new();
        for s in &plan.statements {
            match s {
                MutationOp::Insert {
                    kind,
                    type_name,
                    values,
                    from,
                    to,
                } => {
                    let (key, props) = self.target(*kind, type_name);
                    let given: HashMap<&str, Json> = values
                        .iter()
                        .map(|(k, e)| (k.as_str(), eval(e, &params, now)))
                        .collect();
                    let mut cells = Vec::with_capacity(props.len());
                    for p in &props {
                        let cell = match given.get(p.name.as_str()) {
                            Some(v) => prop_cell(p, v)?,
                            // Filled from its source text below.
                            None if p.embed.is_some() => Cell::Null,
                            None => match &p.default {
                                Some(d) => super::values::default_cell(p, d),
                                None if p.nullable => Cell::Null,
                                None => {
                                    return Err(EngineError::Param {
                                        name: p.name.clone(),
                                        reason: format!("`{type_name}` requires `{}`", p.name),
                                    });
                                }
                            },
                        };
                        cells.push(cell);
                    }
                    let row = match kind {
                        TargetKind::Node => {
                            let n = catalog.node(type_name).ok_or_else(|| EngineError::Param {
                                name: type_name.clone(),
                                reason: "unknown node type".into(),
                            })?;
                            let checks = load::compiled_checks(n);
                            load::check_constraints(0, n, &cells, &checks, &mut errors);
                            let id = load::node_id(n, &cells)
                                .unwrap_or_else(|| ulid::Ulid::new().to_string());
                            Row {
                                id,
                                src: None,
                                dst: None,
                                cells,
                                line: 0,
                            }
                        }
                        TargetKind::Edge => {
                            let end = |e: &Option<Expr>| {
                                e.as_ref().map(|x| key_string_json(&eval(x, &params, now)))
                            };
                            Row {
                                id: ulid::Ulid::new().to_string(),
                                src: end(from),
                                dst: end(to),
                                cells,
                                line: 0,
                            }
                        }
                    };
                    for t in super::embedding::embed_targets(&props) {
                        if !given.contains_key(t.name.as_str()) {
                            to_embed.insert((key.clone(), row.id.clone(), t.vector));
                        }
                    }
                    st.upserts
                        .entry(key)
                        .or_default()
                        .insert(row.id.clone(), row);
                }
                MutationOp::Update {
                    kind,
                    type_name,
                    set,
                    predicate,
                } => {
                    let (key, props) = self.target(*kind, type_name);
                    let target = predicate_value(&props, predicate, &params, now)?;
                    let mut changes = Vec::new();
                    for (name, e) in set {
                        let Some(i) = props.iter().position(|p| &p.name == name) else {
                            continue;
                        };
                        changes.push((i, prop_cell(&props[i], &eval(e, &params, now))?));
                    }
                    // New source text without a new vector: the vector is
                    // embedded again below.
                    let reembed: Vec<usize> = super::embedding::embed_targets(&props)
                        .into_iter()
                        .filter(|t| {
                            set.iter().any(|(n, _)| *n == t.source_name)
                                && !set.iter().any(|(n, _)| *n == t.name)
                        })
                        .map(|t| t.vector)
                        .collect();
                    for v in &reembed {
                        changes.push((*v, Cell::Null));
                    }
                    for mut row in st.visible(&key).await? {
                        if !holds(
                            &row_value(&props, &row, &predicate.property),
                            predicate.op,
                            &target,
                        ) {
                            continue;
                        }
                        for (i, c) in &changes {
                            row.cells[*i] = c.clone();
                        }
                        for v in &reembed {
                            to_embed.insert((key.clone(), row.id.clone(), *v));
                        }
                        if let Some(n) = catalog.node(type_name) {
                            let checks = load::compiled_checks(n);
                            load::check_constraints(0, n, &row.cells, &checks, &mut errors);
                        }
                        st.upserts
                            .entry(key.clone())
                            .or_default()
                            .insert(row.id.clone(), row);
                    }
                }
                MutationOp::Delete {
                    kind,
                    type_name,
                    predicate,
                } => {
                    let (key, props) = self.target(*kind, type_name);
                    let target = predicate_value(&props, predicate, &params, now)?;
                    let ids: BTreeSet<String> = st
                        .visible(&key)
                        .await?
                        .into_iter()
                        .filter(|r| {
                            holds(
                                &row_value(&props, r, &predicate.property),
                                predicate.op,
                                &target,
                            )
                        })
                        .map(|r| r.id)
                        .collect();
                    if ids.is_empty() {
                        continue;
                    }
                    if *kind == TargetKind::Node {
                        // Cascade: edges with a deleted endpoint go too.
                        let incident: Vec<(String, bool, bool)> = catalog
                            .edges
                            .values()
                            .filter(|e| &e.from == type_name || &e.to == type_name)
                            .map(|e| (e.name.clone(), &e.from == type_name, &e.to == type_name))
                            .collect();
                        for (edge, by_src, by_dst) in incident {
                            let ek = edge_key(&edge);
                            let gone: Vec<String> = st
                                .visible(&ek)
                                .await?
                                .into_iter()
                                .filter(|r| {
                                    (by_src && r.src.as_ref().is_some_and(|s| ids.contains(s)))
                                        || (by_dst
                                            && r.dst.as_ref().is_some_and(|d| ids.contains(d)))
                                })
                                .map(|r| r.id)
                                .collect();
                            st.deletes.entry(ek).or_default().extend(gone);
                        }
                    }
                    st.deletes.entry(key).or_default().extend(ids);
                }
            }
        }
        if !errors.is_empty() {
            return Err(EngineError::Load { errors });
        }
        // `@embed` vectors inserted without a value or whose source text
        // changed: one batched call per property, before anything is
        // staged.
        for (key, rows) in st.upserts.iter_mut() {
            let only: HashSet<(String, usize)> = to_embed
                .iter()
                .filter(|(k, _, _)| k == key)
                .map(|(_, id, v)| (id.clone(), *v))
                .collect();
            if only.is_empty() {
                continue;
            }
            let props = self.props(key);
            let mut refs: Vec<&mut Row> = rows.values_mut().collect();
            self.fill_embeddings(key.name(), &props, &mut refs, Some(memo), Some(&only))
                .await?;
        }
        st.deletes.retain(|_, v| !v.is_empty());
        if st.upserts.is_empty() && st.deletes.is_empty() {
            return Ok(Prepared::Nothing(WriteReport {
                commit: None,
                manifest_version: None,
                written: BTreeMap::new(),
                deleted: BTreeMap::new(),
                message: format!("`{}` matched no rows; nothing was published", q.name),
            }));
        }
        // Graph-level checks on the rows this query writes.
        let mut staged = Staged::default();
        for (key, rows) in &st.upserts {
            let rows: Vec<Row> = rows.values().cloned().collect();
            match key.kind() {
                TableKind::Edge => staged.edges.insert(key.name().to_string(), rows),
                TableKind::Node => staged.nodes.insert(key.name().to_string(), rows),
            };
        }
        let mut existing = Existing::default();
        for e in catalog.edges.values() {
            if staged.edges.contains_key(&e.name)
                || (staged.nodes.contains_key(&e.from) && e.cardinality.min > 0)
            {
                for (t, is_node) in [
                    (e.from.clone(), true),
                    (e.to.clone(), true),
                    (e.name.clone(), false),
                ] {
                    let key = if is_node { node_key(&t) } else { edge_key(&t) };
                    let rows = st.visible(&key).await?;
                    if is_node {
                        existing
                            .node_ids
                            .insert(t, rows.iter().map(|r| r.id.clone()).collect());
                    } else {
                        existing.edges.insert(
                            t,
                            rows.into_iter()
                                .map(|r| {
                                    (r.id, r.src.unwrap_or_default(), r.dst.unwrap_or_default())
                                })
                                .collect(),
                        );
                    }
                }
            }
        }
        for (t, n) in &catalog.nodes {
            if staged.nodes.contains_key(t) && !n.unique.is_empty() {
                for (ci, cols) in n.unique.iter().enumerate() {
                    let m = existing.unique.entry((t.clone(), ci)).or_default();
                    for row in st.stored(&node_key(t)).await?.clone() {
                        if let Some(tuple) = load::unique_tuple(&n.properties, cols, &row) {
                            m.insert(tuple, row.id.clone());
                        }
                    }
                }
            }
        }
        let errors = load::validate_graph(&catalog, &staged, &existing, load::LoadMode::Merge);
        if !errors.is_empty() {
            return Err(EngineError::Load { errors });
        }
        let mut writes = BTreeMap::new();
        let mut written = BTreeMap::new();
        let mut deleted = BTreeMap::new();
        for (key, rows) in &st.upserts {
            let rows: Vec<Row> = rows.values().cloned().collect();
            written.insert(key.clone(), rows.len());
            writes.insert(key.clone(), TableWrite::Upsert(self.batch(key, &rows)?));
        }
        for (key, ids) in &st.deletes {
            deleted.insert(key.clone(), ids.len());
            writes.insert(
                key.clone(),
                TableWrite::Delete(ids.iter().cloned().collect()),
            );
        }
        let message = format!("mutate {}", q.name);
        let reads = st.stored.keys().cloned().collect();
        self.prepared(PreparedWrite {
            branch: branch.to_string(),
            actor: actor.to_string(),
            message,
            target,
            view,
            reads,
            absent: BTreeMap::new(),
            writes,
            staged: BTreeMap::new(),
            written,
            deleted,
            expect_head: self.expect_head.clone(),
            redo: None,
        })
        .await
    }

    fn target(&self, kind: TargetKind, name: &str) -> (TableKey, Vec<Property>) {
        match kind {
            TargetKind::Node => (
                node_key(name),
                self.catalog()
                    .node(name)
                    .map(|n| n.properties.clone())
                    .unwrap_or_default(),
            ),
            TargetKind::Edge => (
                edge_key(name),
                self.catalog()
                    .edge(name)
                    .map(|e| e.properties.clone())
                    .unwrap_or_default(),
            ),
        }
    }
}

fn key_string_json(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => key_string(&match other {
            Json::Number(n) if n.is_i64() => Cell::I64(n.as_i64().unwrap_or_default()),
            Json::Bool(b) => Cell::Bool(*b),
            _ => Cell::Str(other.to_string()),
        }),
    }
}
