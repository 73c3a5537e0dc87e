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

/// The query vectors of `nearest(…, text)`, keyed by (table, property,
/// text): embedded once per query before the pipeline.
pub(super) type QueryVectors = HashMap<(usize, String, String), Arc<Vec<f32>>>;

/// The `nearest` calls of the plan's projections and order keys (inside
/// `rrf` too).
pub(super) fn nearest_calls(plan: &ReadPlan) -> Vec<&Expr> {
    fn walk<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
        match e {
            Expr::Nearest { .. } => out.push(e),
            Expr::Rrf { a, b, .. } => {
                walk(a, out);
                walk(b, out);
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for e in plan
        .projections
        .iter()
        .map(|p| &p.expr)
        .chain(plan.order.iter().map(|o| &o.expr))
    {
        walk(e, &mut out);
    }
    out
}

/// Embeds the text of every `nearest($v.p, "text")` (a literal or a
/// String parameter) with the graph's embedding client, once per distinct
/// (property, text), at the property's width.
pub(super) async fn prepare_query_vectors(
    graph: &Graph,
    ctx: &mut Ctx<'_>,
    plan: &ReadPlan,
) -> Result<(), EngineError> {
    for e in nearest_calls(plan) {
        let Expr::Nearest {
            var,
            property,
            query,
        } = e
        else {
            continue;
        };
        // Text that differs per row would need one embedding per row:
        // refused rather than scored as null.
        if let Expr::Property {
            var: qv,
            property: qp,
        } = query.as_ref()
            && let Some(&qt) = ctx.var_table.get(qv)
            && ctx.props[qt]
                .iter()
                .any(|p| &p.name == qp && p.ty.is_textual())
        {
            return Err(EngineError::Param {
                name: "nearest".into(),
                reason: format!(
                    "`nearest(${var}.{property}, ${qv}.{qp})` would embed a different text for every row; pass the text as a literal or a String parameter, or compare with a Vector property (`${qv}.<vector>`)"
                ),
            });
        }
        let Cell::Str(text) = eval(ctx, query, &Vec::new()) else {
            continue;
        };
        let Some(&t) = ctx.var_table.get(var) else {
            continue;
        };
        let key = (t, property.clone(), text.clone());
        if ctx.query_vectors.contains_key(&key) {
            continue;
        }
        let Some(p) = ctx.props[t].iter().find(|p| &p.name == property).cloned() else {
            continue;
        };
        let crate::schema::PropType::Vector { dim } = p.ty else {
            continue;
        };
        ctx.check_time()?;
        let v = graph.embed_query_text(&p, &text, dim as usize).await?;
        ctx.query_vectors.insert(key, Arc::new(v));
    }
    Ok(())
}

/// Answers a plain top-k `nearest` from the vector index: a query whose
/// pipeline is one unfiltered scan of `$v`, no aggregation, ordered first
/// by `nearest($v.p, q)` ascending with a `limit`, where `p` carries a
/// trained vector index. The scan then reads only the `limit` ids the
/// index returns (approximate: the index's recall), ranked by exact
/// cosine distance. Anything else — a filter, a traversal, `rrf`, a small
/// or unindexed table — searches exactly, so filters combined with
/// `nearest` always return the true top-k of the matching rows.
pub(super) async fn prepare_vector_search(
    ctx: &mut Ctx<'_>,
    plan: &ReadPlan,
) -> Result<(), EngineError> {
    if plan.group_by.is_some() {
        return Ok(());
    }
    // A score ranked across the rows (`rrf`, `bm25` without its index)
    // would see only the index's rows: exact search instead.
    fn ranks_rows(e: &Expr) -> bool {
        match e {
            Expr::Rrf { .. } | Expr::Bm25 { .. } => true,
            _ => false,
        }
    }
    if plan
        .projections
        .iter()
        .map(|p| &p.expr)
        .chain(plan.order.iter().map(|o| &o.expr))
        .any(ranks_rows)
    {
        return Ok(());
    }
    let [Op::Scan { var, equals, .. }] = plan.pipeline.as_slice() else {
        return Ok(());
    };
    let Some(first) = plan.order.first() else {
        return Ok(());
    };
    let Expr::Nearest {
        var: nv,
        property,
        query,
    } = &first.expr
    else {
        return Ok(());
    };
    if !equals.is_empty() || first.descending || nv != var {
        return Ok(());
    }
    let Some(limit) = &plan.limit else {
        return Ok(());
    };
    let k = match eval(ctx, limit, &Vec::new()) {
        Cell::I64(n) if n > 0 => n as usize,
        _ => return Ok(()),
    };
    let Some(&t) = ctx.var_table.get(var) else {
        return Ok(());
    };
    if !ctx.tables[t].vector.contains(property) {
        return Ok(());
    }
    let dim = match ctx.props[t]
        .iter()
        .find(|p| &p.name == property)
        .map(|p| &p.ty)
    {
        Some(crate::schema::PropType::Vector { dim }) => *dim as usize,
        _ => return Ok(()),
    };
    let q: Vec<f32> = match eval(ctx, query, &Vec::new()) {
        Cell::Vector(v) => v,
        Cell::Str(s) => match ctx.query_vectors.get(&(t, property.clone(), s)) {
            Some(v) => v.as_ref().clone(),
            None => return Ok(()),
        },
        _ => return Ok(()),
    };
    // A query of another width, with NaN/Inf, or with no direction is
    // left to exact search (which scores it as it always has).
    if q.len() != dim || q.iter().any(|x| !x.is_finite()) || q.iter().all(|x| *x == 0.0) {
        return Ok(());
    }
    let Some(ds) = ctx.tables[t].dataset().await? else {
        return Ok(());
    };
    let name = table::IndexSpec::Vector(property.clone()).name();
    if !table::has_vector_index(&ds, &name).await? {
        return Ok(());
    }
    ctx.check_time()?;
    let hits = table::nearest(&ds, property, &q, k, table::VECTOR_MIN_PROBES).await?;
    ctx.var_ann
        .insert(var.clone(), hits.into_iter().map(|(id, _)| id).collect());
    Ok(())
}
