//! Raft groups on the harness, generic over the application state machine; group0 is one of
//! them ([`GroupId::GROUP0`]).
//!
//! Every member node runs one [`Raft`] per group and incarnation; a node may run many groups
//! (their verbs are addressed by group: [`verbs`]), each with its own persistence
//! ([`storage::RaftStorage`]). Commands proposed on any node are forwarded to
//! the leader, replicated, committed by a majority and applied, in log order, to every node's
//! copy of the state machine. Promises (checked from the history by the `raft` checker):
//! at most one leader per term; a committed entry never changes; every node applies the same
//! sequence of entries, without gaps, and never twice within one incarnation.
//!
//! - [`core`]: the pure Raft state machine (elections, replication, commit rule, read index).
//! - [`log`]: the replicated log and its persistence bookkeeping.
//! - [`service`]: the async shell (tick timer, persistence, apply loop) and [`Raft`].
//! - [`verbs`]: the group-addressed RPC verbs and the per-node dispatch by group id.
//! - [`storage`]: the persistence trait and the snapshot descriptor.
//! - [`sys_table`]: its implementation in the `system.raft*` tables on the storage engine
//!   (group0's, and every group of the `raft.*` scenarios); `crate::sc::storage` is the other.
//! - [`events`]: the history events ([`RaftEvent`]).

pub mod core;
pub mod events;
pub mod log;
pub mod service;
pub mod storage;
pub mod sys_table;
pub mod verbs;

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod service_tests;
#[cfg(test)]
mod swarm_tests;
#[cfg(test)]
mod sys_table_tests;

use serde::{Deserialize, Serialize};

pub use events::{command_hash, RaftEvent};
pub use service::Raft;
pub use sim::NodeId;
pub use storage::{RaftStorage, SnapshotDescriptor};
pub use sys_table::SysTableStorage;

/// The id of a Raft group. group0 is [`GroupId::GROUP0`]; its events and requests look exactly
/// as they did before groups had ids.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct GroupId(pub u64);

impl GroupId {
    /// group0, the cluster's topology group.
    pub const GROUP0: GroupId = GroupId(0);

    /// Is this group0? (Used to keep group0's history events unchanged.)
    pub fn is_group0(&self) -> bool {
        *self == GroupId::GROUP0
    }
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "group {}", self.0)
    }
}

/// Mutant: the leader treats an entry as committed as soon as it is in its own log.
pub const MUTANT_COMMIT_WITHOUT_MAJORITY: &str = "raft-commit-without-majority";

/// The application state machine replicated by a [`Raft`] group.
pub trait StateMachine: 'static {
    /// A command (one log entry).
    type Command: Clone + std::fmt::Debug + Serialize + 'static;
    /// Applies the committed command at `index`. Must be deterministic. Indices are increasing
    /// but not contiguous: the leader's empty entries are not handed to the state machine.
    fn apply(&mut self, index: u64, cmd: &Self::Command);

    /// The group's members as the applied state lists them, if the application keeps them
    /// (group0 does: the topology's nodes). Those outside the voter set the group started with
    /// become its non-voters ([`Raft::set_learners`]) after each apply. `None`: voters only.
    fn members(&self) -> Option<Vec<NodeId>> {
        None
    }
}

/// Timing and limits of a Raft group. Prefer `RaftConfig { .., ..Default::default() }`: fields
/// may be added.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftConfig {
    /// Lower bound of the randomised election timeout.
    pub election_timeout_ms_min: u64,
    /// Upper bound of the randomised election timeout.
    pub election_timeout_ms_max: u64,
    /// Interval between leader heartbeats.
    pub heartbeat_ms: u64,
    /// Timeout of one Raft RPC.
    pub rpc_timeout_ms: u64,
    /// Granularity of the logical clock (election and heartbeat timers are multiples of it).
    pub tick_ms: u64,
    /// How long `propose` and `read_barrier` keep trying before giving up.
    pub op_timeout_ms: u64,
    /// Most entries in one AppendEntries request.
    pub max_entries_per_append: usize,
    /// Pre-vote before bumping the term.
    pub pre_vote: bool,
    /// Leader steps down without a majority's contact for an election timeout.
    pub check_quorum: bool,
}

impl Default for RaftConfig {
    fn default() -> Self {
        RaftConfig {
            election_timeout_ms_min: 300,
            election_timeout_ms_max: 600,
            heartbeat_ms: 50,
            rpc_timeout_ms: 200,
            tick_ms: 10,
            op_timeout_ms: 5_000,
            max_entries_per_append: 64,
            pre_vote: true,
            check_quorum: true,
        }
    }
}

/// Why a proposal or read barrier did not succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RaftError {
    /// This node is not the leader (definite: nothing was appended).
    NotLeader,
    /// This node is not the leader of the requested term (definite: nothing was appended).
    TermChanged,
    /// Gave up waiting: the command may or may not have been (or be) committed (unknown).
    Timeout,
    /// No leader could be reached before the deadline (definite: nothing was appended).
    Unavailable,
    /// The entry was overwritten by another leader's entry at its index (definite: not
    /// committed).
    Dropped,
}

impl std::fmt::Display for RaftError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            RaftError::NotLeader => "not leader",
            RaftError::TermChanged => "term changed",
            RaftError::Timeout => "timeout",
            RaftError::Unavailable => "unavailable",
            RaftError::Dropped => "dropped",
        };
        f.write_str(s)
    }
}

impl std::error::Error for RaftError {}
