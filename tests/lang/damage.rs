//! Mechanical damage to every cookbook query must produce a diagnostic:
//! never a panic, never a clean pass.

use omnigraph::query::ast::parse_queries;
use omnigraph::query::compile_queries;
use omnigraph::schema::{Catalog, compile_schema};
use regex::Regex;

use crate::support::{cookbooks, query_files};

/// One query's source text, cut out of its file.
struct QuerySrc {
    name: String,
    text: String,
}

fn queries_of(src: &str) -> Vec<QuerySrc> {
    let file = parse_queries(src).expect("cookbook query parses");
    file.queries
        .iter()
        .map(|q| QuerySrc {
            name: q.name.name.clone(),
            text: src[q.span.clone()].to_string(),
        })
        .collect()
}

/// Every damaged variant of one query: (what was done, the damaged text).
fn damages(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // Rename one property access.
    let prop = Regex::new(r"\$\w+\.(\w+)").expect("regex");
    for m in prop.captures_iter(text) {
        let g = m.get(1).expect("group");
        let mut t = text.to_string();
        t.replace_range(g.range(), &format!("{}_zz", g.as_str()));
        out.push((format!("rename property {}", g.as_str()), t));
    }
    // Rename one bound type or mutation target.
    let ty = Regex::new(r"(?:\$\w+\s*:\s*|(?:insert|update|delete)\s+)([A-Z]\w*)").expect("regex");
    for m in ty.captures_iter(text) {
        let g = m.get(1).expect("group");
        let mut t = text.to_string();
        t.replace_range(g.range(), &format!("{}Zz", g.as_str()));
        out.push((format!("rename type {}", g.as_str()), t));
    }
    // Rename one traversed edge.
    let edge = Regex::new(r"\$\w+\s+([a-z]\w*)\s+\$").expect("regex");
    for m in edge.captures_iter(text) {
        let g = m.get(1).expect("group");
        let mut t = text.to_string();
        t.replace_range(g.range(), &format!("{}Zz", g.as_str()));
        out.push((format!("rename edge {}", g.as_str()), t));
    }
    // Drop the closing brace, and separately the first opening brace.
    if let Some(i) = text.rfind('}') {
        let mut t = text.to_string();
        t.remove(i);
        out.push(("drop closing brace".into(), t));
    }
    if let Some(i) = text.find('{') {
        let mut t = text.to_string();
        t.remove(i);
        out.push(("drop opening brace".into(), t));
    }
    // Swap the type of one parameter in the signature.
    let sig_end = text.find(')').unwrap_or(0);
    let param = Regex::new(r"\$\w+\s*:\s*([A-Za-z]\w*)").expect("regex");
    for m in param.captures_iter(&text[..sig_end]) {
        let g = m.get(1).expect("group");
        let swapped = if g.as_str() == "Bool" {
            "Vector(2)"
        } else {
            "Bool"
        };
        let mut t = text.to_string();
        t.replace_range(g.range(), swapped);
        out.push((format!("param type {} -> {swapped}", g.as_str()), t));
    }
    out
}

fn catalog_of(book: &std::path::Path) -> Catalog {
    let src = std::fs::read_to_string(book.join("schema.pg")).expect("read schema");
    compile_schema(&src).expect("cookbook schema compiles")
}

#[test]
fn damaged_cookbook_queries_always_get_a_diagnostic() {
    let mut total = 0;
    for book in cookbooks() {
        let cat = catalog_of(&book);
        for f in query_files(&book) {
            let src = std::fs::read_to_string(&f).expect("read");
            for q in queries_of(&src) {
                // The undamaged query checks clean on its own.
                assert!(
                    !compile_queries(&cat, &q.text).has_errors(),
                    "{} {}",
                    f.display(),
                    q.name
                );
                let variants = damages(&q.text);
                assert!(!variants.is_empty(), "no damage applies to {}", q.name);
                for (what, text) in variants {
                    let compiled = compile_queries(&cat, &text);
                    assert!(
                        compiled.has_errors(),
                        "{} query {}: `{what}` passed clean:\n{text}",
                        f.display(),
                        q.name
                    );
                    total += 1;
                }
            }
        }
    }
    assert!(total > 100, "only {total} damaged variants were checked");
}

#[test]
fn damaged_cookbook_schemas_always_get_a_diagnostic() {
    let endpoint = Regex::new(r"edge \w+: (\w+) -> (\w+)").expect("regex");
    let scalar = Regex::new(r": (String|DateTime|I32|F64|Date|Bool)\b").expect("regex");
    for book in cookbooks() {
        let src = std::fs::read_to_string(book.join("schema.pg")).expect("read schema");
        // Rename each edge endpoint to a type that does not exist.
        let mut n = 0;
        for m in endpoint.captures_iter(&src) {
            let g = m.get(2).expect("group");
            let mut t = src.clone();
            t.replace_range(g.range(), &format!("{}Zz", g.as_str()));
            let diags = compile_schema(&t).expect_err("unknown endpoint must fail");
            assert!(diags.iter().any(|d| d.code == "S105"), "{diags:#?}");
            n += 1;
        }
        // Unknown scalar types and a dropped brace.
        for m in scalar.captures_iter(&src).take(25) {
            let g = m.get(1).expect("group");
            let mut t = src.clone();
            t.replace_range(g.range(), &format!("{}x", g.as_str()));
            let diags = compile_schema(&t).expect_err("unknown type must fail");
            assert!(diags.iter().any(|d| d.code == "S107"), "{diags:#?}");
            n += 1;
        }
        let mut t = src.clone();
        if let Some(i) = t.find('}') {
            t.remove(i);
            assert!(compile_schema(&t).is_err());
        }
        assert!(n > 0);
    }
}
