//! The steady logged-batch workload of issue #23358 on the pure storage model, for the v1/v2
//! comparison (SPEC §5.10, §8): batches that succeed and are deleted by the write path right
//! away, periodic replays with cleanup, then one measured replay. Optionally every
//! `failed_every`-th batch fails after its batchlog write (`storage_proxy_fail_send_batch`): its
//! entry stays until a replay applies and deletes it, which is what makes that replay clean the
//! entry's shard (upstream's `need_cleanup`).
//!
//! It drives [`Table`] and the [`replay`](super::replay) core directly (no cluster, no
//! simulation), so a million batches take seconds. What it shows: the measured replay's dead
//! count grows with the batches written under v1; under v2 it grows too when every batch
//! succeeds (no replay ever deletes an entry, so no shard is ever cleaned), and stays flat when
//! some batches are left for replay often enough that every shard is cleaned.

use super::config::CleanupEnd;
use super::replay::{self, PassParams, ReplayMutants, SendOutcome};
use super::table::{ScanCost, Table, TableConfig};
use super::types::{BatchBody, BatchId, ClusteringKey, Layout, TableId, Timestamp, WriteMutation};
use rand::{Rng, SeedableRng};
use std::rc::Rc;

/// The shape of the steady workload.
#[derive(Clone, Debug)]
pub struct SteadyParams {
    /// Layout.
    pub layout: Layout,
    /// Batches written (each inserted and deleted by the write path).
    pub batches: u64,
    /// Seed for the workload's jitter.
    pub seed: u64,
    /// Batchlog shards (v2).
    pub shard_count: u32,
    /// Mean virtual ms between batches.
    pub batch_gap_ms: u64,
    /// Virtual ms between loop replays (all with cleanup).
    pub replay_interval_ms: u64,
    /// `replay_timeout`.
    pub replay_timeout_ms: u64,
    /// Storage sizing.
    pub table: TableConfig,
    /// Virtual ns per fragment walked by a replay scan.
    pub scan_ns_per_fragment: u64,
    /// Every this-many-th batch fails after its batchlog write and is left for replay (0: every
    /// batch succeeds, the pure #23358 workload).
    pub failed_every: u64,
    /// Where cleanup range tombstones end.
    pub cleanup_end: CleanupEnd,
}

impl SteadyParams {
    /// The comparison's defaults: 256 batchlog shards, a batch every 10 ms, a replay every
    /// second (the `short_batchlog_manager_replay_interval` cadence), replay timeout 4 s.
    pub fn new(layout: Layout, batches: u64, seed: u64) -> Self {
        SteadyParams {
            layout,
            batches,
            seed,
            shard_count: 256,
            batch_gap_ms: 10,
            replay_interval_ms: 1000,
            replay_timeout_ms: 4000,
            table: TableConfig {
                memtable_flush_fragments: 1024,
                commitlog_segment_mutations: 1024,
                compaction_threshold: 4,
                persist: false,
                keep_shadowed: false,
            },
            scan_ns_per_fragment: 1000,
            failed_every: 0,
            cleanup_end: CleanupEnd::Upstream,
        }
    }
}

/// What one replay pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassSummary {
    /// Scan cost.
    pub cost: ScanCost,
    /// Entries replayed and deleted.
    pub replayed: u64,
    /// Entries too young.
    pub too_young: u64,
}

/// Runs one replay pass in which every send succeeds, applying its mutations.
pub fn replay_all_succeed(
    table: &mut Table,
    p: &PassParams,
    ts: &mut dyn FnMut() -> Timestamp,
) -> PassSummary {
    let mut s = PassSummary::default();
    for unit in replay::units(p.layout, p.shard_count) {
        let scan = replay::scan_unit(table, p, unit, &|_| u64::MAX, ReplayMutants::default());
        s.cost.add(scan.cost);
        s.too_young += scan.too_young.len() as u64;
        s.replayed += scan.candidates.len() as u64;
        let outcomes = vec![SendOutcome::Replayed; scan.candidates.len()];
        let r = replay::finish_unit(&scan, &outcomes, p, ts, ReplayMutants::default());
        for m in r.mutations {
            table.apply(m);
        }
    }
    s
}

/// Writes the steady workload with its periodic replays; returns the table and the virtual ms
/// at its end. Intermediate v1 replays of an all-success workload are skipped: with every batch
/// already deleted they find nothing live and write nothing (v1 ignores cleanup), so the table is
/// the same without them.
pub fn steady_workload(p: &SteadyParams) -> (Table, u64) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(p.seed);
    let mut table = Table::new(p.table.clone());
    let mut now_ms: u64 = 0;
    let mut seq: u64 = 0;
    let mut next_replay = p.replay_interval_ms;
    for i in 0..p.batches {
        now_ms += rng.gen_range(0..=2 * p.batch_gap_ms);
        while (p.layout == Layout::V2 || p.failed_every > 0) && now_ms >= next_replay {
            let pp = PassParams {
                layout: p.layout,
                shard_count: p.shard_count,
                now_ms: next_replay,
                replay_timeout_ms: p.replay_timeout_ms,
                cleanup: true,
                cleanup_end: p.cleanup_end,
                cleanup_clock_margin_ms: 0,
            };
            let mut ts = || {
                seq += 1;
                next_replay * 1000 + seq % 1000
            };
            replay_all_succeed(&mut table, &pp, &mut ts);
            next_replay += p.replay_interval_ms;
        }
        seq += 1;
        let ts0 = now_ms * 1000 + seq % 1000;
        let id = BatchId(i);
        let body = Rc::new(BatchBody {
            id,
            mutations: vec![WriteMutation {
                table: TableId(0),
                key: i,
                value: i,
                ts: ts0,
            }],
        });
        let ck = ClusteringKey {
            written_at: now_ms,
            id,
        };
        let pk = replay::entry_partition(p.layout, id, now_ms, p.shard_count);
        table.apply(super::table::Mutation::Insert {
            pk,
            ck,
            ts: ts0,
            data: body,
        });
        let failed = p.failed_every > 0 && i % p.failed_every == p.failed_every - 1;
        if !failed {
            table.apply(replay::delete_entry(p.layout, pk, ck, ts0 + 1));
        }
    }
    (table, now_ms)
}

/// The measured replay at the end of the workload: one pass with cleanup, one second after the
/// last batch.
pub fn final_replay(p: &SteadyParams, table: &mut Table, end_ms: u64) -> PassSummary {
    let now_ms = end_ms + p.replay_interval_ms;
    let pp = PassParams {
        layout: p.layout,
        shard_count: p.shard_count,
        now_ms,
        replay_timeout_ms: p.replay_timeout_ms,
        cleanup: true,
        cleanup_end: p.cleanup_end,
        cleanup_clock_margin_ms: 0,
    };
    let mut seq = 0u64;
    let mut ts = || {
        seq += 1;
        now_ms * 1000 + 500 + seq
    };
    replay_all_succeed(table, &pp, &mut ts)
}

/// Virtual ms a scan of this cost takes.
pub fn scan_sim_ms(p: &SteadyParams, cost: ScanCost) -> u64 {
    (cost.live + cost.dead) * p.scan_ns_per_fragment / 1_000_000
}
