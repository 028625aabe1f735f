//! `system.batchlog` and `system.batchlog_v2` on the cluster's one storage engine
//! ([`crate::storage`]): their key types, the aliases the replay core uses, and
//! [`BatchlogTables`], the pair of tables of one node (on shard 0, where the batchlog manager
//! runs).
//!
//! Both tables share one key type: a [`PartitionKey`] names its layout (`V1(id)` rows live in
//! `system.batchlog`, `V2 {..}` rows in `system.batchlog_v2`), and [`BatchlogTables::apply`]
//! routes each mutation to its table. Each table has its own commitlog, so tombstone GC of one
//! is held back only by its own records (SPEC §5.10).

use super::types::{ClusteringKey, PartitionKey, Payload};
use crate::schema::TableId;
use crate::storage::{self, Engine, Keys, TableRef};
use crate::topology::ids::ShardId;
use sim::{NodeId, Sim};
use std::cell::Ref;
use std::rc::Rc;

pub use crate::storage::{ScanCost, TableConfig, TableStats};

/// Keys of the batchlog tables: `(written_at, id)` rows; range tombstones bounded by a
/// `written_at` prefix.
#[derive(Clone, Copy, Debug)]
pub struct BatchlogKeys;

impl Keys for BatchlogKeys {
    type Pk = PartitionKey;
    type Ck = ClusteringKey;
    type Bound = u64;
    type Cell = Payload;
    fn bound_of(ck: &ClusteringKey) -> u64 {
        ck.written_at
    }
}

/// A batchlog table.
pub type Table = storage::Table<BatchlogKeys>;
/// A write to a batchlog table.
pub type Mutation = storage::Mutation<BatchlogKeys>;
/// A run (memtable or sstable) of a batchlog table.
pub type Run = storage::Run<BatchlogKeys>;
/// A disk write of a batchlog table.
pub type DiskOp = storage::DiskOp<BatchlogKeys>;
/// A live batchlog row.
pub type LiveRow = storage::LiveRow<BatchlogKeys>;
/// The end of a cleanup range tombstone (a `written_at` prefix).
pub type RtEnd = storage::RtEnd<u64>;
/// A cleanup range tombstone.
pub type RangeTombstone = storage::RangeTombstone<u64>;

impl storage::RtEnd<u64> {
    /// Does a tombstone with this end cover the row `ck`?
    pub fn covers(self, ck: &ClusteringKey) -> bool {
        self.covers_bound(ck.written_at)
    }
}

/// The `system.batchlog` table id.
pub const V1_TABLE: TableId = TableId(3);
/// The `system.batchlog_v2` table id.
pub const V2_TABLE: TableId = TableId(4);
/// The shard the batchlog tables live on.
pub const BATCHLOG_SHARD: ShardId = ShardId(0);

/// What the replay core reads from a node's batchlog.
pub trait BatchlogRead {
    /// One v2 partition, with the cost of the walk.
    fn read_partition(&self, pk: &PartitionKey) -> (Vec<LiveRow>, ScanCost);
    /// Every live v1 row (the v1 replay scan), with the cost of the walk.
    fn scan_v1(&self) -> (Vec<LiveRow>, ScanCost);
    /// Every live row of either table.
    fn live_rows(&self) -> Vec<LiveRow>;
}

/// A single table holding rows of either layout (the pure benchmarks and unit tests).
impl BatchlogRead for Table {
    fn read_partition(&self, pk: &PartitionKey) -> (Vec<LiveRow>, ScanCost) {
        Table::read_partition(self, pk)
    }
    fn scan_v1(&self) -> (Vec<LiveRow>, ScanCost) {
        let (rows, cost) = self.scan_all();
        let rows = rows
            .into_iter()
            .filter(|r| matches!(r.pk, PartitionKey::V1(_)))
            .collect();
        (rows, cost)
    }
    fn live_rows(&self) -> Vec<LiveRow> {
        Table::live_rows(self)
    }
}

/// Both batchlog tables of one node incarnation, on the node's storage engine.
pub struct BatchlogTables {
    engine: Rc<Engine>,
    v1: TableRef<BatchlogKeys>,
    v2: TableRef<BatchlogKeys>,
}

/// A read view of both tables.
pub struct BatchlogView<'a> {
    v1: Ref<'a, Table>,
    v2: Ref<'a, Table>,
}

impl BatchlogRead for BatchlogView<'_> {
    fn read_partition(&self, pk: &PartitionKey) -> (Vec<LiveRow>, ScanCost) {
        match pk {
            PartitionKey::V1(_) => self.v1.read_partition(pk),
            PartitionKey::V2 { .. } => self.v2.read_partition(pk),
        }
    }
    fn scan_v1(&self) -> (Vec<LiveRow>, ScanCost) {
        self.v1.scan_all()
    }
    fn live_rows(&self) -> Vec<LiveRow> {
        let mut rows = self.v1.live_rows();
        rows.extend(self.v2.live_rows());
        rows
    }
}

impl BatchlogTables {
    /// Opens (recovering from disk) the batchlog tables of `node`'s current incarnation.
    pub fn open(sim: &Sim, node: NodeId, cfg: &TableConfig) -> BatchlogTables {
        let engine = Engine::of(sim, node);
        BatchlogTables {
            v1: engine.table(BATCHLOG_SHARD, V1_TABLE, cfg),
            v2: engine.table(BATCHLOG_SHARD, V2_TABLE, cfg),
            engine,
        }
    }

    /// A read view of both tables.
    pub fn view(&self) -> BatchlogView<'_> {
        BatchlogView {
            v1: self.v1.borrow(),
            v2: self.v2.borrow(),
        }
    }

    /// Applies `muts` in order, each to the table of its layout (buffered until
    /// [`BatchlogTables::sync`]).
    pub fn apply(&self, muts: Vec<Mutation>) {
        for m in muts {
            let (t, id) = match m.pk() {
                PartitionKey::V1(_) => (&self.v1, V1_TABLE),
                PartitionKey::V2 { .. } => (&self.v2, V2_TABLE),
            };
            self.engine.apply(t, BATCHLOG_SHARD, id, vec![m]);
        }
    }

    /// Makes the buffered writes durable.
    pub async fn sync(&self) -> Result<(), sim::DiskError> {
        self.engine.sync().await
    }

    /// Sstables, memtable fragments and background-work counters over both tables.
    pub fn shape(&self) -> (usize, usize, TableStats) {
        let (a, b) = (self.v1.borrow(), self.v2.borrow());
        let mut stats = a.stats();
        stats.add(b.stats());
        (
            a.sstable_count() + b.sstable_count(),
            a.memtable_fragments() + b.memtable_fragments(),
            stats,
        )
    }
}
