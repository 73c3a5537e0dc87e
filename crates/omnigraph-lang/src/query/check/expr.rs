//! Checking expressions: variables, properties, literals, function calls
//! (aggregates, text search, vector search) and projections.

use super::*;

impl<'c> Checker<'c> {
    /// Resolves an expression. A bare `$name` is a parameter when one is
    /// declared with that name, else a variable.
    pub(super) fn expr(
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

    pub(super) fn unknown_var(&mut self, v: &Ident, scope: &HashMap<String, VarInfo>) {
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

    pub(super) fn call(
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
    pub(super) fn text_property(
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
}
