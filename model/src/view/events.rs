//! History events of view building: the tasks' life cycle in group0 (created, aborted,
//! deleted; recorded once per group0 index), the coordinator's RPCs, the workers' batches and
//! staging sstables, and the view updates the base write path drops. Every checker of
//! `checkers/view/` reads these and the topology's `stage_committed` events only.

use super::state::{BuildStatus, TaskCause, TaskId, TaskKind};
use crate::schema::TableId;
use crate::topology::ids::{Key, NodeId, Replica, ShardId, TabletId};
use serde::Serialize;
use sim::EventKind;

/// How a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchEnd {
    /// Every remaining task done.
    Done,
    /// Aborted: every task gone or aborted, or the processed base changed.
    Aborted,
}

/// A view-building history event.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum ViewEvent {
    /// CREATE VIEW committed.
    ViewCreated {
        /// group0 index.
        index: u64,
        /// The view.
        view: TableId,
        /// Its base.
        base: TableId,
    },
    /// DROP VIEW committed.
    ViewDropped {
        /// group0 index.
        index: u64,
        /// The view.
        view: TableId,
    },
    /// A task row was created.
    TaskCreated {
        /// group0 index.
        index: u64,
        /// Task id.
        id: TaskId,
        /// Type.
        kind: TaskKind,
        /// Base.
        base: TableId,
        /// View (`None` for staging).
        view: Option<TableId>,
        /// Tablet.
        tablet: TabletId,
        /// Replica.
        replica: Replica,
        /// Why.
        cause: TaskCause,
    },
    /// A task was marked aborted.
    TaskAborted {
        /// group0 index.
        index: u64,
        /// Task id.
        id: TaskId,
    },
    /// A task row was deleted.
    TaskDeleted {
        /// group0 index.
        index: u64,
        /// Task id.
        id: TaskId,
        /// Why.
        cause: TaskCause,
    },
    /// The processed base changed.
    ProcessingBaseSet {
        /// group0 index.
        index: u64,
        /// The new processed base.
        base: Option<TableId>,
    },
    /// `view_build_status_v2` rows written.
    StatusCommitted {
        /// group0 index.
        index: u64,
        /// The view.
        view: TableId,
        /// Hosts.
        nodes: Vec<NodeId>,
        /// Status.
        status: BuildStatus,
    },
    /// A view building coordinator started in `term`.
    VbCoordinatorStarted {
        /// Term.
        term: u64,
    },
    /// The coordinator sent `work_on_view_building_tasks`.
    WorkSent {
        /// The coordinator's term.
        term: u64,
        /// The group0 index the coordinator had applied when it selected the tasks.
        applied: u64,
        /// Target replica.
        replica: Replica,
        /// Task ids.
        tasks: Vec<TaskId>,
        /// The call's run-unique id (instrumentation, see `WorkRequest::rpc`).
        rpc: u64,
    },
    /// The coordinator got the RPC's answer (`ok: false`: failed, retried later).
    WorkAnswered {
        /// The coordinator's term.
        term: u64,
        /// Target replica.
        replica: Replica,
        /// Finished ids returned.
        finished: Vec<TaskId>,
        /// Whether the RPC succeeded.
        ok: bool,
    },
    /// The worker refused an RPC.
    WorkRefused {
        /// Shard.
        shard: ShardId,
        /// The caller's term.
        term: u64,
        /// The worker's Raft term after its read barrier.
        worker_term: u64,
        /// Why.
        reason: String,
    },
    /// The worker answered from `completed_tasks` without running anything.
    WorkAnsweredFromCompleted {
        /// Shard.
        shard: ShardId,
        /// The ids answered.
        tasks: Vec<TaskId>,
    },
    /// The worker started a batch.
    BatchStarted {
        /// Batch id (unique per run).
        batch: u64,
        /// Shard.
        shard: ShardId,
        /// Type.
        kind: TaskKind,
        /// Base.
        base: TableId,
        /// Tablet.
        tablet: TabletId,
        /// Task ids.
        tasks: Vec<TaskId>,
        /// The group0 index the worker had applied (after its read barrier).
        applied: u64,
        /// The caller's term.
        term: u64,
        /// The worker's Raft term after its read barrier.
        worker_term: u64,
        /// The id of the RPC that started it (see `WorkRequest::rpc`).
        rpc: u64,
    },
    /// A retried (or failover) RPC attached to the running batch.
    BatchAttached {
        /// Batch id.
        batch: u64,
        /// Shard.
        shard: ShardId,
        /// Requested ids.
        tasks: Vec<TaskId>,
        /// The caller's term.
        term: u64,
        /// The worker's Raft term after its read barrier.
        worker_term: u64,
    },
    /// The state observer removed gone or aborted tasks from a running batch.
    BatchTasksRemoved {
        /// Batch id.
        batch: u64,
        /// Removed ids.
        tasks: Vec<TaskId>,
        /// The group0 index the worker had applied.
        applied: u64,
    },
    /// A batch ended.
    BatchFinished {
        /// Batch id.
        batch: u64,
        /// Shard.
        shard: ShardId,
        /// How.
        end: BatchEnd,
        /// The tasks completed (added to `completed_tasks`).
        completed: Vec<TaskId>,
        /// The group0 index the worker had applied when it ended.
        applied: u64,
    },
    /// Streamed sstables of a tablet registered as staging on a replica.
    StagingRegistered {
        /// Replica.
        replica: Replica,
        /// Tablet.
        tablet: TabletId,
        /// Keys in the staging sstables.
        keys: Vec<Key>,
    },
    /// Staging sstables of a tablet processed (view updates generated) on a replica.
    StagingProcessed {
        /// Batch id.
        batch: u64,
        /// Replica.
        replica: Replica,
        /// Tablet.
        tablet: TabletId,
        /// Keys processed.
        keys: Vec<Key>,
        /// Of them, keys whose view update was dropped (no paired view replica).
        dropped: Vec<Key>,
        /// The group0 index the worker had applied.
        applied: u64,
    },
    /// Staging entries of a tablet dropped by `tablet_cleanup`.
    StagingCleaned {
        /// Replica.
        replica: Replica,
        /// Tablet.
        tablet: TabletId,
    },
    /// A base write's view update was dropped: the base replica has no paired view replica
    /// (it is pending, SPEC §8 #19149).
    ViewUpdateDropped {
        /// Base replica.
        replica: Replica,
        /// Tablet.
        tablet: TabletId,
        /// View.
        view: TableId,
        /// Base key.
        key: Key,
    },
}

impl EventKind for ViewEvent {
    fn kind(&self) -> &'static str {
        match self {
            ViewEvent::ViewCreated { .. } => "view_created",
            ViewEvent::ViewDropped { .. } => "view_dropped",
            ViewEvent::TaskCreated { .. } => "vb_task_created",
            ViewEvent::TaskAborted { .. } => "vb_task_aborted",
            ViewEvent::TaskDeleted { .. } => "vb_task_deleted",
            ViewEvent::ProcessingBaseSet { .. } => "vb_processing_base_set",
            ViewEvent::StatusCommitted { .. } => "view_build_status_committed",
            ViewEvent::VbCoordinatorStarted { .. } => "vb_coordinator_started",
            ViewEvent::WorkSent { .. } => "vb_work_sent",
            ViewEvent::WorkAnswered { .. } => "vb_work_answered",
            ViewEvent::WorkRefused { .. } => "vb_work_refused",
            ViewEvent::WorkAnsweredFromCompleted { .. } => "vb_work_answered_from_completed",
            ViewEvent::BatchStarted { .. } => "vb_batch_started",
            ViewEvent::BatchAttached { .. } => "vb_batch_attached",
            ViewEvent::BatchTasksRemoved { .. } => "vb_batch_tasks_removed",
            ViewEvent::BatchFinished { .. } => "vb_batch_finished",
            ViewEvent::StagingRegistered { .. } => "staging_registered",
            ViewEvent::StagingProcessed { .. } => "staging_processed",
            ViewEvent::StagingCleaned { .. } => "staging_cleaned",
            ViewEvent::ViewUpdateDropped { .. } => "view_update_dropped",
        }
    }
}

/// Record a group0 view event (once per index, by the group0 shell) with its coverage mark.
pub fn record(sim: &sim::Sim, node: NodeId, ev: ViewEvent) {
    match &ev {
        ViewEvent::TaskAborted { id, .. } => {
            tracing::info!("view building {id} aborted by a tablet migration");
            sim.mark("task aborted by a tablet migration");
        }
        ViewEvent::TaskCreated {
            id,
            cause: cause @ (TaskCause::MigrationEnd | TaskCause::Rollback),
            replica,
            ..
        } => {
            tracing::info!("view building {id} recreated on {replica} ({cause:?})");
            sim.mark("aborted task recreated");
            if *cause == TaskCause::Rollback {
                sim.mark("aborted task recreated on revert");
            }
        }
        _ => {}
    }
    sim.record(Some(node), ev);
}
