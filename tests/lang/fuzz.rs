//! Property-based fuzzing of both parsers and checkers: arbitrary text and
//! cookbook sources with random byte-level damage must never panic. Each
//! property runs a fixed number of cases (`OMNIGRAPH_FUZZ_CASES`, default
//! 2000) so the whole file stays well under a minute in CI.

use std::sync::OnceLock;

use omnigraph::query::compile_queries;
use omnigraph::schema::{Catalog, compile_schema};
use proptest::prelude::*;

use crate::support::{cookbooks, query_files};

struct Corpus {
    schemas: Vec<String>,
    queries: Vec<String>,
    catalog: Catalog,
}

fn corpus() -> &'static Corpus {
    static C: OnceLock<Corpus> = OnceLock::new();
    C.get_or_init(|| {
        let mut schemas = Vec::new();
        let mut queries = Vec::new();
        for b in cookbooks() {
            schemas.push(std::fs::read_to_string(b.join("schema.pg")).expect("read"));
            for f in query_files(&b) {
                queries.push(std::fs::read_to_string(f).expect("read"));
            }
        }
        queries.push(crate::query_errors::SCHEMA.to_string());
        let catalog = compile_schema(&schemas[0]).expect("first cookbook schema compiles");
        Corpus {
            schemas,
            queries,
            catalog,
        }
    })
}

fn cases() -> u32 {
    std::env::var("OMNIGRAPH_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// A byte-level edit: (position fraction, kind, payload).
fn edits() -> impl Strategy<Value = Vec<(f64, u8, Vec<u8>)>> {
    prop::collection::vec(
        (
            0.0..1.0f64,
            0u8..4,
            prop::collection::vec(any::<u8>(), 0..8),
        ),
        1..6,
    )
}

/// Tokens that steer random edits toward interesting syntax.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "$",
    "$_",
    ":",
    ",",
    "@key",
    "@card(",
    "..",
    "->",
    "<",
    ">",
    "?",
    "\"",
    "not {",
    "match",
    "return",
    "order",
    "limit",
    "insert",
    "delete",
    "update",
    "set",
    "where",
    "query",
    "node",
    "edge",
    "interface",
    "implements",
    "Vector(",
    "enum(",
    "count(",
    "nearest(",
    "rrf(",
    "{1,",
    "//",
    "/*",
    "\\",
    "é",
    "0",
    "-1",
    "99999999999999999999999",
];

fn apply(src: &str, edits: &[(f64, u8, Vec<u8>)]) -> String {
    let mut bytes = src.as_bytes().to_vec();
    for (at, kind, payload) in edits {
        let i = ((bytes.len() as f64) * at) as usize;
        let i = i.min(bytes.len());
        match kind {
            0 => {
                let end = (i + payload.len().max(1)).min(bytes.len());
                bytes.drain(i..end);
            }
            1 => {
                bytes.splice(i..i, payload.iter().copied());
            }
            2 => {
                let tok = TOKENS[payload.first().copied().unwrap_or(0) as usize % TOKENS.len()];
                bytes.splice(i..i, tok.bytes());
            }
            _ => {
                // Duplicate a slice: repeats constructs.
                let end = (i + 40).min(bytes.len());
                let chunk = bytes[i..end].to_vec();
                bytes.splice(i..i, chunk);
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = compile_schema(&s);
        let _ = compile_queries(&corpus().catalog, &s);
    }

    #[test]
    fn damaged_schemas_never_panic(pick in 0usize..16, e in edits()) {
        let c = corpus();
        let src = &c.schemas[pick % c.schemas.len()];
        let damaged = apply(src, &e);
        let _ = compile_schema(&damaged);
    }

    #[test]
    fn damaged_queries_never_panic(pick in 0usize..64, e in edits()) {
        let c = corpus();
        let src = &c.queries[pick % c.queries.len()];
        let damaged = apply(src, &e);
        let compiled = compile_queries(&c.catalog, &damaged);
        // Every diagnostic points inside the source.
        for d in &compiled.diagnostics {
            prop_assert!(d.span.start <= damaged.len() && d.span.end <= damaged.len());
        }
    }
}

#[test]
fn deep_nesting_is_refused_not_overflowed() {
    let deep = format!(
        "query q() {{ match {{ $p: Signal }} return {{ {}1{} }} }}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let compiled = compile_queries(&corpus().catalog, &deep);
    assert!(
        compiled
            .diagnostics
            .iter()
            .any(|d| d.code == "Q000" && d.message.contains("nest"))
    );
    let deep_schema = format!("node A {{ x: String @d{} }}", "(".repeat(50_000));
    let diags = compile_schema(&deep_schema).expect_err("refused");
    assert_eq!(diags[0].code, "S001");
}
