//! The cross-protocol scenarios of the whole cluster (`cluster.*`): several protocols at once on
//! the same nodes, each judged by its own checkers.
//!
//! `cluster.batches_during_migration`: logged batches from every node while tablets migrate
//! (random `move_tablet` calls), under swarm faults (crashes, killed connections, partitions,
//! delays, pauses) and batchlog injections (failed sends that leave entries for replay, replay
//! passes held for a while). The batchlog checkers, the topology checkers, group0's Raft checkers
//! and [`ReplicasHoldBatches`] (every applied batch mutation is held by a quorum of its tablet's
//! final replicas) are all active. Tablets have one replica (`rf = 1`), so a write that misses
//! the pending replica of a migration is visibly lost when the leaving replica is cleaned: this
//! is the case the `batchlog-replay-stale-erm` mutant plants and only a scenario that migrates
//! tablets while batches replay can reach.

use crate::checkers::batchlog as chk;
use crate::checkers::topology::{
    barrier::BarrierHoldsGroup0Sessions, expectations::Expectations, fencing::Fencing,
    liveness::Liveness, stage::StageMonotonicity,
};
use crate::config::RunConfig;
use crate::phases;
use crate::scenario::{Checker, RunEnd, ScenarioDef, Tier};
use crate::story::Story;
use crate::workload;
use fault_injection::{FaultKind, FaultModel, Injections};
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use model::batchlog::manager::{INJ_REPLAY_STALL, MUTANT_REPLAY_STALE_ERM};
use model::batchlog::{BatchlogCluster, BatchlogConfig};
use model::topology::data::Storage;
use model::topology::group0::current_leader;
use model::topology::Replica;
use rand::Rng;
use sim::time::{sleep, Duration};
use sim::Sim;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Every checker of the protocols the scenario exercises.
const CHECKERS: &[&dyn Checker] = &[
    &chk::NoLostBatch,
    &chk::NoEarlyReplay,
    &chk::RangeTombstoneSafety,
    &chk::BoundedCleanup,
    &chk::BatchlogDrained,
    &chk::ReplicasHoldBatches,
    &chk::Atomicity,
    &chk::NoResurrection,
    &crate::checkers::raft::ElectionSafety,
    &crate::checkers::raft::LogAgreement,
    &Fencing,
    &crate::checkers::topology::group0_tables::Group0TablesMatchLog,
    &BarrierHoldsGroup0Sessions,
    &StageMonotonicity,
    &Liveness,
    &Expectations,
];

/// Every `cluster.*` scenario.
pub fn scenarios() -> Vec<ScenarioDef> {
    vec![ScenarioDef {
        id: "cluster.batches_during_migration",
        tier: Tier::Randomised,
        description: "logged batches from every node while tablets migrate, under swarm faults and batchlog injections (failed sends, held replay passes); batchlog, topology and group0 checkers all active, and every applied batch mutation must be held by its tablet's final replicas",
        mutants: &[MUTANT_REPLAY_STALE_ERM],
        marks: &[],
        config,
        run: |sim, cfg| run(sim, cfg).boxed_local(),
        checkers: CHECKERS,
    }]
}

/// Tablets of each user table.
const TABLETS: u32 = 4;
/// Keys of the batch workload (wide, so that a later write rarely hides a lost one).
const KEYS: u64 = 2_000;

fn config(cfg: &mut RunConfig) {
    cfg.nodes = 4;
    cfg.shards = 2;
    cfg.phases.warmup_ms = 300;
    cfg.phases.chaos_ms = 6_000;
    cfg.phases.converge_budget_ms = 30_000;
    let bl = BatchlogConfig {
        rf: 1,
        tables: 2,
        ..crate::catalog::batchlog::small_config()
    };
    cfg.set_section("batchlog", &bl);
    let mut t = BatchlogCluster::topology(cfg.nodes, TABLETS, &bl);
    t.barrier_timeout_ms = 3_000;
    t.stream_timeout_ms = 5_000;
    t.stream_fragment_interval_ms = 2;
    cfg.set_section("topology", &t);
    cfg.fault_model = FaultModel {
        kinds: vec![
            FaultKind::Crash,
            FaultKind::KillConnection,
            FaultKind::Partition,
            FaultKind::Delay,
            FaultKind::Pause,
        ],
        min_faults: 1,
        max_faults: 4,
        window_ms: 5_000,
        max_duration_ms: 1_500,
        verbs: Vec::new(),
        max_down: 1,
        ..FaultModel::default()
    };
}

/// A running cluster scenario: the story kit and the whole cluster.
struct ClusterArea {
    story: Story,
    cluster: BatchlogCluster,
}

impl phases::Area for ClusterArea {
    fn story(&self) -> &Story {
        &self.story
    }

    fn poll_ms(&self) -> u64 {
        100
    }

    /// Every batchlog drained and every migration finished.
    fn pending(&self) -> Vec<String> {
        let mut out = self.cluster.pending();
        match self.cluster.cluster.state() {
            None => out.push("no live node".into()),
            Some(s) => out.extend(s.tablets.iter().filter_map(|(t, i)| {
                i.stage()
                    .map(|st| format!("migration of {t} stuck in {st}"))
            })),
        }
        out
    }

    /// The batchlog's final state (with placement and cells), and INV-TABL-1 after
    /// convergence: no shard holds rows of a tablet it does not replicate.
    fn final_state(&self, converged: bool) -> LocalBoxFuture<'_, serde_json::Value> {
        Box::pin(async move {
            if let (true, Some(st)) = (converged, self.cluster.cluster.state()) {
                let mut stray = Vec::new();
                for n in &self.cluster.cluster.nodes {
                    if st.excluded.contains(n) {
                        continue;
                    }
                    for (shard, t, key, _) in Storage::of(&self.story.sim, *n).all_rows() {
                        let rep = Replica { node: *n, shard };
                        let info = &st.tablets[&t];
                        if info.transition.is_none() && !info.replicas.contains(&rep) {
                            stray.push(format!("{rep} holds key {key} of {t}"));
                        }
                    }
                }
                self.story.expect(
                    stray.is_empty(),
                    &format!("INV-TABL-1: data on non-replicas: {}", stray.join(", ")),
                );
            }
            self.cluster.final_state()
        })
    }
}

async fn run(sim: Sim, cfg: Rc<RunConfig>) -> RunEnd {
    let bl: BatchlogConfig = cfg.section("batchlog");
    let t = cfg.section("topology");
    let area = Rc::new(ClusterArea {
        story: Story::new(&sim, &cfg),
        cluster: BatchlogCluster::start(&sim, t, bl),
    });
    phases::run(&sim, &cfg, area, |a| {
        let until = phases::chaos_end_ns(&a.story.sim, &a.story.cfg);
        let mut workloads: Vec<LocalBoxFuture<'static, ()>> = (0..3)
            .map(|client| workload::batches_over(&a.cluster, client, (20, 80), until, KEYS))
            .collect();
        workloads.push(workload::moves(&a.cluster.cluster, until));
        let s2 = a.story.sim.clone();
        phases::Plan {
            workloads,
            story: Some((
                phases::StoryMode::Beside,
                story(a.story.sim.clone(), a.cluster.clone()),
            )),
            leader: Some(Rc::new(move || current_leader(&s2))),
            settle_ms: 2_500,
        }
    })
    .await
}

/// Batchlog injections through the chaos phase: every 100–400 ms a random node's next batch
/// fails after its batchlog write (its entry waits for a replay, which runs while tablets
/// move), and now and then a node's next replay pass is held for 0.3–1.5 s, so that a pass
/// spans a migration.
fn story(sim: Sim, c: BatchlogCluster) -> LocalBoxFuture<'static, ()> {
    async move {
        let mut rng = sim.rng("workload_faults");
        let inj = Injections::of(&sim);
        let nodes = c.nodes();
        let mut t = 0;
        while t < 5_500 {
            let dt = rng.gen_range(100..400);
            sleep(Duration::from_millis(dt)).await;
            t += dt;
            let node = nodes[rng.gen_range(0..nodes.len())];
            inj.enable(
                &sim,
                node,
                "storage_proxy_fail_send_batch",
                true,
                BTreeMap::new(),
            );
            if rng.gen_bool(0.2) {
                let node = nodes[rng.gen_range(0..nodes.len())];
                let hold = rng.gen_range(300..1_500u64);
                let (s, inj2) = (sim.clone(), inj.clone());
                sim.spawn_supervisor(async move {
                    inj2.enable(&s, node, INJ_REPLAY_STALL, true, BTreeMap::new());
                    sleep(Duration::from_millis(hold)).await;
                    inj2.message(&s, node, INJ_REPLAY_STALL);
                });
            }
        }
    }
    .boxed_local()
}
