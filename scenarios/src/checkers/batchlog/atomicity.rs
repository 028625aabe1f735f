//! Atomicity of logged batches (SPEC §5.12, "eventually atomic"): if any member mutation of a
//! logged batch was applied on any replica — by the write path or by a replay, whether or not
//! the client was answered, and whatever that answer was — then once the run has converged
//! *every* member mutation of the batch is held, at its timestamp or a newer one, by the final
//! replicas of its tablet. A logged batch is all or nothing; "some of it" is the one outcome
//! the batchlog exists to rule out.
//!
//! How this differs from its neighbours: [`super::NoLostBatch`] starts from a batchlog write the
//! coordinator saw acknowledged and accepts a live batchlog entry as "not lost yet";
//! [`super::ReplicasHoldBatches`] starts from a batch applied at its CL (client ok, or a
//! successful replay). This checker starts from the weakest evidence — one `mutation_applied`
//! event of one member anywhere — and asks for the whole batch at the end.
//!
//! "Held by its replicas" means a quorum of the tablet's final replicas (EACH_QUORUM, one
//! datacenter), as a replay guarantees: hints are not modelled, and row-level repair runs only
//! on table 1 of `batchlog.swarm` (and in the repair stories), so a replica that was down
//! during both the write path and the replay may never catch up, and asking for all of them
//! would fail runs the system does not promise anything about.
//!
//! Reads the history (`batch_invoke`, `mutation_applied`, `table_dropped`) and the final state's
//! placement (`tablets`) and per-replica cells (`cells`), never the model. A key's tablet is
//! `key % tablet_count` of its table (the data plane's routing, `docs/architecture.md`). A cell
//! newer than the mutation, live or tombstone (`tombstones` of the final state), holds it; a row
//! deleted by a later delete is exempt (repair-mode GC may have purged everything); so are
//! mutations of a dropped table. A run that did not converge is left to the liveness checkers.

use super::final_replicas::FinalReplicas;
use super::{events, safety};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::batchlog::types::{BatchId, TableId, WriteMutation};
use model::batchlog::BatchlogEvent;
use sim::History;
use std::collections::{BTreeMap, BTreeSet};

/// The atomicity checker.
pub struct Atomicity;

impl Checker for Atomicity {
    fn name(&self) -> &'static str {
        "batchlog_atomicity"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, end: &RunEnd) -> Vec<Violation> {
        if !end.pending.is_empty() {
            return Vec::new();
        }
        let Some(finals) = FinalReplicas::of(end, true) else {
            return Vec::new();
        };
        let entries = h.entries();
        let evs = events(&entries);
        let mut invoked: BTreeMap<BatchId, Vec<WriteMutation>> = BTreeMap::new();
        // The first application of any member of each batch: (event index, the member).
        let mut touched: BTreeMap<BatchId, (usize, WriteMutation)> = BTreeMap::new();
        let mut dropped: BTreeSet<TableId> = BTreeSet::new();
        // The newest delete sent for each row (acknowledged or not).
        let mut deleted: BTreeMap<(TableId, u64), u64> = BTreeMap::new();
        for (i, e) in evs.iter().enumerate() {
            match &e.ev {
                BatchlogEvent::BatchInvoke { id, mutations, .. } => {
                    invoked.insert(*id, mutations.clone());
                }
                BatchlogEvent::MutationApplied { batch, m, .. } => {
                    touched.entry(*batch).or_insert((i, *m));
                }
                BatchlogEvent::TableDropped { table } => {
                    dropped.insert(*table);
                }
                BatchlogEvent::DeleteInvoke { table, key, ts } => {
                    let d = deleted.entry((*table, *key)).or_insert(*ts);
                    *d = (*d).max(*ts);
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (id, (at, first)) in touched {
            let Some(mutations) = invoked.get(&id) else {
                out.push(safety(
                    self.name(),
                    format!("a mutation of batch {id} was applied but the batch was never invoked"),
                    Some(&evs[at]),
                ));
                continue;
            };
            let mut missing = Vec::new();
            // A row deleted after the batch may rightly hold nothing (its tombstone purged).
            let superseded =
                |m: &WriteMutation| deleted.get(&(m.table, m.key)).is_some_and(|d| *d >= m.ts);
            for m in mutations
                .iter()
                .filter(|m| !dropped.contains(&m.table) && !superseded(m))
            {
                let Some(h) = finals.holding(m) else {
                    continue;
                };
                if h.holders < h.needed() {
                    missing.push(format!(
                        "{}:{} (ts {}) held by {}/{} of {}",
                        m.table,
                        m.key,
                        m.ts,
                        h.holders,
                        h.needed(),
                        h.replicas.join(", ")
                    ));
                }
            }
            if !missing.is_empty() {
                out.push(safety(
                    self.name(),
                    format!(
                        "batch {id} is partly applied: its mutation {}:{} reached a replica, but after converge {}",
                        first.table,
                        first.key,
                        missing.join("; ")
                    ),
                    Some(&evs[at]),
                ));
            }
        }
        out
    }
}
