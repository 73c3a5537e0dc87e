//! Exclusive locks on sets of keys.

use std::collections::HashSet;
use std::hash::Hash;

use crate::{Arc, Condvar, Mutex};

/// Exclusive locks on sets of keys, e.g. `(table, branch)` pairs. Cheap to
/// clone; clones share the locks.
///
/// [`KeyLocks::acquire`] takes every key of its set in one step or waits
/// until it can: no holder ever waits while holding keys, so there is no
/// lock-order deadlock, and two holders never share a key. Waking is not
/// FIFO: a waiter retries whenever any guard is dropped.
pub struct KeyLocks<K> {
    inner: Arc<(Mutex<HashSet<K>>, Condvar)>,
}

impl<K> Clone for KeyLocks<K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K: Eq + Hash + Clone> Default for KeyLocks<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// Holds a set of keys; dropping it releases them and wakes waiters.
pub struct KeyGuard<K: Eq + Hash> {
    inner: Arc<(Mutex<HashSet<K>>, Condvar)>,
    keys: Vec<K>,
}

impl<K: Eq + Hash + Clone> KeyLocks<K> {
    pub fn new() -> Self {
        Self {
            inner: Arc::new((Mutex::new(HashSet::new()), Condvar::new())),
        }
    }

    fn dedup(keys: impl IntoIterator<Item = K>) -> Vec<K> {
        let mut seen = HashSet::new();
        keys.into_iter()
            .filter(|k| seen.insert(k.clone()))
            .collect()
    }

    /// Blocks until every key is free, then holds them all.
    pub fn acquire(&self, keys: impl IntoIterator<Item = K>) -> KeyGuard<K> {
        let keys = Self::dedup(keys);
        let (lock, cv) = &*self.inner;
        let mut held = lock.lock().unwrap_or_else(|p| p.into_inner());
        while keys.iter().any(|k| held.contains(k)) {
            held = cv.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        held.extend(keys.iter().cloned());
        KeyGuard {
            inner: self.inner.clone(),
            keys,
        }
    }

    /// Holds every key if all are free now; `None` otherwise.
    pub fn try_acquire(&self, keys: impl IntoIterator<Item = K>) -> Option<KeyGuard<K>> {
        let keys = Self::dedup(keys);
        let (lock, _) = &*self.inner;
        let mut held = lock.lock().unwrap_or_else(|p| p.into_inner());
        if keys.iter().any(|k| held.contains(k)) {
            return None;
        }
        held.extend(keys.iter().cloned());
        Some(KeyGuard {
            inner: self.inner.clone(),
            keys,
        })
    }

    /// How many keys are held right now.
    pub fn held(&self) -> usize {
        let (lock, _) = &*self.inner;
        lock.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

impl<K: Eq + Hash> Drop for KeyGuard<K> {
    fn drop(&mut self) {
        let (lock, cv) = &*self.inner;
        let mut held = lock.lock().unwrap_or_else(|p| p.into_inner());
        for k in &self.keys {
            held.remove(k);
        }
        drop(held);
        cv.notify_all();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn overlapping_sets_exclude_disjoint_sets_share() {
        let locks = KeyLocks::new();
        let a = locks.acquire(["t1@main", "t2@main"]);
        assert!(locks.try_acquire(["t2@main", "t3@main"]).is_none());
        let b = locks.try_acquire(["t3@main", "t1@dev"]).expect("disjoint");
        assert_eq!(locks.held(), 4);
        drop(a);
        assert!(locks.try_acquire(["t2@main"]).is_some());
        drop(b);
        assert_eq!(locks.held(), 0);
    }

    #[test]
    fn a_waiter_runs_after_the_holder_releases() {
        let locks = KeyLocks::new();
        let g = locks.acquire([1, 2]);
        let l2 = locks.clone();
        let t = std::thread::spawn(move || {
            let _g = l2.acquire([2, 3, 2]);
            l2.held()
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(locks.held(), 2, "the waiter must not hold anything yet");
        drop(g);
        assert_eq!(t.join().expect("join"), 2);
        assert_eq!(locks.held(), 0);
    }
}
