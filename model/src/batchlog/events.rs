//! The batchlog's history events: what checkers read (never the model's internals).
//!
//! Every event about durable state (an entry written, deleted, moved; a range tombstone; a
//! mutation applied on a replica) is recorded only after the disk sync that made it durable, so
//! a crash can never make the history claim more than the disks hold.

use super::table::RtEnd;
use super::types::{BatchId, Layout, Stage, TableId, WriteMutation};
use serde::Serialize;
use sim::{EventKind, NodeId};

/// A batch's client outcome: the crate-wide three-valued [`crate::Outcome`]. `Unknown`: the
/// batch may be applied now or later (its batchlog entry may exist and be replayed).
pub use crate::outcome::Outcome;

/// Who deleted a batchlog entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeletedBy {
    /// The coordinator's step 5 (CL ANY).
    WritePath,
    /// A replay after a successful send (or all tables dropped).
    Replay,
}

/// Events of the batchlog area.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "ev", rename_all = "snake_case")]
pub enum BatchlogEvent {
    /// A client sent a logged batch to a coordinator.
    BatchInvoke {
        /// Batch.
        id: BatchId,
        /// The mutations.
        mutations: Vec<WriteMutation>,
        /// Acknowledgements each mutation needs at the user's CL.
        cl_acks: usize,
    },
    /// The coordinator answered the client.
    BatchComplete {
        /// Batch.
        id: BatchId,
        /// Outcome.
        outcome: Outcome,
        /// Why, when not ok.
        reason: String,
    },
    /// Step 3 succeeded: the entry is durable on at least one batchlog endpoint.
    BatchlogWriteAcked {
        /// Batch.
        id: BatchId,
        /// Its written_at.
        written_at: u64,
        /// The endpoints written to.
        endpoints: Vec<NodeId>,
    },
    /// A batchlog entry became durable on this node.
    EntryWritten {
        /// Batch.
        id: BatchId,
        /// written_at.
        written_at: u64,
        /// Stage.
        stage: Stage,
        /// Batchlog shard (v2) or 0 (v1).
        shard: u32,
        /// Write timestamp of the row (µs).
        ts: u64,
        /// The table it went to (`system.batchlog` or `system.batchlog_v2`).
        layout: Layout,
    },
    /// A v1 entry was migrated into v2 stage `failed_replay` (copy and v1 delete durable).
    EntryMigrated {
        /// Batch.
        id: BatchId,
        /// written_at (kept).
        written_at: u64,
        /// Its v2 batchlog shard.
        shard: u32,
    },
    /// The cluster feature `batchlog_v2` was enabled: writers and replays use v2 from now on.
    FeatureBatchlogV2Enabled,
    /// A batchlog entry was deleted on this node (row or partition tombstone, durable).
    EntryDeleted {
        /// Batch.
        id: BatchId,
        /// written_at.
        written_at: u64,
        /// Stage.
        stage: Stage,
        /// Batchlog shard (v2) or 0 (v1).
        shard: u32,
        /// Who.
        by: DeletedBy,
        /// The pass's `now` when by replay.
        now_ms: Option<u64>,
        /// Deletion timestamp, when by the write path (µs): a store racing with its own
        /// delete on a paused node is dead if this is newer, whatever order they apply in.
        ts: Option<u64>,
    },
    /// A failed `initial` entry was moved to `failed_replay` (copy and delete durable).
    EntryMoved {
        /// Batch.
        id: BatchId,
        /// written_at.
        written_at: u64,
        /// Batchlog shard.
        shard: u32,
        /// The pass's `now`.
        now_ms: u64,
    },
    /// A replay pass started on this node.
    ReplayPassStart {
        /// Layout.
        layout: Layout,
        /// Fixed `now` of the pass.
        now_ms: u64,
        /// `now - replay_timeout`.
        cutoff_ms: u64,
        /// post_replay_cleanup.
        cleanup: bool,
    },
    /// An entry was sent and acknowledged at EACH_QUORUM (or had only dropped tables).
    EntryReplayed {
        /// Batch.
        id: BatchId,
        /// The pass's `now`.
        now_ms: u64,
        /// written_at.
        written_at: u64,
        /// Stage.
        stage: Stage,
        /// Mutations skipped because their table was dropped.
        dropped_mutations: usize,
    },
    /// Sending an entry failed.
    ReplayFailed {
        /// Batch.
        id: BatchId,
        /// The pass's `now`.
        now_ms: u64,
        /// written_at.
        written_at: u64,
        /// Stage.
        stage: Stage,
        /// Why.
        reason: String,
    },
    /// A cleanup range tombstone became durable in a shard's `initial` partition.
    RangeTombstoneWritten {
        /// Batchlog shard.
        shard: u32,
        /// The stage partition it lies in (always `initial`: `failed_replay` is never
        /// range-deleted).
        stage: Stage,
        /// End bound (the start is before all rows).
        end: RtEnd,
        /// Its write timestamp (µs on the replaying node's clock): it shadows a row of an older
        /// or equal timestamp, whenever that row lands.
        ts: u64,
        /// The pass's `now`.
        now_ms: u64,
    },
    /// A replay pass ended.
    ReplayPassEnd {
        /// Layout.
        layout: Layout,
        /// Fixed `now` of the pass.
        now_ms: u64,
        /// `now - replay_timeout`.
        cutoff_ms: u64,
        /// post_replay_cleanup.
        cleanup: bool,
        /// Live rows the scans returned.
        live_scanned: u64,
        /// Dead entries the scans stepped over.
        dead_scanned: u64,
        /// Entries replayed.
        replayed: u64,
        /// Entries whose send failed.
        failed: u64,
        /// Entries too young.
        too_young: u64,
        /// Did every entry get replayed?
        all_replayed: bool,
    },
    /// A replica durably applied a batch's mutation.
    MutationApplied {
        /// Batch.
        batch: BatchId,
        /// The mutation.
        m: WriteMutation,
        /// Through a replay (true) or the write path (false).
        replay: bool,
    },
    /// A client sent a plain delete of a user row to a coordinator.
    DeleteInvoke {
        /// Table.
        table: TableId,
        /// Key.
        key: u64,
        /// The tombstone's timestamp (µs, the coordinator's clock).
        ts: u64,
    },
    /// The coordinator answered the delete.
    DeleteComplete {
        /// Table.
        table: TableId,
        /// Key.
        key: u64,
        /// The tombstone's timestamp.
        ts: u64,
        /// Ok: a quorum of replicas holds the tombstone durably.
        outcome: Outcome,
    },
    /// A repair of a repair-mode table finished its batchlog flush step (SPEC §5.5 step 2):
    /// the flush answers of every node, and whether the table's repair time moved.
    RepairFlushed {
        /// Table repaired.
        table: TableId,
        /// Did every node answer that its batchlog was fully replayed?
        all_replayed: bool,
        /// Why the flush failed, if it did.
        reason: String,
        /// The repair time now recorded for the table (ms, the smallest flush time), if it
        /// was updated by this repair.
        repair_time_ms: Option<u64>,
    },
    /// Tombstone GC in `repair` mode purged tombstones of a user table on a replica: those
    /// older than the table's repair time minus `propagation_delay`.
    TombstonesPurged {
        /// Table.
        table: TableId,
        /// Replica shard.
        shard: u32,
        /// Keys whose tombstone (and the data it shadowed) is gone.
        keys: Vec<u64>,
        /// `repair_time − propagation_delay` (ms): tombstones below it were purged.
        gc_before_ms: u64,
    },
    /// A user table was dropped (schema change, cluster-wide).
    TableDropped {
        /// Table.
        table: TableId,
    },
}

impl EventKind for BatchlogEvent {
    fn kind(&self) -> &'static str {
        match self {
            BatchlogEvent::BatchInvoke { .. } => "batch_invoke",
            BatchlogEvent::BatchComplete { .. } => "batch_complete",
            BatchlogEvent::BatchlogWriteAcked { .. } => "batchlog_write_acked",
            BatchlogEvent::EntryWritten { .. } => "batchlog_entry_written",
            BatchlogEvent::EntryDeleted { .. } => "batchlog_entry_deleted",
            BatchlogEvent::EntryMoved { .. } => "batchlog_entry_moved",
            BatchlogEvent::EntryMigrated { .. } => "batchlog_entry_migrated",
            BatchlogEvent::FeatureBatchlogV2Enabled => "feature_batchlog_v2_enabled",
            BatchlogEvent::ReplayPassStart { .. } => "replay_pass_start",
            BatchlogEvent::EntryReplayed { .. } => "batchlog_entry_replayed",
            BatchlogEvent::ReplayFailed { .. } => "batchlog_replay_failed",
            BatchlogEvent::RangeTombstoneWritten { .. } => "batchlog_range_tombstone",
            BatchlogEvent::ReplayPassEnd { .. } => "replay_pass_end",
            BatchlogEvent::MutationApplied { .. } => "mutation_applied",
            BatchlogEvent::TableDropped { .. } => "table_dropped",
            BatchlogEvent::DeleteInvoke { .. } => "delete_invoke",
            BatchlogEvent::DeleteComplete { .. } => "delete_complete",
            BatchlogEvent::RepairFlushed { .. } => "repair_flushed",
            BatchlogEvent::TombstonesPurged { .. } => "tombstones_purged",
        }
    }
}
