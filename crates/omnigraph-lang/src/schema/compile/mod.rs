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

mod constraints;
mod decls;
mod edges;
mod props;

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
