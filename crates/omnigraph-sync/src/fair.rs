//! Fair write queues: one FIFO per caller, callers served round-robin, each
//! write started only when all its keys are free ([`KeyLocks`]).
//!
//! The GraphActor owns one [`FairQueues`] and calls [`FairQueues::start`]
//! whenever a write arrives or one finishes; only the actor's thread touches
//! it, so it needs no lock of its own. The guarantee: a caller with many
//! queued writes delays another caller by at most one of its own writes per
//! conflicting key, because after a caller's write starts the caller goes to
//! the back of the round.
//!
//! Limits bound the work in flight: at most `max_running` writes started
//! and not yet [`FairQueues::finished`], at most `max_per_caller` of them
//! one caller's, so one caller's flood leaves slots for the others.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use crate::keylock::{KeyGuard, KeyLocks};

struct Queued<K, J> {
    keys: Vec<K>,
    job: J,
}

/// Per-caller FIFOs over shared key locks.
pub struct FairQueues<K: Eq + Hash, J> {
    locks: KeyLocks<K>,
    queues: HashMap<String, VecDeque<Queued<K, J>>>,
    /// Callers with queued writes, in service order.
    round: VecDeque<String>,
    /// Started and not finished, per caller.
    running: HashMap<String, usize>,
    total: usize,
    max_running: usize,
    max_per_caller: usize,
}

impl<K: Eq + Hash + Clone, J> FairQueues<K, J> {
    /// Queues without limits on the writes in flight.
    pub fn new(locks: KeyLocks<K>) -> Self {
        Self::with_limits(locks, usize::MAX, usize::MAX)
    }

    /// Queues that start at most `max_running` writes at once, at most
    /// `max_per_caller` of one caller (each at least 1).
    pub fn with_limits(locks: KeyLocks<K>, max_running: usize, max_per_caller: usize) -> Self {
        Self {
            locks,
            queues: HashMap::new(),
            round: VecDeque::new(),
            running: HashMap::new(),
            total: 0,
            max_running: max_running.max(1),
            max_per_caller: max_per_caller.max(1),
        }
    }

    /// Records that one started write of `caller` finished, freeing its
    /// slot (its keys free when its guard drops).
    pub fn finished(&mut self, caller: &str) {
        if let Some(n) = self.running.get_mut(caller) {
            *n -= 1;
            self.total = self.total.saturating_sub(1);
            if *n == 0 {
                self.running.remove(caller);
            }
        }
    }

    /// Writes started and not finished.
    pub fn running(&self) -> usize {
        self.total
    }

    /// Queues `job` for `caller`, needing `keys`.
    pub fn push(&mut self, caller: &str, keys: Vec<K>, job: J) {
        if !self.queues.contains_key(caller) {
            self.round.push_back(caller.to_string());
        }
        self.queues
            .entry(caller.to_string())
            .or_default()
            .push_back(Queued { keys, job });
    }

    /// Writes queued and not started.
    pub fn waiting(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// Takes every write that can start now, in service order, each with
    /// its keys held: callers in round order, each caller's front write if
    /// its keys are free; a caller whose write starts moves to the back.
    pub fn start(&mut self) -> Vec<(J, KeyGuard<K>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.round.len() && self.total < self.max_running {
            let caller = self.round[i].clone();
            if self.running.get(&caller).copied().unwrap_or(0) >= self.max_per_caller {
                i += 1;
                continue;
            }
            let Some(q) = self.queues.get_mut(&caller) else {
                self.round.remove(i);
                continue;
            };
            let guard = q
                .front()
                .and_then(|w| self.locks.try_acquire(w.keys.iter().cloned()));
            let Some(guard) = guard else {
                i += 1;
                continue;
            };
            let Some(w) = q.pop_front() else {
                i += 1;
                continue;
            };
            self.round.remove(i);
            *self.running.entry(caller.clone()).or_default() += 1;
            if q.is_empty() {
                self.queues.remove(&caller);
            } else {
                self.round.push_back(caller);
            }
            // Position `i` now holds the next caller; keys only got taken,
            // so no caller before it can have become startable.
            self.total += 1;
            out.push((w.job, guard));
        }
        out
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    type Q = FairQueues<&'static str, String>;

    fn names(v: &[(String, KeyGuard<&'static str>)]) -> Vec<String> {
        v.iter().map(|(j, _)| j.clone()).collect()
    }

    #[test]
    fn a_flooding_caller_delays_another_by_one_write() {
        let mut q: Q = FairQueues::new(KeyLocks::new());
        for i in 0..10 {
            q.push("heavy", vec!["t"], format!("heavy{i}"));
        }
        q.push("light", vec!["t"], "light0".into());
        let first = q.start();
        assert_eq!(names(&first), vec!["heavy0"]);
        assert!(q.start().is_empty(), "the key is held");
        drop(first);
        // Light goes next, before heavy1.
        let second = q.start();
        assert_eq!(names(&second), vec!["light0"]);
        drop(second);
        let third = q.start();
        assert_eq!(names(&third), vec!["heavy1"]);
        assert_eq!(q.waiting(), 8);
    }

    #[test]
    fn disjoint_keys_start_together_and_each_caller_stays_in_order() {
        let mut q: Q = FairQueues::new(KeyLocks::new());
        q.push("a", vec!["t1"], "a0".into());
        q.push("a", vec!["t2"], "a1".into());
        q.push("b", vec!["t2"], "b0".into());
        q.push("c", vec!["t3"], "c0".into());
        // a0 (t1), b0 (t2) and c0 (t3) start; a1 waits behind a0: each
        // caller's writes start in order.
        let started = q.start();
        assert_eq!(names(&started), vec!["a0", "b0", "c0"]);
        drop(started);
        assert_eq!(names(&q.start()), vec!["a1"]);
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn limits_bound_writes_in_flight_in_total_and_per_caller() {
        let mut q: Q = FairQueues::with_limits(KeyLocks::new(), 3, 2);
        for i in 0..5 {
            q.push("heavy", vec![], format!("heavy{i}"));
        }
        // Two of heavy's, then nothing more of it: its share is full.
        assert_eq!(names(&q.start()), vec!["heavy0", "heavy1"]);
        assert!(q.start().is_empty());
        // Another caller takes the slot left.
        q.push("light", vec![], "light0".into());
        q.push("light", vec![], "light1".into());
        assert_eq!(names(&q.start()), vec!["light0"]);
        assert_eq!(q.running(), 3);
        // A finished write frees its slot, served in round order: heavy
        // kept its place while it waited at its share.
        q.finished("heavy");
        assert_eq!(names(&q.start()), vec!["heavy2"]);
        q.finished("light");
        assert_eq!(names(&q.start()), vec!["light1"]);
        assert_eq!(q.running(), 3);
        // Finishing more than started is ignored.
        q.finished("nobody");
        assert_eq!(q.running(), 3);
    }

    #[test]
    fn a_blocked_caller_does_not_block_others() {
        let locks = KeyLocks::new();
        let held = locks.try_acquire(["x"]).expect("free");
        let mut q: Q = FairQueues::new(locks);
        q.push("a", vec!["x"], "a0".into());
        q.push("b", vec!["y"], "b0".into());
        assert_eq!(names(&q.start()), vec!["b0"]);
        drop(held);
        assert_eq!(names(&q.start()), vec!["a0"]);
    }

    /// Per-caller FIFO: a caller's front write waiting for a held key
    /// holds back that caller's later writes, even ones whose keys are
    /// free (a write never starts before one its caller queued earlier).
    #[test]
    fn a_callers_later_write_waits_behind_its_blocked_first() {
        let locks = KeyLocks::new();
        let held = locks.try_acquire(["x"]).expect("free");
        let mut q: Q = FairQueues::new(locks);
        q.push("a", vec!["x"], "a0".into());
        q.push("a", vec!["y"], "a1".into());
        assert!(names(&q.start()).is_empty(), "a1 started before a0");
        drop(held);
        // Then both, in queue order (their keys are disjoint).
        assert_eq!(names(&q.start()), vec!["a0", "a1"]);
    }

    /// One step of [`start_order_model`].
    #[derive(Debug, Clone)]
    enum Op {
        /// Caller (0..3) queues a write needing a subset of keys (bits of
        /// a 0..8 mask over three keys).
        Push(u8, u8),
        /// The started write at this index (mod the number running)
        /// finishes: its guard drops and its slot frees.
        Finish(usize),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        prop_oneof![
            (0u8..3, 0u8..8).prop_map(|(c, m)| Op::Push(c, m)),
            (0usize..8).prop_map(Op::Finish),
        ]
    }

    proptest::proptest! {
        /// Under any interleaving of pushes and finishes, with limits:
        /// each caller's writes start in the order it queued them, two
        /// running writes never share a key, the limits hold, and once
        /// everything has finished every queued write has started.
        #[test]
        fn start_order_model(ops in proptest::collection::vec(op(), 1..60)) {
            const KEYS: [&str; 3] = ["k0", "k1", "k2"];
            let mut q: FairQueues<&'static str, (u8, usize, Vec<&'static str>)> =
                FairQueues::with_limits(KeyLocks::new(), 3, 2);
            let mut pushed = [0usize; 3];
            let mut next = [0usize; 3];
            let mut running: Vec<((u8, usize, Vec<&'static str>), KeyGuard<&'static str>)> =
                Vec::new();
            let step = |q: &mut FairQueues<_, _>, running: &mut Vec<_>, next: &mut [usize; 3]| {
                for (job, guard) in q.start() {
                    let (caller, n, _): &(u8, usize, Vec<&str>) = &job;
                    proptest::prop_assert_eq!(*n, next[*caller as usize], "caller {} out of order", caller);
                    next[*caller as usize] += 1;
                    running.push((job, guard));
                }
                let mut seen = std::collections::HashSet::new();
                for ((_, _, keys), _) in running.iter() {
                    for k in keys {
                        proptest::prop_assert!(seen.insert(*k), "two running writes hold {}", k);
                    }
                }
                proptest::prop_assert!(running.len() <= 3);
                for c in 0..3u8 {
                    proptest::prop_assert!(running.iter().filter(|((rc, _, _), _)| *rc == c).count() <= 2);
                }
                Ok(())
            };
            for o in ops {
                match o {
                    Op::Push(c, mask) => {
                        let keys: Vec<&'static str> =
                            (0..3).filter(|b| mask & (1 << b) != 0).map(|b| KEYS[b]).collect();
                        q.push(&format!("c{c}"), keys.clone(), (c, pushed[c as usize], keys));
                        pushed[c as usize] += 1;
                    }
                    Op::Finish(i) if !running.is_empty() => {
                        let ((c, _, _), guard) = running.remove(i % running.len());
                        drop(guard);
                        q.finished(&format!("c{c}"));
                    }
                    Op::Finish(_) => {}
                }
                step(&mut q, &mut running, &mut next)?;
            }
            while !running.is_empty() {
                let ((c, _, _), guard) = running.remove(0);
                drop(guard);
                q.finished(&format!("c{c}"));
                step(&mut q, &mut running, &mut next)?;
            }
            proptest::prop_assert_eq!(q.waiting(), 0);
            proptest::prop_assert_eq!(next, pushed);
        }
    }
}
