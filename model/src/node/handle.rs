//! The low-level handle of one node incarnation ([`NodeHandle`]): what every service of the
//! node may use — the world, the node's id and incarnation, the cluster config, the injection
//! registry, its group0 member, its erm tracker, its shards (each with its own session
//! registry) and its batchlog state. There is no node-local fence: writes are fenced on
//! group0's `fence_version`. Services (data plane, barrier, streaming, cleanup, the
//! coordinator) depend on
//! this handle only, never on the assembler in [`crate::node`], so the import graph has no
//! cycle: `node/mod.rs` → services → `node/handle.rs` → group0, sessions, erm.
//!
//! The handle of a node's current incarnation is found with [`lookup`] (a client routing from
//! that node, a scenario reading its state); a crashed node's handle is never returned.

use crate::batchlog::state::NodeBatchlog;
use crate::batchlog::BatchlogConfig;
use crate::topology::config::TopologyConfig;
use crate::topology::erm::ErmTracker;
use crate::topology::group0::Group0;
use crate::topology::ids::{NodeId, ShardId, TabletId};
use crate::topology::session::SessionManager;
use fault_injection::injection::Injections;
use sim::sync::Notify;
use sim::{RpcError, Sim};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

/// The per-shard services of a node (SPEC §2.1: the session registry is per shard; the group0
/// apply mirrors the same set into every shard's registry in one atomic step).
pub struct Shard {
    /// This shard.
    pub id: ShardId,
    /// The shard's session registry and topology guards.
    pub sessions: SessionManager,
}

/// The result slot of a replica-side tablet operation, shared by joiners (SPEC §1.6 step 2).
#[derive(Default)]
struct JoinSlot {
    result: RefCell<Option<Result<u64, RpcError>>>,
    done: Notify,
}

/// One node incarnation, as its services see it.
pub struct NodeHandle {
    /// The simulation the node lives in.
    pub sim: Sim,
    /// This node.
    pub node: NodeId,
    /// This incarnation (bumped by every restart).
    pub incarnation: u32,
    /// Cluster config.
    pub cfg: Rc<TopologyConfig>,
    /// The `batchlog` config section.
    pub bl: Rc<BatchlogConfig>,
    /// The node's batchlog (tables on shard 0, replay state).
    pub batchlog: NodeBatchlog,
    /// This node's group0 member.
    pub g0: Group0,
    /// The node's erm tracker (token-metadata versions held by in-flight operations).
    pub erm: ErmTracker,
    /// Per-shard services, indexed by shard id.
    pub shards: Vec<Shard>,
    /// Injection registry of the run.
    pub inj: Rc<Injections>,
    /// The last barrier (term, id) this node saw, for the command-index check.
    pub last_barrier: Cell<(u64, u64)>,
    /// A joining node: the coordinator's `join_node_response`, once it arrived.
    pub join_accepted: Cell<Option<bool>>,
    ops: RefCell<BTreeMap<(TabletId, &'static str), Rc<JoinSlot>>>,
}

impl NodeHandle {
    /// A handle over freshly started services. `shards` must list shards `0..n` in order.
    pub fn new(
        ctx: &sim::NodeCtx,
        cfg: Rc<TopologyConfig>,
        bl: Rc<BatchlogConfig>,
        g0: Group0,
        erm: ErmTracker,
        shards: Vec<Shard>,
    ) -> NodeHandle {
        assert!(!shards.is_empty(), "a node has at least one shard");
        assert!(
            shards.iter().enumerate().all(|(i, s)| s.id.0 as usize == i),
            "shards are listed in id order from 0"
        );
        NodeHandle {
            sim: ctx.sim.clone(),
            node: ctx.node,
            incarnation: ctx.incarnation,
            inj: Injections::of(&ctx.sim),
            batchlog: NodeBatchlog::open(&ctx.sim, ctx.node, &bl),
            cfg,
            bl,
            g0,
            erm,
            shards,
            last_barrier: Cell::new((0, 0)),
            join_accepted: Cell::new(None),
            ops: RefCell::new(BTreeMap::new()),
        }
    }

    /// The session registry of `shard`.
    pub fn sessions(&self, shard: ShardId) -> &SessionManager {
        &self
            .shards
            .get(shard.0 as usize)
            .unwrap_or_else(|| panic!("{} has no shard {}", self.node, shard.0))
            .sessions
    }

    /// Writes routed with a version below this are rejected: group0's `fence_version` as this
    /// node has applied it (upstream keeps no other, local fence; SPEC §2.4 step 5).
    pub fn fence(&self) -> u64 {
        self.g0.with_state(|s| s.fence_version)
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
struct Registry(RefCell<BTreeMap<NodeId, Rc<NodeHandle>>>);

/// Publish `h` as its node's current incarnation (called once per boot by the assembler).
pub fn register(h: &Rc<NodeHandle>) {
    let prev = h
        .sim
        .ext::<Registry>()
        .0
        .borrow_mut()
        .insert(h.node, h.clone());
    assert!(
        prev.is_none_or(|p| p.incarnation < h.incarnation),
        "{} registered twice in incarnation {}",
        h.node,
        h.incarnation
    );
}

/// The handle of `node`'s current incarnation, if it is up.
pub fn lookup(sim: &Sim, node: NodeId) -> Option<Rc<NodeHandle>> {
    let h = sim.ext::<Registry>().0.borrow().get(&node).cloned()?;
    (sim.is_up(node) && h.incarnation == sim.incarnation(node)).then_some(h)
}
