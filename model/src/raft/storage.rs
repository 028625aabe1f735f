//! Persistence of one Raft group member: the [`RaftStorage`] trait the shell writes through,
//! and [`DiskStorage`], its implementation on a node's raw [`Disk`] (one key per log entry).
//!
//! The shell's durability promise rests on the trait's contract: every `store_*` call is a
//! *buffered* write, applied in call order (a later write of the same entry wins, so chained
//! writes are fine), visible to `load_*` at once, and durable only once a later
//! [`RaftStorage::sync`] has succeeded. A crash loses exactly the writes not covered by a
//! successful sync. Nothing leaves a node before the sync that covers what it depends on.
//!
//! group0 persists in the `system.raft*` tables of the storage engine
//! ([`super::sys_table::SysTableStorage`], as upstream's `raft_sys_table_storage`). The raw
//! layout here is what the `raft.*` harness scenarios run their groups on: group0's old keys
//! (`raft/hard_state`, `raft/log/<index>`: [`DiskStorage::group0`]) and, for every other group,
//! its own key space (`raft/g<id>/hard_state`, `raft/g<id>/log/<index>`:
//! [`DiskStorage::for_group`]), so many groups share a node's disk and its sync (as they share a
//! commitlog upstream).
//!
//! Simplification: no snapshots and no log truncation yet; a restarted member re-reads and
//! re-applies its whole log (the cost is measured in BENCHMARKS.md). The `raft_groups` tables of
//! strongly consistent tablets (SPEC §7.1/§7.3, `crate::sc::storage`) implement the same trait
//! with a snapshot descriptor and a forward-only snapshot index on top.

use futures::future::LocalBoxFuture;
use sim::{Disk, DiskError, NodeId};

use super::core::HardState;
use super::log::Entry;
use super::GroupId;

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

/// [`RaftStorage`] on a node's disk: the hard state under one key, each entry under its own.
pub struct DiskStorage {
    disk: Disk,
    hard_state_key: String,
    log_prefix: String,
}

impl DiskStorage {
    /// group0's layout: `raft/hard_state`, `raft/log/<index>`.
    pub fn group0(disk: Disk) -> Self {
        DiskStorage {
            disk,
            hard_state_key: "raft/hard_state".into(),
            log_prefix: "raft/log/".into(),
        }
    }

    /// The layout of any group: group0's for [`GroupId::GROUP0`], else
    /// `raft/g<id>/hard_state`, `raft/g<id>/log/<index>`.
    pub fn for_group(disk: Disk, group: GroupId) -> Self {
        if group == GroupId::GROUP0 {
            return Self::group0(disk);
        }
        DiskStorage {
            disk,
            hard_state_key: format!("raft/g{}/hard_state", group.0),
            log_prefix: format!("raft/g{}/log/", group.0),
        }
    }

    fn log_key(&self, index: u64) -> String {
        format!("{}{index:020}", self.log_prefix)
    }
}

impl<C: Clone + 'static> RaftStorage<C> for DiskStorage {
    fn load_hard_state(&self) -> HardState {
        self.disk.get(&self.hard_state_key).unwrap_or_default()
    }

    fn load_log(&self) -> Vec<Entry<C>> {
        self.disk
            .scan::<Entry<C>>(&self.log_prefix)
            .into_iter()
            .map(|(_, e)| e)
            .collect()
    }

    fn store_hard_state(&self, hs: &HardState) {
        self.disk.put(&self.hard_state_key, hs.clone());
    }

    fn store_entries(&self, entries: &[Entry<C>]) {
        for w in entries.windows(2) {
            assert_eq!(w[1].index, w[0].index + 1, "stored entries are contiguous");
        }
        for e in entries {
            self.disk.put(&self.log_key(e.index), e.clone());
        }
    }

    fn remove_entries(&self, from: u64, to: u64) {
        assert!(from >= 1, "there is no entry 0");
        for i in from..=to {
            self.disk.delete(&self.log_key(i));
        }
    }

    fn sync(&self) -> LocalBoxFuture<'static, Result<(), DiskError>> {
        let disk = self.disk.clone();
        Box::pin(async move { disk.sync().await })
    }
}
