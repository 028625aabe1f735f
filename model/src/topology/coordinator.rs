//! The topology coordinator (SPEC §1.7, §1.9): a fiber on the group0 leader, bound to the term
//! in which it started, driving every tablet transition from group0 state only.
//!
//! On start it commits `fence_previous_coordinator`, then loops over passes: read the state,
//! let the pure [`Pump`] decide, commit all mutations of the pass (plus the balancer's new
//! migrations) as one guarded group0 command in its term, start background streaming and
//! cleanup actions, and run one global tablet barrier for every tablet that needs one. A failed
//! action is reported after the back-off. Promise kept here: work of an old term never takes
//! effect — the loop stops when the term changes, every commit is `propose_in_term`, and the
//! guard on apply rejects commands of fenced terms. The `coordinator-ignores-term` mutant drops
//! all three.

use super::balancer;
use super::barrier::global_tablet_barrier;
use super::events::TopologyEvent;
use super::group0::Group0Error;
use super::ids::{Replica, SessionId, TabletId};
use super::pump::{ActionKind, DecideCtx, Pump};
use super::stage::Stage;
use super::state::{ApplyOutcome, Group0Command, TopologyChange};
use super::{cleanup::TabletCleanup, stream::TabletStreamData};
use crate::node::NodeHandle;
use futures::future::select;
use sim::sync::Notify;
use sim::time::{sleep, Duration};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// The coordinator loop of a node: whenever this node leads group0, run a coordinator bound to
/// that term.
pub async fn run(svc: Rc<NodeHandle>) {
    loop {
        if svc.g0.is_leader() {
            let term = svc.g0.term();
            run_term(&svc, term).await;
        }
        let changed = svc.g0.changed();
        let _ = select(
            Box::pin(changed),
            Box::pin(sleep(Duration::from_millis(50))),
        )
        .await;
    }
}

/// Transient state of one coordinator incarnation (one term).
struct Instance {
    term: u64,
    alive: Cell<bool>,
    pump: RefCell<Pump>,
    wake: Notify,
    barrier_seq: Cell<u64>,
}

/// Mutant: the coordinator skips the "advance fence version" commit after a barrier, so
/// replicas keep admitting writes routed at versions the barrier cut off.
pub const FENCE_VERSION_NOT_ADVANCED: &str = "fence-version-not-advanced";

/// Injection that makes the streaming action fail and the failure a rollback reason (SPEC
/// §1.5); upstream consults it inside the streaming action and again when deciding.
pub const STREAM_TABLET_MOVE_TO_CLEANUP: &str = "stream_tablet_move_to_cleanup";

fn leads(svc: &NodeHandle, term: u64) -> bool {
    svc.g0.is_leader() && svc.g0.term() == term
}

async fn run_term(svc: &Rc<NodeHandle>, term: u64) {
    let ignores_term = svc.sim.mutant("coordinator-ignores-term");
    svc.sim
        .record(Some(svc.node), TopologyEvent::CoordinatorStarted { term });
    tracing::info!(
        term,
        "coordinator started: this node leads group0 in term {term}; fencing older terms"
    );
    let fenced = svc
        .g0
        .propose_in_term(term, Group0Command::FencePreviousCoordinator { term })
        .await;
    let fenced_ok = match fenced {
        Ok(index) => svc
            .g0
            .with_state(|s| s.outcome(index) == Some(&ApplyOutcome::Applied)),
        Err(_) => false,
    };
    if !fenced_ok {
        tracing::info!(term, "coordinator of term {term} stops: fence_previous_coordinator was not applied ({fenced:?})");
        svc.sim
            .record(Some(svc.node), TopologyEvent::CoordinatorStopped { term });
        return;
    }
    tracing::info!(
        term,
        "coordinator of term {term} in charge: older coordinators are fenced"
    );
    if svc.g0.with_state(|s| s.transition_state().is_some()) {
        tracing::info!(
            term,
            "coordinator of term {term} resumes a migration left by an older term"
        );
        svc.sim.mark("coordinator resumed a migration");
    }
    let inst = Rc::new(Instance {
        term,
        alive: Cell::new(true),
        pump: RefCell::new(Pump::new()),
        wake: Notify::new(),
        barrier_seq: Cell::new(0),
    });
    loop {
        if !ignores_term && !leads(svc, term) {
            break;
        }
        if !svc.sim.is_up(svc.node) {
            break;
        }
        let busy = pass(svc, &inst, ignores_term).await;
        if busy == PassResult::Stop {
            break;
        }
        if busy == PassResult::Idle {
            let changed = svc.g0.changed();
            let woken = inst.wake.notified();
            let _ = select(
                Box::pin(select(Box::pin(changed), Box::pin(woken))),
                Box::pin(sleep(Duration::from_millis(500))),
            )
            .await;
        }
    }
    inst.alive.set(false);
    tracing::info!(
        term,
        "coordinator of term {term} stopped: leadership lost or term changed"
    );
    svc.sim
        .record(Some(svc.node), TopologyEvent::CoordinatorStopped { term });
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PassResult {
    Busy,
    Idle,
    Stop,
}

impl Instance {
    /// The next barrier id of this term (every `raft_topology_cmd` of the term shares it).
    fn next_barrier(&self) -> u64 {
        let seq = self.barrier_seq.get() + 1;
        self.barrier_seq.set(seq);
        self.term * 1_000_000 + seq
    }
}

/// One pass: a node operation (the join path) if one is running or may start, else
/// `handle_tablet_migration`.
async fn pass(svc: &Rc<NodeHandle>, inst: &Rc<Instance>, ignores_term: bool) -> PassResult {
    let term = inst.term;
    let (base, st) = svc.g0.with_state(|s| (s.state_id, s.clone()));
    if let Some(js) = super::join::decide(&st) {
        let next = || inst.next_barrier();
        return match super::join::step(svc, term, js, &next, ignores_term).await {
            super::join::StepResult::Busy => PassResult::Busy,
            super::join::StepResult::Stop => PassResult::Stop,
        };
    }
    let ctx = DecideCtx {
        excluded: st.excluded.clone(),
        move_to_cleanup: svc.inj.is_enabled(svc.node, STREAM_TABLET_MOVE_TO_CLEANUP),
        fallback_cleanup: svc.cfg.tablets_intermediate_fallback_cleanup,
        rollback_skips_barrier: svc.sim.mutant(super::pump::ROLLBACK_SKIPS_BARRIER),
        keep_session_after_streaming: svc
            .sim
            .mutant(super::pump::SESSION_NOT_DELETED_AFTER_STREAMING),
    };
    let mut plan = inst.pump.borrow_mut().plan(&st, &ctx);
    let mut updates = std::mem::take(&mut plan.updates);
    // A pending topology request (a join) preempts the balancer (SPEC §1.7).
    if updates.is_empty() && plan.barrier.is_empty() && !super::join::preempts_balancing(&st) {
        updates.extend(balancer::plan(&st, svc.cfg.balancer_max_concurrent));
    }
    for u in &updates {
        if let super::state::TabletUpdate::Stage {
            from: Stage::Streaming,
            to: Stage::CleanupTarget,
            ..
        } = u
        {
            svc.sim.mark("streaming rolled back to cleanup_target");
        }
        if let super::state::TabletUpdate::Stage {
            to: Stage::WriteBothReadOldFallbackCleanup,
            ..
        } = u
        {
            svc.sim
                .mark("rolled back through write_both_read_old_fallback_cleanup");
        }
    }
    let finished: Vec<Stage> = updates
        .iter()
        .filter_map(|u| match u {
            super::state::TabletUpdate::Finish { from, .. } => Some(*from),
            _ => None,
        })
        .collect();
    let mut committed = false;
    if !updates.is_empty() {
        let cmd = Group0Command::Change(TopologyChange {
            base_state_id: base,
            term: Some(term),
            updates,
            fence_version: None,
            set_balancing: None,
            exclude: vec![],
            origin: "coordinator".into(),
        });
        let res = if ignores_term {
            svc.g0.propose(cmd).await
        } else {
            svc.g0.propose_in_term(term, cmd).await
        };
        match res {
            Err(Group0Error::TermChanged) => {
                tracing::info!(
                    term,
                    "coordinator of term {term}: commit refused, the term changed"
                );
                return PassResult::Stop;
            }
            Err(Group0Error::Unavailable) => {
                tracing::debug!(
                    term,
                    "coordinator commit failed: group0 unavailable; retrying in 100 ms"
                );
                sleep(Duration::from_millis(100)).await;
                return PassResult::Busy;
            }
            Ok(index) => {
                committed = svc
                    .g0
                    .with_state(|s| s.outcome(index) == Some(&ApplyOutcome::Applied));
                tracing::debug!(
                    term,
                    index,
                    committed,
                    "coordinator pass committed at group0 index {index}"
                );
                if committed {
                    for st in &finished {
                        svc.sim.mark(match st {
                            Stage::EndMigration => "migration completed",
                            _ => "migration reverted",
                        });
                    }
                }
            }
        }
    }
    for (t, session) in plan.stream.clone() {
        start_streaming(svc, inst, &st, t, session);
    }
    for (t, stage, r) in plan.cleanup.clone() {
        start_cleanup(svc, inst, t, stage, r);
    }
    if !plan.barrier.is_empty() {
        let id = inst.next_barrier();
        let version = svc.g0.with_state(|s| s.version);
        let stages: Vec<(TabletId, Stage)> = plan
            .barrier
            .iter()
            .filter_map(|t| st.tablets[t].stage().map(|s| (*t, s)))
            .collect();
        let mut ok = global_tablet_barrier(svc, term, id, plan.barrier.clone()).await;
        if ok {
            // SPEC §2.4 step 5: the fence is its own group0 commit, right after the barrier.
            ok = advance_fence_version(svc, term, version, ignores_term).await;
        }
        if !ok {
            tracing::info!(
                term,
                barrier = id,
                "barrier {id} at v{version} failed; backing off {} ms before the pump decides",
                svc.cfg.action_failure_backoff_ms
            );
            sleep(Duration::from_millis(svc.cfg.action_failure_backoff_ms)).await;
        }
        if inst.alive.get() {
            let mut pump = inst.pump.borrow_mut();
            for (t, s) in stages {
                pump.report(t, s, ActionKind::Barrier, ok);
            }
        }
        return PassResult::Busy;
    }
    if committed || !plan.stream.is_empty() || !plan.cleanup.is_empty() {
        PassResult::Busy
    } else {
        PassResult::Idle
    }
}

/// Commit `fence_version := version` as its own guarded group0 change ("advance fence
/// version"), retaking the guard on a concurrent modification. Returns whether the fence is
/// at least `version` when it returns; a failure fails the barrier action (it is retried).
pub(super) async fn advance_fence_version(
    svc: &Rc<NodeHandle>,
    term: u64,
    version: u64,
    ignores_term: bool,
) -> bool {
    if svc.sim.mutant(FENCE_VERSION_NOT_ADVANCED) {
        return true;
    }
    for _ in 0..5 {
        if !ignores_term && !leads(svc, term) {
            return false;
        }
        let (base, fence) = svc.g0.with_state(|s| (s.state_id, s.fence_version));
        if fence >= version {
            return true;
        }
        let cmd = Group0Command::Change(TopologyChange {
            base_state_id: base,
            term: Some(term),
            updates: vec![],
            fence_version: Some(version),
            set_balancing: None,
            exclude: vec![],
            origin: "advance fence version".into(),
        });
        let res = if ignores_term {
            svc.g0.propose(cmd).await
        } else {
            svc.g0.propose_in_term(term, cmd).await
        };
        match res {
            Ok(index) => {
                if svc
                    .g0
                    .with_state(|s| s.outcome(index) == Some(&ApplyOutcome::Applied))
                {
                    tracing::info!(term, version, "fence version advanced to v{version}");
                    return true;
                }
            }
            Err(Group0Error::TermChanged) => return false,
            Err(Group0Error::Unavailable) => sleep(Duration::from_millis(100)).await,
        }
    }
    false
}

fn start_streaming(
    svc: &Rc<NodeHandle>,
    inst: &Rc<Instance>,
    st: &super::state::TopologyState,
    tablet: TabletId,
    session: SessionId,
) {
    let Some(dst) = st.tablets[&tablet].pending_replica() else {
        inst.pump
            .borrow_mut()
            .report(tablet, Stage::Streaming, ActionKind::Streaming, false);
        return;
    };
    let (svc, inst) = (svc.clone(), inst.clone());
    tracing::info!(%tablet, %session, dst = %dst, "streaming {tablet} to pending replica {dst} under session {session}: tablet_stream_data sent");
    sim::spawn(async move {
        // Upstream throws inside the streaming action too: no tablet_stream_data is sent.
        let res = if svc.inj.is_enabled(svc.node, STREAM_TABLET_MOVE_TO_CLEANUP) {
            svc.inj
                .enter(&svc.sim, svc.node, STREAM_TABLET_MOVE_TO_CLEANUP);
            tracing::info!(%tablet, "streaming {tablet}: {STREAM_TABLET_MOVE_TO_CLEANUP} injected, no tablet_stream_data sent");
            Err(sim::RpcError::Remote(STREAM_TABLET_MOVE_TO_CLEANUP.into()))
        } else {
            svc.sim
                .net()
                .call::<TabletStreamData>(
                    svc.node,
                    dst.node,
                    tablet,
                    Duration::from_millis(svc.cfg.stream_timeout_ms),
                )
                .await
        };
        match &res {
            Ok(rows) => {
                tracing::info!(%tablet, %session, rows, "streaming {tablet} under session {session} succeeded ({rows} rows)")
            }
            Err(e) => {
                tracing::info!(%tablet, %session, "streaming {tablet} under session {session} failed ({e}); after {} ms the pump retries under the same session, or rolls back if a replica is excluded", svc.cfg.action_failure_backoff_ms)
            }
        }
        if res.is_err() {
            svc.sim.mark("streaming failed, will retry or roll back");
            sleep(Duration::from_millis(svc.cfg.action_failure_backoff_ms)).await;
        }
        if inst.alive.get() {
            inst.pump.borrow_mut().report(
                tablet,
                Stage::Streaming,
                ActionKind::Streaming,
                res.is_ok(),
            );
            inst.wake.notify();
        }
    });
}

fn start_cleanup(
    svc: &Rc<NodeHandle>,
    inst: &Rc<Instance>,
    tablet: TabletId,
    stage: Stage,
    target: Option<Replica>,
) {
    let (svc, inst) = (svc.clone(), inst.clone());
    tracing::info!(%tablet, %stage, target = %sim::log::opt(&target), "cleanup of {tablet} in {stage} on {} started", sim::log::opt(&target));
    sim::spawn(async move {
        let ok = match target {
            None => true, // excluded host: skipped
            Some(r) => {
                let res = svc
                    .sim
                    .net()
                    .call::<TabletCleanup>(
                        svc.node,
                        r.node,
                        tablet,
                        Duration::from_millis(svc.cfg.stream_timeout_ms),
                    )
                    .await;
                if let Err(e) = &res {
                    tracing::info!(%tablet, %stage, "cleanup of {tablet} on {r} failed ({e}); reported after the back-off");
                    sleep(Duration::from_millis(svc.cfg.action_failure_backoff_ms)).await;
                }
                res.is_ok()
            }
        };
        if inst.alive.get() {
            inst.pump
                .borrow_mut()
                .report(tablet, stage, ActionKind::Cleanup, ok);
            inst.wake.notify();
        }
    });
}
