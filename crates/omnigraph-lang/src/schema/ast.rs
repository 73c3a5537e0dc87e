//! The `.pg` syntax tree, with byte spans for diagnostics.

use std::ops::Range;

use crate::diag::{Diagnostic, line_col};
use crate::syntax::ast::{AnnotationAst, Ident, TypeAst};
use crate::syntax::{self, Pair, Rule, span};

/// Which kind of declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeclKind {
    Interface,
    Node,
    Edge,
}

impl DeclKind {
    pub fn word(self) -> &'static str {
        match self {
            DeclKind::Interface => "interface",
            DeclKind::Node => "node",
            DeclKind::Edge => "edge",
        }
    }
}

/// One `interface`, `node` or `edge` declaration.
#[derive(Debug, Clone)]
pub struct DeclAst {
    pub kind: DeclKind,
    pub name: Ident,
    pub implements: Vec<Ident>,
    /// `(from, to)` for edges.
    pub endpoints: Option<(Ident, Ident)>,
    /// Annotations written on the declaration line (`@card(…)`, `@description(…)`).
    pub annotations: Vec<AnnotationAst>,
    pub properties: Vec<PropertyAst>,
    /// Body-level constraints (`@key(…)`, `@unique(…)`, …).
    pub constraints: Vec<AnnotationAst>,
    pub span: Range<usize>,
}

/// `name: Type @annotations…`.
#[derive(Debug, Clone)]
pub struct PropertyAst {
    pub name: Ident,
    pub ty: TypeAst,
    pub annotations: Vec<AnnotationAst>,
    pub span: Range<usize>,
}

/// A parsed `.pg` file.
#[derive(Debug, Clone, Default)]
pub struct SchemaAst {
    pub decls: Vec<DeclAst>,
}

/// Parses `.pg` source into its syntax tree; a syntax error is `S001`.
pub fn parse_schema(src: &str) -> Result<SchemaAst, Diagnostic> {
    let root = syntax::parse(Rule::schema, src, "S001")?;
    let mut decls = Vec::new();
    for p in root.into_inner() {
        let kind = match p.as_rule() {
            Rule::interface_decl => DeclKind::Interface,
            Rule::node_decl => DeclKind::Node,
            Rule::edge_decl => DeclKind::Edge,
            _ => continue,
        };
        decls.push(build_decl(kind, p, src));
    }
    Ok(SchemaAst { decls })
}

fn build_decl(kind: DeclKind, p: Pair<'_>, src: &str) -> DeclAst {
    let sp = span(&p);
    let mut names = Vec::new();
    let mut decl = DeclAst {
        kind,
        name: Ident {
            name: String::new(),
            span: sp.clone(),
        },
        implements: Vec::new(),
        endpoints: None,
        annotations: Vec::new(),
        properties: Vec::new(),
        constraints: Vec::new(),
        span: sp,
    };
    for inner in p.into_inner() {
        match inner.as_rule() {
            Rule::ident => names.push(Ident::from_pair(&inner)),
            Rule::implements => {
                decl.implements = inner
                    .into_inner()
                    .filter(|i| i.as_rule() == Rule::ident)
                    .map(|i| Ident::from_pair(&i))
                    .collect();
            }
            Rule::annotation => decl.annotations.push(AnnotationAst::from_pair(inner)),
            Rule::property => build_property(inner, src, &mut decl),
            Rule::constraint => {
                if let Some(a) = inner.into_inner().next() {
                    decl.constraints.push(AnnotationAst::from_pair(a));
                }
            }
            _ => {}
        }
    }
    let mut names = names.into_iter();
    if let Some(n) = names.next() {
        decl.name = n;
    }
    if kind == DeclKind::Edge
        && let (Some(from), Some(to)) = (names.next(), names.next())
    {
        decl.endpoints = Some((from, to));
    }
    decl
}

/// Annotations written on the line where the property's type ends belong
/// to it (a type may span lines: a long `enum(…)` closed on a later line,
/// then `@index`); one that starts on a later line is a body-level
/// constraint that follows the property (`slug: String @key` then
/// `@unique(a, b)` on the next line). `@key`, `@unique` or `@index` with
/// arguments names its properties, so it is a body-level constraint
/// wherever it is written (`b: String @unique(a, b)`).
fn build_property(p: Pair<'_>, src: &str, decl: &mut DeclAst) {
    let sp = span(&p);
    let mut line = line_col(src, sp.start).line;
    let mut name = None;
    let mut ty = None;
    let mut annotations = Vec::new();
    let mut trailing = Vec::new();
    for inner in p.into_inner() {
        match inner.as_rule() {
            Rule::ident => name = Some(Ident::from_pair(&inner)),
            Rule::type_ref => {
                let t = TypeAst::from_pair(inner);
                // The span runs on over the whitespace after the type.
                let end = src
                    .get(..t.span.end)
                    .map_or(t.span.end, |s| s.trim_end().len());
                line = line_col(src, end).line;
                ty = Some(t);
            }
            Rule::annotation => {
                let a = AnnotationAst::from_pair(inner);
                let names_properties = matches!(a.name.name.as_str(), "key" | "unique" | "index")
                    && a.args.as_ref().is_some_and(|v| !v.is_empty());
                if names_properties {
                    decl.constraints.push(a);
                } else if trailing.is_empty() && line_col(src, a.span.start).line == line {
                    annotations.push(a);
                } else {
                    trailing.push(a);
                }
            }
            _ => {}
        }
    }
    if let (Some(name), Some(ty)) = (name, ty) {
        let end = annotations.last().map_or(ty.span.end, |a| a.span.end);
        decl.properties.push(PropertyAst {
            name,
            ty,
            annotations,
            span: sp.start..end,
        });
    }
    decl.constraints.extend(trailing);
}
