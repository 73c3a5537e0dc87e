//! `.gq` query source → parse, type check and lower against every catalog
//! (the built-in one and the cookbooks'), render every diagnostic, and
//! explain every query that checked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnigraph_lang::query::{compile_queries, explain::explain};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    for catalog in common::catalogs() {
        let compiled = compile_queries(catalog, src);
        for q in &compiled.queries {
            let _ = explain(q);
        }
        common::render("fuzz.gq", src, compiled.diagnostics);
    }
});
