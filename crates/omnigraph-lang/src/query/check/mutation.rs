//! Checking mutations: `insert`, `update`, `delete` targets, assignments,
//! endpoint values and predicates.

use super::*;

impl<'c> Checker<'c> {
    pub(super) fn mutation(&mut self, stmts: &[MutationAst]) -> Option<MutationPlan> {
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
    pub(super) fn target(
        &mut self,
        ty: &Ident,
    ) -> Option<(TargetKind, Vec<Property>, Vec<String>)> {
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

    pub(super) fn insert(
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
        // An `@embed` vector left out is embedded from its source text.
        let missing: Vec<&str> = props
            .iter()
            .filter(|p| {
                p.is_required() && p.embed.is_none() && !values.iter().any(|(n, _)| *n == p.name)
            })
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

    pub(super) fn endpoint_value_fits(&self, node: &str, t: &ValueType) -> bool {
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

    pub(super) fn assignments(
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
    pub(super) fn value_fits(
        &mut self,
        p: &Property,
        x: &Expr,
        t: &ValueType,
        span: Range<usize>,
    ) -> bool {
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

    pub(super) fn predicate(
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
