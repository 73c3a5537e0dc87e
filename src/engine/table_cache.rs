//! A bounded least-recently-used map: the read path's per-table state
//! ([`super::exec::TableState`], one per table version read) is kept here,
//! so a server under steady writes, where every commit makes a new version,
//! does not keep every version it ever read.
//!
//! An entry's weight ([`Weighed::bytes`]) may grow after it is inserted
//! (a table's rows are decoded lazily); the bounds are enforced at each
//! insertion, dropping the least recently used entries first. Dropping an
//! entry only drops the cache's reference: a query holding it keeps it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

/// What an entry holds in memory, in bytes (an estimate).
pub trait Weighed {
    fn bytes(&self) -> u64;
}

/// Entries kept at most, whatever their weight.
pub const MAX_ENTRIES: usize = 512;

/// Bytes kept at most over all entries (1 GiB): decoded rows and
/// adjacency of the table versions read most recently.
pub const MAX_BYTES: u64 = 1 << 30;

/// The map; see the module docs. Cloning shares it.
pub struct Bounded<K, V> {
    inner: Arc<Mutex<Inner<K, V>>>,
    max_entries: usize,
    max_bytes: u64,
}

impl<K, V> Clone for Bounded<K, V> {
    fn clone(&self) -> Self {
        Bounded {
            inner: self.inner.clone(),
            max_entries: self.max_entries,
            max_bytes: self.max_bytes,
        }
    }
}

impl<K, V> std::fmt::Debug for Bounded<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bounded")
            .field("max_entries", &self.max_entries)
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

struct Inner<K, V> {
    map: HashMap<K, Slot<V>>,
    tick: u64,
}

struct Slot<V> {
    value: Arc<V>,
    used: u64,
}

impl<K: Eq + Hash + Clone, V: Weighed> Default for Bounded<K, V> {
    fn default() -> Self {
        Bounded::new(MAX_ENTRIES, MAX_BYTES)
    }
}

impl<K: Eq + Hash + Clone, V: Weighed> Bounded<K, V> {
    /// A map keeping at most `max_entries` entries and `max_bytes` bytes
    /// (checked at each insertion).
    pub fn new(max_entries: usize, max_bytes: u64) -> Self {
        Bounded {
            inner: Arc::new(Mutex::new(Inner {
                map: HashMap::new(),
                tick: 0,
            })),
            max_entries: max_entries.max(1),
            max_bytes,
        }
    }

    /// The value under `key`, made by `make` when absent (then the bounds
    /// are enforced, least recently used first; the new entry goes last).
    /// A poisoned lock (a panic elsewhere while holding it) bypasses the
    /// cache: the value is made and not kept.
    pub fn get_or_insert_with(&self, key: K, make: impl FnOnce() -> V) -> Arc<V> {
        let Ok(mut c) = self.inner.lock() else {
            return Arc::new(make());
        };
        c.tick += 1;
        let tick = c.tick;
        if let Some(s) = c.map.get_mut(&key) {
            s.used = tick;
            return s.value.clone();
        }
        let value = Arc::new(make());
        c.map.insert(
            key,
            Slot {
                value: value.clone(),
                used: tick,
            },
        );
        let mut total: u64 = c.map.values().map(|s| s.value.bytes()).sum();
        if c.map.len() > self.max_entries || total > self.max_bytes {
            let mut order: Vec<(u64, K)> = c.map.iter().map(|(k, s)| (s.used, k.clone())).collect();
            order.sort_unstable_by_key(|(used, _)| *used);
            for (used, k) in order {
                if (c.map.len() <= self.max_entries && total <= self.max_bytes) || used == tick {
                    break;
                }
                if let Some(s) = c.map.remove(&k) {
                    total = total.saturating_sub(s.value.bytes());
                }
            }
        }
        value
    }

    /// Drops every entry (a version number the keys name may be reused:
    /// heal rolled a table back).
    pub fn clear(&self) {
        if let Ok(mut c) = self.inner.lock() {
            c.map.clear();
        }
    }

    /// (entries, bytes) held now.
    pub fn usage(&self) -> (usize, u64) {
        match self.inner.lock() {
            Ok(c) => (c.map.len(), c.map.values().map(|s| s.value.bytes()).sum()),
            Err(_) => (0, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct W(AtomicU64);

    impl Weighed for W {
        fn bytes(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    fn w(n: u64) -> W {
        W(AtomicU64::new(n))
    }

    #[test]
    fn the_least_recently_used_go_first_when_over_the_entry_bound() {
        let c: Bounded<u32, W> = Bounded::new(3, u64::MAX);
        for k in 0..3 {
            c.get_or_insert_with(k, || w(1));
        }
        // 0 is used again: 1 is now the least recently used.
        c.get_or_insert_with(0, || w(1));
        c.get_or_insert_with(3, || w(1));
        assert_eq!(c.usage().0, 3);
        let made = std::cell::Cell::new(false);
        c.get_or_insert_with(1, || {
            made.set(true);
            w(1)
        });
        assert!(made.get(), "1 was evicted and made again");
        let kept = std::cell::Cell::new(true);
        c.get_or_insert_with(3, || {
            kept.set(false);
            w(1)
        });
        assert!(kept.get(), "3 was kept");
    }

    #[test]
    fn weight_grown_after_insertion_is_bounded_at_the_next_insertion() {
        let c: Bounded<u32, W> = Bounded::new(100, 1_000);
        let a = c.get_or_insert_with(1, || w(10));
        c.get_or_insert_with(2, || w(10));
        // Entry 1 decodes its rows later: 900 more bytes.
        a.0.store(910, Ordering::Relaxed);
        assert_eq!(c.usage(), (2, 920));
        // The next insertion brings the total over 1,000: the least
        // recently used (1) goes, the new entry stays even alone.
        c.get_or_insert_with(3, || w(200));
        assert_eq!(c.usage(), (2, 210));
        // An entry heavier than the whole bound is kept until the next one.
        c.get_or_insert_with(4, || w(5_000));
        assert_eq!(c.usage(), (1, 5_000));
        c.get_or_insert_with(5, || w(1));
        assert_eq!(c.usage(), (1, 1));
        // A value held by a query outlives its eviction.
        assert_eq!(a.bytes(), 910);
    }
}
