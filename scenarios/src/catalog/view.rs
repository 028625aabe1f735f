//! The view building scenarios (`view.*`, SPEC §6): materialized views of a tablet base table
//! built by the view building coordinator while base writes go on, mirroring upstream's
//! `test/cluster/test_view_building_coordinator.py`. Scripted stories hold a `build_range`
//! batch at `view_building_worker_pause_build_range_task` and then fail its RPC, change the
//! group0 leader, migrate or revert its tablet, stream staging data, or drop a view;
//! `view.swarm` runs the balancer, base writes, random moves and swarm faults (coordinator
//! failover, killed and stalled worker RPCs, crashes) with buggified pause / fail points, and
//! reaches the scripted stories' states through state-triggered faults: a rollback window
//! (`stream_tablet_move_to_cleanup`) as a building tablet's task is aborted (the migration
//! reverts and the task must come back on the old replica), a held `tablet_cleanup` (staging
//! rows wait for the transition's end, the view's `SUCCESS` for the staging tasks), and, in a
//! share of seeds, a group0 failover while the old coordinator's retried work RPC is stalled
//! (the old term's RPC must be refused after the worker's read barrier). So the swarm alone
//! catches every vb mutant within a few seeds (`scenarios/tests/view.rs`).
//!
//! Every run is judged by V1–V8 (`checkers/view/`), the end-to-end view contents check, the
//! topology checkers and group0's Raft checkers.

use crate::checkers::topology::{
    expectations::Expectations, fencing::Fencing, liveness::Liveness, stage::StageMonotonicity,
};
use crate::checkers::view as vc;
use crate::config::RunConfig;
use crate::phases;
use crate::scenario::{Checker, RunEnd, ScenarioDef, Tier};
use crate::story::Story;
use fault_injection::{BuggifyPoint, EventTrigger, Fault, FaultKind, FaultModel, TriggeredFault};
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use model::node::Cluster;
use model::topology::api;
use model::topology::coordinator::STREAM_TABLET_MOVE_TO_CLEANUP;
use model::topology::data::Client;
use model::topology::group0::current_leader;
use model::topology::stage::Stage;
use model::topology::{NodeId, Replica, ShardId, TableId, TabletId, TopologyConfig};
use model::view::coordinator::{STAGING_PROCESSED_EARLY, SUCCESS_BEFORE_STAGING_DONE};
use model::view::data::{view_table, VIEW_UPDATES_LOST};
use model::view::state::{TaskKind, NO_ABORT_ON_MIGRATION, NO_ROLLBACK_ON_REVERT};
use model::view::worker::{
    BUILD_RANGE_FAIL, FORGETS_COMPLETED, PAUSE_BUILD_RANGE, RETRY_STARTS_NEW_BATCH,
    RPC_IGNORES_TERM, TWO_BATCHES_PER_SHARD,
};
use model::view::{api as vapi, worker::WorkOnViewBuildingTasks};
use rand::Rng;
use sim::time::{sleep, Duration};
use sim::Sim;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

const CHECKERS: &[&dyn Checker] = &[
    &vc::NoStartInTransition,
    &vc::OneBatchPerShard,
    &vc::AbortedNeverRuns,
    &vc::Conservation,
    &vc::SuccessOnlyWhenBuilt,
    &vc::CompletionIdempotent,
    &vc::StaleTermRejected,
    &vc::StagingAfterTransition,
    &vc::ViewContents,
    &crate::checkers::raft::ElectionSafety,
    &crate::checkers::raft::LogAgreement,
    &Fencing,
    &StageMonotonicity,
    &Liveness,
    &Expectations,
];

const BASE: TableId = TableId::user(0);
const MV1: TableId = view_table(0);
const MV2: TableId = view_table(1);
/// Rows written before CREATE VIEW (what `build_range` must find).
const PRELOAD: u64 = 160;

fn def(
    id: &'static str,
    tier: Tier,
    description: &'static str,
    mutants: &'static [&'static str],
    marks: &'static [&'static str],
    config: fn(&mut RunConfig),
    run: crate::scenario::RunFn,
) -> ScenarioDef {
    ScenarioDef {
        id,
        tier,
        description,
        mutants,
        marks,
        config,
        run,
        checkers: CHECKERS,
    }
}

/// Every `view.*` scenario.
pub fn scenarios() -> Vec<ScenarioDef> {
    use Tier::*;
    vec![
        def("view.build_happy", Scripted,
            "two views of a preloaded base table on 4 tablets are built while base writes go on; every view equals its base on every replica",
            &[TWO_BATCHES_PER_SHARD, VIEW_UPDATES_LOST],
            &["view built"],
            config_happy, |s, c| run(s, c, story_happy).boxed_local()),
        def("view.rpc_failure_attaches_to_running_batch", Scripted,
            "a build_range batch is held; its RPC's connection is killed; the coordinator's retry attaches to the running batch instead of starting another",
            &[RETRY_STARTS_NEW_BATCH],
            &["view building RPC failed, retried", "retried RPC attached to running batch"],
            config_spread, |s, c| run(s, c, story_rpc_failure).boxed_local()),
        def("view.leader_change_mid_build", Scripted,
            "the group0 leader pauses while a batch is held and its retried RPC is stalled; the new coordinator attaches to the batch and the old term's RPC is refused after the worker's read barrier",
            &[RPC_IGNORES_TERM],
            &["stale-term view building RPC refused", "retried RPC attached to running batch"],
            config_spread, |s, c| run(s, c, story_leader_change).boxed_local()),
        def("view.migration_during_build", Scripted,
            "a tablet migrates while its build_range batch is held: the task is aborted at write_both_read_old, the batch stops, and the task is recreated on the new replica at end_migration",
            &[NO_ABORT_ON_MIGRATION],
            &["task aborted by a tablet migration", "batch aborted: its tasks were aborted or deleted", "aborted task recreated", "staging sstable processed after the transition"],
            config_one_holder, |s, c| run(s, c, story_migration).boxed_local()),
        def("view.streaming_fails_then_revert", Scripted,
            "streaming of a tablet whose build is held fails for a rollback reason; at revert_migration the aborted task is recreated on the old replica and the view is built",
            &[NO_ROLLBACK_ON_REVERT],
            &["task aborted by a tablet migration", "streaming rolled back to cleanup_target", "migration reverted", "aborted task recreated"],
            config_one_holder, |s, c| run(s, c, story_revert).boxed_local()),
        def("view.staging_not_processed_early", Scripted,
            "a built tablet migrates while another tablet's build is held: the streamed rows are staging on the pending replica and are processed only after the transition ends",
            &[STAGING_PROCESSED_EARLY, SUCCESS_BEFORE_STAGING_DONE],
            &["streamed sstable registered as staging", "staging sstable processed after the transition", "migration completed"],
            config_one_holder, |s, c| run(s, c, story_staging).boxed_local()),
        def("view.drop_view_mid_build", Scripted,
            "two views build while batches are held; one is dropped: its tasks go, the batches keep running for the other view, which is built",
            &[],
            &["batch tasks removed (aborted or gone)"],
            config_one_holder, |s, c| run(s, c, story_drop).boxed_local()),
        def("view.finding_f2_stale_pending_replica", Scripted,
            "finding F2's worst outcome: a tablet migrates while its view is built; the pending replica is held one stage behind (write_both_read_new) while a node at use_new coordinates a write to it alone; the replica finds itself outside its erm's write set and drops the view update; the write is acknowledged and the view never gets the row (passes with --set topology.view_pairing_any_write_replica=true)",
            &[],
            &["f2: pending replica held at write_both_read_new", "f2: write at use_new acknowledged by the stale pending replica", "migration completed"],
            config_one_holder, |s, c| run(s, c, story_finding_f2).boxed_local()),
        def("view.swarm", Randomised,
            "balancer on, random moves, base writes, two views created during chaos, swarm faults (leader kills, killed and stalled worker RPCs, crashes, partitions), buggified build pause / failure points, and state-triggered episodes: a rollback window as a building tablet migrates, a held cleanup while its rows are staging, and in some seeds a group0 failover while the old term's work RPC is stalled",
            &[
                NO_ABORT_ON_MIGRATION,
                RETRY_STARTS_NEW_BATCH,
                FORGETS_COMPLETED,
                TWO_BATCHES_PER_SHARD,
                VIEW_UPDATES_LOST,
                RPC_IGNORES_TERM,
                NO_ROLLBACK_ON_REVERT,
                STAGING_PROCESSED_EARLY,
                SUCCESS_BEFORE_STAGING_DONE,
            ],
            &[],
            config_swarm, |s, c| run(s, c, story_swarm).boxed_local()),
    ]
}

// ---------------------------------------------------------------------------------------------
// configs

fn topo(cfg: &mut RunConfig, t: TopologyConfig) {
    cfg.nodes = t.nodes;
    cfg.shards = t.shards;
    cfg.set_section("topology", &t);
}

fn base_topology(initial_holders: u32, tablets: u32) -> TopologyConfig {
    TopologyConfig {
        nodes: 3,
        shards: 2,
        tables: 1,
        tablets,
        initial_holders,
        rf: 1,
        balancing: false,
        barrier_timeout_ms: 3_000,
        stream_timeout_ms: 5_000,
        stream_fragment_interval_ms: 1,
        view_building_coordinator: true,
        view_pairing_any_write_replica: Some(false),
        ..TopologyConfig::default()
    }
}

fn scripted(cfg: &mut RunConfig) {
    cfg.phases.warmup_ms = 300;
    cfg.phases.chaos_ms = 0;
    cfg.phases.converge_budget_ms = 40_000;
}

fn config_happy(cfg: &mut RunConfig) {
    scripted(cfg);
    cfg.phases.chaos_ms = 2_000;
    topo(cfg, base_topology(1, 4));
}

fn config_spread(cfg: &mut RunConfig) {
    scripted(cfg);
    topo(cfg, base_topology(3, 3));
}

fn config_one_holder(cfg: &mut RunConfig) {
    scripted(cfg);
    topo(cfg, base_topology(1, 2));
}

fn config_swarm(cfg: &mut RunConfig) {
    cfg.phases.warmup_ms = 300;
    cfg.phases.chaos_ms = 5_000;
    cfg.phases.converge_budget_ms = 60_000;
    let mut t = base_topology(1, 4);
    t.balancing = true;
    // Builds long enough (about a second per tablet) that a failed RPC's retry, one second
    // later, can find its batch still running.
    t.view_build_row_interval_ms = Some(25);
    topo(cfg, t);
    cfg.fault_model = FaultModel {
        kinds: vec![
            FaultKind::KillConnection,
            FaultKind::Stall,
            FaultKind::Partition,
            FaultKind::Crash,
            FaultKind::KillLeader,
            FaultKind::Pause,
            FaultKind::Injection,
        ],
        min_faults: 2,
        max_faults: 7,
        window_ms: 4_500,
        max_duration_ms: 1_500,
        verbs: vec![
            WorkOnViewBuildingTasks::NAME.into(),
            "view_update".into(),
            "stream_mutation_fragments".into(),
            "tablet_stream_data".into(),
            "raft_topology_cmd".into(),
        ],
        max_down: 1,
        injections: vec![
            BuggifyPoint {
                name: PAUSE_BUILD_RANGE.into(),
                max_hold_ms: 1_500,
                min_hold_ms: 0,
                episodes: [0, 0],
                one_shot: None,
            },
            BuggifyPoint {
                name: BUILD_RANGE_FAIL.into(),
                max_hold_ms: 800,
                min_hold_ms: 0,
                episodes: [0, 0],
                one_shot: None,
            },
        ],
        triggered: swarm_triggered(),
        ..FaultModel::default()
    };
    // The failover episode pauses the group0 leader, which takes a node down for the whole run
    // as far as the generator knows: in a share of seeds (drawn from their own stream, so the
    // other seeds draw exactly as before) the timed faults leave the node-down kinds to it.
    let mut flavour = sim::rng::standalone(cfg.seed, "view/flavour");
    if flavour.gen_bool(FAILOVER_SHARE) {
        cfg.fault_model.kinds.retain(|k| {
            !matches!(
                k,
                FaultKind::Crash | FaultKind::KillLeader | FaultKind::Pause | FaultKind::Partition
            )
        });
        cfg.fault_model.triggered.extend(failover_triggered());
    }
}

/// Share of `view.swarm` seeds whose faults are built around a group0 failover mid-RPC.
const FAILOVER_SHARE: f64 = 0.35;

/// The swarm's state-triggered faults of every seed, each set off by one protocol event:
/// - the coordinator's connection to a worker killed just after it sent work there: the RPC
///   fails, and its retry attaches to the running batch or is answered from `completed_tasks`;
/// - a rollback window as a migration starts (`stream_tablet_move_to_cleanup` on the node that
///   applied `write_both_read_old` first — the coordinator, as a rule — just as its view
///   building task is aborted): streaming fails for a rollback reason, the migration reverts
///   and the aborted task must be recreated on the old replica;
/// - the cleanup of a migrated tablet held (`tablet_cleanup` from the coordinator to the
///   leaving replica stalled as `cleanup` is committed): the tablet stays in transition with
///   its streamed rows staging on the new replica while other tablets finish building, so the
///   staging task must wait for the transition's end and the view must wait for the staging
///   task.
fn swarm_triggered() -> Vec<TriggeredFault> {
    let bind = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    vec![
        TriggeredFault {
            trigger: EventTrigger {
                bind: bind(&[("from", "@node"), ("to", "replica.node")]),
                ..EventTrigger::on("vb_work_sent", 6)
            },
            fault: Fault::KillConnection {
                from: NodeId(1),
                to: NodeId(2),
            },
            probability: 0.6,
            max_delay_ms: 300,
            duration_ms: None,
            follows_previous: false,
            until_heal: false,
            leaves_cluster: false,
        },
        TriggeredFault::new(
            EventTrigger {
                bind: bind(&[("node", "@node")]),
                ..EventTrigger::on("vb_task_aborted", 3)
            },
            Fault::Injection {
                node: NodeId(1),
                name: STREAM_TABLET_MOVE_TO_CLEANUP.into(),
                one_shot: false,
            },
            0.5,
            0,
        )
        .lasting(1_500, 3_000),
        TriggeredFault::new(
            EventTrigger {
                fields: [("stage".to_string(), serde_json::json!("cleanup"))].into(),
                bind: bind(&[
                    ("from", "@node"),
                    ("to", "(replicas - new_replicas).0.node"),
                ]),
                ..EventTrigger::on("stage_committed", 4)
            },
            Fault::Stall {
                from: NodeId(1),
                to: NodeId(2),
                verb: "tablet_cleanup".into(),
            },
            0.6,
            0,
        )
        .lasting(1_500, 4_000),
    ]
}

/// The failover episode (SPEC §6.6, V7), set off by one `vb_work_sent`: the worker's
/// `build_range` batches are held; the coordinator's connection to it is killed, so the RPC
/// fails and is retried a second later, into a stall of `work_on_view_building_tasks` on that
/// link; as soon as a work RPC is stalled its sender (the group0 leader) pauses. A new leader's
/// coordinator attaches to (or starts) the held batch; when the stall ends the old term's
/// retry reaches the worker, whose read barrier shows the new term: it must be refused.
fn failover_triggered() -> Vec<TriggeredFault> {
    let on = |kind: &str, nth: u32, fields: &[(&str, &str)], pairs: &[(&str, &str)]| EventTrigger {
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect(),
        bind: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..EventTrigger::on(kind, nth)
    };
    let link = [("from", "@node"), ("to", "replica.node")];
    let sent = |pairs: &[(&str, &str)]| on("vb_work_sent", 6, &[], pairs);
    vec![
        TriggeredFault::new(
            sent(&[("node", "replica.node")]),
            Fault::Injection {
                node: NodeId(1),
                name: PAUSE_BUILD_RANGE.into(),
                one_shot: false,
            },
            1.0,
            0,
        )
        .lasting(5_000, 8_000),
        TriggeredFault::new(
            sent(&link),
            Fault::KillConnection {
                from: NodeId(1),
                to: NodeId(2),
            },
            1.0,
            300,
        )
        .following(),
        TriggeredFault::new(
            sent(&link),
            Fault::Stall {
                from: NodeId(1),
                to: NodeId(2),
                verb: WorkOnViewBuildingTasks::NAME.into(),
            },
            1.0,
            800,
        )
        .lasting(3_500, 6_000)
        .following(),
        TriggeredFault::new(
            on(
                "rpc_stalled",
                1,
                &[("verb", WorkOnViewBuildingTasks::NAME)],
                &[("node", "@node")],
            ),
            Fault::Pause { node: NodeId(1) },
            1.0,
            200,
        )
        .lasting(2_500, 4_000),
    ]
}

use sim::Verb as _;

// ---------------------------------------------------------------------------------------------
// the area and the story kit

struct Vb {
    story: Story,
    cluster: Cluster,
    writes_until: Cell<u64>,
}

impl Vb {
    fn sim(&self) -> &Sim {
        &self.story.sim
    }

    fn expect(&self, ok: bool, what: &str) {
        self.story.expect(ok, what);
    }

    fn tablet(&self, i: u32) -> TabletId {
        TabletId::new(BASE, i)
    }

    fn replica_of(&self, t: TabletId) -> Replica {
        self.cluster
            .state()
            .map(|s| s.tablets[&t].replicas[0])
            .expect("a live node")
    }

    fn stage(&self, t: TabletId) -> Option<Stage> {
        self.cluster
            .state()
            .and_then(|s| s.tablets.get(&t).and_then(|i| i.stage()))
    }

    fn leader(&self) -> NodeId {
        current_leader(self.sim()).unwrap_or(NodeId(1))
    }

    fn build_tasks_of(&self, t: TabletId) -> usize {
        self.cluster.state().map_or(0, |s| {
            s.views
                .tasks
                .values()
                .filter(|x| x.tablet == t && x.kind == TaskKind::BuildRange)
                .count()
        })
    }

    /// Write `PRELOAD` rows (keys 0..PRELOAD) before any view exists.
    async fn preload(&self) {
        let c = Client::new(self.sim(), NodeId(1));
        for k in 0..PRELOAD {
            c.write(k, 1_000 + k).await;
        }
    }

    async fn create(&self, view: TableId, name: &str) {
        let r = vapi::create_view(&self.cluster, view, BASE, name).await;
        self.expect(r.is_ok(), &format!("CREATE VIEW {name}: {r:?}"));
    }

    /// Hold every `build_range` batch (of tablet `token`, if given) on `node`.
    fn pause_builds(&self, node: NodeId, token: Option<u32>) {
        let params: BTreeMap<String, String> = token
            .map(|t| [("token".to_string(), t.to_string())].into())
            .unwrap_or_default();
        fault_injection::Injections::of(self.sim()).enable(
            self.sim(),
            node,
            PAUSE_BUILD_RANGE,
            false,
            params,
        );
    }

    fn release_builds(&self, node: NodeId) {
        api::disable_injection(self.sim(), node, PAUSE_BUILD_RANGE);
    }

    async fn held(&self, node: NodeId, n: u64) {
        api::wait_for_injection_enter(self.sim(), node, PAUSE_BUILD_RANGE, n).await;
    }

    fn spawn_move(&self, t: TabletId, src: Replica, dst: Replica) -> Rc<Cell<bool>> {
        let c = self.cluster.clone();
        self.story.spawn(async move {
            let _ = api::move_tablet(&c, t, src, dst).await;
        })
    }

    /// Base writes from random nodes until the story's deadline (`writes_until`): updates and
    /// deletes over the preloaded keys and fresh ones.
    fn spawn_writes(self: &Rc<Self>) {
        let me = self.clone();
        self.sim().spawn_supervisor(async move {
            let mut rng = me.sim().rng("view_writes");
            let mut v = 10_000u64;
            while me.sim().now().0 < me.writes_until.get() {
                let node = NodeId(rng.gen_range(1..=me.cluster.cfg.nodes));
                let c = Client::new(me.sim(), node);
                let key = rng.gen_range(0..PRELOAD + 80);
                v += 1;
                if rng.gen_bool(0.1) {
                    c.delete(key).await;
                } else {
                    c.write(key, v).await;
                }
                sleep(Duration::from_millis(rng.gen_range(5..25))).await;
            }
        });
    }
}

impl phases::Area for Vb {
    fn story(&self) -> &Story {
        &self.story
    }

    fn quiesce(&self) -> LocalBoxFuture<'_, ()> {
        Box::pin(async move {
            for _ in 0..50 {
                let _ = sim::time::timeout(
                    Duration::from_millis(1_000),
                    api::set_balancing(&self.cluster, false),
                )
                .await;
                let off = current_leader(self.sim())
                    .and_then(|l| self.cluster.services(l))
                    .is_some_and(|s| !s.g0.with_state(|st| st.tablet_balancing_enabled));
                if off {
                    break;
                }
                sleep(Duration::from_millis(100)).await;
            }
        })
    }

    fn pending(&self) -> Vec<String> {
        let mut out = vapi::pending(&self.cluster);
        if let Some(s) = self.cluster.state() {
            out.extend(s.tablets.iter().filter_map(|(t, i)| {
                i.stage()
                    .map(|st| format!("migration of {t} stuck in {st}"))
            }));
        }
        out
    }

    fn final_state(&self, _converged: bool) -> LocalBoxFuture<'_, serde_json::Value> {
        Box::pin(async move { vapi::final_state(&self.cluster) })
    }
}

type VbStory = fn(Rc<Vb>) -> LocalBoxFuture<'static, ()>;

async fn run(sim: Sim, cfg: Rc<RunConfig>, story: VbStory) -> RunEnd {
    let t: TopologyConfig = cfg.section("topology");
    let area = Rc::new(Vb {
        story: Story::new(&sim, &cfg),
        cluster: Cluster::start(&sim, t),
        writes_until: Cell::new(0),
    });
    let leader_sim = sim.clone();
    phases::run(&sim, &cfg, area, move |a| phases::Plan {
        story: Some((phases::StoryMode::Awaited, story(a.clone()))),
        leader: Some(Rc::new(move || current_leader(&leader_sim))),
        settle_ms: 300,
        ..phases::Plan::default()
    })
    .await
}

#[path = "view_stories.rs"]
mod stories;
use stories::*;
