//! group0 as the topology area sees it: the topology state machine ([`TopologySm`]) and a
//! handle ([`Group0`]) with the method names of `model::raft::Raft`.
//!
//! [`TopologySm::apply`] is where every node mirrors group0 mechanically (SPEC §2.2): after each
//! applied change it publishes the new token-metadata version to the node's erm tracker and runs
//! the session mirror step, in the same atomic step. It also records the history events of each
//! commit once per group0 index (replays on restart do not duplicate them).
//!
//! Every node also mirrors the applied state into its `system.topology` and `system.tablets`
//! tables on the storage engine, checked against the re-applied log on restart
//! ([`super::system_tables`]).
//!
//! [`Group0`] is a thin handle over `model::raft::Raft<TopologySm>` (every node of the cluster is
//! a voting member), mapping Raft's errors onto the two the topology code distinguishes.

use super::erm::ErmTracker;
use super::events::TopologyEvent;
use super::ids::{NodeId, ShardId};
use super::session::SessionManager;
use super::state::{ApplyOutcome, Group0Command, TopologyState};
use super::system_tables::Group0Tables;
use crate::raft::{Raft, RaftConfig, RaftError, StateMachine};
use sim::{NodeCtx, Sim};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// The group0 indexes whose events were recorded already (run-scoped, via `sim.ext`).
#[derive(Default)]
struct Recorded(RefCell<BTreeSet<u64>>);

/// The node-local effects of applying group0: erm versions and sessions.
#[derive(Clone)]
pub struct NodeHooks {
    /// This node.
    pub node: NodeId,
    /// Every shard's session registry: one apply mirrors the same open set into all of them
    /// (upstream runs the mirror step on every shard before the apply completes).
    pub sessions: Vec<(ShardId, SessionManager)>,
    /// The node's erm (token metadata version) tracker.
    pub erm: ErmTracker,
}

/// The topology state machine of one node incarnation.
pub struct TopologySm {
    sim: Sim,
    /// The replicated state.
    pub state: TopologyState,
    hooks: NodeHooks,
    applied: u64,
    /// The node's `system.topology` / `system.tablets` (none in pure tests).
    tables: Option<Group0Tables>,
}

impl TopologySm {
    /// A state machine starting from `initial`.
    pub fn new(sim: &Sim, initial: TopologyState, hooks: NodeHooks) -> Self {
        let sm = Self {
            sim: sim.clone(),
            state: initial,
            hooks,
            applied: 0,
            tables: None,
        };
        sm.publish();
        sm
    }

    /// Mirrors every applied state into the node's state tables (`topology::system_tables`).
    pub fn with_tables(mut self, tables: Group0Tables) -> Self {
        self.tables = Some(tables);
        self
    }

    /// The last applied index.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    fn publish(&self) {
        let v = self.state.version;
        self.hooks.erm.set_current(v);
        let open = self.state.open_sessions();
        for (shard, sessions) in &self.hooks.sessions {
            let fx = sessions.mirror(&open);
            for s in fx.closing {
                let guards = sessions.with(|r| r.guards(s));
                tracing::info!(session = %s, shard = shard.0, version = v, guards, "session {s} closing on shard {} at v{v}: group0 no longer lists it; {guards} live guard(s) to drain", shard.0);
                self.sim.record(
                    Some(self.hooks.node),
                    TopologyEvent::SessionClosing {
                        shard: *shard,
                        session: s,
                        guards,
                        version: v,
                    },
                );
            }
            for s in fx.created {
                tracing::info!(session = %s, shard = shard.0, version = v, "session {s} opened on shard {} at v{v}", shard.0);
                self.sim.record(
                    Some(self.hooks.node),
                    TopologyEvent::SessionOpened {
                        shard: *shard,
                        session: s,
                        version: v,
                    },
                );
            }
        }
    }

    /// Apply the command at `index` (every node applies the same sequence).
    pub fn apply(&mut self, index: u64, cmd: &Group0Command) {
        assert!(index > self.applied, "group0 applies in order");
        self.applied = index;
        let check_guard = !self.sim.mutant("coordinator-ignores-term");
        self.state.views.flags = crate::view::state::ViewFlags {
            no_abort_on_migration: self.sim.mutant(crate::view::state::NO_ABORT_ON_MIGRATION),
            no_rollback_on_revert: self.sim.mutant(crate::view::state::NO_ROLLBACK_ON_REVERT),
        };
        let mut node_commit = None;
        let (outcome, commits) = match cmd {
            Group0Command::Node(ch) => {
                let (o, c) = self.state.apply_node_command(index, ch, check_guard);
                node_commit = c;
                (o, vec![])
            }
            _ => self.state.apply(index, cmd, check_guard),
        };
        let view_events = std::mem::take(&mut self.state.views.events);
        let first = self.sim.ext::<Recorded>().0.borrow_mut().insert(index);
        if first {
            let node = Some(self.hooks.node);
            match (&outcome, cmd) {
                (ApplyOutcome::Rejected(r), _) => {
                    tracing::info!(
                        index,
                        "group0 command at index {index} rejected on apply: {r:?}"
                    );
                    self.sim.record(
                        node,
                        TopologyEvent::CommandRejected {
                            index,
                            reason: format!("{r:?}"),
                        },
                    );
                }
                (ApplyOutcome::Applied, Group0Command::FencePreviousCoordinator { term }) => {
                    tracing::info!(
                        index,
                        term,
                        "coordinators of terms before {term} fenced (group0 index {index})"
                    );
                    self.sim.record(
                        node,
                        TopologyEvent::CoordinatorFenced { index, term: *term },
                    );
                }
                (ApplyOutcome::Applied, Group0Command::Node(ch)) => {
                    let c = node_commit
                        .as_ref()
                        .expect("an applied node change commits");
                    self.sim.record(
                        node,
                        TopologyEvent::TopologyCommitted {
                            index,
                            version: self.state.version,
                            fence_version: self.state.fence_version,
                            excluded: self.state.excluded.iter().copied().collect(),
                            origin: ch.origin.clone(),
                        },
                    );
                    tracing::info!(index, node = %c.node, version = self.state.version, session = %sim::log::opt(&c.session), "{}: {} ({}), transition state {} committed at v{} by {} (group0 index {index})", c.node, c.state, ch.origin, sim::log::opt(&c.transition), self.state.version, ch.origin);
                    self.sim.record(
                        node,
                        TopologyEvent::NodeTransitionCommitted {
                            index,
                            term: ch.term,
                            version: self.state.version,
                            node: c.node,
                            node_state: c.state.to_string(),
                            transition_state: c.transition.map(|t| t.name().to_string()),
                            session: c.session,
                            origin: ch.origin.clone(),
                        },
                    );
                }
                (ApplyOutcome::Applied, Group0Command::View(ch)) => {
                    tracing::info!(index, term = %sim::log::opt(&ch.term), "view building change by {} applied at group0 index {index}: {} op(s)", ch.origin, ch.ops.len());
                }
                (ApplyOutcome::Applied, Group0Command::Change(ch)) => {
                    self.sim.record(
                        node,
                        TopologyEvent::TopologyCommitted {
                            index,
                            version: self.state.version,
                            fence_version: self.state.fence_version,
                            excluded: self.state.excluded.iter().copied().collect(),
                            origin: ch.origin.clone(),
                        },
                    );
                    for c in &commits {
                        tracing::info!(index, term = %sim::log::opt(&ch.term), version = self.state.version, tablet = %c.tablet, session = %sim::log::opt(&c.session), "{} stage {} -> {} committed at v{} by {} (group0 index {index}); replicas {}, new replicas {}", c.tablet, sim::log::opt(&c.from), sim::log::opt(&c.stage), self.state.version, ch.origin, sim::log::list(&c.replicas), sim::log::list(&c.new_replicas));
                        self.sim.record(
                            node,
                            TopologyEvent::StageCommitted {
                                index,
                                term: ch.term,
                                fenced_term: self.state.coordinator_term,
                                version: self.state.version,
                                tablet: c.tablet,
                                migration: c.migration,
                                from: c.from,
                                stage: c.stage,
                                session: c.session,
                                replicas: c.replicas.clone(),
                                new_replicas: c.new_replicas.clone(),
                                origin: ch.origin.clone(),
                            },
                        );
                    }
                }
            }
        }
        if first && outcome == ApplyOutcome::Applied {
            for ev in view_events {
                crate::view::events::record(&self.sim, self.hooks.node, ev);
            }
        }
        if outcome == ApplyOutcome::Applied {
            self.publish();
        }
        if let Some(t) = &mut self.tables {
            t.on_apply(index, &self.state);
        }
    }
}

impl StateMachine for TopologySm {
    type Command = Group0Command;
    fn apply(&mut self, index: u64, cmd: &Group0Command) {
        TopologySm::apply(self, index, cmd)
    }

    /// Every node the topology lists (normal or joining) is a group0 member; those outside the
    /// initial voter set are its non-voters (see `topology::join`).
    fn members(&self) -> Option<Vec<NodeId>> {
        Some(self.state.nodes.keys().copied().collect())
    }
}

/// Why a group0 operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Group0Error {
    /// Not the leader in exactly the requested term (`term_changed_error`).
    TermChanged,
    /// No leader reachable / this node is going down.
    Unavailable,
}

/// A node's handle on group0 (the method names of `model::raft::Raft`).
#[derive(Clone)]
pub struct Group0 {
    raft: Raft<TopologySm>,
}

fn map_err(e: RaftError) -> Group0Error {
    match e {
        RaftError::TermChanged | RaftError::NotLeader => Group0Error::TermChanged,
        RaftError::Timeout | RaftError::Unavailable | RaftError::Dropped => {
            Group0Error::Unavailable
        }
    }
}

impl Group0 {
    /// Join group0 on this node incarnation with a fresh state machine (Raft re-applies the
    /// committed log to it). Call from inside the node's boot future.
    pub fn start(ctx: &NodeCtx, members: Vec<NodeId>, sm: TopologySm) -> Group0 {
        let raft = Raft::start(ctx, members, sm, RaftConfig::default());
        ctx.sim
            .ext::<Leaders>()
            .0
            .borrow_mut()
            .insert(ctx.node, (ctx.incarnation, raft.clone()));
        Group0 { raft }
    }

    /// Propose a command (forwarded to the leader); resolves once committed and applied
    /// locally, with its index.
    pub async fn propose(&self, cmd: Group0Command) -> Result<u64, Group0Error> {
        self.raft.propose(cmd).await.map_err(map_err)
    }

    /// Propose only if this node is the leader in exactly `term`.
    pub async fn propose_in_term(&self, term: u64, cmd: Group0Command) -> Result<u64, Group0Error> {
        self.raft.propose_in_term(term, cmd).await.map_err(map_err)
    }

    /// Make the local state at least as new as the leader's commit index.
    pub async fn read_barrier(&self) -> Result<(), Group0Error> {
        self.raft.read_barrier().await.map_err(map_err)
    }

    /// Read the local state machine.
    pub fn with_state<R>(&self, f: impl FnOnce(&TopologyState) -> R) -> R {
        self.raft.with_state(|sm| f(&sm.state))
    }

    /// The last applied index.
    pub fn applied_index(&self) -> u64 {
        self.raft.applied_index()
    }

    /// Resolves when something was applied or leadership changed.
    pub async fn changed(&self) {
        self.raft.changed().await
    }

    /// Is this node the leader?
    pub fn is_leader(&self) -> bool {
        self.raft.is_leader()
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raft.term()
    }

    /// The leader this node follows, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.raft.leader()
    }
}

/// Every node's current Raft handle (run-scoped), for the leader probe.
#[derive(Default)]
struct Leaders(RefCell<BTreeMap<NodeId, (u32, Raft<TopologySm>)>>);

/// The current group0 leader of the run (the live leader of the highest term), for the
/// nemesis's `kill_leader` and for scenarios.
pub fn current_leader(sim: &Sim) -> Option<NodeId> {
    let leaders = sim.ext::<Leaders>();
    let map = leaders.0.borrow();
    map.iter()
        .filter(|(n, (inc, r))| sim.is_running(**n, *inc) && !sim.is_paused(**n) && r.is_leader())
        .max_by_key(|(_, (_, r))| r.term())
        .map(|(n, _)| *n)
}
