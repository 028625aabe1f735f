//! The storage engine of one node incarnation: every table of every shard, each a [`Table`]
//! persisted under its own directory of the node's simulated disk
//! (`st/<shard>/<table>/cl/…` for commitlog records, `st/<shard>/<table>/sst/…` for sstables).
//!
//! A table is opened on first use in an incarnation: its durable sstables and commitlog records
//! are read back ([`Table::recover`]); the recovery's own writes (the flushed memtable, the
//! deleted records) are buffered like any other write and made durable by the next sync. Since
//! the disk drops every unsynced write on a crash, and the engine of a crashed incarnation is
//! never handed out again, a crash loses exactly what was not synced.

use super::fragment::{Mutation, Run};
use super::table::{DiskOp, Table, TableConfig, COMMITLOG_PREFIX, SSTABLE_PREFIX};
use super::Keys;
use crate::schema::TableId;
use crate::topology::ids::ShardId;
use sim::{DiskError, NodeId, Sim};
use std::any::Any;
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Every value the engine puts on the disk, so that a key-only listing of `st/` is one typed
/// scan.
#[derive(Clone)]
struct Stored(Rc<dyn Any>);

/// Disk key prefix of every table.
pub const ROOT: &str = "st/";

fn dir(shard: ShardId, table: TableId) -> String {
    // `format!("{ROOT}{:03}/{:05}/", shard.0, table.0)` without the formatting machinery (once
    // per engine write: ~2 % of a topology swarm's instructions went to formatting it).
    let mut d = String::with_capacity(ROOT.len() + 12);
    d.push_str(ROOT);
    super::table::push_zero_padded(&mut d, u64::from(shard.0), 3);
    d.push('/');
    super::table::push_zero_padded(&mut d, u64::from(table.0), 5);
    d.push('/');
    d
}

/// `dir` followed by `key`.
fn join(dir: &str, key: &str) -> String {
    let mut k = String::with_capacity(dir.len() + key.len());
    k.push_str(dir);
    k.push_str(key);
    k
}

/// A shared, open table.
pub type TableRef<K> = Rc<RefCell<Table<K>>>;

/// The storage engine of one node incarnation.
pub struct Engine {
    sim: Sim,
    node: NodeId,
    incarnation: u32,
    /// False for a read-only view of a crashed node's disk (nothing is written back).
    live: bool,
    tables: RefCell<BTreeMap<(ShardId, TableId), Rc<dyn Any>>>,
}

#[derive(Default)]
struct Engines(RefCell<BTreeMap<NodeId, Rc<Engine>>>);

impl Engine {
    /// The engine of `node`'s current incarnation (a fresh one after a restart). For a node
    /// that is down, a read-only view of what its disk holds durably.
    pub fn of(sim: &Sim, node: NodeId) -> Rc<Engine> {
        let incarnation = sim.incarnation(node);
        if !sim.is_up(node) {
            return Rc::new(Engine {
                sim: sim.clone(),
                node,
                incarnation,
                live: false,
                tables: RefCell::new(BTreeMap::new()),
            });
        }
        let reg = sim.ext::<Engines>();
        if let Some(e) = reg.0.borrow().get(&node) {
            if e.incarnation == incarnation {
                return e.clone();
            }
        }
        let e = Rc::new(Engine {
            sim: sim.clone(),
            node,
            incarnation,
            live: true,
            tables: RefCell::new(BTreeMap::new()),
        });
        reg.0.borrow_mut().insert(node, e.clone());
        e
    }

    /// The node.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// Table `table` of `shard`, opened (recovered from disk) on first use with `cfg`.
    /// Panics if the table was opened with another key type.
    pub fn table<K: Keys>(&self, shard: ShardId, table: TableId, cfg: &TableConfig) -> TableRef<K> {
        if let Some(t) = self.tables.borrow().get(&(shard, table)) {
            return t
                .clone()
                .downcast::<RefCell<Table<K>>>()
                .unwrap_or_else(|_| {
                    panic!("{table} on shard {} opened with another key type", shard.0)
                });
        }
        let d = dir(shard, table);
        let disk = self.sim.disk(self.node);
        let mut ssts = Vec::new();
        let mut records = Vec::new();
        for (k, v) in disk.scan::<Stored>(&d) {
            let rel = k[d.len()..].to_string();
            if rel.starts_with(SSTABLE_PREFIX) {
                let run =
                    v.0.downcast::<Run<K>>()
                        .expect("sstable of the table's key type");
                ssts.push((rel, run));
            } else if rel.starts_with(COMMITLOG_PREFIX) {
                let m =
                    v.0.downcast_ref::<Mutation<K>>()
                        .expect("commitlog record of the table's key type")
                        .clone();
                records.push((rel, m));
            } else {
                panic!("unknown storage key {k}");
            }
        }
        let mut cfg = cfg.clone();
        cfg.persist &= self.live;
        cfg.keep_shadowed |= self
            .sim
            .mutant(super::table::MUTANT_COMPACTION_KEEPS_SHADOWED);
        let (t, ops) = Table::recover(cfg, ssts, records);
        if self.live {
            write_ops(&self.sim, self.node, &d, ops);
        }
        let t = Rc::new(RefCell::new(t));
        self.tables
            .borrow_mut()
            .insert((shard, table), t.clone() as Rc<dyn Any>);
        t
    }

    /// Applies `muts` to `table` (buffered: durable after [`Engine::sync`]).
    pub fn apply<K: Keys>(
        &self,
        t: &TableRef<K>,
        shard: ShardId,
        table: TableId,
        muts: Vec<Mutation<K>>,
    ) {
        assert!(
            self.live,
            "write to the storage of {}, which is down",
            self.node
        );
        let (ops, compaction_dropped): (Vec<DiskOp<K>>, bool) = {
            let mut t = t.borrow_mut();
            let before = t.stats().shadowed_dropped_by_compaction;
            let ops = muts.into_iter().flat_map(|m| t.apply(m)).collect();
            (ops, t.stats().shadowed_dropped_by_compaction > before)
        };
        if compaction_dropped {
            self.sim.mark("compaction dropped shadowed rows");
        }
        if self.stale() {
            return;
        }
        write_ops(&self.sim, self.node, &dir(shard, table), ops);
    }

    /// Has this engine's node incarnation ended (crashed, or restarted as a new one)? Code of
    /// a dead incarnation still holding the engine — a client task on the supervisor with a
    /// handle kept across the crash — must not reach the disk the next incarnation recovers
    /// from: a crashed process writes nothing. (`view.swarm` seed 3476: a stale group0 handle
    /// stored a term-1 log entry into the commitlog after the restart, and the node's next
    /// recovery replayed it over the entry the new leader had committed at that index.)
    fn stale(&self) -> bool {
        !self.sim.is_running(self.node, self.incarnation)
    }

    /// Writes a table operation's disk ops (buffered).
    pub fn write<K: Keys>(&self, shard: ShardId, table: TableId, ops: Vec<DiskOp<K>>) {
        assert!(
            self.live,
            "write to the storage of {}, which is down",
            self.node
        );
        if self.stale() {
            return;
        }
        write_ops(&self.sim, self.node, &dir(shard, table), ops);
    }

    /// Makes every buffered write of the node durable.
    pub async fn sync(&self) -> Result<(), DiskError> {
        self.sim.disk(self.node).sync().await
    }

    /// Every (shard, table) with data on the disk or open in this incarnation.
    pub fn tables_present(&self) -> BTreeSet<(ShardId, TableId)> {
        let mut out: BTreeSet<(ShardId, TableId)> = self.tables.borrow().keys().copied().collect();
        for k in self.sim.disk(self.node).dirs(ROOT, 2) {
            let mut it = k[ROOT.len()..].split('/');
            let shard = it.next().and_then(|s| s.parse().ok()).expect("shard dir");
            let table = it.next().and_then(|s| s.parse().ok()).expect("table dir");
            out.insert((ShardId(shard), TableId(table)));
        }
        out
    }
}

fn write_ops<K: Keys>(sim: &Sim, node: NodeId, dir: &str, ops: Vec<DiskOp<K>>) {
    let disk = sim.disk(node);
    for op in ops {
        match op {
            DiskOp::PutCommitlog { key, mutation } => {
                disk.put(join(dir, &key), Stored(Rc::new(mutation)))
            }
            DiskOp::PutSstable { key, run } => disk.put(join(dir, &key), Stored(run)),
            DiskOp::Delete { key } => disk.delete(join(dir, &key)),
        }
    }
}
