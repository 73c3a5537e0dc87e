//! The one pest parser behind both languages: `.pg` (entry rule
//! [`Rule::schema`]) and `.gq` (entry rule [`Rule::query_file`]). The grammars
//! share their lexical rules and type references (`syntax/common.pest`).
//!
//! Nothing here knows about the catalog; `schema::ast::parse_schema` and
//! `query::ast::parse_queries` turn the pest trees into ASTs with byte
//! spans.

use pest::Parser as _;
use pest_derive::Parser;

use crate::diag::{self, Diagnostic};

/// The generated pest parser.
#[derive(Parser)]
#[grammar = "syntax/common.pest"]
#[grammar = "schema/schema.pest"]
#[grammar = "query/query.pest"]
pub struct GraphParser;

/// A pest pair over source text.
pub type Pair<'i> = pest::iterators::Pair<'i, Rule>;

/// Parses `src` from `rule`, turning a syntax error into a diagnostic with
/// `code` whose message names what was expected in user terms.
pub fn parse<'i>(rule: Rule, src: &'i str, code: &'static str) -> Result<Pair<'i>, Diagnostic> {
    check_nesting(src, code)?;
    match GraphParser::parse(rule, src) {
        Ok(mut pairs) => pairs
            .next()
            .ok_or_else(|| Diagnostic::error(code, 0..0, "empty parse")),
        Err(e) => {
            let d = diag::from_pest(code, e, |r| describe(*r).to_string());
            Err(furthest(rule, src, code).unwrap_or(d))
        }
    }
}

/// The syntax error at the furthest point the parser reached, naming the
/// literal tokens it expected there (`expected `(``): parses `src` again
/// with pest's attempt tracking (`pest::set_error_detail`, costly, so only
/// after a failure). pest's plain error stops at the last *rule* that
/// failed, which for `query q { … }` (no `()`) is the start of the file;
/// the attempts know the parser got to the `{` wanting `(`. `None` when
/// the attempts name no token.
fn furthest(rule: Rule, src: &str, code: &'static str) -> Option<Diagnostic> {
    pest::set_error_detail(true);
    let again = GraphParser::parse(rule, src);
    pest::set_error_detail(false);
    let attempts = again.err()?.parse_attempts()?;
    let mut tokens: Vec<String> = attempts
        .expected_tokens()
        .iter()
        .map(|t| t.to_string())
        // Whitespace and comment openers fit almost anywhere: not advice.
        .filter(|t| !t.trim().is_empty() && t != "//" && t != "/*")
        .map(|t| format!("`{t}`"))
        .collect();
    tokens.sort();
    tokens.dedup();
    if tokens.is_empty() {
        return None;
    }
    let at = attempts.max_position.min(src.len());
    let rest = &src[at..];
    let word: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let found = match rest.chars().next() {
        None => ", found the end of the input".to_string(),
        Some(_) if !word.is_empty() => format!(", found `{word}`"),
        Some(c) => format!(", found `{c}`"),
    };
    Some(Diagnostic::error(
        code,
        at..at,
        format!("syntax error: expected {}{found}", join_or(&tokens)),
    ))
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// The deepest bracket nesting accepted. Real schemas and queries nest a few
/// levels; the cap keeps the recursive parser and checker far from the stack
/// limit on hostile input.
pub const MAX_NESTING: usize = 64;

/// Refuses input whose `(`/`[`/`{` nesting exceeds [`MAX_NESTING`].
/// Brackets inside string literals and comments are ignored.
fn check_nesting(src: &str, code: &'static str) -> Result<(), Diagnostic> {
    let bytes = src.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < bytes.len() && !(bytes[i] == b'*' && bytes[i + 1] == b'/') {
                    i += 1;
                }
                i += 1;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(Diagnostic::error(
                        code,
                        i..i + 1,
                        format!("brackets nest deeper than {MAX_NESTING} levels"),
                    )
                    .with_help("flatten the expression"));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// A byte range of a pair.
pub fn span(p: &Pair<'_>) -> std::ops::Range<usize> {
    let s = p.as_span();
    s.start()..s.end()
}

/// The user-facing name of a grammar rule, for "expected …" messages.
fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of input",
        Rule::ident | Rule::scalar_type => "a name",
        Rule::type_ref => "a type (String, I32, [T], enum(…), Vector(n), …)",
        Rule::annotation => "an annotation (`@name`)",
        Rule::ann_arg | Rule::kwarg => "an annotation argument",
        Rule::range | Rule::range_bound => "a range (`min..max`)",
        Rule::enum_value => "an enum value",
        Rule::integer => "an integer",
        Rule::number => "a number",
        Rule::string => "a string",
        Rule::boolean => "`true` or `false`",
        Rule::nullable => "`?`",
        Rule::kw_interface => "`interface`",
        Rule::kw_node => "`node`",
        Rule::kw_edge => "`edge`",
        Rule::kw_implements => "`implements`",
        Rule::property => "a property (`name: Type`)",
        Rule::constraint => "a constraint (`@key(…)`, `@unique(…)`, …)",
        Rule::interface_decl | Rule::node_decl | Rule::edge_decl => {
            "a declaration (`node`, `edge` or `interface`)"
        }
        Rule::kw_query | Rule::query_decl => "`query`",
        Rule::param => "a parameter (`$name: Type`)",
        Rule::variable => "a variable (`$name`)",
        Rule::kw_match | Rule::match_clause => "`match`",
        Rule::kw_return | Rule::return_clause => "`return`",
        Rule::kw_order | Rule::order_clause => "`order`",
        Rule::kw_limit | Rule::limit_clause => "`limit`",
        Rule::kw_not | Rule::not_clause => "`not { … }`",
        Rule::binding => "a binding (`$x: Type`)",
        Rule::traversal => "a traversal (`$a edge $b`)",
        Rule::filter => "a filter",
        Rule::filter_op => {
            "a comparison (`=`, `!=`, `<`, `<=`, `>`, `>=`, `contains`, `starts_with`)"
        }
        Rule::edge_ref | Rule::undirected => "an edge name",
        Rule::hop_bounds => "hop bounds (`{min,max}`)",
        Rule::expr | Rule::func_call | Rule::prop_access | Rule::alias_ref => "an expression",
        Rule::list_literal => "a list",
        Rule::return_item => "a projection",
        Rule::order_item => "an ordering expression",
        Rule::direction | Rule::kw_asc | Rule::kw_desc => "`asc` or `desc`",
        Rule::kw_as => "`as`",
        Rule::kw_insert | Rule::insert_stmt => "`insert`",
        Rule::kw_update | Rule::update_stmt => "`update`",
        Rule::kw_delete | Rule::delete_stmt => "`delete`",
        Rule::kw_set => "`set`",
        Rule::kw_where => "`where`",
        Rule::assignments => "`{`",
        Rule::assignment | Rule::prop_match => "`name: value`",
        Rule::predicate => "a predicate (`property op value`)",
        Rule::read_body | Rule::mutation_body => "`match`, `insert`, `update` or `delete`",
        Rule::prop_matches => "`{`",
        _ => "something else",
    }
}

pub mod ast;
