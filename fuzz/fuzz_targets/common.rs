//! Shared by the fuzz targets: the catalogs queries are checked against.
//!
//! Every cookbook schema under `OMNIGRAPH_COOKBOOKS` (default
//! `../shared/cookbooks` beside the repository) plus a small built-in one, so
//! the target still runs where the cookbooks are absent.

use std::sync::OnceLock;

use omnigraph_lang::diag::Diagnostics;
use omnigraph_lang::schema::{Catalog, compile_schema};

/// A schema with every property kind the query checker treats differently.
const BUILTIN: &str = r#"
node Person {
    name: String @key
    age: I32?
    born: Date?
    tags: [String]?
    score: F64?
    bio: String? @index
    embedding: Vector(4)?
}
node Company {
    slug: String @key
    name: String
    kind: enum(startup, public, private)?
    founded: DateTime?
}
edge Knows: Person -> Person { since: Date? }
edge WorksAt: Person -> Company @card(0..1) { role: String? }
"#;

pub fn catalogs() -> &'static [Catalog] {
    static C: OnceLock<Vec<Catalog>> = OnceLock::new();
    C.get_or_init(|| {
        let mut out = Vec::new();
        if let Ok(c) = compile_schema(BUILTIN) {
            out.push(c);
        }
        let root = std::env::var("OMNIGRAPH_COOKBOOKS").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/cookbooks").to_string()
        });
        if let Ok(dirs) = std::fs::read_dir(root) {
            let mut dirs: Vec<_> = dirs.flatten().map(|d| d.path()).collect();
            dirs.sort();
            for d in dirs {
                if let Ok(src) = std::fs::read_to_string(d.join("schema.pg")) {
                    if let Ok(c) = compile_schema(&src) {
                        out.push(c);
                    }
                }
            }
        }
        out
    })
}

#[allow(dead_code)] // not every target renders diagnostics
/// Renders diagnostics both ways a user sees them (terminal and JSON), so
/// spans that point outside the source or split a character are caught.
pub fn render(file: &str, src: &str, d: Vec<omnigraph_lang::diag::Diagnostic>) {
    let diags = Diagnostics::new(file, src, d);
    let _ = diags.render(false);
    let _ = diags.to_json();
}
