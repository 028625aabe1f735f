//! The batchlog as scenarios drive and observe it, over the one [`crate::node::Cluster`]:
//! start a cluster whose tablets carry the batchlog's replication factor, run logged batches on
//! a coordinator, trigger replays and repair's flush, drop a table, and read what is pending
//! and the final state.
//!
//! Nothing here is a service: every node runs its batchlog manager and write path itself
//! ([`super::manager`], [`super::write_path`]); this is the client and the observer.

use super::config::BatchlogConfig;
use super::events::{BatchlogEvent, Outcome};
use super::service::{live_entries, LiveEntry, RepairFlushVerb};
use super::state::{features, NodeBatchlog};
use super::types::{Layout, Stage, TableId};
use crate::node::{Cluster, NodeHandle};
use crate::topology::config::TopologyConfig;
use crate::topology::data::route_table_key;
use sim::{NodeId, Sim};
use std::rc::Rc;

/// A cluster with logged batches (a cheap handle).
#[derive(Clone)]
pub struct BatchlogCluster {
    /// The whole cluster.
    pub cluster: Cluster,
}

impl BatchlogCluster {
    /// The topology of a batchlog cluster of `nodes` nodes: `bl.tables` user tables of
    /// `tablets` tablets, `bl.rf` replicas each, spread over every node, balancing off.
    pub fn topology(nodes: u32, tablets: u32, bl: &BatchlogConfig) -> TopologyConfig {
        TopologyConfig {
            nodes,
            shards: 2,
            tables: bl.tables,
            tablets,
            initial_holders: nodes,
            rf: bl.rf as u32,
            balancing: false,
            ..TopologyConfig::default()
        }
    }

    /// Adds the cluster's nodes to the simulation and boots them.
    pub fn start(sim: &Sim, topology: TopologyConfig, bl: BatchlogConfig) -> BatchlogCluster {
        assert!(bl.shard_count >= 1);
        BatchlogCluster {
            cluster: Cluster::start_with(sim, topology, bl),
        }
    }

    /// The simulation.
    pub fn sim(&self) -> &Sim {
        &self.cluster.sim
    }

    /// The batchlog configuration.
    pub fn cfg(&self) -> &BatchlogConfig {
        &self.cluster.bl
    }

    /// The layout writers and replays use now (v2 once the `batchlog_v2` feature is on).
    pub fn layout(&self) -> Layout {
        features::layout(self.sim())
    }

    /// The nodes, in id order.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.cluster.nodes.clone()
    }

    /// The handle of `node`'s current incarnation, if it is up.
    pub fn handle(&self, node: NodeId) -> Option<Rc<NodeHandle>> {
        self.cluster.services(node)
    }

    /// Is `table` dropped?
    pub fn is_dropped(&self, table: TableId) -> bool {
        crate::schema::is_dropped(self.sim(), table.schema_id())
    }

    /// Drops a user table, cluster-wide and at once.
    pub fn drop_table(&self, table: TableId) {
        if crate::schema::drop_table(self.sim(), table.schema_id()) {
            self.sim()
                .record(None, BatchlogEvent::TableDropped { table });
        }
    }

    /// The replicas of `key` of `table` in the most advanced group0 state (node ids).
    pub fn replicas(&self, table: TableId, key: u64) -> Vec<NodeId> {
        self.cluster.state().map_or(Vec::new(), |s| {
            let t = route_table_key(&s, table.schema_id(), key);
            s.tablets[&t].replicas.iter().map(|r| r.node).collect()
        })
    }

    /// A client's logged batch of `(table, key, value)` writes sent to coordinator `coord`:
    /// runs the write path on `coord` and waits for its answer. A coordinator that is down or
    /// crashes first answers nothing: the outcome is `unknown`.
    pub async fn execute(&self, coord: NodeId, writes: Vec<(TableId, u64, u64)>) -> Outcome {
        let Some(h) = self.handle(coord) else {
            return Outcome::Failed;
        };
        let (tx, rx) = sim::sync::oneshot::channel();
        self.sim().spawn_on(coord, async move {
            let (_, o) = super::write_path::mutate_atomically(h, writes).await;
            let _ = tx.send(o);
        });
        rx.await.unwrap_or(Outcome::Unknown)
    }

    /// Replays `node`'s batchlog now (as its loop would), on the node; `None` if it is down or
    /// crashes meanwhile, else whether every entry was replayed.
    pub async fn replay(&self, node: NodeId, cleanup: bool) -> Option<bool> {
        let h = self.handle(node)?;
        let (tx, rx) = sim::sync::oneshot::channel();
        self.sim().spawn_on(node, async move {
            let _ = tx.send(super::manager::do_batch_log_replay(&h, cleanup).await);
        });
        rx.await.ok()
    }

    /// Triggers `repair_flush_hints_batchlog` on `node` (a replay with cleanup=no) from `from`;
    /// `Some(all_replayed)` if it answered.
    pub async fn repair_flush(&self, from: NodeId, node: NodeId) -> Option<bool> {
        let t = sim::time::Duration::from_millis(self.cfg().replay_write_timeout_ms * 4);
        self.sim()
            .net()
            .call::<RepairFlushVerb>(from, node, (), t)
            .await
            .ok()
            .map(|a| a.all_replayed)
    }

    /// A repair of user `table` coordinated by `from` (its batchlog flush step, repair time and
    /// tombstone GC, [`super::repair`]); `None` if `from` is down or crashes meanwhile, else
    /// whether the flush succeeded (and the repair time moved).
    pub async fn repair(&self, from: NodeId, table: TableId) -> Option<bool> {
        let h = self.handle(from)?;
        let (tx, rx) = sim::sync::oneshot::channel();
        self.sim().spawn_on(from, async move {
            let _ = tx.send(super::repair::repair_table(&h, table).await);
        });
        rx.await.ok()
    }

    /// A plain delete of `key` of `table` coordinated by `coord`; `Failed` if it is down,
    /// `Unknown` if it crashes meanwhile.
    pub async fn delete(&self, coord: NodeId, table: TableId, key: u64) -> Outcome {
        let Some(h) = self.handle(coord) else {
            return Outcome::Failed;
        };
        let (tx, rx) = sim::sync::oneshot::channel();
        self.sim().spawn_on(coord, async move {
            let _ = tx.send(super::write_path::delete(h, table, key).await);
        });
        rx.await.unwrap_or(Outcome::Unknown)
    }

    /// Live batchlog entries of `node`: of its current incarnation if it is up, else of what
    /// its disk holds durably.
    pub fn live_entries(&self, node: NodeId) -> Vec<LiveEntry> {
        match self.handle(node) {
            Some(h) => live_entries(&h),
            None => {
                let b = NodeBatchlog::open(self.sim(), node, self.cfg());
                super::service::live_entries_of(&b)
            }
        }
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

    /// The final state for checkers: live entries per node, batchlog table shape, the final
    /// tablet placement (`tablets`: tablet → replicas), every live user cell's timestamp
    /// (`cells`: replica → tablet → key → ts) and every user tombstone's (`tombstones`, same
    /// shape).
    pub fn final_state(&self) -> serde_json::Value {
        let mut tablets = serde_json::Map::new();
        if let Some(s) = self.cluster.state() {
            for (t, i) in &s.tablets {
                let r: Vec<String> = i.replicas.iter().map(|r| r.to_string()).collect();
                tablets.insert(t.to_string(), serde_json::json!(r));
            }
        }
        let mut cells: std::collections::BTreeMap<
            String,
            std::collections::BTreeMap<String, serde_json::Map<String, serde_json::Value>>,
        > = std::collections::BTreeMap::new();
        let mut tombstones = cells.clone();
        let mut nodes = serde_json::Map::new();
        for n in self.nodes() {
            let h = self.handle(n);
            let down;
            let bl = match &h {
                Some(h) => &h.batchlog,
                None => {
                    down = NodeBatchlog::open(self.sim(), n, self.cfg());
                    &down
                }
            };
            let (sstables, mem, stats) = bl.table.shape();
            let rows = crate::topology::data::Storage::of(self.sim(), n).all_rows();
            let data_keys = rows.len();
            for (shard, tablet, key, cell) in rows {
                let replica = crate::topology::ids::Replica { node: n, shard };
                let map = if cell.value.is_some() {
                    &mut cells
                } else {
                    &mut tombstones
                };
                map.entry(replica.to_string())
                    .or_default()
                    .entry(tablet.to_string())
                    .or_default()
                    .insert(key.to_string(), serde_json::json!(cell.ts));
            }
            nodes.insert(
                n.to_string(),
                serde_json::json!({
                    "up": self.sim().is_up(n),
                    "live_entries": super::service::live_entries_of(bl),
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
            "tablets": tablets,
            "cells": cells,
            "tombstones": tombstones,
            "dropped_tables": crate::schema::dropped_tables(self.sim())
                .into_iter()
                .map(|t| TableId(t.0 - crate::schema::TableId::FIRST_USER))
                .collect::<Vec<_>>(),
        })
    }
}
