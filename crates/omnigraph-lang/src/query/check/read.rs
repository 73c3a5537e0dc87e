//! Checking a read query's `match` blocks: bindings, traversals and their
//! endpoints, property matches, cross-product warnings.

use super::*;

impl<'c> Checker<'c> {
    pub(super) fn read(&mut self, r: &ReadAst) -> Option<ReadPlan> {
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
    pub(super) fn warn_cross_products(&mut self, r: &ReadAst, pipeline: &[Op]) {
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

    pub(super) fn fresh_wildcard(&mut self) -> String {
        self.wildcard_seq += 1;
        format!("_{}", self.wildcard_seq)
    }

    /// Declares the variables of one `match` (or `not`) block, then checks its
    /// expressions. `scope` holds the enclosing blocks' variables too.
    pub(super) fn block(
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

    pub(super) fn declare_binding(
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

    pub(super) fn unknown_node_type(&mut self, ty: &Ident) {
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
    pub(super) fn declare_traversal(
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
    pub(super) fn endpoint(
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

    pub(super) fn node_prop<'n>(&mut self, node: &'n NodeType, k: &Ident) -> Option<&'n Property> {
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

    pub(super) fn unknown_prop<'a>(
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
}
