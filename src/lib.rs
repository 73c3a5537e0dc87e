//! Omnigraph: a typed, versioned, branchable property-graph database on Lance
//! and object storage (graph roots on local files today; `s3://` roots are
//! issue 22, the control-object store already passes its contract on s3).
//!
//! Layers (imports point down): `cli` → `engine` → `storage`; `engine` also
//! uses `query` and `schema`; `query` → `schema`.
//! `schema` and `query` are the language compilers and never import storage.
//! See `docs/architecture.md`. The parts that need no storage live in their own crates and
//! are re-exported under the same paths: the languages (`diag`, `query`,
//! `schema`, `syntax`: `omnigraph-lang`), rows and values
//! (`engine::load`, `engine::values`: `omnigraph-data`) and policy
//! (`policy`: `omnigraph-policy`).

pub mod actors;
pub mod api;
pub mod cli;
pub mod cluster;
pub mod embed;
pub mod engine;
pub mod http;
pub mod logging;
pub mod storage;

pub use omnigraph_lang::{diag, query, schema, syntax};
pub use omnigraph_policy as policy;
