//! Stage monotonicity (SPEC §1.8): each committed stage is a legal successor of the tablet's
//! previous one; no commit of a fenced coordinator term takes effect (SPEC §1.9); a session id
//! is fresh for each stage that opens one.
//!
//! The checker carries its own transition graph ([`legal_successor`]), written from SPEC §1.4
//! (the normal path) and §1.5 (the revert path), and never the model's: a wrong edge in the
//! model's graph would otherwise hide itself, since the coordinator asserts the same table it
//! would be checked against.

use super::{events, safety};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::events::TopologyEvent;
use model::topology::stage::Stage;
use sim::History;
use std::collections::{BTreeMap, BTreeSet};

/// The stage checker.
pub struct StageMonotonicity;

impl Checker for StageMonotonicity {
    fn name(&self) -> &'static str {
        "stage"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut last = BTreeMap::new();
        let mut sessions_seen = BTreeSet::new();
        let mut cur_session = BTreeMap::new();
        let entries = h.entries();
        for (e, ev) in events(&entries) {
            let TopologyEvent::StageCommitted {
                tablet,
                stage,
                session,
                term,
                fenced_term,
                ..
            } = *ev
            else {
                continue;
            };
            let prev = last.get(&tablet).copied().flatten();
            if !legal_successor(prev, stage) {
                out.push(safety(
                    self.name(),
                    format!("{tablet}: illegal stage change {prev:?} -> {stage:?}"),
                    &e,
                ));
            }
            if let Some(t) = term {
                if t < fenced_term {
                    out.push(safety(self.name(), format!(
                            "{tablet}: a commit of coordinator term {t} took effect after term {fenced_term} fenced it"
                        ), &e));
                }
            }
            if let Some(s) = session {
                if cur_session.get(&tablet) != Some(&s) && !sessions_seen.insert(s) {
                    out.push(safety(
                        self.name(),
                        format!("{tablet}: session {s} reused by a new stage"),
                        &e,
                    ));
                }
            }
            match session {
                Some(s) => cur_session.insert(tablet, s),
                None => cur_session.remove(&tablet),
            };
            last.insert(tablet, stage);
        }
        out
    }
}

/// Is `to` a legal successor of `from` (`None`: no transition)? The edges of SPEC §1.4 and §1.5,
/// one arm per arrow of the spec's diagrams; stages the model does not run (`rebuild_repair`,
/// `repair`, `end_repair`, `restore`) have no variant and so no edge.
fn legal_successor(from: Option<Stage>, to: Option<Stage>) -> bool {
    use Stage::*;
    let allowed: &[Option<Stage>] = match from {
        // §1.4: the load balancer (or move_tablet) starts a transition.
        None => &[Some(AllowWriteBothReadOld)],
        // §1.4 barrier; §1.5 rollback when a replica is on an excluded node.
        Some(AllowWriteBothReadOld) => &[Some(WriteBothReadOld), Some(CleanupTarget)],
        Some(WriteBothReadOld) => &[Some(Streaming), Some(CleanupTarget)],
        // §1.4 stream RPC succeeded; §1.5 rollback only with a reason.
        Some(Streaming) => &[Some(WriteBothReadNew), Some(CleanupTarget)],
        // §1.5: more new replicas excluded than old: the fallback cleanup, or cleanup_target.
        Some(WriteBothReadNew) => &[
            Some(UseNew),
            Some(WriteBothReadOldFallbackCleanup),
            Some(CleanupTarget),
        ],
        Some(WriteBothReadOldFallbackCleanup) => &[Some(CleanupTarget)],
        // §1.5: no rollback once reads have moved.
        Some(UseNew) => &[Some(Cleanup)],
        Some(Cleanup) => &[Some(EndMigration)],
        Some(EndMigration) => &[None],
        Some(CleanupTarget) => &[Some(RevertMigration)],
        Some(RevertMigration) => &[None],
    };
    allowed.contains(&to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::RunEnd;
    use model::topology::{TableId, TabletId};
    use sim::{Event, SimInstant};

    fn committed(h: &History, from: Option<Stage>, stage: Option<Stage>, version: u64) {
        let ev = TopologyEvent::StageCommitted {
            index: version,
            term: Some(1),
            fenced_term: 0,
            version,
            tablet: TabletId::new(TableId::user(0), 0),
            migration: 1,
            from,
            stage,
            session: None,
            replicas: Vec::new(),
            new_replicas: Vec::new(),
            origin: "test".into(),
        };
        h.push(SimInstant(version), None, Event::Proto(Box::new(ev)));
    }

    fn verdict(path: &[Option<Stage>]) -> Vec<Violation> {
        let h = History::new();
        let mut prev = None;
        for (v, &s) in path.iter().enumerate() {
            committed(&h, prev, s, v as u64 + 1);
            prev = s;
        }
        let cfg = RunConfig::base("test", 0, &[]);
        StageMonotonicity.check(&cfg, &h, &RunEnd::default())
    }

    #[test]
    fn the_normal_and_the_revert_path_pass() {
        use Stage::*;
        let normal = [
            Some(AllowWriteBothReadOld),
            Some(WriteBothReadOld),
            Some(Streaming),
            Some(WriteBothReadNew),
            Some(UseNew),
            Some(Cleanup),
            Some(EndMigration),
            None,
        ];
        assert!(verdict(&normal).is_empty());
        let revert = [
            Some(AllowWriteBothReadOld),
            Some(WriteBothReadOld),
            Some(Streaming),
            Some(WriteBothReadNew),
            Some(WriteBothReadOldFallbackCleanup),
            Some(CleanupTarget),
            Some(RevertMigration),
            None,
        ];
        assert!(verdict(&revert).is_empty());
    }

    #[test]
    fn a_skipped_stage_and_a_rollback_after_use_new_are_caught() {
        use Stage::*;
        let skip = [
            Some(AllowWriteBothReadOld),
            Some(WriteBothReadOld),
            Some(WriteBothReadNew),
        ];
        let v = verdict(&skip);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].message
                .contains("WriteBothReadOld) -> Some(WriteBothReadNew)"),
            "{v:?}"
        );
        let late_rollback = [
            Some(AllowWriteBothReadOld),
            Some(WriteBothReadOld),
            Some(Streaming),
            Some(WriteBothReadNew),
            Some(UseNew),
            Some(CleanupTarget),
        ];
        assert_eq!(verdict(&late_rollback).len(), 1);
    }

    /// The checker's graph agrees with the model's on every pair: a disagreement means one of
    /// the two was written wrong from the spec (this test names the pair; it does not make the
    /// checker depend on the model at run time).
    #[test]
    fn the_oracle_agrees_with_the_model_on_every_edge() {
        let all: Vec<Option<Stage>> = std::iter::once(None)
            .chain(Stage::ALL.iter().copied().map(Some))
            .collect();
        for &a in &all {
            for &b in &all {
                assert_eq!(
                    legal_successor(a, b),
                    model::topology::stage::is_legal_successor(a, b),
                    "{a:?} -> {b:?}"
                );
            }
        }
    }
}
