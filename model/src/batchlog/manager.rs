//! The batchlog manager of one node (SPEC §5.4): the replay loop, and `do_batch_log_replay`
//! run at most once at a time per node, driving the pure pass core of [`super::replay`] over the
//! node's batchlog tables and sending the selected batches at EACH_QUORUM through the tablet
//! data plane ([`super::write_path`]), each mutation routed by the erm current when it is sent.
//!
//! Promises kept here: one replay per node at a time; one fixed `now` per pass; the mutations
//! of a unit (moves before the range tombstone) are applied in the order the core gives and are
//! recorded only once durable.

use super::events::{BatchlogEvent, DeletedBy};
use super::replay::{self, Effect, PassParams, ReplayMutants, SendOutcome};
use super::service::apply_batchlog;
use super::state::features;
use super::types::{Layout, Payload, Stage};
use super::write_path::write_to_replicas;
use crate::node::NodeHandle;
use crate::topology::state::TopologyState;
use sim::time::{sleep, Duration};
use std::rc::Rc;

/// Mutant names of the replay core.
pub const MUTANT_REPLAY_TOO_YOUNG: &str = "batchlog-replay-too-young";
/// Range tombstone laid over entries whose replay failed, without moving them.
pub const MUTANT_CLEANUP_COVERS_FAILED: &str = "batchlog-cleanup-covers-failed";
/// A failed entry is deleted from `initial` without its `failed_replay` copy.
pub const MUTANT_NO_FAILED_STAGE: &str = "batchlog-no-failed-stage";

/// v2 without the cleanup range tombstone.
pub const MUTANT_NO_RANGE_TOMBSTONE: &str = "batchlog-no-range-tombstone";

/// The manager routes replayed mutations by the replica map it read when it started (and
/// stamps them with the current erm version, so no fence refuses them): a tablet that migrated
/// since gets the replayed write on a replica that has left it, never on its new replica.
pub const MUTANT_REPLAY_STALE_ERM: &str = "batchlog-replay-stale-erm";

/// A replay sends only the first (live) member mutation of a batch, then deletes the entry as
/// if the whole batch had been replayed: the batch ends up partly applied.
pub const MUTANT_REPLAY_FIRST_MUTATION_ONLY: &str = "batchlog-replay-first-mutation-only";

/// Injection: hold every replay pass at its start until a message arrives (clustersim's own
/// name for "replay stalled").
pub const INJ_REPLAY_STALL: &str = "batchlog_replay_stall";

/// The replay loop: wait `ring_delay`, then replay every interval; every
/// `cleanup_after_replays`-th iteration with cleanup.
pub async fn replay_loop(h: Rc<NodeHandle>) {
    let cfg = h.bl.clone();
    let inj = h.inj.clone();
    let node = h.node;
    if h.sim.mutant(MUTANT_REPLAY_STALE_ERM) {
        *h.batchlog.stale_map.borrow_mut() = Some(h.g0.with_state(|s| s.clone()));
    }
    sleep(Duration::from_millis(cfg.ring_delay_ms)).await;
    let n = cfg.cleanup_after_replays.max(1);
    let mut iteration: u64 = 0;
    loop {
        iteration += 1;
        let cleanup = iteration.is_multiple_of(n);
        do_batch_log_replay(&h, cleanup).await;
        let interval = if inj.is_enabled(node, "short_batchlog_manager_replay_interval") {
            1000
        } else {
            cfg.replay_interval_ms
        };
        sleep(Duration::from_millis(interval)).await;
    }
}

struct RunningGuard(Rc<NodeHandle>);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.batchlog.replay_running.set(false);
        self.0.batchlog.replay_done.notify();
    }
}

/// Replays the node's batchlog once (waiting for a running replay first). Returns whether every
/// entry was replayed.
pub async fn do_batch_log_replay(h: &Rc<NodeHandle>, cleanup: bool) -> bool {
    let st = &h.batchlog;
    sim::sync::wait_until(&st.replay_done, || !st.replay_running.get()).await;
    st.replay_running.set(true);
    let _guard = RunningGuard(h.clone());
    let sim = h.sim.clone();
    let inj = h.inj.clone();
    let node = h.node;
    // The mutant's stale map, read when the manager started.
    let stale = h.batchlog.stale_map.borrow().clone();
    if inj.enter(&sim, node, "skip_batch_replay") {
        tracing::info!("batchlog replay skipped: injection skip_batch_replay");
        sim.mark("skip_batch_replay");
        return false;
    }
    if let Some(h) = inj.handler(&sim, node, INJ_REPLAY_STALL) {
        sim.mark("replay stalled");
        while !h.poll_for_message() && inj.is_enabled(node, INJ_REPLAY_STALL) {
            sleep(Duration::from_millis(10)).await;
        }
    }
    replay_pass(h, cleanup, stale.as_ref()).await
}

async fn replay_pass(h: &Rc<NodeHandle>, cleanup: bool, stale: Option<&TopologyState>) -> bool {
    let sim = h.sim.clone();
    let cfg = h.bl.clone();
    let node = h.node;
    let st = &h.batchlog;
    let m = ReplayMutants {
        replay_too_young: sim.mutant(MUTANT_REPLAY_TOO_YOUNG),
        cleanup_covers_failed: sim.mutant(MUTANT_CLEANUP_COVERS_FAILED),
        no_failed_stage: sim.mutant(MUTANT_NO_FAILED_STAGE),
        no_range_tombstone: sim.mutant(MUTANT_NO_RANGE_TOMBSTONE),
    };
    let layout = features::layout(&sim);
    if layout == Layout::V2 && !st.migrated.get() && !migrate(h).await {
        return false;
    }
    let p = PassParams {
        layout,
        shard_count: cfg.shard_count,
        // db_clock::now() on this node: its wall clock, skewed if a clock-skew fault says so.
        now_ms: sim.wall_clock_ms(node),
        replay_timeout_ms: cfg.replay_timeout_ms(),
        cleanup,
        cleanup_end: cfg.cleanup_end,
        cleanup_clock_margin_ms: cfg.cleanup_clock_margin_ms,
    };
    tracing::info!(layout = ?p.layout, cleanup, cutoff_ms = p.cutoff_ms(), "batchlog replay pass ({:?}, cleanup {}) starts: entries written before {} ms are due", p.layout, if cleanup { "on" } else { "off" }, p.cutoff_ms());
    sim.record(
        Some(node),
        BatchlogEvent::ReplayPassStart {
            layout: p.layout,
            now_ms: p.now_ms,
            cutoff_ms: p.cutoff_ms(),
            cleanup,
        },
    );
    let timeout_of = |data: &Payload| -> u64 {
        let repair = data.mutations.iter().any(|w| {
            cfg.repair_mode_tables.contains(&w.table.0)
                && !crate::schema::is_dropped(&sim, w.table.schema_id())
        });
        if repair {
            cfg.replay_timeout_ms().min(cfg.propagation_delay_ms)
        } else {
            cfg.replay_timeout_ms()
        }
    };
    let (mut live, mut dead, mut replayed, mut failed, mut too_young) = (0, 0, 0, 0, 0);
    let mut all_replayed = true;
    for unit in replay::units(p.layout, p.shard_count) {
        let scan = {
            let t = st.table.view();
            replay::scan_unit(&t, &p, unit, &timeout_of, m)
        };
        live += scan.cost.live;
        dead += scan.cost.dead;
        too_young += scan.too_young.len() as u64;
        if !scan.too_young.is_empty() {
            sim.mark("too young entry kept");
        }
        // The scan's honest cost in virtual time.
        let scan_ns = (scan.cost.live + scan.cost.dead) * cfg.scan_ns_per_fragment;
        if scan_ns > 0 {
            sleep(Duration::from_nanos(scan_ns)).await;
        }
        let mut outcomes = Vec::with_capacity(scan.candidates.len());
        for cand in &scan.candidates {
            let o = send_batch(h, &cand.data, stale).await;
            match &o {
                Ok(dropped) => {
                    replayed += 1;
                    tracing::debug!(batch = %cand.ck.id, stage = ?cand.stage, "batch {} ({:?}) replayed{}", cand.ck.id, cand.stage, if *dropped > 0 { format!(", {dropped} mutation(s) of dropped tables skipped") } else { String::new() });
                    sim.mark("batchlog entry replayed");
                    sim.record(
                        Some(node),
                        BatchlogEvent::EntryReplayed {
                            id: cand.ck.id,
                            now_ms: p.now_ms,
                            written_at: cand.ck.written_at,
                            stage: cand.stage,
                            dropped_mutations: *dropped,
                        },
                    );
                    if *dropped > 0 {
                        sim.mark("replay skipped dropped table mutations");
                    }
                    if cand.stage == Stage::FailedReplay {
                        sim.mark("failed_replay entry replayed");
                    }
                    if cand.data.mutations.len() - *dropped > 1 {
                        sim.mark("batch of several mutations replayed");
                    }
                    outcomes.push(if *dropped == cand.data.mutations.len() {
                        SendOutcome::Dropped
                    } else {
                        SendOutcome::Replayed
                    });
                }
                Err(reason) => {
                    failed += 1;
                    tracing::info!(batch = %cand.ck.id, stage = ?cand.stage, "replay of batch {} ({:?}) failed: {reason}", cand.ck.id, cand.stage);
                    sim.mark("replay send failed");
                    sim.record(
                        Some(node),
                        BatchlogEvent::ReplayFailed {
                            id: cand.ck.id,
                            now_ms: p.now_ms,
                            written_at: cand.ck.written_at,
                            stage: cand.stage,
                            reason: reason.clone(),
                        },
                    );
                    outcomes.push(SendOutcome::Failed);
                }
            }
        }
        let mut ts = || st.new_ts(&sim);
        let r = replay::finish_unit(&scan, &outcomes, &p, &mut ts, m);
        all_replayed &= r.all_replayed;
        if !r.mutations.is_empty() && apply_batchlog(h, r.mutations).await.is_err() {
            return false;
        }
        for e in r.effects {
            record_effect(&sim, node, &p, e);
        }
    }
    tracing::info!(replayed, failed, too_young, live, dead, all_replayed, "batchlog replay pass done: {replayed} replayed, {failed} failed, {too_young} too young kept; scanned {live} live and {dead} dead entries");
    sim.record(
        Some(node),
        BatchlogEvent::ReplayPassEnd {
            layout: p.layout,
            now_ms: p.now_ms,
            cutoff_ms: p.cutoff_ms(),
            cleanup,
            live_scanned: live,
            dead_scanned: dead,
            replayed,
            failed,
            too_young,
            all_replayed,
        },
    );
    sim.metric_add("replay_passes", 1);
    sim.metric_add("replay_live_scanned_total", live);
    sim.metric_add("replay_dead_scanned_total", dead);
    sim.metric_max("replay_dead_scanned_max", dead);
    sim.metric_add("batches_replayed", replayed);
    sim.metric_add("replay_failures", failed);
    if p.layout == Layout::V1 {
        sim.mark("v1 replay pass");
    }
    if cleanup {
        sim.mark("replay pass with cleanup");
    }
    all_replayed
}

fn record_effect(sim: &sim::Sim, node: sim::NodeId, p: &PassParams, e: Effect) {
    match e {
        Effect::Deleted {
            id,
            written_at,
            stage,
        } => {
            tracing::debug!(batch = %id, "batchlog entry of batch {id} ({stage:?}) deleted after replay");
            sim.record(
                Some(node),
                BatchlogEvent::EntryDeleted {
                    id,
                    written_at,
                    stage,
                    shard: match p.layout {
                        Layout::V1 => 0,
                        Layout::V2 => super::types::batchlog_shard(written_at, p.shard_count),
                    },
                    by: DeletedBy::Replay,
                    now_ms: Some(p.now_ms),
                    ts: None,
                },
            );
        }
        Effect::Moved {
            id,
            written_at,
            copied,
        } => {
            let shard = super::types::batchlog_shard(written_at, p.shard_count);
            sim.mark("failed entry kept for a later replay");
            if copied {
                tracing::info!(batch = %id, shard, "batch {id} moved to failed_replay of batchlog shard {shard} for a later replay");
                sim.mark("entry moved to failed_replay");
                sim.record(
                    Some(node),
                    BatchlogEvent::EntryMoved {
                        id,
                        written_at,
                        shard,
                        now_ms: p.now_ms,
                    },
                );
            } else {
                sim.record(
                    Some(node),
                    BatchlogEvent::EntryDeleted {
                        id,
                        written_at,
                        stage: Stage::Initial,
                        shard,
                        by: DeletedBy::Replay,
                        now_ms: Some(p.now_ms),
                        ts: None,
                    },
                );
            }
        }
        Effect::Kept { .. } => sim.mark("failed entry kept for a later replay"),
        Effect::RangeTombstone { shard, end, ts } => {
            tracing::info!(shard, "cleanup: range tombstone over the replayed prefix of batchlog shard {shard} (up to {end:?})");
            sim.mark("range tombstone written");
            sim.record(
                Some(node),
                BatchlogEvent::RangeTombstoneWritten {
                    shard,
                    stage: Stage::Initial,
                    end,
                    ts,
                    now_ms: p.now_ms,
                },
            );
            sim.metric_add("range_tombstones_written", 1);
        }
    }
}

/// Sends a batch's mutations at EACH_QUORUM (at ALL with `batchlog.replay_cl = all`), skipping
/// those of dropped tables. `Ok(skipped)` on success.
async fn send_batch(
    h: &NodeHandle,
    data: &Payload,
    stale: Option<&TopologyState>,
) -> Result<usize, String> {
    let sim = &h.sim;
    let node = h.node;
    let inj = &h.inj;
    let mut live: Vec<_> = data
        .mutations
        .iter()
        .filter(|m| !crate::schema::is_dropped(sim, m.table.schema_id()))
        .copied()
        .collect();
    let dropped = data.mutations.len() - live.len();
    if sim.mutant(MUTANT_REPLAY_FIRST_MUTATION_ONLY) {
        live.truncate(1);
    }
    if live.is_empty() {
        return Ok(dropped);
    }
    if inj
        .fail(sim, node, "storage_proxy_fail_replay_batch")
        .is_err()
    {
        return Err("injected: storage_proxy_fail_replay_batch".into());
    }
    let timeout = Duration::from_millis(h.bl.replay_write_timeout_ms);
    let results = futures::future::join_all(
        live.iter()
            .map(|m| write_to_replicas(h, data.id, *m, timeout, Some(h.bl.replay_cl), stale)),
    )
    .await;
    let errors: Vec<String> = results.into_iter().filter_map(|r| r.err()).collect();
    if errors.is_empty() {
        Ok(dropped)
    } else {
        Err(errors.join("; "))
    }
}

/// The v1→v2 migration, once per incarnation before the first v2 replay (SPEC §5.8); a failure
/// (injection `batchlog_manager_fail_migration`, or a failed sync) is retried on the next
/// replay. Returns whether it is done.
async fn migrate(h: &NodeHandle) -> bool {
    let sim = h.sim.clone();
    let node = h.node;
    let st = &h.batchlog;
    if h.inj
        .fail(&sim, node, "batchlog_manager_fail_migration")
        .is_err()
    {
        tracing::info!(
            "v1 -> v2 batchlog migration failed (injection); retried on the next replay"
        );
        sim.mark("batchlog_manager_fail_migration");
        return false;
    }
    let (muts, migrated) = {
        let t = st.table.view();
        let mut ts = || st.new_ts(&sim);
        replay::migrate_v1(&t, h.bl.shard_count, &mut ts)
    };
    if !muts.is_empty() && apply_batchlog(h, muts).await.is_err() {
        return false;
    }
    for m in migrated {
        tracing::info!(batch = %m.id, shard = m.shard, "v1 entry of batch {} migrated to v2 failed_replay (shard {})", m.id, m.shard);
        sim.mark("v1 entry migrated to failed_replay");
        sim.record(
            Some(node),
            BatchlogEvent::EntryMigrated {
                id: m.id,
                written_at: m.written_at,
                shard: m.shard,
            },
        );
    }
    st.migrated.set(true);
    true
}
