//! Shared helpers for the language tests.

use std::path::PathBuf;

use omnigraph::diag::{Diagnostic, LineCol, line_col};
use omnigraph::schema::{Catalog, compile_schema};

/// The marker a negative case puts where its diagnostic must point.
pub const MARK: char = '«';

/// The cookbooks directory: `$OMNIGRAPH_COOKBOOKS`, else `../shared/cookbooks`
/// beside the repository.
pub fn cookbooks_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("OMNIGRAPH_COOKBOOKS") {
        return PathBuf::from(d);
    }
    // Read at run time: `cargo test` sets it to this checkout, while a
    // compile-time value would name wherever the cached binary was built.
    let root =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from);
    root.join("../shared/cookbooks")
}

/// Every cookbook directory that has a `schema.pg`, sorted. Panics when there
/// are none: the tests must not pass vacuously.
pub fn cookbooks() -> Vec<PathBuf> {
    let dir = cookbooks_dir();
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read cookbooks at {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("schema.pg").is_file())
        .collect();
    out.sort();
    assert!(
        !out.is_empty(),
        "no cookbook with a schema.pg under {}",
        dir.display()
    );
    out
}

/// The `.gq` files of one cookbook, sorted.
pub fn query_files(cookbook: &std::path::Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(cookbook.join("queries"))
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "gq"))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Splits a case into the source without the marker and the marker's position.
pub fn unmark(case: &str) -> (String, LineCol) {
    let at = case
        .find(MARK)
        .unwrap_or_else(|| panic!("case has no {MARK} marker:\n{case}"));
    let src = case.replacen(MARK, "", 1);
    let pos = line_col(&src, at);
    (src, pos)
}

/// Checks that `diags` has an error with `code` starting at `pos`; the
/// error names what was expected and what was found.
pub fn check_has(
    diags: &[Diagnostic],
    src: &str,
    code: &str,
    pos: LineCol,
    case: &str,
) -> Result<(), String> {
    let found: Vec<String> = diags
        .iter()
        .map(|d| {
            let p = line_col(src, d.span.start);
            format!("{} at {}:{}: {}", d.code, p.line, p.column, d.message)
        })
        .collect();
    let hit = diags
        .iter()
        .any(|d| d.code == code && line_col(src, d.span.start) == pos);
    if hit {
        Ok(())
    } else {
        Err(format!(
            "expected {code} at {}:{} in\n{case}\nfound: {found:#?}",
            pos.line, pos.column
        ))
    }
}

/// Compiles a schema that must be valid.
pub fn catalog(src: &str) -> Catalog {
    compile_schema(src).unwrap_or_else(|d| panic!("schema should compile: {d:#?}"))
}

/// The error-severity diagnostics of a compiled query file.
pub fn errors(compiled: &omnigraph::query::CompiledFile) -> Vec<&Diagnostic> {
    compiled
        .diagnostics
        .iter()
        .filter(|d| d.severity == omnigraph::diag::Severity::Error)
        .collect()
}

/// A two-worker runtime for the tests that run queries on a graph.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
