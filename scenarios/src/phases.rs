//! The phases of a run, as small async steps a scenario body composes:
//! warmup → chaos (workload + nemesis) → heal → converge (with a budget) → final checks.

use crate::config::RunConfig;
use fault_injection::{LeaderProbe, Nemesis};
use sim::time::{sleep, Duration};
use sim::{Sim, SimEvent};

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
