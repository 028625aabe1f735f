//! A small cluster for the batchlog: N nodes, each with a data plane (user tables, keys placed
//! on replicas by a fixed token ring), a write RPC, and a node-local batchlog table persisted on
//! the node's simulated disk. Replication and batchlog writes travel over `sim.net()`, so
//! network and crash faults hit them.
//!
//! It does not depend on the topology or group0 models: placement is a fixed ring, the failure
//! detector is the harness's `is_up` (an oracle, standing in for gossip), and a dropped table is
//! a cluster-wide schema change that takes effect at once.
//!
//! Promise kept here: every durable change is recorded in the history only after the disk sync
//! that made it durable, and a restarted node rebuilds its batchlog table and data from disk.

use super::config::BatchlogConfig;
use super::events::BatchlogEvent;
use super::table::{BatchlogRead, BatchlogTables, Mutation};
use super::types::{
    BatchId, ClusteringKey, PartitionKey, Payload, Stage, TableId, Timestamp, WriteMutation,
};
use futures::future::LocalBoxFuture;
use serde::Serialize;
use sim::sync::Notify;
use sim::{NodeCtx, NodeId, RpcError, Sim, Verb};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Store or delete a batchlog entry on a batchlog endpoint.
pub struct BatchlogMutateVerb;

/// Request of [`BatchlogMutateVerb`].
#[derive(Clone, Debug)]
pub enum BatchlogReq {
    /// Step 3: insert the entry in stage `initial`.
    Store {
        /// The coordinator's deadline for this write (virtual ms): a replica drops a request
        /// that reaches it later, as the real write handler drops timed-out requests. This
        /// keeps a late store from landing under a cleanup range tombstone.
        deadline_ms: u64,
        /// Partition.
        pk: PartitionKey,
        /// Row.
        ck: ClusteringKey,
        /// Write timestamp.
        ts: Timestamp,
        /// The batch.
        data: Payload,
    },
    /// Step 5: delete it.
    Remove {
        /// Partition.
        pk: PartitionKey,
        /// Row.
        ck: ClusteringKey,
        /// Deletion timestamp.
        ts: Timestamp,
    },
}

impl Verb for BatchlogMutateVerb {
    const NAME: &'static str = "batchlog_mutate";
    type Req = BatchlogReq;
    type Resp = ();
}

/// Apply one mutation of a batch on a replica.
pub struct ReplicaWriteVerb;

/// Request of [`ReplicaWriteVerb`].
#[derive(Clone, Debug)]
pub struct ReplicaWrite {
    /// The batch it belongs to.
    pub batch: BatchId,
    /// The mutation.
    pub m: WriteMutation,
    /// Sent by a replay.
    pub replay: bool,
}

impl Verb for ReplicaWriteVerb {
    const NAME: &'static str = "mutation";
    type Req = ReplicaWrite;
    type Resp = ();
}

/// `repair_flush_hints_batchlog`: replay with cleanup=no; answers whether all was replayed.
pub struct RepairFlushVerb;

impl Verb for RepairFlushVerb {
    const NAME: &'static str = "repair_flush_hints_batchlog";
    type Req = ();
    type Resp = bool;
}

/// One incarnation of a node's state.
pub struct NodeState {
    /// The node.
    pub node: NodeId,
    /// Its incarnation.
    pub incarnation: u32,
    /// The batchlog tables (`system.batchlog`, `system.batchlog_v2`).
    pub table: BatchlogTables,
    /// The data plane: (table, key) -> (value, ts), last write wins.
    pub data: RefCell<BTreeMap<(TableId, u64), (u64, Timestamp)>>,
    last_ts: Cell<Timestamp>,
    /// A replay is running (the one-unit semaphore).
    pub replay_running: Cell<bool>,
    /// Signalled when a replay ends.
    pub replay_done: Notify,
    /// The v1→v2 migration ran in this incarnation.
    pub migrated: Cell<bool>,
}

impl NodeState {
    /// A fresh, strictly increasing local timestamp (µs), at least `now`.
    pub fn new_ts(&self, sim: &Sim) -> Timestamp {
        let now_us = sim.now().0 / 1000;
        let ts = now_us.max(self.last_ts.get() + 1);
        self.last_ts.set(ts);
        ts
    }
}

pub(crate) struct Inner {
    pub(crate) sim: Sim,
    pub(crate) cfg: BatchlogConfig,
    nodes: RefCell<Vec<NodeId>>,
    states: RefCell<BTreeMap<NodeId, Rc<NodeState>>>,
    dropped: RefCell<BTreeSet<TableId>>,
    next_batch: Cell<u64>,
    /// The layout in force (v2 once the `batchlog_v2` feature is enabled).
    layout: Cell<super::types::Layout>,
}

/// The batchlog cluster (a cheap handle).
#[derive(Clone)]
pub struct Cluster(pub(crate) Rc<Inner>);

const DATA_PREFIX: &str = "data/";

impl Cluster {
    /// Adds `n` nodes to the simulation and boots them.
    pub fn start(sim: &Sim, cfg: BatchlogConfig, n: usize) -> Cluster {
        assert!(n >= 1, "at least one node");
        assert!(
            cfg.rf >= 1 && cfg.rf <= n,
            "rf {} must fit {} nodes",
            cfg.rf,
            n
        );
        assert!(cfg.shard_count >= 1);
        let cfg_layout = cfg.layout;
        let c = Cluster(Rc::new(Inner {
            sim: sim.clone(),
            cfg,
            nodes: RefCell::new(Vec::new()),
            states: RefCell::new(BTreeMap::new()),
            dropped: RefCell::new(BTreeSet::new()),
            next_batch: Cell::new(1),
            layout: Cell::new(cfg_layout),
        }));
        if cfg_layout == super::types::Layout::V1 && c.0.cfg.enable_v2_at_ms > 0 {
            let c2 = c.clone();
            let at = c.0.cfg.enable_v2_at_ms;
            sim.spawn_supervisor(async move {
                let now = c2.0.sim.now().as_millis();
                sim::time::sleep(sim::time::Duration::from_millis(at.saturating_sub(now))).await;
                c2.0.layout.set(super::types::Layout::V2);
                c2.0.sim
                    .record(None, BatchlogEvent::FeatureBatchlogV2Enabled);
            });
        }
        for _ in 0..n {
            let c2 = c.clone();
            let id = sim.add_node(move |ctx| {
                let c3 = c2.clone();
                Box::pin(async move { c3.boot(ctx).await })
            });
            c.0.nodes.borrow_mut().push(id);
        }
        c
    }

    /// The simulation.
    pub fn sim(&self) -> &Sim {
        &self.0.sim
    }

    /// The configuration.
    pub fn cfg(&self) -> &BatchlogConfig {
        &self.0.cfg
    }

    /// The layout writers and replays use now (v2 once the `batchlog_v2` feature is on).
    pub fn layout(&self) -> super::types::Layout {
        self.0.layout.get()
    }

    /// The nodes, in id order.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.0.nodes.borrow().clone()
    }

    /// The current incarnation's state of `node`, if it has booted.
    pub fn state(&self, node: NodeId) -> Option<Rc<NodeState>> {
        self.0.states.borrow().get(&node).cloned()
    }

    /// A fresh batch id.
    pub fn next_batch_id(&self) -> BatchId {
        let id = self.0.next_batch.get();
        self.0.next_batch.set(id + 1);
        BatchId(id)
    }

    /// Is `table` dropped?
    pub fn is_dropped(&self, table: TableId) -> bool {
        self.0.dropped.borrow().contains(&table)
    }

    /// Drops a user table, cluster-wide and at once.
    pub fn drop_table(&self, table: TableId) {
        if self.0.dropped.borrow_mut().insert(table) {
            self.0
                .sim
                .record(None, BatchlogEvent::TableDropped { table });
        }
    }

    /// The replicas of `key` on the token ring: `rf` consecutive nodes from the key's token.
    pub fn replicas(&self, key: u64) -> Vec<NodeId> {
        let nodes = self.0.nodes.borrow();
        let n = nodes.len();
        let token = super::types::batchlog_shard(key, 256) as usize ^ (key as usize);
        (0..self.0.cfg.rf).map(|i| nodes[(token + i) % n]).collect()
    }

    /// Acknowledgements QUORUM (and EACH_QUORUM, one DC) needs.
    pub fn quorum(&self) -> usize {
        self.0.cfg.rf / 2 + 1
    }

    async fn boot(&self, ctx: NodeCtx) {
        let sim = ctx.sim.clone();
        let node = ctx.node;
        let disk = sim.disk(node);
        // Recover the batchlog tables (commitlog replay + flush) and the data plane.
        let t = BatchlogTables::open(&sim, node, &self.0.cfg.table_config());
        // A failed sync leaves the records in place; recovery runs again on the next boot.
        let _ = t.sync().await;
        let mut data = BTreeMap::new();
        for (k, v) in disk.scan::<(u64, Timestamp)>(DATA_PREFIX) {
            let mut it = k[DATA_PREFIX.len()..].split('/');
            let t: u32 = it.next().expect("table").parse().expect("table id");
            let key: u64 = it.next().expect("key").parse().expect("key");
            data.insert((TableId(t), key), v);
        }
        let st = Rc::new(NodeState {
            node,
            incarnation: ctx.incarnation,
            table: t,
            data: RefCell::new(data),
            last_ts: Cell::new(0),
            replay_running: Cell::new(false),
            replay_done: Notify::new(),
            migrated: Cell::new(false),
        });
        self.0.states.borrow_mut().insert(node, st.clone());
        self.serve(node, st.clone());
        let c = self.clone();
        sim::spawn(async move { super::manager::replay_loop(c, node).await });
        std::future::pending::<()>().await;
    }

    fn serve(&self, node: NodeId, st: Rc<NodeState>) {
        let net = self.0.sim.net();
        let c = self.clone();
        let st2 = st.clone();
        net.serve::<BatchlogMutateVerb>(node, move |_from, req| {
            let c = c.clone();
            let st = st2.clone();
            Box::pin(async move { c.handle_batchlog(&st, req).await }) as LocalBoxFuture<'static, _>
        });
        let c = self.clone();
        let st2 = st.clone();
        net.serve::<ReplicaWriteVerb>(node, move |_from, req| {
            let c = c.clone();
            let st = st2.clone();
            Box::pin(async move { c.handle_replica_write(&st, req).await })
                as LocalBoxFuture<'static, _>
        });
        let c = self.clone();
        net.serve::<RepairFlushVerb>(node, move |_from, ()| {
            let c = c.clone();
            Box::pin(async move { Ok(super::manager::do_batch_log_replay(&c, node, false).await) })
                as LocalBoxFuture<'static, _>
        });
    }

    async fn handle_batchlog(&self, st: &NodeState, req: BatchlogReq) -> Result<(), RpcError> {
        let (m, ev) = match req {
            BatchlogReq::Store { deadline_ms, .. }
                if self.0.sim.now().as_millis() > deadline_ms =>
            {
                self.0.sim.mark("late batchlog store dropped");
                return Err(RpcError::Timeout);
            }
            BatchlogReq::Store {
                pk, ck, ts, data, ..
            } => (
                Mutation::Insert { pk, ck, ts, data },
                BatchlogEvent::EntryWritten {
                    id: ck.id,
                    written_at: ck.written_at,
                    stage: Stage::Initial,
                    shard: shard_of(&pk),
                    ts,
                    layout: match pk {
                        PartitionKey::V1(_) => super::types::Layout::V1,
                        PartitionKey::V2 { .. } => super::types::Layout::V2,
                    },
                },
            ),
            BatchlogReq::Remove { pk, ck, ts } => (
                match pk {
                    PartitionKey::V1(_) => Mutation::DeletePartition { pk, ts },
                    PartitionKey::V2 { .. } => Mutation::DeleteRow { pk, ck, ts },
                },
                BatchlogEvent::EntryDeleted {
                    id: ck.id,
                    written_at: ck.written_at,
                    stage: Stage::Initial,
                    shard: shard_of(&pk),
                    by: super::events::DeletedBy::WritePath,
                    now_ms: None,
                    ts: Some(ts),
                },
            ),
        };
        self.apply_batchlog(st, vec![m])
            .await
            .map_err(|e| RpcError::Remote(e.to_string()))?;
        self.0.sim.record(Some(st.node), ev);
        Ok(())
    }

    /// Applies mutations to `st`'s batchlog table and syncs them to disk.
    pub(crate) async fn apply_batchlog(
        &self,
        st: &NodeState,
        muts: Vec<Mutation>,
    ) -> Result<(), sim::DiskError> {
        st.table.apply(muts);
        st.table.sync().await
    }

    async fn handle_replica_write(
        &self,
        st: &NodeState,
        req: ReplicaWrite,
    ) -> Result<(), RpcError> {
        let m = req.m;
        if self.is_dropped(m.table) {
            return Err(RpcError::Remote(format!("unknown table {}", m.table)));
        }
        let newer = {
            let mut data = st.data.borrow_mut();
            let cur = data.get(&(m.table, m.key)).copied();
            if cur.is_none_or(|(_, ts)| ts < m.ts) {
                data.insert((m.table, m.key), (m.value, m.ts));
                true
            } else {
                false
            }
        };
        let disk = self.0.sim.disk(st.node);
        if newer {
            disk.put(
                &format!("{DATA_PREFIX}{}/{}", m.table.0, m.key),
                (m.value, m.ts),
            );
        }
        disk.sync()
            .await
            .map_err(|e| RpcError::Remote(e.to_string()))?;
        self.0.sim.record(
            Some(st.node),
            BatchlogEvent::MutationApplied {
                batch: req.batch,
                m,
                replay: req.replay,
            },
        );
        Ok(())
    }

    /// A client's logged batch of `(table, key, value)` writes sent to coordinator `coord`:
    /// runs the write path on `coord` and waits for its answer. A coordinator that crashes
    /// first answers nothing: the outcome is `unknown`.
    pub async fn execute(
        &self,
        coord: NodeId,
        writes: Vec<(TableId, u64, u64)>,
    ) -> super::events::Outcome {
        let (tx, rx) = sim::sync::oneshot::channel();
        let c = self.clone();
        self.0.sim.spawn_on(coord, async move {
            let (_, o) = super::write_path::mutate_atomically(&c, coord, writes).await;
            let _ = tx.send(o);
        });
        rx.await.unwrap_or(super::events::Outcome::Unknown)
    }

    /// Triggers `repair_flush_hints_batchlog` on `node` (a replay with cleanup=no) from `from`;
    /// `Some(all_replayed)` if it answered.
    pub async fn repair_flush(&self, from: NodeId, node: NodeId) -> Option<bool> {
        let t = sim::time::Duration::from_millis(self.0.cfg.replay_write_timeout_ms * 4);
        self.0
            .sim
            .net()
            .call::<RepairFlushVerb>(from, node, (), t)
            .await
            .ok()
    }

    /// Live batchlog entries of `node` (id, stage, written_at), from its table.
    pub fn live_entries(&self, node: NodeId) -> Vec<LiveEntry> {
        let Some(st) = self.state(node) else {
            return Vec::new();
        };
        let t = st.table.view();
        t.live_rows()
            .into_iter()
            .map(|r| LiveEntry {
                id: r.ck.id,
                written_at: r.ck.written_at,
                stage: match r.pk {
                    PartitionKey::V1(_) => Stage::Initial,
                    PartitionKey::V2 { stage, .. } => stage,
                },
                shard: shard_of(&r.pk),
            })
            .collect()
    }

    /// What is still pending (live batchlog entries), by name.
    pub fn pending(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in self.nodes() {
            let live = self.live_entries(n);
            if live.is_empty() {
                continue;
            }
            let initial = live.iter().filter(|e| e.stage == Stage::Initial).count();
            let ids: Vec<String> = live.iter().take(5).map(|e| e.id.to_string()).collect();
            out.push(format!(
                "batchlog on {n}: {} live entries (initial {initial}, failed_replay {}): {}",
                live.len(),
                live.len() - initial,
                ids.join(", ")
            ));
        }
        out
    }

    /// The final state for checkers: live entries per node, table shape, replica data.
    pub fn final_state(&self) -> serde_json::Value {
        let mut nodes = serde_json::Map::new();
        for n in self.nodes() {
            let st = self.state(n);
            let (sstables, mem, stats) = st
                .as_ref()
                .map_or((0, 0, super::table::TableStats::default()), |s| {
                    s.table.shape()
                });
            let data_keys = st.as_ref().map_or(0, |s| s.data.borrow().len());
            nodes.insert(
                n.to_string(),
                serde_json::json!({
                    "up": self.0.sim.is_up(n),
                    "live_entries": self.live_entries(n),
                    "sstables": sstables,
                    "memtable_fragments": mem,
                    "table_stats": stats,
                    "data_keys": data_keys,
                }),
            );
        }
        serde_json::json!({
            "layout": self.layout(),
            "nodes": nodes,
            "dropped_tables": self.0.dropped.borrow().iter().collect::<Vec<_>>(),
        })
    }
}

/// A live batchlog entry, as the final state lists it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LiveEntry {
    /// Batch.
    pub id: BatchId,
    /// written_at.
    pub written_at: u64,
    /// Stage.
    pub stage: Stage,
    /// Batchlog shard (0 for v1).
    pub shard: u32,
}

/// The batchlog shard of a partition (0 for v1).
pub fn shard_of(pk: &PartitionKey) -> u32 {
    match pk {
        PartitionKey::V1(_) => 0,
        PartitionKey::V2 { shard, .. } => *shard,
    }
}
