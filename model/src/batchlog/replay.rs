//! One replay pass over a node's batchlog table, as a pure core (SPEC §5.5–§5.7).
//!
//! A pass is split into *units*: in v2 one batchlog shard (its `failed_replay` partition, then
//! its `initial` partition), in v1 the whole table. For each unit the shell calls
//! [`scan_unit`] (what to send, what is too young, what the scan walked), sends the selected
//! batches, and hands the outcomes to [`finish_unit`], which returns the table mutations to
//! apply in order (moves, deletions, the cleanup range tombstone) and the effects to record.
//!
//! Promises kept here:
//! - **No premature replay**: an entry with `now < written_at + timeout` is neither selected
//!   nor deleted; `now` is fixed for the whole pass.
//! - **Range-tombstone safety**: the cleanup range tombstone of a shard ends before the
//!   smallest too-young `written_at`, or just after `now - replay_timeout`; an `initial` entry
//!   whose send failed is first moved to `failed_replay` (copy, then row tombstone), so the
//!   range tombstone never covers a live entry that was not replayed in this pass.
//! - `failed_replay` entries are never covered by a range tombstone; they are deleted one by one.
//!
//! **When a shard is cleaned (`need_cleanup`, as upstream).** A shard gets its range tombstone
//! only if this very pass deleted one of its entries: a replay that succeeded, a batch whose
//! tables are all gone, or an `initial` entry moved to `failed_replay` (its `initial` row is
//! deleted too). Deletes made by the write path (step 5's row tombstones) and dead rows the scan
//! merely stepped over do not count, nor do too-young entries or failures that stay in place. The
//! upstream boost test states the same: cleanup touches only the shards that contributed to the
//! replay. The consequence is deliberate and shown by `clustersim batchlog-compare`: a workload
//! whose batches are all deleted by the write path never triggers a cleanup, so its row
//! tombstones pile up in v2 much as v1's partition tombstones do.
//!
//! **Where the tombstone ends (`cleanup_end`).** Upstream ends it just before `min_too_fresh` when
//! the shard held a too-young entry, else just after `now − replay_timeout`. A store still in
//! flight to this endpoint while the shard is scanned, with `written_at` below `min_too_fresh`,
//! is shadowed whether it lands before or after the tombstone (finding F1, `FINDINGS.md`). The
//! candidate fix, `batchlog.cleanup_end = replay_timeout`, always ends at `now − replay_timeout`:
//! too-young entries lie beyond that bound anyway (their timeout is at most `replay_timeout`),
//! and a store older than it has outlived its write timeout and is refused by the endpoint.
//!
//! **Clocks (finding F3).** `written_at` is the coordinator's `db_clock`, `now` the endpoint's.
//! A store in flight during the pass was sent at most `write_request_timeout` ago in real time,
//! so the `now − replay_timeout` end spares it only while the endpoint's clock is ahead of the
//! coordinator's by less than `replay_timeout − write_request_timeout`; beyond that, the
//! tombstone (stamped with the endpoint's newer clock) shadows the store when it lands, under
//! either `cleanup_end`. Upstream has no guard against that. The candidate fix,
//! `batchlog.cleanup_clock_margin_ms = M`, lowers the `After` end by `M`: it spares every
//! in-flight store while the clocks disagree by less than
//! `M + replay_timeout − write_request_timeout`; the rows in between wait for a later pass.

use super::config::CleanupEnd;
use super::table::{BatchlogRead, LiveRow, Mutation, RangeTombstone, RtEnd, ScanCost};
use super::types::{
    batchlog_shard, BatchId, ClusteringKey, Layout, PartitionKey, Payload, Stage, Timestamp,
};
use serde::Serialize;

/// The planted bugs of the replay core, switched on by the shell from `sim.mutant(..)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplayMutants {
    /// `batchlog-replay-too-young`: skip the too-young check.
    pub replay_too_young: bool,
    /// `batchlog-cleanup-covers-failed`: leave failed `initial` entries in place and still lay
    /// the range tombstone over them.
    pub cleanup_covers_failed: bool,
    /// `batchlog-no-failed-stage`: "move" a failed entry by deleting it from `initial` without
    /// writing the `failed_replay` copy.
    pub no_failed_stage: bool,
    /// `batchlog-no-range-tombstone`: v2 without its cleanup range tombstone (row tombstones
    /// then pile up as v1's partition tombstones do).
    pub no_range_tombstone: bool,
}

/// The parameters of one pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PassParams {
    /// Table layout replayed.
    pub layout: Layout,
    /// Batchlog shards (v2).
    pub shard_count: u32,
    /// `now` of the pass, in ms, fixed for the whole pass.
    pub now_ms: u64,
    /// `replay_timeout` in ms (2 × write_request_timeout).
    pub replay_timeout_ms: u64,
    /// post_replay_cleanup.
    pub cleanup: bool,
    /// Where the cleanup range tombstone ends (config `batchlog.cleanup_end`).
    pub cleanup_end: CleanupEnd,
    /// How much further below `now − replay_timeout` the `After` end of the cleanup range
    /// tombstone lies (config `batchlog.cleanup_clock_margin_ms`; 0 as upstream, finding F3).
    pub cleanup_clock_margin_ms: u64,
}

impl PassParams {
    /// `now - replay_timeout` (saturating): entries at or before it are old enough for every
    /// batch.
    pub fn cutoff_ms(&self) -> u64 {
        self.now_ms.saturating_sub(self.replay_timeout_ms)
    }

    /// Where an `After` cleanup range tombstone ends: `now − replay_timeout`, lowered by the
    /// clock margin (0 upstream).
    pub fn cleanup_after_ms(&self) -> u64 {
        self.cutoff_ms()
            .saturating_sub(self.cleanup_clock_margin_ms)
    }
}

/// A unit of a pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Unit {
    /// v1: the whole `system.batchlog`.
    V1All,
    /// v2: one batchlog shard.
    V2Shard(u32),
}

/// The units of a pass, in processing order.
pub fn units(layout: Layout, shard_count: u32) -> Vec<Unit> {
    match layout {
        Layout::V1 => vec![Unit::V1All],
        Layout::V2 => (0..shard_count).map(Unit::V2Shard).collect(),
    }
}

/// An entry selected for replay.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// Its stage (v1 entries are `initial`).
    pub stage: Stage,
    /// Its partition.
    pub pk: PartitionKey,
    /// `(written_at, id)`.
    pub ck: ClusteringKey,
    /// The batch.
    pub data: Payload,
}

/// What [`scan_unit`] found.
#[derive(Clone, Debug)]
pub struct UnitScan {
    /// The unit.
    pub unit: Unit,
    /// Entries to send, `failed_replay` first, each stage in clustering order.
    pub candidates: Vec<Candidate>,
    /// Entries too young to replay: (id, written_at, stage).
    pub too_young: Vec<(BatchId, u64, Stage)>,
    /// The smallest too-young `written_at` (`min_too_fresh`).
    pub min_too_fresh: Option<u64>,
    /// What the scan walked, both stages.
    pub cost: ScanCost,
    /// Live `failed_replay` rows seen.
    pub failed_stage_live: u64,
}

/// Scans one unit at the pass's `now`. `timeout_of` gives an entry's replay timeout in ms
/// (`replay_timeout`, reduced by the propagation delay of repair-mode tables, SPEC §5.5 step 2).
pub fn scan_unit(
    table: &dyn BatchlogRead,
    p: &PassParams,
    unit: Unit,
    timeout_of: &dyn Fn(&Payload) -> u64,
    m: ReplayMutants,
) -> UnitScan {
    let mut scan = UnitScan {
        unit,
        candidates: Vec::new(),
        too_young: Vec::new(),
        min_too_fresh: None,
        cost: ScanCost::default(),
        failed_stage_live: 0,
    };
    let mut parts: Vec<(Stage, Vec<LiveRow>)> = Vec::new();
    match unit {
        Unit::V1All => {
            assert_eq!(p.layout, Layout::V1);
            let (rows, cost) = table.scan_v1();
            scan.cost.add(cost);
            parts.push((Stage::Initial, rows));
        }
        Unit::V2Shard(shard) => {
            assert_eq!(p.layout, Layout::V2);
            for stage in [Stage::FailedReplay, Stage::Initial] {
                let pk = PartitionKey::v2(stage, shard);
                let (rows, cost) = table.read_partition(&pk);
                scan.cost.add(cost);
                if stage == Stage::FailedReplay {
                    scan.failed_stage_live += rows.len() as u64;
                }
                parts.push((stage, rows));
            }
        }
    }
    for (stage, rows) in parts {
        for r in rows {
            let timeout = timeout_of(&r.data).min(p.replay_timeout_ms);
            let too_young = p.now_ms < r.ck.written_at.saturating_add(timeout);
            if too_young && !m.replay_too_young {
                scan.too_young.push((r.ck.id, r.ck.written_at, stage));
                scan.min_too_fresh = Some(
                    scan.min_too_fresh
                        .map_or(r.ck.written_at, |x| x.min(r.ck.written_at)),
                );
                continue;
            }
            scan.candidates.push(Candidate {
                stage,
                pk: r.pk,
                ck: r.ck,
                data: r.data,
            });
        }
    }
    scan
}

/// How sending one candidate went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SendOutcome {
    /// Every mutation acknowledged at EACH_QUORUM.
    Replayed,
    /// Every mutation's table is gone (dropped): nothing to send, delete the entry.
    Dropped,
    /// The send failed (or the injection `storage_proxy_fail_replay_batch` fired).
    Failed,
}

/// An effect of finishing a unit, for the history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "effect")]
pub enum Effect {
    /// The entry was replayed (or all its tables were dropped) and is deleted.
    Deleted {
        /// Batch.
        id: BatchId,
        /// Its written_at.
        written_at: u64,
        /// Stage it was deleted from.
        stage: Stage,
    },
    /// The entry failed and was moved from `initial` to `failed_replay`.
    Moved {
        /// Batch.
        id: BatchId,
        /// Its written_at.
        written_at: u64,
        /// Was the `failed_replay` copy written (false only under `batchlog-no-failed-stage`)?
        copied: bool,
    },
    /// The entry failed and stays where it is.
    Kept {
        /// Batch.
        id: BatchId,
        /// Its stage.
        stage: Stage,
    },
    /// The cleanup range tombstone of a shard's `initial` partition.
    RangeTombstone {
        /// Batchlog shard.
        shard: u32,
        /// Its end bound.
        end: RtEnd,
        /// Its timestamp.
        ts: Timestamp,
    },
}

/// The result of finishing a unit.
#[derive(Clone, Debug, Default)]
pub struct UnitResult {
    /// Table mutations to apply, in order.
    pub mutations: Vec<Mutation>,
    /// Effects to record.
    pub effects: Vec<Effect>,
    /// Did every entry of the unit get replayed (nothing failed, nothing too young)?
    pub all_replayed: bool,
}

/// Turns a unit's send outcomes (parallel to `scan.candidates`) into table mutations.
/// `ts` hands out fresh local timestamps.
pub fn finish_unit(
    scan: &UnitScan,
    outcomes: &[SendOutcome],
    p: &PassParams,
    ts: &mut dyn FnMut() -> Timestamp,
    m: ReplayMutants,
) -> UnitResult {
    assert_eq!(
        outcomes.len(),
        scan.candidates.len(),
        "one outcome per candidate"
    );
    let mut r = UnitResult {
        all_replayed: scan.too_young.is_empty(),
        ..Default::default()
    };
    // Upstream's `need_cleanup`: set only where this pass itself deleted an entry of the shard.
    let mut need_cleanup = false;
    for (c, o) in scan.candidates.iter().zip(outcomes) {
        match o {
            SendOutcome::Replayed | SendOutcome::Dropped => {
                let del = match p.layout {
                    Layout::V1 => Mutation::DeletePartition { pk: c.pk, ts: ts() },
                    Layout::V2 => Mutation::DeleteRow {
                        pk: c.pk,
                        ck: c.ck,
                        ts: ts(),
                    },
                };
                r.mutations.push(del);
                r.effects.push(Effect::Deleted {
                    id: c.ck.id,
                    written_at: c.ck.written_at,
                    stage: c.stage,
                });
                need_cleanup = true;
            }
            SendOutcome::Failed => {
                r.all_replayed = false;
                let move_it = p.layout == Layout::V2 && p.cleanup && c.stage == Stage::Initial;
                if !move_it {
                    r.effects.push(Effect::Kept {
                        id: c.ck.id,
                        stage: c.stage,
                    });
                    continue;
                }
                need_cleanup = true;
                if m.cleanup_covers_failed {
                    // The bug: the entry stays in `initial` under the coming range tombstone.
                    r.effects.push(Effect::Kept {
                        id: c.ck.id,
                        stage: c.stage,
                    });
                    continue;
                }
                let Unit::V2Shard(shard) = scan.unit else {
                    unreachable!("v2 unit")
                };
                assert_eq!(
                    shard,
                    match c.pk {
                        PartitionKey::V2 { shard, .. } => shard,
                        PartitionKey::V1(_) => unreachable!("v2 key"),
                    }
                );
                if !m.no_failed_stage {
                    // The copy first, then the row tombstone: a crash in between leaves the
                    // entry in both stages, never in none.
                    r.mutations.push(Mutation::Insert {
                        pk: PartitionKey::v2(Stage::FailedReplay, shard),
                        ck: c.ck,
                        ts: ts(),
                        data: c.data.clone(),
                    });
                }
                r.mutations.push(Mutation::DeleteRow {
                    pk: c.pk,
                    ck: c.ck,
                    ts: ts(),
                });
                r.effects.push(Effect::Moved {
                    id: c.ck.id,
                    written_at: c.ck.written_at,
                    copied: !m.no_failed_stage,
                });
            }
        }
    }
    if let (Unit::V2Shard(shard), true, true, false) =
        (scan.unit, p.cleanup, need_cleanup, m.no_range_tombstone)
    {
        let end = match (scan.min_too_fresh, p.cleanup_end) {
            (Some(x), CleanupEnd::Upstream) => RtEnd::Before(x),
            (_, CleanupEnd::Upstream | CleanupEnd::ReplayTimeout) => {
                RtEnd::After(p.cleanup_after_ms())
            }
        };
        let rt_ts = ts();
        r.mutations.push(Mutation::DeleteRange {
            pk: PartitionKey::v2(Stage::Initial, shard),
            rt: RangeTombstone { end, ts: rt_ts },
        });
        r.effects.push(Effect::RangeTombstone {
            shard,
            end,
            ts: rt_ts,
        });
    }
    r
}

/// The v2 `initial` partition an entry written at `written_at` goes to.
pub fn initial_partition(written_at: u64, shard_count: u32) -> PartitionKey {
    PartitionKey::v2(Stage::Initial, batchlog_shard(written_at, shard_count))
}

/// The partition an entry goes to in `layout`.
pub fn entry_partition(
    layout: Layout,
    id: BatchId,
    written_at: u64,
    shard_count: u32,
) -> PartitionKey {
    match layout {
        Layout::V1 => PartitionKey::V1(id),
        Layout::V2 => initial_partition(written_at, shard_count),
    }
}

/// The mutation deleting an `initial` entry from the write path (SPEC §5.3 step 5).
pub fn delete_entry(
    layout: Layout,
    pk: PartitionKey,
    ck: ClusteringKey,
    ts: Timestamp,
) -> Mutation {
    match layout {
        Layout::V1 => Mutation::DeletePartition { pk, ts },
        Layout::V2 => Mutation::DeleteRow { pk, ck, ts },
    }
}

/// One v1 entry migrated to v2 (SPEC §5.8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Migrated {
    /// Batch.
    pub id: BatchId,
    /// Its written_at (kept).
    pub written_at: u64,
    /// Its v2 batchlog shard.
    pub shard: u32,
}

/// The v1→v2 migration (SPEC §5.8): every live v1 row is rewritten into v2 stage
/// `failed_replay` with the same `written_at` and `id`, then its v1 partition is deleted (copy
/// first, so a crash in between leaves the entry in both tables, never in none). Returns the
/// mutations in order and the entries migrated.
pub fn migrate_v1(
    table: &dyn BatchlogRead,
    shard_count: u32,
    ts: &mut dyn FnMut() -> Timestamp,
) -> (Vec<Mutation>, Vec<Migrated>) {
    let mut muts = Vec::new();
    let mut done = Vec::new();
    for r in table.live_rows() {
        let PartitionKey::V1(id) = r.pk else { continue };
        assert_eq!(id, r.ck.id, "v1 partition key is the batch id");
        let shard = batchlog_shard(r.ck.written_at, shard_count);
        muts.push(Mutation::Insert {
            pk: PartitionKey::v2(Stage::FailedReplay, shard),
            ck: r.ck,
            ts: ts(),
            data: r.data.clone(),
        });
        muts.push(Mutation::DeletePartition { pk: r.pk, ts: ts() });
        done.push(Migrated {
            id,
            written_at: r.ck.written_at,
            shard,
        });
    }
    (muts, done)
}
