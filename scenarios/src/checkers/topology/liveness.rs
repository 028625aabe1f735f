//! Liveness after heal (SPEC §2.6 liveness property): every migration ends (completed or
//! reverted) and every global barrier whose coordinator stayed up completes. Names what is
//! stuck. The scenario's own `RunEnd.pending` is judged by the runner as well.

use super::events;
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::events::TopologyEvent;
use sim::{History, NodeId, SimEvent};
use std::collections::BTreeMap;

/// The liveness checker.
pub struct Liveness;

impl Checker for Liveness {
    fn name(&self) -> &'static str {
        "liveness"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut stage = BTreeMap::new();
        let mut open_barriers: BTreeMap<u64, NodeId> = BTreeMap::new();
        let entries = h.entries();
        for (e, ev) in events(&entries) {
            match *ev {
                TopologyEvent::StageCommitted {
                    tablet, stage: s, ..
                } => {
                    stage.insert(tablet, s);
                }
                TopologyEvent::BarrierStarted { barrier, .. } => {
                    if let Some(n) = e.node {
                        open_barriers.insert(barrier, n);
                    }
                }
                TopologyEvent::BarrierCompleted { barrier, .. } => {
                    open_barriers.remove(&barrier);
                }
                _ => {}
            }
        }
        // A coordinator that crashed or was paused abandons its barrier legitimately.
        let mut interrupted: BTreeMap<NodeId, usize> = BTreeMap::new();
        for e in h.entries().iter() {
            if let (Some(n), Some(SimEvent::Crash { .. })) = (e.node, e.sim()) {
                interrupted.insert(n, e.index);
            }
        }
        for (t, s) in stage {
            if let Some(s) = s {
                out.push(Violation::liveness(
                    self.name(),
                    format!("migration of {t} stuck in stage {s}"),
                ));
            }
        }
        for (b, n) in open_barriers {
            if !interrupted.contains_key(&n) {
                out.push(Violation::liveness(
                    self.name(),
                    format!("barrier {b} started by {n} never completed"),
                ));
            }
        }
        out
    }
}
