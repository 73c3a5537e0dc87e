//! Storage: control objects over `object_store` and Lance table access.
//!
//! Nothing here knows about the graph's meaning; the engine composes these
//! pieces into graphs, branches and commits.

pub mod control;
pub mod local;
pub mod metered;
pub mod s3;
pub mod table;

pub use control::{ControlError, ControlStore};
