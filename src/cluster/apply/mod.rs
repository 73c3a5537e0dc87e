//! The cluster control plane's writers, in the reference's flow
//! (`docs/user/clusters/config.md`): `import` creates the state ledger,
//! `apply` converges the desired resources under the state lock, `status`
//! reports read-only, `approve` records a digest-bound approval for a graph
//! delete, `force-unlock` removes a held lock by id; [`serving`] is what
//! `omnigraph-server --cluster` boots from (the applied revision only).
//!
//! Layout under the storage root (`storage:` in `cluster.yaml`, a local
//! path or `s3://bucket/prefix`; else the config folder), every object
//! through one [`ClusterStore`]:
//! - `__cluster/state.json` — the ledger, created only if absent, then
//!   replaced whole only if it is still at the version read under the lock
//!   (compare and swap: an S3 `If-Match` put, a locked compare locally);
//! - `__cluster/lock.json` — the lock, created only if absent;
//! - `__cluster/resources/query/<graph>/<name>/<hex>.gq` and
//!   `__cluster/resources/policy/<name>/<hex>.yaml` — content-addressed
//!   blobs, written before the ledger (the publish point);
//! - `__cluster/approvals/<id>.json` — approval artifacts;
//! - `__cluster/recoveries/<id>.json` — recovery intents (`intents.rs`);
//! - `graphs/<id>.omni` — graph roots.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::{ValidationReport, digest, validate};
use crate::engine::Graph;
use crate::storage::control::ObjectVersion;

mod approve;
mod blobs;
mod converge;
mod intents;
mod ledger;
mod lock;
mod status;
mod store;

pub use approve::*;
use blobs::*;
pub use converge::*;
pub use intents::*;
pub use ledger::*;
pub use lock::*;
pub use status::*;
pub use store::*;

/// A control-plane refusal: a stable code and a message with the remedy.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ClusterError {
    pub code: &'static str,
    pub message: String,
}

fn cerr(code: &'static str, message: impl Into<String>) -> ClusterError {
    ClusterError {
        code,
        message: message.into(),
    }
}

fn valid(dir: &Path) -> Result<ValidationReport, ClusterError> {
    let report = validate(dir).map_err(|e| cerr("config_unreadable", e))?;
    if !report.ok {
        let lines: Vec<String> = report
            .findings
            .iter()
            .map(|f| format!("  {} {}: {}", f.code, f.resource, f.message))
            .collect();
        return Err(cerr(
            "config_invalid",
            format!(
                "the cluster config has problems; fix them (see `omnigraph cluster validate`):\n{}",
                lines.join("\n")
            ),
        ));
    }
    Ok(report)
}

/// The digest of the desired revision: every resource and its digest.
pub fn config_digest(report: &ValidationReport) -> String {
    digest(
        serde_json::to_string(&report.resources)
            .unwrap_or_default()
            .as_bytes(),
    )
}

fn rt() -> Result<tokio::runtime::Runtime, ClusterError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| cerr("runtime", e.to_string()))
}
