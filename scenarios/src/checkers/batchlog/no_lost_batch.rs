//! No lost batch (SPEC §5.12): every batch whose batchlog write succeeded (step 3) ends with
//! every mutation applied on enough replicas, or with a live entry in some node's batchlog (any
//! stage) — across crashes and failed replays.
//!
//! "Enough" is EACH_QUORUM (one datacenter: a quorum of the RF replicas), as the §5.12 note
//! says the code guarantees on replay; the write path's user CL is QUORUM in every workload
//! here, so both paths are held to the same count. Replicas that were behind would converge
//! through hints (not modelled) or repair (modelled only for the repair-mode table of
//! `batchlog.swarm` and the repair stories), so "all replicas" is not required.
//! Mutations of a dropped table are exempt.

use super::{events, safety, Ev};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::batchlog::service::LiveEntry;
use model::batchlog::types::{BatchId, TableId, WriteMutation};
use model::batchlog::BatchlogEvent;
use sim::{History, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// The no-lost-batch checker.
pub struct NoLostBatch;

/// The ids of live batchlog entries in a final state, over all nodes.
pub(crate) fn live_ids(end: &RunEnd) -> BTreeMap<BatchId, Vec<String>> {
    let mut out: BTreeMap<BatchId, Vec<String>> = BTreeMap::new();
    if let Some(nodes) = end.final_state.get("nodes").and_then(|n| n.as_object()) {
        for (name, n) in nodes {
            let live: Vec<LiveEntry> = n
                .get("live_entries")
                .cloned()
                .map(|v| serde_json::from_value(v).expect("live entries"))
                .unwrap_or_default();
            for e in live {
                out.entry(e.id)
                    .or_default()
                    .push(format!("{name}/{}", e.stage.name()));
            }
        }
    }
    out
}

impl Checker for NoLostBatch {
    fn name(&self) -> &'static str {
        "batchlog_no_lost_batch"
    }

    fn check(&self, cfg: &RunConfig, h: &History, end: &RunEnd) -> Vec<Violation> {
        let bl = super::config(cfg);
        let quorum = bl.rf / 2 + 1;
        let entries = h.entries();
        let evs = events(&entries);
        let mut invoked: BTreeMap<BatchId, (Vec<WriteMutation>, usize)> = BTreeMap::new();
        let mut acked: BTreeMap<BatchId, &Ev> = BTreeMap::new();
        let mut applied: BTreeMap<(BatchId, WriteMutation), BTreeSet<NodeId>> = BTreeMap::new();
        let mut dropped: BTreeSet<TableId> = BTreeSet::new();
        for e in &evs {
            match &e.ev {
                BatchlogEvent::BatchInvoke {
                    id,
                    mutations,
                    cl_acks,
                } => {
                    invoked.insert(*id, (mutations.clone(), *cl_acks));
                }
                BatchlogEvent::BatchlogWriteAcked { id, .. } => {
                    acked.entry(*id).or_insert(e);
                }
                BatchlogEvent::MutationApplied { batch, m, .. } => {
                    if let Some(n) = e.node {
                        applied.entry((*batch, *m)).or_default().insert(n);
                    }
                }
                BatchlogEvent::TableDropped { table } => {
                    dropped.insert(*table);
                }
                _ => {}
            }
        }
        let live = live_ids(end);
        let mut out = Vec::new();
        for (id, ev) in acked {
            let Some((mutations, cl_acks)) = invoked.get(&id) else {
                out.push(safety(
                    self.name(),
                    format!("batch {id} acknowledged but never invoked"),
                    Some(ev),
                ));
                continue;
            };
            let needed = quorum.min(*cl_acks).max(1);
            let missing: Vec<String> = mutations
                .iter()
                .filter(|m| !dropped.contains(&m.table))
                .filter_map(|m| {
                    let n = applied.get(&(id, *m)).map_or(0, |s| s.len());
                    (n < needed).then(|| format!("{}:{} on {n}/{needed} replicas", m.table, m.key))
                })
                .collect();
            if !missing.is_empty() && !live.contains_key(&id) {
                out.push(safety(
                    self.name(),
                    format!(
                        "batch {id} was logged but is lost: no live batchlog entry remains and {}",
                        missing.join(", ")
                    ),
                    Some(ev),
                ));
            }
        }
        out
    }
}
