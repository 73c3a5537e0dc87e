//! Omnigraph: a typed, versioned, branchable property-graph database on Lance
//! and object storage.
//!
//! Layers (imports point down): `cli` → `query`/`schema`; `query` → `schema`.
//! `schema` and `query` are the language compilers and never import storage.
//! See `docs/architecture.md`.

pub mod cli;
pub mod diag;
pub mod query;
pub mod schema;
pub mod syntax;
