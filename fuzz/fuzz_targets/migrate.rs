//! Two `.pg` sources separated by a NUL byte → when both compile, plan the
//! migration both ways; the plan must never panic, and planning a schema
//! against itself must be empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use omnigraph_lang::schema::{compile_schema, migrate};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let (a, b) = src.split_once('\0').unwrap_or((src, ""));
    let (Ok(old), Ok(new)) = (compile_schema(a), compile_schema(b)) else {
        return;
    };
    let _ = migrate::plan(&old, &new);
    let _ = migrate::plan(&new, &old);
    assert!(migrate::plan(&new, &new).steps.is_empty());
});
