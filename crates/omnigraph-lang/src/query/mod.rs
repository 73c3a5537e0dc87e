//! The `.gq` query language: parser, type checker and lowering to the IR the
//! engine runs.
//!
//! Language reference: the reference project's `docs/user/queries/`,
//! `docs/user/mutations/` and `docs/user/search/`; our rules and error codes:
//! `docs/queries.md`. Like `schema`, this module never touches storage.

pub mod ast;
pub mod check;
pub mod explain;
pub mod ir;
pub mod lint;
mod plan;

use crate::diag::{Diagnostic, Diagnostics, Severity};
use crate::schema::Catalog;

pub use ir::CheckedQuery;

/// The result of compiling one `.gq` file against a catalog.
#[derive(Debug, Clone)]
pub struct CompiledFile {
    /// Queries that parsed and type checked.
    pub queries: Vec<CheckedQuery>,
    /// Every finding, errors and warnings, in source order.
    pub diagnostics: Vec<Diagnostic>,
    /// Names of every query declared in the file (checked or not).
    pub declared: Vec<String>,
}

impl CompiledFile {
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    pub fn query(&self, name: &str) -> Option<&CheckedQuery> {
        self.queries.iter().find(|q| q.name == name)
    }
}

/// Parses and type checks `.gq` source against `catalog`. A syntax error
/// yields one `Q000` diagnostic and no queries.
pub fn compile_queries(catalog: &Catalog, src: &str) -> CompiledFile {
    match ast::parse_queries(src) {
        Err(diagnostics) => CompiledFile {
            queries: Vec::new(),
            diagnostics,
            declared: Vec::new(),
        },
        Ok(file) => {
            let declared = file.queries.iter().map(|q| q.name.name.clone()).collect();
            let (queries, diagnostics) = check::check_file(catalog, &file);
            CompiledFile {
                queries,
                diagnostics,
                declared,
            }
        }
    }
}

/// [`compile_queries`] with diagnostics bound to `file` for rendering.
pub fn compile_queries_file(
    catalog: &Catalog,
    file: &str,
    src: &str,
) -> (CompiledFile, Diagnostics) {
    let compiled = compile_queries(catalog, src);
    let diags = Diagnostics::new(file, src, compiled.diagnostics.clone());
    (compiled, diags)
}
