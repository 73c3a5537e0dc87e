//! Interfaces and properties: types, annotations, `@embed`.

use super::*;

impl Compiler {
    pub(super) fn interface(&mut self, d: &DeclAst) {
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
    pub(super) fn properties(
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

    pub(super) fn property(&mut self, p: &PropertyAst, kind: DeclKind) -> Option<Property> {
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

    pub(super) fn embed(&mut self, a: &AnnotationAst, prop: &mut Property) {
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
}
