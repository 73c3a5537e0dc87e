//! The state lock (`__cluster/lock.json`, created only if absent) and
//! `force-unlock`.

use super::*;

/// The held state lock; released (file removed) on drop if it is still
/// ours.
#[derive(Debug)]
pub struct StateLock {
    path: PathBuf,
    pub id: String,
}

impl Drop for StateLock {
    fn drop(&mut self) {
        let ours = std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
            .is_some_and(|j| j["lock_id"] == self.id.as_str());
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Takes the state lock for `operation`; `state_lock_held` (with the
/// holder's id, operation, pid and age) when another holds it.
pub fn lock(root: &Path, operation: &str) -> Result<StateLock, ClusterError> {
    let dir = cluster_dir(root);
    std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
    let path = dir.join("lock.json");
    let id = ulid::Ulid::new().to_string();
    let body = serde_json::json!({
        "lock_id": id,
        "lock_operation": operation,
        "lock_created_at": chrono::Utc::now().to_rfc3339(),
        "lock_pid": std::process::id(),
    });
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let held = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Json>(&b).ok())
                .unwrap_or(Json::Null);
            return Err(cerr(
                "state_lock_held",
                format!(
                    "{} is held (lock_id {}, operation {}, pid {}, since {}); wait for it, or if no cluster command is running, `omnigraph cluster force-unlock {} --config DIR`",
                    path.display(),
                    held["lock_id"],
                    held["lock_operation"],
                    held["lock_pid"],
                    held["lock_created_at"],
                    held["lock_id"].as_str().unwrap_or("<id>")
                ),
            ));
        }
        Err(e) => return Err(io(&path, e)),
    };
    use std::io::Write;
    f.write_all(body.to_string().as_bytes())
        .map_err(|e| io(&path, e))?;
    Ok(StateLock { path, id })
}

/// `cluster force-unlock LOCK_ID`: removes the lock if it has that id.
pub fn force_unlock(dir: &Path, lock_id: &str) -> Result<(), ClusterError> {
    let report = validate(dir).map_err(|e| cerr("config_unreadable", e))?;
    let path = cluster_dir(&report.storage_root).join("lock.json");
    let held = std::fs::read(&path).map_err(|_| {
        cerr(
            "lock_not_held",
            format!("{} does not exist", path.display()),
        )
    })?;
    let j: Json = serde_json::from_slice(&held).unwrap_or(Json::Null);
    if j["lock_id"] != lock_id {
        return Err(cerr(
            "lock_id_mismatch",
            format!(
                "the lock is {}, not {lock_id}; nothing removed",
                j["lock_id"]
            ),
        ));
    }
    std::fs::remove_file(&path).map_err(|e| io(&path, e))
}
