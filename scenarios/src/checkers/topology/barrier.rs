//! The barrier's own promises (SPEC §2.4), stated directly and keyed on group0-committed
//! versions — what a node *had applied* (from the harness's Raft apply events), never the
//! version it reports about itself:
//! 1. a node answers `barrier_and_drain` for version v only when it has applied group0 at least
//!    up to version v (read barrier, then the version check; it may apply newer entries while
//!    it waits and drains);
//! 2. a global barrier succeeds only when every node it targeted answered it;
//! 3. when a node answers, nothing on it still holds an older version: no client operation it
//!    coordinates and no replica write it applies that began below v, no streaming master whose
//!    session group0 had closed by v, no cleanup of a stage group0 had left by v;
//! 4. when a node answers, every session group0 had closed by v that the node had opened is
//!    drained (erased after its last guard), the sessions it holds open are exactly those
//!    group0 lists at the version it has applied, and no closing session has a live guard.

use super::{events, migrations, safety, walk, Sessions, Step};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::events::{OpKind, TopologyEvent};
use model::topology::stage::Stage;
use model::topology::{NodeId, SessionId, ShardId, TabletId};
use sim::History;
use std::collections::{BTreeMap, BTreeSet};

/// The barrier checker.
pub struct BarrierHoldsGroup0Sessions;

/// What runs on one node and holds an erm (per the history).
#[derive(Default)]
struct Running {
    /// Client operations: op id → version the node had applied when it was invoked.
    ops: BTreeMap<u64, u64>,
    /// Replica writes: history index of `replica_write_begun` → the node's version then.
    writes: BTreeMap<u64, u64>,
    /// Stream masters: (tablet, session) → how many are running.
    masters: BTreeMap<(TabletId, SessionId), u32>,
    /// Cleanups: (tablet, shard) → (stage, migration).
    cleanups: BTreeMap<(TabletId, ShardId), (Stage, u64)>,
    /// Sessions opened on a shard in this incarnation and not drained yet.
    undrained: BTreeSet<(ShardId, SessionId)>,
}

impl Checker for BarrierHoldsGroup0Sessions {
    fn name(&self) -> &'static str {
        "barrier"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let entries = h.entries();
        let evs = events(&entries);
        let sessions = Sessions::from_events(&evs);
        let migs = migrations(&evs);
        // The stage of (tablet, migration) at topology version v.
        let stage_at = |t: TabletId, m: u64, v: u64| -> Option<Stage> {
            migs.get(&(t, m)).and_then(|st| {
                st.iter()
                    .take_while(|s| s.version <= v)
                    .last()
                    .and_then(|s| s.stage)
            })
        };
        let mut out = Vec::new();
        let mut running: BTreeMap<NodeId, Running> = BTreeMap::new();
        let mut started: BTreeMap<u64, Vec<NodeId>> = BTreeMap::new();
        let mut answered: BTreeMap<u64, BTreeSet<NodeId>> = BTreeMap::new();
        for step in walk(h, &entries) {
            let (e, ev, view) = match step {
                Step::Crash(at) => {
                    if let Some(n) = at.node {
                        running.remove(&n);
                    }
                    continue;
                }
                Step::Topo(e, ev, view) => (e, ev, view),
            };
            let Some(node) = e.node else { continue };
            let run = running.entry(node).or_default();
            match *ev {
                TopologyEvent::OpInvoke { op, kind, .. } if kind != OpKind::Truncate => {
                    run.ops.insert(op, view.version);
                }
                TopologyEvent::OpComplete { op, .. } => {
                    run.ops.remove(&op);
                }
                TopologyEvent::ReplicaWriteBegun { .. } => {
                    run.writes.insert(e.index as u64, view.version);
                }
                TopologyEvent::ReplicaWriteDone { begun, .. } => {
                    run.writes.remove(&begun);
                }
                TopologyEvent::StreamStarted { tablet, session } => {
                    *run.masters.entry((tablet, session)).or_default() += 1;
                }
                TopologyEvent::StreamFinished {
                    tablet, session, ..
                } => {
                    if let Some(c) = run.masters.get_mut(&(tablet, session)) {
                        *c -= 1;
                        if *c == 0 {
                            run.masters.remove(&(tablet, session));
                        }
                    }
                }
                TopologyEvent::CleanupBegun {
                    tablet,
                    replica,
                    stage,
                    migration,
                } => {
                    run.cleanups
                        .insert((tablet, replica.shard), (stage, migration));
                }
                TopologyEvent::CleanupDone {
                    tablet, replica, ..
                } => {
                    run.cleanups.remove(&(tablet, replica.shard));
                }
                TopologyEvent::SessionOpened { shard, session, .. } => {
                    run.undrained.insert((shard, session));
                }
                TopologyEvent::SessionDrained { shard, session } => {
                    run.undrained.remove(&(shard, session));
                }
                TopologyEvent::BarrierStarted {
                    barrier, ref nodes, ..
                } => {
                    started.insert(barrier, nodes.clone());
                }
                TopologyEvent::BarrierCompleted { barrier, ok: true } => {
                    let got = answered.remove(&barrier).unwrap_or_default();
                    for n in started.get(&barrier).into_iter().flatten() {
                        if !got.contains(n) {
                            out.push(safety(
                                self.name(),
                                format!("barrier {barrier} succeeded although {n}, which it targets, never answered it"),
                                &e,
                            ));
                        }
                    }
                }
                TopologyEvent::BarrierAnswered {
                    barrier,
                    version: v,
                    ref open,
                    ref closing,
                    ..
                } => {
                    answered.entry(barrier).or_default().insert(node);
                    let mut bad = Vec::new();
                    if view.version < v {
                        bad.push(format!(
                            "it had applied group0 only up to version {} (index {})",
                            view.version, view.applied
                        ));
                    }
                    for (op, ver) in &run.ops {
                        if *ver < v {
                            bad.push(format!("client operation {op} still held version {ver}"));
                        }
                    }
                    for (w, ver) in &run.writes {
                        if *ver < v {
                            bad.push(format!(
                                "the replica write begun at history #{w} still held version {ver}"
                            ));
                        }
                    }
                    for (t, s) in run.masters.keys() {
                        if sessions.closed_at.get(s).is_some_and(|c| *c <= v) {
                            bad.push(format!(
                                "the streaming master of {t} under session {s} (closed by group0 at version {}) was still running",
                                sessions.closed_at[s]
                            ));
                        }
                    }
                    for ((t, shard), (st, m)) in &run.cleanups {
                        if stage_at(*t, *m, v) != Some(*st) {
                            bad.push(format!(
                                "the cleanup of {t} on shard {} validated in {st} was still running after group0 left {st}",
                                shard.0
                            ));
                        }
                    }
                    for (shard, s) in &run.undrained {
                        if sessions.closed_at.get(s).is_some_and(|c| *c <= v) {
                            bad.push(format!(
                                "session {s}, closed by group0 at version {}, was not drained on shard {}",
                                sessions.closed_at[s], shard.0
                            ));
                        }
                    }
                    let held: BTreeSet<_> = open.iter().copied().collect();
                    let expected = sessions.open_at(view.version);
                    if held != expected {
                        bad.push(format!(
                            "it held sessions {held:?}, but group0 lists {expected:?} at the version {} it had applied",
                            view.version
                        ));
                    }
                    if !closing.is_empty() {
                        bad.push(format!(
                            "closed sessions {closing:?} still had admitted work"
                        ));
                    }
                    for b in bad {
                        out.push(safety(
                            self.name(),
                            format!("{node} answered barrier {barrier} at version {v}, but {b}"),
                            &e,
                        ));
                    }
                }
                _ => {}
            }
        }
        out
    }
}
