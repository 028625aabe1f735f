//! Barrier (SPEC §2.4): when a node answers `barrier_and_drain`, it holds exactly the sessions
//! the group0 state it acknowledged lists as open, and no closing session still has a live
//! guard (nothing admitted under a closed session is still running).

use super::{events, safety, Sessions};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::events::TopologyEvent;
use sim::History;
use std::collections::BTreeSet;

/// The barrier checker.
pub struct BarrierHoldsGroup0Sessions;

impl Checker for BarrierHoldsGroup0Sessions {
    fn name(&self) -> &'static str {
        "barrier"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let evs = events(h);
        let sessions = Sessions::from_events(&evs);
        let mut out = Vec::new();
        for (e, ev) in &evs {
            let TopologyEvent::BarrierAnswered {
                barrier,
                local_version,
                open,
                closing,
                ..
            } = ev
            else {
                continue;
            };
            let node = e.node.expect("per node");
            let held: BTreeSet<_> = open.iter().copied().collect();
            let expected = sessions.open_at(*local_version);
            if held != expected {
                out.push(safety(self.name(), format!(
                        "{node} answered barrier {barrier} at version {local_version} holding sessions {held:?}, but group0 lists {expected:?}"
                    ), e));
            }
            if !closing.is_empty() {
                out.push(safety(self.name(), format!(
                        "{node} answered barrier {barrier} while closed sessions {closing:?} still had admitted work"
                    ), e));
            }
        }
        out
    }
}
