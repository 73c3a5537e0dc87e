//! Human-readable rendering of the IR (`omnigraph query explain`).

use std::fmt::Write;

use super::ir::*;

/// Renders a checked query as an indented plan.
pub fn explain(q: &CheckedQuery) -> String {
    let mut out = String::new();
    let params: Vec<String> = q
        .params
        .iter()
        .map(|p| format!("${}: {}{}", p.name, p.ty, if p.optional { "?" } else { "" }))
        .collect();
    let _ = writeln!(
        out,
        "{} {}({})",
        if q.is_mutation() { "mutation" } else { "query" },
        q.name,
        params.join(", ")
    );
    if let Some(d) = &q.description {
        let _ = writeln!(out, "  description: {d}");
    }
    if let Some(i) = &q.instruction {
        let _ = writeln!(out, "  instruction: {i}");
    }
    match &q.body {
        QueryKind::Read(r) => {
            let _ = writeln!(out, "  pipeline:");
            ops(&mut out, &r.pipeline, 2);
            let cols: Vec<String> = r
                .projections
                .iter()
                .map(|p| format!("{} := {} : {}", p.name, expr(&p.expr), p.ty))
                .collect();
            let _ = writeln!(out, "  project:");
            for c in cols {
                let _ = writeln!(out, "    {c}");
            }
            if let Some(g) = &r.group_by {
                let names: Vec<&str> = g.iter().map(|i| r.projections[*i].name.as_str()).collect();
                let _ = writeln!(out, "  group by: [{}]", names.join(", "));
            }
            if !r.order.is_empty() {
                let keys: Vec<String> = r
                    .order
                    .iter()
                    .map(|k| {
                        format!(
                            "{} {}",
                            expr(&k.expr),
                            if k.descending { "desc" } else { "asc" }
                        )
                    })
                    .collect();
                let _ = writeln!(out, "  order: {} (ties broken by id)", keys.join(", "));
            }
            if let Some(l) = &r.limit {
                let _ = writeln!(out, "  limit: {}", expr(l));
            }
        }
        QueryKind::Mutation(m) => {
            for s in &m.statements {
                let _ = writeln!(out, "  {}", stmt(s));
            }
        }
    }
    let refs = |v: &[TypeRef]| {
        v.iter()
            .map(|t| format!("{}:{}", t.kind, t.type_name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(out, "  reads: [{}]", refs(&q.reads));
    if q.is_mutation() {
        let _ = writeln!(out, "  writes: [{}]", refs(&q.writes));
    }
    out
}

fn ops(out: &mut String, list: &[Op], depth: usize) {
    let pad = "  ".repeat(depth);
    for op in list {
        match op {
            Op::Scan {
                var,
                node_type,
                equals,
                lookup,
            } => {
                let eq: Vec<String> = equals
                    .iter()
                    .map(|(p, e)| format!("{p} = {}", expr(e)))
                    .collect();
                let how = match lookup {
                    Lookup::Full => "full scan".to_string(),
                    Lookup::Key => "key lookup".to_string(),
                    Lookup::Index { property } => format!("index on {property}"),
                };
                let _ = writeln!(
                    out,
                    "{pad}Scan ${var}: {node_type}{} [{how}]",
                    if eq.is_empty() {
                        String::new()
                    } else {
                        format!(" where {}", eq.join(" and "))
                    }
                );
            }
            Op::Expand {
                from_var,
                edge,
                to_var,
                to_type,
                reverse,
                undirected,
                min_hops,
                max_hops,
                edge_var,
                to_bound,
            } => {
                let dir = if *undirected {
                    "<->"
                } else if *reverse {
                    "<-"
                } else {
                    "->"
                };
                let hops = match max_hops {
                    Some(m) if *m == *min_hops => format!("{m}"),
                    Some(m) => format!("{min_hops}..{m}"),
                    None => format!("{min_hops}.."),
                };
                let _ = writeln!(
                    out,
                    "{pad}Expand ${from_var} {dir}[{}{edge} x{hops}] ${to_var}: {to_type}{}",
                    edge_var
                        .as_ref()
                        .map(|e| format!("${e}:"))
                        .unwrap_or_default(),
                    if *to_bound {
                        " (semi-join: both bound)"
                    } else {
                        ""
                    }
                );
            }
            Op::Filter { left, op, right } => {
                let _ = match (op, right) {
                    (Some(op), Some(r)) => {
                        writeln!(out, "{pad}Filter {} {op} {}", expr(left), expr(r))
                    }
                    _ => writeln!(out, "{pad}Filter {}", expr(left)),
                };
            }
            Op::AntiJoin { ops: inner } => {
                let _ = writeln!(out, "{pad}AntiJoin (not):");
                ops(out, inner, depth + 1);
            }
        }
    }
}

fn stmt(s: &MutationOp) -> String {
    let assigns = |v: &[(String, Expr)]| {
        v.iter()
            .map(|(k, e)| format!("{k}: {}", expr(e)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match s {
        MutationOp::Insert {
            kind,
            type_name,
            values,
            from,
            to,
        } => {
            let mut parts = Vec::new();
            if let (Some(f), Some(t)) = (from, to) {
                parts.push(format!("from: {}, to: {}", expr(f), expr(t)));
            }
            if !values.is_empty() {
                parts.push(assigns(values));
            }
            format!("Insert {kind:?} {type_name} {{ {} }}", parts.join(", "))
        }
        MutationOp::Update {
            kind,
            type_name,
            set,
            predicate,
        } => format!(
            "Update {kind:?} {type_name} set {{ {} }} where {} {} {}",
            assigns(set),
            predicate.property,
            predicate.op,
            expr(&predicate.value)
        ),
        MutationOp::Delete {
            kind,
            type_name,
            predicate,
        } => format!(
            "Delete {kind:?} {type_name} where {} {} {}",
            predicate.property,
            predicate.op,
            expr(&predicate.value)
        ),
    }
}

/// Renders an expression in `.gq`-like syntax.
pub fn expr(e: &Expr) -> String {
    match e {
        Expr::Literal { value } => literal(value),
        Expr::Param { name } => format!("${name}"),
        Expr::Now => "now()".into(),
        Expr::Property { var, property } | Expr::EdgeProperty { var, property } => {
            format!("${var}.{property}")
        }
        Expr::Node { var } => format!("${var}"),
        Expr::Aggregate { func, arg } => {
            format!("{}({})", format!("{func:?}").to_lowercase(), expr(arg))
        }
        Expr::TextMatch {
            func,
            var,
            property,
            query,
            max_edits,
        } => format!(
            "{}(${var}.{property}, {}{})",
            match func {
                TextSearch::Search => "search",
                TextSearch::Fuzzy => "fuzzy",
                TextSearch::MatchText => "match_text",
            },
            expr(query),
            max_edits
                .as_ref()
                .map(|m| format!(", {}", expr(m)))
                .unwrap_or_default()
        ),
        Expr::Bm25 {
            var,
            property,
            query,
        } => format!("bm25(${var}.{property}, {})", expr(query)),
        Expr::Nearest {
            var,
            property,
            query,
        } => format!("nearest(${var}.{property}, {})", expr(query)),
        Expr::Rrf { a, b, k } => format!("rrf({}, {}, {})", expr(a), expr(b), expr(k)),
        Expr::List { items } => format!(
            "[{}]",
            items.iter().map(expr).collect::<Vec<_>>().join(", ")
        ),
        Expr::Alias { name, .. } => name.clone(),
    }
}

fn literal(v: &LiteralValue) -> String {
    match v {
        LiteralValue::Null => "null".into(),
        LiteralValue::Bool(b) => b.to_string(),
        LiteralValue::Int(i) => i.to_string(),
        LiteralValue::Float(f) => format!("{f:?}"),
        LiteralValue::String(s) => format!("{s:?}"),
        LiteralValue::Date(d) => format!("date({d} days)"),
        LiteralValue::DateTime(ms) => format!("datetime({ms} ms)"),
        LiteralValue::List(items) => format!(
            "[{}]",
            items.iter().map(literal).collect::<Vec<_>>().join(", ")
        ),
    }
}
