//! Strongly consistent tables (SPEC §7): every tablet of such a table has its own Raft group
//! whose members are the tablet's replicas, each server on its replica's shard, and whose
//! metadata lives in the Raft-group system tables on that same shard.
//!
//! ```text
//! node n (shards 0..S, the count may change across restarts)
//!  ├─ system.tablets rows (each tablet with its replicas and raft_group_id)   tablets.rs
//!  ├─ boot check: no local replica on a shard >= S (SPEC §7.4)                tablets.rs
//!  ├─ groups manager: a Raft server per local replica, on its shard            groups.rs
//!  │    └─ raft_groups_storage (shard, group_id) ─ fixed-shard sharder ─┐      storage.rs
//!  └─ per shard: raft_groups / raft_groups_snapshots /                   ◄───┘ tables.rs
//!                raft_groups_snapshot_config rows, the shard's commitlog       store.rs
//! client: key → tablet → a replica node → propose / read barrier + local read  cluster.rs
//! ```
//!
//! Simplifications (each noted where it lives): shards are logical (a shard is its own set of
//! table instances in the node's storage engine, [`crate::storage`]); the tablet map of strongly
//! consistent tables is held by the harness as the stand-in for group0 (which the topology
//! area models) and written to each node's `system.tablets`; there is no table creation or
//! drop during a run and no migration of a strongly consistent tablet (upstream has no
//! metadata copy either: `fixed_shard_sharder::shard_for_writes` supports no migration and the
//! design doc says the metadata would have to be erased and re-added by hand), so the groups
//! manager only ever starts servers; the Raft shell keeps no snapshots, so the forward-only
//! snapshot index is stored as upstream's commitlog replay stores it (the commit index at
//! boot) while the log itself is kept and re-applied.

pub mod cluster;
pub mod events;
pub mod groups;
pub mod kv;
pub mod storage;
pub mod store;
pub mod tables;
pub mod tablets;

pub use cluster::{ScCluster, ScConfig};
pub use events::{ScClientEvent, ScEvent};

/// Mutant: the Raft server writes its metadata straight to its own shard, keyed by the
/// default (Murmur3) partitioner's token, instead of through the fixed-shard sharder; reads
/// through the sharder then miss the rows after a restart.
pub const MUTANT_RAFT_BYPASSES_SHARDER: &str = "sc-raft-bypasses-sharder";
/// Mutant: every group's metadata is stored under shard 0 (the old `this_shard_id() == 0`
/// assumption of group0's persistence).
pub const MUTANT_METADATA_ON_SHARD_ZERO: &str = "sc-metadata-on-shard-zero";
/// Mutant: a node starts although a tablet replica on it has a shard at or above its shard
/// count (the SPEC §7.4 boot check is skipped).
pub const MUTANT_NO_SHARD_COUNT_CHECK: &str = "sc-no-shard-count-check";
/// Mutant: the sharder of the Raft-group tables consults the node's live allocation of the
/// token space over its current shards instead of decoding the shard from the token.
pub const MUTANT_SHARDER_READS_LIVE_ALLOCATION: &str = "sc-sharder-reads-live-allocation";
