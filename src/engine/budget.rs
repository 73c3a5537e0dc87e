//! Read-query budgets: per-query limits on intermediate rows, memory,
//! wall time and traversal work, and one process-wide pool of query
//! memory (docs/server.md, "Limits").
//!
//! A query charges what it builds ([`Charge`]): its intermediate bindings
//! (estimated at [`binding_bytes`] each), the ids a traversal reaches and
//! its output rows. The charge is checked against the query's own
//! `max_bytes` and held in the [`MemoryPool`] shared by every query of the
//! process, so many queries at once cannot together exhaust memory: a
//! query that would pass the pool's cap is refused
//! ([`super::EngineError::Overloaded`], HTTP 429 with `Retry-After`)
//! instead of growing until the allocator aborts the process. The charge
//! is returned to the pool when the query ends, however it ends (its
//! [`Charge`] is dropped with the query's state).
//!
//! Decoded tables and adjacency, which the read cache keeps per table
//! version and shares between queries, are not charged to the query that
//! happened to build them.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::EngineError;

/// One read query's limits. The server's defaults come from the
/// environment ([`QueryLimits::server`]); a graph may set its own
/// (`omnigraph-server --query-limits`), and a request may lower them
/// ([`QueryLimits::lowered`]), never raise them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Intermediate rows (bindings) one operator may build.
    pub max_rows: usize,
    /// Wall time, milliseconds, storage waits included.
    pub max_ms: u64,
    /// Bytes of bindings, reached ids and output rows held at once.
    pub max_bytes: u64,
    /// Adjacency entries a query's traversals may walk in all.
    pub max_expansions: u64,
}

/// Server default of [`QueryLimits::max_rows`] (`OMNIGRAPH_QUERY_MAX_ROWS`).
pub const QUERY_MAX_ROWS: usize = 1_000_000;
/// Server default of [`QueryLimits::max_ms`] (`OMNIGRAPH_QUERY_MAX_MS`): 30 s.
pub const QUERY_MAX_MS: u64 = 30_000;
/// Server default of [`QueryLimits::max_bytes`] (`OMNIGRAPH_QUERY_MAX_BYTES`):
/// 1 GiB, or the pool's cap when that is smaller.
pub const QUERY_MAX_BYTES: u64 = 1 << 30;
/// Server default of [`QueryLimits::max_expansions`]
/// (`OMNIGRAPH_QUERY_MAX_EXPANSIONS`).
pub const QUERY_MAX_EXPANSIONS: u64 = 50_000_000;
/// How much larger the CLI's defaults are than the server's (a one-shot
/// process run by the user who owns it): rows, bytes and expansions ×10,
/// wall time ×20 (10 minutes).
pub const CLI_FACTOR: u64 = 10;

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| *n > 0)
}

impl QueryLimits {
    /// The server's and an embedded handle's defaults: each constant
    /// above, or its environment variable when set to a positive integer
    /// (others are ignored). `max_bytes` never exceeds the pool's cap.
    pub fn server() -> QueryLimits {
        QueryLimits {
            max_rows: env_u64("OMNIGRAPH_QUERY_MAX_ROWS")
                .map_or(QUERY_MAX_ROWS, |n| n.min(usize::MAX as u64) as usize),
            max_ms: env_u64("OMNIGRAPH_QUERY_MAX_MS").unwrap_or(QUERY_MAX_MS),
            max_bytes: env_u64("OMNIGRAPH_QUERY_MAX_BYTES")
                .unwrap_or(QUERY_MAX_BYTES)
                .min(pool().cap()),
            max_expansions: env_u64("OMNIGRAPH_QUERY_MAX_EXPANSIONS")
                .unwrap_or(QUERY_MAX_EXPANSIONS),
        }
    }

    /// The CLI's defaults: the same variables when set, else the server's
    /// constants × [`CLI_FACTOR`] (wall time × 20), bytes up to the pool's
    /// cap.
    pub fn cli() -> QueryLimits {
        QueryLimits {
            max_rows: env_u64("OMNIGRAPH_QUERY_MAX_ROWS")
                .map_or(QUERY_MAX_ROWS.saturating_mul(CLI_FACTOR as usize), |n| {
                    n.min(usize::MAX as u64) as usize
                }),
            max_ms: env_u64("OMNIGRAPH_QUERY_MAX_MS").unwrap_or(QUERY_MAX_MS * 2 * CLI_FACTOR),
            max_bytes: env_u64("OMNIGRAPH_QUERY_MAX_BYTES")
                .unwrap_or(QUERY_MAX_BYTES * CLI_FACTOR)
                .min(pool().cap()),
            max_expansions: env_u64("OMNIGRAPH_QUERY_MAX_EXPANSIONS")
                .unwrap_or(QUERY_MAX_EXPANSIONS * CLI_FACTOR),
        }
    }

    /// These limits, each lowered to `lower`'s where it gives one (a
    /// request's own limits); a higher value keeps this one. Values of 0
    /// count as 1.
    pub fn lowered(self, lower: &LowerLimits) -> QueryLimits {
        let min = |mine: u64, theirs: Option<u64>| theirs.map_or(mine, |t| mine.min(t.max(1)));
        QueryLimits {
            max_rows: min(self.max_rows as u64, lower.max_rows) as usize,
            max_ms: min(self.max_ms, lower.max_ms),
            max_bytes: min(self.max_bytes, lower.max_bytes),
            max_expansions: min(self.max_expansions, lower.max_expansions),
        }
    }

    /// Parses `max_rows=N,max_ms=N,max_bytes=N,max_expansions=N` (any
    /// subset, in any order) over these limits: the form of
    /// `omnigraph-server --query-limits ID=...`. Errors name the bad item
    /// and the valid keys.
    pub fn with_spec(mut self, spec: &str) -> Result<QueryLimits, String> {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| format!("`{item}`: expected KEY=N"))?;
            let n: u64 = v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{item}`: {k} must be a positive integer"))?;
            match k.trim() {
                "max_rows" => self.max_rows = n.min(usize::MAX as u64) as usize,
                "max_ms" => self.max_ms = n,
                "max_bytes" => self.max_bytes = n.min(pool().cap()),
                "max_expansions" => self.max_expansions = n,
                other => {
                    return Err(format!(
                        "unknown limit `{other}`; valid: max_rows, max_ms, max_bytes, max_expansions"
                    ));
                }
            }
        }
        Ok(self)
    }
}

/// A request's own limits (`limits` in a query request body,
/// `crate::api::QueryLimitsInput`): each one given lowers the graph's for
/// this request only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LowerLimits {
    pub max_rows: Option<u64>,
    pub max_ms: Option<u64>,
    pub max_bytes: Option<u64>,
    pub max_expansions: Option<u64>,
}

/// The bytes one intermediate binding of `slots` variables is charged: the
/// vector's header plus one slot (a table index and a shared row pointer)
/// per variable. The rows themselves are shared with the read cache.
pub fn binding_bytes(slots: usize) -> u64 {
    24 + 16 * slots as u64
}

/// Bytes charged per id a traversal reaches before its targets are bound
/// (a `String` and its text, typically a short key).
pub const REACHED_ID_BYTES: u64 = 48;

/// Bytes charged per output cell (a JSON value and its column name).
pub const OUTPUT_CELL_BYTES: u64 = 64;

/// The process-wide memory pool of read queries.
#[derive(Debug)]
pub struct MemoryPool {
    cap: u64,
    used: AtomicU64,
}

impl MemoryPool {
    /// A pool of `cap` bytes, nothing held.
    pub fn new(cap: u64) -> MemoryPool {
        MemoryPool {
            cap,
            used: AtomicU64::new(0),
        }
    }

    /// The cap, bytes.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Bytes held by running queries now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes, or none when that would pass the cap.
    fn take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.cap)
            })
            .is_ok()
    }

    fn give(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

/// Default cap of the process-wide pool: half the machine's memory
/// (`MemTotal` in `/proc/meminfo`), or 4 GiB where that cannot be read;
/// `OMNIGRAPH_QUERY_MEMORY_MAX_BYTES` overrides it.
fn pool_cap() -> u64 {
    if let Some(n) = env_u64("OMNIGRAPH_QUERY_MEMORY_MAX_BYTES") {
        return n;
    }
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(4 << 30, |kb| kb * 1024 / 2)
}

static POOL: LazyLock<MemoryPool> = LazyLock::new(|| MemoryPool::new(pool_cap()));

/// The process's query memory pool.
pub fn pool() -> &'static MemoryPool {
    &POOL
}

/// What one query holds of its own byte limit and of the pool. Grows only
/// in steps of at least [`CHARGE_STEP`] bytes (so the pool is not touched
/// per row); everything is given back when it is dropped.
#[derive(Debug)]
pub struct Charge {
    pool: &'static MemoryPool,
    max_bytes: u64,
    held: AtomicU64,
}

/// The smallest step by which a [`Charge`] grows (256 KiB).
pub const CHARGE_STEP: u64 = 256 << 10;

impl Charge {
    /// A charge against `max_bytes` in the process pool.
    pub fn new(max_bytes: u64) -> Charge {
        Charge::in_pool(pool(), max_bytes)
    }

    /// A charge in `pool` (tests use their own).
    pub fn in_pool(pool: &'static MemoryPool, max_bytes: u64) -> Charge {
        Charge {
            pool,
            max_bytes,
            held: AtomicU64::new(0),
        }
    }

    /// Bytes held now.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Makes sure `bytes` are held: past the query's `max_bytes`
    /// ([`EngineError::Budget`]) or the pool's cap
    /// ([`EngineError::Overloaded`]) the query must stop.
    pub fn ensure(&self, bytes: u64) -> Result<(), EngineError> {
        let held = self.held();
        if bytes <= held {
            return Ok(());
        }
        if bytes > self.max_bytes {
            return Err(EngineError::Budget {
                limit: "memory (bytes)".into(),
                value: self.max_bytes,
                raise: "OMNIGRAPH_QUERY_MAX_BYTES or the graph's --query-limits max_bytes".into(),
            });
        }
        let want = bytes.max(held + CHARGE_STEP).min(self.max_bytes) - held;
        if !self.pool.take(want) {
            return Err(EngineError::Overloaded {
                resource: "query memory".into(),
                limit: self.pool.cap(),
                raise: "retry shortly, or raise OMNIGRAPH_QUERY_MEMORY_MAX_BYTES".into(),
            });
        }
        self.held.fetch_add(want, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back what is held beyond `bytes` (an operator's input was
    /// dropped), in whole steps.
    pub fn shrink_to(&self, bytes: u64) {
        let held = self.held();
        if held > bytes + CHARGE_STEP {
            let back = held - bytes;
            self.held.fetch_sub(back, Ordering::Relaxed);
            self.pool.give(back);
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.pool.give(self.held());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak(cap: u64) -> &'static MemoryPool {
        Box::leak(Box::new(MemoryPool::new(cap)))
    }

    #[test]
    fn a_charge_grows_in_steps_and_gives_everything_back() {
        let p = leak(10 << 20);
        let c = Charge::in_pool(p, 4 << 20);
        c.ensure(10).expect("small");
        assert_eq!(p.used(), CHARGE_STEP);
        c.ensure(CHARGE_STEP + 1).expect("next step");
        assert_eq!(p.used(), 2 * CHARGE_STEP);
        let e = c.ensure(5 << 20).expect_err("over the query's own limit");
        assert!(e.to_string().contains("memory (bytes) over 4194304"), "{e}");
        c.shrink_to(0);
        assert_eq!(p.used(), 0);
        c.ensure(3 << 20).expect("again");
        drop(c);
        assert_eq!(p.used(), 0);
    }

    #[test]
    fn the_pool_refuses_a_query_that_would_pass_its_cap() {
        let p = leak(1 << 20);
        let a = Charge::in_pool(p, 1 << 30);
        a.ensure(900 << 10).expect("fits");
        let b = Charge::in_pool(p, 1 << 30);
        let e = b.ensure(200 << 10).expect_err("the pool is full");
        assert!(matches!(e, EngineError::Overloaded { .. }), "{e}");
        drop(a);
        b.ensure(200 << 10).expect("room again");
    }

    #[test]
    fn request_limits_only_lower_and_specs_parse() {
        let base = QueryLimits {
            max_rows: 100,
            max_ms: 1000,
            max_bytes: 1 << 20,
            max_expansions: 10,
        };
        let l = base.lowered(&LowerLimits {
            max_rows: Some(10),
            max_ms: Some(5000),
            max_bytes: Some(0),
            max_expansions: None,
        });
        assert_eq!(
            (l.max_rows, l.max_ms, l.max_bytes, l.max_expansions),
            (10, 1000, 1, 10)
        );
        let s = base.with_spec("max_rows=7, max_ms=9").expect("spec");
        assert_eq!((s.max_rows, s.max_ms), (7, 9));
        assert!(
            base.with_spec("rows=7")
                .unwrap_err()
                .contains("valid: max_rows")
        );
        assert!(
            base.with_spec("max_ms=-1")
                .unwrap_err()
                .contains("positive")
        );
    }
}
