//! The state ledger (`__cluster/state.json`): what was applied, read and
//! replaced whole after a compare with the bytes read under the lock.

use super::*;

/// The state ledger (reference shape; fields this release does not use
/// are kept as they are).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    pub version: u32,
    #[serde(default)]
    pub state_revision: u64,
    #[serde(default)]
    pub applied_revision: AppliedRevision,
    #[serde(default)]
    pub resource_statuses: BTreeMap<String, ResourceStatus>,
    #[serde(default)]
    pub approval_records: BTreeMap<String, Json>,
    #[serde(default)]
    pub recovery_records: BTreeMap<String, Json>,
    #[serde(default)]
    pub observations: BTreeMap<String, Json>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AppliedRevision {
    #[serde(default)]
    pub config_digest: Option<String>,
    #[serde(default)]
    pub resources: BTreeMap<String, AppliedResource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedResource {
    pub digest: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applies_to: Vec<String>,
}

/// `pending`, `applied`, `blocked`, `error`, `drifted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceStatus {
    pub status: String,
    #[serde(default)]
    pub conditions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Reads the ledger and its bytes; `None` when absent.
pub fn read_ledger(root: &Path) -> Result<Option<(Ledger, Vec<u8>)>, ClusterError> {
    let path = cluster_dir(root).join("state.json");
    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path, e)),
        Ok(b) => b,
    };
    let l: Ledger = serde_json::from_slice(&bytes).map_err(|e| {
        cerr(
            "state_corrupt",
            format!(
                "{} is not a valid ledger ({e}); restore it from a trusted copy",
                path.display()
            ),
        )
    })?;
    Ok(Some((l, bytes)))
}

/// Replaces the ledger if it still holds `expected` (compare-and-swap
/// under the lock: a ledger edited meanwhile is never overwritten).
pub(super) fn write_ledger(
    root: &Path,
    l: &Ledger,
    expected: Option<&[u8]>,
) -> Result<(), ClusterError> {
    let path = cluster_dir(root).join("state.json");
    let now = std::fs::read(&path).ok();
    if now.as_deref() != expected {
        return Err(cerr(
            "state_conflict",
            format!(
                "{} changed while this command held the lock; re-run it",
                path.display()
            ),
        ));
    }
    let bytes = serde_json::to_vec_pretty(l).map_err(|e| cerr("state_corrupt", e.to_string()))?;
    write_atomic(&path, &bytes)
}
