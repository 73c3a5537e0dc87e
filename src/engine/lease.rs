//! Who runs a write, and whether it may still be running: the owner and
//! lease a recovery sidecar carries (docs/architecture.md, "Fencing and
//! leases").
//!
//! Heal must never act on the sidecar of a writer that may still be alive.
//! A sidecar names its owner (this process's instance id, host and pid)
//! and a lease end; the writer renews the lease while it runs. A sidecar
//! is *dead*, and heal may act on it, when:
//!
//! | owner | dead when |
//! |---|---|
//! | this process | its write is not running here ([`LiveWrites`]) |
//! | another process on this host | that pid is gone (or a zombie), or is this process, or the lease ended more than [`CLOCK_SKEW_MS`] ago (a reused pid) |
//! | anything else (another host, an old sidecar without owner and lease) | the lease ended more than [`CLOCK_SKEW_MS`] ago; a sidecar without owner is dead |
//!
//! The timing assumption: clocks of writers on different hosts differ by
//! less than [`CLOCK_SKEW_MS`], and a writer that cannot renew its lease
//! stops before publishing (the lease check before the publish in the
//! commit protocol: `engine/commit.rs`, `engine/group.rs`, answering
//! [`EngineError::LeaseLost`](super::EngineError::LeaseLost)).

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use serde::{Deserialize, Serialize};

/// How long a lease lasts from its last renewal, in milliseconds.
pub const LEASE_MS: i64 = 30_000;
/// How often a running write renews its lease, in milliseconds.
pub const RENEW_EVERY_MS: u64 = 10_000;
/// How far apart two hosts' clocks may be, in milliseconds; heal waits this
/// long past a foreign lease's end.
pub const CLOCK_SKEW_MS: i64 = 5_000;

/// The process that runs a write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// A ULID made when this process first wrote (fresh each start).
    pub instance: String,
    pub host: String,
    pub pid: u32,
}

static ME: LazyLock<Owner> = LazyLock::new(|| Owner {
    instance: ulid::Ulid::new().to_string(),
    host: std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string()),
    pid: std::process::id(),
});

/// This process.
pub fn me() -> &'static Owner {
    &ME
}

/// The write ids running in this process.
#[derive(Debug, Default)]
pub struct LiveWrites {
    ids: Mutex<HashSet<String>>,
}

static LIVE: LazyLock<LiveWrites> = LazyLock::new(LiveWrites::default);

/// Marks a write running in this process until dropped.
#[derive(Debug)]
pub struct LiveGuard {
    id: String,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Ok(mut ids) = LIVE.ids.lock() {
            ids.remove(&self.id);
        }
    }
}

/// Registers write `id` as running here.
pub fn running(id: &str) -> LiveGuard {
    if let Ok(mut ids) = LIVE.ids.lock() {
        ids.insert(id.to_string());
    }
    LiveGuard { id: id.to_string() }
}

fn is_running_here(id: &str) -> bool {
    LIVE.ids.lock().map(|ids| ids.contains(id)).unwrap_or(true)
}

/// Whether process `pid` exists on this host and is not a zombie. `None`
/// where the host has no `/proc` (then only leases decide).
fn pid_alive(pid: u32) -> Option<bool> {
    if !std::path::Path::new("/proc/self").exists() {
        return None;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => Some(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_none_or(|state| state != "Z" && state != "X"),
        ),
        Err(_) => Some(false),
    }
}

/// Whether the writer of a sidecar with this owner and lease end may still
/// be running at `now_ms` (the table in the module docs).
pub fn may_be_live(
    owner: Option<&Owner>,
    lease_until_ms: Option<i64>,
    id: &str,
    now_ms: i64,
) -> bool {
    let Some(owner) = owner else {
        return false;
    };
    let me = me();
    if owner.instance == me.instance {
        return is_running_here(id);
    }
    if owner.host == me.host {
        if owner.pid == me.pid {
            // Another instance with our pid: that process is gone.
            return false;
        }
        if pid_alive(owner.pid) == Some(false) {
            return false;
        }
    }
    lease_until_ms.is_some_and(|until| now_ms <= until + CLOCK_SKEW_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_writes_are_live_only_while_running() {
        let id = ulid::Ulid::new().to_string();
        let far = i64::MAX / 2;
        assert!(!may_be_live(Some(me()), Some(far), &id, 0));
        let guard = running(&id);
        assert!(may_be_live(Some(me()), Some(far), &id, 0));
        drop(guard);
        assert!(!may_be_live(Some(me()), Some(0), &id, 0));
    }

    #[test]
    fn foreign_writers_are_judged_by_pid_then_lease() {
        let id = "w";
        // A dead local pid: dead whatever the lease says.
        let gone = Owner {
            instance: "other".into(),
            host: me().host.clone(),
            pid: u32::MAX - 7,
        };
        assert!(!may_be_live(Some(&gone), Some(i64::MAX / 2), id, 0));
        // Another instance claiming our own pid: gone.
        let reused = Owner {
            instance: "other".into(),
            host: me().host.clone(),
            pid: me().pid,
        };
        assert!(!may_be_live(Some(&reused), Some(i64::MAX / 2), id, 0));
        // Another host: the lease decides, with the skew allowance.
        let remote = Owner {
            instance: "other".into(),
            host: format!("{}-elsewhere", me().host),
            pid: 1,
        };
        assert!(may_be_live(
            Some(&remote),
            Some(1_000),
            id,
            1_000 + CLOCK_SKEW_MS
        ));
        assert!(!may_be_live(
            Some(&remote),
            Some(1_000),
            id,
            1_001 + CLOCK_SKEW_MS
        ));
        assert!(!may_be_live(Some(&remote), None, id, 0));
        // No owner (a sidecar from before owners existed): dead.
        assert!(!may_be_live(None, Some(i64::MAX / 2), id, 0));
        // A live local pid (init) on another instance: the lease decides.
        let init = Owner {
            instance: "other".into(),
            host: me().host.clone(),
            pid: 1,
        };
        if pid_alive(1) == Some(true) {
            assert!(may_be_live(Some(&init), Some(10), id, 0));
            assert!(!may_be_live(
                Some(&init),
                Some(10),
                id,
                10 + CLOCK_SKEW_MS + 1
            ));
        }
    }
}
