//! The `lint` report: overall status, per-query results with their
//! operation descriptor, and structured findings (reference:
//! docs/user/queries/index.md, "Linting & validation").

use serde::Serialize;

use super::CompiledFile;
use super::ir::{CheckedQuery, QueryKind, TypeRef, ValueType};
use crate::diag::{DiagnosticJson, Diagnostics, Severity};

/// The whole report (`omnigraph lint --json`).
#[derive(Debug, Clone, Serialize)]
pub struct LintReport {
    /// `ok`, `warning` or `error`.
    pub status: &'static str,
    pub errors: usize,
    pub warnings: usize,
    pub queries: Vec<QueryReport>,
    pub findings: Vec<DiagnosticJson>,
}

/// One query's result.
#[derive(Debug, Clone, Serialize)]
pub struct QueryReport {
    pub name: String,
    /// `read` or `mutation`; `unknown` when the query did not check.
    pub kind: &'static str,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
}

/// What a checked query returns, reads and writes.
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    pub result: Vec<ResultField>,
    pub reads: Vec<TypeRef>,
    pub writes: Vec<TypeRef>,
}

/// One output column, in a structured kind vocabulary clients need not parse.
#[derive(Debug, Clone, Serialize)]
pub struct ResultField {
    pub name: String,
    pub kind: &'static str,
    pub nullable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vector_dim: Option<u32>,
}

fn kind_of(t: &ValueType) -> &'static str {
    use crate::schema::ScalarType as S;
    match t {
        ValueType::Null | ValueType::String | ValueType::Enum { .. } => "string",
        ValueType::Bool => "bool",
        ValueType::Int {
            scalar: S::I32 | S::U32,
        } => "int",
        ValueType::Int { .. } => "bigint",
        ValueType::Float { .. } | ValueType::Score => "float",
        ValueType::Date => "date",
        ValueType::DateTime => "datetime",
        ValueType::Blob => "blob",
        ValueType::Vector { .. } => "vector",
        ValueType::List { .. } => "list",
        ValueType::Node { .. } => "object",
    }
}

fn operation(q: &CheckedQuery) -> Operation {
    let result = match &q.body {
        QueryKind::Read(r) => r
            .projections
            .iter()
            .map(|p| ResultField {
                name: p.name.clone(),
                kind: kind_of(&p.ty),
                // Conservative: properties may be null, and traversal results
                // are never padded, so only ids and counts are known non-null.
                nullable: !matches!(p.ty, ValueType::Node { .. }),
                item_kind: match &p.ty {
                    ValueType::List { item } => Some(kind_of(item)),
                    _ => None,
                },
                vector_dim: match &p.ty {
                    ValueType::Vector { dim } => Some(*dim),
                    _ => None,
                },
            })
            .collect(),
        QueryKind::Mutation(_) => Vec::new(),
    };
    Operation {
        result,
        reads: q.reads.clone(),
        writes: q.writes.clone(),
    }
}

impl LintReport {
    /// Builds the report for a compiled file and its rendered diagnostics.
    pub fn new(compiled: &CompiledFile, diags: &Diagnostics) -> Self {
        let errors = diags
            .items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        let warnings = diags.items.len() - errors;
        let mut queries: Vec<QueryReport> = Vec::new();
        for name in &compiled.declared {
            if queries.iter().any(|q| &q.name == name) {
                continue;
            }
            match compiled.query(name) {
                Some(q) => queries.push(QueryReport {
                    name: name.clone(),
                    kind: if q.is_mutation() { "mutation" } else { "read" },
                    status: "ok",
                    operation: Some(operation(q)),
                }),
                None => queries.push(QueryReport {
                    name: name.clone(),
                    kind: "unknown",
                    status: "error",
                    operation: None,
                }),
            }
        }
        LintReport {
            status: if errors > 0 {
                "error"
            } else if warnings > 0 {
                "warning"
            } else {
                "ok"
            },
            errors,
            warnings,
            queries,
            findings: diags.to_json(),
        }
    }
}
