//! Bounded cleanup (SPEC §5.12 "Efficiency"): under v2 with cleanup, the dead entries one
//! replay pass steps over stay below a bound independent of the batches ever written:
//!
//! ```text
//! bound = shard_count × (compaction_threshold + 1)                 range tombstones, ≤ 1 per run
//!       + 4 × (compaction_threshold + 1) × memtable_flush_fragments shadowed rows and covered
//!                                              row tombstones that size-tiered compaction has
//!                                              not yet merged with their range tombstone
//!       + 2 × entries written after the previous cleanup pass's cutoff   (insert + row tombstone)
//!       + 2 × entries moved (or migrated from v1) to failed_replay so far on the node
//!                                                                  (never range-deleted)
//! ```
//!
//! i.e. O(shards + batches written in the last interval + failed_replay entries). A v2 pass
//! above it is a violation; v1 passes are reported in the metrics (`replay_dead_scanned_*`)
//! and never judged, since their growth is the v1 behaviour the comparison shows.

use super::{events, safety};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::batchlog::types::{Layout, Stage};
use model::batchlog::BatchlogEvent;
use sim::{History, NodeId};
use std::collections::BTreeMap;

/// The bounded-cleanup checker.
pub struct BoundedCleanup;

impl Checker for BoundedCleanup {
    fn name(&self) -> &'static str {
        "batchlog_bounded_cleanup"
    }

    fn check(&self, cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let bl = super::config(cfg);
        let fixed = u64::from(bl.shard_count) * (bl.compaction_threshold as u64 + 1)
            + 4 * (bl.compaction_threshold as u64 + 1) * bl.memtable_flush_fragments as u64;
        let mut written: BTreeMap<NodeId, Vec<u64>> = BTreeMap::new();
        let mut moved: BTreeMap<NodeId, u64> = BTreeMap::new();
        let mut prev_cutoff: BTreeMap<NodeId, u64> = BTreeMap::new();
        let mut out = Vec::new();
        for e in events(h) {
            let Some(node) = e.node else { continue };
            match &e.ev {
                BatchlogEvent::EntryWritten {
                    written_at,
                    stage: Stage::Initial,
                    layout: Layout::V2,
                    ..
                } => {
                    written.entry(node).or_default().push(*written_at);
                }
                BatchlogEvent::EntryMoved { .. } | BatchlogEvent::EntryMigrated { .. } => {
                    *moved.entry(node).or_default() += 1
                }
                BatchlogEvent::ReplayPassEnd {
                    layout: Layout::V2,
                    dead_scanned,
                    cleanup,
                    cutoff_ms,
                    ..
                } => {
                    let since = prev_cutoff.get(&node).copied().unwrap_or(0);
                    let recent = written
                        .get(&node)
                        .map_or(0, |w| w.iter().filter(|t| **t > since).count() as u64);
                    let bound = fixed + 2 * recent + 2 * moved.get(&node).copied().unwrap_or(0);
                    if *dead_scanned > bound {
                        out.push(safety(
                            self.name(),
                            format!(
                                "v2 replay pass on {node} stepped over {dead_scanned} dead entries, above the bound {bound} ({recent} entries written since the previous cutoff)"
                            ),
                            Some(&e),
                        ));
                    }
                    if *cleanup {
                        prev_cutoff.insert(node, *cutoff_ms);
                        // Entries at or before the cutoff are covered from now on; forget them.
                        if let Some(w) = written.get_mut(&node) {
                            w.retain(|t| *t > *cutoff_ms);
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}
