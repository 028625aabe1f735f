//! group0: a real Raft group, generic over the application state machine.
//!
//! - [`core`]: the pure Raft state machine (elections, replication, commit rule, read index).
//! - [`log`]: the replicated log and its persistence bookkeeping.

pub mod core;
pub mod log;

#[cfg(test)]
mod core_tests;

/// Node identifier (temporary until `sim::NodeId` lands).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct NodeId(pub u32);
impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}", self.0)
    }
}
