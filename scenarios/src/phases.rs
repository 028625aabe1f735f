//! The phases of a run: warmup → chaos (workloads + story + nemesis) → settle → heal →
//! quiesce → converge (with a budget) → final state. [`run`] is the one sequence every
//! scenario of every area goes through; an area supplies what differs through [`Area`] (what
//! is still pending, how to quiesce, what the final state is) and a [`Plan`] (which workloads
//! and which story run during chaos).

use crate::config::RunConfig;
use crate::scenario::RunEnd;
use crate::story::Story;
use fault_injection::{LeaderProbe, Nemesis};
use futures::future::LocalBoxFuture;
use sim::time::{sleep, Duration};
use sim::{Sim, SimEvent};
use std::rc::Rc;

/// Mark the start of a phase in the history.
pub fn enter(sim: &Sim, name: &'static str) {
    sim.record_sim(None, SimEvent::Phase { name });
}

/// Warmup: let the cluster settle for `phases.warmup_ms`.
pub async fn warmup(sim: &Sim, cfg: &RunConfig) {
    enter(sim, "warmup");
    sleep(Duration::from_millis(cfg.phases.warmup_ms)).await;
}

/// Chaos: execute the config's fault schedule for `phases.chaos_ms`, then stop the nemesis.
pub async fn chaos(sim: &Sim, cfg: &RunConfig, leader: Option<LeaderProbe>) {
    enter(sim, "chaos");
    let nemesis = Nemesis::start(sim, &cfg.faults, leader);
    sleep(Duration::from_millis(cfg.phases.chaos_ms)).await;
    nemesis.stop();
}

/// Heal: undo every fault (partitions, rules, stalls, disk faults; restart crashed nodes).
pub fn heal(sim: &Sim) {
    enter(sim, "heal");
    sim.heal();
}

/// Converge: poll `pending` every `poll_ms` until it is empty or the budget is spent. Returns
/// what is still pending (by name) — empty on success.
pub async fn converge(
    sim: &Sim,
    cfg: &RunConfig,
    poll_ms: u64,
    mut pending: impl FnMut() -> Vec<String>,
) -> Vec<String> {
    enter(sim, "converge");
    let deadline = sim.now().0 + cfg.phases.converge_budget_ms * 1_000_000;
    loop {
        let left = pending();
        if left.is_empty() || sim.now().0 >= deadline {
            return left;
        }
        sleep(Duration::from_millis(poll_ms)).await;
    }
}

/// Async variant of [`converge`], for conditions that need to await (e.g. a read barrier).
pub async fn converge_async<F, Fut>(
    sim: &Sim,
    cfg: &RunConfig,
    poll_ms: u64,
    mut pending: F,
) -> Vec<String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    enter(sim, "converge");
    let deadline = sim.now().0 + cfg.phases.converge_budget_ms * 1_000_000;
    loop {
        let left = pending().await;
        if left.is_empty() || sim.now().0 >= deadline {
            return left;
        }
        sleep(Duration::from_millis(poll_ms)).await;
    }
}

/// What an area (topology, batchlog, raft, the whole cluster) contributes to the one phase
/// sequence: how to quiesce after the heal, what is still pending, the final state.
pub trait Area {
    /// The story kit of this run (expectations, liveness waits).
    fn story(&self) -> &Story;
    /// After the heal, before converging: stop whatever must not start anew (e.g. the
    /// balancer), so convergence is judged on a settled cluster.
    fn quiesce(&self) -> LocalBoxFuture<'_, ()> {
        Box::pin(async {})
    }
    /// How often the converge phase polls [`Area::pending`].
    fn poll_ms(&self) -> u64 {
        100
    }
    /// What is still pending, by name (empty: converged).
    fn pending(&self) -> Vec<String>;
    /// Final reads and the final state the checkers may read. `converged` says whether the
    /// converge phase ended with nothing pending (some final checks only make sense then).
    fn final_state(&self, converged: bool) -> LocalBoxFuture<'_, serde_json::Value>;
}

/// Where a plan's story runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoryMode {
    /// The chaos phase lasts until the story returns (and at least `phases.chaos_ms`).
    Awaited,
    /// The story is spawned beside the workloads; chaos lasts exactly `phases.chaos_ms`.
    Beside,
}

/// What runs during the chaos phase.
#[derive(Default)]
pub struct Plan {
    /// Client workloads, spawned when chaos starts. Each one must stop by itself at the end
    /// of the chaos phase (see [`chaos_end_ns`]).
    pub workloads: Vec<LocalBoxFuture<'static, ()>>,
    /// The scripted story, if any, and how it relates to the chaos phase.
    pub story: Option<(StoryMode, LocalBoxFuture<'static, ()>)>,
    /// The nemesis's group0 leader probe (for `kill_leader`).
    pub leader: Option<LeaderProbe>,
    /// Quiet time after chaos, before the heal: lets in-flight client operations finish.
    pub settle_ms: u64,
}

/// Virtual time (ns) at which the chaos phase of a run whose warmup just ended will end.
pub fn chaos_end_ns(sim: &Sim, cfg: &RunConfig) -> u64 {
    sim.now().0 + cfg.phases.chaos_ms * 1_000_000
}

/// The one phase sequence: warmup → chaos → settle → heal → quiesce → converge → final state.
/// `plan` is built after the warmup (workloads read the chaos deadline from the clock).
pub async fn run<A: Area>(
    sim: &Sim,
    cfg: &Rc<RunConfig>,
    area: Rc<A>,
    plan: impl FnOnce(&Rc<A>) -> Plan,
) -> RunEnd {
    warmup(sim, cfg).await;
    let plan = plan(&area);
    for w in plan.workloads {
        sim.spawn_supervisor(w);
    }
    match plan.story {
        None => chaos(sim, cfg, plan.leader).await,
        Some((StoryMode::Beside, story)) => {
            sim.spawn_supervisor(story);
            chaos(sim, cfg, plan.leader).await;
        }
        Some((StoryMode::Awaited, story)) => {
            futures::join!(chaos(sim, cfg, plan.leader), story);
        }
    }
    if plan.settle_ms > 0 {
        sleep(Duration::from_millis(plan.settle_ms)).await;
    }
    heal(sim);
    area.quiesce().await;
    let a2 = area.clone();
    let pending = converge(sim, cfg, area.poll_ms(), move || a2.pending()).await;
    let final_state = area.final_state(pending.is_empty()).await;
    area.story().end(final_state, pending)
}
