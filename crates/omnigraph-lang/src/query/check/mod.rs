//! Type checking of `.gq` queries against a [`Catalog`]; the checked
//! `match` blocks are lowered to the [`ir`](super::ir) by
//! [`plan`](super::plan).
//!
//! Checking runs per query in two passes over each `match` block: the first
//! declares every variable (bindings, and the endpoints a traversal
//! introduces) so clauses may appear in any order; the second checks filters,
//! property matches and nested `not { }` blocks. The error codes are listed in
//! `docs/queries.md`.
//!
//! Where things are: this file holds the checker's state and the per-query
//! entry; `read` the `match` blocks, bindings and traversals; `filter`
//! comparisons; `expr` expressions and function calls; `mutation` the
//! `insert`/`update`/`delete` statements; `helpers` what they share.

use std::collections::{BTreeSet, HashMap};
use std::ops::Range;

use super::ast::*;
use super::ir::*;
use crate::diag::{Diagnostic, did_you_mean, valid_list};
use crate::schema::compile::resolve_type;
use crate::schema::temporal::{parse_date, parse_datetime};
use crate::schema::{Catalog, EdgeType, NodeType, PropType, Property, ScalarType};
use crate::syntax::ast::Ident;

mod expr;
mod filter;
mod helpers;
mod mutation;
mod read;

use super::plan::{expr_vars, plan};
use helpers::*;

/// Checks every query in `file`. Returns the queries that passed and every
/// diagnostic (errors and warnings) found, sorted by position.
pub fn check_file(catalog: &Catalog, file: &QueryFile) -> (Vec<CheckedQuery>, Vec<Diagnostic>) {
    let mut out = Vec::new();
    let mut diags = Vec::new();
    let mut names: HashMap<&str, Range<usize>> = HashMap::new();
    for q in &file.queries {
        if names.contains_key(q.name.name.as_str()) {
            diags.push(
                Diagnostic::error(
                    "T06",
                    q.name.span.clone(),
                    format!("query `{}` is defined twice", q.name.name),
                )
                .with_help("query names must be unique within a file"),
            );
            continue;
        }
        names.insert(&q.name.name, q.name.span.clone());
        let mut c = Checker::new(catalog);
        let checked = c.query(q);
        let failed = c
            .diags
            .iter()
            .any(|d| d.severity == crate::diag::Severity::Error);
        diags.append(&mut c.diags);
        if let (Some(checked), false) = (checked, failed) {
            out.push(checked);
        }
    }
    diags.sort_by_key(|d| d.span.start);
    (out, diags)
}

/// What a variable is bound to.
#[derive(Debug, Clone, PartialEq)]
enum VarKind {
    Node(String),
    Edge(String),
}

#[derive(Debug, Clone)]
struct VarInfo {
    kind: VarKind,
}

/// A clause after pass 1: names resolved, wildcards renamed.
#[derive(Debug, Clone)]
pub(super) enum RClause {
    Bind {
        var: String,
        node_type: String,
        props: Vec<(String, Expr)>,
    },
    Trav {
        src: String,
        dst: String,
        edge: String,
        dst_type: String,
        src_type: String,
        undirected: bool,
        min: u32,
        max: Option<u32>,
        edge_var: Option<String>,
    },
    Filter {
        left: Expr,
        op: Option<CmpOp>,
        right: Option<Expr>,
        vars: BTreeSet<String>,
    },
    Not {
        clauses: Vec<RClause>,
        /// Outer variables the block refers to.
        free: BTreeSet<String>,
    },
}

/// Where an expression appears; decides what it may contain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Match,
    Return,
    Order,
    Value,
}

struct Checker<'c> {
    cat: &'c Catalog,
    diags: Vec<Diagnostic>,
    params: HashMap<String, (Param, Range<usize>)>,
    used_params: BTreeSet<String>,
    wildcard_seq: usize,
    reads: BTreeSet<TypeRef>,
    writes: BTreeSet<TypeRef>,
    /// Projections so far, for alias references in `order`.
    aliases: Vec<(String, Expr, ValueType)>,
    uses_nearest: Option<Range<usize>>,
}

fn node_ref(name: &str) -> TypeRef {
    TypeRef {
        kind: "node",
        type_name: name.to_string(),
    }
}

fn edge_ref(name: &str) -> TypeRef {
    TypeRef {
        kind: "edge",
        type_name: name.to_string(),
    }
}

impl<'c> Checker<'c> {
    fn new(cat: &'c Catalog) -> Self {
        Self {
            cat,
            diags: Vec::new(),
            params: HashMap::new(),
            used_params: BTreeSet::new(),
            wildcard_seq: 0,
            reads: BTreeSet::new(),
            writes: BTreeSet::new(),
            aliases: Vec::new(),
            uses_nearest: None,
        }
    }

    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn query(&mut self, q: &QueryAst) -> Option<CheckedQuery> {
        let mut params = Vec::new();
        for p in &q.params {
            if self.params.contains_key(&p.name.name) {
                self.err(Diagnostic::error(
                    "T07",
                    p.name.span.clone(),
                    format!("parameter `${}` is declared twice", p.name.name),
                ));
                continue;
            }
            match resolve_type(&p.ty) {
                Ok(ty) => {
                    let param = Param {
                        name: p.name.name.clone(),
                        ty,
                        optional: p.ty.nullable,
                    };
                    params.push(param.clone());
                    self.params
                        .insert(p.name.name.clone(), (param, p.span.clone()));
                }
                Err(mut d) => {
                    d.code = "T38";
                    self.err(d);
                }
            }
        }
        let mut description = None;
        let mut instruction = None;
        for a in &q.annotations {
            match a.name.name.as_str() {
                "description" | "instruction" => match a.single_string() {
                    Some(s) if a.name.name == "description" => description = Some(s.to_string()),
                    Some(s) => instruction = Some(s.to_string()),
                    None => self.err(
                        Diagnostic::error(
                            "T37",
                            a.span.clone(),
                            format!("`@{}` takes one string argument", a.name.name),
                        )
                        .with_help(format!("write `@{}(\"…\")`", a.name.name)),
                    ),
                },
                _ => {}
            }
        }
        let body = match &q.body {
            BodyAst::Read(r) => self.read(r).map(QueryKind::Read),
            BodyAst::Mutation(stmts) => self.mutation(stmts).map(QueryKind::Mutation),
        };
        for (name, (_, span)) in &self.params {
            if !self.used_params.contains(name) {
                self.diags.push(
                    Diagnostic::warning(
                        "W01",
                        span.clone(),
                        format!("parameter `${name}` is never used"),
                    )
                    .with_help("remove it, or use it in the query"),
                );
            }
        }
        Some(CheckedQuery {
            name: q.name.name.clone(),
            params,
            description,
            instruction,
            body: body?,
            reads: self.reads.iter().cloned().collect(),
            writes: self.writes.iter().cloned().collect(),
        })
    }
}
