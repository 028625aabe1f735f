//! The nemesis: executes a [`FaultSchedule`] against the simulated cluster.
//!
//! Each scheduled fault is applied through [`Sim::apply_fault`], which records it once in the
//! history (with its schedule position) exactly as a scripted story's fault is recorded, and
//! undone through [`Sim::undo_fault`] when its duration runs out. An event-triggered fault
//! waits on a [`sim::Watch`] of the history, woken as the matching event is recorded; one with
//! a release condition (`until`, see [`crate::release`]) is undone when that holds, past the
//! nemesis's stop and the heal, instead of after a duration. Once a crash triggered "while
//! every node is up" (a node leaving the cluster, for an operator to exclude) has fired, the
//! schedule's later down-faults are skipped: that node stays down until the heal.

use crate::fault::{Fault, FaultSchedule, ScheduledFault};
use sim::sync::AbortSource;
use sim::time::Duration;
use sim::{NodeId, Sim, SimEvent, UndoneBy};
use std::cell::Cell;
use std::rc::Rc;

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
        let left = Rc::new(Cell::new(None));
        for (index, sf) in schedule.faults.iter().enumerate() {
            let sim2 = sim.clone();
            let sf = sf.clone();
            let stop2 = stop.clone();
            let leader = leader.clone();
            let left = left.clone();
            sim.spawn_supervisor(async move {
                run_one(sim2, index, sf, stop2, leader, left).await;
            });
        }
        Nemesis { stop }
    }

    /// Stop: no further fault is applied or undone (the heal phase undoes everything).
    pub fn stop(&self) {
        self.stop.abort();
    }
}

fn skip(sim: &Sim, index: usize, fault: &Fault, reason: String) {
    sim.record_sim(
        None,
        SimEvent::FaultSkipped {
            schedule: index,
            fault: fault.clone(),
            reason,
        },
    );
}

/// Sleep `ms`, or less if `stop` fires; true if the time ran out without a stop.
async fn sleep_unless_stopped(ms: u64, stop: &AbortSource) -> bool {
    if stop.is_aborted() {
        return false;
    }
    let stopped = sim::time::timeout(Duration::from_millis(ms), stop.aborted()).await;
    stopped.is_err() && !stop.is_aborted()
}

async fn run_one(
    sim: Sim,
    index: usize,
    sf: ScheduledFault,
    stop: AbortSource,
    leader: Option<LeaderProbe>,
    left: Rc<Cell<Option<NodeId>>>,
) {
    let mut fault = sf.fault.clone();
    if let Some(t) = &sf.after {
        let watch = t.watch(&sim);
        let nth = t.nth.max(1) as usize;
        let hit = futures::future::select(Box::pin(watch.nth(nth)), Box::pin(stop.aborted()));
        let futures::future::Either::Left((entry, _)) = hit.await else {
            return;
        };
        match t.bind_fault(&sim, entry, &sf.fault) {
            Ok(f) => fault = f,
            Err(reason) => return skip(&sim, index, &sf.fault, reason),
        }
        if t.all_up {
            if let Some(n) = sim
                .nodes()
                .into_iter()
                .find(|n| !sim.is_up(*n) || sim.is_paused(*n))
            {
                return skip(&sim, index, &fault, format!("{n} is down"));
            }
            let cut = |f: &Fault| matches!(f, Fault::Partition { .. });
            if sim.open_faults().iter().any(|(_, f)| cut(f)) {
                return skip(&sim, index, &fault, "a partition is in force".into());
            }
        }
    }
    if sf.at_ms > 0 && !sleep_unless_stopped(sf.at_ms, &stop).await {
        return;
    }
    if stop.is_aborted() {
        return;
    }
    // Resolve KillLeader to a concrete crash now.
    if fault == Fault::KillLeader {
        match leader.as_ref().and_then(|p| p()) {
            Some(node) if sim.is_up(node) => fault = Fault::Crash { node },
            _ => return skip(&sim, index, &sf.fault, "no live leader".into()),
        }
    }
    if let Fault::Crash { node } | Fault::Pause { node } = &fault {
        if !sim.is_up(*node) || sim.is_paused(*node) {
            return skip(&sim, index, &fault, format!("{node} already down"));
        }
    }
    if let Fault::ExcludeNode { node } = &fault {
        // An operator excludes a node that is dead, in a run that lets it.
        if !sim::fault::Operator::of(&sim).can_exclude() {
            return skip(&sim, index, &fault, "no operator in this run".into());
        }
        if sim.is_up(*node) {
            return skip(&sim, index, &fault, format!("{node} is alive"));
        }
    }
    let all_up = sf.after.as_ref().is_some_and(|t| t.all_up);
    let takes_down = matches!(
        fault,
        Fault::Crash { .. } | Fault::Pause { .. } | Fault::Partition { .. }
    );
    if let (Some(n), true) = (left.get(), takes_down) {
        // A node that left the cluster (crashed, for an operator to exclude) stays down until
        // the heal: no second node goes down beside it (the schedule's `max_down`).
        return skip(&sim, index, &fault, format!("{n} left the cluster"));
    }
    let until = sf.after.as_ref().and_then(|t| t.until);
    if let (Some(_), Fault::Injection { node, name, .. }) = (until, &fault) {
        // The point is already enabled (another episode): this one would share it, and the
        // other's end would release the hold.
        if sim::injection::Injections::of(&sim).is_enabled(*node, name) {
            return skip(
                &sim,
                index,
                &fault,
                format!("{name} already enabled on {node}"),
            );
        }
    }
    if let (true, Fault::Crash { node }) = (all_up, &fault) {
        left.set(Some(*node));
    }
    let id = sim.apply_fault(&fault, Some(index));
    if let Some(release) = until {
        return release.hold(&sim, id, &fault).await;
    }
    let Some(d) = sf.duration_ms else { return };
    if !sleep_unless_stopped(d, &stop).await {
        return;
    }
    sim.undo_fault(id, UndoneBy::Schedule);
}
