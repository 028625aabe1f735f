//! Barrier before a routing change (SPEC §1.8, §1.5, §2.4 step 5), keyed on group0-committed
//! versions:
//! 1. every edge that widens writes, moves reads, or narrows writes while reads may still use
//!    the new replicas is committed only after a global barrier that started at or after the
//!    version at which the source stage was committed, and completed successfully; those edges
//!    are allow→wbro, wbro→streaming, wbrn→use_new, use_new→cleanup, end_migration→done, and on
//!    the revert path wbrn→cleanup_target, fallback_cleanup→cleanup_target,
//!    cleanup_target→revert_migration, revert_migration→done. Not gated: streaming→wbrn (gated
//!    by streaming), cleanup→end_migration (by the cleanup RPC), the rollback edges into
//!    `cleanup_target` from stages that read the old replicas, and wbrn→fallback_cleanup (it
//!    keeps writing both);
//! 2. such an edge is committed only once group0's `fence_version` reached the source stage's
//!    version (the barrier's own "advance fence version" commit came first);
//! 3. a replica's data is deleted only after such a barrier in a stage whose selectors no longer
//!    route to it: `use_new` for the leaving replica, `cleanup_target` for the pending one.
//!
//! The edge table is the checker's own, written from the SPEC, not the model's.

use super::{events, migrations, safety, Versions};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::events::TopologyEvent;
use model::topology::stage::Stage;
use sim::History;
use std::collections::BTreeMap;

/// The routing checker.
pub struct BarrierBeforeRoutingChange;

/// Does the edge `from → to` need a completed barrier in `from`?
fn gated(from: Stage, to: Option<Stage>) -> bool {
    use Stage::*;
    matches!(
        (from, to),
        (AllowWriteBothReadOld, Some(WriteBothReadOld))
            | (WriteBothReadOld, Some(Streaming))
            | (WriteBothReadNew, Some(UseNew))
            | (UseNew, Some(Cleanup))
            | (EndMigration, None)
            | (WriteBothReadNew, Some(CleanupTarget))
            | (WriteBothReadOldFallbackCleanup, Some(CleanupTarget))
            | (CleanupTarget, Some(RevertMigration))
            | (RevertMigration, None)
    )
}

impl Checker for BarrierBeforeRoutingChange {
    fn name(&self) -> &'static str {
        "routing"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let entries = h.entries();
        let evs = events(&entries);
        let versions = Versions::of_entries(&entries);
        let migs = migrations(&evs);
        let mut out = Vec::new();
        let mut barrier_version: BTreeMap<u64, u64> = BTreeMap::new();
        // Versions of the barriers completed successfully so far.
        let mut completed: Vec<u64> = Vec::new();
        let done_since = |completed: &[u64], v: u64| completed.iter().any(|b| *b >= v);
        for (e, ev) in &evs {
            match ev {
                TopologyEvent::BarrierStarted {
                    barrier, version, ..
                } => {
                    barrier_version.insert(*barrier, *version);
                }
                TopologyEvent::BarrierCompleted { barrier, ok: true } => {
                    if let Some(v) = barrier_version.get(barrier) {
                        completed.push(*v);
                    }
                }
                TopologyEvent::StageCommitted {
                    index,
                    tablet,
                    migration,
                    from: Some(from),
                    stage,
                    ..
                } if gated(*from, *stage) => {
                    let Some(src) = migs.get(&(*tablet, *migration)).and_then(|st| {
                        st.iter()
                            .take_while(|s| s.at < e.index)
                            .filter(|s| s.stage == Some(*from))
                            .last()
                            .copied()
                    }) else {
                        continue;
                    };
                    if !done_since(&completed, src.version) {
                        out.push(safety(self.name(), format!(
                            "{tablet}: {from} -> {} committed without a completed barrier in {from} (entered at version {})",
                            stage.map_or("done".to_string(), |s| s.to_string()), src.version
                        ), e));
                    }
                    let (_, fence) = versions.at(*index);
                    if fence < src.version {
                        out.push(safety(self.name(), format!(
                            "{tablet}: {from} -> {} committed with fence_version {fence}, below the version {} of {from}: the barrier's fence was not advanced first",
                            stage.map_or("done".to_string(), |s| s.to_string()), src.version
                        ), e));
                    }
                }
                TopologyEvent::CleanupBegun {
                    tablet,
                    replica,
                    stage,
                    migration,
                } => {
                    let need = match stage {
                        Stage::Cleanup => Stage::UseNew,
                        _ => Stage::CleanupTarget,
                    };
                    let Some(src) = migs
                        .get(&(*tablet, *migration))
                        .and_then(|st| st.iter().find(|s| s.stage == Some(need)).copied())
                    else {
                        continue;
                    };
                    if !done_since(&completed, src.version) {
                        out.push(safety(self.name(), format!(
                            "{replica}: data of {tablet} deleted in {stage} before a barrier completed in {need} (entered at version {})",
                            src.version
                        ), e));
                    }
                }
                _ => {}
            }
        }
        out
    }
}
