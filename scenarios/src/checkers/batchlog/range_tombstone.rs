//! Range-tombstone safety (SPEC §5.12): a cleanup range tombstone never covers a live `initial`
//! entry that was not successfully replayed in the same pass. Failed entries must have been
//! moved to `failed_replay` first; too-young ones lie beyond the tombstone's end.
//!
//! Liveness of entries is rebuilt from the history per node: written (initial) until deleted,
//! moved, or covered by an earlier range tombstone of the same shard. Timestamps decide between
//! a store and the write path's delete of the same entry, which a paused node may apply in
//! either order, and between a row and a range tombstone: a tombstone shadows the rows its end
//! covers whose timestamp is not newer than its own.
//!
//! Two ways to break the promise are reported:
//! 1. the tombstone is written while a covered, older live entry sits in the partition and was
//!    not replayed in that pass;
//! 2. a store lands *after* a tombstone of its shard that covers it and is not older than it:
//!    the entry is dead on arrival, never seen by any replay (upstream does not check an
//!    incoming row against earlier tombstones either, so this is how finding F1 loses batches).

use super::{events, safety};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::batchlog::table::RtEnd;
use model::batchlog::types::{BatchId, ClusteringKey, Layout, Stage};
use model::batchlog::BatchlogEvent;
use sim::{History, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// The range-tombstone safety checker.
pub struct RangeTombstoneSafety;

/// A live `initial` entry on a node: written_at, shard, row timestamp.
#[derive(Clone, Copy)]
struct LiveRow {
    written_at: u64,
    shard: u32,
    ts: u64,
}

/// A cleanup range tombstone already laid: end, stage partition, timestamp, pass `now`.
#[derive(Clone, Copy)]
struct Laid {
    end: RtEnd,
    stage: Stage,
    ts: u64,
    now_ms: u64,
}

impl Checker for RangeTombstoneSafety {
    fn name(&self) -> &'static str {
        "batchlog_range_tombstone_safety"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let mut live: BTreeMap<(NodeId, BatchId), LiveRow> = BTreeMap::new();
        let mut write_deleted: BTreeMap<(NodeId, BatchId), u64> = BTreeMap::new();
        let mut replayed_in_pass: BTreeMap<NodeId, BTreeSet<BatchId>> = BTreeMap::new();
        let mut laid: BTreeMap<(NodeId, u32), Vec<Laid>> = BTreeMap::new();
        let mut out = Vec::new();
        let entries = h.entries();
        for e in events(&entries) {
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
                    let ck = ClusteringKey {
                        written_at: *written_at,
                        id: *id,
                    };
                    let shadow = laid
                        .get(&(node, *shard))
                        .and_then(|v| v.iter().find(|r| r.end.covers(&ck) && r.ts >= *ts));
                    if let Some(r) = shadow {
                        out.push(safety(
                            self.name(),
                            format!(
                                "store of initial entry {id} (written_at {written_at}, ts {ts}) landed on {node} after range tombstone {:?} of shard {shard} (stage {}, ts {}, pass now={}) that shadows it",
                                r.end,
                                r.stage.name(),
                                r.ts,
                                r.now_ms
                            ),
                            Some(&e),
                        ));
                        continue;
                    }
                    live.insert(
                        (node, *id),
                        LiveRow {
                            written_at: *written_at,
                            shard: *shard,
                            ts: *ts,
                        },
                    );
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
                BatchlogEvent::RangeTombstoneWritten {
                    shard,
                    stage,
                    end,
                    ts,
                    now_ms,
                } => {
                    assert_eq!(
                        *stage,
                        Stage::Initial,
                        "failed_replay is never range-deleted"
                    );
                    let replayed = replayed_in_pass.get(&node).cloned().unwrap_or_default();
                    let covered: Vec<(BatchId, u64)> = live
                        .iter()
                        .filter(|((n, id), r)| {
                            *n == node
                                && r.shard == *shard
                                && r.ts <= *ts
                                && end.covers(&ClusteringKey {
                                    written_at: r.written_at,
                                    id: *id,
                                })
                        })
                        .map(|((_, id), r)| (*id, r.written_at))
                        .collect();
                    for (id, w) in covered {
                        if !replayed.contains(&id) {
                            out.push(safety(
                                self.name(),
                                format!(
                                    "range tombstone {end:?} of shard {shard} on {node} (stage {}, ts {ts}, pass now={now_ms}) covers live initial entry {id} (written_at {w}) not replayed in that pass",
                                    stage.name()
                                ),
                                Some(&e),
                            ));
                        }
                        live.remove(&(node, id));
                    }
                    laid.entry((node, *shard)).or_default().push(Laid {
                        end: *end,
                        stage: *stage,
                        ts: *ts,
                        now_ms: *now_ms,
                    });
                }
                _ => {}
            }
        }
        out
    }
}
