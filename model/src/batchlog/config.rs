//! The `batchlog` config section (SPEC §5.11), with the real defaults; scenarios shrink them
//! (fewer batchlog shards, shorter intervals) to keep runs small.

use super::table::TableConfig;
use super::types::Layout;
use serde::{Deserialize, Serialize};

/// Config section `batchlog` (e.g. `--set batchlog.layout=v1`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchlogConfig {
    /// Which table layout the cluster writes and replays: "v1" or "v2".
    pub layout: Layout,
    /// Batchlog shards of the v2 partition key (256 in the real system).
    pub shard_count: u32,
    /// `write_request_timeout_in_ms`; `replay_timeout = 2 × this`.
    pub write_request_timeout_ms: u64,
    /// `ring_delay_ms`: delay before the first loop replay.
    pub ring_delay_ms: u64,
    /// Replay loop period (60 s; 1 s with `short_batchlog_manager_replay_interval`).
    pub replay_interval_ms: u64,
    /// `batchlog_replay_cleanup_after_replays`: cleanup every N-th loop replay.
    pub cleanup_after_replays: u64,
    /// Timeout of one replayed write (300 s in the real system).
    pub replay_write_timeout_ms: u64,
    /// Replication factor of the user tables.
    pub rf: usize,
    /// Number of user tables.
    pub tables: u32,
    /// User tables with `tombstone_gc = {'mode': 'repair'}`.
    pub repair_mode_tables: Vec<u32>,
    /// `propagation_delay_in_seconds` of the repair-mode tables, in ms.
    pub propagation_delay_ms: u64,
    /// Memtable flush threshold, in fragments.
    pub memtable_flush_fragments: usize,
    /// Commitlog segment size, in mutations.
    pub commitlog_segment_mutations: u64,
    /// Compact all sstables once there are this many.
    pub compaction_threshold: usize,
    /// Virtual time a replay scan spends per fragment walked, in ns.
    pub scan_ns_per_fragment: u64,
    /// With `layout = v1`: enable the cluster feature `batchlog_v2` at this virtual ms (0:
    /// never). Writers then use v2, and each node migrates its v1 entries before its first v2
    /// replay (SPEC §5.1, §5.8). The migration runs once per incarnation, as in the real
    /// system, so a v1 store that lands after it (a slow link during the switch) stays in
    /// `system.batchlog` until the node restarts: `batchlog.swarm` with this set finds that
    /// (e.g. seed 37 with `enable_v2_at_ms=2500`, a liveness failure).
    pub enable_v2_at_ms: u64,
    /// Where a cleanup range tombstone ends: `upstream` (before `min_too_fresh` if the shard held
    /// a too-young entry, else after `now − replay_timeout`; finding F1) or `replay_timeout`
    /// (always after `now − replay_timeout`: the candidate fix of F1).
    pub cleanup_end: CleanupEnd,
    /// How far (ms) below `now − replay_timeout` a cleanup range tombstone's `After` end lies:
    /// 0 as upstream (finding F3: a store whose coordinator's clock is behind the endpoint's by
    /// more than `replay_timeout − write_request_timeout` is shadowed in flight); the candidate
    /// fix of F3 sets it to at least twice the clock-skew bound.
    pub cleanup_clock_margin_ms: u64,
    /// The consistency a replayed mutation waits for: `each_quorum` as upstream since
    /// `d9c3772e20` (finding F4: a repair flush's replay answers "all replayed" while its write
    /// to a replica outside the quorum is still in flight, and lands after repair-mode GC purged
    /// the delete it is older than) or `all` (as before it: the candidate fix of F4).
    pub replay_cl: ReplayCl,
}

/// Config `batchlog.replay_cl`: what a replayed mutation waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReplayCl {
    /// A quorum of the tablet's replicas plus one per pending replica (upstream's EACH_QUORUM
    /// in one datacenter).
    #[default]
    EachQuorum,
    /// Every replica the write is sent to (upstream before `d9c3772e20`; F4's candidate fix).
    All,
}

/// Config `batchlog.cleanup_end`: where the cleanup range tombstone of a shard ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CleanupEnd {
    /// As upstream `replay_all_failed_batches`: just before the shard's `min_too_fresh` when
    /// the pass saw a too-young entry there, else just after `now − replay_timeout`.
    #[default]
    Upstream,
    /// Always just after `now − replay_timeout` (the candidate fix of finding F1).
    ReplayTimeout,
}

impl Default for BatchlogConfig {
    fn default() -> Self {
        BatchlogConfig {
            layout: Layout::V2,
            shard_count: 256,
            write_request_timeout_ms: 2000,
            ring_delay_ms: 30_000,
            replay_interval_ms: 60_000,
            cleanup_after_replays: 1,
            replay_write_timeout_ms: 300_000,
            rf: 3,
            tables: 3,
            repair_mode_tables: Vec::new(),
            propagation_delay_ms: 3_600_000,
            memtable_flush_fragments: 256,
            commitlog_segment_mutations: 256,
            compaction_threshold: 4,
            scan_ns_per_fragment: 1000,
            enable_v2_at_ms: 0,
            cleanup_end: CleanupEnd::Upstream,
            cleanup_clock_margin_ms: 0,
            replay_cl: ReplayCl::EachQuorum,
        }
    }
}

impl BatchlogConfig {
    /// `replay_timeout = 2 × write_request_timeout`.
    pub fn replay_timeout_ms(&self) -> u64 {
        2 * self.write_request_timeout_ms
    }

    /// The storage model's sizing.
    pub fn table_config(&self) -> TableConfig {
        TableConfig {
            memtable_flush_fragments: self.memtable_flush_fragments,
            commitlog_segment_mutations: self.commitlog_segment_mutations,
            compaction_threshold: self.compaction_threshold,
            persist: true,
            keep_shadowed: false,
        }
    }
}
