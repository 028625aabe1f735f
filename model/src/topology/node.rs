//! A node of the topology cluster: its services (group0 handle, session manager, erm tracker,
//! replica-side tablet operations) and boot / restart.
//!
//! On every boot the node starts from an empty session registry and replays group0, so the
//! sessions it holds are exactly those the group0 state lists as open (SPEC §2.2). Durable data
//! lives on the simulated disk; anything unsynced is lost on a crash.

use super::data::ErmTracker;
use super::group0::{Group0, NodeHooks, TopologySm};
use super::ids::{NodeId, Replica, ShardId, TabletId};
use super::session::SessionManager;
use super::state::TopologyState;
use super::{barrier, cleanup, coordinator, data, stream};
use fault_injection::injection::Injections;
use serde::{Deserialize, Serialize};
use sim::sync::Notify;
use sim::{NodeCtx, RpcError, Sim};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

/// Shape and knobs of a topology cluster (the scenario's `topology` params section).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopologyConfig {
    /// Number of nodes.
    pub nodes: u32,
    /// Shards per node.
    pub shards: u32,
    /// Tablets of the test table.
    pub tablets: u32,
    /// How many nodes (n1..) hold the tablets initially (1: all on n1, so the balancer works).
    pub initial_holders: u32,
    /// `tablet_balancing_enabled` at start.
    pub balancing: bool,
    /// At most this many tablets in transition at once (balancer).
    pub balancer_max_concurrent: usize,
    /// Back-off before a failed background action is reported (real: 1 s).
    pub action_failure_backoff_ms: u64,
    /// Timeout of `tablet_stream_data` and friends.
    pub stream_timeout_ms: u64,
    /// Timeout of one `barrier_and_drain` call.
    pub barrier_timeout_ms: u64,
    /// Pause between two streamed fragments at the source.
    pub stream_fragment_interval_ms: u64,
}

impl Default for TopologyConfig {
    fn default() -> Self {
        Self {
            nodes: 2,
            shards: 2,
            tablets: 1,
            initial_holders: 1,
            balancing: false,
            balancer_max_concurrent: 2,
            action_failure_backoff_ms: 1000,
            stream_timeout_ms: 30_000,
            barrier_timeout_ms: 10_000,
            stream_fragment_interval_ms: 1,
        }
    }
}

impl TopologyConfig {
    /// The initial group0 state of a cluster with this shape.
    pub fn initial_state(&self) -> TopologyState {
        assert!(self.nodes >= 1 && self.shards >= 1 && self.tablets >= 1);
        assert!(self.initial_holders >= 1 && self.initial_holders <= self.nodes);
        let nodes = (1..=self.nodes).map(|n| (NodeId(n), self.shards)).collect();
        let placement = (0..self.tablets)
            .map(|i| {
                vec![Replica {
                    node: NodeId(1 + i % self.initial_holders),
                    shard: ShardId(i % self.shards),
                }]
            })
            .collect();
        let mut st = TopologyState::initial(nodes, placement);
        st.tablet_balancing_enabled = self.balancing;
        st
    }
}

/// The result slot of a replica-side tablet operation, shared by joiners (SPEC §1.6 step 2).
#[derive(Default)]
struct JoinSlot {
    result: RefCell<Option<Result<u64, RpcError>>>,
    done: Notify,
}

/// The services of one node incarnation.
pub struct NodeServices {
    /// The world.
    pub sim: Sim,
    /// This node.
    pub node: NodeId,
    /// This incarnation.
    pub incarnation: u32,
    /// Cluster config.
    pub cfg: Rc<TopologyConfig>,
    /// group0 handle.
    pub g0: Group0,
    /// The session manager.
    pub sessions: SessionManager,
    /// The erm tracker.
    pub erm: ErmTracker,
    /// Injection registry of the run.
    pub inj: Rc<Injections>,
    /// Version of the last barrier this node answered (acts as a local fence).
    pub barrier_fence: Cell<u64>,
    /// The last barrier (term, id) this node saw, for the command-index check.
    pub last_barrier: Cell<(u64, u64)>,
    ops: RefCell<BTreeMap<(TabletId, &'static str), Rc<JoinSlot>>>,
}

impl NodeServices {
    /// Writes routed with a version below this are rejected.
    pub fn fence(&self) -> u64 {
        self.g0
            .with_state(|s| s.fence_version)
            .max(self.barrier_fence.get())
    }

    /// Run a replica-side tablet operation, or join the one already running for the same
    /// (tablet, kind) and return its result.
    pub async fn join_or_run<Fut>(
        &self,
        tablet: TabletId,
        kind: &'static str,
        run: impl FnOnce() -> Fut,
    ) -> Result<u64, RpcError>
    where
        Fut: Future<Output = Result<u64, RpcError>>,
    {
        let existing = self.ops.borrow().get(&(tablet, kind)).cloned();
        if let Some(slot) = existing {
            self.sim.mark("tablet operation joined");
            loop {
                let n = slot.done.notified();
                if let Some(r) = slot.result.borrow().clone() {
                    return r;
                }
                n.await;
            }
        }
        let slot = Rc::new(JoinSlot::default());
        self.ops.borrow_mut().insert((tablet, kind), slot.clone());
        let r = run().await;
        *slot.result.borrow_mut() = Some(r.clone());
        self.ops.borrow_mut().remove(&(tablet, kind));
        slot.done.notify();
        r
    }
}

#[derive(Default)]
struct Registry(RefCell<BTreeMap<NodeId, Rc<NodeServices>>>);

/// The services of `node`'s current incarnation, if it is up.
pub fn services(sim: &Sim, node: NodeId) -> Option<Rc<NodeServices>> {
    let svc = sim.ext::<Registry>().0.borrow().get(&node).cloned()?;
    (sim.is_up(node) && svc.incarnation == sim.incarnation(node)).then_some(svc)
}

/// Boot one node incarnation: replay group0, serve the verbs, run the coordinator loop.
pub async fn boot(ctx: NodeCtx, cfg: Rc<TopologyConfig>) {
    let sim = ctx.sim.clone();
    let sessions = SessionManager::new();
    let erm = ErmTracker::new();
    let hooks = NodeHooks {
        node: ctx.node,
        sessions: sessions.clone(),
        erm: erm.clone(),
    };
    let sm = TopologySm::new(&sim, cfg.initial_state(), hooks);
    let members = (1..=cfg.nodes).map(NodeId).collect();
    let g0 = Group0::start(&ctx, members, sm);
    let svc = Rc::new(NodeServices {
        sim: sim.clone(),
        node: ctx.node,
        incarnation: ctx.incarnation,
        cfg,
        g0,
        sessions,
        erm,
        inj: Injections::of(&sim),
        barrier_fence: Cell::new(0),
        last_barrier: Cell::new((0, 0)),
        ops: RefCell::new(BTreeMap::new()),
    });
    sim.ext::<Registry>()
        .0
        .borrow_mut()
        .insert(ctx.node, svc.clone());
    data::serve(&svc);
    barrier::serve(&svc);
    stream::serve(&svc);
    cleanup::serve(&svc);
    sim::spawn(coordinator::run(svc.clone()));
    std::future::pending::<()>().await;
}

/// A started topology cluster (nodes n1..n{cfg.nodes}).
#[derive(Clone)]
pub struct Cluster {
    /// The world.
    pub sim: Sim,
    /// The config.
    pub cfg: Rc<TopologyConfig>,
    /// The nodes.
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

    /// The services of a live node.
    pub fn services(&self, node: NodeId) -> Option<Rc<NodeServices>> {
        services(&self.sim, node)
    }

    /// Some live node's services (lowest id first).
    pub fn any_live(&self) -> Option<Rc<NodeServices>> {
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
