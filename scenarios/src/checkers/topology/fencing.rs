//! Fencing (SPEC §2.4, §2.6 safety property, INV-TABL-1), keyed on group0-committed versions:
//! 1. no streamed side effect of session S is applied on a node after that node answered a
//!    barrier for a version at which group0 had already removed S;
//! 2. no streamed data of a migration lands on a replica after that replica's `cleanup` /
//!    `cleanup_target` of the same migration began;
//! 3. no replica admits a write routed with a version below the `fence_version` of the group0
//!    state it had applied (from the harness's Raft apply events);
//! 4. no write routed before a replica's cleanup stage was committed lands on that replica after
//!    its cleanup began (the fence, advanced after the barrier that precedes every cleanup, is
//!    what stops such a late write).

use super::{events, migrations, safety, walk, Sessions, Step};
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
        let entries = h.entries();
        let evs = events(&entries);
        let sessions = Sessions::from_events(&evs);
        let mut out = Vec::new();
        let migs = migrations(&evs);
        // Highest barrier version each node has answered so far.
        let mut answered: BTreeMap<NodeId, u64> = BTreeMap::new();
        let mut cleaned: BTreeMap<(TabletId, Replica, u64), usize> = BTreeMap::new();
        // (tablet, replica) → (history index of the cleanup's start, version at which its
        // cleanup stage was committed), latest cleanup only.
        let mut last_cleanup: BTreeMap<(TabletId, Replica), (usize, u64)> = BTreeMap::new();
        for step in walk(h, &entries) {
            let Step::Topo(e, ev, view) = step else {
                continue;
            };
            let (e, ev) = (&e, &ev);
            match ev {
                TopologyEvent::BarrierAnswered { version, .. } => {
                    let node = e.node.expect("barrier answers are per node");
                    let v = answered.entry(node).or_default();
                    *v = (*v).max(*version);
                }
                TopologyEvent::CleanupBegun {
                    tablet,
                    replica,
                    migration,
                    stage,
                } => {
                    cleaned
                        .entry((*tablet, *replica, *migration))
                        .or_insert(e.index);
                    let committed = migs
                        .get(&(*tablet, *migration))
                        .and_then(|st| st.iter().find(|s| s.stage == Some(*stage)))
                        .map_or(0, |s| s.version);
                    last_cleanup.insert((*tablet, *replica), (e.index, committed));
                }
                TopologyEvent::ReplicaWriteBegun {
                    tablet,
                    replica,
                    key,
                    version,
                } => {
                    if *version < view.fence {
                        out.push(safety(self.name(), format!(
                            "{replica} admitted a write of key {key} of {tablet} routed at version {version}, below the fence_version {} of the group0 state it had applied (index {})",
                            view.fence, view.applied
                        ), e));
                    }
                    if let Some((ci, cv)) = last_cleanup.get(&(*tablet, *replica)) {
                        if *version < *cv {
                            out.push(safety(self.name(), format!(
                                "a late write of key {key} of {tablet} routed at version {version} landed on {replica} after its cleanup (stage committed at version {cv}) began at history #{ci}"
                            ), e));
                        }
                    }
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
