//! The Raft-group tables on the shared storage engine ([`crate::storage`]): each shard of a
//! node has its own instance of each table (memtable, sstables, commitlog under
//! `st/<shard>/<table>/`), so a row written to shard 2 is found only by a read of shard 2.
//!
//! [`ShardStore`] is the small interface the Raft-group storage uses (put / get / scan /
//! delete of a partition's rows, sync); this file is the adapter onto [`Engine`]. Partitions
//! are keyed by (token, serialized partition key), so they sort in token order as upstream's
//! do; rows by their clustering key; a row's cells are its JSON form (one value per row, as
//! the engine models cells). Every write is one engine mutation with a timestamp that only
//! grows (the run's clock in ns, bumped past the last one issued), so a later write or delete
//! of the same row always wins.
//!
//! Log entries are rows of `raft_groups` keyed by index (the layout the feature first landed
//! with; upstream now keeps them in the shard's commitlog as special entries, which this
//! engine's per-table commitlog stands for: a synced entry survives a crash either way).

use crate::dht::Token;
use crate::schema::TableId;
use crate::storage::{Engine, Keys, Mutation, TableConfig, TableRef};
use crate::topology::ids::ShardId;
use futures::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sim::{DiskError, NodeId, Sim};
use std::cell::Cell;
use std::rc::Rc;

/// Keys of the Raft-group tables on the engine.
#[derive(Clone, Debug)]
pub struct RaftGroupKeys;

impl Keys for RaftGroupKeys {
    /// (token, serialized `(shard, group_id)`).
    type Pk = (Token, Vec<u8>);
    /// The clustering key (`""` for the static row).
    type Ck = String;
    type Bound = ();
    /// The row, as JSON.
    type Cell = serde_json::Value;
    fn bound_of(_: &String) {}
}

/// The Raft-group rows of one node incarnation, per shard.
#[derive(Clone)]
pub struct ShardStore {
    sim: Sim,
    engine: Rc<Engine>,
    last_ts: Rc<Cell<u64>>,
}

fn table_id(table: &str) -> TableId {
    let id = crate::schema::RAFT_GROUP_TABLES
        .iter()
        .find(|(_, n)| *n == table)
        .unwrap_or_else(|| panic!("{table} is not a Raft-group table"))
        .0;
    TableId(id)
}

impl ShardStore {
    /// The store of `node`'s current incarnation.
    pub fn new(sim: &Sim, node: NodeId) -> Self {
        ShardStore {
            sim: sim.clone(),
            engine: Engine::of(sim, node),
            last_ts: Rc::new(Cell::new(0)),
        }
    }

    fn table(&self, shard: u32, table: &str) -> (TableRef<RaftGroupKeys>, ShardId, TableId) {
        let (s, t) = (ShardId(shard), table_id(table));
        (
            self.engine
                .table::<RaftGroupKeys>(s, t, &TableConfig::default()),
            s,
            t,
        )
    }

    fn ts(&self) -> u64 {
        let ts = self.sim.now().0.max(self.last_ts.get() + 1);
        self.last_ts.set(ts);
        ts
    }

    fn apply(&self, shard: u32, table: &str, m: Mutation<RaftGroupKeys>) {
        let (t, s, id) = self.table(shard, table);
        self.engine.apply(&t, s, id, vec![m]);
    }

    /// Buffers a write of row `ck` of partition (`token`, `pk`) of `table` on `shard`.
    pub fn put<T: Serialize>(
        &self,
        shard: u32,
        table: &str,
        token: Token,
        pk: &[u8],
        ck: &str,
        row: T,
    ) {
        let data = serde_json::to_value(row).expect("rows serialise");
        let ts = self.ts();
        self.apply(
            shard,
            table,
            Mutation::Insert {
                pk: (token, pk.to_vec()),
                ck: ck.to_string(),
                ts,
                data,
            },
        );
    }

    /// Row `ck` of the partition on `shard`, seeing unsynced writes.
    pub fn get<T: DeserializeOwned>(
        &self,
        shard: u32,
        table: &str,
        token: Token,
        pk: &[u8],
        ck: &str,
    ) -> Option<T> {
        let (t, _, _) = self.table(shard, table);
        let (rows, _cost) = t.borrow().read_partition(&(token, pk.to_vec()));
        rows.into_iter()
            .find(|r| r.ck == ck)
            .map(|r| serde_json::from_value(r.data).expect("a row of the table's type"))
    }

    /// Every row of the partition on `shard`, in clustering order.
    pub fn scan<T: DeserializeOwned>(
        &self,
        shard: u32,
        table: &str,
        token: Token,
        pk: &[u8],
    ) -> Vec<(String, T)> {
        let (t, _, _) = self.table(shard, table);
        let (rows, _cost) = t.borrow().read_partition(&(token, pk.to_vec()));
        rows.into_iter()
            .map(|r| {
                let v = serde_json::from_value(r.data).expect("a row of the table's type");
                (r.ck, v)
            })
            .collect()
    }

    /// The rows of the partition on `shard` whose clustering key starts with `prefix`.
    pub fn scan_prefix<T: DeserializeOwned>(
        &self,
        shard: u32,
        table: &str,
        token: Token,
        pk: &[u8],
        prefix: &str,
    ) -> Vec<(String, T)> {
        let (t, _, _) = self.table(shard, table);
        let (rows, _cost) = t.borrow().read_partition(&(token, pk.to_vec()));
        rows.into_iter()
            .filter(|r| r.ck.starts_with(prefix))
            .map(|r| {
                let v = serde_json::from_value(r.data).expect("a row of the table's type");
                (r.ck, v)
            })
            .collect()
    }

    /// Buffers the delete of row `ck`.
    pub fn delete(&self, shard: u32, table: &str, token: Token, pk: &[u8], ck: &str) {
        let ts = self.ts();
        self.apply(
            shard,
            table,
            Mutation::DeleteRow {
                pk: (token, pk.to_vec()),
                ck: ck.to_string(),
                ts,
            },
        );
    }

    /// Buffers the delete of every row of the partition on `shard`.
    pub fn delete_partition(&self, shard: u32, table: &str, token: Token, pk: &[u8]) {
        let ts = self.ts();
        self.apply(
            shard,
            table,
            Mutation::DeletePartition {
                pk: (token, pk.to_vec()),
                ts,
            },
        );
    }

    /// Makes every buffered write of the node durable.
    pub fn sync(&self) -> LocalBoxFuture<'static, Result<(), DiskError>> {
        let engine = self.engine.clone();
        Box::pin(async move { engine.sync().await })
    }
}
