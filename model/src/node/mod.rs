//! The node assembler: the one place that builds a node of the whole cluster and starts every
//! service on it.
//!
//! ```text
//! node n (shards 0..S)
//!  ├─ group0 member (Raft<TopologySm>)  ─ topology coordinator fiber while this node leads
//!  │    persists in system.raft* (shard 0); mirrors its state into system.topology/tablets
//!  ├─ erm tracker                         (token-metadata versions held by in-flight ops)
//!  ├─ per shard: session registry + topology guards, tables on the storage engine
//!  ├─ batchlog manager (replay loop; tables system.batchlog, system.batchlog_v2 on shard 0)
//!  └─ verbs: mutation / read_data / truncate (data plane), raft_topology_cmd (barrier),
//!            tablet_stream_data / stream_request / stream_mutation_fragments (streaming),
//!            tablet_cleanup (cleanup), batchlog_mutate / repair_flush_hints_batchlog,
//!            work_on_view_building_tasks / view_update (view building, crate::view),
//!            join_node_request / join_node_response (adding a node)
//! ```
//!
//! Nodes n1..n{cfg.nodes} form the initial cluster (group0 voters, `normal`). A node added at
//! run time ([`Cluster::add_node`]) boots as a group0 non-voter and asks to join
//! ([`crate::topology::join`]).
//!
//! On every boot the node starts from empty session registries and replays group0, so the
//! sessions it holds are exactly those the group0 state lists as open (SPEC §2.2). Durable data
//! lives on the simulated disk; anything unsynced is lost on a crash.
//!
//! Services receive the low-level [`handle::NodeHandle`] and never import this module.

pub mod handle;

pub use handle::{lookup, NodeHandle, Shard};

use crate::batchlog::{self, BatchlogConfig};
use crate::topology::config::TopologyConfig;
use crate::topology::erm::ErmTracker;
use crate::topology::group0::{Group0, NodeHooks, TopologySm};
use crate::topology::ids::{NodeId, ShardId};
use crate::topology::session::SessionManager;
use crate::topology::state::TopologyState;
use crate::topology::system_tables::Group0Tables;
use crate::topology::{barrier, cleanup, coordinator, data, join, stream};
use sim::{NodeCtx, Sim};
use std::rc::Rc;

/// Boot one node incarnation: start its shards and group0 member (which replays the log),
/// serve every verb, run the coordinator loop.
pub async fn boot(ctx: NodeCtx, cfg: Rc<TopologyConfig>, bl: Rc<BatchlogConfig>) {
    let sim = ctx.sim.clone();
    let shards: Vec<Shard> = (0..cfg.shards)
        .map(|s| Shard {
            id: ShardId(s),
            sessions: SessionManager::new(),
        })
        .collect();
    let erm = ErmTracker::new();
    let hooks = NodeHooks {
        node: ctx.node,
        sessions: shards.iter().map(|s| (s.id, s.sessions.clone())).collect(),
        erm: erm.clone(),
    };
    let sm = TopologySm::new(&sim, cfg.initial_state(), hooks)
        .with_tables(Group0Tables::open(&sim, ctx.node));
    let members: Vec<NodeId> = (1..=cfg.nodes).map(NodeId).collect();
    let joining = !members.contains(&ctx.node);
    let g0 = Group0::start(&ctx, members.clone(), sm);
    let h = Rc::new(NodeHandle::new(&ctx, cfg, bl, g0, erm, shards));
    // The batchlog tables' recovery writes; a failed sync leaves the records in place and the
    // recovery runs again on the next boot.
    let _ = h.batchlog.table.sync().await;
    handle::register(&h);
    data::serve(&h);
    barrier::serve(&h);
    stream::serve(&h);
    cleanup::serve(&h);
    batchlog::service::serve(&h);
    crate::view::serve(&h);
    join::serve(&h);
    if joining {
        sim::spawn(join::join(h.clone(), members));
    }
    sim::spawn(coordinator::run(h.clone()));
    sim::spawn(batchlog::manager::replay_loop(h.clone()));
    std::future::pending::<()>().await;
}

/// A started cluster (nodes n1..n{cfg.nodes}).
#[derive(Clone)]
pub struct Cluster {
    /// The simulation the cluster runs in.
    pub sim: Sim,
    /// The config every node booted with.
    pub cfg: Rc<TopologyConfig>,
    /// The batchlog section every node booted with.
    pub bl: Rc<BatchlogConfig>,
    /// The nodes, in id order.
    pub nodes: Vec<NodeId>,
}

impl Cluster {
    /// Add and boot every node, with the default batchlog section (its replication factor and
    /// user tables those of `cfg`).
    pub fn start(sim: &Sim, cfg: TopologyConfig) -> Cluster {
        let bl = BatchlogConfig {
            rf: cfg.rf as usize,
            tables: cfg.tables,
            ..BatchlogConfig::default()
        };
        Cluster::start_with(sim, cfg, bl)
    }

    /// Add and boot every node. The batchlog's replication factor and user tables must be the
    /// topology's.
    pub fn start_with(sim: &Sim, cfg: TopologyConfig, bl: BatchlogConfig) -> Cluster {
        assert_eq!(
            bl.rf, cfg.rf as usize,
            "batchlog.rf must be the tablets' rf"
        );
        assert_eq!(
            bl.tables, cfg.tables,
            "batchlog.tables must be the user tables"
        );
        batchlog::state::features::start(sim, &bl);
        let cfg = Rc::new(cfg);
        let bl = Rc::new(bl);
        let nodes = (0..cfg.nodes)
            .map(|_| {
                let (c, b) = (cfg.clone(), bl.clone());
                sim.add_node(move |ctx| Box::pin(boot(ctx, c.clone(), b.clone())))
            })
            .collect();
        Cluster {
            sim: sim.clone(),
            cfg,
            bl,
            nodes,
        }
    }

    /// Add one node at run time (the next id after every node the run has): it boots with
    /// this cluster's config, as a group0 non-voter, and asks to join. See
    /// `topology::api::add_node`, which also waits until it is `normal`.
    pub fn add_node(&self) -> NodeId {
        let (c, b) = (self.cfg.clone(), self.bl.clone());
        let node = self
            .sim
            .add_node(move |ctx| Box::pin(boot(ctx, c.clone(), b.clone())));
        assert!(
            node.0 > self.cfg.nodes,
            "{node} would be a member of the initial cluster"
        );
        node
    }

    /// The handle of a live node.
    pub fn services(&self, node: NodeId) -> Option<Rc<NodeHandle>> {
        lookup(&self.sim, node)
    }

    /// Some live node's handle (lowest id first).
    pub fn any_live(&self) -> Option<Rc<NodeHandle>> {
        self.nodes.iter().find_map(|n| self.services(*n))
    }

    /// The group0 state as seen by the live node that has applied the most of it. (A node that
    /// just restarted replays its log from the start, so "some live node" can be far behind;
    /// judging convergence from it would call a running migration finished.)
    pub fn state(&self) -> Option<TopologyState> {
        self.with_state(TopologyState::clone)
    }

    /// `f` of the state [`Cluster::state`] returns, without cloning it (what pollers that
    /// test one condition use).
    pub fn with_state<R>(&self, f: impl FnOnce(&TopologyState) -> R) -> Option<R> {
        self.nodes
            .iter()
            .filter_map(|n| self.services(*n))
            .max_by_key(|s| s.g0.applied_index())
            .map(|s| s.g0.with_state(f))
    }
}
