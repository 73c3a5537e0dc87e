//! The commit queue of one graph: prepared writes wait here for a commit
//! turn. One turn runs at a time and takes every write that queued before
//! it started (group commit); writes that queue while it runs wait for the
//! next turn, which starts as soon as this one ends.
//!
//! The GraphActor owns one and calls it from its mailbox only, so it needs
//! no lock of its own; `loom-tests` model-checks the hand-off with the
//! calls serialized by a mutex standing in for the mailbox: every write is
//! committed exactly once, turns never overlap, and a write queued while a
//! turn runs is never left behind when the turn ends.

use std::collections::VecDeque;

/// Writes waiting for a commit turn, and whether one is running.
#[derive(Debug)]
pub struct CommitQueue<T> {
    waiting: VecDeque<T>,
    running: bool,
}

impl<T> Default for CommitQueue<T> {
    fn default() -> Self {
        CommitQueue {
            waiting: VecDeque::new(),
            running: false,
        }
    }
}

impl<T> CommitQueue<T> {
    /// An empty queue, no turn running.
    pub fn new() -> Self {
        Self::default()
    }

    /// Queues `w`. When no turn is running, one starts now and takes
    /// every waiting write: the caller must run it and then call
    /// [`CommitQueue::turn_done`].
    pub fn push(&mut self, w: T) -> Option<Vec<T>> {
        self.waiting.push_back(w);
        self.next_turn()
    }

    /// The running turn ended. Returns the next turn (every write that
    /// queued meanwhile) for the caller to run, or `None` when nothing
    /// waits and the queue is idle.
    pub fn turn_done(&mut self) -> Option<Vec<T>> {
        self.running = false;
        self.next_turn()
    }

    fn next_turn(&mut self) -> Option<Vec<T>> {
        if self.running || self.waiting.is_empty() {
            return None;
        }
        self.running = true;
        Some(self.waiting.drain(..).collect())
    }

    /// A turn is running.
    pub fn running(&self) -> bool {
        self.running
    }

    /// Writes waiting for the next turn.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// No turn runs and nothing waits.
    pub fn is_idle(&self) -> bool {
        !self.running && self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turn_takes_what_waited_and_the_next_what_queued_meanwhile() {
        let mut q = CommitQueue::new();
        assert_eq!(q.push(1), Some(vec![1]));
        assert_eq!(q.push(2), None, "a turn runs");
        assert_eq!(q.push(3), None);
        assert!(q.running());
        assert_eq!(q.waiting(), 2);
        assert_eq!(q.turn_done(), Some(vec![2, 3]));
        assert_eq!(q.turn_done(), None);
        assert!(q.is_idle());
        assert_eq!(q.push(4), Some(vec![4]));
    }
}
