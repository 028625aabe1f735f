//! Election safety (Raft §5.2): at most one node becomes leader in any term of a group. A node
//! never wins the same term twice either (it would have to vote twice, e.g. after losing its
//! vote on a crash). Groups are independent: each has its own terms.

use super::of;
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::raft::{GroupId, RaftEvent};
use sim::{History, NodeId};
use std::collections::BTreeMap;

/// At most one `raft_became_leader` per term.
pub struct ElectionSafety;

impl Checker for ElectionSafety {
    fn name(&self) -> &'static str {
        "raft_election_safety"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let entries = h.entries();
        let mut leaders: BTreeMap<(GroupId, u64), (NodeId, usize)> = BTreeMap::new();
        let mut out = Vec::new();
        for e in entries.iter() {
            let Some(RaftEvent::BecameLeader { g, t }) = e.proto::<RaftEvent>() else {
                continue;
            };
            let node = e.node.expect("raft events carry their node");
            if let Some((other, at)) = leaders.get(&(*g, *t)) {
                out.push(Violation::safety(
                    self.name(),
                    format!(
                        "two leaders in term {t}{}: {other} (event #{at}) and {node}",
                        of(*g)
                    ),
                    Some(e),
                ));
            } else {
                leaders.insert((*g, *t), (node, e.index));
            }
        }
        out
    }
}
