//! The pipeline of a read: slots for the bound variables, then each op in
//! order (scan by an access path, expand over the CSR, filter, `not`).

use super::*;

pub(super) fn collect_slots(ops: &[Op], slots: &mut HashMap<String, usize>) {
    let add = |v: &str, slots: &mut HashMap<String, usize>| {
        if !slots.contains_key(v) {
            let n = slots.len();
            slots.insert(v.to_string(), n);
        }
    };
    for op in ops {
        match op {
            Op::Scan { var, .. } => add(var, slots),
            Op::Expand {
                from_var,
                to_var,
                edge_var,
                ..
            } => {
                add(from_var, slots);
                add(to_var, slots);
                if let Some(e) = edge_var {
                    add(e, slots);
                }
            }
            Op::AntiJoin { ops } => collect_slots(ops, slots),
            Op::Filter { .. } => {}
        }
    }
}

/// Runs `ops` over `rows`. `top` is the query's own pipeline, whose
/// operators are charged for their input ([`Ctx::begin_op`]); an
/// anti-join's inner pipeline, run per row, is charged inside the
/// operator that runs it.
pub(super) fn run_ops<'a>(
    ctx: &'a Ctx<'a>,
    ops: &'a [Op],
    rows: Vec<Binding>,
    top: bool,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<Binding>, EngineError>> + Send + 'a>,
> {
    Box::pin(async move {
        let mut rows = rows;
        for op in ops {
            if top {
                ctx.begin_op(rows.len())?;
            }
            rows = match op {
                Op::Scan {
                    var,
                    node_type,
                    equals,
                    ..
                } => scan(ctx, var, node_type, equals, rows).await?,
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
                    let step = Step {
                        edge,
                        to_type,
                        fwd: !*reverse || *undirected,
                        bwd: *reverse || *undirected,
                        from: ctx.slots[from_var],
                        to: ctx.slots[to_var],
                        to_bound: *to_bound,
                    };
                    match edge_var {
                        Some(ev) => expand_edges(ctx, &step, ctx.slots[ev], rows).await?,
                        None => expand(ctx, &step, *min_hops, *max_hops, rows).await?,
                    }
                }
                Op::Filter { left, op, right } => rows
                    .into_iter()
                    .filter(|b| match (op, right) {
                        (Some(op), Some(r)) => {
                            let l = eval(ctx, left, b);
                            let r = eval(ctx, r, b);
                            holds(&l, *op, &r)
                        }
                        _ => eval(ctx, left, b) == Cell::Bool(true),
                    })
                    .collect(),
                Op::AntiJoin { ops } => {
                    let mut out = Vec::new();
                    for b in rows {
                        if run_ops(ctx, ops, vec![b.clone()], false).await?.is_empty() {
                            out.push(b);
                        }
                    }
                    out
                }
            };
            ctx.check_rows(rows.len())?;
        }
        Ok(rows)
    })
}

/// Binds `var` to the rows of `node_type` matching `equals`, per input row.
pub(super) async fn scan(
    ctx: &Ctx<'_>,
    var: &str,
    node_type: &str,
    equals: &[(String, Expr)],
    rows: Vec<Binding>,
) -> Result<Vec<Binding>, EngineError> {
    let ti = ctx.table_ix[&node_key(node_type)];
    let t = &ctx.tables[ti];
    let slot = ctx.slots[var];
    // An equality on `id` or a BTREE-indexed property: one indexed lookup
    // for every value the input rows ask for.
    let mut candidates: Option<Vec<Arc<Row>>> = None;
    for (p, e) in equals {
        if !t.btree.contains(p) {
            continue;
        }
        let lits: Option<HashSet<String>> = rows
            .iter()
            .filter_map(|b| match eval(ctx, e, b) {
                Cell::Null => None,
                c => Some(sql_literal(&c)),
            })
            .collect();
        if let Some(lits) = lits {
            let lits: Vec<String> = lits.into_iter().collect();
            candidates = Some(t.rows_where_in(p, &lits).await?);
            break;
        }
    }
    // Else an indexed `nearest` chose this variable's rows.
    if candidates.is_none()
        && let Some(ids) = ctx.var_ann.get(var)
    {
        candidates = Some(t.rows_by_id(ids).await?.into_values().collect());
    }
    // Else a full-text filter on this variable: only its hits.
    if candidates.is_none()
        && let Some(keys) = ctx.var_fts.get(var)
    {
        let mut ids: Option<HashSet<String>> = None;
        for k in keys {
            let Some(hits) = ctx.fts.get(k) else { continue };
            let these: HashSet<String> = hits.keys().cloned().collect();
            ids = Some(match ids {
                Some(prev) => prev.intersection(&these).cloned().collect(),
                None => these,
            });
        }
        if let Some(ids) = ids {
            candidates = Some(t.rows_by_id(&ids).await?.into_values().collect());
        }
    }
    let full;
    let candidates: &[Arc<Row>] = match &candidates {
        Some(c) => c,
        None => {
            full = t.full().await?;
            &full.rows
        }
    };
    // Without equalities every input row pairs with every candidate (an
    // unconnected binding: a cross product): refuse before building it.
    if equals.is_empty() {
        let product = rows.len().saturating_mul(candidates.len());
        ctx.check_rows(product)?;
        ctx.check_bytes((product as u64).saturating_mul(ctx.binding_bytes))?;
    }
    let mut out = Vec::new();
    for b in rows {
        for r in candidates {
            if equals.iter().all(|(p, e)| {
                let left = prop_of(&ctx.props[ti], r, p);
                let right = eval(ctx, e, &b);
                holds(&left, CmpOp::Eq, &right)
            }) {
                let mut nb = b.clone();
                nb[slot] = Some(Bound {
                    table: ti,
                    row: r.clone(),
                });
                out.push(nb);
                ctx.check_rows(out.len())?;
            }
        }
    }
    Ok(out)
}

/// One traversal step's shape.
pub(super) struct Step<'s> {
    pub(super) edge: &'s str,
    pub(super) to_type: &'s str,
    pub(super) fwd: bool,
    pub(super) bwd: bool,
    pub(super) from: usize,
    pub(super) to: usize,
    pub(super) to_bound: bool,
}

/// Variable-length traversal over the edge table's CSR.
///
/// Breadth-first (reference: docs/user/queries, "Traversal"): a destination
/// is reported at most once per source; a node is expanded once; reaching an
/// already visited node is pruned, except a self-loop, which reports its
/// node at the current hop when the hop is within bounds.
pub(super) async fn expand(
    ctx: &Ctx<'_>,
    s: &Step<'_>,
    min_hops: u32,
    max_hops: Option<u32>,
    rows: Vec<Binding>,
) -> Result<Vec<Binding>, EngineError> {
    let ei = ctx.table_ix[&edge_key(s.edge)];
    let ti = ctx.table_ix[&node_key(s.to_type)];
    let csr = ctx.tables[ei].csr().await?;
    // Per input row: the ids reached.
    let mut reached_per_row: Vec<Vec<String>> = Vec::with_capacity(rows.len());
    // Pairs reached so far, over every input row (the budget's count).
    let mut total = 0usize;
    let mut wanted: HashSet<String> = HashSet::new();
    let mut buf = Vec::new();
    for b in &rows {
        let Some(from) = &b[s.from] else {
            reached_per_row.push(Vec::new());
            continue;
        };
        let start_id = &from.row.id;
        let mut reached: Vec<String> = Vec::new();
        if min_hops == 0 {
            reached.push(start_id.clone());
        }
        if let Some(&start) = csr.dense.get(start_id) {
            let mut reported: HashSet<u32> = HashSet::new();
            if min_hops == 0 {
                reported.insert(start);
            }
            let mut visited: HashSet<u32> = HashSet::from([start]);
            let mut frontier = vec![start];
            let mut hop = 0u32;
            while !frontier.is_empty() && max_hops.is_none_or(|m| hop < m) {
                hop += 1;
                let mut next = Vec::new();
                for &n in &frontier {
                    buf.clear();
                    csr.neighbours(n, s.fwd, s.bwd, &mut buf);
                    ctx.check_expansions(buf.len() as u64 + 1)?;
                    for &other in &buf {
                        if other != n && !visited.insert(other) {
                            continue;
                        }
                        if other != n {
                            next.push(other);
                        }
                        if hop >= min_hops && reported.insert(other) {
                            reached.push(csr.ids[other as usize].clone());
                        }
                    }
                }
                frontier = next;
            }
        }
        total += reached.len();
        ctx.check_rows(total)?;
        // Each reached id, and the binding it becomes.
        ctx.check_bytes(
            (total as u64).saturating_mul(budget::REACHED_ID_BYTES + ctx.binding_bytes),
        )?;
        wanted.extend(reached.iter().cloned());
        reached_per_row.push(reached);
    }
    let targets = ctx.tables[ti].rows_by_id(&wanted).await?;
    let mut out = Vec::new();
    for (b, reached) in rows.into_iter().zip(reached_per_row) {
        for id in reached {
            let Some(r) = targets.get(&id) else {
                continue;
            };
            let bound = Bound {
                table: ti,
                row: r.clone(),
            };
            if s.to_bound {
                if b[s.to].as_ref() == Some(&bound) {
                    out.push(b.clone());
                }
                continue;
            }
            let mut nb = b.clone();
            nb[s.to] = Some(bound);
            out.push(nb);
        }
    }
    Ok(out)
}

/// A single hop that binds the edge too: one output row per matching edge,
/// with the edge rows read through the `src`/`dst` BTREE indexes.
pub(super) async fn expand_edges(
    ctx: &Ctx<'_>,
    s: &Step<'_>,
    eslot: usize,
    rows: Vec<Binding>,
) -> Result<Vec<Binding>, EngineError> {
    let ei = ctx.table_ix[&edge_key(s.edge)];
    let ti = ctx.table_ix[&node_key(s.to_type)];
    let et = &ctx.tables[ei];
    let starts: HashSet<String> = rows
        .iter()
        .filter_map(|b| b[s.from].as_ref().map(|f| f.row.id.clone()))
        .collect();
    let lits: Vec<String> = starts.iter().map(|i| sql_string(i)).collect();
    let mut by_src: HashMap<String, Vec<Arc<Row>>> = HashMap::new();
    let mut by_dst: HashMap<String, Vec<Arc<Row>>> = HashMap::new();
    if s.fwd && !lits.is_empty() {
        for r in et.rows_where_in("src", &lits).await? {
            by_src
                .entry(r.src.clone().unwrap_or_default())
                .or_default()
                .push(r);
        }
    }
    if s.bwd && !lits.is_empty() {
        for r in et.rows_where_in("dst", &lits).await? {
            by_dst
                .entry(r.dst.clone().unwrap_or_default())
                .or_default()
                .push(r);
        }
    }
    // (input row, edge row, other end)
    let mut hits: Vec<(usize, Arc<Row>, String)> = Vec::new();
    let mut wanted = HashSet::new();
    for (i, b) in rows.iter().enumerate() {
        let Some(f) = &b[s.from] else { continue };
        let mut seen = HashSet::new();
        for e in by_src.get(&f.row.id).into_iter().flatten() {
            if seen.insert(e.id.clone())
                && let Some(d) = &e.dst
            {
                wanted.insert(d.clone());
                hits.push((i, e.clone(), d.clone()));
            }
        }
        for e in by_dst.get(&f.row.id).into_iter().flatten() {
            if seen.insert(e.id.clone())
                && let Some(src) = &e.src
            {
                wanted.insert(src.clone());
                hits.push((i, e.clone(), src.clone()));
            }
        }
        ctx.check_rows(hits.len())?;
    }
    let targets = ctx.tables[ti].rows_by_id(&wanted).await?;
    let mut out = Vec::new();
    for (i, e, other) in hits {
        let Some(r) = targets.get(&other) else {
            continue;
        };
        let b = &rows[i];
        let bound = Bound {
            table: ti,
            row: r.clone(),
        };
        if s.to_bound && b[s.to].as_ref() != Some(&bound) {
            continue;
        }
        let mut nb = b.clone();
        nb[s.to] = Some(bound);
        nb[eslot] = Some(Bound { table: ei, row: e });
        out.push(nb);
        ctx.check_rows(out.len())?;
    }
    Ok(out)
}
