//! Exhaustive interleavings (loom) of the write queue and the admission
//! accounting. Run: `RUSTFLAGS="--cfg loom" cargo test -p loom-tests --release`.
#![cfg(loom)]

use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;
use omnigraph_sync::admission::{Admission, Limits};
use omnigraph_sync::keylock::KeyLocks;

/// Two writers with overlapping key sets never hold the shared key at the
/// same time, a third with a disjoint set is never blocked by them, and
/// every key is free at the end (no lost wake-up, no deadlock: loom fails
/// a model whose threads can all block).
/// The third writer's key set ({"d"}); sharing a key with the others
/// (say "b") makes the model fail.
const DISJOINT: &str = "d";

#[test]
fn overlapping_writers_exclude_each_other() {
    // Three threads explored without a bound take hours; loom's docs
    // recommend a preemption bound of 2-3 (most concurrency bugs need
    // few preemptions to show).
    let mut model = loom::model::Builder::new();
    model.preemption_bound = Some(3);
    model.check(|| {
        let locks = KeyLocks::new();
        let inside = Arc::new(AtomicUsize::new(0));
        let spawn = |keys: Vec<&'static str>| {
            let locks = locks.clone();
            let inside = inside.clone();
            thread::spawn(move || {
                let _g = locks.acquire(keys);
                let before = inside.fetch_add(1, Ordering::SeqCst);
                assert_eq!(before, 0, "two writers share `b`");
                inside.fetch_sub(1, Ordering::SeqCst);
            })
        };
        let t1 = spawn(vec!["a", "b"]);
        let t2 = spawn(vec!["b", "c"]);
        // The third never waits: its keys are free whatever the others
        // hold, so `try_acquire` (which fails instead of waiting) succeeds
        // in every interleaving.
        let t3 = {
            let locks = locks.clone();
            thread::spawn(move || {
                let g = locks.try_acquire(vec![DISJOINT]);
                assert!(g.is_some(), "a writer with disjoint keys was blocked");
            })
        };
        t1.join().expect("t1");
        t2.join().expect("t2");
        t3.join().expect("t3");
        assert_eq!(locks.held(), 0);
    });
}

/// Concurrent admissions for one actor never exceed the in-flight limit,
/// and the count returns to zero once every permit is dropped.
#[test]
fn admission_never_overshoots_and_always_returns_to_zero() {
    loom::model(|| {
        let adm = Admission::new(Limits {
            max_inflight: 1,
            max_bytes: 10,
        });
        let held = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let adm = adm.clone();
                let held = held.clone();
                thread::spawn(move || {
                    if let Ok(p) = adm.try_admit("actor", 6) {
                        let n = held.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(n, 0, "two permits with a limit of one");
                        held.fetch_sub(1, Ordering::SeqCst);
                        drop(p);
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("join");
        }
        assert_eq!(adm.usage("actor"), (0, 0));
        assert_eq!(adm.active_actors(), 0);
    });
}

/// A key guard dropped on another thread (a write's guard is dropped on the
/// Lance runtime, the actor thread acquires) frees its keys: a waiter gets
/// them, and nothing stays held.
#[test]
fn a_key_guard_dropped_on_another_thread_frees_its_keys() {
    loom::model(|| {
        let locks = KeyLocks::new();
        let guard = locks.try_acquire(["t"]).expect("free");
        let dropper = thread::spawn(move || drop(guard));
        let again = locks.acquire(vec!["t"]);
        assert_eq!(locks.held(), 1);
        drop(again);
        dropper.join().expect("dropper");
        assert_eq!(locks.held(), 0);
    });
}

/// The GraphActor's commit queue hand-off (group commit): two writers
/// queue while turns run; whoever is handed a turn runs it and then ends
/// it, running the next one it is handed. Every write is committed exactly
/// once, two turns never overlap, and a write queued while a turn runs is
/// never left behind (the queue is idle at the end). The mutex stands in
/// for the actor's mailbox, which serializes the calls in production.
#[test]
fn every_queued_write_is_committed_once_and_turns_never_overlap() {
    use loom::sync::Mutex;
    use omnigraph_sync::commit::CommitQueue;
    loom::model(|| {
        let q = Arc::new(Mutex::new(CommitQueue::new()));
        let committed = Arc::new(Mutex::new(Vec::new()));
        let in_turn = Arc::new(AtomicUsize::new(0));
        let writer = |w: u32| {
            let (q, committed, in_turn) = (q.clone(), committed.clone(), in_turn.clone());
            thread::spawn(move || {
                let mut turn = q.lock().expect("queue").push(w);
                while let Some(members) = turn {
                    assert_eq!(
                        in_turn.fetch_add(1, Ordering::SeqCst),
                        0,
                        "two turns at once"
                    );
                    committed.lock().expect("log").extend(members);
                    in_turn.fetch_sub(1, Ordering::SeqCst);
                    turn = q.lock().expect("queue").turn_done();
                }
            })
        };
        let a = writer(1);
        let b = writer(2);
        a.join().expect("a");
        b.join().expect("b");
        let mut all = committed.lock().expect("log").clone();
        all.sort();
        assert_eq!(all, vec![1, 2], "each write committed exactly once");
        assert!(q.lock().expect("queue").is_idle(), "nothing left behind");
    });
}
