//! The `raft.*` scenarios: group0 on its own, replicating a small append-only list.
//!
//! - `raft.swarm`: 3..5 nodes, clients proposing and read-barriering from random nodes, swarm
//!   faults (crash/restart, leader kill, partitions, killed connections, stalled and dropped
//!   Raft verbs, disk stalls and errors, pauses), heal, then converge: a leader exists and every
//!   node applied its commit index.
//! - `raft.groups_swarm`: the same under the same faults, with 2..4 Raft groups on the same
//!   nodes (each with its own storage, leader and log, sharing the nodes' verbs and disks):
//!   every promise is checked per group, and the groups must be led by different nodes at
//!   some point (they elect independently).
//! - `raft.leader_crash_elects_new_leader`: a scripted story: the leader crashes, the others
//!   elect a new one in a higher term, proposals commit under it, the old leader restarts and
//!   catches up.
//!
//! Every member persists as group0 does, in its node's `system.raft*` tables (one partition per
//! group, through the tables' commitlog and the node's disk), so disk stalls, errors and crashes
//! hit the storage upstream uses.

use crate::checkers::raft as chk;
use crate::config::RunConfig;
use crate::phases;
use crate::scenario::{RunEnd, ScenarioDef, Tier};
use crate::story::Story;
use fault_injection::{
    BuggifyPoint, EventTrigger, Fault, FaultKind, FaultModel, LeaderProbe, TriggeredFault,
};
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use model::raft::{
    command_hash,
    service::{INJ_DELAY_ACK_AFTER_SYNC, VERBS},
    GroupId, Raft, RaftConfig, RaftError, StateMachine, SysTableStorage,
    MUTANT_COMMIT_WITHOUT_MAJORITY,
};
use model::Outcome;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sim::time::{sleep, Duration};
use sim::{EventKind, NodeId, Sim};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

/// Every `raft.*` scenario, in catalog order.
pub fn scenarios() -> Vec<ScenarioDef> {
    vec![
        ScenarioDef {
            id: "raft.swarm",
            tier: Tier::Randomised,
            description: "group0 under swarm faults: one leader per term, committed entries never change, every node applies the same sequence, and the group converges after the heal",
            mutants: &[MUTANT_COMMIT_WITHOUT_MAJORITY],
            marks: &[],
            config: config_swarm,
            run: |sim, cfg| run_swarm(sim, cfg).boxed_local(),
            checkers: &[&chk::ElectionSafety, &chk::LogAgreement, &chk::AcknowledgedOps],
        },
        ScenarioDef {
            id: "raft.groups_swarm",
            tier: Tier::Randomised,
            description: "2..4 Raft groups on the same nodes under swarm faults: per group, one leader per term, committed entries never change, every node applies the same sequence; the groups elect independently and all converge after the heal",
            mutants: &[MUTANT_COMMIT_WITHOUT_MAJORITY],
            // Not required of every seed (by chance one node can lead every group throughout);
            // the scenario's test requires it of most.
            marks: &[],
            config: config_groups_swarm,
            run: |sim, cfg| run_swarm(sim, cfg).boxed_local(),
            checkers: &[&chk::ElectionSafety, &chk::LogAgreement, &chk::AcknowledgedOps],
        },
        ScenarioDef {
            id: "raft.leader_crash_elects_new_leader",
            tier: Tier::Scripted,
            description: "the group0 leader crashes; the others elect a new leader in a higher term, proposals commit under it, and the old leader restarts and catches up",
            mutants: &[],
            marks: &[
                MARK_LEADER_CRASHED,
                MARK_NEW_LEADER,
                MARK_COMMIT_UNDER_NEW_LEADER,
                MARK_OLD_LEADER_CAUGHT_UP,
            ],
            config: config_leader_crash,
            run: |sim, cfg| run_leader_crash(sim, cfg).boxed_local(),
            checkers: &[&chk::ElectionSafety, &chk::LogAgreement, &chk::AcknowledgedOps],
        },
    ]
}

const MARK_LEADER_CRASHED: &str = "raft leader crashed";
const MARK_NEW_LEADER: &str = "raft new leader elected after crash";
const MARK_COMMIT_UNDER_NEW_LEADER: &str = "raft proposal committed under new leader";
const MARK_OLD_LEADER_CAUGHT_UP: &str = "raft restarted leader caught up";
/// Coverage mark of `raft.groups_swarm`: two groups had different leaders at the same time.
pub const MARK_GROUPS_LED_APART: &str = "raft groups led by different nodes";

// ----- config ------------------------------------------------------------------------------

/// The `raft` section of a run's params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftParams {
    /// The group's timing.
    pub group: RaftConfig,
    /// Shortest pause between two client operations.
    pub op_interval_ms_min: u64,
    /// Longest pause between two client operations.
    pub op_interval_ms_max: u64,
    /// Share of client operations that are read barriers (the rest are proposals).
    pub read_barrier_percent: u32,
    /// Raft groups on the nodes, ids 0.., each one partition of the nodes' `system.raft*` tables
    /// (as group0's). Omitted when 1,
    /// so single-group configs read as before.
    #[serde(skip_serializing_if = "is_one")]
    pub groups: u64,
}

fn is_one(n: &u64) -> bool {
    *n == 1
}

impl Default for RaftParams {
    fn default() -> Self {
        RaftParams {
            group: RaftConfig::default(),
            op_interval_ms_min: 10,
            op_interval_ms_max: 60,
            read_barrier_percent: 20,
            groups: 1,
        }
    }
}

fn config_swarm(cfg: &mut RunConfig) {
    let mut rng = sim::rng::standalone(cfg.seed, "cluster");
    cfg.nodes = rng.gen_range(3..=5);
    cfg.shards = 1;
    cfg.phases.warmup_ms = 1_000;
    cfg.phases.chaos_ms = 5_000;
    cfg.phases.converge_budget_ms = 20_000;
    cfg.fault_model = FaultModel {
        kinds: vec![
            FaultKind::Crash,
            FaultKind::KillLeader,
            FaultKind::Partition,
            FaultKind::KillConnection,
            FaultKind::Stall,
            FaultKind::Drop,
            FaultKind::Delay,
            FaultKind::Pause,
            FaultKind::DiskStall,
            FaultKind::DiskError,
            FaultKind::DiskLatency,
            FaultKind::Injection,
        ],
        min_faults: 3,
        max_faults: 10,
        window_ms: 4_500,
        max_duration_ms: 1_500,
        verbs: VERBS.iter().map(|v| v.to_string()).collect(),
        max_down: (cfg.nodes - 1) / 2,
        // Buggify: a node holds its acknowledgements after each durable write (a sleep point).
        injections: vec![BuggifyPoint {
            name: INJ_DELAY_ACK_AFTER_SYNC.into(),
            max_hold_ms: 1_500,
            min_hold_ms: 0,
            episodes: [0, 0],
            one_shot: None,
        }],
        // ... and sometimes crashes right inside that window: between a durable write and
        // its acknowledgement.
        triggered: vec![TriggeredFault {
            trigger: EventTrigger {
                fields: [("name".to_string(), INJ_DELAY_ACK_AFTER_SYNC.into())].into(),
                bind: [("node".to_string(), "@node".to_string())].into(),
                ..EventTrigger::on("injection_entered", 3)
            },
            fault: Fault::Crash {
                node: sim::NodeId(1),
            },
            probability: 0.7,
            max_delay_ms: 20,
            duration_ms: None,
            follows_previous: false,
            until_heal: false,
            leaves_cluster: false,
        }],
        ..FaultModel::default()
    };
    cfg.set_section("raft", &RaftParams::default());
}

fn config_groups_swarm(cfg: &mut RunConfig) {
    config_swarm(cfg);
    let mut rng = sim::rng::standalone(cfg.seed, "groups");
    let params = RaftParams {
        groups: rng.gen_range(2..=4),
        ..RaftParams::default()
    };
    cfg.set_section("raft", &params);
}

fn config_leader_crash(cfg: &mut RunConfig) {
    cfg.nodes = 3;
    cfg.shards = 1;
    cfg.phases.warmup_ms = 1_000;
    cfg.phases.chaos_ms = 0;
    cfg.phases.converge_budget_ms = 10_000;
    cfg.set_section("raft", &RaftParams::default());
}

// ----- the replicated state machine and client events ---------------------------------------

/// The test state machine: the list of client operation ids, in apply order.
#[derive(Clone, Debug, Default)]
pub struct OpList {
    /// Applied operation ids.
    pub items: Vec<u64>,
}

impl StateMachine for OpList {
    type Command = u64;
    fn apply(&mut self, _index: u64, cmd: &u64) {
        self.items.push(*cmd);
    }
}

/// Client operations of the `raft.*` workloads (node: where the client ran).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum RaftClientEvent {
    /// Proposal of operation `op` started.
    Propose {
        /// The group (omitted for group 0).
        #[serde(skip_serializing_if = "GroupId::is_group0")]
        g: GroupId,
        /// Operation id (the command).
        op: u64,
    },
    /// Proposal of `op` ended: `ok` (committed at `index`), `failed` (definitely not
    /// committed) or `unknown`.
    Proposed {
        /// The group (omitted for group 0).
        #[serde(skip_serializing_if = "GroupId::is_group0")]
        g: GroupId,
        /// Operation id.
        op: u64,
        /// The client outcome.
        outcome: Outcome,
        /// Index, when `ok`.
        #[serde(skip_serializing_if = "Option::is_none")]
        index: Option<u64>,
    },
    /// Read barrier `op` started on incarnation `inc`.
    Read {
        /// The group (omitted for group 0).
        #[serde(skip_serializing_if = "GroupId::is_group0")]
        g: GroupId,
        /// Operation id.
        op: u64,
        /// Incarnation of the node.
        inc: u32,
    },
    /// Read barrier `op` ended.
    ReadDone {
        /// Operation id.
        op: u64,
        /// Did it succeed.
        ok: bool,
    },
}

impl EventKind for RaftClientEvent {
    fn kind(&self) -> &'static str {
        match self {
            RaftClientEvent::Propose { .. } => "raft_client_propose",
            RaftClientEvent::Proposed { .. } => "raft_client_proposed",
            RaftClientEvent::Read { .. } => "raft_client_read",
            RaftClientEvent::ReadDone { .. } => "raft_client_read_done",
        }
    }
}

/// The command hash of operation `op` (what `raft_applied` events carry for it).
pub fn op_hash(op: u64) -> u64 {
    command_hash(Some(&op))
}

// ----- the group ---------------------------------------------------------------------------

/// Every group member's current Raft handle, by (group, node).
type Handles = Rc<RefCell<BTreeMap<(GroupId, NodeId), Raft<OpList>>>>;

/// Running Raft groups on `cfg.nodes` nodes (every node a member of every group): each boot
/// (and restart) starts a fresh [`Raft`] incarnation of each group and registers its handle
/// here.
#[derive(Clone)]
struct Group {
    sim: Sim,
    groups: u64,
    handles: Handles,
    next_op: Rc<Cell<u64>>,
}

impl Group {
    fn start(sim: &Sim, cfg: &RunConfig) -> Group {
        let params: RaftParams = cfg.section("raft");
        assert!(params.groups >= 1, "at least one Raft group");
        let groups = params.groups;
        let members = cfg.node_ids();
        let handles: Handles = Rc::default();
        for _ in 0..cfg.nodes {
            let (handles, members, group_cfg) =
                (handles.clone(), members.clone(), params.group.clone());
            sim.add_node(move |ctx| {
                let (handles, members, group_cfg) =
                    (handles.clone(), members.clone(), group_cfg.clone());
                // Raft::start_group runs inside the boot future, i.e. on the node.
                async move {
                    for g in (0..groups).map(GroupId) {
                        let storage = SysTableStorage::open(&ctx.sim, ctx.node, g, &members);
                        let r = Raft::start_group(
                            &ctx,
                            g,
                            members.clone(),
                            OpList::default(),
                            group_cfg.clone(),
                            Box::new(storage),
                        );
                        handles.borrow_mut().insert((g, ctx.node), r);
                    }
                    std::future::pending::<()>().await
                }
                .boxed_local()
            });
        }
        Group {
            sim: sim.clone(),
            groups,
            handles,
            next_op: Rc::new(Cell::new(1)),
        }
    }

    fn group_ids(&self) -> impl Iterator<Item = GroupId> {
        (0..self.groups).map(GroupId)
    }

    fn handle(&self, g: GroupId, n: NodeId) -> Raft<OpList> {
        self.handles.borrow()[&(g, n)].clone()
    }

    /// The live, unpaused node that leads the highest term of group `g`.
    fn leader_of(&self, g: GroupId) -> Option<NodeId> {
        self.handles
            .borrow()
            .iter()
            .filter(|((gg, n), r)| {
                *gg == g && self.sim.is_up(*n) && !self.sim.is_paused(*n) && r.is_leader()
            })
            .max_by_key(|(_, r)| r.term())
            .map(|((_, n), _)| *n)
    }

    /// The leader of group 0.
    fn leader(&self) -> Option<NodeId> {
        self.leader_of(GroupId::GROUP0)
    }

    fn probe(&self) -> LeaderProbe {
        let g = self.clone();
        Rc::new(move || g.leader())
    }

    /// Marks when two groups are led by different nodes at once.
    fn note_leaders(&self) {
        let leaders: std::collections::BTreeSet<NodeId> =
            self.group_ids().filter_map(|g| self.leader_of(g)).collect();
        if leaders.len() > 1 {
            self.sim.mark(MARK_GROUPS_LED_APART);
        }
    }

    /// Starts a proposal of a new operation on `node` (it dies with the node); returns the op.
    fn propose_on(&self, g: GroupId, node: NodeId) -> Rc<RefCell<Option<Result<u64, RaftError>>>> {
        let op = self.next_op.get();
        self.next_op.set(op + 1);
        let result = Rc::new(RefCell::new(None));
        if !self.sim.is_up(node) {
            return result;
        }
        let (r, sim, res) = (self.handle(g, node), self.sim.clone(), result.clone());
        sim.record(Some(node), RaftClientEvent::Propose { g, op });
        self.sim.spawn_on(node, async move {
            let out = r.propose(op).await;
            let (outcome, index) = match out {
                Ok(i) => (Outcome::Ok, Some(i)),
                Err(RaftError::Timeout) => (Outcome::Unknown, None),
                Err(_) => (Outcome::Failed, None),
            };
            let ev = RaftClientEvent::Proposed {
                g,
                op,
                outcome,
                index,
            };
            sim.record(Some(node), ev);
            *res.borrow_mut() = Some(out);
        });
        result
    }

    /// Starts a read barrier on `node`.
    fn read_on(&self, g: GroupId, node: NodeId) {
        let op = self.next_op.get();
        self.next_op.set(op + 1);
        if !self.sim.is_up(node) {
            return;
        }
        let (r, sim) = (self.handle(g, node), self.sim.clone());
        sim.record(
            Some(node),
            RaftClientEvent::Read {
                g,
                op,
                inc: sim.incarnation(node),
            },
        );
        self.sim.spawn_on(node, async move {
            let ok = r.read_barrier().await.is_ok();
            sim.record(Some(node), RaftClientEvent::ReadDone { op, ok });
        });
    }

    /// What keeps the groups from having converged, by name.
    fn pending(&self) -> Vec<String> {
        let mut left = Vec::new();
        for g in self.group_ids() {
            // group0's messages read as they did before groups had ids.
            let name = if self.groups == 1 {
                "group0".to_string()
            } else {
                g.to_string()
            };
            let Some(l) = self.leader_of(g) else {
                left.push(format!("{name} has no leader"));
                continue;
            };
            let handles = self.handles.borrow();
            let commit = handles[&(g, l)].commit_index();
            for ((gg, n), r) in handles.iter() {
                if *gg != g {
                    continue;
                }
                if !self.sim.is_up(*n) {
                    left.push(format!("{n} is down"));
                } else if r.applied_index() < commit {
                    let of = if self.groups == 1 {
                        String::new()
                    } else {
                        format!(" ({g})")
                    };
                    left.push(format!(
                        "{n} applied {} of leader {l}'s commit index {commit}{of}",
                        r.applied_index()
                    ));
                }
            }
        }
        left.dedup();
        left
    }

    fn group_state(&self, g: GroupId) -> serde_json::Value {
        let handles = self.handles.borrow();
        let nodes: BTreeMap<String, serde_json::Value> = handles
            .iter()
            .filter(|((gg, _), _)| *gg == g)
            .map(|((_, n), r)| {
                let items = r.with_state(|s| s.items.clone());
                (
                    n.to_string(),
                    serde_json::json!({
                        "term": r.term(),
                        "applied": r.applied_index(),
                        "items": items.len(),
                        "items_hash": command_hash(Some(&items)),
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "leader": self.leader_of(g).map(|n| n.to_string()),
            "nodes": nodes,
        })
    }

    /// One group: its state as it always read; several: by group id.
    fn final_state(&self) -> serde_json::Value {
        if self.groups == 1 {
            return self.group_state(GroupId::GROUP0);
        }
        let groups: BTreeMap<String, serde_json::Value> = self
            .group_ids()
            .map(|g| (g.0.to_string(), self.group_state(g)))
            .collect();
        serde_json::json!({ "groups": groups })
    }

    /// Waits (up to `ms`) for a leader other than `not`.
    async fn wait_leader(&self, not: Option<NodeId>, ms: u64) -> Option<NodeId> {
        let deadline = self.sim.now().0 + ms * 1_000_000;
        while self.sim.now().0 < deadline {
            if let Some(l) = self.leader().filter(|l| Some(*l) != not) {
                return Some(l);
            }
            sleep(Duration::from_millis(10)).await;
        }
        None
    }

    /// Proposes on `node` and waits for the outcome (None: the node died first).
    async fn propose_and_wait(&self, node: NodeId) -> Option<Result<u64, RaftError>> {
        let res = self.propose_on(GroupId::GROUP0, node);
        let deadline = self.sim.now().0 + 30_000 * 1_000_000;
        while self.sim.now().0 < deadline {
            if let Some(r) = *res.borrow() {
                return Some(r);
            }
            sleep(Duration::from_millis(5)).await;
        }
        None
    }
}

// ----- raft.swarm --------------------------------------------------------------------------

/// A running `raft.swarm`: the story kit and the group.
struct Swarm {
    story: Story,
    group: Group,
}

impl phases::Area for Swarm {
    fn story(&self) -> &Story {
        &self.story
    }

    fn poll_ms(&self) -> u64 {
        50
    }

    fn pending(&self) -> Vec<String> {
        self.group.pending()
    }

    fn final_state(&self, _converged: bool) -> LocalBoxFuture<'_, serde_json::Value> {
        Box::pin(async move { self.group.final_state() })
    }
}

/// Clients: one operation at a time from a random node, until `until_ns`.
fn raft_clients(
    g: &Group,
    params: RaftParams,
    nodes: Vec<NodeId>,
    until_ns: u64,
) -> LocalBoxFuture<'static, ()> {
    let g = g.clone();
    Box::pin(async move {
        let s = g.sim.clone();
        let mut rng = s.rng("workload");
        while s.now().0 < until_ns {
            let node = nodes[rng.gen_range(0..nodes.len())];
            // (No draw with one group: raft.swarm's runs stay as they were.)
            let group = if g.groups > 1 {
                GroupId(rng.gen_range(0..g.groups))
            } else {
                GroupId::GROUP0
            };
            g.note_leaders();
            if rng.gen_range(0..100) < params.read_barrier_percent {
                g.read_on(group, node);
            } else {
                g.propose_on(group, node);
            }
            sleep(Duration::from_millis(rng.gen_range(
                params.op_interval_ms_min..=params.op_interval_ms_max,
            )))
            .await;
        }
    })
}

async fn run_swarm(sim: Sim, cfg: Rc<RunConfig>) -> RunEnd {
    let area = Rc::new(Swarm {
        story: Story::new(&sim, &cfg),
        group: Group::start(&sim, &cfg),
    });
    phases::run(&sim, &cfg, area, |a| {
        let cfg = &a.story.cfg;
        let until = phases::chaos_end_ns(&a.story.sim, cfg);
        phases::Plan {
            workloads: vec![raft_clients(
                &a.group,
                cfg.section("raft"),
                cfg.node_ids(),
                until,
            )],
            leader: Some(a.group.probe()),
            ..phases::Plan::default()
        }
    })
    .await
}

// ----- raft.leader_crash_elects_new_leader --------------------------------------------------

async fn run_leader_crash(sim: Sim, cfg: Rc<RunConfig>) -> RunEnd {
    let group = Group::start(&sim, &cfg);
    phases::warmup(&sim, &cfg).await;
    let fail = |what: &str| RunEnd {
        final_state: group.final_state(),
        pending: vec![what.into()],
    };
    // 1. A leader is elected and commits a few proposals made from a follower.
    let Some(old) = group.wait_leader(None, 5_000).await else {
        return fail("no leader elected at start");
    };
    let old_term = group.handle(GroupId::GROUP0, old).term();
    let follower = cfg
        .node_ids()
        .into_iter()
        .find(|&n| n != old)
        .expect("3 nodes");
    for _ in 0..3 {
        if !matches!(group.propose_and_wait(follower).await, Some(Ok(_))) {
            return fail("proposal before the crash did not commit");
        }
    }
    // 2. The leader crashes.
    phases::enter(&sim, "chaos");
    sim.crash(old);
    sim.mark(MARK_LEADER_CRASHED);
    // 3. The survivors elect a new leader in a higher term.
    let Some(new) = group.wait_leader(Some(old), 5_000).await else {
        return fail("no new leader after the crash");
    };
    assert!(
        group.handle(GroupId::GROUP0, new).term() > old_term,
        "new leader in a higher term"
    );
    sim.mark(MARK_NEW_LEADER);
    // 4. Proposals commit under the new leader, from every survivor.
    for n in cfg.node_ids().into_iter().filter(|&n| n != old) {
        match group.propose_and_wait(n).await {
            Some(Ok(_)) => sim.mark(MARK_COMMIT_UNDER_NEW_LEADER),
            _ => return fail("proposal under the new leader did not commit"),
        }
    }
    // 5. The old leader restarts, recovers from its disk and catches up.
    phases::heal(&sim);
    let pending = phases::converge(&sim, &cfg, 20, || group.pending()).await;
    if pending.is_empty() {
        sim.mark(MARK_OLD_LEADER_CAUGHT_UP);
    }
    RunEnd {
        final_state: group.final_state(),
        pending,
    }
}
