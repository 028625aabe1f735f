//! The version-skew bound (SPEC §1.8): because of barriers, a coordinator's view of a tablet's
//! stage differs from a node's by at most one stage transition. Checked at every stage commit
//! of a migration: when the coordinator commits stage k+1 (its view being stage k), every
//! node in service has applied at least the commit of stage k-1. What a node has applied comes
//! from the harness's Raft apply events; a node is *in service* once it has answered a barrier
//! since it last booted (a node still replaying its log after a restart serves nothing the
//! coordinator waits on), and not when group0 lists it as excluded.

use super::{safety, At};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::raft::RaftEvent;
use model::topology::events::TopologyEvent;
use model::topology::{NodeId, TabletId};
use sim::{History, SimEvent};
use std::collections::{BTreeMap, BTreeSet};

/// The skew checker.
pub struct SkewBound;

impl Checker for SkewBound {
    fn name(&self) -> &'static str {
        "skew"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let mut out = Vec::new();
        // group0 index each in-service node has applied.
        let mut in_service: BTreeMap<NodeId, u64> = BTreeMap::new();
        let mut excluded: BTreeSet<NodeId> = BTreeSet::new();
        let mut applied: BTreeMap<NodeId, u64> = BTreeMap::new();
        // (tablet, migration) → group0 indexes of its commits so far.
        let mut commits: BTreeMap<(TabletId, u64), Vec<u64>> = BTreeMap::new();
        for entry in h.entries().iter() {
            let e = At {
                index: entry.index,
                at_ns: entry.at.0,
                node: entry.node,
            };
            if let Some(RaftEvent::Applied { g, i, .. }) = entry.proto::<RaftEvent>() {
                if let (true, Some(n)) = (g.is_group0(), entry.node) {
                    applied.insert(n, *i);
                    if let Some(a) = in_service.get_mut(&n) {
                        *a = (*a).max(*i);
                    }
                }
                continue;
            }
            if let (Some(SimEvent::Crash { .. }), Some(n)) = (entry.sim(), entry.node) {
                in_service.remove(&n);
                applied.remove(&n);
                continue;
            }
            let Some(ev) = entry.proto::<TopologyEvent>().cloned() else {
                continue;
            };
            match ev {
                TopologyEvent::BarrierAnswered { .. } => {
                    if let Some(n) = e.node {
                        in_service.insert(n, applied.get(&n).copied().unwrap_or(0));
                    }
                }
                TopologyEvent::TopologyCommitted { excluded: x, .. } => {
                    excluded = x.into_iter().collect();
                }
                TopologyEvent::StageCommitted {
                    index,
                    tablet,
                    migration,
                    stage,
                    ..
                } => {
                    let c = commits.entry((tablet, migration)).or_default();
                    c.push(index);
                    // c = [.., k-1, k, k+1]: every node must have applied k-1.
                    if c.len() >= 3 {
                        let need = c[c.len() - 3];
                        for (n, a) in &in_service {
                            if *a < need && !excluded.contains(n) {
                                out.push(safety(self.name(), format!(
                                    "{tablet}: {} committed at group0 index {index} while {n} had applied only index {a}, before the commit (index {need}) two stages back",
                                    stage.map_or("done".into(), |s| s.to_string())
                                ), &e));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}
