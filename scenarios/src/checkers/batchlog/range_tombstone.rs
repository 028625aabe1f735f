//! Range-tombstone safety (SPEC §5.12): a cleanup range tombstone never covers a live `initial`
//! entry that was not successfully replayed in the same pass. Failed entries must have been
//! moved to `failed_replay` first; too-young ones lie beyond the tombstone's end.
//!
//! Liveness of entries is rebuilt from the history per node: written (initial) until deleted,
//! moved, or covered by an earlier range tombstone of the same shard. Timestamps decide between
//! a store and the write path's delete of the same entry, which a paused node may apply in
//! either order.

use super::{events, safety};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::batchlog::types::{BatchId, ClusteringKey, Layout, Stage};
use model::batchlog::BatchlogEvent;
use sim::{History, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// The range-tombstone safety checker.
pub struct RangeTombstoneSafety;

impl Checker for RangeTombstoneSafety {
    fn name(&self) -> &'static str {
        "batchlog_range_tombstone_safety"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        // (node, id) -> (written_at, shard) of live initial entries.
        let mut live: BTreeMap<(NodeId, BatchId), (u64, u32)> = BTreeMap::new();
        let mut write_deleted: BTreeMap<(NodeId, BatchId), u64> = BTreeMap::new();
        let mut replayed_in_pass: BTreeMap<NodeId, BTreeSet<BatchId>> = BTreeMap::new();
        let mut out = Vec::new();
        for e in events(h) {
            let Some(node) = e.node else { continue };
            match &e.ev {
                BatchlogEvent::EntryWritten {
                    id,
                    written_at,
                    stage: Stage::Initial,
                    shard,
                    ts,
                    layout: Layout::V2,
                } if write_deleted.get(&(node, *id)).is_none_or(|d| d < ts) => {
                    live.insert((node, *id), (*written_at, *shard));
                }
                BatchlogEvent::EntryDeleted {
                    id,
                    stage: Stage::Initial,
                    ts: Some(ts),
                    ..
                } => {
                    write_deleted.insert((node, *id), *ts);
                    live.remove(&(node, *id));
                }
                BatchlogEvent::EntryDeleted {
                    id,
                    stage: Stage::Initial,
                    ..
                }
                | BatchlogEvent::EntryMoved { id, .. } => {
                    live.remove(&(node, *id));
                }
                BatchlogEvent::ReplayPassStart { .. } => {
                    replayed_in_pass.insert(node, BTreeSet::new());
                }
                BatchlogEvent::EntryReplayed {
                    id,
                    stage: Stage::Initial,
                    ..
                } => {
                    replayed_in_pass.entry(node).or_default().insert(*id);
                }
                BatchlogEvent::RangeTombstoneWritten { shard, end, now_ms } => {
                    let replayed = replayed_in_pass.get(&node).cloned().unwrap_or_default();
                    let covered: Vec<(BatchId, u64)> = live
                        .iter()
                        .filter(|((n, id), (w, s))| {
                            *n == node
                                && s == shard
                                && end.covers(&ClusteringKey {
                                    written_at: *w,
                                    id: *id,
                                })
                        })
                        .map(|((_, id), (w, _))| (*id, *w))
                        .collect();
                    for (id, w) in covered {
                        if !replayed.contains(&id) {
                            out.push(safety(
                                self.name(),
                                format!(
                                    "range tombstone {end:?} of shard {shard} on {node} (pass now={now_ms}) covers live initial entry {id} (written_at {w}) not replayed in that pass"
                                ),
                                Some(&e),
                            ));
                        }
                        live.remove(&(node, id));
                    }
                }
                _ => {}
            }
        }
        out
    }
}
