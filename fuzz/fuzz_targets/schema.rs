//! `.pg` schema source → parse, validate, render every diagnostic; a
//! schema that compiles is also planned against itself (must be empty) and
//! against each cookbook catalog.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnigraph_lang::schema::{compile_schema, migrate};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    match compile_schema(src) {
        Err(d) => common::render("fuzz.pg", src, d),
        Ok(catalog) => {
            let same = migrate::plan(&catalog, &catalog);
            assert!(
                same.steps.is_empty(),
                "a schema planned against itself changes nothing"
            );
            for other in common::catalogs().iter().take(3) {
                let _ = migrate::plan(other, &catalog);
                let _ = migrate::plan(&catalog, other);
            }
        }
    }
});
