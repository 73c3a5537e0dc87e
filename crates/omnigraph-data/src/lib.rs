//! Omnigraph's rows and values, kept free of Lance so they build, test and
//! fuzz quickly (`fuzz/` at the repository root):
//!
//! - [`load`]: the JSONL load format (one node or edge per line, reference:
//!   `docs/user/data/loading.md` of ModernRelay/omnigraph), decoded against
//!   a catalog in parallel blocks, with graph-level validation (keys,
//!   `@unique`, endpoints, `@card`) against what a branch holds.
//! - [`values`]: a property value as a [`values::Cell`], and its JSON and
//!   Arrow forms (the Lance tables' column types).
//!
//! The `omnigraph` crate re-exports both as `omnigraph::engine::{load, values}`.

pub mod load;
pub mod values;
