//! The server's actors (actix): a [`SupervisorActor`] that owns the graph
//! registry, one [`GraphActor`] per open graph, and the [`AdmissionActor`].
//!
//! actix arbiters are single-threaded, so no actor does Lance work on its
//! own thread: each hands the future to one of the multi-threaded tokio
//! runtimes it was given ([`Runtimes`]: `main` for reads, light writes,
//! commit turns and upkeep steps; `bulk` for big loads' prepares, and
//! upkeep steps while one is queued or running) and awaits the join handle.
//! See `docs/architecture.md` ("Server actors") for the message flow.

pub mod admission;
pub mod graph;
pub mod metrics;
pub mod ops;
pub mod supervisor;

pub use admission::{AdmissionActor, AdmissionConfig, Admit, Rejection};
pub use graph::{GraphActor, WriteKey};
pub use metrics::Metrics;
pub use ops::{GraphRead, GraphWrite, Read, Write};
pub use supervisor::{
    GraphEntry, GraphSpec, GraphState, Quarantine, Registry, Restart, StoredQueries,
    SupervisorActor,
};

/// The runtimes actors hand work to.
///
/// `main` runs reads, light writes (mutations, small loads) and the
/// upkeep steps (index extension, folding, compaction); `commit` runs the
/// commit turns, one at a time on a thread of their own at the normal
/// priority, so the one serial step of every write does not queue behind
/// the prepares and requests it commits for (docs/architecture.md, "Group
/// commit");
/// `bulk` runs the prepare of big loads, and `upkeep` the preparation of
/// upkeep steps while a big load is queued or running, both on threads
/// the server gives a lower OS scheduling priority, so a caller flooding
/// ingestion cannot take the cores from the others' small writes and
/// reads (docs/architecture.md, "Bulk work"). Upkeep has a runtime of its
/// own: on the bulk runtime's one worker its steps queued behind the
/// flood's prepares for the whole flood, and the fragments no index
/// covered piled up under every write into the flooded type.
#[derive(Debug, Clone)]
pub struct Runtimes {
    pub main: tokio::runtime::Handle,
    pub bulk: tokio::runtime::Handle,
    pub upkeep: tokio::runtime::Handle,
    pub commit: tokio::runtime::Handle,
}

impl Runtimes {
    /// Both kinds of work on one runtime (tests, embedding).
    pub fn single(h: tokio::runtime::Handle) -> Runtimes {
        Runtimes {
            main: h.clone(),
            bulk: h.clone(),
            upkeep: h.clone(),
            commit: h,
        }
    }
}

/// Why an actor could not answer: the engine's error, or the task running
/// it panicked or was cancelled (the GraphActor is then restarted).
#[derive(Debug, thiserror::Error)]
pub enum ActorError {
    #[error(transparent)]
    Engine(#[from] crate::engine::EngineError),
    #[error("the graph's worker failed: {0}; the graph is being restarted")]
    Crashed(String),
    /// A read panicked: that request fails (500), the graph keeps serving
    /// and the panic is not counted as a crash (docs/server.md, the status
    /// table).
    #[error("the query failed inside the server ({0}); the graph keeps serving, report this")]
    ReadPanicked(String),
    #[error("the graph is not serving (stopped or restarting); retry shortly")]
    Gone,
}
