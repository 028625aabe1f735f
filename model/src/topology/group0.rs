//! group0 as the topology area sees it: the topology state machine ([`TopologySm`]) and a
//! handle ([`Group0`]) with the method names of `model::raft::Raft`.
//!
//! [`TopologySm::apply`] is where every node mirrors group0 mechanically (SPEC §2.2): after each
//! applied change it publishes the new token-metadata version to the node's erm tracker and runs
//! the session mirror step, in the same atomic step. It also records the history events of each
//! commit once per group0 index (replays on restart do not duplicate them).
//!
//! TEMPORARY: until `helper/raft` lands, [`Group0`] is a single-sequencer stand-in (one log per
//! run, leader = lowest-id live member, term bumped whenever the leader changes, every live
//! member applies at commit). It keeps the same method names so the switch is local to this file.

use super::data::ErmTracker;
use super::events::TopologyEvent;
use super::ids::NodeId;
use super::session::SessionManager;
use super::state::{ApplyOutcome, Group0Command, TopologyState};
use sim::sync::Notify;
use sim::time::{sleep, Duration};
use sim::Sim;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// The group0 indexes whose events were recorded already (run-scoped, via `sim.ext`).
#[derive(Default)]
struct Recorded(RefCell<BTreeSet<u64>>);

/// The node-local effects of applying group0: erm versions and sessions.
#[derive(Clone)]
pub struct NodeHooks {
    /// This node.
    pub node: NodeId,
    /// The node's session manager.
    pub sessions: SessionManager,
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
}

impl TopologySm {
    /// A state machine starting from `initial`.
    pub fn new(sim: &Sim, initial: TopologyState, hooks: NodeHooks) -> Self {
        let sm = Self {
            sim: sim.clone(),
            state: initial,
            hooks,
            applied: 0,
        };
        sm.publish();
        sm
    }

    /// The last applied index.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    fn publish(&self) {
        let v = self.state.version;
        self.hooks.erm.set_current(v);
        let fx = self.hooks.sessions.mirror(&self.state.open_sessions());
        for s in fx.closing {
            let guards = self.hooks.sessions.with(|r| r.guards(s));
            self.sim.record(
                Some(self.hooks.node),
                TopologyEvent::SessionClosing {
                    session: s,
                    guards,
                    version: v,
                },
            );
        }
        for s in fx.created {
            self.sim.record(
                Some(self.hooks.node),
                TopologyEvent::SessionOpened {
                    session: s,
                    version: v,
                },
            );
        }
    }

    /// Apply the command at `index` (every node applies the same sequence).
    pub fn apply(&mut self, index: u64, cmd: &Group0Command) {
        assert_eq!(index, self.applied + 1, "group0 applies in order");
        self.applied = index;
        let check_guard = !self.sim.mutant("coordinator-ignores-term");
        let (outcome, commits) = self.state.apply(index, cmd, check_guard);
        let first = self.sim.ext::<Recorded>().0.borrow_mut().insert(index);
        if first {
            let node = Some(self.hooks.node);
            match (&outcome, cmd) {
                (ApplyOutcome::Rejected(r), _) => {
                    self.sim.record(
                        node,
                        TopologyEvent::CommandRejected {
                            index,
                            reason: format!("{r:?}"),
                        },
                    );
                }
                (ApplyOutcome::Applied, Group0Command::FencePreviousCoordinator { term }) => {
                    self.sim.record(
                        node,
                        TopologyEvent::CoordinatorFenced { index, term: *term },
                    );
                }
                (ApplyOutcome::Applied, Group0Command::Change(ch)) => {
                    for c in &commits {
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
        if outcome == ApplyOutcome::Applied {
            self.publish();
        }
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

struct Member {
    incarnation: u32,
    sm: Rc<RefCell<TopologySm>>,
    changed: Notify,
}

/// The stand-in's run-wide sequencer.
#[derive(Default)]
struct Hub {
    log: RefCell<Vec<Group0Command>>,
    term: Cell<u64>,
    leader: Cell<Option<NodeId>>,
    leader_incarnation: Cell<u32>,
    members: RefCell<BTreeMap<NodeId, Member>>,
}

impl Hub {
    fn refresh_leader(&self, sim: &Sim) {
        let cur = self.leader.get();
        let alive = |n: NodeId| {
            sim.is_up(n)
                && !sim.is_paused(n)
                && self
                    .members
                    .borrow()
                    .get(&n)
                    .is_some_and(|m| m.incarnation == sim.incarnation(n))
        };
        // A restarted leader is a new incarnation: it must win a new term like anyone else.
        if cur.is_some_and(|n| alive(n) && sim.incarnation(n) == self.leader_incarnation.get()) {
            return;
        }
        let next = self.members.borrow().keys().copied().find(|n| alive(*n));
        if next != cur || next.is_some() {
            self.leader.set(next);
            self.leader_incarnation
                .set(next.map_or(0, |n| sim.incarnation(n)));
            self.term.set(self.term.get() + 1);
            for m in self.members.borrow().values() {
                m.changed.notify();
            }
        }
    }

    fn catch_up(&self, sim: &Sim) {
        let log = self.log.borrow();
        for (n, m) in self.members.borrow().iter() {
            if !sim.is_up(*n) || sim.incarnation(*n) != m.incarnation {
                continue;
            }
            let mut sm = m.sm.borrow_mut();
            let mut progressed = false;
            while (sm.applied() as usize) < log.len() {
                let i = sm.applied() as usize;
                sm.apply(i as u64 + 1, &log[i]);
                progressed = true;
            }
            drop(sm);
            if progressed {
                m.changed.notify();
            }
        }
    }
}

/// A node's handle on group0 (the method names of `model::raft::Raft`).
#[derive(Clone)]
pub struct Group0 {
    sim: Sim,
    node: NodeId,
    hub: Rc<Hub>,
    sm: Rc<RefCell<TopologySm>>,
    changed: Notify,
}

impl Group0 {
    /// Join group0 on this node incarnation with a fresh state machine (it replays the log).
    pub fn start(sim: &Sim, node: NodeId, sm: TopologySm) -> Group0 {
        let hub = sim.ext::<Hub>();
        let sm = Rc::new(RefCell::new(sm));
        let changed = Notify::new();
        hub.members.borrow_mut().insert(
            node,
            Member {
                incarnation: sim.incarnation(node),
                sm: sm.clone(),
                changed: changed.clone(),
            },
        );
        hub.catch_up(sim);
        hub.refresh_leader(sim);
        Group0 {
            sim: sim.clone(),
            node,
            hub,
            sm,
            changed,
        }
    }

    /// Propose a command (forwarded to the leader); resolves once committed and applied
    /// locally, with its index.
    pub async fn propose(&self, cmd: Group0Command) -> Result<u64, Group0Error> {
        sleep(Duration::from_millis(2)).await;
        self.hub.refresh_leader(&self.sim);
        if self.hub.leader.get().is_none() || !self.sim.is_up(self.node) {
            return Err(Group0Error::Unavailable);
        }
        let index = {
            let mut log = self.hub.log.borrow_mut();
            log.push(cmd);
            log.len() as u64
        };
        self.hub.catch_up(&self.sim);
        Ok(index)
    }

    /// Propose only if this node is the leader in exactly `term`.
    pub async fn propose_in_term(&self, term: u64, cmd: Group0Command) -> Result<u64, Group0Error> {
        self.hub.refresh_leader(&self.sim);
        if !self.is_leader() || self.term() != term {
            return Err(Group0Error::TermChanged);
        }
        sleep(Duration::from_millis(2)).await;
        self.hub.refresh_leader(&self.sim);
        if !self.is_leader() || self.term() != term {
            return Err(Group0Error::TermChanged);
        }
        let index = {
            let mut log = self.hub.log.borrow_mut();
            log.push(cmd);
            log.len() as u64
        };
        self.hub.catch_up(&self.sim);
        Ok(index)
    }

    /// Make the local state at least as new as the leader's commit index.
    pub async fn read_barrier(&self) -> Result<(), Group0Error> {
        sleep(Duration::from_millis(1)).await;
        self.hub.refresh_leader(&self.sim);
        if self.hub.leader.get().is_none() {
            return Err(Group0Error::Unavailable);
        }
        self.hub.catch_up(&self.sim);
        Ok(())
    }

    /// Read the local state machine.
    pub fn with_state<R>(&self, f: impl FnOnce(&TopologyState) -> R) -> R {
        f(&self.sm.borrow().state)
    }

    /// The last applied index.
    pub fn applied_index(&self) -> u64 {
        self.sm.borrow().applied()
    }

    /// Resolves when something was applied or leadership changed.
    pub async fn changed(&self) {
        self.changed.notified().await
    }

    /// Is this node the leader?
    pub fn is_leader(&self) -> bool {
        self.hub.refresh_leader(&self.sim);
        self.hub.leader.get() == Some(self.node)
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.hub.term.get()
    }

    /// The current leader.
    pub fn leader(&self) -> Option<NodeId> {
        self.hub.refresh_leader(&self.sim);
        self.hub.leader.get()
    }
}

/// The current group0 leader of the run, for the nemesis's `kill_leader` (stand-in only).
pub fn current_leader(sim: &Sim) -> Option<NodeId> {
    let hub = sim.ext::<Hub>();
    hub.refresh_leader(sim);
    hub.leader.get()
}
