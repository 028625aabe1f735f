//! Tablet transition stages, their request-routing selectors (SPEC §1.3) and the legal stage
//! graph of a `migration` (SPEC §1.4 normal path, §1.5 revert path).
//!
//! Promise kept here: *stage monotonicity* — [`is_legal_successor`] is the model's definition of
//! which committed stage may follow which, and the coordinator asserts it before committing. The
//! stage checker does not use it: it carries its own graph written from the SPEC, and a unit test
//! there compares the two edge by edge, so a bug in this graph cannot hide itself.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A tablet transition stage (`system.tablets.stage`), named verbatim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Transition info is in group0; routing unchanged.
    AllowWriteBothReadOld,
    /// Writes go to both sets, reads to the previous one.
    WriteBothReadOld,
    /// Rollback intermediate step: both/previous, then `cleanup_target`.
    WriteBothReadOldFallbackCleanup,
    /// The pending replica is streamed from the leaving one.
    Streaming,
    /// Writes to both, reads from next.
    WriteBothReadNew,
    /// Writes and reads to next.
    UseNew,
    /// The leaving replica is cleaned.
    Cleanup,
    /// Final barrier before the transition is deleted.
    EndMigration,
    /// Revert: the pending replica is cleaned.
    CleanupTarget,
    /// Revert: final barrier before the transition is deleted, replicas unchanged.
    RevertMigration,
}

impl Stage {
    /// Every stage, in declaration order.
    pub const ALL: [Stage; 10] = [
        Stage::AllowWriteBothReadOld,
        Stage::WriteBothReadOld,
        Stage::WriteBothReadOldFallbackCleanup,
        Stage::Streaming,
        Stage::WriteBothReadNew,
        Stage::UseNew,
        Stage::Cleanup,
        Stage::EndMigration,
        Stage::CleanupTarget,
        Stage::RevertMigration,
    ];

    /// The name used in `system.tablets.stage`.
    pub fn name(self) -> &'static str {
        match self {
            Stage::AllowWriteBothReadOld => "allow_write_both_read_old",
            Stage::WriteBothReadOld => "write_both_read_old",
            Stage::WriteBothReadOldFallbackCleanup => "write_both_read_old_fallback_cleanup",
            Stage::Streaming => "streaming",
            Stage::WriteBothReadNew => "write_both_read_new",
            Stage::UseNew => "use_new",
            Stage::Cleanup => "cleanup",
            Stage::EndMigration => "end_migration",
            Stage::CleanupTarget => "cleanup_target",
            Stage::RevertMigration => "revert_migration",
        }
    }

    /// Which replica set coordinators write to in this stage (SPEC §1.3).
    pub fn write_selector(self) -> WriteSelector {
        use Stage::*;
        match self {
            AllowWriteBothReadOld | CleanupTarget | RevertMigration => WriteSelector::Previous,
            WriteBothReadOld | WriteBothReadOldFallbackCleanup | Streaming | WriteBothReadNew => {
                WriteSelector::Both
            }
            UseNew | Cleanup | EndMigration => WriteSelector::Next,
        }
    }

    /// Which replica set coordinators read from in this stage (SPEC §1.3).
    pub fn read_selector(self) -> ReadSelector {
        use Stage::*;
        match self {
            AllowWriteBothReadOld
            | WriteBothReadOld
            | WriteBothReadOldFallbackCleanup
            | Streaming
            | CleanupTarget
            | RevertMigration => ReadSelector::Previous,
            WriteBothReadNew | UseNew | Cleanup | EndMigration => ReadSelector::Next,
        }
    }

    /// Does this stage carry a session (`system.tablets.session` is set while in it, on the
    /// normal path)? Only `write_both_read_old` and `streaming` (SPEC §1.8 session scoping).
    pub fn has_session(self) -> bool {
        matches!(self, Stage::WriteBothReadOld | Stage::Streaming)
    }

    /// Is this a stage of the revert path?
    pub fn is_revert(self) -> bool {
        matches!(
            self,
            Stage::CleanupTarget | Stage::RevertMigration | Stage::WriteBothReadOldFallbackCleanup
        )
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Write routing of a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteSelector {
    /// The current replicas.
    Previous,
    /// Current ∪ new replicas.
    Both,
    /// The new replicas.
    Next,
}

/// Read routing of a stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadSelector {
    /// The current replicas.
    Previous,
    /// The new replicas.
    Next,
}

/// Is `to` a legal successor of `from`? `None` is "no transition". Covers the normal path of a
/// `migration` (§1.4) and its rollback edges (§1.5).
#[allow(clippy::match_like_matches_macro)] // the edge table reads better as arms
pub fn is_legal_successor(from: Option<Stage>, to: Option<Stage>) -> bool {
    use Stage::*;
    match (from, to) {
        (None, Some(AllowWriteBothReadOld)) => true,
        (Some(AllowWriteBothReadOld), Some(WriteBothReadOld | CleanupTarget)) => true,
        (Some(WriteBothReadOld), Some(Streaming | CleanupTarget)) => true,
        (Some(Streaming), Some(WriteBothReadNew | CleanupTarget)) => true,
        (
            Some(WriteBothReadNew),
            Some(UseNew | CleanupTarget | WriteBothReadOldFallbackCleanup),
        ) => true,
        (Some(WriteBothReadOldFallbackCleanup), Some(CleanupTarget)) => true,
        (Some(UseNew), Some(Cleanup)) => true,
        (Some(Cleanup), Some(EndMigration)) => true,
        (Some(EndMigration), None) => true,
        (Some(CleanupTarget), Some(RevertMigration)) => true,
        (Some(RevertMigration), None) => true,
        _ => false,
    }
}

/// The next stage on the normal path after `stage` (`None` after `end_migration` and
/// `revert_migration`: the transition is deleted).
pub fn normal_next(stage: Stage) -> Option<Stage> {
    use Stage::*;
    match stage {
        AllowWriteBothReadOld => Some(WriteBothReadOld),
        WriteBothReadOld => Some(Streaming),
        Streaming => Some(WriteBothReadNew),
        WriteBothReadNew => Some(UseNew),
        UseNew => Some(Cleanup),
        Cleanup => Some(EndMigration),
        EndMigration => None,
        WriteBothReadOldFallbackCleanup => Some(CleanupTarget),
        CleanupTarget => Some(RevertMigration),
        RevertMigration => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_the_spec_table() {
        use ReadSelector as R;
        use Stage::*;
        use WriteSelector as W;
        let table = [
            (AllowWriteBothReadOld, W::Previous, R::Previous),
            (WriteBothReadOld, W::Both, R::Previous),
            (WriteBothReadOldFallbackCleanup, W::Both, R::Previous),
            (Streaming, W::Both, R::Previous),
            (WriteBothReadNew, W::Both, R::Next),
            (UseNew, W::Next, R::Next),
            (Cleanup, W::Next, R::Next),
            (EndMigration, W::Next, R::Next),
            (CleanupTarget, W::Previous, R::Previous),
            (RevertMigration, W::Previous, R::Previous),
        ];
        for (s, w, r) in table {
            assert_eq!(s.write_selector(), w, "{s}");
            assert_eq!(s.read_selector(), r, "{s}");
        }
    }

    #[test]
    fn normal_path_is_legal_and_ends() {
        let mut cur = None;
        let mut next = Some(Stage::AllowWriteBothReadOld);
        let mut n = 0;
        loop {
            assert!(is_legal_successor(cur, next), "{cur:?} -> {next:?}");
            n += 1;
            match next {
                None => break,
                Some(s) => {
                    cur = Some(s);
                    next = normal_next(s);
                }
            }
        }
        assert_eq!(n, 8, "allow..end_migration then done");
    }

    #[test]
    fn revert_path_is_legal() {
        use Stage::*;
        for from in [
            AllowWriteBothReadOld,
            WriteBothReadOld,
            Streaming,
            WriteBothReadNew,
        ] {
            assert!(is_legal_successor(Some(from), Some(CleanupTarget)));
        }
        assert!(is_legal_successor(
            Some(CleanupTarget),
            Some(RevertMigration)
        ));
        assert!(is_legal_successor(Some(RevertMigration), None));
    }

    #[test]
    fn no_rollback_once_reads_moved_and_no_skips() {
        use Stage::*;
        for from in [UseNew, Cleanup, EndMigration] {
            assert!(!is_legal_successor(Some(from), Some(CleanupTarget)));
        }
        assert!(!is_legal_successor(
            Some(WriteBothReadOld),
            Some(WriteBothReadNew)
        ));
        assert!(!is_legal_successor(Some(UseNew), Some(WriteBothReadNew)));
        assert!(!is_legal_successor(None, Some(Streaming)));
        assert!(!is_legal_successor(None, None));
        for s in Stage::ALL {
            assert!(!is_legal_successor(Some(s), Some(s)), "no self edges: {s}");
        }
    }

    #[test]
    fn session_only_in_wbro_and_streaming() {
        let with: Vec<_> = Stage::ALL.into_iter().filter(|s| s.has_session()).collect();
        assert_eq!(with, vec![Stage::WriteBothReadOld, Stage::Streaming]);
    }
}
