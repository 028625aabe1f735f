//! The view building coordinator (SPEC §6.5, §6.6 coordinator side, §6.8): one per cluster,
//! on the group0 leader — the topology coordinator's node — bound to the Raft term in which it
//! started. It builds one base table at a time.
//!
//! Each iteration: `update_state` ([`plan_update`]: statuses, the processed base) committed as
//! one guarded group0 command in its term; then, for every replica with tasks of the processed
//! base, collect the finished RPC, skip dead hosts, select a batch
//! ([`ViewBuildingState::select_batch`]: one tablet not in transition *in this coordinator's
//! group0 state*) and send `work_on_view_building_tasks`; every 200 ms the finished-task GC;
//! then wait for an apply, an RPC completion or a timeout. At most one RPC is in flight per
//! replica; a failed RPC is logged, slept on (1 s) and retried by the next iteration, which the
//! worker turns into an attach or an immediate answer.
//!
//! Mutants: [`STAGING_PROCESSED_EARLY`], [`SUCCESS_BEFORE_STAGING_DONE`], and the coordinator
//! half of [`super::worker::TWO_BATCHES_PER_SHARD`].

use super::events::ViewEvent;
use super::state::{plan_update, TaskId, TaskKind, ViewBuildingState, ViewChange, ViewOp};
use super::worker::{next_rpc_id, WorkOnViewBuildingTasks, WorkRequest, TWO_BATCHES_PER_SHARD};
use crate::node::NodeHandle;
use crate::topology::group0::Group0Error;
use crate::topology::ids::{NodeId, Replica};
use crate::topology::state::{ApplyOutcome, Group0Command};
use futures::future::select;
use sim::sync::Notify;
use sim::time::{sleep, Duration};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Mutant: the selector hands out `process_staging` tasks of tablets in transition, so staging
/// sstables are processed on the pending replica, whose view updates are dropped (#19149
/// problem 2, V8).
pub const STAGING_PROCESSED_EARLY: &str = "vb-staging-processed-early";
/// Mutant: `update_state` marks a view `SUCCESS` while `process_staging` tasks of its base
/// remain (V5).
pub const SUCCESS_BEFORE_STAGING_DONE: &str = "vb-success-before-staging-done";

/// How often the finished-task GC runs.
pub const GC_INTERVAL_MS: u64 = 200;
/// Sleep after a failed RPC before the next attempt (upstream: 1 s).
pub const RPC_FAILURE_SLEEP_MS: u64 = 1_000;
/// Timeout of one `work_on_view_building_tasks` call. A batch may run longer: the call then
/// fails and its retry attaches to the batch. (A request lost in a partition would otherwise
/// hold the replica's one RPC slot until the timeout: the simulated transport drops messages
/// where TCP would retransmit or break the connection.)
pub const RPC_TIMEOUT_MS: u64 = 10_000;

/// One in-flight or finished RPC: `None` while running, then `Some(result)`.
type Remote = Rc<RefCell<Option<Option<Vec<TaskId>>>>>;

/// The in-flight RPCs: (replica, slot) → (its task ids, its result).
type RemoteWork = BTreeMap<(Replica, u32), (Vec<TaskId>, Remote)>;

struct Instance {
    term: u64,
    alive: Cell<bool>,
    remote: RefCell<RemoteWork>,
    finished: RefCell<BTreeSet<TaskId>>,
    wake: Notify,
}

/// The coordinator loop of a node: whenever it leads group0, run a coordinator of that term.
pub async fn run(h: Rc<NodeHandle>) {
    loop {
        if h.g0.is_leader() {
            let term = h.g0.term();
            run_term(&h, term).await;
        }
        let changed = h.g0.changed();
        let _ = select(
            Box::pin(changed),
            Box::pin(sleep(Duration::from_millis(50))),
        )
        .await;
    }
}

fn leads(h: &NodeHandle, term: u64) -> bool {
    h.g0.is_leader() && h.g0.term() == term && h.sim.is_up(h.node)
}

/// Commit `ops` as one guarded change in `term`. `Err` when the term changed.
async fn commit(h: &NodeHandle, term: u64, base: u64, ops: Vec<ViewOp>) -> Result<bool, ()> {
    let cmd = Group0Command::View(ViewChange {
        base_state_id: base,
        term: Some(term),
        ops,
        origin: "view building coordinator".into(),
    });
    match h.g0.propose_in_term(term, cmd).await {
        Ok(index) => {
            Ok(h.g0.with_state(|s| s.outcome(index) == Some(&ApplyOutcome::Applied)))
        }
        Err(Group0Error::TermChanged) => Err(()),
        Err(Group0Error::Unavailable) => {
            sleep(Duration::from_millis(100)).await;
            Ok(false)
        }
    }
}

async fn run_term(h: &Rc<NodeHandle>, term: u64) {
    tracing::info!(term, "view building coordinator started in term {term}");
    h.sim
        .record(Some(h.node), ViewEvent::VbCoordinatorStarted { term });
    let inst = Rc::new(Instance {
        term,
        alive: Cell::new(true),
        remote: RefCell::new(BTreeMap::new()),
        finished: RefCell::new(BTreeSet::new()),
        wake: Notify::new(),
    });
    let ignore_staging = h.sim.mutant(SUCCESS_BEFORE_STAGING_DONE);
    let mut last_gc = 0u64;
    while leads(h, term) {
        // The guard: the state the decisions are made on (the topology coordinator's fence
        // must be in place before this term may commit).
        let (sid, vb, nodes, fenced) = h.g0.with_state(|s| {
            let nodes: Vec<NodeId> = s
                .nodes
                .keys()
                .copied()
                .filter(|n| !s.excluded.contains(n))
                .collect();
            (
                s.state_id,
                s.views.clone(),
                nodes,
                s.coordinator_term == term,
            )
        });
        if !fenced {
            wait(h, &inst).await;
            continue;
        }
        let ops = plan_update(&vb, &nodes, ignore_staging);
        note_staging_waits(h, &vb, &nodes, &ops);
        if !ops.is_empty() {
            if ops.iter().any(|o| {
                matches!(
                    o,
                    ViewOp::SetStatus {
                        status: super::state::BuildStatus::Success,
                        ..
                    }
                )
            }) {
                h.sim.mark("view built");
            }
            match commit(h, term, sid, ops).await {
                Err(()) => break,
                Ok(_) => continue,
            }
        }
        let now = h.sim.now().0;
        if now >= last_gc + GC_INTERVAL_MS * 1_000_000 {
            last_gc = now;
            let ids = vb.gc(&inst.finished.borrow());
            if !ids.is_empty() {
                tracing::debug!(term, "view building GC deletes finished tasks {ids:?}");
                match commit(
                    h,
                    term,
                    sid,
                    vec![ViewOp::DeleteFinished { ids: ids.clone() }],
                )
                .await
                {
                    Err(()) => break,
                    Ok(true) => {
                        let mut f = inst.finished.borrow_mut();
                        for id in ids {
                            f.remove(&id);
                        }
                        continue;
                    }
                    Ok(false) => continue,
                }
            }
        }
        work_on_view_building(h, &inst, &vb);
        wait(h, &inst).await;
    }
    inst.alive.set(false);
    tracing::info!(term, "view building coordinator of term {term} stopped");
}

/// Coverage of the two waits staging imposes (SPEC §6.10), as the coordinator decides: a
/// `process_staging` task held back because its tablet is in transition in this
/// coordinator's state, and a view whose `build_range` tasks are all done kept out of
/// `SUCCESS` by the staging tasks of its base.
fn note_staging_waits(h: &NodeHandle, vb: &ViewBuildingState, nodes: &[NodeId], ops: &[ViewOp]) {
    let Some(base) = vb.processing_base else {
        return;
    };
    let staging: Vec<_> = vb
        .tasks
        .values()
        .filter(|t| t.base == base && t.kind == TaskKind::ProcessStaging)
        .collect();
    if staging.is_empty() {
        return;
    }
    let held = h.g0.with_state(|s| {
        staging.iter().any(|t| {
            !t.aborted
                && s.tablets
                    .get(&t.tablet)
                    .is_some_and(|i| i.transition.is_some())
        })
    });
    if held {
        h.sim
            .mark("staging task held back: its tablet is in transition");
    }
    let waits = vb.views_of(base).into_iter().any(|view| {
        !vb.tasks.values().any(|t| t.view == Some(view))
            && !ops.iter().any(|o| {
                matches!(o, ViewOp::SetStatus { view: v, status: super::state::BuildStatus::Success, .. } if *v == view)
            })
            && !vb.built_on(view, nodes)
    });
    if waits {
        h.sim
            .mark("view success waited for the staging tasks of its base");
    }
}

async fn wait(h: &NodeHandle, inst: &Instance) {
    let changed = h.g0.changed();
    let woken = inst.wake.notified();
    let _ = select(
        Box::pin(select(Box::pin(changed), Box::pin(woken))),
        Box::pin(sleep(Duration::from_millis(GC_INTERVAL_MS))),
    )
    .await;
}

/// SPEC §6.5 step 2.
fn work_on_view_building(h: &Rc<NodeHandle>, inst: &Rc<Instance>, vb: &ViewBuildingState) {
    let slots = if h.sim.mutant(TWO_BATCHES_PER_SHARD) {
        2
    } else {
        1
    };
    let (tablets, applied) =
        h.g0.with_state(|s| (s.tablets.clone(), h.g0.applied_index()));
    let mut replicas = vb.replicas_with_work();
    replicas.extend(inst.remote.borrow().keys().map(|(r, _)| *r));
    for r in replicas {
        for slot in 0..slots {
            // Collect a finished RPC; skip a running one.
            let entry = inst.remote.borrow().get(&(r, slot)).cloned();
            if let Some((_, res)) = entry {
                match res.borrow().clone() {
                    None => continue,
                    Some(done) => {
                        inst.finished.borrow_mut().extend(done.unwrap_or_default());
                    }
                }
                inst.remote.borrow_mut().remove(&(r, slot));
            }
            if !h.sim.is_up(r.node) {
                continue;
            }
            let mut exclude = inst.finished.borrow().clone();
            for (tasks, _) in inst.remote.borrow().values() {
                exclude.extend(tasks.iter().copied());
            }
            let tasks =
                vb.select_batch(&tablets, r, &exclude, h.sim.mutant(STAGING_PROCESSED_EARLY));
            if tasks.is_empty() {
                continue;
            }
            send(h, inst, r, slot, tasks, applied);
        }
    }
}

fn send(
    h: &Rc<NodeHandle>,
    inst: &Rc<Instance>,
    r: Replica,
    slot: u32,
    tasks: Vec<TaskId>,
    applied: u64,
) {
    let term = inst.term;
    let rpc = next_rpc_id(&h.sim);
    tracing::info!(term, replica = %r, "view building coordinator of term {term} sends tasks {tasks:?} to {r} (rpc {rpc})");
    h.sim.record(
        Some(h.node),
        ViewEvent::WorkSent {
            term,
            applied,
            replica: r,
            tasks: tasks.clone(),
            rpc,
        },
    );
    let res: Remote = Rc::new(RefCell::new(None));
    inst.remote
        .borrow_mut()
        .insert((r, slot), (tasks.clone(), res.clone()));
    let (h, inst) = (h.clone(), inst.clone());
    sim::spawn(async move {
        let out = h
            .sim
            .net()
            .call::<WorkOnViewBuildingTasks>(
                h.node,
                r.node,
                WorkRequest {
                    term,
                    shard: r.shard,
                    tasks,
                    rpc,
                },
                Duration::from_millis(RPC_TIMEOUT_MS),
            )
            .await;
        if !inst.alive.get() {
            return;
        }
        h.sim.record(
            Some(h.node),
            ViewEvent::WorkAnswered {
                term,
                replica: r,
                finished: out.as_ref().cloned().unwrap_or_default(),
                ok: out.is_ok(),
            },
        );
        let out = match out {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::info!(term, replica = %r, "work_on_view_building_tasks to {r} failed: {e}; retried after {RPC_FAILURE_SLEEP_MS} ms");
                h.sim.mark("view building RPC failed, retried");
                sleep(Duration::from_millis(RPC_FAILURE_SLEEP_MS)).await;
                None
            }
        };
        *res.borrow_mut() = Some(out);
        inst.wake.notify();
    });
}
