//! Fairness between processes writing one table (docs/architecture.md,
//! "Fencing and leases"): a write that lost a table to another process
//! says so, and the process that keeps winning the table lets it through
//! once.
//!
//! Without it, the process that published a table last wins it again and
//! again: its next write was prepared while the last one committed, and
//! it meets the new head at once, while a process that lost must notice
//! the publish and prepare again first. Three replicas loading into one
//! table left one replica's writers with nothing landed for 30 s
//! (`tests/server/replicas.rs`).
//!
//! The rule:
//! - A write that loses a table to another process ([`EngineError::Busy`],
//!   or [`EngineError::Stale`] from another process's publish) writes a
//!   *waiter* object for the (branch, table) pair, `_graph/waiting/<sha256
//!   of branch and table>.json` (its owner, a fresh id, and an end
//!   [`WAIT_MS`] later), prepares again, and removes the object when it
//!   ends (landed or given up) if it is still its own.
//! - The commit step of every write looks at the waiters of the tables it
//!   commits, from a cache refreshed in the background (never a request in
//!   the commit step): every [`REFRESH_SHARED`] while this process has met
//!   another process's write in the last [`SHARED_FOR`], every
//!   [`REFRESH_ALONE`] otherwise. A waiter of another process whose end
//!   has not passed, and not yielded to before, makes the step wait until
//!   a newer manifest is published (looked for every 10–25 ms) or the
//!   waiter's end.
//!
//! Waiters are advisory: none is needed for correctness (the fences
//! decide), a stale or lost one costs at most one wait of [`WAIT_MS`], and
//! errors reading or writing them are ignored.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{EngineError, Graph, lease, now_ms};

/// Where waiter objects live among the control objects (`_graph/`).
pub const WAITING_DIR: &str = "waiting/";
/// How long a waiter stands after it is written, in milliseconds: a
/// commit step yields to it at most this long.
pub const WAIT_MS: i64 = 3_000;
/// How often the commit step's view of a table's waiter is refreshed
/// while this process meets other processes' writes.
pub const REFRESH_SHARED: Duration = Duration::from_millis(100);
/// How often otherwise.
pub const REFRESH_ALONE: Duration = Duration::from_secs(1);
/// How long after meeting another process's write (a publish it did not
/// make, a lost table) this process counts as sharing the graph.
pub const SHARED_FOR: Duration = Duration::from_secs(60);

/// A write of another process waiting for a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Waiter {
    /// A fresh ULID per loss: a commit step yields once to each.
    pub id: String,
    pub owner: lease::Owner,
    /// When the waiter stops standing, in Unix milliseconds.
    pub until_ms: i64,
}

/// The object path of the waiter for (`branch`, `table`).
pub fn waiter_path(branch: &str, table: &str) -> String {
    let mut h = Sha256::new();
    h.update(branch.as_bytes());
    h.update([0]);
    h.update(table.as_bytes());
    let hex: String = h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{WAITING_DIR}{hex}.json")
}

#[derive(Debug, Default)]
struct Seen {
    checked: Option<Instant>,
    refreshing: bool,
    waiter: Option<Waiter>,
}

/// What this process knows of waiters, shared by clones of a handle.
#[derive(Debug, Default)]
pub struct Waiters {
    /// Per waiter path.
    seen: Mutex<HashMap<String, Seen>>,
    /// Waiter ids already yielded to.
    yielded: Mutex<HashSet<String>>,
    /// When this process last met another process's write.
    foreign: Mutex<Option<Instant>>,
}

impl Waiters {
    /// Records that this process met another process's write now.
    pub fn note_foreign(&self) {
        if let Ok(mut f) = self.foreign.lock() {
            *f = Some(Instant::now());
        }
    }

    fn refresh_every(&self) -> Duration {
        let shared = self
            .foreign
            .lock()
            .ok()
            .and_then(|f| *f)
            .is_some_and(|t| t.elapsed() < SHARED_FOR);
        if shared {
            REFRESH_SHARED
        } else {
            REFRESH_ALONE
        }
    }
}

impl Graph {
    /// Writes a waiter for (`branch`, `table`) after this write lost the
    /// table to another process; answers the path to pass to
    /// [`Graph::unmark_waiting`]. Errors are ignored (advisory).
    pub(crate) async fn mark_waiting(&self, branch: &str, table: &str) -> String {
        self.waiters.note_foreign();
        let path = waiter_path(branch, table);
        let w = Waiter {
            id: ulid::Ulid::new().to_string(),
            owner: lease::me().clone(),
            until_ms: now_ms() + WAIT_MS,
        };
        if let Ok(data) = serde_json::to_vec(&w) {
            if let Err(e) = self.manifests.control().put(&path, data).await {
                tracing::debug!(error = %e, path, "writing a waiter failed");
            }
        }
        path
    }

    /// Removes the waiter at `path` when it is still this process's.
    pub(crate) async fn unmark_waiting(&self, path: &str) {
        let control = self.manifests.control();
        let mine = match control.get_opt(path).await {
            Ok(Some(b)) => serde_json::from_slice::<Waiter>(&b)
                .is_ok_and(|w| w.owner.instance == lease::me().instance),
            _ => false,
        };
        if mine && let Err(e) = control.delete(path).await {
            tracing::debug!(error = %e, path, "removing a waiter failed");
        }
    }

    /// In the commit step, before the (branch, table) pairs `tables` are
    /// committed: waits while another process's write stands waiting for
    /// one of them (see the module docs), until a newer manifest is
    /// published or the waiter's end. Starts background refreshes of the
    /// cache as due; makes no request itself except the manifest reads of
    /// a wait.
    pub(crate) async fn yield_to_waiters(&self, tables: Vec<(String, String)>) {
        let every = self.waiters.refresh_every();
        let mut standing: Option<Waiter> = None;
        for (branch, table) in tables {
            let path = waiter_path(&branch, &table);
            let Ok(mut seen) = self.waiters.seen.lock() else {
                return;
            };
            let entry = seen.entry(path.clone()).or_default();
            if !entry.refreshing && entry.checked.is_none_or(|t| t.elapsed() >= every) {
                entry.refreshing = true;
                let g = self.clone();
                let p = path.clone();
                tokio::spawn(async move { g.refresh_waiter(p).await });
            }
            if let Some(w) = &entry.waiter
                && w.owner.instance != lease::me().instance
                && w.until_ms > now_ms()
                && standing.is_none()
            {
                standing = Some(w.clone());
            }
        }
        let Some(w) = standing else { return };
        let first = self.waiters.yielded.lock().is_ok_and(|mut y| {
            if y.len() >= 10_000 {
                y.clear();
            }
            y.insert(w.id.clone())
        });
        if !first {
            return;
        }
        self.waiters.note_foreign();
        let seen = self.known_head().map(|m| m.version);
        let started = Instant::now();
        tracing::debug!(waiter = %w.id, pid = w.owner.pid, "commit step yields to another process's write");
        loop {
            let ms = 10 + (ulid::Ulid::new().random() % 16) as u64;
            tokio::time::sleep(Duration::from_millis(ms)).await;
            if now_ms() >= w.until_ms {
                break;
            }
            match self.manifest().await {
                Ok(m) if Some(m.version) > seen => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        tracing::debug!(
            waiter = %w.id,
            ms = started.elapsed().as_millis() as u64,
            "commit step yielded"
        );
    }

    async fn refresh_waiter(&self, path: String) {
        let read: Result<Option<Waiter>, EngineError> = async {
            Ok(match self.manifests.control().get_opt(&path).await? {
                Some(b) => serde_json::from_slice(&b).ok(),
                None => None,
            })
        }
        .await;
        if let Ok(mut seen) = self.waiters.seen.lock() {
            let entry = seen.entry(path).or_default();
            entry.refreshing = false;
            entry.checked = Some(Instant::now());
            match read {
                Ok(w) => entry.waiter = w,
                Err(e) => tracing::debug!(error = %e, "reading a waiter failed"),
            }
        }
    }
}
