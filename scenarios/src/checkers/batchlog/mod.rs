//! Checkers of the batchlog area (SPEC §5.12), one file each. They read only the history (the
//! model's [`BatchlogEvent`]s) and the final state the scenario returns.

pub mod atomicity;
pub mod bounded_cleanup;
pub mod drained;
mod final_replicas;
pub mod no_early_replay;
pub mod no_lost_batch;
pub mod range_tombstone;
pub mod replicas_hold;
pub mod resurrection;

use crate::scenario::{Checker, Verdict, Violation};
use model::batchlog::BatchlogEvent;
use sim::{Entry, NodeId};

pub use atomicity::Atomicity;
pub use bounded_cleanup::BoundedCleanup;
pub use drained::BatchlogDrained;
pub use no_early_replay::NoEarlyReplay;
pub use no_lost_batch::NoLostBatch;
pub use range_tombstone::RangeTombstoneSafety;
pub use replicas_hold::ReplicasHoldBatches;
pub use resurrection::NoResurrection;

/// Every batchlog checker, as the batchlog scenarios use them.
pub const ALL: &[&dyn Checker] = &[
    &NoLostBatch,
    &NoEarlyReplay,
    &RangeTombstoneSafety,
    &BoundedCleanup,
    &BatchlogDrained,
    &Atomicity,
    &NoResurrection,
];

/// A batchlog event with where it sits in the history (borrowed from it).
pub(crate) struct Ev<'h> {
    /// History index.
    pub index: usize,
    /// Virtual time, ns.
    pub at_ns: u64,
    /// Node that recorded it.
    pub node: Option<NodeId>,
    /// The event.
    pub ev: &'h BatchlogEvent,
}

/// The batchlog events of a history (`h.entries()`), in order, borrowed: every checker of the
/// area reads them, and cloning each event per checker was a tenth of a batchlog swarm seed.
pub(crate) fn events(entries: &[Entry]) -> Vec<Ev<'_>> {
    entries
        .iter()
        .filter_map(|e| {
            e.proto::<BatchlogEvent>().map(|ev| Ev {
                index: e.index,
                at_ns: e.at.0,
                node: e.node,
                ev,
            })
        })
        .collect()
}

/// A safety violation at `ev` (if given).
pub(crate) fn safety(checker: &str, message: String, ev: Option<&Ev<'_>>) -> Violation {
    Violation {
        checker: checker.to_string(),
        verdict: Verdict::Safety,
        message,
        at_index: ev.map(|e| e.index),
        at_ns: ev.map(|e| e.at_ns),
    }
}

/// The batchlog config section of a run.
pub(crate) fn config(cfg: &crate::config::RunConfig) -> model::batchlog::BatchlogConfig {
    cfg.section("batchlog")
}
