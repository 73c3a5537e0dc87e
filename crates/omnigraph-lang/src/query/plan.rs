//! Lowering: orders a checked `match` block's clauses into the
//! [`ir`](super::ir) pipeline (greedy, most selective binding first).

use std::collections::{BTreeSet, HashMap};

use super::ast::*;
use super::check::RClause;
use super::ir::*;
use crate::schema::Catalog;

/// A binding seen by the planner: (variable, node type, property equalities).
type PlannedBinding = (String, String, Vec<(String, Expr)>);

/// Orders a block's clauses into a pipeline. `bound` holds the variables
/// already bound on entry (the enclosing block's, inside `not`) and receives
/// the ones this block binds, in order.
///
/// Greedy: start from the most selective binding (key equality, then an
/// indexed equality, then any equality, then none); follow traversals from
/// bound variables; apply each filter and `not` as soon as its variables are
/// bound.
pub(crate) fn plan(cat: &Catalog, clauses: &[RClause], bound: &mut Vec<String>) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut binds: Vec<PlannedBinding> = Vec::new();
    let mut travs: Vec<&RClause> = Vec::new();
    let mut filters: Vec<&RClause> = Vec::new();
    let mut types: HashMap<String, String> = HashMap::new();
    for c in clauses {
        match c {
            RClause::Bind {
                var,
                node_type,
                props,
            } => {
                types.insert(var.clone(), node_type.clone());
                match binds.iter_mut().find(|(v, _, _)| v == var) {
                    Some(b) => b.2.extend(props.iter().cloned()),
                    None => binds.push((var.clone(), node_type.clone(), props.clone())),
                }
            }
            RClause::Trav {
                src,
                dst,
                src_type,
                dst_type,
                ..
            } => {
                types.entry(src.clone()).or_insert_with(|| src_type.clone());
                types.entry(dst.clone()).or_insert_with(|| dst_type.clone());
                travs.push(c);
            }
            RClause::Filter { .. } | RClause::Not { .. } => filters.push(c),
        }
    }
    let props_of = |v: &str| -> Vec<(String, Expr)> {
        binds
            .iter()
            .find(|(b, _, _)| b == v)
            .map(|b| b.2.clone())
            .unwrap_or_default()
    };
    // A binding's property match may name a variable bound later
    // (`$c: Company { slug: $a.slug }` before `$a`): it is usable by the
    // scan only once that variable is bound; until then it waits here as
    // a filter, emitted as soon as every variable it names is bound.
    let vars_of = |e: &Expr| -> BTreeSet<String> {
        let mut vs = BTreeSet::new();
        expr_vars(e, &mut vs);
        vs
    };
    let mut deferred: Vec<(BTreeSet<String>, Op)> = Vec::new();
    let emit_ready =
        |ops: &mut Vec<Op>, deferred: &mut Vec<(BTreeSet<String>, Op)>, bound: &Vec<String>| {
            let mut i = 0;
            while i < deferred.len() {
                if deferred[i].0.iter().all(|v| bound.contains(v)) {
                    ops.push(deferred.remove(i).1);
                } else {
                    i += 1;
                }
            }
        };
    let mut emitted_filters = vec![false; filters.len()];
    let mut done_travs = vec![false; travs.len()];
    loop {
        emit_ready(&mut ops, &mut deferred, &*bound);
        // Filters and anti-joins whose variables are all bound.
        for (i, f) in filters.iter().enumerate() {
            if emitted_filters[i] {
                continue;
            }
            let ready = match f {
                RClause::Filter { vars, .. } => vars.iter().all(|v| bound.contains(v)),
                RClause::Not { free, .. } => free.iter().all(|v| bound.contains(v)),
                _ => true,
            };
            if !ready {
                continue;
            }
            emitted_filters[i] = true;
            match f {
                RClause::Filter {
                    left, op, right, ..
                } => ops.push(Op::Filter {
                    left: left.clone(),
                    op: *op,
                    right: right.clone(),
                }),
                RClause::Not { clauses, .. } => {
                    let mut inner_bound = bound.clone();
                    let inner = plan(cat, clauses, &mut inner_bound);
                    ops.push(Op::AntiJoin { ops: inner });
                }
                _ => {}
            }
        }
        // A traversal with a bound side.
        let next = travs.iter().enumerate().find(|(i, t)| {
            !done_travs[*i]
                && matches!(t, RClause::Trav { src, dst, .. } if bound.contains(src) || bound.contains(dst))
        });
        if let Some((
            i,
            RClause::Trav {
                src,
                dst,
                edge,
                src_type,
                dst_type,
                undirected,
                min,
                max,
                edge_var,
            },
        )) = next
        {
            done_travs[i] = true;
            let forward = bound.contains(src);
            let (from, to, to_type) = if forward {
                (src, dst, dst_type)
            } else {
                (dst, src, src_type)
            };
            let to_bound = bound.contains(to);
            ops.push(Op::Expand {
                from_var: from.clone(),
                edge: edge.clone(),
                to_var: to.clone(),
                to_type: to_type.clone(),
                reverse: !forward,
                undirected: *undirected,
                min_hops: *min,
                max_hops: *max,
                edge_var: edge_var.clone(),
                to_bound,
            });
            if !to_bound {
                bound.push(to.clone());
                if let Some(ev) = edge_var {
                    bound.push(ev.clone());
                }
                for (p, e) in props_of(to) {
                    let mut vars = vars_of(&e);
                    vars.insert(to.clone());
                    deferred.push((
                        vars,
                        Op::Filter {
                            left: Expr::Property {
                                var: to.clone(),
                                property: p,
                            },
                            op: Some(CmpOp::Eq),
                            right: Some(e),
                        },
                    ));
                }
            } else if let Some(ev) = edge_var {
                bound.push(ev.clone());
            }
            continue;
        }
        // Otherwise scan the most selective unbound variable.
        let mut candidates: Vec<(u8, usize, String, String)> = Vec::new();
        let usable = |props: &[(String, Expr)]| -> Vec<(String, Expr)> {
            props
                .iter()
                .filter(|(_, e)| vars_of(e).iter().all(|v| bound.contains(v)))
                .cloned()
                .collect()
        };
        for (order, (v, t, props)) in binds.iter().enumerate() {
            if bound.contains(v) {
                continue;
            }
            let (rank, _) = lookup_for(cat, t, &usable(props));
            candidates.push((rank, order, v.clone(), t.clone()));
        }
        for (order, t) in travs.iter().enumerate() {
            if done_travs[order] {
                continue;
            }
            if let RClause::Trav { src, .. } = t
                && !bound.contains(src)
                && !binds.iter().any(|(v, _, _)| v == src)
            {
                let ty = types.get(src).cloned().unwrap_or_default();
                candidates.push((9, binds.len() + order, src.clone(), ty));
            }
        }
        candidates.sort();
        let Some((_, _, var, node_type)) = candidates.into_iter().next() else {
            break;
        };
        let all = props_of(&var);
        let props = usable(&all);
        for (p, e) in all.into_iter().filter(|pe| !props.contains(pe)) {
            let mut vars = vars_of(&e);
            vars.insert(var.clone());
            deferred.push((
                vars,
                Op::Filter {
                    left: Expr::Property {
                        var: var.clone(),
                        property: p,
                    },
                    op: Some(CmpOp::Eq),
                    right: Some(e),
                },
            ));
        }
        let (_, lookup) = lookup_for(cat, &node_type, &props);
        ops.push(Op::Scan {
            var: var.clone(),
            node_type,
            equals: props,
            lookup,
        });
        bound.push(var);
    }
    emit_ready(&mut ops, &mut deferred, &*bound);
    ops
}

/// Selectivity rank (lower is better) and access path of a scan.
fn lookup_for(cat: &Catalog, node_type: &str, props: &[(String, Expr)]) -> (u8, Lookup) {
    let Some(node) = cat.node(node_type) else {
        return (8, Lookup::Full);
    };
    if let Some(key) = &node.key
        && key.iter().all(|k| props.iter().any(|(p, _)| p == k))
    {
        return (0, Lookup::Key);
    }
    // Only a BTREE answers equality; a full-text index does not.
    if let Some((p, _)) = props.iter().find(|(p, _)| {
        node.indexes
            .iter()
            .any(|i| &i.property == p && i.kind == crate::schema::IndexKind::Btree)
    }) {
        return (
            1,
            Lookup::Index {
                property: p.clone(),
            },
        );
    }
    if props.is_empty() {
        (8, Lookup::Full)
    } else {
        (2, Lookup::Full)
    }
}

/// Variables an expression reads.
pub(crate) fn expr_vars(e: &Expr, out: &mut BTreeSet<String>) {
    match e {
        Expr::Property { var, .. }
        | Expr::EdgeProperty { var, .. }
        | Expr::Node { var }
        | Expr::TextMatch { var, .. }
        | Expr::Bm25 { var, .. }
        | Expr::Nearest { var, .. } => {
            out.insert(var.clone());
        }
        Expr::Aggregate { arg, .. } => expr_vars(arg, out),
        Expr::Rrf { a, b, .. } => {
            expr_vars(a, out);
            expr_vars(b, out);
        }
        Expr::List { items } => items.iter().for_each(|i| expr_vars(i, out)),
        _ => {}
    }
}
