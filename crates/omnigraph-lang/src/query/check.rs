//! Type checking of `.gq` queries against a [`Catalog`], and lowering of a
//! checked query to the [`ir`](super::ir).
//!
//! Checking runs per query in two passes over each `match` block: the first
//! declares every variable (bindings, and the endpoints a traversal
//! introduces) so clauses may appear in any order; the second checks filters,
//! property matches and nested `not { }` blocks. The error codes are listed in
//! `docs/queries.md`.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use super::ast::*;
use super::ir::*;
use crate::diag::{Diagnostic, did_you_mean, valid_list};
use crate::schema::compile::resolve_type;
use crate::schema::temporal::{parse_date, parse_datetime};
use crate::schema::{Catalog, EdgeType, NodeType, PropType, Property, ScalarType};
use crate::syntax::ast::Ident;

/// Checks every query in `file`. Returns the queries that passed and every
/// diagnostic (errors and warnings) found, sorted by position.
pub fn check_file(catalog: &Catalog, file: &QueryFile) -> (Vec<CheckedQuery>, Vec<Diagnostic>) {
    let mut out = Vec::new();
    let mut diags = Vec::new();
    let mut names: HashMap<&str, Range<usize>> = HashMap::new();
    for q in &file.queries {
        if names.contains_key(q.name.name.as_str()) {
            diags.push(
                Diagnostic::error(
                    "T06",
                    q.name.span.clone(),
                    format!("query `{}` is defined twice", q.name.name),
                )
                .with_help("query names must be unique within a file"),
            );
            continue;
        }
        names.insert(&q.name.name, q.name.span.clone());
        let mut c = Checker::new(catalog);
        let checked = c.query(q);
        let failed = c
            .diags
            .iter()
            .any(|d| d.severity == crate::diag::Severity::Error);
        diags.append(&mut c.diags);
        if let (Some(checked), false) = (checked, failed) {
            out.push(checked);
        }
    }
    diags.sort_by_key(|d| d.span.start);
    (out, diags)
}

/// What a variable is bound to.
#[derive(Debug, Clone, PartialEq)]
enum VarKind {
    Node(String),
    Edge(String),
}

#[derive(Debug, Clone)]
struct VarInfo {
    kind: VarKind,
}

/// A clause after pass 1: names resolved, wildcards renamed.
#[derive(Debug, Clone)]
enum RClause {
    Bind {
        var: String,
        node_type: String,
        props: Vec<(String, Expr)>,
    },
    Trav {
        src: String,
        dst: String,
        edge: String,
        dst_type: String,
        src_type: String,
        undirected: bool,
        min: u32,
        max: Option<u32>,
        edge_var: Option<String>,
    },
    Filter {
        left: Expr,
        op: Option<CmpOp>,
        right: Option<Expr>,
        vars: BTreeSet<String>,
    },
    Not {
        clauses: Vec<RClause>,
        /// Outer variables the block refers to.
        free: BTreeSet<String>,
    },
}

/// Where an expression appears; decides what it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Match,
    Return,
    Order,
    Value,
}

struct Checker<'c> {
    cat: &'c Catalog,
    diags: Vec<Diagnostic>,
    params: HashMap<String, (Param, Range<usize>)>,
    used_params: BTreeSet<String>,
    wildcard_seq: usize,
    reads: BTreeSet<TypeRef>,
    writes: BTreeSet<TypeRef>,
    /// Projections so far, for alias references in `order`.
    aliases: Vec<(String, Expr, ValueType)>,
    uses_nearest: Option<Range<usize>>,
}

fn node_ref(name: &str) -> TypeRef {
    TypeRef {
        kind: "node",
        type_name: name.to_string(),
    }
}

fn edge_ref(name: &str) -> TypeRef {
    TypeRef {
        kind: "edge",
        type_name: name.to_string(),
    }
}

impl<'c> Checker<'c> {
    fn new(cat: &'c Catalog) -> Self {
        Self {
            cat,
            diags: Vec::new(),
            params: HashMap::new(),
            used_params: BTreeSet::new(),
            wildcard_seq: 0,
            reads: BTreeSet::new(),
            writes: BTreeSet::new(),
            aliases: Vec::new(),
            uses_nearest: None,
        }
    }

    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn query(&mut self, q: &QueryAst) -> Option<CheckedQuery> {
        let mut params = Vec::new();
        for p in &q.params {
            if self.params.contains_key(&p.name.name) {
                self.err(Diagnostic::error(
                    "T07",
                    p.name.span.clone(),
                    format!("parameter `${}` is declared twice", p.name.name),
                ));
                continue;
            }
            match resolve_type(&p.ty) {
                Ok(ty) => {
                    let param = Param {
                        name: p.name.name.clone(),
                        ty,
                        optional: p.ty.nullable,
                    };
                    params.push(param.clone());
                    self.params
                        .insert(p.name.name.clone(), (param, p.span.clone()));
                }
                Err(mut d) => {
                    d.code = "T38";
                    self.err(d);
                }
            }
        }
        let mut description = None;
        let mut instruction = None;
        for a in &q.annotations {
            match a.name.name.as_str() {
                "description" | "instruction" => match a.single_string() {
                    Some(s) if a.name.name == "description" => description = Some(s.to_string()),
                    Some(s) => instruction = Some(s.to_string()),
                    None => self.err(
                        Diagnostic::error(
                            "T37",
                            a.span.clone(),
                            format!("`@{}` takes one string argument", a.name.name),
                        )
                        .with_help(format!("write `@{}(\"…\")`", a.name.name)),
                    ),
                },
                _ => {}
            }
        }
        let body = match &q.body {
            BodyAst::Read(r) => self.read(r).map(QueryKind::Read),
            BodyAst::Mutation(stmts) => self.mutation(stmts).map(QueryKind::Mutation),
        };
        for (name, (_, span)) in &self.params {
            if !self.used_params.contains(name) {
                self.diags.push(
                    Diagnostic::warning(
                        "W01",
                        span.clone(),
                        format!("parameter `${name}` is never used"),
                    )
                    .with_help("remove it, or use it in the query"),
                );
            }
        }
        Some(CheckedQuery {
            name: q.name.name.clone(),
            params,
            description,
            instruction,
            body: body?,
            reads: self.reads.iter().cloned().collect(),
            writes: self.writes.iter().cloned().collect(),
        })
    }

    // ---------------------------------------------------------------- reads

    fn read(&mut self, r: &ReadAst) -> Option<ReadPlan> {
        let mut scope: HashMap<String, VarInfo> = HashMap::new();
        let clauses = self.block(&r.clauses, &mut scope);

        // Projections. Unaliased property projections that would share a
        // name (`$s.slug`, `$c.slug`) are each named by variable and
        // property (`s.slug`, `c.slug`); any other clash is T25.
        let mut projections = Vec::new();
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        let mut defaults: HashMap<String, usize> = HashMap::new();
        for item in r.returns.iter().filter(|i| i.alias.is_none()) {
            *defaults.entry(default_column_name(&item.expr)).or_default() += 1;
        }
        for item in &r.returns {
            let Some((expr, ty)) = self.expr(&item.expr, Ctx::Return, &scope) else {
                continue;
            };
            if let Expr::Node { var } = &expr
                && var.starts_with('_')
            {
                self.err(
                    Diagnostic::error(
                        "T35",
                        item.expr.span(),
                        "`$_` matches anything and cannot be returned",
                    )
                    .with_help("bind a named variable instead"),
                );
                continue;
            }
            if ty == ValueType::Blob {
                self.err(blob_read_error(item.expr.span()));
                continue;
            }
            let name = match (&item.alias, &item.expr) {
                (Some(a), _) => a.name.clone(),
                (None, ExprAst::Prop { var, prop, .. })
                    if defaults.get(&prop.name).is_some_and(|n| *n > 1) =>
                {
                    format!("{}.{}", var.name, prop.name)
                }
                (None, e) => default_column_name(e),
            };
            if names.contains_key(&name) {
                self.err(
                    Diagnostic::error(
                        "T25",
                        item.span.clone(),
                        format!("two projections are named `{name}`"),
                    )
                    .with_help("give one of them a different name with `as`"),
                );
                continue;
            }
            names.insert(name.clone(), item.span.clone());
            self.aliases.push((name.clone(), expr.clone(), ty.clone()));
            projections.push(Projection { name, expr, ty });
        }
        let aggregated = projections.iter().any(|p| contains_aggregate(&p.expr));
        let group_by = aggregated.then(|| {
            projections
                .iter()
                .enumerate()
                .filter(|(_, p)| !contains_aggregate(&p.expr))
                .map(|(i, _)| i)
                .collect::<Vec<_>>()
        });

        let mut order = Vec::new();
        for item in &r.order {
            let Some((expr, ty)) = self.expr(&item.expr, Ctx::Order, &scope) else {
                continue;
            };
            if !ty.is_orderable() {
                let d = if ty == ValueType::Blob {
                    blob_read_error(item.expr.span())
                } else {
                    Diagnostic::error(
                        "T11",
                        item.expr.span(),
                        format!("cannot order by a value of type `{ty}`"),
                    )
                    .with_help("order by a scalar property, an alias or a score")
                };
                self.err(d);
                continue;
            }
            if aggregated && !matches!(expr, Expr::Alias { .. }) && !contains_aggregate(&expr) {
                let is_key = projections.iter().enumerate().any(|(i, p)| {
                    group_by.as_ref().is_some_and(|g| g.contains(&i)) && p.expr == expr
                });
                if !is_key {
                    self.err(
                        Diagnostic::error(
                            "T16",
                            item.expr.span(),
                            "this query aggregates, so it can only order by its group keys, aggregates or aliases",
                        )
                        .with_help("add the expression to `return` (it becomes a group key), or order by an alias"),
                    );
                    continue;
                }
            }
            // Unwritten direction: ascending, except relevance scores (bm25,
            // rrf), whose natural order is best-first. `nearest` is a
            // distance, so ascending is already nearest-first.
            let descending = item
                .descending
                .unwrap_or(matches!(expr, Expr::Bm25 { .. } | Expr::Rrf { .. }));
            order.push(OrderKey { expr, descending });
        }

        let limit = match &r.limit {
            None => None,
            Some(LimitAst::Int { value, span }) => {
                if *value == 0 {
                    self.err(
                        Diagnostic::error("T34", span.clone(), "`limit 0` returns nothing")
                            .with_help("use a limit of at least 1"),
                    );
                }
                Some(Expr::Literal {
                    value: LiteralValue::Int(i64::try_from(*value).unwrap_or(i64::MAX)),
                })
            }
            Some(LimitAst::Param(p)) => match self.param_type(p) {
                Some(ValueType::Int { .. }) => Some(Expr::Param {
                    name: p.name.clone(),
                }),
                Some(other) => {
                    self.err(Diagnostic::error(
                        "T34",
                        p.span.clone(),
                        format!("`limit` needs an integer; `${}` is `{other}`", p.name),
                    ));
                    None
                }
                None => None,
            },
        };
        if let (Some(span), None) = (self.uses_nearest.clone(), &r.limit) {
            self.err(
                Diagnostic::error("T19", span, "`nearest(…)` needs a `limit`")
                    .with_help("add `limit N` after `order { … }`"),
            );
        }

        let mut bound = Vec::new();
        let pipeline = plan(self.cat, &clauses, &mut bound);
        self.warn_cross_products(r, &pipeline);
        let variables = bound
            .iter()
            .filter_map(|v| match scope.get(v) {
                Some(VarInfo {
                    kind: VarKind::Node(t),
                    ..
                }) => Some((v.clone(), t.clone())),
                _ => None,
            })
            .collect();
        Some(ReadPlan {
            pipeline,
            projections,
            group_by,
            order,
            limit,
            variables,
        })
    }

    /// W03: a binding the pipeline scans with nothing tying it to the
    /// rows bound before it (no traversal, no equality on a bound
    /// variable, no key lookup): each earlier row is paired with every
    /// row of its type, a cross product whose size is the product of the
    /// types' sizes. The server refuses one past its row budget at run
    /// time; this says so when the query is checked (`omnigraph lint`).
    fn warn_cross_products(&mut self, r: &ReadAst, pipeline: &[Op]) {
        let mut earlier: Vec<&str> = Vec::new();
        // Whether the rows bound so far may be many (a scan other than a
        // key lookup, or a traversal): pairing one row with each row of a
        // type is no worse than scanning it.
        let mut many = false;
        for op in pipeline {
            match op {
                Op::Scan {
                    var,
                    equals,
                    lookup,
                    ..
                } => {
                    let tied = matches!(lookup, Lookup::Key)
                        || equals.iter().any(|(_, e)| {
                            let mut vs = BTreeSet::new();
                            expr_vars(e, &mut vs);
                            !vs.is_empty()
                        });
                    if !tied && many {
                        let span = r
                            .clauses
                            .iter()
                            .find_map(|c| match c {
                                ClauseAst::Binding { var: v, span, .. }
                                    if v.name.trim_start_matches('$') == var =>
                                {
                                    Some(span.clone())
                                }
                                _ => None,
                            })
                            .unwrap_or_else(|| r.return_span.clone());
                        let before = earlier
                            .iter()
                            .map(|v| format!("${v}"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        self.diags.push(
                            Diagnostic::warning(
                                "W03",
                                span,
                                format!(
                                    "`${var}` is not connected to {before}: every row bound so far is paired with every `${var}` (a cross product)"
                                ),
                            )
                            .with_help(format!(
                                "connect `${var}` with a traversal or an equality on a bound variable; a server refuses a cross product past its row budget"
                            )),
                        );
                    }
                    earlier.push(var);
                    many |= !matches!(lookup, Lookup::Key);
                }
                Op::Expand { to_var, .. } => {
                    earlier.push(to_var);
                    many = true;
                }
                _ => {}
            }
        }
    }

    fn fresh_wildcard(&mut self) -> String {
        self.wildcard_seq += 1;
        format!("_{}", self.wildcard_seq)
    }

    /// Declares the variables of one `match` (or `not`) block, then checks its
    /// expressions. `scope` holds the enclosing blocks' variables too.
    fn block(
        &mut self,
        clauses: &[ClauseAst],
        scope: &mut HashMap<String, VarInfo>,
    ) -> Vec<RClause> {
        let mut out: Vec<Option<RClause>> = Vec::new();
        // Pass 1: declarations.
        for c in clauses {
            out.push(match c {
                ClauseAst::Binding { var, ty, .. } => self.declare_binding(var, ty, scope),
                ClauseAst::Traversal {
                    src,
                    edge_var,
                    edge,
                    undirected,
                    bounds,
                    dst,
                    ..
                } => self.declare_traversal(
                    src,
                    edge_var.as_ref(),
                    edge,
                    *undirected,
                    bounds.as_ref(),
                    dst,
                    scope,
                ),
                _ => None,
            });
        }
        // Pass 2: expressions and nested blocks.
        for (c, slot) in clauses.iter().zip(out.iter_mut()) {
            match c {
                ClauseAst::Binding { props, .. } => {
                    let Some(RClause::Bind {
                        var,
                        node_type,
                        props: rprops,
                    }) = slot
                    else {
                        continue;
                    };
                    let Some(node) = self.cat.node(node_type) else {
                        continue;
                    };
                    for (k, v) in props {
                        let Some(prop) = self.node_prop(node, k) else {
                            continue;
                        };
                        let Some((e, vt)) = self.expr(v, Ctx::Match, scope) else {
                            continue;
                        };
                        if prop.ty.is_blob() {
                            self.err(blob_read_error(k.span.clone()));
                            continue;
                        }
                        let ok = self.compare(
                            CmpOp::Eq,
                            (
                                &Expr::Property {
                                    var: var.clone(),
                                    property: prop.name.clone(),
                                },
                                &ValueType::of_prop(&prop.ty),
                            ),
                            (&e, &vt),
                            v.span(),
                        );
                        if let Some(e) = ok.map(|(_, r)| r) {
                            rprops.push((prop.name.clone(), e));
                        }
                    }
                }
                ClauseAst::Filter {
                    left,
                    op,
                    right,
                    span,
                } => {
                    *slot = self.filter(left, op.as_ref(), right.as_ref(), span.clone(), scope);
                }
                ClauseAst::Not {
                    clauses: inner,
                    span,
                } => {
                    let mut inner_scope: HashMap<String, VarInfo> = scope
                        .iter()
                        .map(|(k, v)| {
                            (
                                k.clone(),
                                VarInfo {
                                    kind: v.kind.clone(),
                                },
                            )
                        })
                        .collect();
                    let rc = self.block(inner, &mut inner_scope);
                    let mut free = BTreeSet::new();
                    collect_vars(&rc, &mut free);
                    free.retain(|v| scope.contains_key(v));
                    if free.is_empty() {
                        self.err(
                            Diagnostic::error(
                                "T36",
                                span.clone(),
                                "this `not { }` refers to no variable of the enclosing match",
                            )
                            .with_help(
                                "mention a variable bound outside, e.g. `not { $x edge $_ }`",
                            ),
                        );
                    }
                    *slot = Some(RClause::Not { clauses: rc, free });
                }
                ClauseAst::Traversal { .. } => {}
            }
        }
        out.into_iter().flatten().collect()
    }

    fn declare_binding(
        &mut self,
        var: &Ident,
        ty: &Ident,
        scope: &mut HashMap<String, VarInfo>,
    ) -> Option<RClause> {
        if var.name == "_" {
            self.err(
                Diagnostic::error("T35", var.span.clone(), "`$_` cannot be bound to a type")
                    .with_help("use a named variable"),
            );
            return None;
        }
        let Some(node) = self.cat.node(&ty.name) else {
            self.unknown_node_type(ty);
            return None;
        };
        self.reads.insert(node_ref(&node.name));
        match scope.get(&var.name) {
            Some(VarInfo {
                kind: VarKind::Node(t),
                ..
            }) if *t == node.name => {}
            Some(VarInfo { kind, .. }) => {
                let was = match kind {
                    VarKind::Node(t) => format!("node type `{t}`"),
                    VarKind::Edge(t) => format!("edge `{t}`"),
                };
                self.err(Diagnostic::error(
                    "T08",
                    var.span.clone(),
                    format!(
                        "`${}` is already bound to {was}, not `{}`",
                        var.name, node.name
                    ),
                ));
                return None;
            }
            None => {
                scope.insert(
                    var.name.clone(),
                    VarInfo {
                        kind: VarKind::Node(node.name.clone()),
                    },
                );
            }
        }
        Some(RClause::Bind {
            var: var.name.clone(),
            node_type: node.name.clone(),
            props: Vec::new(),
        })
    }

    fn unknown_node_type(&mut self, ty: &Ident) {
        let msg = if self.cat.interfaces.contains_key(&ty.name) {
            format!(
                "`{}` is an interface; bind a node type that implements it",
                ty.name
            )
        } else if self.cat.edge(&ty.name).is_some() {
            format!(
                "`{}` is an edge type; traverse it as `$a {} $b`",
                ty.name,
                lower_first(&ty.name)
            )
        } else {
            format!("unknown node type `{}`", ty.name)
        };
        let names = self.cat.nodes.keys().map(String::as_str);
        let help = did_you_mean(&ty.name, names.clone())
            .unwrap_or_else(|| valid_list("node types", names));
        self.err(Diagnostic::error("T01", ty.span.clone(), msg).with_help(help));
    }

    #[allow(clippy::too_many_arguments)]
    fn declare_traversal(
        &mut self,
        src: &Ident,
        edge_var: Option<&Ident>,
        edge: &Ident,
        undirected: bool,
        bounds: Option<&HopBoundsAst>,
        dst: &Ident,
        scope: &mut HashMap<String, VarInfo>,
    ) -> Option<RClause> {
        let Some(e) = self.cat.edge_ci(&edge.name).cloned() else {
            let names: Vec<String> = self.cat.edges.keys().map(|n| lower_first(n)).collect();
            let help = did_you_mean(&edge.name, names.iter().map(String::as_str))
                .unwrap_or_else(|| valid_list("edges", names.iter().map(String::as_str)));
            self.err(
                Diagnostic::error(
                    "T03",
                    edge.span.clone(),
                    format!("unknown edge `{}`", edge.name),
                )
                .with_help(help),
            );
            return None;
        };
        if edge.name.starts_with(|c: char| c.is_ascii_uppercase()) {
            self.err(
                Diagnostic::error(
                    "T03",
                    edge.span.clone(),
                    format!(
                        "edge `{}` must be written lowercase-initial in a traversal",
                        edge.name
                    ),
                )
                .with_help(format!("write `{}`", lower_first(&e.name))),
            );
            return None;
        }
        self.reads.insert(edge_ref(&e.name));
        self.reads.insert(node_ref(&e.from));
        self.reads.insert(node_ref(&e.to));
        if undirected && !e.is_homogeneous() {
            self.err(
                Diagnostic::error(
                    "T22",
                    edge.span.clone(),
                    format!("undirected traversal needs an edge between one node type; `{}` goes `{}` -> `{}`", e.name, e.from, e.to),
                )
                .with_help(format!("use the directed form `$a {} $b`", lower_first(&e.name))),
            );
            return None;
        }
        let (min, max) = match bounds {
            None => (1, Some(1)),
            Some(b) => {
                if let Some(max) = b.max {
                    if max < b.min {
                        self.err(
                            Diagnostic::error(
                                "T21",
                                b.span.clone(),
                                format!("hop bounds `{{{},{}}}` are inverted", b.min, max),
                            )
                            .with_help(format!("write `{{{},{}}}`", max, b.min)),
                        );
                        return None;
                    }
                    if max == 0 {
                        self.err(
                            Diagnostic::error(
                                "T21",
                                b.span.clone(),
                                "a traversal of at most 0 hops matches no edge",
                            )
                            .with_help("use at least 1 as the upper bound"),
                        );
                        return None;
                    }
                }
                (b.min, b.max)
            }
        };
        let multi = min != 1 || max != Some(1);
        let (mut min, mut max) = (min, max);
        if multi && !e.is_homogeneous() {
            let span = bounds.map_or(edge.span.clone(), |b| b.span.clone());
            if min == 0 {
                // Zero hops would bind the source node (a `from` type) to
                // the destination variable (a `to` type): unsafe, refused.
                self.err(
                    Diagnostic::error(
                        "T21",
                        span,
                        format!(
                            "`{}` goes `{}` -> `{}`: zero hops would make a `{}` the destination",
                            e.name, e.from, e.to, e.from
                        ),
                    )
                    .with_help("start the bounds at 1, or traverse an edge whose endpoints are the same node type"),
                );
                return None;
            }
            // A path over this edge cannot go on past its first hop (the
            // next hop would start at a `to` node): the reference accepts
            // the bounds, so this is a warning and the traversal is the
            // single hop it can be (or nothing, from two hops on).
            let one = min == 1;
            self.diags.push(
                Diagnostic::warning(
                    "W02",
                    span,
                    format!(
                        "`{}` goes `{}` -> `{}`: a path over it has exactly one hop, so {}",
                        e.name,
                        e.from,
                        e.to,
                        if one {
                            "the bounds match what one hop matches"
                        } else {
                            "these bounds match nothing"
                        }
                    ),
                )
                .with_help(
                    "drop the bounds, or traverse an edge whose endpoints are the same node type",
                ),
            );
            (min, max) = if one { (1, Some(1)) } else { (1, Some(0)) };
        }
        let mut edge_var_name = None;
        if let Some(ev) = edge_var {
            if multi {
                self.err(
                    Diagnostic::error(
                        "T23",
                        ev.span.clone(),
                        "an edge binding needs a single-hop traversal",
                    )
                    .with_help(
                        "a `{min,max}` path matches many edges; drop the bounds or the `$var:`",
                    ),
                );
                return None;
            }
            if ev.name == "_" || scope.contains_key(&ev.name) {
                self.err(
                    Diagnostic::error(
                        "T23",
                        ev.span.clone(),
                        format!("`${}` is already bound", ev.name),
                    )
                    .with_help("bind the edge to a new variable name"),
                );
                return None;
            }
            scope.insert(
                ev.name.clone(),
                VarInfo {
                    kind: VarKind::Edge(e.name.clone()),
                },
            );
            edge_var_name = Some(ev.name.clone());
        }
        let s = self.endpoint(src, &e.from, &e, scope)?;
        let d = self.endpoint(dst, &e.to, &e, scope)?;
        Some(RClause::Trav {
            src: s,
            dst: d,
            edge: e.name.clone(),
            src_type: e.from.clone(),
            dst_type: e.to.clone(),
            undirected,
            min,
            max,
            edge_var: edge_var_name,
        })
    }

    /// Resolves one traversal endpoint: a wildcard gets a fresh name; an
    /// unbound variable is bound to `want`; a bound one must be `want`.
    fn endpoint(
        &mut self,
        v: &Ident,
        want: &str,
        e: &EdgeType,
        scope: &mut HashMap<String, VarInfo>,
    ) -> Option<String> {
        if v.name == "_" {
            let name = self.fresh_wildcard();
            scope.insert(
                name.clone(),
                VarInfo {
                    kind: VarKind::Node(want.to_string()),
                },
            );
            return Some(name);
        }
        match scope.get(&v.name) {
            None => {
                scope.insert(
                    v.name.clone(),
                    VarInfo {
                        kind: VarKind::Node(want.to_string()),
                    },
                );
                Some(v.name.clone())
            }
            Some(VarInfo {
                kind: VarKind::Node(t),
                ..
            }) if t == want => Some(v.name.clone()),
            Some(VarInfo {
                kind: VarKind::Node(t),
                ..
            }) => {
                let t = t.clone();
                self.err(
                    Diagnostic::error(
                        "T09",
                        v.span.clone(),
                        format!(
                            "`${}` is a `{t}`, but `{}` connects `{}` -> `{}`",
                            v.name, e.name, e.from, e.to
                        ),
                    )
                    .with_help(if e.to == t && e.from == want || e.from == t {
                        format!(
                            "swap the two sides: `$… {} ${}`",
                            lower_first(&e.name),
                            v.name
                        )
                    } else {
                        "use an edge that connects these node types".to_string()
                    }),
                );
                None
            }
            Some(VarInfo {
                kind: VarKind::Edge(_),
                ..
            }) => {
                self.err(Diagnostic::error(
                    "T23",
                    v.span.clone(),
                    format!("`${}` is an edge variable, not a node", v.name),
                ));
                None
            }
        }
    }

    fn node_prop<'n>(&mut self, node: &'n NodeType, k: &Ident) -> Option<&'n Property> {
        match node.property(&k.name) {
            Some(p) => Some(p),
            None => {
                self.unknown_prop(
                    &node.name,
                    node.properties.iter().map(|p| p.name.as_str()),
                    k,
                );
                None
            }
        }
    }

    fn unknown_prop<'a>(
        &mut self,
        owner: &str,
        names: impl Iterator<Item = &'a str> + Clone,
        k: &Ident,
    ) {
        let help =
            did_you_mean(&k.name, names.clone()).unwrap_or_else(|| valid_list("properties", names));
        self.err(
            Diagnostic::error(
                "T02",
                k.span.clone(),
                format!("`{owner}` has no property `{}`", k.name),
            )
            .with_help(help),
        );
    }

    fn filter(
        &mut self,
        left: &ExprAst,
        op: Option<&(CmpOp, Range<usize>)>,
        right: Option<&ExprAst>,
        span: Range<usize>,
        scope: &HashMap<String, VarInfo>,
    ) -> Option<RClause> {
        let (l, lt) = self.expr(left, Ctx::Match, scope)?;
        let (op, right) = match (op, right) {
            (Some((op, _)), Some(r)) => (*op, r),
            _ => {
                if matches!(l, Expr::TextMatch { .. }) || lt == ValueType::Bool {
                    let mut vars = BTreeSet::new();
                    expr_vars(&l, &mut vars);
                    return Some(RClause::Filter {
                        left: l,
                        op: None,
                        right: None,
                        vars,
                    });
                }
                self.err(
                    Diagnostic::error("T26", span, format!("a `{lt}` value is not a condition"))
                        .with_help(
                            "compare it (`$x.p = value`) or use `search`/`fuzzy`/`match_text`",
                        ),
                );
                return None;
            }
        };
        let (r, rt) = self.expr(right, Ctx::Match, scope)?;
        let (l, r) = self.compare(op, (&l, &lt), (&r, &rt), right.span())?;
        let mut vars = BTreeSet::new();
        expr_vars(&l, &mut vars);
        expr_vars(&r, &mut vars);
        Some(RClause::Filter {
            left: l,
            op: Some(op),
            right: Some(r),
            vars,
        })
    }

    /// Checks `l op r`; returns both sides with string literals coerced to
    /// Date/DateTime where the other side is temporal.
    fn compare(
        &mut self,
        op: CmpOp,
        l: (&Expr, &ValueType),
        r: (&Expr, &ValueType),
        span: Range<usize>,
    ) -> Option<(Expr, Expr)> {
        let (le, lt) = l;
        let (re, rt) = r;
        let mut le = le.clone();
        let mut re = re.clone();
        let mut lt = lt.clone();
        let mut rt = rt.clone();
        // Coerce a string literal facing a temporal value.
        if !self.coerce_temporal(&mut re, &mut rt, &lt, span.clone()) {
            return None;
        }
        if !self.coerce_temporal(&mut le, &mut lt, &rt, span.clone()) {
            return None;
        }
        for t in [&lt, &rt] {
            if *t == ValueType::Blob {
                self.err(blob_read_error(span.clone()));
                return None;
            }
            if let ValueType::Node { type_name } = t {
                self.err(
                    Diagnostic::error(
                        "T10",
                        span.clone(),
                        format!("cannot compare a whole `{type_name}` node"),
                    )
                    .with_help("compare one of its properties: `$x.property`"),
                );
                return None;
            }
        }
        let mismatch = |this: &mut Self| {
            this.err(
                Diagnostic::error(
                    "T10",
                    span.clone(),
                    format!("cannot compare `{lt}` {op} `{rt}`"),
                )
                .with_help("both sides must have compatible types"),
            );
        };
        match op {
            CmpOp::Contains => match &lt {
                ValueType::List { item } => {
                    if !compatible(item, &rt) {
                        mismatch(self);
                        return None;
                    }
                    self.enum_literal(item, &re, span.clone())?;
                }
                ValueType::String | ValueType::Enum { .. } => {
                    if !rt.is_textual() && rt != ValueType::Null {
                        mismatch(self);
                        return None;
                    }
                }
                _ => {
                    self.err(
                        Diagnostic::error(
                            "T11",
                            span,
                            format!("`contains` needs a list or String on the left, found `{lt}`"),
                        )
                        .with_help("`contains` tests list membership or substring"),
                    );
                    return None;
                }
            },
            CmpOp::StartsWith => {
                if !lt.is_textual() || !(rt.is_textual() || rt == ValueType::Null) {
                    self.err(Diagnostic::error(
                        "T11",
                        span,
                        format!("`starts_with` needs String operands, found `{lt}` and `{rt}`"),
                    ));
                    return None;
                }
            }
            _ => {
                if lt == ValueType::Null || rt == ValueType::Null {
                    if op.is_ordering() {
                        self.err(
                            Diagnostic::error(
                                "T11",
                                span,
                                format!("`{op}` against null is never true"),
                            )
                            .with_help("use `= null` or `!= null`"),
                        );
                        return None;
                    }
                } else if !compatible(&lt, &rt) {
                    let mut d = Diagnostic::error(
                        "T10",
                        span.clone(),
                        format!("cannot compare `{lt}` {op} `{rt}`"),
                    );
                    if matches!(lt, ValueType::Date | ValueType::DateTime)
                        || matches!(rt, ValueType::Date | ValueType::DateTime)
                    {
                        d = d.with_help("compare dates with dates: write `date(\"YYYY-MM-DD\")` or `datetime(\"…Z\")`");
                    } else {
                        d = d.with_help("both sides must have compatible types");
                    }
                    self.err(d);
                    return None;
                } else if op.is_ordering()
                    && (!lt.is_orderable()
                        || lt == ValueType::Bool
                        || matches!(lt, ValueType::List { .. }))
                {
                    self.err(Diagnostic::error(
                        "T11",
                        span,
                        format!("`{op}` does not apply to `{lt}`"),
                    ));
                    return None;
                }
                self.enum_literal(&lt, &re, span.clone())?;
                self.enum_literal(&rt, &le, span.clone())?;
            }
        }
        Some((le, re))
    }

    /// Turns a string literal `e` facing a Date/DateTime into a typed
    /// literal; false (with `T39` reported) when it does not parse.
    fn coerce_temporal(
        &mut self,
        e: &mut Expr,
        t: &mut ValueType,
        other: &ValueType,
        span: Range<usize>,
    ) -> bool {
        let Expr::Literal {
            value: LiteralValue::String(s),
        } = e
        else {
            return true;
        };
        let s = s.clone();
        match other {
            ValueType::Date => match parse_date(&s) {
                Some(d) => {
                    *e = lit(LiteralValue::Date(d));
                    *t = ValueType::Date;
                }
                None => {
                    self.err(bad_temporal(&s, "date", span));
                    return false;
                }
            },
            ValueType::DateTime => match parse_datetime(&s) {
                Some(d) => {
                    *e = lit(LiteralValue::DateTime(d));
                    *t = ValueType::DateTime;
                }
                None => {
                    self.err(bad_temporal(&s, "datetime", span));
                    return false;
                }
            },
            _ => {}
        }
        true
    }

    /// A string literal compared with an enum must be one of its values.
    fn enum_literal(&mut self, ty: &ValueType, e: &Expr, span: Range<usize>) -> Option<()> {
        if let (
            ValueType::Enum { values },
            Expr::Literal {
                value: LiteralValue::String(s),
            },
        ) = (ty, e)
            && !values.contains(s)
        {
            let help = did_you_mean(s, values.iter().map(String::as_str))
                .unwrap_or_else(|| valid_list("values", values.iter().map(String::as_str)));
            self.err(
                Diagnostic::error("T12", span, format!("`{s}` is not a value of this enum"))
                    .with_help(help),
            );
            return None;
        }
        Some(())
    }

    fn param_type(&mut self, p: &Ident) -> Option<ValueType> {
        match self.params.get(&p.name) {
            Some((param, _)) => {
                self.used_params.insert(p.name.clone());
                Some(ValueType::of_prop(&param.ty))
            }
            None => {
                let names: Vec<String> = self.params.keys().map(|k| format!("${k}")).collect();
                let help = did_you_mean(&format!("${}", p.name), names.iter().map(String::as_str))
                    .unwrap_or_else(|| {
                        "declare it in the query signature: `query q($name: Type)`".to_string()
                    });
                self.err(
                    Diagnostic::error(
                        "T05",
                        p.span.clone(),
                        format!("unknown parameter `${}`", p.name),
                    )
                    .with_help(help),
                );
                None
            }
        }
    }

    /// Resolves an expression. A bare `$name` is a parameter when one is
    /// declared with that name, else a variable.
    fn expr(
        &mut self,
        e: &ExprAst,
        ctx: Ctx,
        scope: &HashMap<String, VarInfo>,
    ) -> Option<(Expr, ValueType)> {
        match e {
            ExprAst::Var(v) => {
                if ctx == Ctx::Value
                    || self.params.contains_key(&v.name) && !scope.contains_key(&v.name)
                {
                    let t = self.param_type(v)?;
                    return Some((
                        Expr::Param {
                            name: v.name.clone(),
                        },
                        t,
                    ));
                }
                if v.name == "_" {
                    self.err(Diagnostic::error(
                        "T35",
                        v.span.clone(),
                        "`$_` only stands for a traversal endpoint",
                    ));
                    return None;
                }
                match scope.get(&v.name) {
                    Some(VarInfo {
                        kind: VarKind::Node(t),
                        ..
                    }) => Some((
                        Expr::Node {
                            var: v.name.clone(),
                        },
                        ValueType::Node {
                            type_name: t.clone(),
                        },
                    )),
                    Some(VarInfo {
                        kind: VarKind::Edge(_),
                        ..
                    }) => {
                        self.err(
                            Diagnostic::error(
                                "T23",
                                v.span.clone(),
                                format!("edge variable `${}` cannot be used bare", v.name),
                            )
                            .with_help(format!(
                                "use one of its properties: `${}.property`",
                                v.name
                            )),
                        );
                        None
                    }
                    None => {
                        self.unknown_var(v, scope);
                        None
                    }
                }
            }
            ExprAst::Prop { var, prop, .. } => {
                if ctx == Ctx::Value {
                    self.err(
                        Diagnostic::error(
                            "T29",
                            e.span(),
                            "a mutation value must be a literal, a parameter or `now()`",
                        )
                        .with_help("pass the value as a parameter"),
                    );
                    return None;
                }
                match scope.get(&var.name) {
                    Some(VarInfo {
                        kind: VarKind::Node(t),
                        ..
                    }) => {
                        let node = self.cat.node(t)?;
                        let p = self.node_prop(node, prop)?;
                        Some((
                            Expr::Property {
                                var: var.name.clone(),
                                property: p.name.clone(),
                            },
                            ValueType::of_prop(&p.ty),
                        ))
                    }
                    Some(VarInfo {
                        kind: VarKind::Edge(t),
                        ..
                    }) => {
                        let edge = self.cat.edge(t)?;
                        match edge.property(&prop.name) {
                            Some(p) if p.ty.is_blob() => {
                                self.err(blob_read_error(prop.span.clone()));
                                None
                            }
                            Some(p) => Some((
                                Expr::EdgeProperty {
                                    var: var.name.clone(),
                                    property: p.name.clone(),
                                },
                                ValueType::of_prop(&p.ty),
                            )),
                            None => {
                                let names: Vec<&str> =
                                    edge.properties.iter().map(|p| p.name.as_str()).collect();
                                let owner = edge.name.clone();
                                self.unknown_prop(&owner, names.into_iter(), prop);
                                None
                            }
                        }
                    }
                    None => {
                        if self.params.contains_key(&var.name) {
                            self.err(Diagnostic::error(
                                "T13",
                                e.span(),
                                format!(
                                    "`${}` is a parameter; parameters have no properties",
                                    var.name
                                ),
                            ));
                        } else {
                            self.unknown_var(var, scope);
                        }
                        None
                    }
                }
            }
            ExprAst::Str { value, .. } => {
                Some((lit(LiteralValue::String(value.clone())), ValueType::String))
            }
            ExprAst::Int { value, .. } => Some((
                lit(LiteralValue::Int(*value)),
                ValueType::Int {
                    scalar: ScalarType::I64,
                },
            )),
            ExprAst::Float { value, .. } => Some((
                lit(LiteralValue::Float(*value)),
                ValueType::Float {
                    scalar: ScalarType::F64,
                },
            )),
            ExprAst::Bool { value, .. } => Some((lit(LiteralValue::Bool(*value)), ValueType::Bool)),
            ExprAst::Null { .. } => Some((lit(LiteralValue::Null), ValueType::Null)),
            ExprAst::List { items, span } => {
                let mut exprs = Vec::new();
                let mut item_ty: Option<ValueType> = None;
                for it in items {
                    let (x, t) = self.expr(it, ctx, scope)?;
                    if let Some(prev) = &item_ty {
                        if !compatible(prev, &t) {
                            self.err(Diagnostic::error(
                                "T10",
                                span.clone(),
                                format!("list mixes `{prev}` and `{t}` items"),
                            ));
                            return None;
                        }
                    } else {
                        item_ty = Some(t);
                    }
                    exprs.push(x);
                }
                // A list of literals folds to one literal.
                let all_lit: Option<Vec<LiteralValue>> = exprs
                    .iter()
                    .map(|x| match x {
                        Expr::Literal { value } => Some(value.clone()),
                        _ => None,
                    })
                    .collect();
                let ty = ValueType::List {
                    item: Box::new(item_ty.unwrap_or(ValueType::Null)),
                };
                match all_lit {
                    Some(v) => Some((lit(LiteralValue::List(v)), ty)),
                    None => Some((Expr::List { items: exprs }, ty)),
                }
            }
            ExprAst::Alias(a) => {
                if ctx != Ctx::Order {
                    self.err(
                        Diagnostic::error("T25", a.span.clone(), format!("`{}` is not defined here", a.name))
                            .with_help("variables start with `$`; bare names refer to `return … as name` aliases in `order`"),
                    );
                    return None;
                }
                match self.aliases.iter().position(|(n, _, _)| *n == a.name) {
                    Some(i) => {
                        let t = self.aliases[i].2.clone();
                        Some((
                            Expr::Alias {
                                name: a.name.clone(),
                                index: i,
                            },
                            t,
                        ))
                    }
                    None => {
                        let names: Vec<String> =
                            self.aliases.iter().map(|(n, _, _)| n.clone()).collect();
                        let help = did_you_mean(&a.name, names.iter().map(String::as_str))
                            .unwrap_or_else(|| {
                                valid_list("aliases", names.iter().map(String::as_str))
                            });
                        self.err(
                            Diagnostic::error(
                                "T25",
                                a.span.clone(),
                                format!("unknown alias `{}`", a.name),
                            )
                            .with_help(help),
                        );
                        None
                    }
                }
            }
            ExprAst::Call { func, args, span } => self.call(func, args, span.clone(), ctx, scope),
        }
    }

    fn unknown_var(&mut self, v: &Ident, scope: &HashMap<String, VarInfo>) {
        let names: Vec<String> = scope
            .keys()
            .filter(|k| !k.starts_with('_'))
            .map(|k| format!("${k}"))
            .chain(self.params.keys().map(|k| format!("${k}")))
            .collect();
        let help = did_you_mean(&format!("${}", v.name), names.iter().map(String::as_str))
            .unwrap_or_else(|| {
                "bind it in `match` (`$x: Type`) or declare it as a parameter".to_string()
            });
        self.err(
            Diagnostic::error(
                "T04",
                v.span.clone(),
                format!("unknown variable `${}`", v.name),
            )
            .with_help(help),
        );
    }

    fn call(
        &mut self,
        func: &Ident,
        args: &[ExprAst],
        span: Range<usize>,
        ctx: Ctx,
        scope: &HashMap<String, VarInfo>,
    ) -> Option<(Expr, ValueType)> {
        let name = func.name.as_str();
        let arity = |this: &mut Self, lo: usize, hi: usize, usage: &str| -> bool {
            if args.len() < lo || args.len() > hi {
                this.err(
                    Diagnostic::error(
                        "T14",
                        span.clone(),
                        format!(
                            "`{name}` takes {} argument(s), got {}",
                            if lo == hi {
                                lo.to_string()
                            } else {
                                format!("{lo} to {hi}")
                            },
                            args.len()
                        ),
                    )
                    .with_help(format!("write `{usage}`")),
                );
                false
            } else {
                true
            }
        };
        match name {
            "now" => {
                if !arity(self, 0, 0, "now()") {
                    return None;
                }
                Some((Expr::Now, ValueType::DateTime))
            }
            "date" | "datetime" => {
                if !arity(self, 1, 1, &format!("{name}(\"…\")")) {
                    return None;
                }
                let ExprAst::Str { value, span: s } = &args[0] else {
                    self.err(Diagnostic::error(
                        "T39",
                        args[0].span(),
                        format!("`{name}(…)` takes a string literal"),
                    ));
                    return None;
                };
                if name == "date" {
                    match parse_date(value) {
                        Some(d) => Some((lit(LiteralValue::Date(d)), ValueType::Date)),
                        None => {
                            self.err(bad_temporal(value, "date", s.clone()));
                            None
                        }
                    }
                } else {
                    match parse_datetime(value) {
                        Some(d) => Some((lit(LiteralValue::DateTime(d)), ValueType::DateTime)),
                        None => {
                            self.err(bad_temporal(value, "datetime", s.clone()));
                            None
                        }
                    }
                }
            }
            "count" | "sum" | "avg" | "min" | "max" => {
                if !matches!(ctx, Ctx::Return | Ctx::Order) {
                    self.err(
                        Diagnostic::error(
                            "T15",
                            span,
                            format!("aggregate `{name}` is only allowed in `return` and `order`"),
                        )
                        .with_help("filter on properties in `match`; aggregate in `return`"),
                    );
                    return None;
                }
                if !arity(self, 1, 1, &format!("{name}($x.property)")) {
                    return None;
                }
                let (arg, t) = self.expr(&args[0], Ctx::Match, scope)?;
                if t == ValueType::Blob {
                    self.err(blob_read_error(args[0].span()));
                    return None;
                }
                if contains_aggregate(&arg) {
                    self.err(Diagnostic::error(
                        "T15",
                        span,
                        "aggregates cannot be nested",
                    ));
                    return None;
                }
                let (func, out) = match name {
                    "count" => (
                        AggFunc::Count,
                        ValueType::Int {
                            scalar: ScalarType::I64,
                        },
                    ),
                    "sum" | "avg"
                        if !matches!(t, ValueType::Int { .. } | ValueType::Float { .. }) =>
                    {
                        self.err(Diagnostic::error(
                            "T15",
                            args[0].span(),
                            format!("`{name}` needs a number, found `{t}`"),
                        ));
                        return None;
                    }
                    "sum" => (
                        AggFunc::Sum,
                        if matches!(t, ValueType::Int { .. }) {
                            ValueType::Int {
                                scalar: ScalarType::I64,
                            }
                        } else {
                            ValueType::Float {
                                scalar: ScalarType::F64,
                            }
                        },
                    ),
                    "avg" => (
                        AggFunc::Avg,
                        ValueType::Float {
                            scalar: ScalarType::F64,
                        },
                    ),
                    _ => {
                        if !t.is_orderable() || matches!(t, ValueType::Node { .. }) {
                            self.err(Diagnostic::error(
                                "T15",
                                args[0].span(),
                                format!("`{name}` needs an orderable value, found `{t}`"),
                            ));
                            return None;
                        }
                        (
                            if name == "min" {
                                AggFunc::Min
                            } else {
                                AggFunc::Max
                            },
                            t,
                        )
                    }
                };
                Some((
                    Expr::Aggregate {
                        func,
                        arg: Box::new(arg),
                    },
                    out,
                ))
            }
            "search" | "fuzzy" | "match_text" | "bm25" => {
                let usage = if name == "fuzzy" {
                    "fuzzy($x.text, $q [, max_edits])"
                } else {
                    "search($x.text, $q)"
                };
                let hi = if name == "fuzzy" { 3 } else { 2 };
                if !arity(self, 2, hi, usage) {
                    return None;
                }
                let (var, property) = self.text_property(name, &args[0], scope)?;
                let (q, qt) = self.expr(&args[1], Ctx::Match, scope)?;
                if !qt.is_textual() {
                    self.err(Diagnostic::error(
                        "T17",
                        args[1].span(),
                        format!("`{name}` needs a String query, found `{qt}`"),
                    ));
                    return None;
                }
                if name == "bm25" {
                    return Some((
                        Expr::Bm25 {
                            var,
                            property,
                            query: Box::new(q),
                        },
                        ValueType::Score,
                    ));
                }
                let max_edits = match args.get(2) {
                    Some(a) => {
                        let (x, t) = self.expr(a, Ctx::Match, scope)?;
                        if !matches!(t, ValueType::Int { .. }) {
                            self.err(Diagnostic::error(
                                "T17",
                                a.span(),
                                format!("`max_edits` must be an integer, found `{t}`"),
                            ));
                            return None;
                        }
                        Some(Box::new(x))
                    }
                    None => None,
                };
                let f = match name {
                    "search" => TextSearch::Search,
                    "fuzzy" => TextSearch::Fuzzy,
                    _ => TextSearch::MatchText,
                };
                Some((
                    Expr::TextMatch {
                        func: f,
                        var,
                        property,
                        query: Box::new(q),
                        max_edits,
                    },
                    ValueType::Bool,
                ))
            }
            "nearest" => {
                if !arity(self, 2, 2, "nearest($x.vector, $q)") {
                    return None;
                }
                let ExprAst::Prop { var, prop, .. } = &args[0] else {
                    self.err(
                        Diagnostic::error(
                            "T18",
                            args[0].span(),
                            "`nearest` needs a vector property as its first argument",
                        )
                        .with_help("write `nearest($x.embedding, $q)`"),
                    );
                    return None;
                };
                let (pe, pt) = self.expr(&args[0], Ctx::Match, scope)?;
                let ValueType::Vector { dim } = pt else {
                    self.err(Diagnostic::error(
                        "T18",
                        args[0].span(),
                        format!(
                            "`nearest` needs a Vector property; `{}` is `{pt}`",
                            prop.name
                        ),
                    ));
                    return None;
                };
                let _ = pe;
                let (q, qt) = self.expr(&args[1], Ctx::Match, scope)?;
                match &qt {
                    ValueType::Vector { dim: d } if *d == dim => {}
                    ValueType::Vector { dim: d } => {
                        self.err(Diagnostic::error(
                            "T18",
                            args[1].span(),
                            format!("query vector has {d} dimensions; `{}` has {dim}", prop.name),
                        ));
                        return None;
                    }
                    ValueType::String => {
                        let embedded = scope.get(&var.name).and_then(|v| match &v.kind {
                            VarKind::Node(t) => self
                                .cat
                                .node(t)
                                .and_then(|n| n.property(&prop.name))
                                .map(|p| p.embed.is_some()),
                            VarKind::Edge(_) => Some(false),
                        });
                        if embedded != Some(true) {
                            self.err(
                                Diagnostic::error("T18", args[1].span(), format!("a String query needs `@embed(…)` on `{}` to be embedded", prop.name))
                                    .with_help("pass a Vector parameter, or declare `@embed(\"text_property\")` on the vector property"),
                            );
                            return None;
                        }
                    }
                    other => {
                        self.err(Diagnostic::error(
                            "T18",
                            args[1].span(),
                            format!("`nearest` needs a Vector or String query, found `{other}`"),
                        ));
                        return None;
                    }
                }
                if self.uses_nearest.is_none() {
                    self.uses_nearest = Some(span.clone());
                }
                Some((
                    Expr::Nearest {
                        var: var.name.clone(),
                        property: prop.name.clone(),
                        query: Box::new(q),
                    },
                    ValueType::Score,
                ))
            }
            "rrf" => {
                if !arity(self, 2, 3, "rrf(nearest(…), bm25(…) [, k])") {
                    return None;
                }
                let mut ranks = Vec::new();
                for a in &args[..2] {
                    let (x, _) = self.expr(a, ctx, scope)?;
                    if !matches!(x, Expr::Nearest { .. } | Expr::Bm25 { .. }) {
                        self.err(Diagnostic::error(
                            "T20",
                            a.span(),
                            "`rrf` fuses rankings: each argument must be `nearest(…)` or `bm25(…)`",
                        ));
                        return None;
                    }
                    ranks.push(x);
                }
                let k = match args.get(2) {
                    Some(a) => {
                        let (x, t) = self.expr(a, Ctx::Match, scope)?;
                        if !matches!(t, ValueType::Int { .. }) {
                            self.err(Diagnostic::error(
                                "T20",
                                a.span(),
                                format!("`rrf` k must be an integer, found `{t}`"),
                            ));
                            return None;
                        }
                        x
                    }
                    None => lit(LiteralValue::Int(60)),
                };
                let b = ranks.pop()?;
                let a = ranks.pop()?;
                Some((
                    Expr::Rrf {
                        a: Box::new(a),
                        b: Box::new(b),
                        k: Box::new(k),
                    },
                    ValueType::Score,
                ))
            }
            _ => {
                const FUNCS: [&str; 15] = [
                    "now",
                    "date",
                    "datetime",
                    "count",
                    "sum",
                    "avg",
                    "min",
                    "max",
                    "search",
                    "fuzzy",
                    "match_text",
                    "bm25",
                    "nearest",
                    "rrf",
                    "",
                ];
                let help = did_you_mean(name, FUNCS[..14].iter().copied())
                    .unwrap_or_else(|| valid_list("functions", FUNCS[..14].iter().copied()));
                self.err(
                    Diagnostic::error(
                        "T14",
                        func.span.clone(),
                        format!("unknown function `{name}`"),
                    )
                    .with_help(help),
                );
                None
            }
        }
    }

    /// The first argument of a text-search function: a String property.
    fn text_property(
        &mut self,
        f: &str,
        a: &ExprAst,
        scope: &HashMap<String, VarInfo>,
    ) -> Option<(String, String)> {
        let ExprAst::Prop { var, prop, .. } = a else {
            self.err(
                Diagnostic::error(
                    "T17",
                    a.span(),
                    format!("`{f}` needs a String property as its first argument"),
                )
                .with_help(format!("write `{f}($x.text, $q)`")),
            );
            return None;
        };
        let (_, t) = self.expr(a, Ctx::Match, scope)?;
        if !t.is_textual() && !matches!(&t, ValueType::List { item } if item.is_textual()) {
            self.err(Diagnostic::error(
                "T17",
                a.span(),
                format!("`{f}` needs a String property; `{}` is `{t}`", prop.name),
            ));
            return None;
        }
        Some((var.name.clone(), prop.name.clone()))
    }

    // ------------------------------------------------------------ mutations

    fn mutation(&mut self, stmts: &[MutationAst]) -> Option<MutationPlan> {
        let mut out = Vec::new();
        let scope = HashMap::new();
        for s in stmts {
            match s {
                MutationAst::Insert { ty, assigns, span } => {
                    if let Some(op) = self.insert(ty, assigns, span.clone(), &scope) {
                        out.push(op);
                    }
                }
                MutationAst::Update {
                    ty,
                    assigns,
                    predicate,
                    ..
                } => {
                    let Some((kind, props, key)) = self.target(ty) else {
                        continue;
                    };
                    let set = self.assignments(&ty.name, &props, assigns, &scope, &key);
                    let pred = self.predicate(&ty.name, kind, &props, predicate, &scope);
                    if let (Some(set), Some(predicate)) = (set, pred) {
                        if set.is_empty() {
                            self.err(
                                Diagnostic::error("T28", ty.span.clone(), "`update` sets nothing")
                                    .with_help("list at least one `property: value`"),
                            );
                            continue;
                        }
                        out.push(MutationOp::Update {
                            kind,
                            type_name: ty.name.clone(),
                            set,
                            predicate,
                        });
                    }
                }
                MutationAst::Delete { ty, predicate, .. } => {
                    let Some((kind, props, _)) = self.target(ty) else {
                        continue;
                    };
                    if kind == TargetKind::Node {
                        // Deleting a node cascades to its incident edges.
                        let incident: Vec<String> = self
                            .cat
                            .edges
                            .values()
                            .filter(|e| e.from == ty.name || e.to == ty.name)
                            .map(|e| e.name.clone())
                            .collect();
                        for e in incident {
                            self.reads.insert(edge_ref(&e));
                            self.writes.insert(edge_ref(&e));
                        }
                    }
                    if let Some(predicate) =
                        self.predicate(&ty.name, kind, &props, predicate, &scope)
                    {
                        out.push(MutationOp::Delete {
                            kind,
                            type_name: ty.name.clone(),
                            predicate,
                        });
                    }
                }
            }
        }
        Some(MutationPlan { statements: out })
    }

    /// Resolves a mutation target: its kind, properties and key.
    fn target(&mut self, ty: &Ident) -> Option<(TargetKind, Vec<Property>, Vec<String>)> {
        if let Some(n) = self.cat.node(&ty.name) {
            self.reads.insert(node_ref(&n.name));
            self.writes.insert(node_ref(&n.name));
            return Some((
                TargetKind::Node,
                n.properties.clone(),
                n.key.clone().unwrap_or_default(),
            ));
        }
        if let Some(e) = self.cat.edge(&ty.name) {
            self.reads.insert(edge_ref(&e.name));
            self.writes.insert(edge_ref(&e.name));
            return Some((TargetKind::Edge, e.properties.clone(), Vec::new()));
        }
        let names: Vec<&str> = self
            .cat
            .nodes
            .keys()
            .chain(self.cat.edges.keys())
            .map(String::as_str)
            .collect();
        let help = did_you_mean(&ty.name, names.iter().copied())
            .unwrap_or_else(|| valid_list("node and edge types", names.iter().copied()));
        self.err(
            Diagnostic::error(
                "T01",
                ty.span.clone(),
                format!("unknown type `{}`", ty.name),
            )
            .with_help(help),
        );
        None
    }

    fn insert(
        &mut self,
        ty: &Ident,
        assigns: &[(Ident, ExprAst)],
        span: Range<usize>,
        scope: &HashMap<String, VarInfo>,
    ) -> Option<MutationOp> {
        let (kind, props, _) = self.target(ty)?;
        let mut from = None;
        let mut to = None;
        let mut rest = Vec::new();
        if kind == TargetKind::Edge {
            let edge = self.cat.edge(&ty.name)?.clone();
            self.reads.insert(node_ref(&edge.from));
            self.reads.insert(node_ref(&edge.to));
            for (k, v) in assigns {
                let slot = match k.name.as_str() {
                    "from" => &mut from,
                    "to" => &mut to,
                    _ => {
                        rest.push((k.clone(), v.clone()));
                        continue;
                    }
                };
                if slot.is_some() {
                    self.err(Diagnostic::error(
                        "T33",
                        k.span.clone(),
                        format!("`{}` is set twice", k.name),
                    ));
                    return None;
                }
                let endpoint = if k.name == "from" {
                    &edge.from
                } else {
                    &edge.to
                };
                let (x, t) = self.expr(v, Ctx::Value, scope)?;
                if !self.endpoint_value_fits(endpoint, &t) {
                    self.err(Diagnostic::error(
                        "T29",
                        v.span(),
                        format!(
                            "`{}` names a `{endpoint}` by its key; `{t}` does not fit",
                            k.name
                        ),
                    ));
                    return None;
                }
                *slot = Some(x);
            }
            for (name, got) in [("from", &from), ("to", &to)] {
                if got.is_none() {
                    self.err(
                        Diagnostic::error(
                            "T31",
                            span.clone(),
                            format!("edge insert `{}` is missing `{name}`", ty.name),
                        )
                        .with_help(format!(
                            "write `insert {} {{ from: $a, to: $b }}` with the endpoints' keys",
                            ty.name
                        )),
                    );
                    return None;
                }
            }
        } else {
            rest = assigns.to_vec();
        }
        let values = self.assignments(&ty.name, &props, &rest, scope, &[])?;
        let missing: Vec<&str> = props
            .iter()
            .filter(|p| p.is_required() && !values.iter().any(|(n, _)| *n == p.name))
            .map(|p| p.name.as_str())
            .collect();
        if !missing.is_empty() {
            self.err(
                Diagnostic::error(
                    "T28",
                    span,
                    format!(
                        "insert into `{}` is missing required propert{} {}",
                        ty.name,
                        if missing.len() == 1 { "y" } else { "ies" },
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .with_help(
                    "set them, or declare them nullable (`?`) or with `@default(…)` in the schema",
                ),
            );
            return None;
        }
        Some(MutationOp::Insert {
            kind,
            type_name: ty.name.clone(),
            values,
            from,
            to,
        })
    }

    fn endpoint_value_fits(&self, node: &str, t: &ValueType) -> bool {
        let Some(n) = self.cat.node(node) else {
            return false;
        };
        match n.key.as_deref() {
            Some([k]) => n
                .property(k)
                .is_some_and(|p| compatible(&ValueType::of_prop(&p.ty), t)),
            // Composite keys and generated ids are named by their `id` string.
            _ => t.is_textual(),
        }
    }

    fn assignments(
        &mut self,
        owner: &str,
        props: &[Property],
        assigns: &[(Ident, ExprAst)],
        scope: &HashMap<String, VarInfo>,
        immutable: &[String],
    ) -> Option<Vec<(String, Expr)>> {
        let mut out: Vec<(String, Expr)> = Vec::new();
        let mut ok = true;
        for (k, v) in assigns {
            let Some(p) = props.iter().find(|p| p.name == k.name) else {
                if matches!(k.name.as_str(), "from" | "to") && self.cat.edge(owner).is_some() {
                    self.err(
                        Diagnostic::error(
                            "T30",
                            k.span.clone(),
                            format!("an edge's `{}` cannot be updated", k.name),
                        )
                        .with_help("delete the edge and insert a new one"),
                    );
                } else {
                    self.unknown_prop(owner, props.iter().map(|p| p.name.as_str()), k);
                }
                ok = false;
                continue;
            };
            if out.iter().any(|(n, _)| *n == p.name) {
                self.err(Diagnostic::error(
                    "T33",
                    k.span.clone(),
                    format!("`{}` is set twice", k.name),
                ));
                ok = false;
                continue;
            }
            if immutable.contains(&p.name) {
                self.err(
                    Diagnostic::error("T30", k.span.clone(), format!("key property `{}` cannot be updated", p.name))
                        .with_help("a key identifies the node; insert a node with the new key and delete the old one"),
                );
                ok = false;
                continue;
            }
            let Some((x, t)) = self.expr(v, Ctx::Value, scope) else {
                ok = false;
                continue;
            };
            if !self.value_fits(p, &x, &t, v.span()) {
                ok = false;
                continue;
            }
            out.push((p.name.clone(), coerce_literal(&p.ty, x)));
        }
        ok.then_some(out)
    }

    /// Checks that a mutation value fits property `p` (`T29`, `T12`).
    fn value_fits(&mut self, p: &Property, x: &Expr, t: &ValueType, span: Range<usize>) -> bool {
        let pt = ValueType::of_prop(&p.ty);
        if *t == ValueType::Null {
            if p.nullable {
                return true;
            }
            self.err(
                Diagnostic::error("T29", span, format!("`{}` is not nullable", p.name))
                    .with_help("give it a value"),
            );
            return false;
        }
        let fits = match (&p.ty, t) {
            (
                PropType::Scalar {
                    scalar: ScalarType::Blob,
                },
                ValueType::Blob | ValueType::String,
            ) => true,
            (PropType::Scalar { scalar }, ValueType::String) if scalar.is_temporal() => match x {
                Expr::Literal {
                    value: LiteralValue::String(s),
                } => {
                    let good = if *scalar == ScalarType::Date {
                        parse_date(s).is_some()
                    } else {
                        parse_datetime(s).is_some()
                    };
                    if !good {
                        self.err(bad_temporal(
                            s,
                            if *scalar == ScalarType::Date {
                                "date"
                            } else {
                                "datetime"
                            },
                            span,
                        ));
                        return false;
                    }
                    true
                }
                _ => false,
            },
            (PropType::Vector { dim }, ValueType::List { item }) => {
                let n = match x {
                    Expr::Literal {
                        value: LiteralValue::List(v),
                    } => Some(v.len()),
                    _ => None,
                };
                item.is_numeric() && n.is_none_or(|n| n == *dim as usize)
            }
            (PropType::Scalar { scalar }, ValueType::Int { .. }) if scalar.is_integer() => {
                if let Expr::Literal {
                    value: LiteralValue::Int(v),
                } = x
                {
                    let in_range = match scalar {
                        ScalarType::I32 => i32::try_from(*v).is_ok(),
                        ScalarType::U32 => u32::try_from(*v).is_ok(),
                        ScalarType::U64 => *v >= 0,
                        _ => true,
                    };
                    if !in_range {
                        self.err(Diagnostic::error(
                            "T29",
                            span,
                            format!("{v} is out of range for `{}: {}`", p.name, p.ty),
                        ));
                        return false;
                    }
                }
                true
            }
            (PropType::Scalar { scalar }, ValueType::Float { .. }) if scalar.is_integer() => false,
            _ => compatible(&pt, t),
        };
        if !fits {
            let what = match x {
                Expr::Param { name } => format!("parameter `${name}` is `{t}`"),
                _ => format!("the value is `{t}`"),
            };
            self.err(
                Diagnostic::error(
                    "T29",
                    span,
                    format!("`{}` is `{}`, but {what}", p.name, p.ty),
                )
                .with_help("pass a value of the property's type"),
            );
            return false;
        }
        self.enum_literal(&pt, x, span).is_some()
    }

    fn predicate(
        &mut self,
        owner: &str,
        kind: TargetKind,
        props: &[Property],
        pr: &PredicateAst,
        scope: &HashMap<String, VarInfo>,
    ) -> Option<Predicate> {
        let (x, t) = self.expr(&pr.value, Ctx::Value, scope)?;
        let (name, pt) = match props.iter().find(|p| p.name == pr.prop.name) {
            Some(p) if p.ty.is_blob() => {
                self.err(blob_read_error(pr.prop.span.clone()));
                return None;
            }
            Some(p) => (p.name.clone(), ValueType::of_prop(&p.ty)),
            None => match (kind, pr.prop.name.as_str()) {
                (_, "id") => ("id".to_string(), ValueType::String),
                (TargetKind::Edge, "from" | "src") => ("src".to_string(), ValueType::String),
                (TargetKind::Edge, "to" | "dst") => ("dst".to_string(), ValueType::String),
                _ => {
                    let mut names: Vec<&str> = props.iter().map(|p| p.name.as_str()).collect();
                    names.push("id");
                    if kind == TargetKind::Edge {
                        names.extend(["from", "to"]);
                    }
                    self.unknown_prop(owner, names.into_iter(), &pr.prop);
                    return None;
                }
            },
        };
        let (_, value) = self.compare(
            pr.op,
            (
                &Expr::Property {
                    var: String::new(),
                    property: name.clone(),
                },
                &pt,
            ),
            (&x, &t),
            pr.value.span(),
        )?;
        Some(Predicate {
            property: name,
            op: pr.op,
            value,
        })
    }
}

// ------------------------------------------------------------------ helpers

fn lit(v: LiteralValue) -> Expr {
    Expr::Literal { value: v }
}

fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

fn blob_read_error(span: Range<usize>) -> Diagnostic {
    Diagnostic::error(
        "T24",
        span,
        "Blob values cannot be read in a query (projected, ordered, compared or aggregated)",
    )
    .with_help("read Blob cells through the blob read API, not `.gq`")
}

fn bad_temporal(s: &str, what: &str, span: Range<usize>) -> Diagnostic {
    let example = if what == "date" {
        "\"2026-01-31\""
    } else {
        "\"2026-01-31T12:00:00Z\""
    };
    Diagnostic::error("T39", span, format!("`{s}` is not a valid {what}"))
        .with_help(format!("write a {what} like {example}"))
}

/// True when a value of type `b` may be compared with or stored as `a`.
fn compatible(a: &ValueType, b: &ValueType) -> bool {
    use ValueType as V;
    match (a, b) {
        (V::Null, _) | (_, V::Null) => true,
        (x, y) if x.is_numeric() && y.is_numeric() => true,
        (x, y) if x.is_textual() && y.is_textual() => true,
        (V::Bool, V::Bool)
        | (V::Date, V::Date)
        | (V::DateTime, V::DateTime)
        | (V::Blob, V::Blob) => true,
        (V::Vector { dim: a }, V::Vector { dim: b }) => a == b,
        (V::List { item: a }, V::List { item: b }) => compatible(a, b),
        (V::Node { type_name: a }, V::Node { type_name: b }) => a == b,
        _ => false,
    }
}

/// String literals stored into temporal properties become typed literals.
fn coerce_literal(t: &PropType, x: Expr) -> Expr {
    match (t.as_scalar(), &x) {
        (
            Some(ScalarType::Date),
            Expr::Literal {
                value: LiteralValue::String(s),
            },
        ) => parse_date(s).map_or(x.clone(), |d| lit(LiteralValue::Date(d))),
        (
            Some(ScalarType::DateTime),
            Expr::Literal {
                value: LiteralValue::String(s),
            },
        ) => parse_datetime(s).map_or(x.clone(), |d| lit(LiteralValue::DateTime(d))),
        _ => x,
    }
}

fn default_column_name(e: &ExprAst) -> String {
    match e {
        ExprAst::Prop { prop, .. } => prop.name.clone(),
        ExprAst::Var(v) => v.name.clone(),
        ExprAst::Call { func, .. } => func.name.clone(),
        ExprAst::Alias(a) => a.name.clone(),
        _ => "value".to_string(),
    }
}

fn contains_aggregate(e: &Expr) -> bool {
    match e {
        Expr::Aggregate { .. } => true,
        Expr::List { items } => items.iter().any(contains_aggregate),
        Expr::Rrf { a, b, .. } => contains_aggregate(a) || contains_aggregate(b),
        _ => false,
    }
}

/// Variables an expression reads.
fn expr_vars(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Property { var, .. }
        | Expr::EdgeProperty { var, .. }
        | Expr::Node { var }
        | Expr::TextMatch { var, .. }
        | Expr::Bm25 { var, .. }
        | Expr::Nearest { var, .. } => {
            out.insert(var.clone());
        }
        Expr::Aggregate { arg, .. } => expr_vars(arg, out),
        Expr::Rrf { a, b, .. } => {
            expr_vars(a, out);
            expr_vars(b, out);
        }
        Expr::List { items } => items.iter().for_each(|i| expr_vars(i, out)),
        _ => {}
    }
}

/// Every variable a block mentions (including nested blocks' free vars).
fn collect_vars(clauses: &[RClause], out: &mut BTreeSet<String>) {
    for c in clauses {
        match c {
            RClause::Bind { var, props, .. } => {
                out.insert(var.clone());
                props.iter().for_each(|(_, e)| expr_vars(e, out));
            }
            RClause::Trav {
                src, dst, edge_var, ..
            } => {
                out.insert(src.clone());
                out.insert(dst.clone());
                if let Some(e) = edge_var {
                    out.insert(e.clone());
                }
            }
            RClause::Filter { vars, .. } => out.extend(vars.iter().cloned()),
            RClause::Not { free, .. } => out.extend(free.iter().cloned()),
        }
    }
}

// ------------------------------------------------------------------ planner

/// A binding seen by the planner: (variable, node type, property equalities).
type PlannedBinding = (String, String, Vec<(String, Expr)>);

/// Orders a block's clauses into a pipeline. `bound` holds the variables
/// already bound on entry (the enclosing block's, inside `not`) and receives
/// the ones this block binds, in order.
///
/// Greedy: start from the most selective binding (key equality, then an
/// indexed equality, then any equality, then none); follow traversals from
/// bound variables; apply each filter and `not` as soon as its variables are
/// bound.
fn plan(cat: &Catalog, clauses: &[RClause], bound: &mut Vec<String>) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut binds: Vec<PlannedBinding> = Vec::new();
    let mut travs: Vec<&RClause> = Vec::new();
    let mut filters: Vec<&RClause> = Vec::new();
    let mut types: HashMap<String, String> = HashMap::new();
    for c in clauses {
        match c {
            RClause::Bind {
                var,
                node_type,
                props,
            } => {
                types.insert(var.clone(), node_type.clone());
                match binds.iter_mut().find(|(v, _, _)| v == var) {
                    Some(b) => b.2.extend(props.iter().cloned()),
                    None => binds.push((var.clone(), node_type.clone(), props.clone())),
                }
            }
            RClause::Trav {
                src,
                dst,
                src_type,
                dst_type,
                ..
            } => {
                types.entry(src.clone()).or_insert_with(|| src_type.clone());
                types.entry(dst.clone()).or_insert_with(|| dst_type.clone());
                travs.push(c);
            }
            RClause::Filter { .. } | RClause::Not { .. } => filters.push(c),
        }
    }
    let props_of = |v: &str| -> Vec<(String, Expr)> {
        binds
            .iter()
            .find(|(b, _, _)| b == v)
            .map(|b| b.2.clone())
            .unwrap_or_default()
    };
    // A binding's property match may name a variable bound later
    // (`$c: Company { slug: $a.slug }` before `$a`): it is usable by the
    // scan only once that variable is bound; until then it waits here as
    // a filter, emitted as soon as every variable it names is bound.
    let vars_of = |e: &Expr| -> BTreeSet<String> {
        let mut vs = BTreeSet::new();
        expr_vars(e, &mut vs);
        vs
    };
    let mut deferred: Vec<(BTreeSet<String>, Op)> = Vec::new();
    let emit_ready =
        |ops: &mut Vec<Op>, deferred: &mut Vec<(BTreeSet<String>, Op)>, bound: &Vec<String>| {
            let mut i = 0;
            while i < deferred.len() {
                if deferred[i].0.iter().all(|v| bound.contains(v)) {
                    ops.push(deferred.remove(i).1);
                } else {
                    i += 1;
                }
            }
        };
    let mut emitted_filters = vec![false; filters.len()];
    let mut done_travs = vec![false; travs.len()];
    loop {
        emit_ready(&mut ops, &mut deferred, &*bound);
        // Filters and anti-joins whose variables are all bound.
        for (i, f) in filters.iter().enumerate() {
            if emitted_filters[i] {
                continue;
            }
            let ready = match f {
                RClause::Filter { vars, .. } => vars.iter().all(|v| bound.contains(v)),
                RClause::Not { free, .. } => free.iter().all(|v| bound.contains(v)),
                _ => true,
            };
            if !ready {
                continue;
            }
            emitted_filters[i] = true;
            match f {
                RClause::Filter {
                    left, op, right, ..
                } => ops.push(Op::Filter {
                    left: left.clone(),
                    op: *op,
                    right: right.clone(),
                }),
                RClause::Not { clauses, .. } => {
                    let mut inner_bound = bound.clone();
                    let inner = plan(cat, clauses, &mut inner_bound);
                    ops.push(Op::AntiJoin { ops: inner });
                }
                _ => {}
            }
        }
        // A traversal with a bound side.
        let next = travs.iter().enumerate().find(|(i, t)| {
            !done_travs[*i]
                && matches!(t, RClause::Trav { src, dst, .. } if bound.contains(src) || bound.contains(dst))
        });
        if let Some((
            i,
            RClause::Trav {
                src,
                dst,
                edge,
                src_type,
                dst_type,
                undirected,
                min,
                max,
                edge_var,
            },
        )) = next
        {
            done_travs[i] = true;
            let forward = bound.contains(src);
            let (from, to, to_type) = if forward {
                (src, dst, dst_type)
            } else {
                (dst, src, src_type)
            };
            let to_bound = bound.contains(to);
            ops.push(Op::Expand {
                from_var: from.clone(),
                edge: edge.clone(),
                to_var: to.clone(),
                to_type: to_type.clone(),
                reverse: !forward,
                undirected: *undirected,
                min_hops: *min,
                max_hops: *max,
                edge_var: edge_var.clone(),
                to_bound,
            });
            if !to_bound {
                bound.push(to.clone());
                if let Some(ev) = edge_var {
                    bound.push(ev.clone());
                }
                for (p, e) in props_of(to) {
                    let mut vars = vars_of(&e);
                    vars.insert(to.clone());
                    deferred.push((
                        vars,
                        Op::Filter {
                            left: Expr::Property {
                                var: to.clone(),
                                property: p,
                            },
                            op: Some(CmpOp::Eq),
                            right: Some(e),
                        },
                    ));
                }
            } else if let Some(ev) = edge_var {
                bound.push(ev.clone());
            }
            continue;
        }
        // Otherwise scan the most selective unbound variable.
        let mut candidates: Vec<(u8, usize, String, String)> = Vec::new();
        let usable = |props: &[(String, Expr)]| -> Vec<(String, Expr)> {
            props
                .iter()
                .filter(|(_, e)| vars_of(e).iter().all(|v| bound.contains(v)))
                .cloned()
                .collect()
        };
        for (order, (v, t, props)) in binds.iter().enumerate() {
            if bound.contains(v) {
                continue;
            }
            let (rank, _) = lookup_for(cat, t, &usable(props));
            candidates.push((rank, order, v.clone(), t.clone()));
        }
        for (order, t) in travs.iter().enumerate() {
            if done_travs[order] {
                continue;
            }
            if let RClause::Trav { src, .. } = t
                && !bound.contains(src)
                && !binds.iter().any(|(v, _, _)| v == src)
            {
                let ty = types.get(src).cloned().unwrap_or_default();
                candidates.push((9, binds.len() + order, src.clone(), ty));
            }
        }
        candidates.sort();
        let Some((_, _, var, node_type)) = candidates.into_iter().next() else {
            break;
        };
        let all = props_of(&var);
        let props = usable(&all);
        for (p, e) in all.into_iter().filter(|pe| !props.contains(pe)) {
            let mut vars = vars_of(&e);
            vars.insert(var.clone());
            deferred.push((
                vars,
                Op::Filter {
                    left: Expr::Property {
                        var: var.clone(),
                        property: p,
                    },
                    op: Some(CmpOp::Eq),
                    right: Some(e),
                },
            ));
        }
        let (_, lookup) = lookup_for(cat, &node_type, &props);
        ops.push(Op::Scan {
            var: var.clone(),
            node_type,
            equals: props,
            lookup,
        });
        bound.push(var);
    }
    emit_ready(&mut ops, &mut deferred, &*bound);
    ops
}

/// Selectivity rank (lower is better) and access path of a scan.
fn lookup_for(cat: &Catalog, node_type: &str, props: &[(String, Expr)]) -> (u8, Lookup) {
    let Some(node) = cat.node(node_type) else {
        return (8, Lookup::Full);
    };
    if let Some(key) = &node.key
        && key.iter().all(|k| props.iter().any(|(p, _)| p == k))
    {
        return (0, Lookup::Key);
    }
    // Only a BTREE answers equality; a full-text index does not.
    if let Some((p, _)) = props.iter().find(|(p, _)| {
        node.indexes
            .iter()
            .any(|i| &i.property == p && i.kind == crate::schema::IndexKind::Btree)
    }) {
        return (
            1,
            Lookup::Index {
                property: p.clone(),
            },
        );
    }
    if props.is_empty() {
        (8, Lookup::Full)
    } else {
        (2, Lookup::Full)
    }
}
