//! History events of the topology area: everything the topology checkers read.
//!
//! Checkers never look at model internals; each event says what happened, where, under which
//! session / version / term, so fencing, barrier, data, stage and liveness properties can be
//! decided from the history alone.

use super::ids::{Key, NodeId, Replica, SessionId, ShardId, TabletId, Value};
use super::stage::Stage;
use serde::Serialize;
use sim::EventKind;

/// Outcome of a client operation: the crate-wide three-valued [`crate::Outcome`].
pub use crate::outcome::Outcome as OpOutcome;

/// Kind of client operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// Write a unique value to a fresh key.
    Write,
    /// Read a key.
    Read,
    /// Delete a key (its tombstone is considered GC-ed: a resurrected value stays visible).
    Delete,
    /// TRUNCATE the table.
    Truncate,
}

/// A topology-area history event.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum TopologyEvent {
    /// A group0 change to a tablet row was applied (recorded once per group0 index).
    StageCommitted {
        /// group0 index of the command.
        index: u64,
        /// Coordinator term of the command (`None` for API writes).
        term: Option<u64>,
        /// The fenced coordinator term when it was applied.
        fenced_term: u64,
        /// Topology version after the command.
        version: u64,
        /// The tablet.
        tablet: TabletId,
        /// Migration id (the version at which the transition started).
        migration: u64,
        /// Stage before.
        from: Option<Stage>,
        /// Stage after (`None`: transition deleted).
        stage: Option<Stage>,
        /// Session after.
        session: Option<SessionId>,
        /// Replicas after.
        replicas: Vec<Replica>,
        /// New replicas after.
        new_replicas: Vec<Replica>,
        /// Who wrote it.
        origin: String,
    },
    /// A group0 topology change was applied (recorded once per index, for every applied change,
    /// also those that touch no tablet row: balancing, exclusion, the "advance fence version"
    /// commit). With [`TopologyEvent::StageCommitted`] and the harness's per-node Raft apply
    /// events, checkers know each node's group0 version and fence at any point of the history.
    TopologyCommitted {
        /// group0 index of the command.
        index: u64,
        /// `system.topology.version` after the command.
        version: u64,
        /// `system.topology.fence_version` after the command.
        fence_version: u64,
        /// Nodes in `ignored_nodes` after the command.
        excluded: Vec<NodeId>,
        /// Who wrote it ("coordinator", "advance fence version", "move_tablet", …).
        origin: String,
    },
    /// A group0 node-operation change was applied (recorded once per index, after its
    /// [`TopologyEvent::TopologyCommitted`]): the join path of a node.
    NodeTransitionCommitted {
        /// group0 index of the command.
        index: u64,
        /// Coordinator term of the command (`None` for the `join_node_request` handler).
        term: Option<u64>,
        /// Topology version after the command.
        version: u64,
        /// The node worked on.
        node: NodeId,
        /// Its `node_state` after the command.
        node_state: String,
        /// The node operation's `transition_state` after the command.
        transition_state: Option<String>,
        /// `system.topology.session` after the command.
        session: Option<SessionId>,
        /// Who wrote it.
        origin: String,
    },
    /// A joining node was answered by the coordinator (`join_node_response`).
    JoinAnswered {
        /// The joining node.
        node: NodeId,
        /// Whether the answer reached it.
        accepted: bool,
    },
    /// A group0 topology command was rejected on apply (recorded once per index).
    CommandRejected {
        /// group0 index.
        index: u64,
        /// Why (the guard's reason).
        reason: String,
    },
    /// A new coordinator fenced older terms (`fence_previous_coordinator` applied).
    CoordinatorFenced {
        /// group0 index.
        index: u64,
        /// The new coordinator's term.
        term: u64,
    },
    /// A coordinator started (on the group0 leader) in a term.
    CoordinatorStarted {
        /// Its term.
        term: u64,
    },
    /// A coordinator stopped (term changed or lost leadership).
    CoordinatorStopped {
        /// Its term.
        term: u64,
    },
    /// A shard's registry opened (created) a session on apply.
    SessionOpened {
        /// The shard whose registry it is.
        shard: ShardId,
        /// The session.
        session: SessionId,
        /// Local topology version.
        version: u64,
    },
    /// A shard's registry started closing a session on apply.
    SessionClosing {
        /// The shard whose registry it is.
        shard: ShardId,
        /// The session.
        session: SessionId,
        /// Live guards at that moment.
        guards: u32,
        /// Local topology version.
        version: u64,
    },
    /// A drain erased a closed session from a shard's registry.
    SessionDrained {
        /// The shard whose registry it is.
        shard: ShardId,
        /// The session.
        session: SessionId,
    },
    /// The coordinator started a global tablet barrier.
    BarrierStarted {
        /// Barrier id (unique per run: term * 1e6 + sequence).
        barrier: u64,
        /// The version the barrier is based on.
        version: u64,
        /// Nodes contacted.
        nodes: Vec<NodeId>,
        /// Tablets waiting on it.
        tablets: Vec<TabletId>,
    },
    /// A node answered `barrier_and_drain` successfully.
    BarrierAnswered {
        /// Barrier id.
        barrier: u64,
        /// The version the barrier is based on.
        version: u64,
        /// The node's local topology version when answering.
        local_version: u64,
        /// Open (non-default) sessions in the node's registries when answering (every shard
        /// mirrors the same set).
        open: Vec<SessionId>,
        /// Sessions still closing (with live guards) when answering; must be empty.
        closing: Vec<SessionId>,
        /// Whether the drain had to wait for a guard.
        waited_for_drain: bool,
    },
    /// A node refused `barrier_and_drain` (stale term or version).
    BarrierRefused {
        /// Barrier id.
        barrier: u64,
        /// Why.
        reason: String,
    },
    /// The coordinator's global barrier ended.
    BarrierCompleted {
        /// Barrier id.
        barrier: u64,
        /// Did every node answer?
        ok: bool,
    },
    /// The streaming master on the pending replica's host started an attempt.
    StreamStarted {
        /// Tablet.
        tablet: TabletId,
        /// The migration's session.
        session: SessionId,
    },
    /// The streaming master ended an attempt.
    StreamFinished {
        /// Tablet.
        tablet: TabletId,
        /// The migration's session.
        session: SessionId,
        /// Result.
        ok: bool,
        /// Error text, if any.
        error: Option<String>,
    },
    /// A streamed fragment was applied on a replica.
    FragmentApplied {
        /// Tablet.
        tablet: TabletId,
        /// The receiving replica.
        replica: Replica,
        /// The session the receiver's guard was taken on (default if none was attached).
        session: SessionId,
        /// The session of the migration that started this stream.
        origin: SessionId,
        /// Key.
        key: Key,
        /// Value (`None`: a tombstone).
        value: Option<Value>,
    },
    /// A streamed fragment was refused by the topology guard.
    FragmentRefused {
        /// Tablet.
        tablet: TabletId,
        /// The receiving replica.
        replica: Replica,
        /// The session of the migration that started this stream.
        origin: SessionId,
        /// Why.
        reason: String,
    },
    /// A tablet cleanup began on a replica (its data is about to be deleted).
    CleanupBegun {
        /// Tablet.
        tablet: TabletId,
        /// The replica being cleaned.
        replica: Replica,
        /// `cleanup` or `cleanup_target`.
        stage: Stage,
        /// Migration id.
        migration: u64,
    },
    /// A tablet cleanup finished on a replica.
    CleanupDone {
        /// Tablet.
        tablet: TabletId,
        /// The replica cleaned.
        replica: Replica,
        /// Rows deleted.
        rows: u64,
    },
    /// A replica admitted a write (the fence check passed) and holds its erm until
    /// [`TopologyEvent::ReplicaWriteDone`].
    ReplicaWriteBegun {
        /// Tablet.
        tablet: TabletId,
        /// The replica written.
        replica: Replica,
        /// Key.
        key: Key,
        /// The erm version the coordinator routed the write with.
        version: u64,
    },
    /// A replica finished a write it admitted (its erm is released).
    ReplicaWriteDone {
        /// History index of the matching [`TopologyEvent::ReplicaWriteBegun`].
        begun: u64,
        /// The write was applied, then the fence check after the apply refused it (the
        /// coordinator sees an error; the row stays).
        fenced_after_apply: bool,
    },
    /// A client operation was invoked.
    OpInvoke {
        /// Operation id (unique per run).
        op: u64,
        /// Kind.
        kind: OpKind,
        /// Key (0 for truncate).
        key: Key,
        /// Value written (writes).
        value: Option<Value>,
    },
    /// A client operation completed.
    OpComplete {
        /// Operation id.
        op: u64,
        /// Kind.
        kind: OpKind,
        /// Outcome.
        outcome: OpOutcome,
        /// Value read (reads).
        value: Option<Value>,
    },
    /// A restarted node's group0 state tables (`system.topology`, `system.tablets`) compared
    /// with the state its log replay reached (`topology::system_tables`).
    Group0TablesChecked {
        /// The applied group0 index the tables named.
        index: u64,
        /// The index the replay was at when compared (equal to `index` unless the log lost it).
        replayed_index: u64,
        /// Digest of the rows the tables held.
        tables: String,
        /// Digest of the rows of the re-applied state.
        replayed: String,
        /// The first differing row, if any.
        difference: Option<String>,
    },
    /// A migration was requested through the API (or by the balancer).
    MigrationRequested {
        /// Tablet.
        tablet: TabletId,
        /// From.
        src: Replica,
        /// To.
        dst: Replica,
    },
}

impl EventKind for TopologyEvent {
    fn kind(&self) -> &'static str {
        match self {
            TopologyEvent::StageCommitted { .. } => "stage_committed",
            TopologyEvent::TopologyCommitted { .. } => "topology_committed",
            TopologyEvent::CommandRejected { .. } => "group0_command_rejected",
            TopologyEvent::NodeTransitionCommitted { .. } => "node_transition_committed",
            TopologyEvent::JoinAnswered { .. } => "join_answered",
            TopologyEvent::CoordinatorFenced { .. } => "coordinator_fenced",
            TopologyEvent::CoordinatorStarted { .. } => "coordinator_started",
            TopologyEvent::CoordinatorStopped { .. } => "coordinator_stopped",
            TopologyEvent::SessionOpened { .. } => "session_opened",
            TopologyEvent::SessionClosing { .. } => "session_closing",
            TopologyEvent::SessionDrained { .. } => "session_drained",
            TopologyEvent::BarrierStarted { .. } => "barrier_started",
            TopologyEvent::BarrierAnswered { .. } => "barrier_answered",
            TopologyEvent::BarrierRefused { .. } => "barrier_refused",
            TopologyEvent::BarrierCompleted { .. } => "barrier_completed",
            TopologyEvent::StreamStarted { .. } => "stream_started",
            TopologyEvent::StreamFinished { .. } => "stream_finished",
            TopologyEvent::FragmentApplied { .. } => "fragment_applied",
            TopologyEvent::FragmentRefused { .. } => "fragment_refused",
            TopologyEvent::CleanupBegun { .. } => "cleanup_begun",
            TopologyEvent::CleanupDone { .. } => "cleanup_done",
            TopologyEvent::ReplicaWriteBegun { .. } => "replica_write_begun",
            TopologyEvent::ReplicaWriteDone { .. } => "replica_write_done",
            TopologyEvent::OpInvoke { .. } => "op_invoke",
            TopologyEvent::OpComplete { .. } => "op_complete",
            TopologyEvent::MigrationRequested { .. } => "migration_requested",
            TopologyEvent::Group0TablesChecked { .. } => "group0_tables_checked",
        }
    }
}
