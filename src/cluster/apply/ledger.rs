//! The state ledger (`__cluster/state.json`): what was applied, read and
//! replaced whole by a compare-and-swap on the version read under the lock.

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

/// The ledger's path under `__cluster/`.
pub const LEDGER: &str = "state.json";

/// The ledger as read: its content, its bytes (what an approval's digest
/// binds to) and its version (what the next write compares with).
#[derive(Debug, Clone)]
pub struct LedgerRead {
    pub ledger: Ledger,
    pub bytes: Vec<u8>,
    pub version: ObjectVersion,
}

/// Reads the ledger; `None` when absent.
///
/// # Errors
/// `state_corrupt` when it is not a valid ledger; `storage_error`.
pub fn read_ledger(store: &ClusterStore) -> Result<Option<LedgerRead>, ClusterError> {
    let Some((bytes, version)) = store.read_versioned(LEDGER)? else {
        return Ok(None);
    };
    let ledger: Ledger = serde_json::from_slice(&bytes).map_err(|e| {
        cerr(
            "state_corrupt",
            format!(
                "{} is not a valid ledger ({e}); restore it from a trusted copy",
                store.uri(LEDGER)
            ),
        )
    })?;
    Ok(Some(LedgerRead {
        ledger,
        bytes,
        version,
    }))
}

/// Writes the ledger: created only if absent (`expected: None`), else
/// replaced only if it is still at the version read (compare and swap on
/// every backend: a ledger another command changed meanwhile is never
/// overwritten, `state_conflict`).
pub(super) fn write_ledger(
    store: &ClusterStore,
    l: &Ledger,
    expected: Option<&ObjectVersion>,
) -> Result<(), ClusterError> {
    let bytes = serde_json::to_vec_pretty(l).map_err(|e| cerr("state_corrupt", e.to_string()))?;
    let written = match expected {
        None => store.create(LEDGER, bytes)?,
        Some(v) => store.replace_if(LEDGER, v, bytes)?,
    };
    if !written {
        return Err(cerr(
            "state_conflict",
            format!(
                "{} changed while this command held the lock; re-run it",
                store.uri(LEDGER)
            ),
        ));
    }
    Ok(())
}
