//! The shape and knobs of a cluster as the topology area sees it (the scenario's `topology`
//! params section), and the initial group0 state it implies.

use super::ids::{NodeId, Replica, ShardId};
use super::state::TopologyState;
use crate::schema::SchemaRegistry;
use serde::{Deserialize, Serialize};

/// Shape and knobs of a topology cluster (the scenario's `topology` params section).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologyConfig {
    /// Number of nodes.
    pub nodes: u32,
    /// Shards per node.
    pub shards: u32,
    /// User tables (`ks.t0..`), each with its own tablets.
    pub tables: u32,
    /// Tablets of each user table.
    pub tablets: u32,
    /// How many nodes (n1..) hold the tablets initially (1: all on n1, so the balancer works).
    pub initial_holders: u32,
    /// Replicas per tablet (on distinct nodes among the initial holders).
    pub rf: u32,
    /// `tablet_balancing_enabled` at start.
    pub balancing: bool,
    /// At most this many tablets in transition at once (balancer).
    pub balancer_max_concurrent: usize,
    /// Back-off before a failed background action is reported (real: 1 s).
    pub action_failure_backoff_ms: u64,
    /// Timeout of `tablet_stream_data` and friends.
    pub stream_timeout_ms: u64,
    /// Timeout of one `barrier_and_drain` call. Upstream's `send_raft_topology_cmd` has no
    /// timeout of its own: a call to a dead or unreachable node fails when its connection
    /// does. The model drops a request sent across a partition, on a drop rule or to a node
    /// that is down without failing the caller's call, so this timeout stands in for that
    /// failure; a barrier
    /// that waits on a node which answers late but answers is not cut short by it in any
    /// scenario's defaults (10 s). Mutant `barrier-no-timeout` removes it.
    pub barrier_timeout_ms: u64,
    /// Pause between two streamed fragments at the source.
    pub stream_fragment_interval_ms: u64,
    /// Cluster feature `tablets_intermediate_fallback_cleanup`: a rollback from
    /// `write_both_read_new` goes through `write_both_read_old_fallback_cleanup` (on), or to
    /// `cleanup_target` after a barrier (off).
    pub tablets_intermediate_fallback_cleanup: bool,
    /// Cluster feature `VIEW_BUILDING_COORDINATOR`: views of the tablet tables are built by
    /// the view building coordinator and its workers (`crate::view`). Off (the default), no
    /// view service runs on the nodes.
    #[serde(skip_serializing_if = "is_false")]
    pub view_building_coordinator: bool,
    /// Candidate fix of finding F2 (not upstream): a base replica that is not among the
    /// tablet's write replicas *in its own erm* pairs by its index in `replicas`, else in
    /// `new_replicas`, instead of dropping the view update. `None` (not serialised) outside
    /// the view scenarios, which state it, so that `--set` can switch it on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_pairing_any_write_replica: Option<bool>,
    /// Pause of a view building batch between two rows it reads (the cost of a build), ms;
    /// `None`: `crate::view::worker::ROW_INTERVAL_MS`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view_build_row_interval_ms: Option<u64>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            nodes: 2,
            shards: 2,
            tables: 1,
            tablets: 1,
            initial_holders: 1,
            rf: 1,
            balancing: false,
            balancer_max_concurrent: 2,
            action_failure_backoff_ms: 1000,
            stream_timeout_ms: 30_000,
            barrier_timeout_ms: 10_000,
            stream_fragment_interval_ms: 1,
            tablets_intermediate_fallback_cleanup: true,
            view_building_coordinator: false,
            view_pairing_any_write_replica: None,
            view_build_row_interval_ms: None,
        }
    }
}

impl TopologyConfig {
    /// The schema registry of a cluster with this shape: the system tables and `tables` user
    /// tables of `tablets` tablets each.
    pub fn schema(&self) -> SchemaRegistry {
        SchemaRegistry::new(self.tables, self.tablets)
    }

    /// The initial group0 state of a cluster with this shape: replica `j` of tablet `i` of every
    /// user table on node `1 + (i + j) % initial_holders`, shard `i % shards`.
    pub fn initial_state(&self) -> TopologyState {
        assert!(self.nodes >= 1 && self.shards >= 1 && self.tablets >= 1 && self.tables >= 1);
        assert!(self.initial_holders >= 1 && self.initial_holders <= self.nodes);
        assert!(
            self.rf >= 1 && self.rf <= self.initial_holders,
            "rf {} needs as many initial holders ({})",
            self.rf,
            self.initial_holders
        );
        let nodes = (1..=self.nodes).map(|n| (NodeId(n), self.shards)).collect();
        let tables = self
            .schema()
            .user_tables()
            .iter()
            .map(|t| {
                let placement = (0..t.tablet_count)
                    .map(|i| {
                        (0..self.rf)
                            .map(|j| Replica {
                                node: NodeId(1 + (i + j) % self.initial_holders),
                                shard: ShardId(i % self.shards),
                            })
                            .collect()
                    })
                    .collect();
                (t.id, placement)
            })
            .collect();
        let mut st = TopologyState::initial_tables(nodes, tables);
        st.tablet_balancing_enabled = self.balancing;
        st
    }
}
