//! The pure decision core of the coordinator's pump (`handle_tablet_migration`, SPEC §1.7):
//! per-tablet background-action tracking and the retry-vs-rollback rules of SPEC §1.5.
//!
//! Input: the group0 state a pass reads and the action holders. Output: a [`Plan`] — the tablet
//! mutations to commit as one group0 command, the tablets that join this pass's global barrier,
//! and the streaming / cleanup actions to start. Promises kept here:
//! - *barrier before a forward routing change* (SPEC §1.8): every normal-path edge except
//!   streaming→write_both_read_new and cleanup→end_migration is planned only after a barrier
//!   succeeded in the source stage (barrier state is kept per stage);
//! - streaming is rolled back only for a reason (injection `stream_tablet_move_to_cleanup`, or
//!   an excluded replica), otherwise retried in the same stage with the same session;
//! - a fresh session id for each `write_both_read_old`, deleted on leaving `streaming`.

use super::ids::{NodeId, Replica, SessionId, TabletId};
use super::stage::{is_legal_successor, Stage};
use super::state::{TabletInfo, TabletUpdate, TopologyState};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The state of one background action (SPEC §1.5: not started / running / succeeded / failed).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub enum ActionStatus {
    /// Not started in this stage.
    #[default]
    NotStarted,
    /// Running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Failed (reported after the 1-second back-off).
    Failed,
}

/// Kinds of per-tablet background action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum ActionKind {
    /// The global tablet barrier of the tablet's stage.
    Barrier,
    /// `tablet_stream_data` to the pending replica.
    Streaming,
    /// `tablet_cleanup` to the leaving (or pending) replica.
    Cleanup,
}

/// The action holders of one tablet, valid for one stage only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TabletActions {
    /// The stage these holders belong to.
    pub stage: Stage,
    /// The barrier of this stage.
    pub barrier: ActionStatus,
    /// The streaming action (only in `streaming`).
    pub streaming: ActionStatus,
    /// The cleanup action (in `cleanup` and `cleanup_target`).
    pub cleanup: ActionStatus,
    /// `write_both_read_new` without the fallback feature: the barrier failed with more new
    /// replicas excluded than old, so the next successful barrier leads to `cleanup_target`.
    pub rollback_after_barrier: bool,
}

impl TabletActions {
    fn new(stage: Stage) -> Self {
        Self {
            stage,
            barrier: ActionStatus::NotStarted,
            streaming: ActionStatus::NotStarted,
            cleanup: ActionStatus::NotStarted,
            rollback_after_barrier: false,
        }
    }

    fn get_mut(&mut self, kind: ActionKind) -> &mut ActionStatus {
        match kind {
            ActionKind::Barrier => &mut self.barrier,
            ActionKind::Streaming => &mut self.streaming,
            ActionKind::Cleanup => &mut self.cleanup,
        }
    }
}

/// What the pump decided for one tablet in one pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// An action is running; nothing to do.
    Wait,
    /// Join this pass's global tablet barrier.
    Barrier,
    /// Start (or restart) streaming.
    Stream,
    /// Start (or restart) the cleanup RPC on `replica`; `None` = the host is excluded, the RPC
    /// is skipped and counts as succeeded.
    Cleanup(Option<Replica>),
    /// Commit this mutation.
    Commit(TabletUpdate),
}

/// Context of a decision.
#[derive(Clone, Debug, Default)]
pub struct DecideCtx {
    /// `topology.ignored_nodes`.
    pub excluded: BTreeSet<NodeId>,
    /// Injection `stream_tablet_move_to_cleanup` is enabled on the coordinator.
    pub move_to_cleanup: bool,
    /// Feature `tablets_intermediate_fallback_cleanup`: roll back from `write_both_read_new`
    /// through `write_both_read_old_fallback_cleanup`.
    pub fallback_cleanup: bool,
    /// Mutant [`ROLLBACK_SKIPS_BARRIER`].
    pub rollback_skips_barrier: bool,
    /// Mutant [`SESSION_NOT_DELETED_AFTER_STREAMING`].
    pub keep_session_after_streaming: bool,
}

/// Mutant: the rollback from `write_both_read_new` commits `cleanup_target` at once — no
/// fallback stage, no barrier — so a node still reading the new replica can miss writes that
/// now go to the old one only.
pub const ROLLBACK_SKIPS_BARRIER: &str = "rollback-skips-barrier";

/// Mutant: the streaming→write_both_read_new commit keeps the session, so the barrier of
/// `write_both_read_new` neither closes nor drains it.
pub const SESSION_NOT_DELETED_AFTER_STREAMING: &str = "session-not-deleted-after-streaming";

fn has_excluded_replica(info: &TabletInfo, excluded: &BTreeSet<NodeId>) -> bool {
    let mut all = info.replicas.clone();
    if let Some(t) = &info.transition {
        all.extend(t.new_replicas.iter().copied());
    }
    all.iter().any(|r| excluded.contains(&r.node))
}

fn stage_to(tablet: TabletId, from: Stage, to: Stage, session: Option<SessionId>) -> Step {
    assert!(is_legal_successor(Some(from), Some(to)), "{from} -> {to}");
    Step::Commit(TabletUpdate::Stage {
        tablet,
        from,
        to,
        session,
    })
}

/// Decide the next step of one tablet in transition. `fresh_session` is the id to use if the
/// step opens a session.
pub fn decide(
    tablet: TabletId,
    info: &TabletInfo,
    acts: &mut TabletActions,
    ctx: &DecideCtx,
    fresh_session: SessionId,
) -> Step {
    use ActionStatus::*;
    use Stage::*;
    let tr = info
        .transition
        .as_ref()
        .expect("decide() needs a transition");
    assert_eq!(
        acts.stage, tr.stage,
        "action holders belong to the current stage"
    );
    let stage = tr.stage;
    let excluded = has_excluded_replica(info, &ctx.excluded);
    // Barrier-gated stages: wait for the barrier, retry it or roll back on failure.
    let barrier_then = |on_success: Step, rollback: Option<Step>| match acts.barrier {
        Running => Step::Wait,
        NotStarted => Step::Barrier,
        Succeeded => on_success,
        Failed => rollback.unwrap_or(Step::Barrier),
    };
    match stage {
        AllowWriteBothReadOld => barrier_then(
            stage_to(tablet, stage, WriteBothReadOld, Some(fresh_session)),
            excluded.then(|| stage_to(tablet, stage, CleanupTarget, None)),
        ),
        WriteBothReadOld => barrier_then(
            stage_to(tablet, stage, Streaming, tr.session),
            // The session is not deleted explicitly here; it goes with the transition row.
            excluded.then(|| stage_to(tablet, stage, CleanupTarget, tr.session)),
        ),
        Streaming => match acts.streaming {
            Running => Step::Wait,
            NotStarted => Step::Stream,
            Succeeded => stage_to(
                tablet,
                stage,
                WriteBothReadNew,
                if ctx.keep_session_after_streaming {
                    tr.session
                } else {
                    None
                },
            ),
            Failed if ctx.move_to_cleanup || excluded => {
                stage_to(tablet, stage, CleanupTarget, None)
            }
            Failed => Step::Stream,
        },
        WriteBothReadNew => {
            let new_excluded = tr
                .new_replicas
                .iter()
                .filter(|r| ctx.excluded.contains(&r.node))
                .count();
            let old_excluded = info
                .replicas
                .iter()
                .filter(|r| ctx.excluded.contains(&r.node))
                .count();
            let roll_back = new_excluded > old_excluded;
            match acts.barrier {
                Failed if roll_back && ctx.rollback_skips_barrier => {
                    stage_to(tablet, stage, CleanupTarget, None)
                }
                // The feature on: the fallback stage (writes both, reads previous) with its own
                // barrier before `cleanup_target`.
                Failed if roll_back && ctx.fallback_cleanup => {
                    stage_to(tablet, stage, WriteBothReadOldFallbackCleanup, None)
                }
                // The feature off: `cleanup_target` after a barrier.
                Failed if roll_back => {
                    acts.rollback_after_barrier = true;
                    Step::Barrier
                }
                Succeeded if acts.rollback_after_barrier => {
                    stage_to(tablet, stage, CleanupTarget, None)
                }
                _ => barrier_then(stage_to(tablet, stage, UseNew, None), None),
            }
        }
        UseNew => barrier_then(stage_to(tablet, stage, Cleanup, None), None),
        Cleanup => match acts.cleanup {
            Running => Step::Wait,
            Succeeded => stage_to(tablet, stage, EndMigration, None),
            NotStarted | Failed => Step::Cleanup(
                info.leaving_replica()
                    .filter(|r| !ctx.excluded.contains(&r.node)),
            ),
        },
        EndMigration | RevertMigration => barrier_then(
            Step::Commit(TabletUpdate::Finish {
                tablet,
                from: stage,
            }),
            None,
        ),
        WriteBothReadOldFallbackCleanup => {
            barrier_then(stage_to(tablet, stage, CleanupTarget, tr.session), None)
        }
        // Barrier first (no coordinator writes to the pending replica any more, and the
        // abandoned stream receivers are drained), then clean the pending replica.
        CleanupTarget => match (acts.barrier, acts.cleanup) {
            (Running, _) | (_, Running) => Step::Wait,
            (NotStarted | Failed, _) => Step::Barrier,
            (Succeeded, Succeeded) => stage_to(tablet, stage, RevertMigration, tr.session),
            (Succeeded, NotStarted | Failed) => Step::Cleanup(
                info.pending_replica()
                    .filter(|r| !ctx.excluded.contains(&r.node)),
            ),
        },
    }
}

/// The result of planning one pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Mutations to commit in one group0 command.
    pub updates: Vec<TabletUpdate>,
    /// Tablets joining this pass's global barrier.
    pub barrier: Vec<TabletId>,
    /// Tablets whose streaming starts (with their session).
    pub stream: Vec<(TabletId, SessionId)>,
    /// Cleanup RPCs to start: tablet, stage, target replica (`None`: skipped, excluded host).
    pub cleanup: Vec<(TabletId, Stage, Option<Replica>)>,
}

impl Plan {
    /// Nothing to do in this pass.
    pub fn is_idle(&self) -> bool {
        self.updates.is_empty()
            && self.barrier.is_empty()
            && self.stream.is_empty()
            && self.cleanup.is_empty()
    }
}

/// The coordinator's transient, in-memory per-tablet state (lost on failover, erased at
/// end/revert).
#[derive(Clone, Debug, Default)]
pub struct Pump {
    actions: BTreeMap<TabletId, TabletActions>,
}

impl Pump {
    /// A fresh pump (a new coordinator has no action state).
    pub fn new() -> Self {
        Self::default()
    }

    /// The action holders of a tablet.
    pub fn actions(&self, t: TabletId) -> Option<&TabletActions> {
        self.actions.get(&t)
    }

    /// Forget holders of tablets that left transition or changed stage.
    pub fn sync(&mut self, st: &TopologyState) {
        self.actions.retain(|t, a| {
            st.tablets
                .get(t)
                .and_then(|i| i.stage())
                .is_some_and(|s| s == a.stage)
        });
        for (t, info) in &st.tablets {
            if let Some(s) = info.stage() {
                self.actions
                    .entry(*t)
                    .or_insert_with(|| TabletActions::new(s));
            }
        }
    }

    /// Plan one pass over every tablet in transition, marking started actions running.
    pub fn plan(&mut self, st: &TopologyState, ctx: &DecideCtx) -> Plan {
        self.sync(st);
        let mut plan = Plan::default();
        let mut next_session = st.next_session;
        for (t, info) in &st.tablets {
            if info.transition.is_none() {
                continue;
            }
            let acts = self.actions.get_mut(t).expect("synced");
            match decide(*t, info, &mut *acts, ctx, SessionId(next_session)) {
                Step::Wait => {}
                Step::Barrier => {
                    acts.barrier = ActionStatus::Running;
                    plan.barrier.push(*t);
                }
                Step::Stream => {
                    acts.streaming = ActionStatus::Running;
                    plan.stream
                        .push((*t, info.session().expect("streaming has a session")));
                }
                Step::Cleanup(r) => {
                    acts.cleanup = ActionStatus::Running;
                    plan.cleanup.push((*t, acts.stage, r));
                }
                Step::Commit(u) => {
                    if let TabletUpdate::Stage {
                        to: Stage::WriteBothReadOld,
                        ..
                    } = &u
                    {
                        next_session += 1;
                    }
                    plan.updates.push(u);
                }
            }
        }
        plan
    }

    /// Report the end of an action started in `stage`. Ignored if the tablet moved on.
    pub fn report(&mut self, t: TabletId, stage: Stage, kind: ActionKind, ok: bool) {
        if let Some(a) = self.actions.get_mut(&t) {
            if a.stage == stage {
                *a.get_mut(kind) = if ok {
                    ActionStatus::Succeeded
                } else {
                    ActionStatus::Failed
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::ids::{ShardId, TableId};
    use crate::topology::state::{Transition, TransitionKind};

    fn r(n: u32) -> Replica {
        Replica {
            node: NodeId(n),
            shard: ShardId(0),
        }
    }

    fn state_at(stage: Stage, session: Option<u64>) -> TopologyState {
        let mut st = TopologyState::initial(BTreeMap::new(), vec![vec![r(1)]]);
        st.tablets
            .get_mut(&TabletId::new(TableId::user(0), 0))
            .unwrap()
            .transition = Some(Transition {
            kind: TransitionKind::Migration,
            stage,
            new_replicas: vec![r(2)],
            session: session.map(SessionId),
            migration: 1,
        });
        st.next_session = 7;
        st
    }

    const T: TabletId = TabletId::new(TableId::user(0), 0);

    #[test]
    fn barrier_gates_forward_edges_and_opens_session() {
        let st = state_at(Stage::AllowWriteBothReadOld, None);
        let mut p = Pump::new();
        let ctx = DecideCtx::default();
        let plan = p.plan(&st, &ctx);
        assert_eq!(plan.barrier, vec![T]);
        assert!(plan.updates.is_empty());
        assert!(p.plan(&st, &ctx).is_idle(), "barrier running: wait");
        p.report(T, Stage::AllowWriteBothReadOld, ActionKind::Barrier, true);
        let plan = p.plan(&st, &ctx);
        assert_eq!(
            plan.updates,
            vec![TabletUpdate::Stage {
                tablet: T,
                from: Stage::AllowWriteBothReadOld,
                to: Stage::WriteBothReadOld,
                session: Some(SessionId(7)),
            }]
        );
    }

    #[test]
    fn barrier_state_is_per_stage() {
        let mut p = Pump::new();
        let ctx = DecideCtx::default();
        let st = state_at(Stage::UseNew, None);
        p.plan(&st, &ctx);
        p.report(T, Stage::UseNew, ActionKind::Barrier, true);
        let st2 = state_at(Stage::Cleanup, None);
        // A late report for the old stage does not satisfy the new one.
        p.report(T, Stage::UseNew, ActionKind::Barrier, true);
        let plan = p.plan(&st2, &ctx);
        assert_eq!(plan.cleanup, vec![(T, Stage::Cleanup, Some(r(1)))]);
    }

    #[test]
    fn streaming_retried_with_same_session_without_reason() {
        let st = state_at(Stage::Streaming, Some(3));
        let mut p = Pump::new();
        let ctx = DecideCtx::default();
        assert_eq!(p.plan(&st, &ctx).stream, vec![(T, SessionId(3))]);
        p.report(T, Stage::Streaming, ActionKind::Streaming, false);
        let plan = p.plan(&st, &ctx);
        assert_eq!(plan.stream, vec![(T, SessionId(3))], "retry, same session");
        assert!(plan.updates.is_empty());
        p.report(T, Stage::Streaming, ActionKind::Streaming, true);
        let plan = p.plan(&st, &ctx);
        assert_eq!(
            plan.updates,
            vec![TabletUpdate::Stage {
                tablet: T,
                from: Stage::Streaming,
                to: Stage::WriteBothReadNew,
                session: None
            }]
        );
    }

    #[test]
    fn streaming_rolls_back_for_a_reason() {
        for ctx in [
            DecideCtx {
                move_to_cleanup: true,
                ..Default::default()
            },
            DecideCtx {
                excluded: [NodeId(2)].into_iter().collect(),
                ..Default::default()
            },
        ] {
            let st = state_at(Stage::Streaming, Some(3));
            let mut p = Pump::new();
            p.plan(&st, &ctx);
            p.report(T, Stage::Streaming, ActionKind::Streaming, false);
            let plan = p.plan(&st, &ctx);
            assert_eq!(
                plan.updates,
                vec![TabletUpdate::Stage {
                    tablet: T,
                    from: Stage::Streaming,
                    to: Stage::CleanupTarget,
                    session: None
                }]
            );
        }
    }

    #[test]
    fn cleanup_target_barrier_then_cleanup_pending_then_revert() {
        let st = state_at(Stage::CleanupTarget, None);
        let mut p = Pump::new();
        let ctx = DecideCtx::default();
        assert_eq!(p.plan(&st, &ctx).barrier, vec![T]);
        p.report(T, Stage::CleanupTarget, ActionKind::Barrier, true);
        assert_eq!(
            p.plan(&st, &ctx).cleanup,
            vec![(T, Stage::CleanupTarget, Some(r(2)))]
        );
        p.report(T, Stage::CleanupTarget, ActionKind::Cleanup, true);
        let plan = p.plan(&st, &ctx);
        assert!(matches!(
            plan.updates[0],
            TabletUpdate::Stage {
                to: Stage::RevertMigration,
                ..
            }
        ));
    }

    #[test]
    fn no_rollback_after_reads_moved() {
        let ctx = DecideCtx {
            excluded: [NodeId(2)].into_iter().collect(),
            ..Default::default()
        };
        let st = state_at(Stage::UseNew, None);
        let mut p = Pump::new();
        p.plan(&st, &ctx);
        p.report(T, Stage::UseNew, ActionKind::Barrier, false);
        assert_eq!(p.plan(&st, &ctx).barrier, vec![T], "retry");
    }

    #[test]
    fn end_migration_finishes_after_barrier() {
        let st = state_at(Stage::EndMigration, None);
        let mut p = Pump::new();
        let ctx = DecideCtx::default();
        p.plan(&st, &ctx);
        p.report(T, Stage::EndMigration, ActionKind::Barrier, true);
        assert_eq!(
            p.plan(&st, &ctx).updates,
            vec![TabletUpdate::Finish {
                tablet: T,
                from: Stage::EndMigration
            }]
        );
    }
}
