//! Liveness (SPEC §5.12, DESIGN "converge"): after the heal, every node's batchlog drains —
//! no live entry in `initial` or `failed_replay` — within the converge budget. Names what is
//! stuck, from the final state.
//!
//! Drained means *replayed or deleted by its coordinator*, not merely gone: an entry that left
//! a node's batchlog although no replay anywhere applied its batch and its coordinator's write
//! path never deleted it on that node (shadowed by a cleanup range tombstone, finding F1) was
//! dropped, not drained, and is reported too.

use super::events;
use super::no_lost_batch::live_ids;
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::batchlog::events::DeletedBy;
use model::batchlog::types::{BatchId, Stage};
use model::batchlog::BatchlogEvent;
use sim::{History, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// The batchlog-drained checker.
pub struct BatchlogDrained;

impl Checker for BatchlogDrained {
    fn name(&self) -> &'static str {
        "batchlog_drained"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, end: &RunEnd) -> Vec<Violation> {
        let live = live_ids(end);
        let mut out: Vec<Violation> = live
            .iter()
            .map(|(id, wheres)| {
                Violation::liveness(
                    self.name(),
                    format!(
                        "batch {id} still live in the batchlog after converge: {}",
                        wheres.join(", ")
                    ),
                )
            })
            .collect();
        // Where each batch's entry was stored, where its coordinator deleted it, and whether any
        // replay applied it.
        let mut stored: BTreeMap<BatchId, BTreeSet<NodeId>> = BTreeMap::new();
        let mut write_deleted: BTreeSet<(BatchId, NodeId)> = BTreeSet::new();
        let mut replayed: BTreeSet<BatchId> = BTreeSet::new();
        let entries = h.entries();
        for e in events(&entries) {
            let Some(node) = e.node else { continue };
            match &e.ev {
                BatchlogEvent::EntryWritten {
                    id,
                    stage: Stage::Initial,
                    ..
                } => {
                    stored.entry(*id).or_default().insert(node);
                }
                BatchlogEvent::EntryDeleted {
                    id,
                    by: DeletedBy::WritePath,
                    ..
                } => {
                    write_deleted.insert((*id, node));
                }
                BatchlogEvent::EntryReplayed { id, .. } => {
                    replayed.insert(*id);
                }
                _ => {}
            }
        }
        for (id, nodes) in stored {
            if live.contains_key(&id) || replayed.contains(&id) {
                continue;
            }
            let dropped: Vec<String> = nodes
                .iter()
                .filter(|n| !write_deleted.contains(&(id, **n)))
                .map(|n| n.to_string())
                .collect();
            if !dropped.is_empty() {
                out.push(Violation::liveness(
                    self.name(),
                    format!(
                        "batch {id} left the batchlog of {} without being replayed or deleted by its coordinator (shadowed, not drained)",
                        dropped.join(", ")
                    ),
                ));
            }
        }
        out
    }
}
