//! Repair of a user table with `tombstone_gc = {'mode': 'repair'}`, as far as the batchlog is
//! concerned (SPEC §5.5): the hints-and-batchlog flush before the repair, the repair time it
//! yields, and tombstone GC on that table after `propagation_delay`.
//!
//! What upstream does today (`repair/repair.cc` `flush_hints`, `repair/row_level.cc`
//! `repair_flush_hints_batchlog_handler`, read at scylladb/scylladb `f4a4091ca2`):
//! 1. the repair's coordinator asks *every* node for a flush, and skips the flush (counts it as
//!    failed) if any node is down;
//! 2. each node takes its flush time from its own clock (`gc_clock::now()`) when it takes the
//!    request, replays its batchlog with `cleanup = no`, and answers with an error unless the
//!    replay reports every entry replayed (PR #26319: before it, a replay whose sends all
//!    failed still answered success);
//! 3. only if every node succeeded does the repair record a repair time, the smallest flush
//!    time; a failed flush leaves the repair time where it was (the data is still repaired);
//! 4. tombstones of the table older than `repair_time − propagation_delay` may then be purged.
//!
//! The mutant [`MUTANT_REPAIR_TIME_DESPITE_FAILED_FLUSH`] restores the behaviour before PR
//! #26319: a node's "not all replayed" is ignored, the repair time moves to the smallest flush
//! time anyway, tombstones written before it are purged, and a batch still waiting in a
//! batchlog brings deleted data back when it is finally replayed (`batchlog_no_resurrection`
//! catches it in `batchlog.repair_after_failed_flush`).
//!
//! The data itself is repaired after the flush whether or not the flush succeeded, as upstream's
//! row-level repair does: every cell of the table's tablets on their live replicas goes to every
//! other live replica of the tablet that lacks it or holds an older one (last write wins, a
//! tombstone wins a tie), so that a replica that missed a delete gets its tombstone before GC
//! purges it elsewhere.
//!
//! Simplifications, and what they cost the checkers:
//! - row-level repair is one instantaneous merge per tablet (upstream exchanges row hashes in
//!   ranges and streams the differences), among the replicas that are up; a write still in
//!   flight to a replica is not waited for, as upstream does not wait for it either. The
//!   resurrection checker judges a QUORUM read, never a single replica;
//! - GC runs once, on every live replica, right after a repair moves the repair time (upstream
//!   purges at the next compaction): the earliest moment GC is allowed, so a hazard shows as
//!   soon as it can, and no later GC is missed because none is due before the next repair;
//! - a tombstone's deletion time is its write timestamp (both come from the deleting
//!   coordinator's clock upstream too);
//! - the flush cache (`repair_hints_batchlog_flush_cache_time_in_ms`) and hints are not
//!   modelled: every repair replays every node's batchlog, and there are no hints to flush.

use super::events::BatchlogEvent;
use super::service::{FlushAnswer, RepairFlushVerb};
use super::types::TableId;
use crate::node::NodeHandle;
use crate::topology::data::{CellValue, Storage};
use crate::topology::ids::TabletId;
use sim::time::Duration;
use sim::{NodeId, Sim};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// The repair time moves although a node's batchlog flush reported "not all replayed" (the
/// behaviour before upstream PR #26319).
pub const MUTANT_REPAIR_TIME_DESPITE_FAILED_FLUSH: &str = "repair-time-despite-failed-flush";

/// The repair history of a run: each repaired table's repair time (ms), as
/// `system.repair_history` would hold it.
#[derive(Default)]
struct RepairHistory {
    times: RefCell<BTreeMap<TableId, u64>>,
}

/// The repair time recorded for `table`, if any repair moved it.
pub fn repair_time_ms(sim: &Sim, table: TableId) -> Option<u64> {
    sim.ext::<RepairHistory>()
        .times
        .borrow()
        .get(&table)
        .copied()
}

/// The outcome of a flush round, given every node's answer (`None`: the call failed). Pure:
/// `Ok(repair_time)` if the repair time may move to it, else why not. With `ignore_not_all`
/// (the mutant) a node's "not all replayed" does not fail the flush.
pub fn flush_outcome(
    answers: &[(NodeId, Option<FlushAnswer>)],
    ignore_not_all: bool,
) -> Result<u64, String> {
    let mut time: Option<u64> = None;
    for (node, a) in answers {
        match a {
            None => return Err(format!("flush request to {node} failed")),
            Some(a) if !a.all_replayed && !ignore_not_all => {
                return Err(format!("not all batchlog entries were replayed on {node}"))
            }
            Some(a) => time = Some(time.map_or(a.flush_time_ms, |t| t.min(a.flush_time_ms))),
        }
    }
    time.ok_or_else(|| "no node to flush".to_string())
}

/// Repairs user `table` from `h`'s node: the flush round, the repair time, then tombstone GC.
/// Returns whether the flush succeeded (the repair time moved).
pub async fn repair_table(h: &Rc<NodeHandle>, table: TableId) -> bool {
    let sim = h.sim.clone();
    let me = h.node;
    let nodes: Vec<NodeId> = h.g0.with_state(|s| {
        s.nodes
            .keys()
            .copied()
            .filter(|n| !s.excluded.contains(n))
            .collect()
    });
    let mutant = sim.mutant(MUTANT_REPAIR_TIME_DESPITE_FAILED_FLUSH);
    let down: Vec<String> = nodes
        .iter()
        .filter(|n| !sim.is_up(**n))
        .map(|n| n.to_string())
        .collect();
    let outcome = if !down.is_empty() {
        Err(format!("flush skipped: nodes down {}", down.join(",")))
    } else {
        let net = sim.net();
        let timeout = Duration::from_millis(h.bl.replay_write_timeout_ms * 4);
        let answers = futures::future::join_all(nodes.iter().map(|&n| {
            let net = net.clone();
            async move {
                (
                    n,
                    net.call::<RepairFlushVerb>(me, n, (), timeout).await.ok(),
                )
            }
        }))
        .await;
        flush_outcome(&answers, mutant)
    };
    let (repair_time, reason) = match &outcome {
        Ok(t) => (Some(*t), String::new()),
        Err(e) => (None, e.clone()),
    };
    let all_replayed = reason.is_empty();
    repair_rows(h, &nodes, table).await;
    if let Some(t) = repair_time {
        sim.ext::<RepairHistory>()
            .times
            .borrow_mut()
            .entry(table)
            .and_modify(|x| *x = (*x).max(t))
            .or_insert(t);
        sim.mark("repair time updated");
        tracing::info!(%table, "repair of {table}: batchlog flushed everywhere, repair time {t} ms");
    } else {
        sim.mark("repair flush failed, repair time kept");
        if reason.starts_with("not all batchlog entries") {
            sim.mark("repair time kept: a batchlog not all replayed");
        }
        tracing::info!(%table, "repair of {table}: batchlog flush failed ({reason}), repair time kept");
    }
    sim.record(
        Some(me),
        BatchlogEvent::RepairFlushed {
            table,
            all_replayed,
            reason,
            repair_time_ms: repair_time,
        },
    );
    if let Some(t) = repair_time_ms(&sim, table) {
        gc_tombstones(
            h,
            &nodes,
            table,
            t.saturating_sub(h.bl.propagation_delay_ms),
        )
        .await;
    }
    all_replayed
}

/// Row-level repair of `table`: on each tablet, every live replica gets the newest cell of each
/// key among the tablet's live replicas (tombstones included) where it lacks it.
async fn repair_rows(h: &NodeHandle, nodes: &[NodeId], table: TableId) {
    let sim = &h.sim;
    let tablets: Vec<(TabletId, Vec<crate::topology::ids::Replica>)> = h.g0.with_state(|s| {
        s.tablets_of(table.schema_id())
            .map(|(t, i)| (*t, i.replicas.clone()))
            .collect()
    });
    let mut touched: Vec<NodeId> = Vec::new();
    let mut rows = 0u64;
    for (tablet, replicas) in &tablets {
        let live: Vec<_> = replicas
            .iter()
            .filter(|r| nodes.contains(&r.node) && sim.is_up(r.node))
            .collect();
        let held: Vec<BTreeMap<u64, CellValue>> = live
            .iter()
            .map(|r| {
                Storage::of(sim, r.node)
                    .scan(r.shard, *tablet)
                    .into_iter()
                    .collect()
            })
            .collect();
        let mut newest: BTreeMap<u64, CellValue> = BTreeMap::new();
        for cells in &held {
            for (key, cell) in cells {
                let wins = newest.get(key).is_none_or(|n| newer(cell, n));
                if wins {
                    newest.insert(*key, *cell);
                }
            }
        }
        for (r, cells) in live.iter().zip(&held) {
            let st = Storage::of(sim, r.node);
            for (key, cell) in &newest {
                if cells.get(key).is_none_or(|c| newer(cell, c)) {
                    st.put(r.shard, *tablet, *key, *cell);
                    rows += 1;
                    if !touched.contains(&r.node) {
                        touched.push(r.node);
                    }
                }
            }
        }
    }
    for node in &touched {
        let _ = Storage::of(sim, *node).sync().await;
    }
    if rows > 0 {
        sim.mark("repair synced rows");
        tracing::info!(%table, "row repair of {table}: {rows} cell(s) sent to replicas that lacked them");
    }
}

/// Does `a` win over `b` (last write wins, a tombstone wins a tie)?
fn newer(a: &CellValue, b: &CellValue) -> bool {
    a.ts > b.ts || (a.ts == b.ts && a.value.is_none() && b.value.is_some())
}

/// Purges, on every live replica of `table`'s tablets, the tombstones older than `gc_before_ms`
/// (with the data they shadow).
async fn gc_tombstones(h: &NodeHandle, nodes: &[NodeId], table: TableId, gc_before_ms: u64) {
    let sim = &h.sim;
    let tablets: Vec<(TabletId, Vec<crate::topology::ids::Replica>)> = h.g0.with_state(|s| {
        s.tablets_of(table.schema_id())
            .map(|(t, i)| (*t, i.replicas.clone()))
            .collect()
    });
    for &node in nodes.iter().filter(|n| sim.is_up(**n)) {
        let st = Storage::of(sim, node);
        let mut purged: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for (tablet, replicas) in &tablets {
            for r in replicas.iter().filter(|r| r.node == node) {
                for (key, cell) in st.scan(r.shard, *tablet) {
                    // Timestamps are µs of the deleting coordinator's clock.
                    if cell.value.is_none() && cell.ts / 1_000 < gc_before_ms {
                        st.remove(r.shard, *tablet, key);
                        purged.entry(r.shard.0).or_default().push(key);
                    }
                }
            }
        }
        if purged.is_empty() {
            continue;
        }
        if st.sync().await.is_err() {
            continue;
        }
        for (shard, keys) in purged {
            sim.mark("tombstone purged by repair-mode gc");
            tracing::info!(%table, shard, "tombstone gc of {table} on {node}:{shard}: {} tombstone(s) older than {gc_before_ms} ms purged", keys.len());
            sim.record(
                Some(node),
                BatchlogEvent::TombstonesPurged {
                    table,
                    shard,
                    keys,
                    gc_before_ms,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ans(all_replayed: bool, flush_time_ms: u64) -> Option<FlushAnswer> {
        Some(FlushAnswer {
            all_replayed,
            flush_time_ms,
        })
    }

    #[test]
    fn repair_time_is_the_smallest_flush_time_and_only_if_all_replayed() {
        let (a, b, c) = (NodeId(1), NodeId(2), NodeId(3));
        let ok = [
            (a, ans(true, 500)),
            (b, ans(true, 420)),
            (c, ans(true, 610)),
        ];
        assert_eq!(flush_outcome(&ok, false), Ok(420));
        let not_all = [(a, ans(true, 500)), (b, ans(false, 420))];
        assert!(flush_outcome(&not_all, false)
            .unwrap_err()
            .contains("not all batchlog entries were replayed on n2"));
        // Before PR #26319: the answer was success whatever the replay did.
        assert_eq!(flush_outcome(&not_all, true), Ok(420));
        // A node that did not answer fails the flush either way.
        let lost = [(a, ans(true, 500)), (b, None)];
        assert!(flush_outcome(&lost, false).is_err());
        assert!(flush_outcome(&lost, true).is_err());
        assert!(flush_outcome(&[], false).is_err());
    }
}
