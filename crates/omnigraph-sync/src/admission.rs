//! Per-actor admission accounting: in-flight requests and bytes.

use std::collections::HashMap;
use std::fmt;

use crate::{Arc, Mutex};

/// Budgets per actor (reference env vars: `OMNIGRAPH_PER_ACTOR_INFLIGHT_MAX`,
/// default 16; `OMNIGRAPH_PER_ACTOR_BYTES_MAX`, default 4 GiB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_inflight: usize,
    pub max_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inflight: 16,
            max_bytes: 4 << 30,
        }
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// The actor already has `limit` requests in flight; retry later.
    Inflight { limit: usize },
    /// Admitting `requested` bytes would put the actor over `limit`; retry
    /// later.
    Bytes { limit: u64, requested: u64 },
    /// One request larger than the whole budget can never be admitted.
    TooLarge { limit: u64, requested: u64 },
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejected::Inflight { limit } => {
                write!(
                    f,
                    "too many requests in flight for this actor (limit {limit})"
                )
            }
            Rejected::Bytes { limit, requested } => write!(
                f,
                "this actor's in-flight bytes would exceed {limit} with {requested} more"
            ),
            Rejected::TooLarge { limit, requested } => write!(
                f,
                "a request of {requested} bytes exceeds the per-actor budget of {limit}"
            ),
        }
    }
}

impl std::error::Error for Rejected {}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Usage {
    inflight: usize,
    bytes: u64,
}

/// Per-actor accounting. Cheap to clone; clones share the counts.
#[derive(Clone)]
pub struct Admission {
    limits: Limits,
    usage: Arc<Mutex<HashMap<String, Usage>>>,
}

/// An admitted request's share of its actor's budget; dropping it gives the
/// share back.
pub struct Permit {
    usage: Arc<Mutex<HashMap<String, Usage>>>,
    actor: String,
    bytes: u64,
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            usage: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Admits one request of `bytes` for `actor`, or says why not. The check
    /// and the increment are one step, so concurrent callers never overshoot.
    pub fn try_admit(&self, actor: &str, bytes: u64) -> Result<Permit, Rejected> {
        if bytes > self.limits.max_bytes {
            return Err(Rejected::TooLarge {
                limit: self.limits.max_bytes,
                requested: bytes,
            });
        }
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        let u = usage.entry(actor.to_string()).or_default();
        if u.inflight >= self.limits.max_inflight {
            let limit = self.limits.max_inflight;
            if u.inflight == 0 {
                usage.remove(actor);
            }
            return Err(Rejected::Inflight { limit });
        }
        if u.bytes + bytes > self.limits.max_bytes {
            return Err(Rejected::Bytes {
                limit: self.limits.max_bytes,
                requested: bytes,
            });
        }
        u.inflight += 1;
        u.bytes += bytes;
        Ok(Permit {
            usage: self.usage.clone(),
            actor: actor.to_string(),
            bytes,
        })
    }

    /// `(in-flight requests, in-flight bytes)` of `actor`.
    pub fn usage(&self, actor: &str) -> (usize, u64) {
        let usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        usage.get(actor).map_or((0, 0), |u| (u.inflight, u.bytes))
    }

    /// Actors with anything in flight.
    pub fn active_actors(&self) -> usize {
        self.usage.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Requests in flight and bytes charged, summed over every actor.
    pub fn totals(&self) -> (usize, u64) {
        let usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        usage
            .values()
            .fold((0, 0), |(n, b), u| (n + u.inflight, b + u.bytes))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut usage = self.usage.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(u) = usage.get_mut(&self.actor) {
            u.inflight = u.inflight.saturating_sub(1);
            u.bytes = u.bytes.saturating_sub(self.bytes);
            if u.inflight == 0 {
                usage.remove(&self.actor);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn budgets_per_actor_and_release_on_drop() {
        let a = Admission::new(Limits {
            max_inflight: 2,
            max_bytes: 100,
        });
        let p1 = a.try_admit("ann", 60).expect("first");
        assert_eq!(
            a.try_admit("ann", 50).err(),
            Some(Rejected::Bytes {
                limit: 100,
                requested: 50
            })
        );
        let p2 = a.try_admit("ann", 40).expect("second");
        assert_eq!(
            a.try_admit("ann", 0).err(),
            Some(Rejected::Inflight { limit: 2 })
        );
        // Another actor has its own budget.
        let b = a.try_admit("bob", 100).expect("bob");
        assert_eq!(a.usage("ann"), (2, 100));
        assert_eq!(a.totals(), (3, 200));
        drop(p1);
        assert_eq!(a.usage("ann"), (1, 40));
        drop(p2);
        drop(b);
        assert_eq!((a.usage("ann"), a.active_actors()), ((0, 0), 0));
        assert_eq!(a.totals(), (0, 0));
        assert!(matches!(
            a.try_admit("ann", 101),
            Err(Rejected::TooLarge { .. })
        ));
        assert!(a.try_admit("ann", 100).is_ok());
    }
}
