//! The `sc.*` scenarios: strongly consistent tables (SPEC §7) — per-tablet Raft groups whose
//! metadata lives on the replica's shard.
//!
//! - `sc.linearizable_under_faults`: 3..5 nodes of 1..4 shards, a strongly consistent table of
//!   2..6 tablets (RF 3), clients reading and writing a few keys through the tablets' groups
//!   under swarm faults (crashes, leader kills, partitions, killed connections, stalled and
//!   dropped Raft verbs, pauses, disk stalls, latency and errors) and, in some seeds, a node
//!   restarted with more shards, and in some a node restarted with fewer shards than a
//!   tablet replica on it needs (it must refuse to start; it comes back with its old count
//!   within a second); every key must be linearizable, every group's state must survive every
//!   restart, every row must stay on its server's shard, no node may start with fewer shards
//!   than it needs. The refused node is away while the nemesis may take another one down: a
//!   group may lose its majority for that moment (unavailable, never unsafe).
//! - `sc.restart_preserves_group_state`: values written, then every node crashed and
//!   restarted in turn; each group recovers its term, vote, commit and log from its shard and
//!   the values read back are the last ones written.
//! - `sc.restart_with_fewer_shards_refused`: a node holding a replica on shard s is restarted
//!   with s shards: it refuses to start, with upstream's message in the history; restarted with
//!   its old count it starts and catches up.
//! - `sc.reshard_up_keeps_routing`: every node restarted with twice its shards, one at a time:
//!   every group's server comes back on the same shard, finds its metadata there (the token
//!   decodes to the same shard whatever the count), and reads see the last writes.
//!
//! Strongly consistent tablets do not migrate here: upstream has no migration support for
//! their metadata (see `model::sc`), so no migration scenario.

use crate::checkers::raft as raft_chk;
use crate::checkers::sc as chk;
use crate::checkers::topology::expectations::Expectations;
use crate::config::RunConfig;
use crate::phases;
use crate::scenario::{Checker, RunEnd, ScenarioDef, Tier};
use crate::story::Story;
use fault_injection::{FaultKind, FaultModel, LeaderProbe};
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use model::raft::{service::VERBS, GroupId, RaftConfig};
use model::sc::{
    ScCluster, ScConfig, ScEvent, MUTANT_METADATA_ON_SHARD_ZERO, MUTANT_NO_SHARD_COUNT_CHECK,
    MUTANT_RAFT_BYPASSES_SHARDER, MUTANT_SHARDER_READS_LIVE_ALLOCATION,
};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sim::time::{sleep, Duration};
use sim::{NodeId, Sim};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

const CHECKERS: &[&dyn Checker] = &[
    &chk::Linearizable,
    &chk::Persistence,
    &chk::Placement,
    &raft_chk::ElectionSafety,
    &raft_chk::LogAgreement,
    &Expectations,
];

/// Every `sc.*` scenario, in catalog order.
pub fn scenarios() -> Vec<ScenarioDef> {
    vec![
        ScenarioDef {
            id: "sc.linearizable_under_faults",
            tier: Tier::Randomised,
            description: "a strongly consistent table's tablets, each a Raft group on its replicas' shards, under swarm faults, reshard-up restarts and refused restarts with too few shards: every key linearizable, group state kept across restarts, metadata on its server's shard, no node started with fewer shards than it needs",
            mutants: &[
                MUTANT_RAFT_BYPASSES_SHARDER,
                MUTANT_METADATA_ON_SHARD_ZERO,
                MUTANT_SHARDER_READS_LIVE_ALLOCATION,
                MUTANT_NO_SHARD_COUNT_CHECK,
            ],
            marks: &[],
            config: config_swarm,
            run: |sim, cfg| run_swarm(sim, cfg).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "sc.restart_preserves_group_state",
            tier: Tier::Scripted,
            description: "every node crashes and restarts in turn; each tablet group recovers term, vote, commit and log from its shard and reads return the last writes",
            mutants: &[MUTANT_RAFT_BYPASSES_SHARDER, MUTANT_METADATA_ON_SHARD_ZERO],
            marks: &[MARK_ALL_RESTARTED, MARK_READ_BACK],
            config: config_restart,
            run: |sim, cfg| run_restart(sim, cfg).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "sc.restart_with_fewer_shards_refused",
            tier: Tier::Scripted,
            description: "a node with a tablet replica on shard s restarts with s shards and refuses to start (upstream's message in the history); with its old shard count it starts and catches up",
            mutants: &[MUTANT_NO_SHARD_COUNT_CHECK],
            marks: &[MARK_REFUSED, MARK_RECOVERED],
            config: config_fewer,
            run: |sim, cfg| run_fewer(sim, cfg).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "sc.reshard_up_keeps_routing",
            tier: Tier::Scripted,
            description: "every node restarts with twice its shards, one at a time: each group's server comes back on its shard, finds its metadata there, and reads return the last writes",
            mutants: &[
                MUTANT_SHARDER_READS_LIVE_ALLOCATION,
                MUTANT_RAFT_BYPASSES_SHARDER,
                MUTANT_METADATA_ON_SHARD_ZERO,
            ],
            marks: &[MARK_RESHARDED, MARK_READ_BACK],
            config: config_reshard,
            run: |sim, cfg| run_reshard(sim, cfg).boxed_local(),
            checkers: CHECKERS,
        },
    ]
}

/// Coverage mark: a client write ended with an unknown outcome.
pub const MARK_WRITE_UNKNOWN: &str = "sc write outcome unknown";
/// Coverage mark: a read returned a value written earlier.
pub const MARK_READ_VALUE: &str = "sc read returned a written value";
/// Coverage mark: a node was restarted with more shards during chaos.
pub const MARK_RESHARD_UP: &str = "sc node restarted with more shards";
const MARK_ALL_RESTARTED: &str = "sc every node restarted";
const MARK_READ_BACK: &str = "sc reads returned the last writes";
/// Coverage mark: a node restarted with fewer shards than a replica on it needs refused to
/// start.
pub const MARK_REFUSED: &str = "sc node refused to start with fewer shards";
const MARK_RECOVERED: &str = "sc refused node started with its old shard count";
const MARK_RESHARDED: &str = "sc every node resharded up";

// ----- config ------------------------------------------------------------------------------

/// The `sc` section of a run's params.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScParams {
    /// Tablets of the strongly consistent table.
    pub tablets: u32,
    /// Replicas per tablet.
    pub rf: usize,
    /// Keys the clients use.
    pub keys: u64,
    /// Timing of every tablet group.
    pub group: RaftConfig,
    /// Shortest pause between two client operations.
    pub op_interval_ms_min: u64,
    /// Longest pause between two client operations.
    pub op_interval_ms_max: u64,
    /// Share of client operations that are reads.
    pub read_percent: u32,
    /// Share of swarm seeds that also restart a node with more shards during chaos.
    pub reshard_percent: u32,
    /// Share of swarm seeds that also try to restart a node with fewer shards than a tablet
    /// replica on it needs (it must refuse to start; it is then restarted with its count).
    pub reshard_down_percent: u32,
}

impl Default for ScParams {
    fn default() -> Self {
        ScParams {
            tablets: 4,
            rf: 3,
            keys: 8,
            group: RaftConfig::default(),
            op_interval_ms_min: 5,
            op_interval_ms_max: 40,
            read_percent: 40,
            reshard_percent: 30,
            reshard_down_percent: 30,
        }
    }
}

fn config_swarm(cfg: &mut RunConfig) {
    let mut rng = sim::rng::standalone(cfg.seed, "cluster");
    cfg.nodes = rng.gen_range(3..=5);
    cfg.shards = rng.gen_range(1..=4);
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
        ],
        min_faults: 3,
        max_faults: 10,
        window_ms: 4_500,
        max_duration_ms: 1_500,
        verbs: VERBS.iter().map(|v| v.to_string()).collect(),
        // A tablet's group has 3 members: at most one may be away.
        max_down: 1,
        ..FaultModel::default()
    };
    let params = ScParams {
        tablets: rng.gen_range(2..=6),
        keys: rng.gen_range(4..=12),
        ..ScParams::default()
    };
    cfg.set_section("sc", &params);
}

fn config_scripted(cfg: &mut RunConfig, shards: u32) {
    cfg.nodes = 3;
    cfg.shards = shards;
    cfg.phases.warmup_ms = 1_000;
    cfg.phases.chaos_ms = 0;
    cfg.phases.converge_budget_ms = 20_000;
    cfg.set_section(
        "sc",
        &ScParams {
            tablets: 6,
            ..ScParams::default()
        },
    );
}

fn config_restart(cfg: &mut RunConfig) {
    config_scripted(cfg, 4);
}

fn config_fewer(cfg: &mut RunConfig) {
    config_scripted(cfg, 4);
}

fn config_reshard(cfg: &mut RunConfig) {
    config_scripted(cfg, 2);
}

// ----- the area ----------------------------------------------------------------------------

struct ScArea {
    story: Story,
    cluster: ScCluster,
    params: ScParams,
    next_value: Cell<u64>,
}

impl phases::Area for ScArea {
    fn story(&self) -> &Story {
        &self.story
    }

    fn poll_ms(&self) -> u64 {
        50
    }

    fn pending(&self) -> Vec<String> {
        self.cluster.pending()
    }

    fn final_state(&self, _converged: bool) -> LocalBoxFuture<'_, serde_json::Value> {
        Box::pin(async move { self.cluster.final_state() })
    }
}

impl ScArea {
    fn start(sim: &Sim, cfg: &Rc<RunConfig>) -> Rc<ScArea> {
        let params: ScParams = cfg.section("sc");
        let cluster = ScCluster::start(
            sim,
            ScConfig {
                nodes: cfg.nodes,
                shards: cfg.shards,
                tablets: params.tablets,
                rf: params.rf,
                raft: params.group.clone(),
            },
        );
        Rc::new(ScArea {
            story: Story::new(sim, cfg),
            cluster,
            params,
            next_value: Cell::new(1),
        })
    }

    fn value(&self) -> u64 {
        let v = self.next_value.get();
        self.next_value.set(v + 1);
        v
    }

    /// The leader of the first tablet's group (the nemesis's `kill_leader` target).
    fn probe(self: &Rc<Self>) -> LeaderProbe {
        let a = self.clone();
        Rc::new(move || {
            let g = a.cluster.tablets().tablets.first()?.raft_group_id;
            a.cluster.leader_of(g)
        })
    }

    /// Waits (up to `ms`) until every group has a leader and every member caught up.
    async fn settled(&self, what: &str, ms: u64) -> bool {
        self.story
            .wait_until(what, ms, || self.cluster.pending().is_empty())
            .await
    }

    /// Writes `key` through a replica until a write is acknowledged `ok` (up to `ms`);
    /// returns the value.
    async fn write_ok(&self, key: u64, ms: u64) -> Option<u64> {
        let sim = &self.story.sim;
        let deadline = sim.now().0 + ms * 1_000_000;
        let tablet = self.cluster.tablets().tablet_of_key(key).clone();
        while sim.now().0 < deadline {
            for n in tablet.members() {
                let v = self.value();
                let before = sim.history().len();
                if !self.cluster.write(n, key, v) {
                    continue;
                }
                if self.completed_ok(before, ms).await {
                    return Some(v);
                }
            }
            sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Reads `key` through a replica until a read is `ok` (up to `ms`); returns the value.
    async fn read_ok(&self, key: u64, ms: u64) -> Option<Option<u64>> {
        let sim = &self.story.sim;
        let deadline = sim.now().0 + ms * 1_000_000;
        let tablet = self.cluster.tablets().tablet_of_key(key).clone();
        while sim.now().0 < deadline {
            for n in tablet.members() {
                let before = sim.history().len();
                if !self.cluster.read(n, key) {
                    continue;
                }
                if self.completed_ok(before, ms).await {
                    return Some(last_read_value(sim, before));
                }
            }
            sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Waits for the one operation invoked at history position `from` to complete; ok?
    async fn completed_ok(&self, from: usize, ms: u64) -> bool {
        let sim = &self.story.sim;
        let deadline = sim.now().0 + ms * 1_000_000;
        while sim.now().0 < deadline {
            if let Some(outcome) = completion_after(sim, from) {
                return outcome.is_ok();
            }
            sleep(Duration::from_millis(5)).await;
        }
        false
    }
}

/// The outcome of the operation invoked at or after history position `from`, once recorded.
fn completion_after(sim: &Sim, from: usize) -> Option<model::Outcome> {
    use model::sc::ScClientEvent;
    let h = sim.history();
    let entries = h.entries();
    let op = entries[from..]
        .iter()
        .find_map(|e| match e.proto::<ScClientEvent>() {
            Some(&ScClientEvent::Invoke { op, .. }) => Some(op),
            _ => None,
        })?;
    entries[from..]
        .iter()
        .find_map(|e| match e.proto::<ScClientEvent>() {
            Some(&ScClientEvent::Complete { op: o, outcome, .. }) if o == op => Some(outcome),
            _ => None,
        })
}

fn last_read_value(sim: &Sim, from: usize) -> Option<u64> {
    use model::sc::ScClientEvent;
    let h = sim.history();
    let entries = h.entries();
    entries[from..]
        .iter()
        .find_map(|e| match e.proto::<ScClientEvent>() {
            Some(&ScClientEvent::Complete { value, .. }) => Some(value),
            _ => None,
        })?
}

// ----- sc.linearizable_under_faults ---------------------------------------------------------

/// Clients: one operation at a time on a random key through a random replica of its tablet,
/// until `until_ns`.
fn clients(a: &Rc<ScArea>, until_ns: u64, stream: &'static str) -> LocalBoxFuture<'static, ()> {
    let a = a.clone();
    Box::pin(async move {
        let sim = a.story.sim.clone();
        let mut rng = sim.rng(stream);
        while sim.now().0 < until_ns {
            let key = rng.gen_range(0..a.params.keys);
            let tablet = a.cluster.tablets().tablet_of_key(key).clone();
            let members = tablet.members();
            let node = members[rng.gen_range(0..members.len())];
            if rng.gen_range(0..100) < a.params.read_percent {
                a.cluster.read(node, key);
            } else {
                let v = a.value();
                a.cluster.write(node, key, v);
            }
            sleep(Duration::from_millis(rng.gen_range(
                a.params.op_interval_ms_min..=a.params.op_interval_ms_max,
            )))
            .await;
        }
    })
}

/// The reshard-up fault of some seeds: one node restarted with more shards mid-chaos.
fn reshard_step(a: &Rc<ScArea>) -> LocalBoxFuture<'static, ()> {
    let a = a.clone();
    Box::pin(async move {
        let sim = a.story.sim.clone();
        let mut rng = sim.rng("sc/reshard");
        if rng.gen_range(0..100) >= a.params.reshard_percent {
            return;
        }
        let at = rng.gen_range(500..=a.story.cfg.phases.chaos_ms.max(501));
        sleep(Duration::from_millis(at)).await;
        let node = a.cluster.nodes[rng.gen_range(0..a.cluster.nodes.len())];
        // Only a node that is up and whose group peers are all up (none refusing to start
        // with too few shards): the nemesis keeps at most one node away.
        if !a
            .cluster
            .nodes
            .iter()
            .all(|&n| sim.is_up(n) && !sim.is_paused(n) && a.cluster.refused(n).is_none())
        {
            return;
        }
        let more = a.cluster.shards_of(node) + rng.gen_range(1..=3);
        a.cluster.restart_with_shards(node, more);
        sim.mark(MARK_RESHARD_UP);
    })
}

/// The reshard-down attempt of some seeds (SPEC §7.4, mission item 5: a node never starts with
/// fewer shards than it needs): the node whose highest tablet replica shard is highest is
/// restarted mid-chaos with at most that many shards; it must refuse to start (checked from
/// the history by `sc_placement`), and is restarted with its old count a moment later.
fn reshard_down_step(a: &Rc<ScArea>) -> LocalBoxFuture<'static, ()> {
    let a = a.clone();
    Box::pin(async move {
        let sim = a.story.sim.clone();
        let mut rng = sim.rng("sc/reshard_down");
        if rng.gen_range(0..100) >= a.params.reshard_down_percent {
            return;
        }
        let chaos = a.story.cfg.phases.chaos_ms;
        let at = rng.gen_range(300..=chaos.saturating_sub(1_500).max(301));
        let away_ms = rng.gen_range(200..=1_000);
        sleep(Duration::from_millis(at)).await;
        let map = a.cluster.tablets();
        let Some((node, top)) = a
            .cluster
            .nodes
            .iter()
            .map(|&n| {
                let top = map.local_replicas(n).iter().map(|r| r.1).max();
                (n, top.unwrap_or(0))
            })
            .max_by_key(|&(n, top)| (top, std::cmp::Reverse(n)))
        else {
            return;
        };
        // A replica on shard 0 only: no shard count is too small. And, as for the
        // reshard-up, only while every node is up (the nemesis keeps at most one away).
        if top == 0
            || !a
                .cluster
                .nodes
                .iter()
                .all(|&n| sim.is_up(n) && !sim.is_paused(n))
        {
            return;
        }
        let old = a.cluster.shards_of(node);
        let fewer = rng.gen_range(1..=top);
        a.cluster.restart_with_shards(node, fewer);
        sleep(Duration::from_millis(away_ms)).await;
        if a.cluster.refused(node).is_some() {
            sim.mark(MARK_REFUSED);
        }
        a.cluster.restart_with_shards(node, old);
    })
}

/// Marks what the clients saw (reached states of the swarm).
fn note_outcomes(sim: &Sim) {
    use model::sc::ScClientEvent;
    let h = sim.history();
    let entries = h.entries();
    let mut writes_unknown = false;
    let mut read_value = false;
    for e in entries.iter() {
        match e.proto::<ScClientEvent>() {
            Some(&ScClientEvent::Complete {
                outcome: model::Outcome::Unknown,
                value: None,
                ..
            }) => writes_unknown = true,
            Some(&ScClientEvent::Complete { value: Some(_), .. }) => read_value = true,
            _ => {}
        }
    }
    drop(entries);
    if writes_unknown {
        sim.mark(MARK_WRITE_UNKNOWN);
    }
    if read_value {
        sim.mark(MARK_READ_VALUE);
    }
}

async fn run_swarm(sim: Sim, cfg: Rc<RunConfig>) -> RunEnd {
    let area = ScArea::start(&sim, &cfg);
    let end = phases::run(&sim, &cfg, area, |a| {
        let until = phases::chaos_end_ns(&a.story.sim, &a.story.cfg);
        phases::Plan {
            workloads: vec![
                clients(a, until, "sc/clients/1"),
                clients(a, until, "sc/clients/2"),
            ],
            story: Some((
                phases::StoryMode::Beside,
                Box::pin(futures::future::join(reshard_step(a), reshard_down_step(a)).map(|_| ())),
            )),
            leader: Some(a.probe()),
            settle_ms: 500,
        }
    })
    .await;
    note_outcomes(&sim);
    end
}

// ----- scripted stories --------------------------------------------------------------------

/// Writes every key once (acknowledged); the last values by key.
async fn write_all(a: &ScArea) -> Option<BTreeMap<u64, u64>> {
    let mut last = BTreeMap::new();
    for key in 0..a.params.keys {
        let v = a.write_ok(key, 10_000).await;
        if !a.story.expect(
            v.is_some(),
            &format!("a write of key {key} is acknowledged"),
        ) {
            return None;
        }
        last.insert(key, v.expect("checked"));
    }
    Some(last)
}

/// Reads every key and expects its last written value.
async fn read_back(a: &ScArea, last: &BTreeMap<u64, u64>) -> bool {
    let mut all = true;
    for (&key, &v) in last {
        let got = a.read_ok(key, 10_000).await;
        all &= a.story.expect(
            got == Some(Some(v)),
            &format!("key {key} reads back {v} (got {got:?})"),
        );
    }
    if all {
        a.story.sim.mark(MARK_READ_BACK);
    }
    all
}

/// The shard each group's server runs on, per node.
fn server_shards(a: &ScArea) -> BTreeMap<(GroupId, NodeId), u32> {
    let mut out = BTreeMap::new();
    for t in a.cluster.tablets().tablets {
        for n in t.members() {
            if let Some(s) = a.cluster.server(t.raft_group_id, n) {
                out.insert((t.raft_group_id, n), s.shard);
            }
        }
    }
    out
}

fn end_of(a: &ScArea, pending: Vec<String>) -> RunEnd {
    a.story.end(a.cluster.final_state(), pending)
}

async fn run_restart(sim: Sim, cfg: Rc<RunConfig>) -> RunEnd {
    let a = ScArea::start(&sim, &cfg);
    phases::warmup(&sim, &cfg).await;
    if !a.settled("every group elects a leader", 10_000).await {
        return end_of(&a, vec![]);
    }
    let Some(mut last) = write_all(&a).await else {
        return end_of(&a, vec![]);
    };
    phases::enter(&sim, "chaos");
    for n in a.cluster.nodes.clone() {
        sim.crash(n);
        sleep(Duration::from_millis(300)).await;
        sim.restart(n);
        if !a
            .settled(&format!("the groups catch up after {n} restarts"), 15_000)
            .await
        {
            return end_of(&a, vec![]);
        }
        // One more write of a key per restart, so every incarnation has something to keep.
        let key = n.0 as u64 % a.params.keys;
        if let Some(v) = a.write_ok(key, 10_000).await {
            last.insert(key, v);
        }
    }
    sim.mark(MARK_ALL_RESTARTED);
    read_back(&a, &last).await;
    phases::heal(&sim);
    let pending = phases::converge(&sim, &cfg, 50, || a.cluster.pending()).await;
    end_of(&a, pending)
}

async fn run_fewer(sim: Sim, cfg: Rc<RunConfig>) -> RunEnd {
    let a = ScArea::start(&sim, &cfg);
    phases::warmup(&sim, &cfg).await;
    if !a.settled("every group elects a leader", 10_000).await {
        return end_of(&a, vec![]);
    }
    let Some(last) = write_all(&a).await else {
        return end_of(&a, vec![]);
    };
    // The node whose highest replica shard is highest: restart it with exactly that many
    // shards, one too few.
    let map = a.cluster.tablets();
    let (node, top) = a
        .cluster
        .nodes
        .iter()
        .map(|&n| {
            let top = map.local_replicas(n).iter().map(|r| r.1).max().unwrap_or(0);
            (n, top)
        })
        .max_by_key(|&(n, top)| (top, std::cmp::Reverse(n)))
        .expect("nodes");
    if !a
        .story
        .expect(top >= 1, "some node has a replica on a shard above 0")
    {
        return end_of(&a, vec![]);
    }
    let old = a.cluster.shards_of(node);
    phases::enter(&sim, "chaos");
    a.cluster.restart_with_shards(node, top);
    let refused = a
        .story
        .wait_until(&format!("{node} refuses to start"), 2_000, || {
            a.cluster.refused(node).is_some() || a.cluster.pending().is_empty()
        })
        .await;
    let msg = a.cluster.refused(node);
    let said = msg.as_deref().is_some_and(|m| {
        m.contains("reducing the shard count with tablet-enabled tables is not supported")
            && m.contains("replace the node instead")
    });
    if a.story.expect(
        refused && said,
        &format!("{node} restarted with {top} shards refuses to start, saying so (got {msg:?})"),
    ) {
        sim.mark(MARK_REFUSED);
    }
    let note = match &msg {
        Some(m) => format!("{node} restarted with {top} shards refused to start: {m}"),
        None => format!("{node} restarted with {top} shards started"),
    };
    // The others keep serving: every group still has a majority.
    if !a.story.expect(
        read_back(&a, &last).await,
        "the table stays readable without the refused node",
    ) {
        return end_of(&a, vec![]);
    }
    // Back to its old shard count: it starts and catches up.
    a.cluster.restart_with_shards(node, old);
    if a.settled(
        &format!("{node} starts with {old} shards and catches up"),
        15_000,
    )
    .await
    {
        sim.mark(MARK_RECOVERED);
    }
    phases::heal(&sim);
    let pending = phases::converge(&sim, &cfg, 50, || a.cluster.pending()).await;
    let mut state = a.cluster.final_state();
    state["notes"] = serde_json::json!([note]);
    a.story.end(state, pending)
}

async fn run_reshard(sim: Sim, cfg: Rc<RunConfig>) -> RunEnd {
    let a = ScArea::start(&sim, &cfg);
    phases::warmup(&sim, &cfg).await;
    if !a.settled("every group elects a leader", 10_000).await {
        return end_of(&a, vec![]);
    }
    let Some(mut last) = write_all(&a).await else {
        return end_of(&a, vec![]);
    };
    let before = server_shards(&a);
    phases::enter(&sim, "chaos");
    for n in a.cluster.nodes.clone() {
        let more = a.cluster.shards_of(n) * 2;
        a.cluster.restart_with_shards(n, more);
        if !a
            .settled(
                &format!("the groups catch up after {n} reshards to {more}"),
                15_000,
            )
            .await
        {
            return end_of(&a, vec![]);
        }
        let key = n.0 as u64 % a.params.keys;
        if let Some(v) = a.write_ok(key, 10_000).await {
            last.insert(key, v);
        }
    }
    sim.mark(MARK_RESHARDED);
    let after = server_shards(&a);
    a.story.expect(
        after == before,
        "every group's server runs on the same shard after the reshard",
    );
    let loaded_empty = sim
        .history()
        .entries()
        .iter()
        .filter_map(|e| match e.proto::<ScEvent>() {
            Some(&ScEvent::Loaded {
                inc, bootstrapped, ..
            }) if inc > 0 => Some(bootstrapped),
            _ => None,
        })
        .any(|b| b);
    a.story.expect(
        !loaded_empty,
        "no resharded server had to bootstrap its group again",
    );
    read_back(&a, &last).await;
    phases::heal(&sim);
    let pending = phases::converge(&sim, &cfg, 50, || a.cluster.pending()).await;
    end_of(&a, pending)
}
