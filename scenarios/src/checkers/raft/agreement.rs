//! Log agreement: the State Machine Safety property of Raft (§5.4.3) as seen from outside.
//!
//! 1. A committed entry never changes: every `raft_committed` and `raft_applied` event for
//!    index i of a group, on any node, in any incarnation, names the same (term, command hash).
//! 2. Every node incarnation applies the entries 1, 2, 3, ... in order: no gap, no re-apply
//!    (a restarted node rebuilds its state machine from index 1, as a new incarnation).
//!
//! Together: every node applies a prefix of one and the same sequence.

use super::of;
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::raft::{GroupId, RaftEvent};
use sim::{History, NodeId};
use std::collections::BTreeMap;

/// Same index => same entry everywhere; contiguous apply per incarnation.
pub struct LogAgreement;

impl Checker for LogAgreement {
    fn name(&self) -> &'static str {
        "raft_log_agreement"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let entries = h.entries();
        // index -> (term, hash, node, history index of the first event naming it)
        let mut first: BTreeMap<(GroupId, u64), (u64, u64, NodeId, usize)> = BTreeMap::new();
        let mut applied: BTreeMap<(GroupId, NodeId, u32), u64> = BTreeMap::new();
        let mut out = Vec::new();
        for e in entries.iter() {
            let Some(ev) = e.proto::<RaftEvent>() else {
                continue;
            };
            let node = e.node.expect("raft events carry their node");
            let (what, g, i, t, hash) = match *ev {
                RaftEvent::BecameLeader { .. } => continue,
                RaftEvent::Committed { g, i, t, h } => ("committed", g, i, t, h),
                RaftEvent::Applied { g, inc, i, t, h } => {
                    let last = applied.entry((g, node, inc)).or_insert(0);
                    if i <= *last {
                        out.push(Violation::safety(
                            self.name(),
                            format!(
                                "{node} (incarnation {inc}) applied index {i}{} again, after {last}",
                                of(g)
                            ),
                            Some(e),
                        ));
                    } else if i != *last + 1 {
                        out.push(Violation::safety(
                            self.name(),
                            format!(
                                "{node} (incarnation {inc}) applied index {i}{} after {last}: a gap",
                                of(g)
                            ),
                            Some(e),
                        ));
                    }
                    *last = (*last).max(i);
                    ("applied", g, i, t, h)
                }
            };
            match first.get(&(g, i)) {
                None => {
                    first.insert((g, i), (t, hash, node, e.index));
                }
                Some(&(t0, h0, n0, at)) if (t0, h0) != (t, hash) => {
                    out.push(Violation::safety(
                        self.name(),
                        format!(
                            "index {i}{} {what} on {node} as term {t} hash {hash:x}, but it was term {t0} hash {h0:x} on {n0} (event #{at}): a committed entry changed",
                            of(g)
                        ),
                        Some(e),
                    ));
                }
                Some(_) => {}
            }
        }
        out
    }
}
