//! `raft_groups_storage` (upstream `service/strong_consistency/raft_groups_storage.*`, SPEC
//! §7.3): the persistence of one strongly consistent tablet's Raft server, implementing the
//! shell's [`RaftStorage`] trait on the Raft-group tables of the server's shard.
//!
//! Every read and write addresses the group's partition `(shard, group_id)` and goes through
//! the routing of [`GroupPartition`] (the fixed-shard sharder), so the metadata stays on the
//! shard the server runs on. Behaviour kept from upstream:
//! - writes are linearised: the trait's buffered writes apply in call order, and the
//!   multi-step snapshot descriptor write holds a chain lock (upstream: a chain of pending
//!   futures) so two descriptor writes never interleave;
//! - a new group stores its initial configuration (the tablet's replicas, all voters) as a
//!   snapshot descriptor at index 0 ([`RaftGroupsStorage::bootstrap`]);
//! - a snapshot descriptor is stored by (1) inserting the snapshot row, (2) deleting every
//!   config row and inserting the CURRENT and PREVIOUS members, (3) updating `snapshot_id`,
//!   (4) truncating the log tail;
//! - [`RaftGroupsStorage::store_snapshot_index`] only moves the index forward and writes both
//!   tables in one unlogged batch (two buffered writes with no suspension point between).
//!
//! Every successful sync records the state it made durable ([`ScEvent::Durable`], only when it
//! changed), which is what the persistence checker compares the next incarnation's
//! [`ScEvent::Loaded`] with.

use super::events::ScEvent;
use super::store::ShardStore;
use super::tables::{
    ConfigRow, GroupPartition, GroupStatics, SnapshotRow, COMMITLOG, RAFT_GROUPS,
    RAFT_GROUPS_SNAPSHOTS, RAFT_GROUPS_SNAPSHOT_CONFIG,
};
use crate::raft::core::HardState;
use crate::raft::log::Entry;
pub use crate::raft::storage::SnapshotDescriptor;
use crate::raft::{GroupId, RaftStorage};
use futures::future::LocalBoxFuture;
use rand::Rng;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sim::{DiskError, NodeId, Sim};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Tracked {
    term: u64,
    vote: Option<NodeId>,
    commit: u64,
    snapshot_idx: u64,
    log_last: u64,
}

struct Inner {
    sim: Sim,
    node: NodeId,
    inc: u32,
    part: GroupPartition,
    store: ShardStore,
    chain: futures::lock::Mutex<()>,
    tracked: RefCell<Tracked>,
    durable: Cell<Option<Tracked>>,
}

/// The storage of one group's server on one shard. Cheap to clone (one shared state).
#[derive(Clone)]
pub struct RaftGroupsStorage {
    inner: Rc<Inner>,
}

fn index_ck(index: u64) -> String {
    // After the static row (""), in index order.
    format!("i{index:020}")
}

impl RaftGroupsStorage {
    /// Opens the storage of `part.group`'s server on `node` (incarnation `inc`), recording
    /// where its partition is routed. `C` is the group's command type (of its log entries).
    pub fn open<C: Clone + Serialize + DeserializeOwned + 'static>(
        sim: &Sim,
        node: NodeId,
        inc: u32,
        store: ShardStore,
        part: GroupPartition,
    ) -> Self {
        sim.record(
            Some(node),
            ScEvent::MetaPlaced {
                g: part.group,
                inc,
                server_shard: part.server_shard,
                key_shard: part.key_shard as u32,
                token: part.write_token.0,
                write_shards: part.write_shards.clone(),
                read_token: part.read_token.0,
                read_shard: part.read_shard,
            },
        );
        let s = RaftGroupsStorage {
            inner: Rc::new(Inner {
                sim: sim.clone(),
                node,
                inc,
                part,
                store,
                chain: futures::lock::Mutex::new(()),
                tracked: RefCell::new(Tracked::default()),
                durable: Cell::new(None),
            }),
        };
        let statics = s.statics();
        let snapshot_idx = s.snapshot_row().map_or(0, |r| r.idx);
        let log_last = RaftStorage::<C>::load_log(&s)
            .last()
            .map_or(0, |e: &Entry<C>| e.index);
        let t = Tracked {
            term: statics.vote_term,
            vote: statics.vote,
            commit: statics.commit_idx,
            snapshot_idx,
            log_last,
        };
        *s.inner.tracked.borrow_mut() = t;
        s.inner.durable.set(Some(t));
        s
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.inner.part.group
    }

    /// Where the partition is routed.
    pub fn partition(&self) -> &GroupPartition {
        &self.inner.part
    }

    fn read<T: DeserializeOwned>(&self, table: &str, ck: &str) -> Option<T> {
        let p = &self.inner.part;
        self.inner
            .store
            .get(p.read_shard, table, p.read_token, &p.key, ck)
    }

    fn write<T: Serialize + Clone>(&self, table: &str, ck: &str, row: T) {
        let p = &self.inner.part;
        for &shard in &p.write_shards {
            self.inner
                .store
                .put(shard, table, p.write_token, &p.key, ck, row.clone());
        }
    }

    fn statics(&self) -> GroupStatics {
        self.read(RAFT_GROUPS, "").unwrap_or_default()
    }

    fn update_statics(&self, f: impl FnOnce(&mut GroupStatics)) {
        let mut s = self.statics();
        f(&mut s);
        self.write(RAFT_GROUPS, "", s);
    }

    fn snapshot_row(&self) -> Option<SnapshotRow> {
        self.read(RAFT_GROUPS_SNAPSHOTS, "")
    }

    /// The stored snapshot descriptor: none until `snapshot_id` is set.
    pub fn load_snapshot_descriptor(&self) -> Option<SnapshotDescriptor> {
        let id = self.statics().snapshot_id?;
        let row = self.snapshot_row()?;
        assert_eq!(row.snapshot_id, id, "snapshot_id matches its row");
        let p = &self.inner.part;
        let rows: Vec<(String, ConfigRow)> = self.inner.store.scan(
            p.read_shard,
            RAFT_GROUPS_SNAPSHOT_CONFIG,
            p.read_token,
            &p.key,
        );
        let members = |d: &str| {
            rows.iter()
                .filter(|(_, r)| r.disposition == d)
                .map(|(_, r)| r.server_id)
                .collect()
        };
        Some(SnapshotDescriptor {
            id,
            idx: row.idx,
            term: row.term,
            current: members("CURRENT"),
            previous: members("PREVIOUS"),
        })
    }

    /// Stores a snapshot descriptor (SPEC §7.3's four steps, in order), keeping the
    /// `preserve_log_entries` entries before its index.
    pub async fn store_snapshot_descriptor(
        &self,
        snap: &SnapshotDescriptor,
        preserve_log_entries: u64,
    ) {
        let _turn = self.inner.chain.lock().await;
        // 1. The snapshot row.
        self.write(
            RAFT_GROUPS_SNAPSHOTS,
            "",
            SnapshotRow {
                snapshot_id: snap.id,
                idx: snap.idx,
                term: snap.term,
            },
        );
        // 2. Old configuration rows out, CURRENT and PREVIOUS in.
        let p = &self.inner.part;
        for &shard in &p.write_shards {
            self.inner.store.delete_partition(
                shard,
                RAFT_GROUPS_SNAPSHOT_CONFIG,
                p.write_token,
                &p.key,
            );
        }
        for (disposition, members) in [("CURRENT", &snap.current), ("PREVIOUS", &snap.previous)] {
            for &m in members {
                let row = ConfigRow {
                    disposition: disposition.into(),
                    server_id: m,
                    can_vote: true,
                };
                self.write(
                    RAFT_GROUPS_SNAPSHOT_CONFIG,
                    &format!("{disposition}/{m}"),
                    row,
                );
            }
        }
        // 3. snapshot_id.
        self.update_statics(|s| s.snapshot_id = Some(snap.id));
        // 4. The log tail the snapshot covers.
        let tail_end = snap.idx.saturating_sub(preserve_log_entries);
        for i in 1..=tail_end {
            for &shard in &p.write_shards {
                self.inner
                    .store
                    .delete(shard, COMMITLOG, p.write_token, &p.key, &index_ck(i));
            }
        }
        let mut t = self.inner.tracked.borrow_mut();
        t.snapshot_idx = snap.idx;
    }

    /// A new group's first state: its initial configuration (`members`, all voters) as a
    /// snapshot descriptor at index 0.
    pub async fn bootstrap(&self, members: Vec<NodeId>) {
        let id = self.new_snapshot_id();
        let snap = SnapshotDescriptor {
            id,
            idx: 0,
            term: 0,
            current: members,
            previous: Vec::new(),
        };
        self.store_snapshot_descriptor(&snap, 0).await;
    }

    fn new_snapshot_id(&self) -> u64 {
        let p = &self.inner.part;
        let stream = format!("sc/snapshot_id/g{}/s{}", p.group.0, p.server_shard);
        self.inner.sim.rng(&stream).gen::<u64>() | 1
    }

    /// Moves the stored snapshot index forward to `idx` (never back): the snapshot row and
    /// `snapshot_id` in one unlogged batch. Returns whether it moved.
    pub async fn store_snapshot_index(&self, idx: u64, term: u64) -> bool {
        let _turn = self.inner.chain.lock().await;
        if self.snapshot_row().is_some_and(|r| r.idx >= idx) {
            return false;
        }
        let id = self.new_snapshot_id() ^ idx;
        self.write(
            RAFT_GROUPS_SNAPSHOTS,
            "",
            SnapshotRow {
                snapshot_id: id,
                idx,
                term,
            },
        );
        self.update_statics(|s| s.snapshot_id = Some(id));
        self.inner.tracked.borrow_mut().snapshot_idx = idx;
        true
    }

    /// The state the storage holds now, as a [`ScEvent::Loaded`] of a server on `shard`.
    pub fn loaded_event(&self, bootstrapped: bool) -> ScEvent {
        let t = *self.inner.tracked.borrow();
        ScEvent::Loaded {
            g: self.group(),
            inc: self.inner.inc,
            shard: self.inner.part.server_shard,
            term: t.term,
            vote: t.vote,
            commit: t.commit,
            snapshot_idx: t.snapshot_idx,
            log_last: t.log_last,
            bootstrapped,
        }
    }
}

impl<C: Clone + Serialize + DeserializeOwned + 'static> RaftStorage<C> for RaftGroupsStorage {
    fn load_hard_state(&self) -> HardState {
        let s = self.statics();
        HardState {
            term: s.vote_term,
            vote: s.vote,
            commit: s.commit_idx,
        }
    }

    fn load_log(&self) -> Vec<Entry<C>> {
        let p = &self.inner.part;
        let rows: Vec<(String, Entry<C>)> =
            self.inner
                .store
                .scan_prefix(p.read_shard, COMMITLOG, p.read_token, &p.key, "i");
        // The log the shell recovers is contiguous from index 1.
        rows.into_iter()
            .map(|(_, e)| e)
            .enumerate()
            .take_while(|(i, e)| e.index == *i as u64 + 1)
            .map(|(_, e)| e)
            .collect()
    }

    fn store_hard_state(&self, hs: &HardState) {
        self.update_statics(|s| {
            s.vote_term = hs.term;
            s.vote = hs.vote;
            s.commit_idx = hs.commit;
        });
        let mut t = self.inner.tracked.borrow_mut();
        t.term = hs.term;
        t.vote = hs.vote;
        t.commit = hs.commit;
    }

    fn store_entries(&self, entries: &[Entry<C>]) {
        for w in entries.windows(2) {
            assert_eq!(w[1].index, w[0].index + 1, "stored entries are contiguous");
        }
        for e in entries {
            self.write(COMMITLOG, &index_ck(e.index), e.clone());
        }
        if let Some(last) = entries.last() {
            let mut t = self.inner.tracked.borrow_mut();
            t.log_last = t.log_last.max(last.index);
        }
    }

    fn remove_entries(&self, from: u64, to: u64) {
        assert!(from >= 1, "there is no entry 0");
        let p = &self.inner.part;
        for i in from..=to {
            for &shard in &p.write_shards {
                self.inner
                    .store
                    .delete(shard, COMMITLOG, p.write_token, &p.key, &index_ck(i));
            }
        }
        let mut t = self.inner.tracked.borrow_mut();
        t.log_last = t.log_last.min(from - 1);
    }

    fn sync(&self) -> LocalBoxFuture<'static, Result<(), DiskError>> {
        let inner = self.inner.clone();
        let sync = inner.store.sync();
        Box::pin(async move {
            sync.await?;
            // A sync makes every buffered write of the node durable at once.
            let t = *inner.tracked.borrow();
            if inner.durable.get() != Some(t) {
                inner.durable.set(Some(t));
                inner.sim.record(
                    Some(inner.node),
                    ScEvent::Durable {
                        g: inner.part.group,
                        inc: inner.inc,
                        term: t.term,
                        vote: t.vote,
                        commit: t.commit,
                        snapshot_idx: t.snapshot_idx,
                        log_last: t.log_last,
                    },
                );
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sc::tables::Routing;
    use sim::NetConfig;

    fn with_storage(
        mutants: &[&str],
        f: impl FnOnce(
                Sim,
                Box<dyn Fn(u32, u32) -> RaftGroupsStorage>,
            ) -> futures::future::LocalBoxFuture<'static, ()>
            + 'static,
    ) {
        let mutants: Vec<String> = mutants.iter().map(|s| s.to_string()).collect();
        let out = sim::runtime::run_seed(1, move |history| async move {
            let sim = Sim::new(1, &mutants, NetConfig::default(), history);
            let n = sim.add_node(|_ctx| Box::pin(std::future::pending::<()>()));
            assert_eq!(n, NodeId(1));
            sim::time::sleep(sim::time::Duration::from_millis(1)).await;
            let s2 = sim.clone();
            let open = Box::new(move |shard: u32, count: u32| {
                let part = GroupPartition::route(Routing::of(&s2), GroupId(42), shard, count);
                RaftGroupsStorage::open::<u32>(
                    &s2,
                    NodeId(1),
                    0,
                    ShardStore::new(&s2, NodeId(1)),
                    part,
                )
            });
            f(sim.clone(), open).await;
            sim.teardown();
        });
        out.result.expect("test body");
    }

    fn entry(index: u64, term: u64) -> Entry<u32> {
        Entry {
            index,
            term,
            cmd: Some(index as u32),
        }
    }

    #[test]
    fn bootstrap_snapshot_index_and_reopen() {
        with_storage(&[], |_sim, open| {
            Box::pin(async move {
                let s = open(2, 4);
                assert!(s.load_snapshot_descriptor().is_none());
                s.bootstrap(vec![NodeId(1), NodeId(2), NodeId(3)]).await;
                let d = s.load_snapshot_descriptor().expect("stored");
                assert_eq!((d.idx, d.term), (0, 0));
                assert_eq!(d.current, vec![NodeId(1), NodeId(2), NodeId(3)]);
                assert!(d.previous.is_empty());
                let hs = HardState {
                    term: 3,
                    vote: Some(NodeId(2)),
                    commit: 2,
                };
                RaftStorage::<u32>::store_hard_state(&s, &hs);
                RaftStorage::<u32>::store_entries(&s, &[entry(1, 1), entry(2, 3), entry(3, 3)]);
                RaftStorage::<u32>::remove_entries(&s, 3, 3);
                RaftStorage::<u32>::sync(&s).await.expect("sync");
                // Forward only.
                assert!(s.store_snapshot_index(2, 3).await);
                assert!(!s.store_snapshot_index(1, 1).await);
                assert!(!s.store_snapshot_index(2, 3).await);
                // A second descriptor replaces the configuration rows.
                let d2 = SnapshotDescriptor {
                    id: 99,
                    idx: 2,
                    term: 3,
                    current: vec![NodeId(2)],
                    previous: vec![NodeId(1)],
                };
                s.store_snapshot_descriptor(&d2, 2).await;
                // A new instance (a restart with more shards) reads it all back.
                let again = open(2, 8);
                assert_eq!(RaftStorage::<u32>::load_hard_state(&again), hs);
                let log = RaftStorage::<u32>::load_log(&again);
                assert_eq!(log, vec![entry(1, 1), entry(2, 3)]);
                assert_eq!(again.load_snapshot_descriptor(), Some(d2));
                // Another shard's server of the same group sees nothing of it.
                let other = open(1, 8);
                assert_eq!(
                    RaftStorage::<u32>::load_hard_state(&other),
                    HardState::default()
                );
            })
        });
    }

    #[test]
    fn bypassing_the_sharder_loses_the_state_on_reopen() {
        with_storage(&[crate::sc::MUTANT_RAFT_BYPASSES_SHARDER], |_sim, open| {
            Box::pin(async move {
                let s = open(1, 2);
                let hs = HardState {
                    term: 5,
                    vote: None,
                    commit: 0,
                };
                RaftStorage::<u32>::store_hard_state(&s, &hs);
                let again = open(1, 2);
                assert_eq!(
                    RaftStorage::<u32>::load_hard_state(&again),
                    HardState::default()
                );
            })
        });
    }
}
