//! Small concurrency primitives the server's actors build on, kept free of
//! Lance and async so `loom` can model-check them quickly
//! (`loom-tests/`, run with `RUSTFLAGS="--cfg loom"`).
//!
//! - [`keylock::KeyLocks`]: exclusive locks on *sets* of keys — the
//!   per-(table, branch) write queues. A writer takes all its keys at once
//!   or waits, so overlapping writers never run together and waiting cannot
//!   deadlock.
//! - [`fair::FairQueues`]: per-caller write FIFOs served round-robin over
//!   [`keylock::KeyLocks`] — the GraphActor's mailbox-owned write queues.
//! - [`commit::CommitQueue`]: prepared writes waiting for the GraphActor's
//!   commit turn; a turn takes everything queued before it (group commit).
//! - [`admission::Admission`]: per-actor in-flight request and byte budgets
//!   (reference: `OMNIGRAPH_PER_ACTOR_INFLIGHT_MAX`,
//!   `OMNIGRAPH_PER_ACTOR_BYTES_MAX`); a permit returns its share on drop.

#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex};

pub mod admission;
pub mod commit;
pub mod fair;
pub mod keylock;
