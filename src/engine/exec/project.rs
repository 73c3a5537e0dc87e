//! Projection: `return` columns, aggregates and grouping, ordering and
//! limit, rows as JSON.

use super::*;

pub(super) fn node_json(ctx: &Ctx<'_>, b: &Binding, var: &str) -> Json {
    match bound_row(ctx, b, var) {
        Some((t, r)) => {
            let mut m = Map::new();
            m.insert("id".into(), Json::from(r.id.clone()));
            for (p, c) in ctx.props[t].iter().zip(&r.cells) {
                if *c != Cell::Null && !p.ty.is_blob() {
                    m.insert(p.name.clone(), to_json(c));
                }
            }
            Json::Object(m)
        }
        None => Json::Null,
    }
}

pub(super) fn aggregate(func: AggFunc, vals: &[Cell]) -> Cell {
    let present: Vec<&Cell> = vals.iter().filter(|c| **c != Cell::Null).collect();
    let num = |c: &Cell| match c {
        Cell::I32(x) => f64::from(*x),
        Cell::I64(x) => *x as f64,
        Cell::U32(x) => f64::from(*x),
        Cell::U64(x) => *x as f64,
        Cell::F32(x) => f64::from(*x),
        Cell::F64(x) => *x,
        _ => 0.0,
    };
    match func {
        AggFunc::Count => Cell::I64(present.len() as i64),
        AggFunc::Sum => {
            if present
                .iter()
                .all(|c| matches!(c, Cell::I32(_) | Cell::I64(_) | Cell::U32(_) | Cell::U64(_)))
            {
                Cell::I64(present.iter().map(|c| num(c) as i64).sum())
            } else {
                Cell::F64(present.iter().map(|c| num(c)).sum())
            }
        }
        AggFunc::Avg if present.is_empty() => Cell::Null,
        AggFunc::Avg => {
            Cell::F64(present.iter().map(|c| num(c)).sum::<f64>() / present.len() as f64)
        }
        AggFunc::Min => present
            .into_iter()
            .min_by(|a, b| cmp_cells_nulls(a, b))
            .cloned()
            .unwrap_or(Cell::Null),
        AggFunc::Max => present
            .into_iter()
            .max_by(|a, b| cmp_cells_nulls(a, b))
            .cloned()
            .unwrap_or(Cell::Null),
    }
}

pub(super) fn cell_json(c: &Cell) -> Json {
    match c {
        Cell::DateTime(ms) => Json::from(format_datetime(*ms)),
        other => to_json(other),
    }
}

/// `limit $n` takes a positive `$n`, as a literal limit must be (`T34`):
/// a zero or negative value is [`EngineError::Param`] naming the parameter
/// (a 400 on the server), never an empty answer.
pub(super) fn limit_param_is_positive(
    plan: &ReadPlan,
    params: &HashMap<String, Cell>,
) -> Result<(), EngineError> {
    let Some(Expr::Param { name }) = &plan.limit else {
        return Ok(());
    };
    let n: Option<i128> = match params.get(name) {
        Some(Cell::I64(n)) => Some(i128::from(*n)),
        Some(Cell::I32(n)) => Some(i128::from(*n)),
        Some(Cell::U32(n)) => Some(i128::from(*n)),
        Some(Cell::U64(n)) => Some(i128::from(*n)),
        _ => None,
    };
    match n {
        Some(n) if n < 1 => Err(EngineError::Param {
            name: name.clone(),
            reason: format!("is used as the limit and must be at least 1, got {n}"),
        }),
        _ => Ok(()),
    }
}

/// Projection, grouping, ordering and limit.
pub(super) fn project(
    ctx: &Ctx<'_>,
    plan: &ReadPlan,
    rows: Vec<Binding>,
) -> Vec<Map<String, Json>> {
    // Each output row: its projected cells (for order/aggregates), JSON, and
    // the tie-break ids of the bound variables.
    struct Out {
        cells: Vec<Cell>,
        json: Vec<Json>,
        ids: Vec<String>,
    }
    let tie_ids = |b: &Binding| -> Vec<String> {
        plan.variables
            .iter()
            .map(|(v, _)| {
                bound_row(ctx, b, v)
                    .map(|(_, r)| r.id.clone())
                    .unwrap_or_default()
            })
            .collect()
    };
    let mut outs: Vec<Out> = Vec::new();
    let mut order_cols: Vec<Vec<Cell>> = Vec::new();
    if let Some(group) = &plan.group_by {
        // Group rows by the group-key projections.
        let keys: Vec<Vec<Cell>> = group
            .iter()
            .map(|&i| column(ctx, &plan.projections[i].expr, &rows))
            .collect();
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for r in 0..rows.len() {
            let k: Vec<Json> = keys.iter().map(|col| cell_json(&col[r])).collect();
            groups
                .entry(serde_json::to_string(&k).unwrap_or_default())
                .or_default()
                .push(r);
        }
        if groups.is_empty() && group.is_empty() {
            groups.insert(String::new(), Vec::new());
        }
        for members in groups.values() {
            let mut cells = Vec::new();
            let mut json = Vec::new();
            for p in &plan.projections {
                let c = match &p.expr {
                    Expr::Aggregate { func, arg } => {
                        let sub: Vec<Binding> = members.iter().map(|&i| rows[i].clone()).collect();
                        let vals = match arg.as_ref() {
                            Expr::Node { var } => sub
                                .iter()
                                .map(|b| {
                                    bound_row(ctx, b, var)
                                        .map_or(Cell::Null, |(_, r)| Cell::Str(r.id.clone()))
                                })
                                .collect(),
                            other => column(ctx, other, &sub),
                        };
                        aggregate(*func, &vals)
                    }
                    other => members
                        .first()
                        .map_or(Cell::Null, |&i| column(ctx, other, &rows[i..=i]).remove(0)),
                };
                json.push(match &p.expr {
                    Expr::Node { var } => members
                        .first()
                        .map_or(Json::Null, |&i| node_json(ctx, &rows[i], var)),
                    _ => cell_json(&c),
                });
                cells.push(c);
            }
            outs.push(Out {
                cells,
                json,
                ids: Vec::new(),
            });
        }
        for k in &plan.order {
            let col = outs
                .iter()
                .map(|o| match &k.expr {
                    Expr::Alias { index, .. } => o.cells[*index].clone(),
                    e => plan
                        .projections
                        .iter()
                        .position(|p| p.expr == *e)
                        .map_or(Cell::Null, |i| o.cells[i].clone()),
                })
                .collect();
            order_cols.push(col);
        }
    } else {
        let cols: Vec<Vec<Cell>> = plan
            .projections
            .iter()
            .map(|p| column(ctx, &p.expr, &rows))
            .collect();
        for (r, b) in rows.iter().enumerate() {
            let cells: Vec<Cell> = cols.iter().map(|c| c[r].clone()).collect();
            let json = plan
                .projections
                .iter()
                .zip(&cells)
                .map(|(p, c)| match &p.expr {
                    Expr::Node { var } => node_json(ctx, b, var),
                    _ => cell_json(c),
                })
                .collect();
            outs.push(Out {
                cells,
                json,
                ids: tie_ids(b),
            });
        }
        for k in &plan.order {
            let col = match &k.expr {
                Expr::Alias { index, .. } => outs.iter().map(|o| o.cells[*index].clone()).collect(),
                e => column(ctx, e, &rows),
            };
            order_cols.push(col);
        }
    }
    let mut idx: Vec<usize> = (0..outs.len()).collect();
    if !plan.order.is_empty() || plan.group_by.is_none() {
        idx.sort_by(|&a, &b| {
            for (k, col) in plan.order.iter().zip(&order_cols) {
                let o = cmp_cells_nulls(&col[a], &col[b]);
                let o = if k.descending { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            outs[a].ids.cmp(&outs[b].ids)
        });
    }
    let limit = match &plan.limit {
        Some(Expr::Literal {
            value: LiteralValue::Int(n),
        }) => usize::try_from(*n).unwrap_or(usize::MAX),
        Some(Expr::Param { name }) => match ctx.params.get(name) {
            Some(Cell::I64(n)) => usize::try_from(*n).unwrap_or(0),
            Some(Cell::I32(n)) => usize::try_from(*n).unwrap_or(0),
            Some(Cell::U32(n)) => *n as usize,
            Some(Cell::U64(n)) => usize::try_from(*n).unwrap_or(usize::MAX),
            _ => usize::MAX,
        },
        _ => usize::MAX,
    };
    idx.into_iter()
        .take(limit)
        .map(|i| {
            plan.projections
                .iter()
                .zip(&outs[i].json)
                .map(|(p, j)| (p.name.clone(), j.clone()))
                .collect()
        })
        .collect()
}
