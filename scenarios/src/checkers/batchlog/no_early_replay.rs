//! No premature replay (SPEC §5.12, §5.5 step 3): an entry is never sent, moved or deleted by a
//! replay while `now < written_at + timeout`, using the single `now` of its pass. The timeout
//! is `replay_timeout` (2 × write_request_timeout), reduced to the propagation delay when the
//! batch touches a repair-mode table that is not dropped — computed here from the config and
//! the batch's mutations, not taken from the model.

use super::{events, safety};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::batchlog::events::DeletedBy;
use model::batchlog::types::{BatchId, TableId, WriteMutation};
use model::batchlog::BatchlogEvent;
use sim::History;
use std::collections::{BTreeMap, BTreeSet};

/// The no-early-replay checker.
pub struct NoEarlyReplay;

impl Checker for NoEarlyReplay {
    fn name(&self) -> &'static str {
        "batchlog_no_early_replay"
    }

    fn check(&self, cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let bl = super::config(cfg);
        let mut invoked: BTreeMap<BatchId, Vec<WriteMutation>> = BTreeMap::new();
        let mut dropped: BTreeSet<TableId> = BTreeSet::new();
        let mut out = Vec::new();
        let entries = h.entries();
        for e in events(&entries) {
            let (id, now_ms, written_at, what) = match &e.ev {
                BatchlogEvent::BatchInvoke { id, mutations, .. } => {
                    invoked.insert(*id, mutations.clone());
                    continue;
                }
                BatchlogEvent::TableDropped { table } => {
                    dropped.insert(*table);
                    continue;
                }
                BatchlogEvent::EntryReplayed {
                    id,
                    now_ms,
                    written_at,
                    ..
                } => (*id, *now_ms, *written_at, "replayed"),
                BatchlogEvent::ReplayFailed {
                    id,
                    now_ms,
                    written_at,
                    ..
                } => (*id, *now_ms, *written_at, "sent"),
                BatchlogEvent::EntryMoved {
                    id,
                    now_ms,
                    written_at,
                    ..
                } => (*id, *now_ms, *written_at, "moved"),
                BatchlogEvent::EntryDeleted {
                    id,
                    now_ms: Some(now_ms),
                    written_at,
                    by: DeletedBy::Replay,
                    ..
                } => (*id, *now_ms, *written_at, "deleted by replay"),
                _ => continue,
            };
            let repair = invoked.get(&id).is_some_and(|ms| {
                ms.iter().any(|m| {
                    bl.repair_mode_tables.contains(&m.table.0) && !dropped.contains(&m.table)
                })
            });
            let timeout = if repair {
                bl.replay_timeout_ms().min(bl.propagation_delay_ms)
            } else {
                bl.replay_timeout_ms()
            };
            if now_ms < written_at + timeout {
                out.push(safety(
                    self.name(),
                    format!(
                        "batch {id} {what} at pass now={now_ms} ms, younger than written_at {written_at} + timeout {timeout} ms"
                    ),
                    Some(&e),
                ));
            }
        }
        out
    }
}
