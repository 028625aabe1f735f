//! The node assembler: the one place that builds a node of the whole cluster and starts every
//! service on it.
//!
//! ```text
//! node n (shards 0..S)
//!  ├─ group0 member (Raft<TopologySm>)  ─ topology coordinator fiber while this node leads
//!  ├─ erm tracker                         (token-metadata versions held by in-flight ops)
//!  ├─ per shard: session registry + topology guards
//!  └─ verbs: mutation / read_data / truncate (data plane), raft_topology_cmd (barrier),
//!            tablet_stream_data / stream_request / stream_mutation_fragments (streaming),
//!            tablet_cleanup (cleanup)
//! ```
//!
//! On every boot the node starts from empty session registries and replays group0, so the
//! sessions it holds are exactly those the group0 state lists as open (SPEC §2.2). Durable data
//! lives on the simulated disk; anything unsynced is lost on a crash.
//!
//! Services receive the low-level [`handle::NodeHandle`] and never import this module.

pub mod handle;

pub use handle::{lookup, NodeHandle, Shard};

use crate::topology::config::TopologyConfig;
use crate::topology::erm::ErmTracker;
use crate::topology::group0::{Group0, NodeHooks, TopologySm};
use crate::topology::ids::{NodeId, ShardId};
use crate::topology::session::SessionManager;
use crate::topology::state::TopologyState;
use crate::topology::{barrier, cleanup, coordinator, data, stream};
use sim::{NodeCtx, Sim};
use std::rc::Rc;

/// Boot one node incarnation: start its shards and group0 member (which replays the log),
/// serve every verb, run the coordinator loop.
pub async fn boot(ctx: NodeCtx, cfg: Rc<TopologyConfig>) {
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
    let sm = TopologySm::new(&sim, cfg.initial_state(), hooks);
    let members = (1..=cfg.nodes).map(NodeId).collect();
    let g0 = Group0::start(&ctx, members, sm);
    let h = Rc::new(NodeHandle::new(&ctx, cfg, g0, erm, shards));
    handle::register(&h);
    data::serve(&h);
    barrier::serve(&h);
    stream::serve(&h);
    cleanup::serve(&h);
    sim::spawn(coordinator::run(h.clone()));
    std::future::pending::<()>().await;
}

/// A started cluster (nodes n1..n{cfg.nodes}).
#[derive(Clone)]
pub struct Cluster {
    /// The simulation the cluster runs in.
    pub sim: Sim,
    /// The config every node booted with.
    pub cfg: Rc<TopologyConfig>,
    /// The nodes, in id order.
    pub nodes: Vec<NodeId>,
}

impl Cluster {
    /// Add and boot every node.
    pub fn start(sim: &Sim, cfg: TopologyConfig) -> Cluster {
        let cfg = Rc::new(cfg);
        let nodes = (0..cfg.nodes)
            .map(|_| {
                let c = cfg.clone();
                sim.add_node(move |ctx| Box::pin(boot(ctx, c.clone())))
            })
            .collect();
        Cluster {
            sim: sim.clone(),
            cfg,
            nodes,
        }
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
        self.nodes
            .iter()
            .filter_map(|n| self.services(*n))
            .max_by_key(|s| s.g0.applied_index())
            .map(|s| s.g0.with_state(|st| st.clone()))
    }
}
