//! The `.pg` schema language: parser, validation and the compiled [`Catalog`].
//!
//! Language reference: the reference project's `docs/user/schema/index.md`;
//! our rules and error codes: `docs/schema.md`. This module never touches
//! storage, so it builds and tests in seconds.

pub mod ast;
pub mod catalog;
pub mod compile;
pub mod migrate;
pub mod temporal;

pub use catalog::*;

use crate::diag::{Diagnostic, Diagnostics};

/// Parses and validates `.pg` source. On failure returns every diagnostic
/// found (a syntax error stops at the first; validation reports them all).
pub fn compile_schema(src: &str) -> Result<Catalog, Vec<Diagnostic>> {
    let ast = ast::parse_schema(src).map_err(|d| vec![d])?;
    compile::compile(&ast)
}

/// [`compile_schema`] with the diagnostics bound to `file` for rendering.
pub fn compile_schema_file(file: &str, src: &str) -> Result<Catalog, Diagnostics> {
    compile_schema(src).map_err(|items| Diagnostics::new(file, src, items))
}
