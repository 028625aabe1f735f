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
use fault_injection::{BuggifyPoint, FaultKind, FaultModel};
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use model::batchlog::manager::{INJ_REPLAY_STALL, MUTANT_REPLAY_STALE_ERM};
use model::batchlog::{BatchlogCluster, BatchlogConfig};
use model::topology::data::Storage;
use model::topology::group0::current_leader;
use model::topology::Replica;
use sim::Sim;
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
            FaultKind::Injection,
        ],
        min_faults: 1,
        max_faults: 4,
        window_ms: 5_000,
        max_duration_ms: 1_500,
        verbs: Vec::new(),
        max_down: 1,
        // Batchlog injections, drawn as faults: in every seed many one-shot failed sends armed
        // on random nodes for a while (the batch fails after its batchlog write, so its entry
        // waits for a replay, which runs while tablets move), and a few nodes' replay passes
        // held until a random release (so that a pass spans a migration). Not one-shot: a
        // one-shot handler point counts as disabled while its handler runs, so the pass would
        // not wait.
        injections: vec![
            BuggifyPoint::new("storage_proxy_fail_send_batch", 800).every_seed([12, 24], 100, true),
            BuggifyPoint::new(INJ_REPLAY_STALL, 1_500).every_seed([1, 6], 300, false),
        ],
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
            story: None,
            leader: Some(Rc::new(move || current_leader(&s2))),
            settle_ms: 2_500,
        }
    })
    .await
}
