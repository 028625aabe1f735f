//! `raft_sys_table_storage` (upstream `service/raft/raft_sys_table_storage.*`): the persistence
//! of a Raft group member in system tables on the one storage engine ([`crate::storage`]), on
//! shard 0 of the node, with the tables' commitlogs. group0 persists through it.
//!
//! | table | partition | clustering | cells |
//! |---|---|---|---|
//! | `system.raft` | group id | log index (after the static row) | `term`, `data` (the entry); static: `vote_term`, `vote`, `commit_idx`, `snapshot_id` |
//! | `system.raft_snapshots` | group id | — | `snapshot_id`, `idx`, `term` |
//! | `system.raft_snapshot_config` | group id | `disposition`, `server_id` | `can_vote` |
//!
//! Behaviour kept from upstream:
//! - the hard state is the partition's static row: term and vote are written together, the
//!   commit index with them (upstream writes `commit_idx` on its own; both are static cells
//!   of the same row, and the model's row is one value, so it is rewritten whole);
//! - log entries are rows clustered by index (`store_log_entries`: one insert per entry);
//! - truncating a log suffix (`truncate_log`: `DELETE … WHERE index >= ?`) is ONE range
//!   tombstone, which later reads step over and count as a dead entry; entries written again
//!   at those indexes carry newer timestamps and win over it;
//! - a member that finds no `snapshot_id` bootstraps: it stores its initial configuration as a
//!   snapshot descriptor at index 0 (snapshot row, CURRENT config rows, then `snapshot_id`),
//!   buffered like every write.
//!
//! The trait's contract holds because every write is an engine mutation (a commitlog record
//! plus the memtable, flushes and compactions as sstables), buffered on the node's disk, and
//! [`RaftStorage::sync`] syncs that disk: a crash loses exactly what no sync covered, and the
//! next incarnation's engine recovers the tables from what was durable.
//!
//! Timestamps: the run's clock in ns, bumped past the last one issued and, after a restart,
//! past the newest timestamp the partition holds (tombstones included), so a later write or
//! delete of the same row always wins.
//!
//! Simplifications (none weakens a checker: the durability rules the raft checkers judge are
//! the trait's, and they are kept):
//! - no snapshots beyond the bootstrap descriptor and no log-tail truncation
//!   (`truncate_log_tail`): a restarted member re-reads and re-applies its whole log (the cost is
//!   measured in BENCHMARKS.md);
//! - the range tombstone of a truncated suffix is expressed in the engine's only shape ("from
//!   before every row to a bound") by ordering `system.raft`'s tombstone bound from the log's
//!   far end ([`FromEnd`]): it covers exactly the rows `index >= from`, never the static row;
//! - a joining node's bootstrap configuration is the voter set it was started with (upstream
//!   starts a joiner with an empty configuration and learns it from the leader).

use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use rand::Rng;
use sim::{DiskError, NodeId, Sim};

use super::core::HardState;
use super::log::Entry;
use super::storage::SnapshotDescriptor;
use super::{GroupId, RaftStorage};
use crate::schema::TableId;
use crate::storage::{Engine, Keys, Mutation, RangeTombstone, RtEnd, TableConfig, TableRef};
use crate::topology::ids::ShardId;

/// `system.raft`.
pub const RAFT_TABLE: TableId = TableId(crate::schema::RAFT_TABLES[0].0);
/// `system.raft_snapshots`.
pub const RAFT_SNAPSHOTS_TABLE: TableId = TableId(crate::schema::RAFT_TABLES[1].0);
/// `system.raft_snapshot_config`.
pub const RAFT_SNAPSHOT_CONFIG_TABLE: TableId = TableId(crate::schema::RAFT_TABLES[2].0);
/// The shard the tables live on (upstream: group0 runs on shard 0).
pub const RAFT_SHARD: ShardId = ShardId(0);

/// Clustering key of `system.raft`: the static row, then the entries by index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RaftCk {
    /// The static row (`vote_term`, `vote`, `commit_idx`, `snapshot_id`).
    Static,
    /// The entry at this index.
    Index(u64),
}

/// The bound range tombstones of `system.raft` are expressed in: the distance from the log's
/// far end (`u64::MAX - index`; the static row is at `u64::MAX`, beyond every entry), so a
/// tombstone "from before every row to `After(FromEnd::of(from))`" covers `index >= from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct FromEnd(pub u64);

impl FromEnd {
    /// The bound of the entry at `index`.
    pub fn of(index: u64) -> FromEnd {
        FromEnd(u64::MAX - index)
    }
}

/// The static cells of a group's `system.raft` partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftStatics {
    /// `vote_term`.
    pub vote_term: u64,
    /// `vote`.
    pub vote: Option<NodeId>,
    /// `commit_idx`.
    pub commit_idx: u64,
    /// `snapshot_id`.
    pub snapshot_id: Option<u64>,
}

/// A row of `system.raft`.
#[derive(Clone, Debug)]
pub enum RaftCell<C> {
    /// The static row.
    Statics(RaftStatics),
    /// A log entry (`term`, `data`), shared so that flushes and compactions copy no command.
    Entry(Rc<Entry<C>>),
}

/// Keys of `system.raft` for a group whose commands are `C`.
pub struct RaftKeys<C>(PhantomData<fn() -> C>);

impl<C> Clone for RaftKeys<C> {
    fn clone(&self) -> Self {
        RaftKeys(PhantomData)
    }
}

impl<C> Debug for RaftKeys<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftKeys")
    }
}

impl<C: Clone + Debug + 'static> Keys for RaftKeys<C> {
    /// The group id.
    type Pk = u64;
    type Ck = RaftCk;
    type Bound = FromEnd;
    type Cell = RaftCell<C>;
    fn bound_of(ck: &RaftCk) -> FromEnd {
        match ck {
            RaftCk::Static => FromEnd(u64::MAX),
            RaftCk::Index(i) => FromEnd::of(*i),
        }
    }
}

/// A `system.raft_snapshots` row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRow {
    /// `snapshot_id`.
    pub snapshot_id: u64,
    /// `idx`.
    pub idx: u64,
    /// `term`.
    pub term: u64,
}

/// Keys of `system.raft_snapshots`: one row per group.
#[derive(Clone, Copy, Debug)]
pub struct SnapshotKeys;

impl Keys for SnapshotKeys {
    type Pk = u64;
    type Ck = ();
    type Bound = ();
    type Cell = SnapshotRow;
    fn bound_of(_: &()) {}
}

/// `disposition` of a `system.raft_snapshot_config` row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Disposition {
    /// `CURRENT`.
    Current,
    /// `PREVIOUS`.
    Previous,
}

/// Keys of `system.raft_snapshot_config`: rows `(disposition, server_id)` → `can_vote`.
#[derive(Clone, Copy, Debug)]
pub struct ConfigKeys;

impl Keys for ConfigKeys {
    type Pk = u64;
    type Ck = (Disposition, NodeId);
    type Bound = ();
    type Cell = bool;
    fn bound_of(_: &(Disposition, NodeId)) {}
}

struct Inner<C: Clone + Debug + 'static> {
    sim: Sim,
    engine: Rc<Engine>,
    group: GroupId,
    raft: TableRef<RaftKeys<C>>,
    snapshots: TableRef<SnapshotKeys>,
    config: TableRef<ConfigKeys>,
    /// The static row as written (this member is its partition's only writer).
    statics: RefCell<RaftStatics>,
    /// Last stored log index (buffered writes included).
    log_last: Cell<u64>,
    last_ts: Cell<u64>,
}

/// The persistence of one group member in `system.raft*` on shard 0. Cheap to clone.
pub struct SysTableStorage<C: Clone + Debug + 'static> {
    inner: Rc<Inner<C>>,
}

impl<C: Clone + Debug + 'static> Clone for SysTableStorage<C> {
    fn clone(&self) -> Self {
        SysTableStorage {
            inner: self.inner.clone(),
        }
    }
}

impl<C: Clone + Debug + 'static> SysTableStorage<C> {
    /// Opens `group`'s partitions on `node`'s current incarnation (recovering the tables from
    /// the disk on their first use in it). A member with no stored `snapshot_id` bootstraps
    /// with `members` (all voters) as its configuration at index 0 (buffered).
    pub fn open(sim: &Sim, node: NodeId, group: GroupId, members: &[NodeId]) -> Self {
        let engine = Engine::of(sim, node);
        let cfg = TableConfig::default();
        let raft = engine.table::<RaftKeys<C>>(RAFT_SHARD, RAFT_TABLE, &cfg);
        let snapshots = engine.table::<SnapshotKeys>(RAFT_SHARD, RAFT_SNAPSHOTS_TABLE, &cfg);
        let config = engine.table::<ConfigKeys>(RAFT_SHARD, RAFT_SNAPSHOT_CONFIG_TABLE, &cfg);
        let pk = group.0;
        let floor = [
            raft.borrow().max_timestamp(&pk),
            snapshots.borrow().max_timestamp(&pk),
            config.borrow().max_timestamp(&pk),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
        let s = SysTableStorage {
            inner: Rc::new(Inner {
                sim: sim.clone(),
                engine,
                group,
                raft,
                snapshots,
                config,
                statics: RefCell::new(RaftStatics::default()),
                log_last: Cell::new(0),
                last_ts: Cell::new(floor),
            }),
        };
        let statics = s.read_statics();
        let bootstrap = statics.snapshot_id.is_none();
        *s.inner.statics.borrow_mut() = statics;
        let last = s.read_log().0.last().map_or(0, |e| e.index);
        s.inner.log_last.set(last);
        if bootstrap {
            s.bootstrap(members);
        }
        s
    }

    /// The group.
    pub fn group(&self) -> GroupId {
        self.inner.group
    }

    fn ts(&self) -> u64 {
        let ts = self.inner.sim.now().0.max(self.inner.last_ts.get() + 1);
        self.inner.last_ts.set(ts);
        ts
    }

    fn apply_raft(&self, muts: Vec<Mutation<RaftKeys<C>>>) {
        let i = &self.inner;
        i.engine.apply(&i.raft, RAFT_SHARD, RAFT_TABLE, muts);
    }

    /// The static row as the table holds it (a clustering slice of the static row only).
    pub fn read_statics(&self) -> RaftStatics {
        let (rows, _) = self
            .inner
            .raft
            .borrow()
            .read_rows(&self.inner.group.0, RaftCk::Static..=RaftCk::Static);
        match rows.into_iter().next().map(|r| r.data) {
            Some(RaftCell::Statics(s)) => s,
            Some(RaftCell::Entry(_)) => unreachable!("the static row holds the statics"),
            None => RaftStatics::default(),
        }
    }

    fn write_statics(&self, f: impl FnOnce(&mut RaftStatics)) {
        let data = {
            let mut s = self.inner.statics.borrow_mut();
            f(&mut s);
            s.clone()
        };
        let ts = self.ts();
        self.apply_raft(vec![Mutation::Insert {
            pk: self.inner.group.0,
            ck: RaftCk::Static,
            ts,
            data: RaftCell::Statics(data),
        }]);
    }

    /// upstream `bootstrap`: the initial configuration as a snapshot descriptor at index 0.
    fn bootstrap(&self, members: &[NodeId]) {
        let i = &self.inner;
        let pk = i.group.0;
        let id = i
            .sim
            .rng(&format!("raft/snapshot_id/g{}/{}", pk, i.engine.node()))
            .gen::<u64>()
            | 1;
        let ts = self.ts();
        i.engine.apply(
            &i.snapshots,
            RAFT_SHARD,
            RAFT_SNAPSHOTS_TABLE,
            vec![Mutation::Insert {
                pk,
                ck: (),
                ts,
                data: SnapshotRow {
                    snapshot_id: id,
                    idx: 0,
                    term: 0,
                },
            }],
        );
        let ts = self.ts();
        let mut muts = vec![Mutation::DeletePartition { pk, ts }];
        let ts = self.ts();
        for &m in members {
            muts.push(Mutation::Insert {
                pk,
                ck: (Disposition::Current, m),
                ts,
                data: true,
            });
        }
        i.engine
            .apply(&i.config, RAFT_SHARD, RAFT_SNAPSHOT_CONFIG_TABLE, muts);
        self.write_statics(|s| s.snapshot_id = Some(id));
    }

    /// The stored snapshot descriptor: none until `snapshot_id` is set.
    pub fn load_snapshot_descriptor(&self) -> Option<SnapshotDescriptor> {
        let id = self.read_statics().snapshot_id?;
        let pk = self.inner.group.0;
        let (rows, _) = self.inner.snapshots.borrow().read_partition(&pk);
        let row = rows.into_iter().next()?.data;
        assert_eq!(row.snapshot_id, id, "snapshot_id matches its row");
        let (cfg, _) = self.inner.config.borrow().read_partition(&pk);
        let members = |d: Disposition| cfg.iter().filter(|r| r.ck.0 == d).map(|r| r.ck.1).collect();
        Some(SnapshotDescriptor {
            id,
            idx: row.idx,
            term: row.term,
            current: members(Disposition::Current),
            previous: members(Disposition::Previous),
        })
    }

    /// Range tombstones a read of the group's `system.raft` partition walks.
    pub fn range_tombstones(&self) -> usize {
        self.inner
            .raft
            .borrow()
            .range_tombstone_count(&self.inner.group.0)
    }

    /// Reads the log and counts the walk: (entries, dead entries stepped over).
    pub fn read_log(&self) -> (Vec<Entry<C>>, u64) {
        let (rows, cost) = self
            .inner
            .raft
            .borrow()
            .read_rows(&self.inner.group.0, RaftCk::Index(1)..);
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let RaftCell::Entry(e) = r.data else {
                unreachable!("entry rows hold entries")
            };
            // The log the shell recovers is contiguous from index 1.
            if e.index != out.len() as u64 + 1 {
                break;
            }
            out.push((*e).clone());
        }
        (out, cost.dead)
    }
}

impl<C: Clone + Debug + 'static> RaftStorage<C> for SysTableStorage<C> {
    fn load_hard_state(&self) -> HardState {
        let s = self.read_statics();
        HardState {
            term: s.vote_term,
            vote: s.vote,
            commit: s.commit_idx,
        }
    }

    fn load_log(&self) -> Vec<Entry<C>> {
        self.read_log().0
    }

    fn store_hard_state(&self, hs: &HardState) {
        self.write_statics(|s| {
            s.vote_term = hs.term;
            s.vote = hs.vote;
            s.commit_idx = hs.commit;
        });
    }

    fn store_entries(&self, entries: &[Entry<C>]) {
        for w in entries.windows(2) {
            assert_eq!(w[1].index, w[0].index + 1, "stored entries are contiguous");
        }
        let pk = self.inner.group.0;
        let muts = entries
            .iter()
            .map(|e| Mutation::Insert {
                pk,
                ck: RaftCk::Index(e.index),
                ts: self.ts(),
                data: RaftCell::Entry(Rc::new(e.clone())),
            })
            .collect();
        self.apply_raft(muts);
        if let Some(last) = entries.last() {
            let l = &self.inner.log_last;
            l.set(l.get().max(last.index));
        }
    }

    /// `truncate_log(from)`: one range tombstone over `index >= from`. The shell only ever
    /// removes the whole stored suffix, so `to` is the last stored index.
    fn remove_entries(&self, from: u64, to: u64) {
        assert!(from >= 1, "there is no entry 0");
        assert!(
            from <= to && to == self.inner.log_last.get(),
            "a truncated suffix ends at the last stored entry"
        );
        self.inner.log_last.set(from - 1);
        let ts = self.ts();
        self.apply_raft(vec![Mutation::DeleteRange {
            pk: self.inner.group.0,
            rt: RangeTombstone {
                end: RtEnd::After(FromEnd::of(from)),
                ts,
            },
        }]);
    }

    fn sync(&self) -> LocalBoxFuture<'static, Result<(), DiskError>> {
        let engine = self.inner.engine.clone();
        Box::pin(async move { engine.sync().await })
    }
}
