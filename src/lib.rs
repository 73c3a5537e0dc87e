//! Omnigraph: a typed, versioned, branchable property-graph database on Lance
//! and object storage.
//!
//! Layers (imports point down): `cli` → `engine` → `storage`; `engine` also
//! uses `query` and `schema`; `query` → `schema`.
//! `schema` and `query` are the language compilers and never import storage.
//! See `docs/architecture.md`.

pub mod actors;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod diag;
pub mod engine;
pub mod http;
pub mod logging;
pub mod policy;
pub mod query;
pub mod schema;
pub mod storage;
pub mod syntax;
