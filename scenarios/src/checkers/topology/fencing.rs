//! Fencing (SPEC §2.6 safety property, INV-TABL-1): (1) no streamed side effect of session S is
//! applied on a node after that node answered a barrier at a version where S was already
//! removed from group0; (2) no streamed data of a migration lands on a replica after that
//! replica's `cleanup` / `cleanup_target` of the same migration began.

use super::{events, safety, Sessions};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::events::TopologyEvent;
use model::topology::{NodeId, Replica, TabletId};
use sim::History;
use std::collections::BTreeMap;

/// The fencing checker.
pub struct Fencing;

impl Checker for Fencing {
    fn name(&self) -> &'static str {
        "fencing"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let evs = events(h);
        let sessions = Sessions::from_events(&evs);
        let mut out = Vec::new();
        // Highest local version of a barrier each node has answered so far.
        let mut answered: BTreeMap<NodeId, u64> = BTreeMap::new();
        let mut cleaned: BTreeMap<(TabletId, Replica, u64), usize> = BTreeMap::new();
        for (e, ev) in &evs {
            match ev {
                TopologyEvent::BarrierAnswered { local_version, .. } => {
                    let node = e.node.expect("barrier answers are per node");
                    let v = answered.entry(node).or_default();
                    *v = (*v).max(*local_version);
                }
                TopologyEvent::CleanupBegun {
                    tablet,
                    replica,
                    migration,
                    ..
                } => {
                    cleaned
                        .entry((*tablet, *replica, *migration))
                        .or_insert(e.index);
                }
                TopologyEvent::FragmentApplied {
                    tablet,
                    replica,
                    origin,
                    key,
                    ..
                } => {
                    let node = e.node.expect("fragments apply on a node");
                    if let (Some(closed), Some(seen)) =
                        (sessions.closed_at.get(origin), answered.get(&node))
                    {
                        if seen >= closed {
                            out.push(safety(self.name(), format!(
                                    "{node} applied a fragment (key {key}) of {tablet} under session {origin} after answering a barrier at version {seen}, which had closed it at version {closed}"
                                ), e));
                        }
                    }
                    if let Some(m) = sessions.migration_of.get(origin) {
                        if let Some(ci) = cleaned.get(&(*tablet, *replica, *m)) {
                            out.push(safety(self.name(), format!(
                                    "streamed data of {tablet} (key {key}, session {origin}) landed on {replica} after its cleanup began (history #{ci})"
                                ), e));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}
