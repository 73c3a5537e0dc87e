//! Small helpers shared by the checker's parts: literal coercion,
//! type compatibility, variable collection, column names.

use super::*;

pub(super) fn lit(v: LiteralValue) -> Expr {
    Expr::Literal { value: v }
}

pub(super) fn lower_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_lowercase().to_string() + c.as_str(),
        None => String::new(),
    }
}

pub(super) fn blob_read_error(span: Range<usize>) -> Diagnostic {
    Diagnostic::error(
        "T24",
        span,
        "Blob values cannot be read in a query (projected, ordered, compared or aggregated)",
    )
    .with_help("read Blob cells through the blob read API, not `.gq`")
}

pub(super) fn bad_temporal(s: &str, what: &str, span: Range<usize>) -> Diagnostic {
    let example = if what == "date" {
        "\"2026-01-31\""
    } else {
        "\"2026-01-31T12:00:00Z\""
    };
    Diagnostic::error("T39", span, format!("`{s}` is not a valid {what}"))
        .with_help(format!("write a {what} like {example}"))
}

/// True when a value of type `b` may be compared with or stored as `a`.
pub(super) fn compatible(a: &ValueType, b: &ValueType) -> bool {
    use ValueType as V;
    match (a, b) {
        (V::Null, _) | (_, V::Null) => true,
        (x, y) if x.is_numeric() && y.is_numeric() => true,
        (x, y) if x.is_textual() && y.is_textual() => true,
        (V::Bool, V::Bool)
        | (V::Date, V::Date)
        | (V::DateTime, V::DateTime)
        | (V::Blob, V::Blob) => true,
        (V::Vector { dim: a }, V::Vector { dim: b }) => a == b,
        (V::List { item: a }, V::List { item: b }) => compatible(a, b),
        (V::Node { type_name: a }, V::Node { type_name: b }) => a == b,
        _ => false,
    }
}

/// String literals stored into temporal properties become typed literals.
pub(super) fn coerce_literal(t: &PropType, x: Expr) -> Expr {
    match (t.as_scalar(), &x) {
        (
            Some(ScalarType::Date),
            Expr::Literal {
                value: LiteralValue::String(s),
            },
        ) => parse_date(s).map_or(x.clone(), |d| lit(LiteralValue::Date(d))),
        (
            Some(ScalarType::DateTime),
            Expr::Literal {
                value: LiteralValue::String(s),
            },
        ) => parse_datetime(s).map_or(x.clone(), |d| lit(LiteralValue::DateTime(d))),
        _ => x,
    }
}

pub(super) fn default_column_name(e: &ExprAst) -> String {
    match e {
        ExprAst::Prop { prop, .. } => prop.name.clone(),
        ExprAst::Var(v) => v.name.clone(),
        ExprAst::Call { func, .. } => func.name.clone(),
        ExprAst::Alias(a) => a.name.clone(),
        _ => "value".to_string(),
    }
}

pub(super) fn contains_aggregate(e: &Expr) -> bool {
    match e {
        Expr::Aggregate { .. } => true,
        Expr::List { items } => items.iter().any(contains_aggregate),
        Expr::Rrf { a, b, .. } => contains_aggregate(a) || contains_aggregate(b),
        _ => false,
    }
}

/// Every variable a block mentions (including nested blocks' free vars).
pub(super) fn collect_vars(clauses: &[RClause], out: &mut BTreeSet<String>) {
    for c in clauses {
        match c {
            RClause::Bind { var, props, .. } => {
                out.insert(var.clone());
                props.iter().for_each(|(_, e)| expr_vars(e, out));
            }
            RClause::Trav {
                src, dst, edge_var, ..
            } => {
                out.insert(src.clone());
                out.insert(dst.clone());
                if let Some(e) = edge_var {
                    out.insert(e.clone());
                }
            }
            RClause::Filter { vars, .. } => out.extend(vars.iter().cloned()),
            RClause::Not { free, .. } => out.extend(free.iter().cloned()),
        }
    }
}
