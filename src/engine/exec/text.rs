//! Text and vector search set-up: the full-text index searches a query's
//! `search`/`fuzzy`/`match_text`/`bm25` calls need, run once per query.

use super::*;

/// The mode and query text of a full-text expression whose query does not
/// depend on a binding; `None` when it must be evaluated row by row.
pub(super) fn text_query(ctx: &Ctx<'_>, e: &Expr) -> Option<(usize, String, TextMode, String)> {
    let constant = |q: &Expr| match q {
        Expr::Literal { .. } | Expr::Param { .. } => Some(text_cell(&eval(ctx, q, &Vec::new()))),
        _ => None,
    };
    let (var, property, mode, q) = match e {
        Expr::TextMatch {
            func,
            var,
            property,
            query,
            max_edits,
        } => {
            let mode = match func {
                TextSearch::Search => TextMode::Any,
                TextSearch::MatchText => TextMode::All,
                TextSearch::Fuzzy => {
                    TextMode::Fuzzy(fuzzy_edits(ctx, max_edits.as_deref(), &Vec::new()))
                }
            };
            (var, property, mode, constant(query)?)
        }
        Expr::Bm25 {
            var,
            property,
            query,
        } => (var, property, TextMode::Any, constant(query)?),
        _ => return None,
    };
    let t = *ctx.var_table.get(var)?;
    if !ctx.tables[t].fulltext.contains(property) || tokens(&q).is_empty() {
        return None;
    }
    Some((t, property.clone(), mode, q))
}

pub(super) fn fts_key(t: usize, property: &str, mode: TextMode, q: &str) -> FtsKey {
    (t, property.to_string(), format!("{mode:?}"), q.to_string())
}

/// Runs every constant full-text predicate and score of the plan through
/// the inverted index once, before the pipeline.
pub(super) async fn prepare_text_search(
    ctx: &mut Ctx<'_>,
    plan: &ReadPlan,
) -> Result<(), EngineError> {
    pub(super) fn walk<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
        match e {
            Expr::TextMatch { .. } | Expr::Bm25 { .. } => out.push(e),
            Expr::Rrf { a, b, .. } => {
                walk(a, out);
                walk(b, out);
            }
            _ => {}
        }
    }
    pub(super) fn ops<'e>(o: &'e [Op], out: &mut Vec<&'e Expr>) {
        for op in o {
            match op {
                Op::Filter { left, right, .. } => {
                    walk(left, out);
                    if let Some(r) = right {
                        walk(r, out);
                    }
                }
                Op::AntiJoin { ops: inner } => ops(inner, out),
                _ => {}
            }
        }
    }
    // Conjunctive full-text filters on a variable scanned at the same level.
    pub(super) fn required<'e>(o: &'e [Op], out: &mut Vec<(&'e str, &'e Expr)>) {
        let scanned: HashSet<&str> = o
            .iter()
            .filter_map(|op| match op {
                Op::Scan { var, .. } => Some(var.as_str()),
                _ => None,
            })
            .collect();
        for op in o {
            match op {
                Op::Filter {
                    left: e @ Expr::TextMatch { var, .. },
                    op: None,
                    ..
                } if scanned.contains(var.as_str()) => out.push((var, e)),
                Op::AntiJoin { ops: inner } => required(inner, out),
                _ => {}
            }
        }
    }
    let mut req = Vec::new();
    required(&plan.pipeline, &mut req);
    for (var, e) in req {
        if let Some((t, property, mode, q)) = text_query(ctx, e) {
            ctx.var_fts
                .entry(var.to_string())
                .or_default()
                .push(fts_key(t, &property, mode, &q));
        }
    }
    let mut exprs = Vec::new();
    ops(&plan.pipeline, &mut exprs);
    for p in &plan.projections {
        walk(&p.expr, &mut exprs);
    }
    for o in &plan.order {
        walk(&o.expr, &mut exprs);
    }
    for e in exprs {
        let Some((t, property, mode, q)) = text_query(ctx, e) else {
            continue;
        };
        let key = fts_key(t, &property, mode, &q);
        if ctx.fts.contains_key(&key) {
            continue;
        }
        let hits = match ctx.tables[t].dataset().await? {
            Some(ds) => table::full_text(&ds, &property, &q, mode).await?,
            None => Vec::new(),
        };
        ctx.fts.insert(key, hits.into_iter().collect());
    }
    Ok(())
}

/// A `nearest` whose query is text must embed it, and no embedding provider
/// exists yet: refuse with a clear error instead of returning no distances.
pub(super) fn needs_no_embedder(q: &CheckedQuery, plan: &ReadPlan) -> Result<(), EngineError> {
    pub(super) fn walk(e: &Expr, q: &CheckedQuery) -> Option<String> {
        match e {
            Expr::Nearest {
                property, query, ..
            } => {
                let text = match query.as_ref() {
                    Expr::Literal {
                        value: LiteralValue::String(_),
                    } => true,
                    Expr::Param { name } => q
                        .params
                        .iter()
                        .any(|p| &p.name == name && p.ty.is_textual()),
                    _ => false,
                };
                text.then(|| property.clone())
            }
            Expr::Rrf { a, b, .. } => walk(a, q).or_else(|| walk(b, q)),
            _ => None,
        }
    }
    let exprs = plan
        .projections
        .iter()
        .map(|p| &p.expr)
        .chain(plan.order.iter().map(|o| &o.expr));
    for e in exprs {
        if let Some(property) = walk(e, q) {
            return Err(EngineError::Param {
                name: "nearest".into(),
                reason: format!(
                    "`{}` passes text to `nearest(…{property}…)`, which needs an embedding provider to turn it into a vector; none is configured in this build — pass a Vector parameter instead",
                    q.name
                ),
            });
        }
    }
    Ok(())
}
