//! The nemesis: executes a [`FaultSchedule`] against the simulated cluster and records every
//! applied (and undone) fault in the history.

use crate::fault::{Fault, FaultSchedule, ScheduledFault};
use serde::Serialize;
use sim::sync::AbortSource;
use sim::time::{sleep, Duration};
use sim::{EventKind, NodeId, Sim};
use std::rc::Rc;

/// History events of the nemesis.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum NemesisEvent {
    /// Fault `index` of the schedule was applied.
    Applied {
        /// Position in the schedule.
        index: usize,
        /// The fault (resolved: `kill_leader` names the node).
        fault: String,
    },
    /// Fault `index` was undone (its duration ran out).
    Undone {
        /// Position in the schedule.
        index: usize,
        /// The fault.
        fault: String,
    },
    /// Fault `index` could not be applied (e.g. no leader to kill).
    Skipped {
        /// Position in the schedule.
        index: usize,
        /// Why.
        reason: String,
    },
}

impl EventKind for NemesisEvent {
    fn kind(&self) -> &'static str {
        match self {
            NemesisEvent::Applied { .. } => "fault_applied",
            NemesisEvent::Undone { .. } => "fault_undone",
            NemesisEvent::Skipped { .. } => "fault_skipped",
        }
    }
}

/// Finds the current group0 leader, for [`Fault::KillLeader`].
pub type LeaderProbe = Rc<dyn Fn() -> Option<NodeId>>;

/// A running nemesis. Dropping it does not stop it; call [`Nemesis::stop`] before healing.
pub struct Nemesis {
    stop: AbortSource,
}

impl Nemesis {
    /// Start executing `schedule` now (time 0 of the schedule is this moment).
    pub fn start(sim: &Sim, schedule: &FaultSchedule, leader: Option<LeaderProbe>) -> Nemesis {
        let stop = AbortSource::new();
        for (index, sf) in schedule.faults.iter().enumerate() {
            let sim2 = sim.clone();
            let sf = sf.clone();
            let stop2 = stop.clone();
            let leader = leader.clone();
            sim.spawn_supervisor(async move {
                run_one(sim2, index, sf, stop2, leader).await;
            });
        }
        Nemesis { stop }
    }

    /// Stop: no further fault is applied or undone (the heal phase undoes everything).
    pub fn stop(&self) {
        self.stop.abort();
    }
}

async fn wait_for_event(sim: &Sim, kind: &str, nth: u32, stop: &AbortSource) -> bool {
    loop {
        if stop.is_aborted() {
            return false;
        }
        let count = sim
            .history()
            .entries()
            .iter()
            .filter(|e| e.event.kind() == kind)
            .count();
        if count >= nth as usize {
            return true;
        }
        sleep(Duration::from_millis(1)).await;
    }
}

async fn run_one(
    sim: Sim,
    index: usize,
    sf: ScheduledFault,
    stop: AbortSource,
    leader: Option<LeaderProbe>,
) {
    if let Some(t) = &sf.after {
        if !wait_for_event(&sim, &t.kind, t.nth, &stop).await {
            return;
        }
    }
    sleep(Duration::from_millis(sf.at_ms)).await;
    if stop.is_aborted() {
        return;
    }
    // Resolve KillLeader to a concrete crash now.
    let fault = match &sf.fault {
        Fault::KillLeader => match leader.as_ref().and_then(|p| p()) {
            Some(node) if sim.is_up(node) => Fault::Crash { node },
            _ => {
                tracing::info!(
                    fault = index,
                    "nemesis skips fault #{index} (kill leader): no live leader"
                );
                sim.record(
                    None,
                    NemesisEvent::Skipped {
                        index,
                        reason: "no live leader".into(),
                    },
                );
                return;
            }
        },
        f => f.clone(),
    };
    if let Fault::Crash { node } | Fault::Pause { node } = &fault {
        if !sim.is_up(*node) || sim.is_paused(*node) {
            tracing::info!(
                fault = index,
                "nemesis skips fault #{index} ({fault}): {node} already down"
            );
            sim.record(
                None,
                NemesisEvent::Skipped {
                    index,
                    reason: format!("{node} already down"),
                },
            );
            return;
        }
    }
    sim.record(
        None,
        NemesisEvent::Applied {
            index,
            fault: fault.to_string(),
        },
    );
    tracing::info!(
        fault = index,
        "nemesis applies fault #{index}: {fault}{}",
        sf.duration_ms
            .map_or(String::new(), |d| format!(" for {d} ms"))
    );
    apply(&sim, &fault);
    let Some(d) = sf.duration_ms else { return };
    sleep(Duration::from_millis(d)).await;
    if stop.is_aborted() {
        return;
    }
    sim.record(
        None,
        NemesisEvent::Undone {
            index,
            fault: fault.to_string(),
        },
    );
    tracing::info!(fault = index, "nemesis undoes fault #{index}: {fault}");
    undo(&sim, &fault);
}

/// Apply one fault now.
pub fn apply(sim: &Sim, fault: &Fault) {
    let net = sim.net();
    match fault {
        Fault::KillConnection { from, to } => net.kill_connection(*from, *to),
        Fault::Stall { from, to, verb } => net.stall(*from, *to, verb),
        Fault::Drop {
            from,
            to,
            verb,
            probability,
        } => net.drop_messages(*from, *to, verb.as_deref(), *probability),
        Fault::Delay { from, to, verb, ms } => net.delay_messages(*from, *to, verb.as_deref(), *ms),
        Fault::Partition { a, b, oneway } => net.partition(a, b, *oneway),
        Fault::Crash { node } => sim.crash(*node),
        Fault::Pause { node } => sim.pause(*node),
        Fault::DiskStall { node } => sim.disk(*node).stall(),
        Fault::DiskError { node, count } => sim.disk(*node).fail_syncs(*count),
        Fault::DiskLatency { node, ms } => sim.disk(*node).set_latency(*ms),
        Fault::KillLeader => unreachable!("resolved to a crash before applying"),
    }
}

/// Undo one fault now.
pub fn undo(sim: &Sim, fault: &Fault) {
    let net = sim.net();
    match fault {
        Fault::KillConnection { .. } | Fault::KillLeader => {}
        Fault::Stall { from, to, verb } => net.release(*from, *to, verb),
        Fault::Drop { from, to, .. } | Fault::Delay { from, to, .. } => net.clear_link(*from, *to),
        Fault::Partition { a, b, .. } => net.heal_partition(a, b),
        Fault::Crash { node } => sim.restart(*node),
        Fault::Pause { node } => sim.resume(*node),
        Fault::DiskStall { node } => sim.disk(*node).release(),
        Fault::DiskError { node, .. } => sim.disk(*node).fail_syncs(0),
        Fault::DiskLatency { node, .. } => sim.disk(*node).set_latency(0),
    }
}
