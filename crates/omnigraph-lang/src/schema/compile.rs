//! Validation of a `.pg` syntax tree into a [`Catalog`].
//!
//! Every rule has a stable code (the table in `docs/schema.md`). Compilation
//! collects every error it can find in one pass instead of stopping at the
//! first, so a user fixes a file in one round.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

use super::ast::{DeclAst, DeclKind, PropertyAst, SchemaAst};
use super::catalog::*;
use crate::diag::{Diagnostic, did_you_mean, valid_list};
use crate::syntax::ast::{AnnotationAst, ArgAst, Ident, TypeAst, TypeAstKind};

/// Resolves a written type. Errors: `S107` unknown scalar, `S108` bad vector
/// dimension, `S109` bad enum value. Shared with `.gq` parameter types.
pub fn resolve_type(ty: &TypeAst) -> Result<PropType, Diagnostic> {
    match &ty.kind {
        TypeAstKind::Named(n) => resolve_scalar(n).map(PropType::scalar),
        TypeAstKind::List(n) => {
            let item = resolve_scalar(n)?;
            if item == ScalarType::Blob {
                return Err(Diagnostic::error(
                    "S107",
                    n.span.clone(),
                    "a list of Blob is not a supported type",
                )
                .with_help("store each Blob in its own property or node"));
            }
            Ok(PropType::List { item })
        }
        TypeAstKind::Enum(values) => {
            let mut out = BTreeSet::new();
            for v in values {
                if v.name.is_empty() {
                    return Err(Diagnostic::error(
                        "S109",
                        v.span.clone(),
                        "an enum value may not be empty",
                    ));
                }
                out.insert(v.name.clone());
            }
            Ok(PropType::Enum {
                values: out.into_iter().collect(),
            })
        }
        TypeAstKind::Vector { dim, span } => match dim.parse::<u64>() {
            Ok(d) if d >= 1 && d <= i32::MAX as u64 => Ok(PropType::Vector { dim: d as u32 }),
            _ => Err(Diagnostic::error(
                "S108",
                span.clone(),
                format!("Vector dimension `{dim}` is out of range"),
            )
            .with_help(format!("use a dimension between 1 and {}", i32::MAX))),
        },
    }
}

fn resolve_scalar(n: &Ident) -> Result<ScalarType, Diagnostic> {
    ScalarType::from_name(&n.name).ok_or_else(|| {
        let mut d = Diagnostic::error("S107", n.span.clone(), format!("unknown type `{}`", n.name));
        let names = ScalarType::ALL.map(|s| s.name());
        d = d.with_help(did_you_mean(&n.name, names).unwrap_or_else(|| {
            valid_list("types", names.into_iter().chain(["Vector(n)", "enum(…)"]))
        }));
        d
    })
}

/// Compiles a parsed schema. Returns the catalog, or every error found.
pub fn compile(ast: &SchemaAst) -> Result<Catalog, Vec<Diagnostic>> {
    let mut c = Compiler::default();
    c.run(ast);
    if c.errors.is_empty() {
        Ok(c.catalog)
    } else {
        c.errors.sort_by_key(|d| d.span.start);
        Err(c.errors)
    }
}

#[derive(Default)]
struct Compiler {
    catalog: Catalog,
    errors: Vec<Diagnostic>,
}

/// A property with the span it was declared at (for constraint checks).
struct Resolved {
    prop: Property,
    span: Range<usize>,
}

impl Compiler {
    fn err(&mut self, d: Diagnostic) {
        self.errors.push(d);
    }

    fn run(&mut self, ast: &SchemaAst) {
        // Names first, so declarations may refer to each other in any order.
        let mut seen: HashMap<String, (DeclKind, Range<usize>)> = HashMap::new();
        let mut seen_edge_ci: HashMap<String, String> = HashMap::new();
        for d in &ast.decls {
            if let Some((kind, _)) = seen.get(&d.name.name) {
                self.err(
                    Diagnostic::error(
                        "S101",
                        d.name.span.clone(),
                        format!(
                            "`{}` is already declared (as {} `{}`)",
                            d.name.name,
                            kind.word(),
                            d.name.name
                        ),
                    )
                    .with_help("give each interface, node and edge type its own name"),
                );
                continue;
            }
            if d.kind == DeclKind::Edge {
                let lower = d.name.name.to_ascii_lowercase();
                if let Some(other) = seen_edge_ci.get(&lower) {
                    self.err(
                        Diagnostic::error(
                            "S101",
                            d.name.span.clone(),
                            format!(
                                "edge `{}` differs from edge `{other}` only by case; queries match edge names case-insensitively",
                                d.name.name
                            ),
                        )
                        .with_help("rename one of the two edges"),
                    );
                    continue;
                }
                seen_edge_ci.insert(lower, d.name.name.clone());
                if !d.name.name.starts_with(|c: char| c.is_ascii_uppercase()) {
                    self.err(
                        Diagnostic::error(
                            "S127",
                            d.name.span.clone(),
                            format!("edge name `{}` must start with an uppercase letter", d.name.name),
                        )
                        .with_help("queries traverse `Knows` as `knows`: the leading case tells an edge from a node binding"),
                    );
                }
            }
            seen.insert(d.name.name.clone(), (d.kind, d.name.span.clone()));
        }

        for d in ast.decls.iter().filter(|d| d.kind == DeclKind::Interface) {
            self.interface(d);
        }
        for d in ast.decls.iter().filter(|d| d.kind == DeclKind::Node) {
            if self.catalog.nodes.contains_key(&d.name.name) {
                continue;
            }
            self.node(d);
        }
        for d in ast.decls.iter().filter(|d| d.kind == DeclKind::Edge) {
            if self.catalog.edges.contains_key(&d.name.name) {
                continue;
            }
            self.edge(d, &seen);
        }
    }

    fn interface(&mut self, d: &DeclAst) {
        if self.catalog.interfaces.contains_key(&d.name.name) {
            return;
        }
        for c in &d.constraints {
            self.err(
                Diagnostic::error(
                    "S123",
                    c.span.clone(),
                    format!("`@{}` is not allowed in an interface body", c.name.name),
                )
                .with_help("interfaces declare properties only; put constraints on the node that implements it"),
            );
        }
        let props = self.properties(d, DeclKind::Interface, Vec::new());
        self.catalog.interfaces.insert(
            d.name.name.clone(),
            Interface {
                name: d.name.name.clone(),
                properties: props.into_iter().map(|r| r.prop).collect(),
            },
        );
    }

    /// Resolves a body's properties after `inherited`, checking duplicates,
    /// reserved names and property-level annotations.
    fn properties(
        &mut self,
        d: &DeclAst,
        kind: DeclKind,
        inherited: Vec<Resolved>,
    ) -> Vec<Resolved> {
        let mut out = inherited;
        for p in &d.properties {
            let Some(prop) = self.property(p, kind) else {
                continue;
            };
            if let Some(prev) = out.iter().find(|r| r.prop.name == prop.name) {
                match &prev.prop.from_interface {
                    Some(iface)
                        if prev.prop.ty == prop.ty && prev.prop.nullable == prop.nullable =>
                    {
                        // Re-declaring an inherited property with the same type is allowed;
                        // the local declaration's annotations win.
                        let _ = iface;
                        out.retain(|r| r.prop.name != prop.name);
                    }
                    Some(iface) => {
                        let (iface, pty, pnull) =
                            (iface.clone(), prev.prop.ty.clone(), prev.prop.nullable);
                        self.err(
                            Diagnostic::error(
                                "S103",
                                p.name.span.clone(),
                                format!(
                                    "property `{}` conflicts with `{}: {}{}` inherited from interface `{iface}`",
                                    prop.name,
                                    prop.name,
                                    pty,
                                    if pnull { "?" } else { "" }
                                ),
                            )
                            .with_help("declare it with the interface's type, or rename it"),
                        );
                        continue;
                    }
                    None => {
                        self.err(
                            Diagnostic::error(
                                "S102",
                                p.name.span.clone(),
                                format!(
                                    "property `{}` is declared twice in `{}`",
                                    prop.name, d.name.name
                                ),
                            )
                            .with_help("remove or rename one of the declarations"),
                        );
                        continue;
                    }
                }
            }
            out.push(Resolved {
                prop,
                span: p.span.clone(),
            });
        }
        out
    }

    fn property(&mut self, p: &PropertyAst, kind: DeclKind) -> Option<Property> {
        let name = &p.name.name;
        let mut reserved: Vec<&str> = RESERVED_SYSTEM_COLUMNS.to_vec();
        match kind {
            DeclKind::Node | DeclKind::Interface => reserved.push("id"),
            DeclKind::Edge => reserved.extend(["id", "src", "dst", "from", "to"]),
        }
        if reserved.contains(&name.as_str()) {
            self.err(
                Diagnostic::error(
                    "S106",
                    p.name.span.clone(),
                    format!("`{name}` is a reserved column name"),
                )
                .with_help(format!(
                    "reserved on a {}: {}; pick another name",
                    kind.word(),
                    reserved.join(", ")
                )),
            );
            return None;
        }
        let ty = match resolve_type(&p.ty) {
            Ok(t) => t,
            Err(d) => {
                self.err(d);
                return None;
            }
        };
        let mut prop = Property {
            name: name.clone(),
            ty,
            nullable: p.ty.nullable,
            default: None,
            embed: None,
            description: None,
            rename_from: None,
            from_interface: None,
            annotations: Vec::new(),
        };
        let mut seen: HashMap<&str, Range<usize>> = HashMap::new();
        for a in &p.annotations {
            let an = a.name.name.as_str();
            if seen.contains_key(an) {
                self.err(
                    Diagnostic::error(
                        "S125",
                        a.span.clone(),
                        format!("`@{an}` is given twice on `{name}`"),
                    )
                    .with_help("keep one"),
                );
                continue;
            }
            seen.insert(an, a.span.clone());
            prop.annotations.push(Annotation {
                name: an.to_string(),
                args: a.arg_list().iter().map(ArgAst::text).collect(),
            });
            match an {
                // `@key(a, b)` and the like with arguments never reach
                // here: the parser makes them body constraints
                // (`schema::ast`, `build_property`).
                "description" => match a.single_string() {
                    Some(s) => prop.description = Some(s.to_string()),
                    None => self.err(string_arg_error(a)),
                },
                "rename_from" => match a.single_string() {
                    Some(s) => prop.rename_from = Some(s.to_string()),
                    None => self.err(string_arg_error(a)),
                },
                "default" => match a.arg_list() {
                    [arg] => match literal_for(&prop, arg) {
                        Ok(l) => prop.default = Some(l),
                        Err(d) => self.err(d),
                    },
                    _ => self.err(
                        Diagnostic::error(
                            "S124",
                            a.span.clone(),
                            "`@default` takes exactly one value",
                        )
                        .with_help("for example `@default(0)` or `@default(\"draft\")`"),
                    ),
                },
                "embed" => self.embed(a, &mut prop),
                "card" => self.err(
                    Diagnostic::error(
                        "S123",
                        a.span.clone(),
                        "`@card` belongs on an edge declaration, not a property",
                    )
                    .with_help("write `edge E: A -> B @card(0..1)`"),
                ),
                _ => {}
            }
        }
        if seen.contains_key("key") && seen.contains_key("default") {
            self.err(
                Diagnostic::error(
                    "S125",
                    p.span.clone(),
                    format!("key property `{name}` cannot have a `@default`"),
                )
                .with_help("every node must supply its own key"),
            );
        }
        Some(prop)
    }

    fn embed(&mut self, a: &AnnotationAst, prop: &mut Property) {
        if !matches!(prop.ty, PropType::Vector { .. }) {
            self.err(
                Diagnostic::error(
                    "S119",
                    a.span.clone(),
                    format!(
                        "`@embed` is on `{}`, which is `{}`, not a Vector",
                        prop.name, prop.ty
                    ),
                )
                .with_help("put `@embed(\"text_property\")` on a `Vector(n)` property"),
            );
            return;
        }
        let mut source = None;
        let mut model = None;
        for arg in a.arg_list() {
            match arg {
                ArgAst::Str { value, .. } if source.is_none() => source = Some(value.clone()),
                // `@embed(title)`: the property named bare, as the
                // reference's schemas also write it.
                ArgAst::Ident(id) if source.is_none() => source = Some(id.name.clone()),
                ArgAst::Kwarg { key, value } if key.name == "model" => match value.as_ref() {
                    ArgAst::Str { value, .. } => model = Some(value.clone()),
                    other => {
                        self.err(Diagnostic::error(
                            "S121",
                            other.span(),
                            "`model` must be a string",
                        ));
                        return;
                    }
                },
                ArgAst::Kwarg { key, .. } => {
                    self.err(
                        Diagnostic::error(
                            "S121",
                            key.span.clone(),
                            format!("unknown `@embed` option `{}`", key.name),
                        )
                        .with_help("`model` is the only supported option"),
                    );
                    return;
                }
                other => {
                    self.err(
                        Diagnostic::error("S121", other.span(), "unexpected `@embed` argument")
                            .with_help("write `@embed(\"source_property\")` or `@embed(\"source_property\", model=\"…\")`"),
                    );
                    return;
                }
            }
        }
        match source {
            Some(source) => prop.embed = Some(EmbedSpec { source, model }),
            None => self.err(
                Diagnostic::error(
                    "S121",
                    a.span.clone(),
                    "`@embed` needs the source property's name",
                )
                .with_help("write `@embed(\"text\")`"),
            ),
        }
    }

    fn node(&mut self, d: &DeclAst) {
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

    fn catalog_has_type(&self, name: &str) -> bool {
        self.catalog.nodes.contains_key(name)
            || self.catalog.edges.contains_key(name)
            || self.catalog.interfaces.contains_key(name)
    }

    fn decl_annotations(
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

    fn set_key(
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
    fn lookup<'p>(
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
    fn tuple_of(
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

    fn add_index(
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
    fn ident_args(&mut self, c: &AnnotationAst) -> Option<Vec<Ident>> {
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

    fn range_constraint(
        &mut self,
        c: &AnnotationAst,
        props: &[Resolved],
    ) -> Option<RangeConstraint> {
        let (prop, min, max, rspan) = match c.arg_list() {
            [ArgAst::Ident(p), ArgAst::Range { min, max, span, .. }] => (p, min, max, span.clone()),
            _ => {
                self.err(
                    Diagnostic::error(
                        "S124",
                        c.span.clone(),
                        "`@range` expects a property and a range",
                    )
                    .with_help("write `@range(age, 0..150)`; either bound may be left open"),
                );
                return None;
            }
        };
        let r = self.lookup(props, &prop.name, prop.span.clone(), &[])??;
        let numeric = r.prop.ty.as_scalar().is_some_and(ScalarType::is_numeric);
        if !numeric {
            self.err(
                Diagnostic::error(
                    "S115",
                    prop.span.clone(),
                    format!(
                        "`@range` needs a numeric property; `{}` is `{}`",
                        prop.name, r.prop.ty
                    ),
                )
                .with_help("use `@check(property, \"regex\")` for text"),
            );
            return None;
        }
        let parse = |s: &Option<String>| s.as_ref().map(|t| t.parse::<f64>());
        let (lo, hi) = match (parse(min), parse(max)) {
            (Some(Err(_)), _) | (_, Some(Err(_))) => {
                self.err(Diagnostic::error(
                    "S116",
                    rspan,
                    "range bounds must be numbers",
                ));
                return None;
            }
            (a, b) => (a.and_then(Result::ok), b.and_then(Result::ok)),
        };
        if lo.is_none() && hi.is_none() {
            self.err(
                Diagnostic::error("S116", rspan, "`@range` with no bounds constrains nothing")
                    .with_help("give a lower bound, an upper bound, or both: `0..150`"),
            );
            return None;
        }
        if let (Some(a), Some(b)) = (lo, hi)
            && a > b
        {
            self.err(
                Diagnostic::error(
                    "S116",
                    rspan,
                    format!("range `{a}..{b}` is inverted: no value can satisfy it"),
                )
                .with_help(format!("write `{b}..{a}`")),
            );
            return None;
        }
        if r.prop.ty.as_scalar().is_some_and(ScalarType::is_integer) {
            let frac = |v: Option<f64>| v.is_some_and(|x| x.fract() != 0.0);
            if frac(lo) || frac(hi) {
                self.err(Diagnostic::error(
                    "S116",
                    rspan,
                    format!(
                        "`{}` is an integer property; range bounds must be integers",
                        prop.name
                    ),
                ));
                return None;
            }
            if r.prop
                .ty
                .as_scalar()
                .is_some_and(|s| matches!(s, ScalarType::U32 | ScalarType::U64))
                && hi.is_some_and(|h| h < 0.0)
            {
                self.err(Diagnostic::error(
                    "S116",
                    rspan,
                    format!(
                        "`{}` is unsigned; a negative upper bound is empty",
                        prop.name
                    ),
                ));
                return None;
            }
        }
        Some(RangeConstraint {
            property: prop.name.clone(),
            min: lo,
            max: hi,
        })
    }

    fn check_constraint(
        &mut self,
        c: &AnnotationAst,
        props: &[Resolved],
    ) -> Option<CheckConstraint> {
        let (prop, pattern, pspan) = match c.arg_list() {
            [ArgAst::Ident(p), ArgAst::Str { value, span }] => (p, value, span.clone()),
            _ => {
                self.err(
                    Diagnostic::error(
                        "S124",
                        c.span.clone(),
                        "`@check` expects a property and a regex string",
                    )
                    .with_help("write `@check(code, \"^[A-Z]{3}$\")`"),
                );
                return None;
            }
        };
        let r = self.lookup(props, &prop.name, prop.span.clone(), &[])??;
        if !r.prop.ty.is_textual() {
            self.err(Diagnostic::error(
                "S117",
                prop.span.clone(),
                format!(
                    "`@check` needs a String property; `{}` is `{}`",
                    prop.name, r.prop.ty
                ),
            ));
            return None;
        }
        if let Err(e) = regex::Regex::new(pattern) {
            let first = e
                .to_string()
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string();
            self.err(
                Diagnostic::error("S118", pspan, format!("invalid regex in `@check`: {first}"))
                    .with_help("the pattern uses Rust `regex` syntax"),
            );
            return None;
        }
        Some(CheckConstraint {
            property: prop.name.clone(),
            pattern: pattern.clone(),
        })
    }

    /// `@embed("src")` must name a String property of the same type.
    fn check_embeds(&mut self, props: &[Property], d: &DeclAst) {
        for p in props {
            let Some(e) = &p.embed else { continue };
            let span = d
                .properties
                .iter()
                .find(|x| x.name.name == p.name)
                .map_or(d.name.span.clone(), |x| x.span.clone());
            match props.iter().find(|s| s.name == e.source) {
                Some(s) if s.ty.as_scalar() == Some(ScalarType::String) => {}
                Some(s) => self.err(
                    Diagnostic::error(
                        "S120",
                        span,
                        format!(
                            "`@embed` source `{}` is `{}`; it must be a String",
                            e.source, s.ty
                        ),
                    )
                    .with_help("embed from a String property"),
                ),
                None => {
                    let names: Vec<&str> = props
                        .iter()
                        .filter(|s| s.ty.as_scalar() == Some(ScalarType::String))
                        .map(|s| s.name.as_str())
                        .collect();
                    let help = did_you_mean(&e.source, names.iter().copied())
                        .unwrap_or_else(|| valid_list("String properties", names.iter().copied()));
                    self.err(
                        Diagnostic::error(
                            "S120",
                            span,
                            format!(
                                "`@embed` source `{}` is not a property of `{}`",
                                e.source, d.name.name
                            ),
                        )
                        .with_help(help),
                    );
                }
            }
        }
    }

    fn edge(&mut self, d: &DeclAst, seen: &HashMap<String, (DeclKind, Range<usize>)>) {
        let Some((from, to)) = &d.endpoints else {
            return;
        };
        let mut ok = true;
        for end in [from, to] {
            if self.catalog.nodes.contains_key(&end.name) {
                continue;
            }
            ok = false;
            let msg = match seen.get(&end.name) {
                Some((DeclKind::Interface, _)) => format!(
                    "edge endpoint `{}` is an interface; endpoints must be node types",
                    end.name
                ),
                Some((DeclKind::Edge, _)) => format!(
                    "edge endpoint `{}` is an edge; endpoints must be node types",
                    end.name
                ),
                _ => format!("unknown node type `{}`", end.name),
            };
            let help = did_you_mean(&end.name, self.catalog.nodes.keys().map(String::as_str))
                .unwrap_or_else(|| {
                    valid_list("node types", self.catalog.nodes.keys().map(String::as_str))
                });
            self.err(Diagnostic::error("S105", end.span.clone(), msg).with_help(help));
        }
        let props = self.properties(d, DeclKind::Edge, Vec::new());
        let mut edge = EdgeType {
            name: d.name.name.clone(),
            from: from.name.clone(),
            to: to.name.clone(),
            cardinality: Cardinality::default(),
            properties: Vec::new(),
            unique: Vec::new(),
            indexes: Vec::new(),
            description: None,
            annotations: Vec::new(),
        };
        self.decl_annotations(
            d,
            &mut edge.description,
            &mut edge.annotations,
            DeclKind::Edge,
        );
        let cards: Vec<&AnnotationAst> = d
            .annotations
            .iter()
            .chain(d.constraints.iter())
            .filter(|a| a.name.name == "card")
            .collect();
        if cards.len() > 1 {
            self.err(Diagnostic::error(
                "S125",
                cards[1].span.clone(),
                "`@card` is given twice",
            ));
        }
        if let Some(c) = cards.first()
            && let Some(card) = self.cardinality(c)
        {
            edge.cardinality = card;
        }
        for r in &props {
            for a in &r.prop.annotations {
                match a.name.as_str() {
                    "key" => self.err(
                        Diagnostic::error(
                            "S123",
                            r.span.clone(),
                            "edges have no `@key`; an edge is identified by its `id`",
                        )
                        .with_help("use `@unique(src, dst)` to forbid parallel edges"),
                    ),
                    "unique" => edge.unique.push(vec![r.prop.name.clone()]),
                    "index" => {
                        self.add_index(&mut edge.indexes, &props, &r.prop.name, r.span.clone())
                    }
                    _ => {}
                }
            }
        }
        const PHYSICAL: &[&str] = &["src", "dst"];
        for c in &d.constraints {
            match c.name.name.as_str() {
                "unique" => {
                    if let Some(idents) = self.ident_args(c) {
                        let refs: Vec<(&str, Range<usize>)> = idents
                            .iter()
                            .map(|i| (i.name.as_str(), i.span.clone()))
                            .collect();
                        if let Some(names) = self.tuple_of(&props, &refs, "unique", PHYSICAL) {
                            edge.unique.push(names);
                        }
                    }
                }
                "index" => {
                    if let Some(idents) = self.ident_args(c) {
                        for i in idents {
                            if self
                                .lookup(&props, &i.name, i.span.clone(), PHYSICAL)
                                .is_some()
                            {
                                self.add_index(&mut edge.indexes, &props, &i.name, i.span.clone());
                            }
                        }
                    }
                }
                "card" => {}
                other @ ("key" | "range" | "check") => self.err(
                    Diagnostic::error(
                        "S123",
                        c.span.clone(),
                        format!("`@{other}` is not allowed in an edge body"),
                    )
                    .with_help("edge bodies allow only `@unique` and `@index`"),
                ),
                other => edge.annotations.push(Annotation {
                    name: other.to_string(),
                    args: c.arg_list().iter().map(ArgAst::text).collect(),
                }),
            }
        }
        for r in &props {
            if r.prop.embed.is_some() {
                self.err(
                    Diagnostic::error(
                        "S119",
                        r.span.clone(),
                        "`@embed` is supported on node properties only",
                    )
                    .with_help("move the vector and its source text onto a node type"),
                );
            }
        }
        edge.properties = props.into_iter().map(|r| r.prop).collect();
        if ok {
            self.catalog.edges.insert(edge.name.clone(), edge);
        }
    }

    fn cardinality(&mut self, c: &AnnotationAst) -> Option<Cardinality> {
        let (min, max, max_star, span) = match c.arg_list() {
            [
                ArgAst::Range {
                    min,
                    max,
                    max_star,
                    span,
                },
            ] => (min, max, *max_star, span.clone()),
            _ => {
                self.err(
                    Diagnostic::error(
                        "S122",
                        c.span.clone(),
                        "`@card` expects a range like `0..1` or `1..*`",
                    )
                    .with_help(
                        "write `@card(min..max)`; `max` may be `*` or left out for unbounded",
                    ),
                );
                return None;
            }
        };
        let parse = |s: &Option<String>| s.as_ref().map(|t| t.parse::<u32>());
        let lo = match parse(min) {
            None => 0,
            Some(Ok(v)) => v,
            Some(Err(_)) => {
                self.err(Diagnostic::error(
                    "S122",
                    span,
                    "`@card` bounds must be non-negative integers",
                ));
                return None;
            }
        };
        let hi = match parse(max) {
            None => None,
            Some(Ok(v)) => Some(v),
            Some(Err(_)) => {
                self.err(Diagnostic::error(
                    "S122",
                    span,
                    "`@card` bounds must be non-negative integers",
                ));
                return None;
            }
        };
        let _ = max_star;
        if let Some(h) = hi {
            if h < lo {
                self.err(
                    Diagnostic::error("S122", span, format!("cardinality `{lo}..{h}` is inverted"))
                        .with_help(format!("write `{h}..{lo}`")),
                );
                return None;
            }
            if h == 0 {
                self.err(Diagnostic::error(
                    "S122",
                    span,
                    "cardinality `..0` allows no edges at all; remove the edge type instead",
                ));
                return None;
            }
        }
        Some(Cardinality { min: lo, max: hi })
    }
}

fn blob_error(what: &str, name: &str, span: Range<usize>) -> Diagnostic {
    Diagnostic::error(
        "S113",
        span,
        format!("Blob property `{name}` cannot be used in `@{what}`"),
    )
    .with_help("Blob properties are not eligible for @key, @unique, @index or @embed")
}

fn string_arg_error(a: &AnnotationAst) -> Diagnostic {
    Diagnostic::error(
        "S124",
        a.span.clone(),
        format!("`@{}` takes one string argument", a.name.name),
    )
    .with_help(format!("write `@{}(\"…\")`", a.name.name))
}

/// Checks a `@default` argument against the property's type.
fn literal_for(prop: &Property, arg: &ArgAst) -> Result<Literal, Diagnostic> {
    let mismatch = || {
        Diagnostic::error(
            "S126",
            arg.span(),
            format!(
                "`@default({})` does not fit `{}: {}`",
                arg.text(),
                prop.name,
                prop.ty
            ),
        )
    };
    match (&prop.ty, arg) {
        (PropType::Scalar { scalar }, ArgAst::Number { text, .. }) if scalar.is_integer() => {
            let v: i64 = text.parse().map_err(|_| mismatch())?;
            if matches!(scalar, ScalarType::U32 | ScalarType::U64) && v < 0 {
                return Err(mismatch());
            }
            if matches!(scalar, ScalarType::I32) && i32::try_from(v).is_err() {
                return Err(mismatch());
            }
            if matches!(scalar, ScalarType::U32) && u32::try_from(v).is_err() {
                return Err(mismatch());
            }
            Ok(Literal::Int(v))
        }
        (PropType::Scalar { scalar }, ArgAst::Number { text, .. }) if scalar.is_float() => {
            text.parse().map(Literal::Float).map_err(|_| mismatch())
        }
        (
            PropType::Scalar {
                scalar: ScalarType::Bool,
            },
            ArgAst::Bool { value, .. },
        ) => Ok(Literal::Bool(*value)),
        (
            PropType::Scalar {
                scalar: ScalarType::String,
            },
            ArgAst::Str { value, .. },
        ) => Ok(Literal::String(value.clone())),
        (
            PropType::Scalar {
                scalar: ScalarType::Date,
            },
            ArgAst::Str { value, .. },
        ) => crate::schema::temporal::parse_date(value)
            .map(|_| Literal::String(value.clone()))
            .ok_or_else(|| mismatch().with_help("write a date as \"YYYY-MM-DD\"")),
        (
            PropType::Scalar {
                scalar: ScalarType::DateTime,
            },
            ArgAst::Str { value, .. },
        ) => crate::schema::temporal::parse_datetime(value)
            .map(|_| Literal::String(value.clone()))
            .ok_or_else(|| {
                mismatch().with_help("write an RFC 3339 timestamp, e.g. \"2026-01-31T12:00:00Z\"")
            }),
        (PropType::Enum { values }, ArgAst::Str { value, .. })
        | (PropType::Enum { values }, ArgAst::Ident(Ident { name: value, .. })) => {
            if values.contains(value) {
                Ok(Literal::String(value.clone()))
            } else {
                Err(mismatch().with_help(valid_list("values", values.iter().map(String::as_str))))
            }
        }
        _ => Err(mismatch()),
    }
}

/// Groups catalog names for listings.
pub fn type_names(c: &Catalog) -> BTreeMap<&'static str, Vec<&str>> {
    let mut m = BTreeMap::new();
    m.insert(
        "interface",
        c.interfaces.keys().map(String::as_str).collect(),
    );
    m.insert("node", c.nodes.keys().map(String::as_str).collect());
    m.insert("edge", c.edges.keys().map(String::as_str).collect());
    m
}
