//! The batchlog's state: per node incarnation ([`NodeBatchlog`], held by the node's handle) and
//! cluster-wide ([`features`]: the `batchlog_v2` feature and the batch id counter).
//!
//! A leaf module: it depends on the storage engine only, so that the node handle can hold the
//! batchlog state while the batchlog services (write path, manager) depend on the handle.
//!
//! Simplification: the `batchlog_v2` cluster feature takes effect on every node at once (upstream
//! enables it through group0 once every node supports it); the v1→v2 migration and the mixed
//! phase it protects are still modelled per node.

use super::config::BatchlogConfig;
use super::events::BatchlogEvent;
use super::table::BatchlogTables;
use super::types::{BatchId, Layout, Timestamp};
use crate::topology::state::TopologyState;
use sim::sync::Notify;
use sim::{NodeId, Sim};
use std::cell::{Cell, RefCell};

/// The batchlog of one node incarnation.
pub struct NodeBatchlog {
    /// The node whose batchlog this is (its clock stamps the entries).
    node: NodeId,
    /// The batchlog tables (`system.batchlog`, `system.batchlog_v2`), recovered at boot.
    pub table: BatchlogTables,
    last_ts: Cell<Timestamp>,
    /// A replay is running (the one-unit semaphore).
    pub replay_running: Cell<bool>,
    /// Signalled when a replay ends.
    pub replay_done: Notify,
    /// The v1→v2 migration ran in this incarnation.
    pub migrated: Cell<bool>,
    /// Mutant `batchlog-replay-stale-erm` only: the replica map the manager read at start.
    pub stale_map: RefCell<Option<TopologyState>>,
}

impl NodeBatchlog {
    /// Opens `node`'s batchlog tables (recovering them from its disk).
    pub fn open(sim: &Sim, node: NodeId, cfg: &BatchlogConfig) -> NodeBatchlog {
        NodeBatchlog {
            node,
            table: BatchlogTables::open(sim, node, &cfg.table_config()),
            last_ts: Cell::new(0),
            replay_running: Cell::new(false),
            replay_done: Notify::new(),
            migrated: Cell::new(false),
            stale_map: RefCell::new(None),
        }
    }

    /// A fresh, strictly increasing local timestamp (µs), at least the node's wall clock now
    /// (`api::new_timestamp()`: a skewed clock gives skewed timestamps).
    pub fn new_ts(&self, sim: &Sim) -> Timestamp {
        let now_us = sim.wall_clock_us(self.node);
        let ts = now_us.max(self.last_ts.get() + 1);
        self.last_ts.set(ts);
        ts
    }
}

/// Cluster-wide batchlog state (one per run).
pub mod features {
    use super::*;

    #[derive(Default)]
    struct Features {
        started: Cell<bool>,
        v2: Cell<bool>,
        next_batch: Cell<u64>,
    }

    /// Sets the layout in force at cluster start, and schedules the `batchlog_v2` feature if
    /// the config asks for it. Called once per run by the cluster.
    pub fn start(sim: &Sim, cfg: &BatchlogConfig) {
        let f = sim.ext::<Features>();
        assert!(!f.started.get(), "batchlog features started twice");
        f.started.set(true);
        f.v2.set(cfg.layout == Layout::V2);
        f.next_batch.set(1);
        if cfg.layout == Layout::V1 && cfg.enable_v2_at_ms > 0 {
            let at = cfg.enable_v2_at_ms;
            let s = sim.clone();
            sim.spawn_supervisor(async move {
                let now = s.now().as_millis();
                sim::time::sleep(sim::time::Duration::from_millis(at.saturating_sub(now))).await;
                s.ext::<Features>().v2.set(true);
                s.record(None, BatchlogEvent::FeatureBatchlogV2Enabled);
            });
        }
    }

    /// The layout writers and replays use now (v2 once the `batchlog_v2` feature is on).
    pub fn layout(sim: &Sim) -> Layout {
        if sim.ext::<Features>().v2.get() {
            Layout::V2
        } else {
            Layout::V1
        }
    }

    /// A fresh batch id (the time-UUID of SPEC §5.3 step 1, as a unique number).
    pub fn next_batch_id(sim: &Sim) -> BatchId {
        let f = sim.ext::<Features>();
        assert!(f.started.get(), "batchlog features not started");
        let id = f.next_batch.get();
        f.next_batch.set(id + 1);
        BatchId(id)
    }
}
