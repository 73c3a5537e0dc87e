//! Omnigraph's languages: the `.pg` schema language and the `.gq` query
//! language (grammars in pest, checkers, lowering to the query IR) and the
//! diagnostics they report. Nothing here touches storage, so the compilers
//! build, test and fuzz without Lance (`fuzz/` at the repository root).
//!
//! Layers (imports point down): `query` → `schema` → `syntax` → `diag`.
//! The `omnigraph` crate re-exports these modules under the same names.

pub mod diag;
pub mod query;
pub mod schema;
pub mod syntax;
