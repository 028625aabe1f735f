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
use model::raft::RaftEvent;
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
        let mut at_index: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        let mut max_committed = 0u64;
        let mut applied: BTreeMap<(NodeId, u32), u64> = BTreeMap::new();
        // read op -> (node, incarnation, committed index it must see)
        let mut reads: BTreeMap<u64, (NodeId, u32, u64)> = BTreeMap::new();
        let mut acked: Vec<(u64, u64, usize)> = Vec::new();
        for e in entries.iter() {
            if let Some(ev) = e.proto::<RaftEvent>() {
                let node = e.node.expect("raft events carry their node");
                match *ev {
                    RaftEvent::BecameLeader { .. } => {}
                    RaftEvent::Committed { i, h, .. } => {
                        max_committed = max_committed.max(i);
                        at_index.entry(i).or_default().push(h);
                    }
                    RaftEvent::Applied { inc, i, h, .. } => {
                        let a = applied.entry((node, inc)).or_insert(0);
                        *a = (*a).max(i);
                        at_index.entry(i).or_default().push(h);
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
                    op,
                    outcome: Outcome::Ok,
                    index: Some(i),
                } => {
                    acked.push((op, i, e.index));
                }
                RaftClientEvent::Read { op, inc } => {
                    reads.insert(op, (node, inc, max_committed));
                }
                RaftClientEvent::ReadDone { op, ok: true } => {
                    let Some(&(n, inc, need)) = reads.get(&op) else {
                        continue;
                    };
                    let have = applied.get(&(n, inc)).copied().unwrap_or(0);
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
        for (op, i, at) in acked {
            let want = op_hash(op);
            match at_index.get(&i) {
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
