//! The `.gq` syntax tree, with byte spans for diagnostics.
//!
//! Variable names are stored without the `$`; their spans include it.

use std::fmt;
use std::ops::Range;

use serde::Serialize;

use crate::diag::Diagnostic;
use crate::syntax::ast::{AnnotationAst, Ident, TypeAst, string_value};
use crate::syntax::{self, Pair, Rule, span};

/// A parsed `.gq` file: a list of named queries.
#[derive(Debug, Clone, Default)]
pub struct QueryFile {
    pub queries: Vec<QueryAst>,
}

/// `query name($p: T, …) @annotations { body }`.
#[derive(Debug, Clone)]
pub struct QueryAst {
    pub name: Ident,
    pub params: Vec<ParamAst>,
    pub annotations: Vec<AnnotationAst>,
    pub body: BodyAst,
    pub span: Range<usize>,
}

/// `$name: Type` in a query signature.
#[derive(Debug, Clone)]
pub struct ParamAst {
    pub name: Ident,
    pub ty: TypeAst,
    pub span: Range<usize>,
}

#[derive(Debug, Clone)]
pub enum BodyAst {
    Read(ReadAst),
    Mutation(Vec<MutationAst>),
}

/// `match { … } return { … } [order { … }] [limit N]`.
#[derive(Debug, Clone)]
pub struct ReadAst {
    pub clauses: Vec<ClauseAst>,
    pub returns: Vec<ReturnItemAst>,
    pub order: Vec<OrderItemAst>,
    pub limit: Option<LimitAst>,
    pub return_span: Range<usize>,
}

/// One line of a `match` block.
#[derive(Debug, Clone)]
pub enum ClauseAst {
    /// `$x: Type { prop: value, … }`.
    Binding {
        var: Ident,
        ty: Ident,
        props: Vec<(Ident, ExprAst)>,
        span: Range<usize>,
    },
    /// `$a [$e:]edge[{min,max}] $b`, or `$a <edge> $b` for undirected.
    Traversal {
        src: Ident,
        edge_var: Option<Ident>,
        edge: Ident,
        undirected: bool,
        bounds: Option<HopBoundsAst>,
        dst: Ident,
        span: Range<usize>,
    },
    /// `left op right`, or a bare boolean expression (`search(…)`).
    Filter {
        left: ExprAst,
        op: Option<(CmpOp, Range<usize>)>,
        right: Option<ExprAst>,
        span: Range<usize>,
    },
    /// `not { … }`.
    Not {
        clauses: Vec<ClauseAst>,
        span: Range<usize>,
    },
}

impl ClauseAst {
    pub fn span(&self) -> Range<usize> {
        match self {
            ClauseAst::Binding { span, .. }
            | ClauseAst::Traversal { span, .. }
            | ClauseAst::Filter { span, .. }
            | ClauseAst::Not { span, .. } => span.clone(),
        }
    }
}

/// `{min}`, `{min,max}` or `{min,}` (unbounded).
#[derive(Debug, Clone)]
pub struct HopBoundsAst {
    pub min: u32,
    /// `None` for `{min,}`.
    pub max: Option<u32>,
    pub span: Range<usize>,
}

/// Comparison and string predicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    StartsWith,
}

impl CmpOp {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "=" => CmpOp::Eq,
            "!=" => CmpOp::Ne,
            "<" => CmpOp::Lt,
            "<=" => CmpOp::Le,
            ">" => CmpOp::Gt,
            ">=" => CmpOp::Ge,
            "contains" => CmpOp::Contains,
            "starts_with" => CmpOp::StartsWith,
            _ => return None,
        })
    }

    /// True for `<`, `<=`, `>`, `>=`.
    pub fn is_ordering(self) -> bool {
        matches!(self, CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge)
    }
}

impl fmt::Display for CmpOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Contains => "contains",
            CmpOp::StartsWith => "starts_with",
        })
    }
}

/// An expression as written.
#[derive(Debug, Clone)]
pub enum ExprAst {
    Var(Ident),
    Prop {
        var: Ident,
        prop: Ident,
        span: Range<usize>,
    },
    Call {
        func: Ident,
        args: Vec<ExprAst>,
        span: Range<usize>,
    },
    Str {
        value: String,
        span: Range<usize>,
    },
    Int {
        value: i64,
        span: Range<usize>,
    },
    Float {
        value: f64,
        span: Range<usize>,
    },
    Bool {
        value: bool,
        span: Range<usize>,
    },
    Null {
        span: Range<usize>,
    },
    List {
        items: Vec<ExprAst>,
        span: Range<usize>,
    },
    /// A bare name: a reference to a `return … as name` alias.
    Alias(Ident),
}

impl ExprAst {
    pub fn span(&self) -> Range<usize> {
        match self {
            ExprAst::Var(i) | ExprAst::Alias(i) => i.span.clone(),
            ExprAst::Prop { span, .. }
            | ExprAst::Call { span, .. }
            | ExprAst::Str { span, .. }
            | ExprAst::Int { span, .. }
            | ExprAst::Float { span, .. }
            | ExprAst::Bool { span, .. }
            | ExprAst::Null { span }
            | ExprAst::List { span, .. } => span.clone(),
        }
    }
}

/// `expr [as alias]`.
#[derive(Debug, Clone)]
pub struct ReturnItemAst {
    pub expr: ExprAst,
    pub alias: Option<Ident>,
    pub span: Range<usize>,
}

/// `expr [asc|desc]`.
#[derive(Debug, Clone)]
pub struct OrderItemAst {
    pub expr: ExprAst,
    /// `Some(true)` for `desc`, `Some(false)` for `asc`, `None` when unwritten.
    pub descending: Option<bool>,
    pub span: Range<usize>,
}

/// `limit 10` or `limit $n`.
#[derive(Debug, Clone)]
pub enum LimitAst {
    Int { value: u64, span: Range<usize> },
    Param(Ident),
}

/// One mutation statement.
#[derive(Debug, Clone)]
pub enum MutationAst {
    Insert {
        ty: Ident,
        assigns: Vec<(Ident, ExprAst)>,
        span: Range<usize>,
    },
    Update {
        ty: Ident,
        assigns: Vec<(Ident, ExprAst)>,
        predicate: PredicateAst,
        span: Range<usize>,
    },
    Delete {
        ty: Ident,
        predicate: PredicateAst,
        span: Range<usize>,
    },
}

impl MutationAst {
    pub fn span(&self) -> Range<usize> {
        match self {
            MutationAst::Insert { span, .. }
            | MutationAst::Update { span, .. }
            | MutationAst::Delete { span, .. } => span.clone(),
        }
    }
}

/// `where prop op value`.
#[derive(Debug, Clone)]
pub struct PredicateAst {
    pub prop: Ident,
    pub op: CmpOp,
    pub value: ExprAst,
    pub span: Range<usize>,
}

/// Parses `.gq` source. A syntax error is `Q000`; a literal that does not fit
/// its type is `Q001`; a query mixing inserts/updates with deletes is `T32`
/// (the reference rejects it at parse time).
pub fn parse_queries(src: &str) -> Result<QueryFile, Vec<Diagnostic>> {
    let root = syntax::parse(Rule::query_file, src, "Q000").map_err(|d| vec![d])?;
    let mut b = Builder::default();
    let mut queries = Vec::new();
    for p in root.into_inner() {
        if p.as_rule() == Rule::query_decl
            && let Some(q) = b.query(p)
        {
            queries.push(q);
        }
    }
    if b.errors.is_empty() {
        Ok(QueryFile { queries })
    } else {
        Err(b.errors)
    }
}

#[derive(Default)]
struct Builder {
    errors: Vec<Diagnostic>,
}

fn var_ident(p: &Pair<'_>) -> Ident {
    Ident {
        name: p.as_str().trim_start_matches('$').to_string(),
        span: span(p),
    }
}

impl Builder {
    fn query(&mut self, p: Pair<'_>) -> Option<QueryAst> {
        let sp = span(&p);
        let mut name = None;
        let mut params = Vec::new();
        let mut annotations = Vec::new();
        let mut body = None;
        for inner in p.into_inner() {
            match inner.as_rule() {
                Rule::ident => name = Some(Ident::from_pair(&inner)),
                Rule::param => {
                    let psp = span(&inner);
                    let mut it = inner.into_inner();
                    let (Some(v), Some(t)) = (it.next(), it.next()) else {
                        continue;
                    };
                    params.push(ParamAst {
                        name: var_ident(&v),
                        ty: TypeAst::from_pair(t),
                        span: psp,
                    });
                }
                Rule::annotation => annotations.push(AnnotationAst::from_pair(inner)),
                Rule::read_body => body = Some(BodyAst::Read(self.read(inner))),
                Rule::mutation_body => {
                    let stmts: Vec<MutationAst> = inner
                        .into_inner()
                        .filter_map(|s| self.mutation(s))
                        .collect();
                    body = Some(BodyAst::Mutation(stmts));
                }
                _ => {}
            }
        }
        let name = name?;
        if let Some(BodyAst::Mutation(stmts)) = &body {
            let writes = stmts
                .iter()
                .any(|s| !matches!(s, MutationAst::Delete { .. }));
            let deletes = stmts
                .iter()
                .find(|s| matches!(s, MutationAst::Delete { .. }));
            if let (true, Some(del)) = (writes, deletes) {
                self.errors.push(
                    Diagnostic::error(
                        "T32",
                        del.span(),
                        format!(
                            "mutation '{}' on the same query mixes inserts/updates and deletes; split into separate mutations: (1) inserts and updates, then (2) deletes.",
                            name.name
                        ),
                    )
                    .with_help("to land both as one atomic commit, run them on a branch and merge it"),
                );
            }
        }
        Some(QueryAst {
            name,
            params,
            annotations,
            body: body?,
            span: sp,
        })
    }

    fn read(&mut self, p: Pair<'_>) -> ReadAst {
        let mut read = ReadAst {
            clauses: Vec::new(),
            returns: Vec::new(),
            order: Vec::new(),
            limit: None,
            return_span: 0..0,
        };
        for inner in p.into_inner() {
            match inner.as_rule() {
                Rule::match_clause => {
                    read.clauses = inner.into_inner().filter_map(|c| self.clause(c)).collect();
                }
                Rule::return_clause => {
                    read.return_span = span(&inner);
                    for item in inner
                        .into_inner()
                        .filter(|i| i.as_rule() == Rule::return_item)
                    {
                        let isp = span(&item);
                        let mut expr = None;
                        let mut alias = None;
                        for part in item.into_inner() {
                            match part.as_rule() {
                                Rule::expr => expr = self.expr(part),
                                Rule::ident => alias = Some(Ident::from_pair(&part)),
                                _ => {}
                            }
                        }
                        if let Some(expr) = expr {
                            read.returns.push(ReturnItemAst {
                                expr,
                                alias,
                                span: isp,
                            });
                        }
                    }
                }
                Rule::order_clause => {
                    for item in inner
                        .into_inner()
                        .filter(|i| i.as_rule() == Rule::order_item)
                    {
                        let isp = span(&item);
                        let mut expr = None;
                        let mut descending = None;
                        for part in item.into_inner() {
                            match part.as_rule() {
                                Rule::expr => expr = self.expr(part),
                                Rule::direction => descending = Some(part.as_str() == "desc"),
                                _ => {}
                            }
                        }
                        if let Some(expr) = expr {
                            read.order.push(OrderItemAst {
                                expr,
                                descending,
                                span: isp,
                            });
                        }
                    }
                }
                Rule::limit_clause => {
                    for part in inner.into_inner() {
                        match part.as_rule() {
                            Rule::integer => match part.as_str().parse::<u64>() {
                                Ok(value) => {
                                    read.limit = Some(LimitAst::Int {
                                        value,
                                        span: span(&part),
                                    })
                                }
                                Err(_) => self.errors.push(Diagnostic::error(
                                    "Q001",
                                    span(&part),
                                    "limit is too large",
                                )),
                            },
                            Rule::variable => read.limit = Some(LimitAst::Param(var_ident(&part))),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        read
    }

    fn clause(&mut self, p: Pair<'_>) -> Option<ClauseAst> {
        let sp = span(&p);
        match p.as_rule() {
            Rule::binding => {
                let mut it = p.into_inner();
                let var = var_ident(&it.next()?);
                let ty = Ident::from_pair(&it.next()?);
                let mut props = Vec::new();
                if let Some(pm) = it.next() {
                    for m in pm.into_inner() {
                        let mut mi = m.into_inner();
                        let (Some(k), Some(v)) = (mi.next(), mi.next()) else {
                            continue;
                        };
                        if let Some(e) = self.expr(v) {
                            props.push((Ident::from_pair(&k), e));
                        }
                    }
                }
                Some(ClauseAst::Binding {
                    var,
                    ty,
                    props,
                    span: sp,
                })
            }
            Rule::traversal => {
                let mut vars = Vec::new();
                let mut edge_var = None;
                let mut edge = None;
                let mut undirected = false;
                let mut bounds = None;
                for part in p.into_inner() {
                    match part.as_rule() {
                        Rule::variable => vars.push(var_ident(&part)),
                        Rule::edge_binding => {
                            edge_var = part.into_inner().next().map(|v| var_ident(&v));
                        }
                        Rule::edge_ref => {
                            let inner = part.into_inner().next()?;
                            if inner.as_rule() == Rule::undirected {
                                undirected = true;
                                edge = inner.into_inner().next().map(|i| Ident::from_pair(&i));
                            } else {
                                edge = Some(Ident::from_pair(&inner));
                            }
                        }
                        Rule::hop_bounds => bounds = self.bounds(part),
                        _ => {}
                    }
                }
                let mut vars = vars.into_iter();
                Some(ClauseAst::Traversal {
                    src: vars.next()?,
                    edge_var,
                    edge: edge?,
                    undirected,
                    bounds,
                    dst: vars.next()?,
                    span: sp,
                })
            }
            Rule::filter => {
                let mut left = None;
                let mut op = None;
                let mut right = None;
                for part in p.into_inner() {
                    match part.as_rule() {
                        Rule::expr if left.is_none() => left = self.expr(part),
                        Rule::expr => right = self.expr(part),
                        Rule::filter_op => {
                            op = CmpOp::parse(part.as_str()).map(|o| (o, span(&part)))
                        }
                        _ => {}
                    }
                }
                Some(ClauseAst::Filter {
                    left: left?,
                    op,
                    right,
                    span: sp,
                })
            }
            Rule::not_clause => {
                let clauses = p.into_inner().filter_map(|c| self.clause(c)).collect();
                Some(ClauseAst::Not { clauses, span: sp })
            }
            _ => None,
        }
    }

    fn bounds(&mut self, p: Pair<'_>) -> Option<HopBoundsAst> {
        let sp = span(&p);
        let mut nums = Vec::new();
        let mut comma = false;
        for part in p.into_inner() {
            match part.as_rule() {
                Rule::integer => match part.as_str().parse::<u32>() {
                    Ok(n) => nums.push(n),
                    Err(_) => {
                        self.errors.push(Diagnostic::error(
                            "Q001",
                            span(&part),
                            "hop bound is too large",
                        ));
                        return None;
                    }
                },
                Rule::hop_comma => comma = true,
                _ => {}
            }
        }
        let min = *nums.first()?;
        let max = match (comma, nums.get(1)) {
            (false, _) => Some(min),
            (true, Some(m)) => Some(*m),
            (true, None) => None,
        };
        Some(HopBoundsAst { min, max, span: sp })
    }

    fn mutation(&mut self, p: Pair<'_>) -> Option<MutationAst> {
        let sp = span(&p);
        let rule = p.as_rule();
        let mut ty = None;
        let mut assigns = Vec::new();
        let mut predicate = None;
        for part in p.into_inner() {
            match part.as_rule() {
                Rule::ident => ty = Some(Ident::from_pair(&part)),
                Rule::assignments => {
                    for a in part.into_inner() {
                        let mut ai = a.into_inner();
                        let (Some(k), Some(v)) = (ai.next(), ai.next()) else {
                            continue;
                        };
                        if let Some(e) = self.expr(v) {
                            assigns.push((Ident::from_pair(&k), e));
                        }
                    }
                }
                Rule::predicate => {
                    let psp = span(&part);
                    let mut pi = part.into_inner();
                    let (Some(k), Some(o), Some(v)) = (pi.next(), pi.next(), pi.next()) else {
                        continue;
                    };
                    let value = self.expr(v)?;
                    predicate = Some(PredicateAst {
                        prop: Ident::from_pair(&k),
                        op: CmpOp::parse(o.as_str())?,
                        value,
                        span: psp,
                    });
                }
                _ => {}
            }
        }
        let ty = ty?;
        match rule {
            Rule::insert_stmt => Some(MutationAst::Insert {
                ty,
                assigns,
                span: sp,
            }),
            Rule::update_stmt => Some(MutationAst::Update {
                ty,
                assigns,
                predicate: predicate?,
                span: sp,
            }),
            Rule::delete_stmt => Some(MutationAst::Delete {
                ty,
                predicate: predicate?,
                span: sp,
            }),
            _ => None,
        }
    }

    fn expr(&mut self, p: Pair<'_>) -> Option<ExprAst> {
        let p = if p.as_rule() == Rule::expr {
            p.into_inner().next()?
        } else {
            p
        };
        let sp = span(&p);
        Some(match p.as_rule() {
            Rule::variable => ExprAst::Var(var_ident(&p)),
            Rule::prop_access => {
                let mut it = p.into_inner();
                let var = var_ident(&it.next()?);
                let prop = Ident::from_pair(&it.next()?);
                ExprAst::Prop {
                    var,
                    prop,
                    span: sp,
                }
            }
            Rule::func_call => {
                let mut it = p.into_inner();
                let func = Ident::from_pair(&it.next()?);
                let args = it.filter_map(|a| self.expr(a)).collect();
                ExprAst::Call {
                    func,
                    args,
                    span: sp,
                }
            }
            Rule::string => ExprAst::Str {
                value: string_value(&p),
                span: sp,
            },
            Rule::number => {
                let text = p.as_str();
                if text.contains(['.', 'e', 'E']) {
                    match text.parse::<f64>() {
                        Ok(value) if value.is_finite() => ExprAst::Float { value, span: sp },
                        _ => {
                            self.errors.push(Diagnostic::error(
                                "Q001",
                                sp,
                                format!("number `{text}` is out of range"),
                            ));
                            return None;
                        }
                    }
                } else {
                    match text.parse::<i64>() {
                        Ok(value) => ExprAst::Int { value, span: sp },
                        Err(_) => {
                            self.errors.push(
                                Diagnostic::error(
                                    "Q001",
                                    sp,
                                    format!("integer `{text}` does not fit in 64 bits"),
                                )
                                .with_help("pass large values as a parameter of type U64"),
                            );
                            return None;
                        }
                    }
                }
            }
            Rule::boolean => ExprAst::Bool {
                value: p.as_str() == "true",
                span: sp,
            },
            Rule::null => ExprAst::Null { span: sp },
            Rule::list_literal => {
                let items = p.into_inner().filter_map(|a| self.expr(a)).collect();
                ExprAst::List { items, span: sp }
            }
            Rule::alias_ref => ExprAst::Alias(Ident::from_pair(&p.into_inner().next()?)),
            _ => return None,
        })
    }
}
