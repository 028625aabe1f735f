//! Client-visible promises of group0, from the `raft.*` workloads' events:
//!
//! 1. A proposal acknowledged `ok` at index i is the entry committed at i: every
//!    `raft_committed` / `raft_applied` event for i carries the operation's command hash, and
//!    there is at least one (the proposing node applied it before answering).
//! 2. A read barrier that succeeded on node X saw every entry committed before it began: when
//!    it returned, X (same incarnation) had applied at least the highest index any leader had
//!    recorded as committed before the call.

use crate::catalog::raft::{op_hash, RaftClientEvent};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::raft::{GroupId, RaftEvent};
use model::Outcome;
use sim::{History, NodeId};
use std::collections::BTreeMap;

/// Acknowledged proposals are committed where they said; read barriers are up to date.
pub struct AcknowledgedOps;

impl Checker for AcknowledgedOps {
    fn name(&self) -> &'static str {
        "raft_acknowledged_ops"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let entries = h.entries();
        let mut out = Vec::new();
        // index -> hashes seen in commit/apply events
        let mut at_index: BTreeMap<(GroupId, u64), Vec<u64>> = BTreeMap::new();
        let mut max_committed: BTreeMap<GroupId, u64> = BTreeMap::new();
        let mut applied: BTreeMap<(GroupId, NodeId, u32), u64> = BTreeMap::new();
        // read op -> (group, node, incarnation, committed index it must see)
        let mut reads: BTreeMap<u64, (GroupId, NodeId, u32, u64)> = BTreeMap::new();
        let mut acked: Vec<(GroupId, u64, u64, usize)> = Vec::new();
        for e in entries.iter() {
            if let Some(ev) = e.proto::<RaftEvent>() {
                let node = e.node.expect("raft events carry their node");
                match *ev {
                    RaftEvent::BecameLeader { .. } => {}
                    RaftEvent::Committed { g, i, h, .. } => {
                        let m = max_committed.entry(g).or_insert(0);
                        *m = (*m).max(i);
                        at_index.entry((g, i)).or_default().push(h);
                    }
                    RaftEvent::Applied { g, inc, i, h, .. } => {
                        let a = applied.entry((g, node, inc)).or_insert(0);
                        *a = (*a).max(i);
                        at_index.entry((g, i)).or_default().push(h);
                    }
                }
                continue;
            }
            let Some(ev) = e.proto::<RaftClientEvent>() else {
                continue;
            };
            let node = e.node.expect("client events carry their node");
            match *ev {
                RaftClientEvent::Proposed {
                    g,
                    op,
                    outcome: Outcome::Ok,
                    index: Some(i),
                } => {
                    acked.push((g, op, i, e.index));
                }
                RaftClientEvent::Read { g, op, inc } => {
                    let need = max_committed.get(&g).copied().unwrap_or(0);
                    reads.insert(op, (g, node, inc, need));
                }
                RaftClientEvent::ReadDone { op, ok: true } => {
                    let Some(&(g, n, inc, need)) = reads.get(&op) else {
                        continue;
                    };
                    let have = applied.get(&(g, n, inc)).copied().unwrap_or(0);
                    if have < need {
                        out.push(Violation::safety(
                            self.name(),
                            format!(
                                "read barrier {op} on {n} returned with applied index {have}, but index {need} was committed before it began"
                            ),
                            Some(e),
                        ));
                    }
                }
                _ => {}
            }
        }
        for (g, op, i, at) in acked {
            let want = op_hash(op);
            match at_index.get(&(g, i)) {
                None => out.push(Violation::safety(
                    self.name(),
                    format!("proposal {op} acknowledged at index {i}, but no node ever applied index {i}"),
                    entries.get(at),
                )),
                Some(hs) if hs.iter().any(|&h| h != want) => out.push(Violation::safety(
                    self.name(),
                    format!("proposal {op} acknowledged at index {i}, but another entry was committed there"),
                    entries.get(at),
                )),
                Some(_) => {}
            }
        }
        out
    }
}
