//! The topology scenarios: tablet migration with fenced streaming sessions and barriers
//! (SPEC §1–§3). Scripted stories re-create the known-hard cases (the §3 fenced-streaming test
//! and its revert variant, stalled streams, coordinator failover, crashes of the pending node,
//! a barrier blocked by a guard); `topology.swarm` runs the balancer, a client workload and
//! swarm faults, among them state-triggered templates ([`swarm_triggered`]) that re-create
//! what only scripted stories reached before:
//! - buggify episodes of the streaming injection points, each set off by a streaming event and
//!   released at a random time;
//! - a receiver held at `stream_mutation_fragments` until every migration to its node that was
//!   in transition when it entered has ended (SPEC §3: the guard check is the only way out, so
//!   a receiver that skips it deadlocks the drain) — an injection fault with a release
//!   condition (`ReleaseOn::MigrationsToNodeEnded`), kept through the heal once entered;
//! - the pending replica's node crashed in `write_both_read_new` while every node is up, then
//!   excluded through the API by the run's operator (`Fault::ExcludeNode`, as
//!   `migration.exclude_node_fallback_cleanup` does): the rollback through
//!   `write_both_read_old_fallback_cleanup`.
//!
//! All of them are faults of the seed's schedule: `explain` lists them, a bundle replays them
//! and `shrink` drops or keeps them like any other fault. Their shares are the templates'
//! probabilities in the fault model (`explain` shows the model).

use crate::checkers::topology::{
    barrier::BarrierHoldsGroup0Sessions, data::Data, expectations::Expectations, fencing::Fencing,
    liveness::Liveness, routing::BarrierBeforeRoutingChange, scoping::SessionScoping,
    skew::SkewBound, stage::StageMonotonicity,
};
use crate::config::RunConfig;
use crate::phases;
use crate::scenario::{Checker, RunEnd, ScenarioDef, Tier};
use crate::story::Story;
use crate::workload::{self, KvLoad};
use fault_injection::{
    BuggifyPoint, EventTrigger, Fault, FaultKind, FaultModel, FaultSchedule, ReleaseOn,
    ScheduledFault, TriggeredFault,
};
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use model::node::Cluster;
use model::topology::api;
use model::topology::barrier::BARRIER_AND_DRAIN_FAIL;
use model::topology::coordinator::STREAM_TABLET_MOVE_TO_CLEANUP;
use model::topology::data::{Client, Storage};
use model::topology::events::{OpOutcome, TopologyEvent};
use model::topology::group0::current_leader;
use model::topology::stage::Stage;
use model::topology::TopologyConfig;
use model::topology::{Key, NodeId, Replica, ShardId, TableId, TabletId, Value};
use rand::Rng;
use sim::injection::InjectionEvent;
use sim::time::{sleep, Duration};
use sim::Sim;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The topology checkers plus group0's own (one leader per term, committed entries never
/// change, every node applies the same sequence): the coordinator's Raft is checked in every
/// topology run, not only in `raft.*`.
const CHECKERS: &[&dyn Checker] = &[
    &crate::checkers::raft::ElectionSafety,
    &crate::checkers::raft::LogAgreement,
    &Fencing,
    &crate::checkers::topology::group0_tables::Group0TablesMatchLog,
    &BarrierHoldsGroup0Sessions,
    &BarrierBeforeRoutingChange,
    &SessionScoping,
    &SkewBound,
    &Data,
    &StageMonotonicity,
    &Liveness,
    &Expectations,
];

/// Every `topology.*`, `streaming.*`, `barrier.*`, `migration.*` scenario, in catalog order.
pub fn scenarios() -> Vec<ScenarioDef> {
    vec![
        ScenarioDef {
            id: "migration.happy_path",
            tier: Tier::Scripted,
            description: "the balancer moves tablets through every stage under client load; every acknowledged write stays readable",
            mutants: &[
                "barrier-skips-stale-erm-wait",
                "barrier-skips-version-check",
                "fence-version-not-advanced",
                "session-not-deleted-after-streaming",
            ],
            marks: &["migration completed"],
            config: config_load,
            run: |sim, cfg| run_load(sim, cfg).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "streaming.fenced_after_kill_connection",
            tier: Tier::Scripted,
            description: "SPEC §3: node A alone, node B added through the coordinator's join path; a receiver blocked before applying outlives its killed stream; streaming is retried under the same session and completes; after TRUNCATE the released receiver is refused and nothing is resurrected",
            mutants: &["no-fencing", "stream-ignores-closed-session", "receiver-ignores-guard-check", "session-not-deleted-after-streaming"],
            marks: &["node joined through the topology coordinator", "stale stream refused", "streaming failed, will retry or roll back", "migration completed"],
            config: config_one_node,
            run: |sim, cfg| run_scripted(sim, cfg, story_fenced_after_kill).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "streaming.fenced_after_revert",
            tier: Tier::Scripted,
            description: "revert variant: a rollback reason sends the tablet to cleanup_target/revert_migration; the abandoned receiver must not land data on the cleaned pending replica",
            mutants: &["no-fencing", "stream-ignores-closed-session"],
            marks: &["stale stream refused", "streaming rolled back to cleanup_target", "pending replica cleaned", "migration reverted"],
            config: config_two_nodes,
            run: |sim, cfg| run_scripted(sim, cfg, story_fenced_after_revert).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "streaming.stalled_rpc_then_revert",
            tier: Tier::Scripted,
            description: "the fragment stream is stalled on its link until streaming times out and the migration reverts; the stream admitted after the release is refused",
            mutants: &["no-fencing"],
            marks: &["stale stream refused", "streaming rolled back to cleanup_target", "migration reverted"],
            config: config_stalled,
            run: |sim, cfg| run_scripted(sim, cfg, story_stalled_then_revert).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "streaming.coordinator_failover_during_streaming",
            tier: Tier::Scripted,
            description: "the coordinator (also the streaming source) pauses mid-streaming; a new coordinator fences it, resumes the migration with the same session, and the old one's work never takes effect",
            mutants: &["coordinator-ignores-term", "no-fencing"],
            marks: &["stale stream refused", "coordinator resumed a migration", "migration completed"],
            config: config_three_nodes,
            run: |sim, cfg| run_scripted(sim, cfg, story_failover).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "streaming.pending_node_crash",
            tier: Tier::Scripted,
            description: "the pending replica's node crashes mid-streaming; streaming is retried with the same session until it is back, and the migration completes",
            mutants: &[],
            marks: &["streaming failed, will retry or roll back", "migration completed"],
            config: config_three_nodes,
            run: |sim, cfg| run_scripted(sim, cfg, story_pending_crash).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "barrier.blocks_until_drained",
            tier: Tier::Scripted,
            description: "a stream consumer holds the session's guard while writing; the barrier after write_both_read_new waits for it (drain) before the migration moves on",
            mutants: &["barrier-skips-drain"],
            marks: &["consumer write paused", "barrier waited for drain", "migration completed"],
            config: config_two_nodes,
            run: |sim, cfg| run_scripted(sim, cfg, story_barrier_blocks).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "streaming.revert_with_consumer_paused",
            tier: Tier::Scripted,
            description: "revert with the stream consumer's write paused while it holds the guard: the cleanup_target barrier drains it before the pending replica is cleaned, so its row never lands on a cleaned replica",
            mutants: &["barrier-skips-drain"],
            marks: &["consumer write paused", "barrier waited for drain", "pending replica cleaned", "migration reverted"],
            config: config_two_nodes,
            run: |sim, cfg| run_scripted(sim, cfg, story_revert_consumer_paused).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "migration.late_write_fenced",
            tier: Tier::Scripted,
            description: "a client write stalled on its way to the leaving replica outlives the whole migration; released after the cleanup, it is refused by group0's fence_version, which the coordinator advanced after the barrier",
            mutants: &["fence-version-not-advanced"],
            marks: &["write refused by fence", "migration completed"],
            config: config_three_nodes,
            run: |sim, cfg| run_scripted(sim, cfg, story_late_write_fenced).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "migration.exclude_node_fallback_cleanup",
            tier: Tier::Scripted,
            description: "the pending replica's node dies in write_both_read_new and is excluded through the API: the migration rolls back through write_both_read_old_fallback_cleanup and its barrier before cleanup_target",
            mutants: &["rollback-skips-barrier"],
            marks: &["rolled back through write_both_read_old_fallback_cleanup", "migration reverted"],
            config: config_exclude,
            run: |sim, cfg| run_scripted(sim, cfg, story_exclude_fallback).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "migration.stale_coordinator_read_fenced",
            tier: Tier::Scripted,
            description: "an uninvolved node dies and is excluded; the tablet moves away from its only replica and the old replica is cleaned; the node restarts from its disk, behind on group0, and reads the row at once: it routes the read to the cleaned old replica with its old topology version, and the replica's fence refuses it (upstream handle_read's apply_fence) instead of answering 'no such row'",
            mutants: &[model::topology::data::MUTANT_READ_IGNORES_FENCE],
            marks: &["read refused by fence", "migration completed", "dead node excluded through the API"],
            config: config_exclude,
            run: |sim, cfg| run_scripted(sim, cfg, story_stale_coordinator_read).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "migration.lagging_node_skew",
            tier: Tier::Scripted,
            description: "group0's appends and heartbeats to an uninvolved node are stalled while a tablet migrates: every barrier waits for it (its read barrier cannot complete), so no stage is committed two stages ahead of what it applied; released, it catches up and the migration completes",
            mutants: &["barrier-skips-version-check"],
            marks: &["migration completed"],
            config: config_three_nodes,
            run: |sim, cfg| run_scripted(sim, cfg, story_lagging_node).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "raft.leader_crash_mid_migration",
            tier: Tier::Scripted,
            description: "the group0 leader (the coordinator) crashes while tablets stream; the next leader resumes every migration from group0 state",
            mutants: &[model::topology::system_tables::MUTANT_TABLES_SKIP_TRANSITIONS],
            marks: &["coordinator resumed a migration", "migration completed"],
            config: config_leader_crash,
            run: |sim, cfg| run_load(sim, cfg).boxed_local(),
            checkers: CHECKERS,
        },
        ScenarioDef {
            id: "topology.swarm",
            tier: Tier::Randomised,
            description: "balancer on, random move_tablet calls, client load, swarm faults (killed connections, stalls, partitions, crashes, leader kills, disk stalls), the model's injection points with random release (blocked receivers, paused consumers, rollback windows), and, as state-triggered schedule faults, a receiver held until its migration ended and a pending node that dies in write_both_read_new and is excluded through the API",
            // Every mutant a scripted story of this area catches. The last two only through the
            // schedule's operator templates: `receiver-ignores-guard-check` deadlocks the
            // barrier under a receiver held until its migration ends (liveness, first seed 4 of
            // 0..200), `rollback-skips-barrier` commits `cleanup_target` straight from
            // `write_both_read_new` once the dead pending node is excluded (routing, safety,
            // first seed 3).
            mutants: &[
                "no-fencing",
                "barrier-skips-drain",
                "barrier-skips-stale-erm-wait",
                "stream-ignores-closed-session",
                "session-not-deleted-after-streaming",
                "coordinator-ignores-term",
                "barrier-skips-version-check",
                "fence-version-not-advanced",
                model::topology::system_tables::MUTANT_TABLES_SKIP_TRANSITIONS,
                model::topology::stream::RECEIVER_IGNORES_GUARD_CHECK,
                model::topology::pump::ROLLBACK_SKIPS_BARRIER,
                model::topology::barrier::BARRIER_NO_TIMEOUT,
            ],
            marks: &[],
            config: config_swarm,
            run: |sim, cfg| run_load(sim, cfg).boxed_local(),
            checkers: CHECKERS,
        },
    ]
}

// ---------------------------------------------------------------------------------------------
// configs

fn topo_defaults(cfg: &mut RunConfig, t: TopologyConfig) {
    cfg.nodes = t.nodes;
    cfg.shards = t.shards;
    cfg.set_section("topology", &t);
}

fn config_two_nodes(cfg: &mut RunConfig) {
    cfg.phases.warmup_ms = 100;
    cfg.phases.chaos_ms = 0;
    cfg.phases.converge_budget_ms = 30_000;
    topo_defaults(
        cfg,
        TopologyConfig {
            nodes: 2,
            ..TopologyConfig::default()
        },
    );
}

/// SPEC §3 step 1: node A alone (step 4 adds B at run time).
fn config_one_node(cfg: &mut RunConfig) {
    config_two_nodes(cfg);
    topo_defaults(
        cfg,
        TopologyConfig {
            nodes: 1,
            ..TopologyConfig::default()
        },
    );
}

fn config_three_nodes(cfg: &mut RunConfig) {
    config_two_nodes(cfg);
    topo_defaults(
        cfg,
        TopologyConfig {
            nodes: 3,
            stream_timeout_ms: 5_000,
            ..TopologyConfig::default()
        },
    );
}

fn config_stalled(cfg: &mut RunConfig) {
    config_two_nodes(cfg);
    topo_defaults(
        cfg,
        TopologyConfig {
            nodes: 2,
            stream_timeout_ms: 2_000,
            ..TopologyConfig::default()
        },
    );
}

fn config_exclude(cfg: &mut RunConfig) {
    config_two_nodes(cfg);
    topo_defaults(
        cfg,
        TopologyConfig {
            nodes: 3,
            stream_timeout_ms: 5_000,
            barrier_timeout_ms: 1_000,
            ..TopologyConfig::default()
        },
    );
}

fn load_topology() -> TopologyConfig {
    TopologyConfig {
        nodes: 3,
        shards: 2,
        // Two user tables of three tablets each: tablets of several tables migrate at once.
        tables: 2,
        tablets: 3,
        initial_holders: 1,
        balancing: true,
        balancer_max_concurrent: 2,
        barrier_timeout_ms: 3_000,
        stream_timeout_ms: 5_000,
        stream_fragment_interval_ms: 2,
        ..TopologyConfig::default()
    }
}

fn config_load(cfg: &mut RunConfig) {
    cfg.phases.warmup_ms = 200;
    cfg.phases.chaos_ms = 3_000;
    cfg.phases.converge_budget_ms = 30_000;
    topo_defaults(cfg, load_topology());
}

fn config_leader_crash(cfg: &mut RunConfig) {
    config_load(cfg);
    cfg.phases.warmup_ms = 0;
    let mut rng = sim::rng::standalone(cfg.seed, "faults");
    cfg.faults = FaultSchedule {
        faults: vec![ScheduledFault {
            at_ms: rng.gen_range(0..30),
            after: Some(EventTrigger {
                kind: "stream_started".into(),
                nth: rng.gen_range(1..=3),
                ..EventTrigger::default()
            }),
            fault: Fault::KillLeader,
            duration_ms: Some(rng.gen_range(500..2_000)),
        }],
    };
}

fn config_swarm(cfg: &mut RunConfig) {
    config_load(cfg);
    cfg.phases.chaos_ms = 5_000;
    cfg.params.insert("moves".into(), serde_json::json!(true));
    cfg.fault_model = FaultModel {
        kinds: vec![
            FaultKind::KillConnection,
            FaultKind::Stall,
            FaultKind::Partition,
            FaultKind::Crash,
            FaultKind::KillLeader,
            FaultKind::DiskStall,
            FaultKind::Pause,
            FaultKind::Injection,
        ],
        min_faults: 2,
        max_faults: 8,
        window_ms: 4_500,
        max_duration_ms: 1_500,
        verbs: vec![
            "stream_mutation_fragments".into(),
            "tablet_stream_data".into(),
            "stream_request".into(),
            "raft_topology_cmd".into(),
            "tablet_cleanup".into(),
            "mutation".into(),
        ],
        max_down: 1,
        // Buggify, in the swarm's kind mix: the model's points on a random node for a while.
        injections: vec![
            BuggifyPoint::new(STREAM_MUTATION_FRAGMENTS, 1_500),
            BuggifyPoint::new(STREAM_CONSUMER_WRITE, 1_500),
            BuggifyPoint::new(STREAM_TABLET_MOVE_TO_CLEANUP, 1_500),
            BuggifyPoint::new(BARRIER_AND_DRAIN_FAIL, 1_000),
        ],
        triggered: swarm_triggered(),
        ..FaultModel::default()
    };
}

/// The swarm's state-triggered buggify episodes, each set off by one streaming event and
/// released at a random time (the injection fault's end):
/// - a receiver held at `stream_mutation_fragments` (or a consumer paused at
///   `stream_consumer_write`) as its stream opens, then the stream's connection killed: the
///   master fails, streaming is retried under the same session and completes, and the session
///   closes under the held receiver (stale stream refused) or paused consumer (the barrier
///   drains it);
/// - a streaming master whose receiver is held, its `tablet_stream_data` connection from the
///   coordinator killed, and sometimes a rollback window (`stream_tablet_move_to_cleanup` on the
///   coordinator): the stage moves on under the stuck master, whose tablet metadata guard goes
///   stale.
///
/// And, last (so the draws of those above stay as they were), the operator's two templates:
/// SPEC §3's hold, released not at a time but when the migrations it can belong to have
/// ended, and the dead pending node excluded through the API.
fn swarm_triggered() -> Vec<TriggeredFault> {
    let on = |kind: &str, nth: u32, verb: &str, bind: &[(&str, &str)]| EventTrigger {
        fields: [("verb".to_string(), serde_json::json!(verb))].into(),
        bind: bind
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..EventTrigger::on(kind, nth)
    };
    let inj = |name: &str| Fault::Injection {
        node: NodeId(1),
        name: name.into(),
        one_shot: true,
    };
    let kill = Fault::KillConnection {
        from: NodeId(1),
        to: NodeId(2),
    };
    let mut out = Vec::new();
    for (point, p) in [
        (STREAM_MUTATION_FRAGMENTS, 0.6),
        (STREAM_CONSUMER_WRITE, 0.45),
    ] {
        let open = |bind| on("stream_open", 8, STREAM_MUTATION_FRAGMENTS, bind);
        out.push(
            TriggeredFault::new(open(&[("node", "to")]), inj(point), p, 0).lasting(1_000, 6_000),
        );
        out.push(
            TriggeredFault::new(
                open(&[("from", "@node"), ("to", "to")]),
                kill.clone(),
                0.8,
                600,
            )
            .following(),
        );
    }
    let admit = |bind| on("rpc_admit", 8, "tablet_stream_data", bind);
    out.push(
        TriggeredFault::new(
            admit(&[("node", "@node")]),
            inj(STREAM_MUTATION_FRAGMENTS),
            0.5,
            0,
        )
        .lasting(2_000, 6_000),
    );
    out.push(
        TriggeredFault::new(admit(&[("from", "from"), ("to", "@node")]), kill, 0.9, 800)
            .following(),
    );
    out.push(
        TriggeredFault::new(
            admit(&[("node", "from")]),
            Fault::Injection {
                node: NodeId(1),
                name: STREAM_TABLET_MOVE_TO_CLEANUP.into(),
                one_shot: false,
            },
            0.5,
            900,
        )
        .lasting(1_200, 3_000)
        .following(),
    );
    // SPEC §3's hold, in a share of seeds: when a tablet starts streaming to a node, its
    // receiver is held at `stream_mutation_fragments` (one-shot) until every migration to
    // that node that was in transition when the receiver entered has ended. Nothing but the
    // receiver's own guard check ends the hold before that (the hold outlives the heal): a
    // receiver that does not check keeps its session's guard, the barrier's drain waits for
    // it, the migration never ends and the release never comes (a liveness failure, as in the
    // scripted story); a correct receiver is refused once its session closes.
    let streaming = EventTrigger {
        fields: [("stage".to_string(), serde_json::json!("streaming"))].into(),
        bind: [(
            "node".to_string(),
            "(new_replicas - replicas).0.node".to_string(),
        )]
        .into(),
        until: Some(ReleaseOn::MigrationsToNodeEnded),
        ..EventTrigger::on("stage_committed", 6)
    };
    out.push(TriggeredFault::new(
        streaming,
        inj(STREAM_MUTATION_FRAGMENTS),
        0.3,
        0,
    ));
    // The operator's exclude (the scripted `migration.exclude_node_fallback_cleanup`, drawn):
    // when a tablet enters `write_both_read_new`, its pending replica's node crashes (down
    // until the heal) and, within 1.5 s, is excluded through the API.
    let wbrn = EventTrigger {
        fields: [(
            "stage".to_string(),
            serde_json::json!("write_both_read_new"),
        )]
        .into(),
        bind: [(
            "node".to_string(),
            "(new_replicas - replicas).0.node".to_string(),
        )]
        .into(),
        ..EventTrigger::on("stage_committed", 6)
    };
    out.push(
        TriggeredFault::new(wbrn.clone(), Fault::Crash { node: NodeId(1) }, 0.3, 0)
            .until_heal()
            .leaving_cluster(),
    );
    out.push(
        TriggeredFault::new(wbrn, Fault::ExcludeNode { node: NodeId(1) }, 1.0, 1_500).following(),
    );
    out
}

/// The receiver's injection point: blocked between receiving a fragment and applying it.
const STREAM_MUTATION_FRAGMENTS: &str = "stream_mutation_fragments";
/// The consumer's: paused while it writes a fragment, holding the session's guard.
const STREAM_CONSUMER_WRITE: &str = "stream_consumer_write";

// ---------------------------------------------------------------------------------------------
// the story DSL

fn r(n: u32, s: u32) -> Replica {
    Replica {
        node: NodeId(n),
        shard: ShardId(s),
    }
}

const T0: TabletId = TabletId::new(TableId::user(0), 0);

/// A running topology story: the shared story kit, the cluster and the client load (whose
/// keys the final reads look at).
struct Topo {
    story: Story,
    cluster: Cluster,
    kv: Rc<KvLoad>,
}

impl Topo {
    fn start(sim: &Sim, cfg: &Rc<RunConfig>) -> Rc<Topo> {
        let t: TopologyConfig = cfg.section("topology");
        Rc::new(Topo {
            story: Story::new(sim, cfg),
            cluster: Cluster::start(sim, t),
            kv: KvLoad::new(),
        })
    }

    fn sim(&self) -> &Sim {
        &self.story.sim
    }

    fn client(&self, n: u32) -> Client {
        Client::new(self.sim(), NodeId(n))
    }

    fn expect(&self, ok: bool, what: &str) {
        self.story.expect(ok, what);
    }

    async fn write(&self, c: &Client, key: Key, value: Value) -> OpOutcome {
        self.kv.write(c, key, value).await
    }

    async fn wait_until(&self, what: &str, ms: u64, cond: impl FnMut() -> bool) -> bool {
        self.story.wait_until(what, ms, cond).await
    }

    fn stage(&self, t: TabletId) -> Option<Stage> {
        self.cluster
            .state()
            .and_then(|s| s.tablets.get(&t).and_then(|i| i.stage()))
    }

    fn replicas(&self, t: TabletId) -> Vec<Replica> {
        self.cluster
            .state()
            .map(|s| s.tablets[&t].replicas.clone())
            .unwrap_or_default()
    }

    /// Start `move_tablet` in the background; the returned flag turns true when it returns.
    fn spawn_move(&self, t: TabletId, src: Replica, dst: Replica) -> Rc<Cell<bool>> {
        let c = self.cluster.clone();
        self.story.spawn(async move {
            let _ = api::move_tablet(&c, t, src, dst).await;
        })
    }
}

impl phases::Area for Topo {
    fn story(&self) -> &Story {
        &self.story
    }

    fn poll_ms(&self) -> u64 {
        50
    }

    /// No new migrations from here on: the final checks look at a settled placement. Confirm
    /// it on the leader's copy of group0: a node that just restarted may answer from a state
    /// that has not caught up yet, and the balancer must really be off before convergence is
    /// judged.
    fn quiesce(&self) -> LocalBoxFuture<'_, ()> {
        Box::pin(async move {
            let sim = self.sim();
            let deadline = sim.now().0 + self.story.cfg.phases.converge_budget_ms * 1_000_000;
            loop {
                let _ = sim::time::timeout(
                    Duration::from_millis(1_000),
                    api::set_balancing(&self.cluster, false),
                )
                .await;
                let off = current_leader(sim)
                    .and_then(|l| self.cluster.services(l))
                    .is_some_and(|s| !s.g0.with_state(|st| st.tablet_balancing_enabled));
                if off || sim.now().0 >= deadline {
                    break;
                }
                sleep(Duration::from_millis(100)).await;
            }
        })
    }

    fn pending(&self) -> Vec<String> {
        match self.cluster.state() {
            None => vec!["no live node".into()],
            Some(s) => s
                .tablets
                .iter()
                .filter_map(|(t, i)| {
                    i.stage()
                        .map(|st| format!("migration of {t} stuck in {st}"))
                })
                .collect(),
        }
    }

    /// Read every written key, check INV-TABL-1, list the final placement.
    fn final_state(&self, converged: bool) -> LocalBoxFuture<'_, serde_json::Value> {
        Box::pin(async move {
            let mut reads = BTreeMap::new();
            for key in self.kv.keys() {
                let mut got = None;
                for attempt in 0..5u32 {
                    let n = self.cluster.any_live().map_or(1, |s| s.node.0);
                    let node = 1 + (n - 1 + attempt) % self.cluster.cfg.nodes;
                    let (o, v) = self.client(node).read(key).await;
                    if o == OpOutcome::Ok {
                        got = Some(v);
                        break;
                    }
                    sleep(Duration::from_millis(100)).await;
                }
                reads.insert(key.to_string(), serde_json::json!(got));
            }
            // INV-TABL-1 after convergence: no shard holds rows of a tablet it does not
            // replicate.
            let mut stray = Vec::new();
            if let Some(st) = self.cluster.state() {
                // Every node of the run, also those added at run time.
                for n in &self.sim().nodes() {
                    if st.excluded.contains(n) {
                        continue;
                    }
                    for (shard, t, key, _) in Storage::of(self.sim(), *n).all_rows() {
                        let rep = Replica { node: *n, shard };
                        let info = &st.tablets[&t];
                        if info.transition.is_none() && !info.replicas.contains(&rep) {
                            stray.push(format!("{rep} holds key {key} of {t}"));
                        }
                    }
                }
            }
            if converged && !stray.is_empty() {
                self.expect(
                    false,
                    &format!("INV-TABL-1: data on non-replicas: {}", stray.join(", ")),
                );
            }
            let tablets: BTreeMap<String, Vec<String>> = self
                .cluster
                .state()
                .map(|s| {
                    s.tablets
                        .iter()
                        .map(|(t, i)| {
                            (
                                t.to_string(),
                                i.replicas.iter().map(|r| r.to_string()).collect(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            serde_json::json!({
                "final_reads": reads,
                "tablets": tablets,
            })
        })
    }
}

type TopoStory = fn(Rc<Topo>) -> LocalBoxFuture<'static, ()>;

/// A scripted topology story: the phase sequence with the story awaited during chaos.
async fn run_scripted(sim: Sim, cfg: Rc<RunConfig>, story: TopoStory) -> RunEnd {
    let st = Topo::start(&sim, &cfg);
    phases::run(&sim, &cfg, st, |st| phases::Plan {
        story: Some((phases::StoryMode::Awaited, story(st.clone()))),
        ..phases::Plan::default()
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// scripted stories

fn story_fenced_after_kill(st: Rc<Topo>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = st.sim().clone();
        // Step 4: add node B; it joins through the coordinator (group0 non-voter, the join
        // path's barriers and topology session) and is normal before any data is written.
        let b = st.cluster.add_node();
        st.expect(b == NodeId(2), "B is n2");
        let s2 = st.clone();
        if !st
            .wait_until("B joins (normal in group0)", 30_000, move || {
                s2.cluster.state().is_some_and(|s| {
                    s.node_states.get(&b) == Some(&model::topology::state::NodeState::Normal)
                })
            })
            .await
        {
            return;
        }
        let a = st.client(1);
        st.expect(st.write(&a, 7, 0).await == OpOutcome::Ok, "insert pk=7");
        st.expect(a.read(7).await.1 == Some(0), "one row visible");
        // Block B's receiver before it applies, then move A -> B.
        api::enable_injection(&sim, NodeId(2), "stream_mutation_fragments", true);
        let done = st.spawn_move(T0, r(1, 0), r(2, 0));
        api::wait_for_injection_enter(&sim, NodeId(2), "stream_mutation_fragments", 1).await;
        api::inject_disconnect(&sim, NodeId(1), NodeId(2));
        if st
            .wait_until("move_tablet A->B returns", 60_000, || done.get())
            .await
        {
            st.expect(st.replicas(T0) == vec![r(2, 0)], "tablet moved to B");
            st.expect(
                a.read(7).await.1 == Some(0),
                "one row visible after the move",
            );
            st.expect(a.truncate().await == OpOutcome::Ok, "TRUNCATE");
            st.expect(a.read(7).await.1.is_none(), "0 rows after TRUNCATE");
            // Release the abandoned receiver: it must be refused.
            api::message_injection(&sim, NodeId(2), "stream_mutation_fragments");
            sleep(Duration::from_millis(200)).await;
            st.expect(a.read(7).await.1.is_none(), "no resurrection after release");
            let back = st.spawn_move(T0, r(2, 0), r(1, 0));
            if st.wait_until("move back B->A", 60_000, || back.get()).await {
                st.expect(
                    a.read(7).await.1.is_none(),
                    "still 0 rows after moving back",
                );
            }
        }
    })
}

fn story_fenced_after_revert(st: Rc<Topo>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = st.sim().clone();
        let a = st.client(1);
        st.expect(st.write(&a, 7, 0).await == OpOutcome::Ok, "insert pk=7");
        api::enable_injection(&sim, NodeId(2), "stream_mutation_fragments", true);
        let done = st.spawn_move(T0, r(1, 0), r(2, 0));
        api::wait_for_injection_enter(&sim, NodeId(2), "stream_mutation_fragments", 1).await;
        // Only now: upstream also throws inside the streaming action, so enabled earlier it
        // would fail streaming before any receiver started.
        for n in [1, 2] {
            api::enable_injection(&sim, NodeId(n), "stream_tablet_move_to_cleanup", false);
        }
        api::inject_disconnect(&sim, NodeId(1), NodeId(2));
        if st
            .wait_until("migration reverted", 60_000, || done.get())
            .await
        {
            st.expect(
                st.replicas(T0) == vec![r(1, 0)],
                "replicas unchanged after revert",
            );
            for n in [1, 2] {
                api::disable_injection(&sim, NodeId(n), "stream_tablet_move_to_cleanup");
            }
            api::message_injection(&sim, NodeId(2), "stream_mutation_fragments");
            sleep(Duration::from_millis(200)).await;
            st.expect(
                Storage::of(&sim, NodeId(2)).scan(ShardId(0), T0).is_empty(),
                "the cleaned pending replica holds no data of the tablet",
            );
            st.expect(
                a.read(7).await.1 == Some(0),
                "row still visible on the old replica",
            );
            migrate_again_and_read(&st, &a).await;
        }
    })
}

/// A node that stops receiving group0 (its appends and heartbeats stalled) while a tablet it
/// does not replicate migrates. The skew bound holds only because each barrier waits for it.
fn story_lagging_node(st: Rc<Topo>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = st.sim().clone();
        let a = st.client(1);
        st.expect(st.write(&a, 7, 0).await == OpOutcome::Ok, "insert pk=7");
        let s2 = sim.clone();
        if !st
            .wait_until("a group0 leader", 10_000, move || {
                current_leader(&s2).is_some()
            })
            .await
        {
            return;
        }
        let leader = current_leader(&sim).expect("waited for it");
        // The lagging node is neither the leader nor a replica of T0 (on n1); the tablet moves
        // to the remaining node.
        let lag = if leader == NodeId(3) {
            NodeId(2)
        } else {
            NodeId(3)
        };
        let dst = if lag == NodeId(3) {
            NodeId(2)
        } else {
            NodeId(3)
        };
        for verb in ["raft_append_entries", "raft_heartbeat"] {
            sim.net().stall(leader, lag, verb);
        }
        let done = st.spawn_move(T0, r(1, 0), r(dst.0, 0));
        sleep(Duration::from_millis(3_000)).await;
        for verb in ["raft_append_entries", "raft_heartbeat"] {
            sim.net().release(leader, lag, verb);
        }
        if st
            .wait_until("move_tablet returns", 60_000, || done.get())
            .await
        {
            st.expect(st.replicas(T0) == vec![r(dst.0, 0)], "tablet moved");
            st.expect(a.read(7).await.1 == Some(0), "pk=7 readable after the move");
        }
    })
}

/// After a revert: the same move again completes, and pk=7 is still readable.
async fn migrate_again_and_read(st: &Rc<Topo>, a: &Client) {
    let again = st.spawn_move(T0, r(1, 0), r(2, 0));
    if st
        .wait_until("a later migration completes", 60_000, || again.get())
        .await
    {
        st.expect(
            a.read(7).await.1 == Some(0),
            "row visible after the later migration",
        );
    }
}

fn story_stalled_then_revert(st: Rc<Topo>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = st.sim().clone();
        let a = st.client(1);
        st.expect(st.write(&a, 7, 0).await == OpOutcome::Ok, "insert pk=7");
        sim.net()
            .stall(NodeId(1), NodeId(2), "stream_mutation_fragments");
        let done = st.spawn_move(T0, r(1, 0), r(2, 0));
        // The rollback reason, once the streaming action has sent tablet_stream_data (the
        // injection also fails a streaming action that starts while it is enabled).
        let s2 = st.clone();
        st.wait_until("streaming started", 30_000, move || {
            s2.stage(T0) == Some(Stage::Streaming)
        })
        .await;
        sleep(Duration::from_millis(100)).await;
        for n in [1, 2] {
            api::enable_injection(&sim, NodeId(n), "stream_tablet_move_to_cleanup", false);
        }
        if st
            .wait_until("migration reverted", 60_000, || done.get())
            .await
        {
            st.expect(
                st.replicas(T0) == vec![r(1, 0)],
                "replicas unchanged after revert",
            );
            for n in [1, 2] {
                api::disable_injection(&sim, NodeId(n), "stream_tablet_move_to_cleanup");
            }
            sim.net()
                .release(NodeId(1), NodeId(2), "stream_mutation_fragments");
            sleep(Duration::from_millis(300)).await;
            st.expect(
                Storage::of(&sim, NodeId(2)).scan(ShardId(0), T0).is_empty(),
                "the stalled stream landed nothing on the cleaned pending replica",
            );
            migrate_again_and_read(&st, &a).await;
        }
    })
}

fn story_failover(st: Rc<Topo>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = st.sim().clone();
        let c = st.client(3);
        st.expect(st.write(&c, 7, 0).await == OpOutcome::Ok, "insert pk=7");
        api::enable_injection(&sim, NodeId(2), "stream_mutation_fragments", true);
        let done = st.spawn_move(T0, r(1, 0), r(2, 0));
        api::wait_for_injection_enter(&sim, NodeId(2), "stream_mutation_fragments", 1).await;
        // Pause the coordinator (the group0 leader); a new one takes over and fences it.
        let old = current_leader(&sim).unwrap_or(NodeId(1));
        sim.pause(old);
        sleep(Duration::from_millis(1_500)).await;
        sim.resume(old);
        // Break the stream to the blocked receiver: streaming fails and is retried.
        api::inject_disconnect(&sim, NodeId(1), NodeId(2));
        if st
            .wait_until("move_tablet returns", 60_000, || done.get())
            .await
        {
            st.expect(st.replicas(T0) == vec![r(2, 0)], "tablet moved");
            st.expect(c.truncate().await == OpOutcome::Ok, "TRUNCATE");
            api::message_injection(&sim, NodeId(2), "stream_mutation_fragments");
            sleep(Duration::from_millis(200)).await;
            st.expect(c.read(7).await.1.is_none(), "no resurrection after release");
            let back = st.spawn_move(T0, r(2, 0), r(1, 0));
            st.wait_until("move back", 60_000, || back.get()).await;
        }
    })
}

fn story_pending_crash(st: Rc<Topo>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = st.sim().clone();
        let c = st.client(1);
        st.expect(st.write(&c, 7, 0).await == OpOutcome::Ok, "insert pk=7");
        api::enable_injection(&sim, NodeId(2), "stream_mutation_fragments", true);
        let done = st.spawn_move(T0, r(1, 0), r(2, 0));
        api::wait_for_injection_enter(&sim, NodeId(2), "stream_mutation_fragments", 1).await;
        sim.crash(NodeId(2));
        sleep(Duration::from_millis(2_500)).await;
        st.expect(
            st.stage(T0) == Some(Stage::Streaming),
            "streaming retried while n2 is down",
        );
        sim.restart(NodeId(2));
        if st
            .wait_until("move_tablet returns", 60_000, || done.get())
            .await
        {
            st.expect(st.replicas(T0) == vec![r(2, 0)], "tablet moved");
            st.expect(
                c.read(7).await.1 == Some(0),
                "row visible on the new replica",
            );
            st.expect(c.truncate().await == OpOutcome::Ok, "TRUNCATE");
            let back = st.spawn_move(T0, r(2, 0), r(1, 0));
            if st.wait_until("move back", 60_000, || back.get()).await {
                st.expect(c.read(7).await.1.is_none(), "0 rows after moving back");
            }
        }
    })
}

fn story_barrier_blocks(st: Rc<Topo>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = st.sim().clone();
        let a = st.client(1);
        st.expect(st.write(&a, 7, 0).await == OpOutcome::Ok, "insert pk=7");
        api::enable_injection(&sim, NodeId(2), "stream_consumer_write", true);
        let done = st.spawn_move(T0, r(1, 0), r(2, 0));
        api::wait_for_injection_enter(&sim, NodeId(2), "stream_consumer_write", 1).await;
        api::inject_disconnect(&sim, NodeId(1), NodeId(2));
        let s2 = st.clone();
        if st
            .wait_until("write_both_read_new committed", 30_000, move || {
                s2.stage(T0) != Some(Stage::Streaming)
            })
            .await
        {
            // The consumer still holds the closed session's guard: the barrier must wait.
            sleep(Duration::from_millis(2_000)).await;
            st.expect(
            st.stage(T0) == Some(Stage::WriteBothReadNew),
            "the barrier after write_both_read_new waits while a guard of the closed session is held",
        );
            api::message_injection(&sim, NodeId(2), "stream_consumer_write");
            if st
                .wait_until("move_tablet returns", 60_000, || done.get())
                .await
            {
                st.expect(a.read(7).await.1 == Some(0), "row visible after the move");
            }
        }
    })
}

fn story_revert_consumer_paused(st: Rc<Topo>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = st.sim().clone();
        let a = st.client(1);
        st.expect(st.write(&a, 7, 0).await == OpOutcome::Ok, "insert pk=7");
        api::enable_injection(&sim, NodeId(2), "stream_consumer_write", true);
        let done = st.spawn_move(T0, r(1, 0), r(2, 0));
        api::wait_for_injection_enter(&sim, NodeId(2), "stream_consumer_write", 1).await;
        // The consumer holds the session's guard; now give the coordinator a rollback reason
        // and fail streaming.
        for n in [1, 2] {
            api::enable_injection(&sim, NodeId(n), STREAM_TABLET_MOVE_TO_CLEANUP, false);
        }
        api::inject_disconnect(&sim, NodeId(1), NodeId(2));
        let s2 = st.clone();
        if st
            .wait_until("cleanup_target committed", 30_000, move || {
                s2.stage(T0) == Some(Stage::CleanupTarget)
            })
            .await
        {
            sleep(Duration::from_millis(2_000)).await;
            st.expect(
                st.stage(T0) == Some(Stage::CleanupTarget),
                "the cleanup_target barrier waits while the paused consumer holds the closed session's guard",
            );
            for n in [1, 2] {
                api::disable_injection(&sim, NodeId(n), STREAM_TABLET_MOVE_TO_CLEANUP);
            }
            api::message_injection(&sim, NodeId(2), "stream_consumer_write");
            if st
                .wait_until("migration reverted", 60_000, || done.get())
                .await
            {
                st.expect(
                    st.replicas(T0) == vec![r(1, 0)],
                    "replicas unchanged after revert",
                );
                st.expect(
                    Storage::of(&sim, NodeId(2)).scan(ShardId(0), T0).is_empty(),
                    "the consumer's row did not land on the cleaned pending replica",
                );
                st.expect(
                    a.read(7).await.1 == Some(0),
                    "row visible on the old replica",
                );
            }
        }
    })
}

fn story_late_write_fenced(st: Rc<Topo>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = st.sim().clone();
        let c = st.client(3);
        st.expect(st.write(&c, 7, 0).await == OpOutcome::Ok, "insert pk=7");
        // A write from n3 to the tablet's only replica n1 is held on the link.
        sim.net().stall(NodeId(3), NodeId(1), "mutation");
        let late = {
            let (c, kv) = (c.clone(), st.kv.clone());
            st.story.spawn(async move {
                let _ = kv.write(&c, 8, 1).await;
            })
        };
        sleep(Duration::from_millis(100)).await;
        let done = st.spawn_move(T0, r(1, 0), r(2, 0));
        if st
            .wait_until("move_tablet returns", 60_000, || done.get())
            .await
        {
            st.wait_until("the stalled write timed out", 10_000, || late.get())
                .await;
            st.expect(st.replicas(T0) == vec![r(2, 0)], "tablet moved");
            // Release the late write: it reaches the cleaned leaving replica.
            sim.net().release(NodeId(3), NodeId(1), "mutation");
            sleep(Duration::from_millis(300)).await;
            st.expect(
                Storage::of(&sim, NodeId(1)).scan(ShardId(0), T0).is_empty(),
                "the late write did not land on the cleaned leaving replica",
            );
            st.expect(c.read(7).await.1 == Some(0), "row visible after the move");
        }
    })
}

fn story_exclude_fallback(st: Rc<Topo>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = st.sim().clone();
        let c = st.client(3);
        st.expect(st.write(&c, 7, 0).await == OpOutcome::Ok, "insert pk=7");
        // Hold the receiver so the barrier of write_both_read_new can be made to fail on n2.
        api::enable_injection(&sim, NodeId(2), "stream_mutation_fragments", true);
        let done = st.spawn_move(T0, r(1, 0), r(2, 0));
        api::wait_for_injection_enter(&sim, NodeId(2), "stream_mutation_fragments", 1).await;
        api::enable_injection(&sim, NodeId(2), BARRIER_AND_DRAIN_FAIL, false);
        api::message_injection(&sim, NodeId(2), "stream_mutation_fragments");
        let s2 = st.clone();
        if st
            .wait_until("write_both_read_new committed", 30_000, move || {
                s2.stage(T0) == Some(Stage::WriteBothReadNew)
            })
            .await
        {
            // The pending replica's node dies; the operator excludes it.
            sim.crash(NodeId(2));
            st.expect(
                api::exclude_node(&st.cluster, NodeId(2)).await.is_ok(),
                "exclude n2",
            );
            if st
                .wait_until("migration reverted", 60_000, || done.get())
                .await
            {
                st.expect(
                    st.replicas(T0) == vec![r(1, 0)],
                    "replicas unchanged after the rollback",
                );
                st.expect(
                    c.read(7).await.1 == Some(0),
                    "row visible on the old replica",
                );
                st.expect(
                    st.write(&c, 9, 1).await == OpOutcome::Ok,
                    "writes go on without the excluded node",
                );
            }
        }
    })
}

/// The stale-coordinator read of `topology.swarm` seed 468, scripted: n2 (no replica of T0) is
/// crashed and excluded; T0 moves from n1 to n3 and n1 is cleaned; n2 restarts from its disk
/// (T0 still on n1 at its old version) and reads pk=7 before group0 catches it up. n1's fence
/// refuses the read, so the client sees a failed read, never a missing row.
fn story_stale_coordinator_read(st: Rc<Topo>) -> LocalBoxFuture<'static, ()> {
    Box::pin(async move {
        let sim = st.sim().clone();
        let c = st.client(3);
        st.expect(st.write(&c, 7, 0).await == OpOutcome::Ok, "insert pk=7");
        sim.crash(NodeId(2));
        let excluded = api::exclude_node(&st.cluster, NodeId(2)).await.is_ok();
        st.expect(excluded, "exclude n2");
        if !excluded {
            return;
        }
        sim.mark("dead node excluded through the API");
        let done = st.spawn_move(T0, r(1, 0), r(3, 0));
        if !st
            .wait_until("move_tablet returns", 60_000, || done.get())
            .await
        {
            return;
        }
        st.expect(st.replicas(T0) == vec![r(3, 0)], "tablet moved");
        sim.restart(NodeId(2));
        // Its services are up once the restart's tasks ran; group0's catch-up takes the next
        // append, a heartbeat away.
        sleep(Duration::from_millis(2)).await;
        let (outcome, value) = st.client(2).read(7).await;
        st.expect(
            outcome == OpOutcome::Failed,
            "the stale coordinator's read is refused",
        );
        st.expect(value.is_none(), "a refused read returns nothing");
        st.expect(
            c.read(7).await.1 == Some(0),
            "row visible on the new replica",
        );
    })
}

// ---------------------------------------------------------------------------------------------
// load: happy path, leader crash, swarm

async fn run_load(sim: Sim, cfg: Rc<RunConfig>) -> RunEnd {
    let st = Topo::start(&sim, &cfg);
    let end = phases::run(&sim, &cfg, st, |st| {
        let until = phases::chaos_end_ns(st.sim(), &st.story.cfg);
        let mut workloads = vec![st.kv.run(st.sim(), st.cluster.cfg.nodes, until)];
        if st
            .story
            .cfg
            .params
            .get("moves")
            .is_some_and(|v| v.as_bool() == Some(true))
        {
            workloads.push(workload::moves(&st.cluster, until));
        }
        operator_excludes(&st.cluster, until);
        let s2 = st.sim().clone();
        phases::Plan {
            workloads,
            leader: Some(Rc::new(move || current_leader(&s2))),
            // Let in-flight client operations finish before the final reads.
            settle_ms: 2_500,
            ..phases::Plan::default()
        }
    })
    .await;
    hold_marks(&sim);
    end
}

/// The marks of the swarm's SPEC §3 hold (the last template of [`swarm_triggered`]), read
/// from the history once the run is over: for each `stream_mutation_fragments` fault its
/// release condition ended (every migration to its node in transition when a receiver entered
/// the point had ended), "receiver held until its migration ended"; and when the receiver's
/// own guard check ended the hold before that (a refused fragment on the node, then the
/// one-shot point's disable), "held receiver refused by its guard check before its release".
/// A buggify episode's end, a crash or the heal are not the guard check: those seeds prove
/// nothing about it, which the second mark tells apart.
fn hold_marks(sim: &Sim) {
    let released: Vec<(usize, NodeId, usize)> = {
        let h = sim.history();
        let entries = h.entries();
        let applied_at = |id: u64| {
            entries.iter().position(
                |e| matches!(e.sim(), Some(sim::SimEvent::FaultApplied { id: i, .. }) if *i == id),
            )
        };
        entries
            .iter()
            .filter_map(|e| match e.sim() {
                Some(sim::SimEvent::FaultUndone {
                    id,
                    fault: Fault::Injection { node, name, .. },
                    by: sim::UndoneBy::Release,
                }) if name == STREAM_MUTATION_FRAGMENTS => Some((applied_at(*id)?, *node, e.index)),
                _ => None,
            })
            .collect()
    };
    for (applied, node, released) in released {
        sim.mark("receiver held until its migration ended");
        if refused_while_held(sim, node, applied, released) {
            sim.mark("held receiver refused by its guard check before its release");
        }
    }
}

/// Did the hold on `node`, applied at history index `from` and released at `to`, end with a
/// refused fragment on that node after a receiver entered the point, followed by the one-shot
/// point's disable (its handler dropped), the node not crashed in between: the receiver's
/// guard check ended it, not a message, a release or a crash.
fn refused_while_held(sim: &Sim, node: NodeId, from: usize, to: usize) -> bool {
    let h = sim.history();
    let entries = h.entries();
    let mut entered = false;
    let mut refused = false;
    for e in entries[from..to].iter().filter(|e| e.node == Some(node)) {
        if matches!(e.sim(), Some(sim::SimEvent::Crash { .. })) {
            return false;
        }
        match e.proto::<InjectionEvent>() {
            Some(InjectionEvent::Entered { name }) if name == STREAM_MUTATION_FRAGMENTS => {
                entered = true;
            }
            Some(InjectionEvent::Disabled { name }) if name == STREAM_MUTATION_FRAGMENTS => {
                return entered && refused;
            }
            _ => {}
        }
        if entered
            && matches!(
                e.proto::<TopologyEvent>(),
                Some(TopologyEvent::FragmentRefused { .. })
            )
        {
            refused = true;
        }
    }
    false
}

/// The run's operator (a [`Fault::ExcludeNode`] of the schedule): exclude the dead node
/// through the API (`ignored_nodes`), retried every 200 ms until it takes or the chaos phase
/// ends. The failed barrier of `write_both_read_new` with more new replicas excluded than old
/// then rolls the migration back through `write_both_read_old_fallback_cleanup` and its
/// barrier (the scripted `migration.exclude_node_fallback_cleanup`, drawn by the swarm).
fn operator_excludes(cluster: &Cluster, until_ns: u64) {
    let c = cluster.clone();
    sim::fault::Operator::of(&cluster.sim).set_exclude(move |node| {
        let c = c.clone();
        let sim = c.sim.clone();
        sim.clone().spawn_supervisor(async move {
            while sim.now().0 < until_ns {
                let call = api::exclude_node(&c, node);
                if let Ok(Ok(())) = sim::time::timeout(Duration::from_millis(2_000), call).await {
                    sim.mark("dead node excluded through the API");
                    return;
                }
                sleep(Duration::from_millis(200)).await;
            }
        });
    });
}
