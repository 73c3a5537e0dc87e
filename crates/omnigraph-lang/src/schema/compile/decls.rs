//! Node declarations: keys, uniques, indexes, declaration annotations.

use super::*;

impl Compiler {
    pub(super) fn node(&mut self, d: &DeclAst) {
        let mut inherited = Vec::new();
        let mut implements = Vec::new();
        for iface in &d.implements {
            if implements.contains(&iface.name) {
                self.err(Diagnostic::error(
                    "S129",
                    iface.span.clone(),
                    format!("`{}` is listed twice in `implements`", iface.name),
                ));
                continue;
            }
            implements.push(iface.name.clone());
            let Some(i) = self.catalog.interfaces.get(&iface.name).cloned() else {
                let what = if self.catalog_has_type(&iface.name) {
                    format!("`{}` is not an interface", iface.name)
                } else {
                    format!("unknown interface `{}`", iface.name)
                };
                let help = did_you_mean(
                    &iface.name,
                    self.catalog.interfaces.keys().map(String::as_str),
                )
                .unwrap_or_else(|| {
                    valid_list(
                        "interfaces",
                        self.catalog.interfaces.keys().map(String::as_str),
                    )
                });
                self.err(Diagnostic::error("S104", iface.span.clone(), what).with_help(help));
                continue;
            };
            for mut p in i.properties {
                if let Some(prev) = inherited.iter().find(|r: &&Resolved| r.prop.name == p.name) {
                    if prev.prop.ty != p.ty || prev.prop.nullable != p.nullable {
                        self.err(Diagnostic::error(
                            "S103",
                            iface.span.clone(),
                            format!(
                                "interfaces `{}` and `{}` both declare `{}` with different types",
                                prev.prop.from_interface.as_deref().unwrap_or("?"),
                                i.name,
                                p.name
                            ),
                        ));
                    }
                    continue;
                }
                p.from_interface = Some(i.name.clone());
                inherited.push(Resolved {
                    prop: p,
                    span: iface.span.clone(),
                });
            }
        }
        let props = self.properties(d, DeclKind::Node, inherited);
        let mut node = NodeType {
            name: d.name.name.clone(),
            implements,
            properties: Vec::new(),
            key: None,
            unique: Vec::new(),
            indexes: Vec::new(),
            ranges: Vec::new(),
            checks: Vec::new(),
            description: None,
            annotations: Vec::new(),
        };
        let mut key_span: Option<Range<usize>> = None;

        // Property-level constraint annotations.
        for r in &props {
            for a in &r.prop.annotations {
                let span = r.span.clone();
                match a.name.as_str() {
                    "key" => self.set_key(
                        &mut node,
                        &mut key_span,
                        vec![r.prop.name.clone()],
                        span,
                        &props,
                    ),
                    "unique" => {
                        if let Some(names) =
                            self.tuple_of(&props, &[(&r.prop.name, span)], "unique", &[])
                        {
                            node.unique.push(names);
                        }
                    }
                    "index" => self.add_index(&mut node.indexes, &props, &r.prop.name, span),
                    _ => {}
                }
            }
        }
        self.decl_annotations(
            d,
            &mut node.description,
            &mut node.annotations,
            DeclKind::Node,
        );

        for c in &d.constraints {
            let name = c.name.name.as_str();
            match name {
                "key" => {
                    if let Some(idents) = self.ident_args(c) {
                        let refs: Vec<(&str, Range<usize>)> = idents
                            .iter()
                            .map(|i| (i.name.as_str(), i.span.clone()))
                            .collect();
                        if let Some(names) = self.tuple_of(&props, &refs, "key", &[]) {
                            self.set_key(&mut node, &mut key_span, names, c.span.clone(), &props);
                        }
                    }
                }
                "unique" => {
                    if let Some(idents) = self.ident_args(c) {
                        let refs: Vec<(&str, Range<usize>)> = idents
                            .iter()
                            .map(|i| (i.name.as_str(), i.span.clone()))
                            .collect();
                        if let Some(names) = self.tuple_of(&props, &refs, "unique", &[]) {
                            node.unique.push(names);
                        }
                    }
                }
                "index" => {
                    if let Some(idents) = self.ident_args(c) {
                        for i in idents {
                            if self.lookup(&props, &i.name, i.span.clone(), &[]).is_some() {
                                self.add_index(&mut node.indexes, &props, &i.name, i.span.clone());
                            }
                        }
                    }
                }
                "range" => {
                    if let Some(r) = self.range_constraint(c, &props) {
                        node.ranges.push(r);
                    }
                }
                "check" => {
                    if let Some(ch) = self.check_constraint(c, &props) {
                        node.checks.push(ch);
                    }
                }
                "card" => self.err(
                    Diagnostic::error(
                        "S123",
                        c.span.clone(),
                        "`@card` applies to edges, not nodes",
                    )
                    .with_help("declare the cardinality on the edge: `edge E: A -> B @card(0..1)`"),
                ),
                _ => node.annotations.push(Annotation {
                    name: name.to_string(),
                    args: c.arg_list().iter().map(ArgAst::text).collect(),
                }),
            }
        }
        // A key implies an index on each of its properties.
        if let Some(key) = node.key.clone() {
            for k in key {
                if !node.indexes.iter().any(|i| i.property == k) {
                    node.indexes.push(IndexDecl {
                        property: k,
                        kind: IndexKind::Btree,
                    });
                }
            }
        }
        node.properties = props.into_iter().map(|r| r.prop).collect();
        self.check_embeds(&node.properties, d);
        self.catalog.nodes.insert(node.name.clone(), node);
    }

    pub(super) fn catalog_has_type(&self, name: &str) -> bool {
        self.catalog.nodes.contains_key(name)
            || self.catalog.edges.contains_key(name)
            || self.catalog.interfaces.contains_key(name)
    }

    pub(super) fn decl_annotations(
        &mut self,
        d: &DeclAst,
        description: &mut Option<String>,
        meta: &mut Vec<Annotation>,
        kind: DeclKind,
    ) {
        for a in &d.annotations {
            match a.name.name.as_str() {
                "description" => match a.single_string() {
                    Some(s) => *description = Some(s.to_string()),
                    None => self.err(string_arg_error(a)),
                },
                // @card on an edge is handled by `edge`.
                "card" if kind == DeclKind::Edge => {}
                "card" => self.err(
                    Diagnostic::error("S123", a.span.clone(), "`@card` applies to edges only")
                        .with_help(
                            "declare the cardinality on the edge: `edge E: A -> B @card(0..1)`",
                        ),
                ),
                "key" | "unique" | "index" | "range" | "check" => self.err(
                    Diagnostic::error(
                        "S123",
                        a.span.clone(),
                        format!(
                            "`@{}` belongs in the type body or on a property",
                            a.name.name
                        ),
                    )
                    .with_help(format!(
                        "move it inside `{{ … }}` as `@{}(property, …)`",
                        a.name.name
                    )),
                ),
                other => meta.push(Annotation {
                    name: other.to_string(),
                    args: a.arg_list().iter().map(ArgAst::text).collect(),
                }),
            }
        }
    }

    pub(super) fn set_key(
        &mut self,
        node: &mut NodeType,
        key_span: &mut Option<Range<usize>>,
        names: Vec<String>,
        span: Range<usize>,
        props: &[Resolved],
    ) {
        if key_span.is_some() {
            self.err(
                Diagnostic::error("S114", span, format!("`{}` declares more than one key", node.name))
                    .with_help("a node type has one key; list several properties in one `@key(a, b)` for a composite key"),
            );
            return;
        }
        for n in &names {
            let Some(r) = props.iter().find(|r| &r.prop.name == n) else {
                continue;
            };
            if r.prop.ty.is_blob() {
                self.err(blob_error("key", n, span.clone()));
                return;
            }
            match &r.prop.ty {
                PropType::List { .. } | PropType::Vector { .. } => {
                    self.err(
                        Diagnostic::error(
                            "S112",
                            span.clone(),
                            format!("key property `{n}` is `{}`; a key must be a scalar", r.prop.ty),
                        )
                        .with_help("key on a String, integer, float, Bool, Date, DateTime or enum property"),
                    );
                    return;
                }
                _ => {}
            }
            if r.prop.nullable {
                self.err(
                    Diagnostic::error(
                        "S111",
                        span.clone(),
                        format!("key property `{n}` is nullable"),
                    )
                    .with_help(format!("remove the `?`: `{n}: {}`", r.prop.ty)),
                );
                return;
            }
        }
        *key_span = Some(span);
        node.key = Some(names);
    }

    /// Looks up a property by name; `extra` are physical columns that may
    /// also be named (`src`, `dst` on edges). Reports `S110` when missing.
    pub(super) fn lookup<'p>(
        &mut self,
        props: &'p [Resolved],
        name: &str,
        span: Range<usize>,
        extra: &[&str],
    ) -> Option<Option<&'p Resolved>> {
        if extra.contains(&name) {
            return Some(None);
        }
        match props.iter().find(|r| r.prop.name == name) {
            Some(r) => Some(Some(r)),
            None => {
                let names = props
                    .iter()
                    .map(|r| r.prop.name.as_str())
                    .chain(extra.iter().copied());
                let names: Vec<&str> = names.collect();
                let help = did_you_mean(name, names.iter().copied())
                    .unwrap_or_else(|| valid_list("properties", names.iter().copied()));
                self.err(
                    Diagnostic::error("S110", span, format!("unknown property `{name}`"))
                        .with_help(help),
                );
                None
            }
        }
    }

    /// Validates a tuple of property names for `@key` / `@unique`.
    pub(super) fn tuple_of(
        &mut self,
        props: &[Resolved],
        refs: &[(&str, Range<usize>)],
        what: &str,
        extra: &[&str],
    ) -> Option<Vec<String>> {
        if refs.is_empty() {
            return None;
        }
        let mut names: Vec<String> = Vec::new();
        let mut ok = true;
        for (n, sp) in refs {
            if names.iter().any(|x| x == n) {
                self.err(Diagnostic::error(
                    "S125",
                    sp.clone(),
                    format!("`{n}` appears twice in `@{what}`"),
                ));
                ok = false;
                continue;
            }
            match self.lookup(props, n, sp.clone(), extra) {
                Some(Some(r)) if r.prop.ty.is_blob() => {
                    self.err(blob_error(what, n, sp.clone()));
                    ok = false;
                }
                Some(Some(r))
                    if what == "unique" && matches!(r.prop.ty, PropType::Vector { .. }) =>
                {
                    self.err(Diagnostic::error(
                        "S112",
                        sp.clone(),
                        format!("`@unique` cannot apply to vector property `{n}`"),
                    ));
                    ok = false;
                }
                Some(_) => names.push(n.to_string()),
                None => ok = false,
            }
        }
        ok.then_some(names)
    }

    pub(super) fn add_index(
        &mut self,
        indexes: &mut Vec<IndexDecl>,
        props: &[Resolved],
        name: &str,
        span: Range<usize>,
    ) {
        let Some(r) = props.iter().find(|r| r.prop.name == name) else {
            // Physical columns (src/dst) get a BTREE.
            if !indexes.iter().any(|i| i.property == name) {
                indexes.push(IndexDecl {
                    property: name.to_string(),
                    kind: IndexKind::Btree,
                });
            }
            return;
        };
        let kind = match &r.prop.ty {
            PropType::Scalar {
                scalar: ScalarType::Blob,
            } => {
                self.err(blob_error("index", name, span));
                return;
            }
            PropType::Scalar {
                scalar: ScalarType::String,
            } => IndexKind::FullText,
            PropType::Scalar { .. } | PropType::Enum { .. } => IndexKind::Btree,
            PropType::List { .. } => IndexKind::LabelList,
            PropType::Vector { .. } => IndexKind::Vector,
        };
        if indexes.iter().any(|i| i.property == name) {
            self.err(
                Diagnostic::error("S125", span, format!("`{name}` is indexed twice"))
                    .with_help("remove the duplicate `@index`"),
            );
            return;
        }
        indexes.push(IndexDecl {
            property: name.to_string(),
            kind,
        });
    }

    /// Arguments that must all be plain property names.
    pub(super) fn ident_args(&mut self, c: &AnnotationAst) -> Option<Vec<Ident>> {
        let args = c.arg_list();
        if args.is_empty() {
            self.err(
                Diagnostic::error(
                    "S124",
                    c.span.clone(),
                    format!(
                        "`@{}` in a type body needs the property names it applies to",
                        c.name.name
                    ),
                )
                .with_help(format!("write `@{}(property, …)`", c.name.name)),
            );
            return None;
        }
        let mut out = Vec::new();
        for a in args {
            match a {
                ArgAst::Ident(i) => out.push(i.clone()),
                other => {
                    self.err(
                        Diagnostic::error(
                            "S124",
                            other.span(),
                            format!(
                                "`@{}` expects property names, found `{}`",
                                c.name.name,
                                other.text()
                            ),
                        )
                        .with_help(format!("write `@{}(property, …)`", c.name.name)),
                    );
                    return None;
                }
            }
        }
        Some(out)
    }
}
