//! Evaluating expressions on a binding: properties, literals, comparisons,
//! text predicates and scores (BM25, cosine distance).

use super::*;

pub(super) fn prop_of(props: &[Property], r: &Row, p: &str) -> Cell {
    match p {
        "id" => Cell::Str(r.id.clone()),
        _ => props
            .iter()
            .position(|x| x.name == p)
            .map_or(Cell::Null, |i| r.cells[i].clone()),
    }
}

pub(super) fn bound_row<'c>(ctx: &Ctx<'_>, b: &'c Binding, var: &str) -> Option<(usize, &'c Row)> {
    let slot = *ctx.slots.get(var)?;
    let bound = b.get(slot)?.as_ref()?;
    Some((bound.table, &bound.row))
}

pub(super) fn fuzzy_edits(ctx: &Ctx<'_>, max_edits: Option<&Expr>, b: &Binding) -> u32 {
    match max_edits.map(|m| eval(ctx, m, b)) {
        Some(Cell::I64(k)) => u32::try_from(k.max(0)).unwrap_or(u32::MAX),
        Some(Cell::I32(k)) => u32::try_from(k.max(0)).unwrap_or(u32::MAX),
        _ => 1,
    }
}

/// Lowercased word tokens, for the in-memory text predicates.
pub(super) fn tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

pub(super) fn text_cell(c: &Cell) -> String {
    match c {
        Cell::Str(s) => s.clone(),
        Cell::List(items) => items.iter().map(text_cell).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

pub(super) fn eval(ctx: &Ctx<'_>, e: &Expr, b: &Binding) -> Cell {
    match e {
        Expr::Literal { value } => literal(value),
        Expr::Param { name } => ctx.params.get(name).cloned().unwrap_or(Cell::Null),
        Expr::Now => Cell::DateTime(ctx.now),
        Expr::Property { var, property } | Expr::EdgeProperty { var, property } => {
            match bound_row(ctx, b, var) {
                Some((t, r)) => prop_of(&ctx.props[t], r, property),
                None => Cell::Null,
            }
        }
        Expr::Node { var } => match bound_row(ctx, b, var) {
            Some((_, r)) => Cell::Str(r.id.clone()),
            None => Cell::Null,
        },
        Expr::TextMatch {
            func,
            var,
            property,
            query,
            max_edits,
        } => {
            let Some((t, r)) = bound_row(ctx, b, var) else {
                return Cell::Bool(false);
            };
            if let Some((ft, p, mode, q)) = text_query(ctx, e)
                && ft == t
                && let Some(hits) = ctx.fts.get(&fts_key(ft, &p, mode, &q))
            {
                return Cell::Bool(hits.contains_key(&r.id));
            }
            let text = text_cell(&prop_of(&ctx.props[t], r, property));
            let q = text_cell(&eval(ctx, query, b));
            let doc = tokens(&text);
            let qt = tokens(&q);
            if qt.is_empty() {
                return Cell::Bool(false);
            }
            let ok = match func {
                TextSearch::Search => qt.iter().any(|w| doc.contains(w)),
                TextSearch::MatchText => qt.iter().all(|w| doc.contains(w)),
                TextSearch::Fuzzy => {
                    let k = fuzzy_edits(ctx, max_edits.as_deref(), b) as usize;
                    qt.iter()
                        .any(|w| doc.iter().any(|d| crate::diag::levenshtein(w, d) <= k))
                }
            };
            Cell::Bool(ok)
        }
        Expr::List { items } => Cell::List(items.iter().map(|i| eval(ctx, i, b)).collect()),
        // Scores and aggregates are computed over the whole result set.
        _ => Cell::Null,
    }
}

pub(super) fn literal(v: &LiteralValue) -> Cell {
    match v {
        LiteralValue::Null => Cell::Null,
        LiteralValue::Bool(b) => Cell::Bool(*b),
        LiteralValue::Int(i) => Cell::I64(*i),
        LiteralValue::Float(f) => Cell::F64(*f),
        LiteralValue::String(s) => Cell::Str(s.clone()),
        LiteralValue::Date(d) => Cell::Date(*d),
        LiteralValue::DateTime(ms) => Cell::DateTime(*ms),
        LiteralValue::List(items) => Cell::List(items.iter().map(literal).collect()),
    }
}

/// BM25 over the rows' texts for one query (k1 = 1.2, b = 0.75).
pub(super) fn bm25_scores(docs: &[Vec<String>], query: &[String]) -> Vec<f64> {
    let n = docs.len() as f64;
    let avg = docs.iter().map(Vec::len).sum::<usize>() as f64 / n.max(1.0);
    let df = |w: &String| docs.iter().filter(|d| d.contains(w)).count() as f64;
    let idf: Vec<f64> = query
        .iter()
        .map(|w| ((n - df(w) + 0.5) / (df(w) + 0.5) + 1.0).ln())
        .collect();
    docs.iter()
        .map(|d| {
            query
                .iter()
                .zip(&idf)
                .map(|(w, idf)| {
                    let tf = d.iter().filter(|x| *x == w).count() as f64;
                    idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * d.len() as f64 / avg.max(1.0)))
                })
                .sum()
        })
        .collect()
}

pub(super) fn cosine_distance(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        1.0
    } else {
        1.0 - dot / (na * nb)
    }
}

/// A score per row for a ranking expression (bm25, nearest, rrf).
pub(super) fn scores(ctx: &Ctx<'_>, e: &Expr, rows: &[Binding]) -> Option<Vec<Cell>> {
    match e {
        Expr::Bm25 {
            var,
            property,
            query,
        } => {
            if let Some((t, p, mode, q)) = text_query(ctx, e)
                && let Some(hits) = ctx.fts.get(&fts_key(t, &p, mode, &q))
            {
                return Some(
                    rows.iter()
                        .map(|b| match bound_row(ctx, b, var) {
                            Some((bt, r)) if bt == t => {
                                Cell::F64(hits.get(&r.id).copied().map_or(0.0, f64::from))
                            }
                            _ => Cell::F64(0.0),
                        })
                        .collect(),
                );
            }
            let docs: Vec<Vec<String>> = rows
                .iter()
                .map(|b| match bound_row(ctx, b, var) {
                    Some((t, r)) => tokens(&text_cell(&prop_of(&ctx.props[t], r, property))),
                    None => Vec::new(),
                })
                .collect();
            let q = rows
                .first()
                .map(|b| tokens(&text_cell(&eval(ctx, query, b))))
                .unwrap_or_default();
            Some(bm25_scores(&docs, &q).into_iter().map(Cell::F64).collect())
        }
        Expr::Nearest {
            var,
            property,
            query,
        } => Some(
            rows.iter()
                .map(|b| {
                    let Some((t, r)) = bound_row(ctx, b, var) else {
                        return Cell::Null;
                    };
                    match (prop_of(&ctx.props[t], r, property), eval(ctx, query, b)) {
                        (Cell::Vector(a), Cell::Vector(q)) => Cell::F64(cosine_distance(&a, &q)),
                        (Cell::Vector(a), Cell::Str(text)) => ctx
                            .query_vectors
                            .get(&(t, property.clone(), text))
                            .map_or(Cell::Null, |q| Cell::F64(cosine_distance(&a, q))),
                        _ => Cell::Null,
                    }
                })
                .collect(),
        ),
        Expr::Rrf { a, b, k } => {
            let k = match rows.first().map(|r| eval(ctx, k, r)) {
                Some(Cell::I64(k)) => k as f64,
                _ => 60.0,
            };
            // Each row's rank in one ranking, best first: 1 + the rows
            // scoring strictly better (equal scores share a rank, so the
            // fusion does not depend on row order); a null score (no
            // vector, no text) ranks after every score.
            let ranks = |s: Vec<Cell>, best_high: bool| -> Vec<f64> {
                let mut idx: Vec<usize> = (0..s.len()).collect();
                let better = |x: &Cell, y: &Cell| match (x, y) {
                    (Cell::Null, Cell::Null) => Ordering::Equal,
                    (Cell::Null, _) => Ordering::Greater,
                    (_, Cell::Null) => Ordering::Less,
                    _ => {
                        let o = cmp_cells_nulls(x, y);
                        if best_high { o.reverse() } else { o }
                    }
                };
                idx.sort_by(|&x, &y| better(&s[x], &s[y]));
                let mut r = vec![0.0; s.len()];
                let mut rank = 0;
                for (pos, &i) in idx.iter().enumerate() {
                    if pos == 0 || better(&s[idx[pos - 1]], &s[i]) != Ordering::Equal {
                        rank = pos;
                    }
                    r[i] = 1.0 / (k + rank as f64 + 1.0);
                }
                r
            };
            let ra = ranks(scores(ctx, a, rows)?, matches!(**a, Expr::Bm25 { .. }));
            let rb = ranks(scores(ctx, b, rows)?, matches!(**b, Expr::Bm25 { .. }));
            Some(ra.iter().zip(&rb).map(|(x, y)| Cell::F64(x + y)).collect())
        }
        _ => None,
    }
}

/// Orders cells with nulls first.
pub(super) fn cmp_cells_nulls(a: &Cell, b: &Cell) -> Ordering {
    match (a, b) {
        (Cell::Null, Cell::Null) => Ordering::Equal,
        (Cell::Null, _) => Ordering::Less,
        (_, Cell::Null) => Ordering::Greater,
        _ => {
            if holds(a, CmpOp::Lt, b) {
                Ordering::Less
            } else if holds(a, CmpOp::Gt, b) {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
    }
}

/// The value of a projection or order expression for every row.
pub(super) fn column(ctx: &Ctx<'_>, e: &Expr, rows: &[Binding]) -> Vec<Cell> {
    scores(ctx, e, rows).unwrap_or_else(|| rows.iter().map(|b| eval(ctx, e, b)).collect())
}
