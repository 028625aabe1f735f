//! The group0 topology state: `system.tablets` (one row per tablet of the test table) and
//! `system.topology` (version, fence_version, balancing, ignored nodes), plus the commands that
//! change it and their deterministic apply.
//!
//! Promise kept here: the *group0 guard* (SPEC §0). Every change carries the state id it was
//! built on and, for coordinator changes, the coordinator's term; apply rejects it (a value, not
//! a panic) when the state moved on or when a newer coordinator has fenced the term
//! (`fence_previous_coordinator`). Hence work of an old coordinator never takes effect after a
//! newer coordinator has started. The `coordinator-ignores-term` mutant switches the check off.

use super::ids::{NodeId, Replica, SessionId, TableId, TabletId};
use super::stage::{is_legal_successor, ReadSelector, Stage, WriteSelector};
use crate::view::state::{ViewBuildingState, ViewChange};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Transition kind (`system.tablets.transition`); only `migration` is modelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// Move one replica to another node (or shard).
    Migration,
}

/// The transition columns of a `system.tablets` row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// `transition`.
    pub kind: TransitionKind,
    /// `stage`.
    pub stage: Stage,
    /// `new_replicas` ("next").
    pub new_replicas: Vec<Replica>,
    /// `session`: set from `write_both_read_old` through `streaming`.
    pub session: Option<SessionId>,
    /// Migration id: the topology version at which the transition was created (unique).
    pub migration: u64,
}

/// One `system.tablets` row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TabletInfo {
    /// `replicas`: the current replica set.
    pub replicas: Vec<Replica>,
    /// The transition, if any.
    pub transition: Option<Transition>,
}

impl TabletInfo {
    /// The stage, if in transition.
    pub fn stage(&self) -> Option<Stage> {
        self.transition.as_ref().map(|t| t.stage)
    }

    /// The session of the transition, if any.
    pub fn session(&self) -> Option<SessionId> {
        self.transition.as_ref().and_then(|t| t.session)
    }

    /// The pending replica: next minus replicas.
    pub fn pending_replica(&self) -> Option<Replica> {
        let t = self.transition.as_ref()?;
        t.new_replicas
            .iter()
            .find(|r| !self.replicas.contains(r))
            .copied()
    }

    /// The leaving replica: replicas minus next.
    pub fn leaving_replica(&self) -> Option<Replica> {
        let t = self.transition.as_ref()?;
        self.replicas
            .iter()
            .find(|r| !t.new_replicas.contains(r))
            .copied()
    }

    /// Replicas that writes go to, by the stage's write selector (SPEC §1.3).
    pub fn write_replicas(&self) -> Vec<Replica> {
        let Some(t) = &self.transition else {
            return self.replicas.clone();
        };
        match t.stage.write_selector() {
            WriteSelector::Previous => self.replicas.clone(),
            WriteSelector::Next => t.new_replicas.clone(),
            WriteSelector::Both => {
                let mut v = self.replicas.clone();
                for r in &t.new_replicas {
                    if !v.contains(r) {
                        v.push(*r);
                    }
                }
                v
            }
        }
    }

    /// Replicas that reads go to, by the stage's read selector (SPEC §1.3).
    pub fn read_replicas(&self) -> Vec<Replica> {
        match &self.transition {
            Some(t) if t.stage.read_selector() == ReadSelector::Next => t.new_replicas.clone(),
            _ => self.replicas.clone(),
        }
    }
}

/// `system.topology.node_state` of one node (upstream `docs/dev/topology-over-raft.md`); only
/// the states of a join are modelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Asked to join (`join_node_request`), not accepted yet: no tablets, no barriers.
    None,
    /// Accepted and joining: barriers target it, it holds no tablets yet.
    Bootstrapping,
    /// A member that serves tablets.
    Normal,
    /// Rejected (or left): never a member again.
    Left,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeState::None => "none",
            NodeState::Bootstrapping => "bootstrapping",
            NodeState::Normal => "normal",
            NodeState::Left => "left",
        })
    }
}

/// `system.topology.transition_state` of a node operation (the join path of upstream's
/// topology coordinator; `tablet_migration` is derived from the tablet rows instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeTransition {
    /// The node was accepted: group0 adds it as a non-voter, the coordinator answers it.
    JoinGroup0,
    /// Tokens and the CDC generation data are written; a plain barrier follows.
    CommitCdcGeneration,
    /// The topology session is open; `barrier_and_drain`, then `stream_ranges` on the node.
    WriteBothReadOld,
    /// The session is deleted; a `barrier_and_drain` closes and drains it everywhere.
    WriteBothReadNew,
}

impl NodeTransition {
    /// The upstream name of the state.
    pub fn name(&self) -> &'static str {
        match self {
            NodeTransition::JoinGroup0 => "join_group0",
            NodeTransition::CommitCdcGeneration => "commit_cdc_generation",
            NodeTransition::WriteBothReadOld => "write_both_read_old",
            NodeTransition::WriteBothReadNew => "write_both_read_new",
        }
    }
}

impl std::fmt::Display for NodeTransition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The group0 topology state machine's data.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TopologyState {
    /// The group0 state id: bumped by every applied (not rejected) command.
    pub state_id: u64,
    /// `system.topology.version`: bumped by every tablet or topology transition commit.
    pub version: u64,
    /// `system.topology.fence_version`.
    pub fence_version: u64,
    /// The term of the newest coordinator that committed `fence_previous_coordinator`.
    pub coordinator_term: u64,
    /// `system.topology.tablet_balancing_enabled`.
    pub tablet_balancing_enabled: bool,
    /// Normal and transitioning (bootstrapping) nodes and their shard counts: the nodes a
    /// barrier targets.
    pub nodes: BTreeMap<NodeId, u32>,
    /// `system.topology` node rows: the `node_state` of every node that joined or asked to.
    #[serde(default)]
    pub node_states: BTreeMap<NodeId, NodeState>,
    /// Pending `join` requests (`topology_request`): node → its shard count.
    #[serde(default)]
    pub join_requests: BTreeMap<NodeId, u32>,
    /// The node operation in progress: the node worked on and `transition_state`.
    #[serde(default)]
    pub node_transition: Option<(NodeId, NodeTransition)>,
    /// `system.topology.session`: the topology-wide session of a node operation (set in
    /// `write_both_read_old`, deleted on the edge to `write_both_read_new`).
    #[serde(default)]
    pub session: Option<SessionId>,
    /// `topology.ignored_nodes`: excluded (dead) nodes; barriers skip them.
    pub excluded: BTreeSet<NodeId>,
    /// `system.tablets` of the test table.
    pub tablets: BTreeMap<TabletId, TabletInfo>,
    /// The next fresh session id (session ids are never reused).
    pub next_session: u64,
    /// Outcome of recently applied commands, by group0 index (bounded).
    pub outcomes: BTreeMap<u64, ApplyOutcome>,
    /// The view-building state (`view_building_tasks`, processed base, build statuses; SPEC
    /// §6.2), changed by [`Group0Command::View`] and by the tablet hooks of SPEC §6.9.
    #[serde(default)]
    pub views: ViewBuildingState,
}

/// Keep this many recent outcomes for proposers to look up.
const OUTCOMES_KEPT: usize = 512;

/// A group0 command of the topology area.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Group0Command {
    /// The empty topology change a new coordinator commits first, fencing older terms.
    FencePreviousCoordinator {
        /// The new coordinator's term.
        term: u64,
    },
    /// A guarded change to `system.tablets` / `system.topology`.
    Change(TopologyChange),
    /// A guarded change to the view-building state (SPEC §6.2).
    View(ViewChange),
    /// A guarded change of one node's row and the node operation's `transition_state`.
    Node(NodeChange),
}

/// A guarded node-operation change (one group0 command).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeChange {
    /// The state id the writer's group0 guard was taken on.
    pub base_state_id: u64,
    /// The coordinator's term (`None` for the `join_node_request` handler's write).
    pub term: Option<u64>,
    /// The node worked on.
    pub node: NodeId,
    /// What changes.
    pub op: NodeOp,
    /// Short description of the writer, for the history.
    pub origin: String,
}

/// One step of the join path (upstream `topology_coordinator::handle_node_transition` and
/// the `join_group0` … `write_both_read_new` transition states).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeOp {
    /// `join_node_request`: a node row in state `none` with a `join` request.
    RequestJoin {
        /// The joining node's shard count.
        shards: u32,
    },
    /// "bootstrap: accept node": `bootstrapping`, `transition_state := join_group0`.
    Accept,
    /// The join was not accepted (the answer to the node failed): `left`, no transition.
    Reject,
    /// "bootstrap: insert tokens and CDC generation data": `commit_cdc_generation`.
    CommitCdcGeneration,
    /// "committed new CDC generation": `write_both_read_old`, `session :=` a fresh id,
    /// version+1.
    WriteBothReadOld {
        /// The fresh topology session.
        session: SessionId,
    },
    /// "streaming completed": `write_both_read_new`, session deleted, version+1.
    WriteBothReadNew,
    /// "bootstrap: read fence completed": the node is `normal`, no transition.
    Normal,
}

impl NodeOp {
    /// The transition state this op requires (`None`: no node operation in progress).
    fn requires(&self) -> Option<NodeTransition> {
        match self {
            NodeOp::RequestJoin { .. } | NodeOp::Accept => None,
            NodeOp::Reject | NodeOp::CommitCdcGeneration => Some(NodeTransition::JoinGroup0),
            NodeOp::WriteBothReadOld { .. } => Some(NodeTransition::CommitCdcGeneration),
            NodeOp::WriteBothReadNew => Some(NodeTransition::WriteBothReadOld),
            NodeOp::Normal => Some(NodeTransition::WriteBothReadNew),
        }
    }
}

/// What an applied node-operation command changed (what the history records).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NodeCommit {
    /// The node.
    pub node: NodeId,
    /// Its state after the command.
    pub state: NodeState,
    /// `transition_state` after the command (a node operation's).
    pub transition: Option<NodeTransition>,
    /// `system.topology.session` after the command.
    pub session: Option<SessionId>,
}

/// A guarded change (one group0 command; a coordinator pass batches all its mutations here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyChange {
    /// The state id the writer's group0 guard was taken on.
    pub base_state_id: u64,
    /// The coordinator's term, for coordinator changes (`None` for API writes).
    pub term: Option<u64>,
    /// Tablet mutations.
    pub updates: Vec<TabletUpdate>,
    /// `fence_version :=` (the version a completed global barrier was run on).
    pub fence_version: Option<u64>,
    /// `tablet_balancing_enabled :=`.
    pub set_balancing: Option<bool>,
    /// Nodes to add to `ignored_nodes`.
    pub exclude: Vec<NodeId>,
    /// Short description of the writer, for the history ("coordinator", "move_tablet", …).
    pub origin: String,
}

/// One tablet mutation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TabletUpdate {
    /// Create a `migration` transition at `allow_write_both_read_old`.
    Start {
        /// The tablet.
        tablet: TabletId,
        /// `new_replicas`.
        new_replicas: Vec<Replica>,
    },
    /// Move from stage `from` to stage `to`, setting or deleting the session.
    Stage {
        /// The tablet.
        tablet: TabletId,
        /// The stage the writer saw.
        from: Stage,
        /// The new stage.
        to: Stage,
        /// The session after the change (`None` deletes it).
        session: Option<SessionId>,
    },
    /// Delete the transition: at `end_migration` replicas := next; at `revert_migration`
    /// replicas unchanged.
    Finish {
        /// The tablet.
        tablet: TabletId,
        /// The stage the writer saw (`end_migration` or `revert_migration`).
        from: Stage,
    },
}

impl TabletUpdate {
    /// The tablet this update touches.
    pub fn tablet(&self) -> TabletId {
        match self {
            TabletUpdate::Start { tablet, .. }
            | TabletUpdate::Stage { tablet, .. }
            | TabletUpdate::Finish { tablet, .. } => *tablet,
        }
    }
}

/// The result of applying one command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApplyOutcome {
    /// Applied; state id and possibly version moved.
    Applied,
    /// Rejected by the group0 guard or by validation; nothing changed.
    Rejected(RejectReason),
}

/// Why a command was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// The state moved on since the guard was taken (concurrent modification).
    StateChanged {
        /// The guard's state id.
        base: u64,
        /// The current state id.
        current: u64,
    },
    /// The coordinator's term was fenced by a newer coordinator (`term_changed_error`).
    TermFenced {
        /// The command's term.
        term: u64,
        /// The fenced term.
        fenced: u64,
    },
    /// A stale fence (term not newer than the current coordinator's).
    StaleFence,
    /// The change is not valid for the current state (e.g. tablet already in transition).
    Invalid(String),
}

/// One tablet row change made by an applied command (what the history records).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TabletCommit {
    /// The tablet.
    pub tablet: TabletId,
    /// Stage before the command.
    pub from: Option<Stage>,
    /// Stage after the command.
    pub stage: Option<Stage>,
    /// Session after the command.
    pub session: Option<SessionId>,
    /// Replicas after the command.
    pub replicas: Vec<Replica>,
    /// New replicas after the command (empty when no transition).
    pub new_replicas: Vec<Replica>,
    /// Migration id of the transition this commit belongs to.
    pub migration: u64,
}

impl TopologyState {
    /// The initial state of one user table (the first, [`TableId::user`]`(0)`): tablet `i` on
    /// `placement[i]`, no transition, balancing on.
    pub fn initial(nodes: BTreeMap<NodeId, u32>, placement: Vec<Vec<Replica>>) -> Self {
        Self::initial_tables(nodes, vec![(TableId::user(0), placement)])
    }

    /// The initial state of several tables: for each table, tablet `i` on `placement[i]`.
    pub fn initial_tables(
        nodes: BTreeMap<NodeId, u32>,
        tables: Vec<(TableId, Vec<Vec<Replica>>)>,
    ) -> Self {
        let mut tablets = BTreeMap::new();
        for (table, placement) in tables {
            assert!(!placement.is_empty(), "{table} has at least one tablet");
            for (i, replicas) in placement.into_iter().enumerate() {
                assert!(!replicas.is_empty(), "a tablet has at least one replica");
                let prev = tablets.insert(
                    TabletId::new(table, i as u32),
                    TabletInfo {
                        replicas,
                        transition: None,
                    },
                );
                assert!(prev.is_none(), "{table} listed twice");
            }
        }
        Self {
            state_id: 0,
            version: 1,
            fence_version: 0,
            coordinator_term: 0,
            tablet_balancing_enabled: true,
            node_states: nodes.keys().map(|n| (*n, NodeState::Normal)).collect(),
            join_requests: BTreeMap::new(),
            node_transition: None,
            session: None,
            nodes,
            excluded: BTreeSet::new(),
            tablets,
            next_session: 1,
            outcomes: BTreeMap::new(),
            views: ViewBuildingState::default(),
        }
    }

    /// The tablets of `table`, in index order.
    pub fn tablets_of(&self, table: TableId) -> impl Iterator<Item = (&TabletId, &TabletInfo)> {
        self.tablets
            .range(TabletId::new(table, 0)..=TabletId::new(table, u32::MAX))
    }

    /// The user tables that have tablets, in id order.
    pub fn tables(&self) -> Vec<TableId> {
        let mut v: Vec<TableId> = self.tablets.keys().map(|t| t.table).collect();
        v.dedup();
        v
    }

    /// `transition_state`: `tablet_migration` while any tablet is in transition.
    pub fn transition_state(&self) -> Option<&'static str> {
        if let Some((_, t)) = self.node_transition {
            return Some(t.name());
        }
        self.tablets
            .values()
            .any(|t| t.transition.is_some())
            .then_some("tablet_migration")
    }

    /// Is any tablet in transition (the `tablet_migration` track)?
    pub fn tablets_in_transition(&self) -> bool {
        self.tablets.values().any(|t| t.transition.is_some())
    }

    /// The nodes that hold tablets or may receive them: `normal` ones.
    pub fn normal_nodes(&self) -> BTreeMap<NodeId, u32> {
        self.nodes
            .iter()
            .filter(|(n, _)| {
                self.node_states
                    .get(n)
                    .is_none_or(|s| *s == NodeState::Normal)
            })
            .map(|(n, s)| (*n, *s))
            .collect()
    }

    /// group0's non-voters: nodes accepted into group0 by the join path (every node of the
    /// initial cluster is a voter; a node that joins later stays a non-voter, see the module
    /// header of `topology`).
    pub fn group0_non_voters(&self, voters: &[NodeId]) -> Vec<NodeId> {
        self.nodes
            .keys()
            .filter(|n| !voters.contains(n))
            .copied()
            .collect()
    }

    /// The sessions group0 lists as open: `topology.session` and the session of every tablet
    /// transition that has one (SPEC §2.2).
    pub fn open_sessions(&self) -> BTreeSet<SessionId> {
        self.tablets
            .values()
            .filter_map(|t| t.session())
            .chain(self.session)
            .collect()
    }

    /// Apply a node-operation command (`check_guard` as in [`TopologyState::apply`]).
    fn apply_node(
        &mut self,
        ch: &NodeChange,
        check_guard: bool,
    ) -> Result<NodeCommit, RejectReason> {
        if check_guard {
            if let Some(term) = ch.term {
                if term < self.coordinator_term {
                    return Err(RejectReason::TermFenced {
                        term,
                        fenced: self.coordinator_term,
                    });
                }
            }
            if ch.base_state_id != self.state_id {
                return Err(RejectReason::StateChanged {
                    base: ch.base_state_id,
                    current: self.state_id,
                });
            }
        }
        let n = ch.node;
        let cur = self.node_states.get(&n).copied();
        let invalid = |what: &str| Err(RejectReason::Invalid(format!("{n}: {what}")));
        match &ch.op {
            NodeOp::RequestJoin { .. } if cur.is_some() => return invalid("already known"),
            NodeOp::Accept
                if cur != Some(NodeState::None)
                    || !self.join_requests.contains_key(&n)
                    || self.node_transition.is_some()
                    || self.tablets_in_transition() =>
            {
                return invalid("no join request to accept, or the state machine is busy")
            }
            op if op.requires().is_some()
                && self.node_transition != op.requires().map(|t| (n, t)) =>
            {
                return invalid("not in the transition state this step leaves")
            }
            _ => {}
        }
        let mut bump = false;
        match &ch.op {
            NodeOp::RequestJoin { shards } => {
                self.node_states.insert(n, NodeState::None);
                self.join_requests.insert(n, *shards);
            }
            NodeOp::Accept => {
                let shards = self.join_requests.remove(&n).expect("checked");
                self.node_states.insert(n, NodeState::Bootstrapping);
                self.nodes.insert(n, shards);
                self.node_transition = Some((n, NodeTransition::JoinGroup0));
            }
            NodeOp::Reject => {
                self.node_states.insert(n, NodeState::Left);
                self.nodes.remove(&n);
                self.node_transition = None;
            }
            NodeOp::CommitCdcGeneration => {
                self.node_transition = Some((n, NodeTransition::CommitCdcGeneration));
            }
            NodeOp::WriteBothReadOld { session } => {
                self.node_transition = Some((n, NodeTransition::WriteBothReadOld));
                self.session = Some(*session);
                self.next_session = self.next_session.max(session.0 + 1);
                bump = true;
            }
            NodeOp::WriteBothReadNew => {
                self.node_transition = Some((n, NodeTransition::WriteBothReadNew));
                self.session = None;
                bump = true;
            }
            NodeOp::Normal => {
                self.node_states.insert(n, NodeState::Normal);
                self.node_transition = None;
            }
        }
        if bump {
            self.version += 1;
        }
        self.state_id += 1;
        Ok(NodeCommit {
            node: n,
            state: self.node_states[&n],
            transition: self.node_transition.map(|(_, t)| t),
            session: self.session,
        })
    }

    /// Apply a node-operation command at group0 `index` (see [`TopologyState::apply`]).
    pub fn apply_node_command(
        &mut self,
        index: u64,
        ch: &NodeChange,
        check_guard: bool,
    ) -> (ApplyOutcome, Option<NodeCommit>) {
        let (outcome, commit) = match self.apply_node(ch, check_guard) {
            Ok(c) => (ApplyOutcome::Applied, Some(c)),
            Err(r) => (ApplyOutcome::Rejected(r), None),
        };
        self.remember(index, outcome.clone());
        (outcome, commit)
    }

    fn remember(&mut self, index: u64, outcome: ApplyOutcome) {
        self.outcomes.insert(index, outcome);
        while self.outcomes.len() > OUTCOMES_KEPT {
            self.outcomes.pop_first();
        }
    }

    /// Outcome of the command applied at `index`, if still remembered.
    pub fn outcome(&self, index: u64) -> Option<&ApplyOutcome> {
        self.outcomes.get(&index)
    }

    /// Apply a command at group0 `index`. `check_guard=false` is the `coordinator-ignores-term`
    /// mutant: the state-id and term checks are skipped. Returns the outcome and the tablet
    /// rows it changed.
    pub fn apply(
        &mut self,
        index: u64,
        cmd: &Group0Command,
        check_guard: bool,
    ) -> (ApplyOutcome, Vec<TabletCommit>) {
        self.views.index = index;
        let (outcome, commits) = match cmd {
            Group0Command::FencePreviousCoordinator { term } => {
                if *term <= self.coordinator_term {
                    (ApplyOutcome::Rejected(RejectReason::StaleFence), vec![])
                } else {
                    self.coordinator_term = *term;
                    self.state_id += 1;
                    (ApplyOutcome::Applied, vec![])
                }
            }
            Group0Command::Change(ch) => match self.check(ch, check_guard) {
                Err(r) => (ApplyOutcome::Rejected(r), vec![]),
                Ok(()) => {
                    let commits = self.apply_change(ch, check_guard);
                    (ApplyOutcome::Applied, commits)
                }
            },
            Group0Command::Node(ch) => {
                return (self.apply_node_command(index, ch, check_guard).0, vec![]);
            }
            Group0Command::View(ch) => match self.check_view(ch, check_guard) {
                Err(r) => (ApplyOutcome::Rejected(r), vec![]),
                Ok(()) => {
                    self.state_id += 1;
                    (ApplyOutcome::Applied, vec![])
                }
            },
        };
        self.remember(index, outcome.clone());
        (outcome, commits)
    }

    /// The group0 guard of a view-building change, then its apply (all ops or none).
    fn check_view(&mut self, ch: &ViewChange, check_guard: bool) -> Result<(), RejectReason> {
        if check_guard {
            if let Some(term) = ch.term {
                if term < self.coordinator_term {
                    return Err(RejectReason::TermFenced {
                        term,
                        fenced: self.coordinator_term,
                    });
                }
            }
            if ch.base_state_id != self.state_id {
                return Err(RejectReason::StateChanged {
                    base: ch.base_state_id,
                    current: self.state_id,
                });
            }
        }
        self.views
            .apply(&ch.ops, &self.tablets)
            .map_err(RejectReason::Invalid)
    }

    fn check(&self, ch: &TopologyChange, check_guard: bool) -> Result<(), RejectReason> {
        if check_guard {
            if let Some(term) = ch.term {
                if term < self.coordinator_term {
                    return Err(RejectReason::TermFenced {
                        term,
                        fenced: self.coordinator_term,
                    });
                }
            }
            if ch.base_state_id != self.state_id {
                return Err(RejectReason::StateChanged {
                    base: ch.base_state_id,
                    current: self.state_id,
                });
            }
        }
        // Validation that holds whatever the guard: it protects the model's own consistency
        // (a stale command under the mutant may still pass it, as the stage checker will see).
        let mut touched = BTreeSet::new();
        for u in &ch.updates {
            let t = u.tablet();
            if !touched.insert(t) {
                return Err(RejectReason::Invalid(format!("{t} updated twice")));
            }
            let Some(info) = self.tablets.get(&t) else {
                return Err(RejectReason::Invalid(format!("no tablet {t}")));
            };
            match u {
                TabletUpdate::Start { new_replicas, .. } => {
                    if let Some((n, t)) = self.node_transition {
                        return Err(RejectReason::Invalid(format!("topology busy: {n} in {t}")));
                    }
                    if info.transition.is_some() {
                        return Err(RejectReason::Invalid(format!("{t} already in transition")));
                    }
                    if new_replicas.len() != info.replicas.len() {
                        return Err(RejectReason::Invalid("replica count changes".into()));
                    }
                }
                TabletUpdate::Stage { .. } | TabletUpdate::Finish { .. } => {
                    if info.transition.is_none() {
                        return Err(RejectReason::Invalid(format!("{t} not in transition")));
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_change(&mut self, ch: &TopologyChange, check_guard: bool) -> Vec<TabletCommit> {
        let mut commits = Vec::new();
        for u in &ch.updates {
            let t = u.tablet();
            let info = self.tablets.get_mut(&t).expect("checked");
            let from = info.stage();
            let (leaving, pending) = (info.leaving_replica(), info.pending_replica());
            let mut migration = info.transition.as_ref().map_or(0, |t| t.migration);
            match u {
                TabletUpdate::Start { new_replicas, .. } => {
                    info.transition = Some(Transition {
                        kind: TransitionKind::Migration,
                        stage: Stage::AllowWriteBothReadOld,
                        new_replicas: new_replicas.clone(),
                        session: None,
                        migration: self.version + 1,
                    });
                }
                TabletUpdate::Stage {
                    from: seen,
                    to,
                    session,
                    ..
                } => {
                    if check_guard {
                        assert_eq!(Some(*seen), from, "guarded command built on this state");
                        assert!(is_legal_successor(from, Some(*to)), "{from:?} -> {to}");
                    }
                    let tr = info.transition.as_mut().expect("checked");
                    if let Some(f) = from {
                        self.views.on_stage(t, f, *to, leaving);
                    }
                    tr.stage = *to;
                    tr.session = *session;
                    if let Some(s) = session {
                        self.next_session = self.next_session.max(s.0 + 1);
                    }
                }
                TabletUpdate::Finish { from: seen, .. } => {
                    if check_guard {
                        assert_eq!(Some(*seen), from, "guarded command built on this state");
                    }
                    let tr = info.transition.take().expect("checked");
                    migration = tr.migration;
                    if let Some(f) = from {
                        self.views.on_finish(t, f, leaving, pending);
                    }
                    if *seen == Stage::EndMigration {
                        info.replicas = tr.new_replicas;
                    }
                }
            }
            commits.push(TabletCommit {
                tablet: t,
                from,
                stage: info.stage(),
                session: info.session(),
                replicas: info.replicas.clone(),
                new_replicas: info
                    .transition
                    .as_ref()
                    .map(|t| t.new_replicas.clone())
                    .unwrap_or_default(),
                migration: info.transition.as_ref().map_or(migration, |t| t.migration),
            });
        }
        if let Some(v) = ch.fence_version {
            self.fence_version = self.fence_version.max(v);
        }
        if let Some(b) = ch.set_balancing {
            self.tablet_balancing_enabled = b;
        }
        self.excluded.extend(ch.exclude.iter().copied());
        if !ch.updates.is_empty() || ch.set_balancing.is_some() || !ch.exclude.is_empty() {
            self.version += 1;
        }
        self.state_id += 1;
        commits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::ids::ShardId;

    fn r(n: u32, s: u32) -> Replica {
        Replica {
            node: NodeId(n),
            shard: ShardId(s),
        }
    }

    fn change(st: &TopologyState, term: Option<u64>, updates: Vec<TabletUpdate>) -> Group0Command {
        Group0Command::Change(TopologyChange {
            base_state_id: st.state_id,
            term,
            updates,
            fence_version: None,
            set_balancing: None,
            exclude: vec![],
            origin: "test".into(),
        })
    }

    #[test]
    fn migration_commits_and_routing() {
        let mut st = TopologyState::initial(BTreeMap::new(), vec![vec![r(1, 0)]]);
        let t = TabletId::new(TableId::user(0), 0);
        let c = change(
            &st,
            None,
            vec![TabletUpdate::Start {
                tablet: t,
                new_replicas: vec![r(2, 0)],
            }],
        );
        let (o, commits) = st.apply(1, &c, true);
        assert_eq!(o, ApplyOutcome::Applied);
        assert_eq!(commits[0].stage, Some(Stage::AllowWriteBothReadOld));
        assert_eq!(st.version, 2);
        assert_eq!(st.transition_state(), Some("tablet_migration"));
        let info = &st.tablets[&t];
        assert_eq!(info.pending_replica(), Some(r(2, 0)));
        assert_eq!(info.leaving_replica(), Some(r(1, 0)));
        assert_eq!(info.write_replicas(), vec![r(1, 0)]);

        let c = change(
            &st,
            Some(1),
            vec![TabletUpdate::Stage {
                tablet: t,
                from: Stage::AllowWriteBothReadOld,
                to: Stage::WriteBothReadOld,
                session: Some(SessionId(st.next_session)),
            }],
        );
        st.apply(2, &c, true);
        assert_eq!(st.open_sessions().len(), 1);
        assert_eq!(st.tablets[&t].write_replicas(), vec![r(1, 0), r(2, 0)]);
        assert_eq!(st.tablets[&t].read_replicas(), vec![r(1, 0)]);
        assert_eq!(st.next_session, 2);
    }

    #[test]
    fn guard_rejects_moved_state_and_fenced_term() {
        let mut st = TopologyState::initial(BTreeMap::new(), vec![vec![r(1, 0)]]);
        let stale = change(
            &st,
            Some(1),
            vec![TabletUpdate::Start {
                tablet: TabletId::new(TableId::user(0), 0),
                new_replicas: vec![r(2, 0)],
            }],
        );
        // A new coordinator fences term 1.
        let (o, _) = st.apply(
            1,
            &Group0Command::FencePreviousCoordinator { term: 2 },
            true,
        );
        assert_eq!(o, ApplyOutcome::Applied);
        let (o, _) = st.apply(2, &stale, true);
        assert!(matches!(
            o,
            ApplyOutcome::Rejected(RejectReason::TermFenced { term: 1, fenced: 2 })
        ));
        assert_eq!(st.outcome(2), Some(&o));
        // Same term, but built on an older state id.
        let mut stale2 = stale.clone();
        if let Group0Command::Change(ch) = &mut stale2 {
            ch.term = Some(2);
        }
        let (o, _) = st.apply(3, &stale2, true);
        assert!(matches!(
            o,
            ApplyOutcome::Rejected(RejectReason::StateChanged { .. })
        ));
        assert!(st.tablets[&TabletId::new(TableId::user(0), 0)]
            .transition
            .is_none());
        // The mutant lets it through.
        let (o, _) = st.apply(4, &stale, false);
        assert_eq!(o, ApplyOutcome::Applied);
        // A stale fence is rejected.
        let (o, _) = st.apply(
            5,
            &Group0Command::FencePreviousCoordinator { term: 2 },
            true,
        );
        assert_eq!(o, ApplyOutcome::Rejected(RejectReason::StaleFence));
    }

    #[test]
    fn finish_end_migration_moves_replicas_revert_keeps_them() {
        for (end, expect) in [
            (Stage::EndMigration, r(2, 0)),
            (Stage::RevertMigration, r(1, 0)),
        ] {
            let mut st = TopologyState::initial(BTreeMap::new(), vec![vec![r(1, 0)]]);
            let t = TabletId::new(TableId::user(0), 0);
            st.tablets.get_mut(&t).unwrap().transition = Some(Transition {
                kind: TransitionKind::Migration,
                stage: end,
                new_replicas: vec![r(2, 0)],
                session: None,
                migration: 1,
            });
            let c = change(
                &st,
                None,
                vec![TabletUpdate::Finish {
                    tablet: t,
                    from: end,
                }],
            );
            let (o, commits) = st.apply(1, &c, true);
            assert_eq!(o, ApplyOutcome::Applied);
            assert_eq!(commits[0].stage, None);
            assert_eq!(st.tablets[&t].replicas, vec![expect]);
            assert_eq!(st.transition_state(), None);
        }
    }

    #[test]
    fn invalid_start_rejected() {
        let mut st = TopologyState::initial(BTreeMap::new(), vec![vec![r(1, 0)]]);
        let up = || TabletUpdate::Start {
            tablet: TabletId::new(TableId::user(0), 0),
            new_replicas: vec![r(2, 0)],
        };
        st.apply(1, &change(&st, None, vec![up()]), true);
        let (o, _) = st.apply(2, &change(&st, None, vec![up()]), true);
        assert!(matches!(
            o,
            ApplyOutcome::Rejected(RejectReason::Invalid(_))
        ));
    }
}
