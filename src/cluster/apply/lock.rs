//! The state lock (`__cluster/lock.json`, created only if absent, on
//! every backend) and `force-unlock`.

use super::*;

/// The lock's path under `__cluster/`.
const LOCK: &str = "lock.json";

/// The held state lock; released (object removed) on drop if it is still
/// ours.
#[derive(Debug)]
pub struct StateLock {
    store: ClusterStore,
    pub id: String,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let ours = self
            .store
            .read(LOCK)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
            .is_some_and(|j| j["lock_id"] == self.id.as_str());
        if ours {
            let _ = self.store.delete(LOCK);
        }
    }
}

/// The held lock's content, if any (`status`; `null` when it is not
/// JSON).
pub fn held_lock(store: &ClusterStore) -> Result<Option<Json>, ClusterError> {
    Ok(store
        .read(LOCK)?
        .map(|b| serde_json::from_slice::<Json>(&b).unwrap_or(Json::Null)))
}

/// Takes the state lock for `operation`; `state_lock_held` (with the
/// holder's id, operation, pid and age) when another holds it.
pub fn lock(store: &ClusterStore, operation: &str) -> Result<StateLock, ClusterError> {
    let id = ulid::Ulid::new().to_string();
    let body = serde_json::json!({
        "lock_id": id,
        "lock_operation": operation,
        "lock_created_at": chrono::Utc::now().to_rfc3339(),
        "lock_pid": std::process::id(),
    });
    if store.create(LOCK, body.to_string().into_bytes())? {
        return Ok(StateLock {
            store: store.clone(),
            id,
        });
    }
    let held = held_lock(store)?.unwrap_or(Json::Null);
    Err(cerr(
        "state_lock_held",
        format!(
            "{} is held (lock_id {}, operation {}, pid {}, since {}); wait for it, or if no cluster command is running, `omnigraph cluster force-unlock {} --config DIR`",
            store.uri(LOCK),
            held["lock_id"],
            held["lock_operation"],
            held["lock_pid"],
            held["lock_created_at"],
            held["lock_id"].as_str().unwrap_or("<id>")
        ),
    ))
}

/// `cluster force-unlock LOCK_ID`: removes the lock if it has that id.
pub fn force_unlock(dir: &Path, lock_id: &str) -> Result<(), ClusterError> {
    let report = validate(dir).map_err(|e| cerr("config_unreadable", e))?;
    let store = store_for(&report)?;
    let Some(j) = held_lock(&store)? else {
        return Err(cerr(
            "lock_not_held",
            format!("{} does not exist", store.uri(LOCK)),
        ));
    };
    if j["lock_id"] != lock_id {
        return Err(cerr(
            "lock_id_mismatch",
            format!(
                "the lock is {}, not {lock_id}; nothing removed",
                j["lock_id"]
            ),
        ));
    }
    store.delete(LOCK)
}
