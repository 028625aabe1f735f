//! Persistence of one Raft group member: the [`RaftStorage`] trait the shell writes through,
//! and the [`SnapshotDescriptor`] the engine-backed implementations store.
//!
//! The shell's durability promise rests on the trait's contract: every `store_*` call is a
//! *buffered* write, applied in call order (a later write of the same entry wins, so chained
//! writes are fine), visible to `load_*` at once, and durable only once a later
//! [`RaftStorage::sync`] has succeeded. A crash loses exactly the writes not covered by a
//! successful sync. Nothing leaves a node before the sync that covers what it depends on.
//!
//! Two implementations, both on the node's storage engine (its tables, commitlogs and disk):
//! - group0, and every group of the `raft.*` scenarios, persist in the `system.raft*` tables
//!   ([`super::sys_table::SysTableStorage`], as upstream's `raft_sys_table_storage`: partition =
//!   group id, so many groups share the tables, their commitlog and the node's sync);
//! - the `raft_groups` tables of strongly consistent tablets (SPEC §7.1/§7.3,
//!   `crate::sc::storage`), on the group's shard, with a forward-only snapshot index on top.
//!
//! The raw-disk layout that served the `raft.*` scenarios before (one disk key per entry) is
//! gone: no scenario tests a storage upstream does not have.
//!
//! Simplification: group0 takes no snapshots and truncates no log yet; a restarted member
//! re-reads and re-applies its whole log (the cost is measured in BENCHMARKS.md).

use futures::future::LocalBoxFuture;
use sim::{DiskError, NodeId};

use super::core::HardState;
use super::log::Entry;

/// A stored snapshot descriptor with its configuration, as both engine-backed storages keep it
/// (group0's `system.raft_snapshots` + `system.raft_snapshot_config`, and the `raft_groups`
/// tables of strongly consistent tablets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotDescriptor {
    /// `snapshot_id`.
    pub id: u64,
    /// Index the snapshot covers.
    pub idx: u64,
    /// Term of that index.
    pub term: u64,
    /// CURRENT members (all voters).
    pub current: Vec<NodeId>,
    /// PREVIOUS members (empty outside a joint configuration).
    pub previous: Vec<NodeId>,
}

/// Where a Raft group member keeps its hard state and log.
pub trait RaftStorage<C>: 'static {
    /// The stored hard state (default for a fresh member), seeing buffered writes.
    fn load_hard_state(&self) -> HardState;
    /// The stored log, contiguous from index 1, seeing buffered writes.
    fn load_log(&self) -> Vec<Entry<C>>;
    /// Buffers a write of the hard state.
    fn store_hard_state(&self, hs: &HardState);
    /// Buffers writes of `entries` (contiguous, in index order), replacing stored entries at
    /// the same indexes.
    fn store_entries(&self, entries: &[Entry<C>]);
    /// Buffers the removal of the stored entries `from..=to` (a truncated suffix).
    fn remove_entries(&self, from: u64, to: u64);
    /// Makes every buffered write so far durable.
    fn sync(&self) -> LocalBoxFuture<'static, Result<(), DiskError>>;
}
