//! Replicas hold the batches (SPEC §5.12 with §1.3): every mutation of a batch that was applied
//! at its CL — by the write path (`batch_complete` ok) or by a replay (`batchlog_entry_replayed`)
//! — is held, at its timestamp or a newer one, by a quorum of the **final** replicas of its
//! tablet once the run has converged. Tablet migration must carry an applied write to the new
//! replica (by streaming, or by routing writes to the pending replica while it streams); a write
//! routed by a stale replica map reaches only replicas that are leaving, and is lost when they
//! are cleaned.
//!
//! Reads the final state's placement (`tablets`: tablet → replicas) and per-replica cells
//! (`cells`: replica → tablet → key → timestamp). A key's tablet is `key % tablet_count` of its
//! table (the data plane's routing of a batch mutation, documented in `docs/architecture.md`).
//! Mutations of dropped tables are exempt; a run that did not converge is left to the liveness
//! checkers.

use super::final_replicas::FinalReplicas;
use super::{events, safety};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::batchlog::types::{BatchId, TableId, WriteMutation};
use model::batchlog::{BatchlogEvent, Outcome};
use sim::History;
use std::collections::{BTreeMap, BTreeSet};

/// The replicas-hold-batches checker.
pub struct ReplicasHoldBatches;

impl Checker for ReplicasHoldBatches {
    fn name(&self) -> &'static str {
        "batchlog_replicas_hold_batches"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, end: &RunEnd) -> Vec<Violation> {
        if !end.pending.is_empty() {
            return Vec::new();
        }
        let Some(finals) = FinalReplicas::of(end, false) else {
            return Vec::new();
        };
        let entries = h.entries();
        let evs = events(&entries);
        let mut invoked: BTreeMap<BatchId, Vec<WriteMutation>> = BTreeMap::new();
        let mut applied: BTreeMap<BatchId, usize> = BTreeMap::new();
        let mut dropped: BTreeSet<TableId> = BTreeSet::new();
        for (i, e) in evs.iter().enumerate() {
            match &e.ev {
                BatchlogEvent::BatchInvoke { id, mutations, .. } => {
                    invoked.insert(*id, mutations.clone());
                }
                BatchlogEvent::BatchComplete {
                    id,
                    outcome: Outcome::Ok,
                    ..
                }
                | BatchlogEvent::EntryReplayed { id, .. } => {
                    applied.entry(*id).or_insert(i);
                }
                BatchlogEvent::TableDropped { table } => {
                    dropped.insert(*table);
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (id, at) in applied {
            let Some(mutations) = invoked.get(&id) else {
                continue;
            };
            for m in mutations.iter().filter(|m| !dropped.contains(&m.table)) {
                let Some(h) = finals.holding(m) else {
                    continue;
                };
                if h.holders < h.needed() {
                    out.push(safety(
                        self.name(),
                        format!(
                            "batch {id}'s mutation {}:{} (ts {}) was applied but only {}/{} of the final replicas of {} ({}) hold it",
                            m.table,
                            m.key,
                            m.ts,
                            h.holders,
                            h.needed(),
                            h.tablet,
                            h.replicas.join(", ")
                        ),
                        Some(&evs[at]),
                    ));
                }
            }
        }
        out
    }
}
