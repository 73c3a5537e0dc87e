//! Edge declarations and their cardinality.

use super::*;

impl Compiler {
    pub(super) fn edge(&mut self, d: &DeclAst, seen: &HashMap<String, (DeclKind, Range<usize>)>) {
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

    pub(super) fn cardinality(&mut self, c: &AnnotationAst) -> Option<Cardinality> {
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
