//! The node-local `view_building_worker` (SPEC §6.6, §6.7): the `work_on_view_building_tasks`
//! handler, one batch slot per shard, batch execution (`build_range`, `process_staging`) and
//! the state observer that aborts batches whose tasks were aborted or deleted.
//!
//! Promises kept here:
//! - at most one running batch per shard (V2); a retried or failover RPC whose ids are in the
//!   running batch *attaches* to it (V6), and ids already in `completed_tasks` are answered at
//!   once without running anything;
//! - an RPC whose term differs from the worker's Raft term after its read barrier is refused
//!   ("Invalid raft term", V7);
//! - a batch never reports a task done that its worker has seen aborted or deleted: the
//!   observer removes such tasks on every group0 apply and aborts an emptied batch, and a
//!   batch re-checks its tasks against the applied state before it reports (V1, V3).
//!
//! Mutants: [`RPC_IGNORES_TERM`], [`RETRY_STARTS_NEW_BATCH`], [`TWO_BATCHES_PER_SHARD`],
//! [`FORGETS_COMPLETED`] (worker side; the coordinator sends several RPCs per shard under the same name).

use super::data::paired_or_drop;
use super::events::{BatchEnd, ViewEvent};
use super::staging::StagingLists;
use super::state::{TaskId, TaskKind, ViewBuildingState};
use crate::node::NodeHandle;
use crate::schema::TableId;
use crate::topology::data::Storage;
use crate::topology::ids::{Replica, ShardId, TabletId};
use sim::sync::{AbortSource, Notify};
use sim::time::{sleep, Duration};
use sim::{RpcError, Verb};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Mutant: the worker skips the term check after its read barrier (V7).
pub const RPC_IGNORES_TERM: &str = "vb-rpc-ignores-term";
/// Mutant: a retried RPC whose ids are in the running batch starts a second batch for them
/// instead of attaching (V2, V6).
pub const RETRY_STARTS_NEW_BATCH: &str = "vb-retry-starts-new-batch";
/// Mutant: the coordinator sends up to two RPCs per shard at once (one per tablet) and the
/// worker starts a second batch for ids not in the running one instead of refusing (V2).
pub const TWO_BATCHES_PER_SHARD: &str = "vb-two-batches-per-shard";

/// Mutant: the worker skips the `completed_tasks` check (step 2), so an RPC for a task it
/// already finished (a retry after a lost answer) runs the task again (V6).
pub const FORGETS_COMPLETED: &str = "vb-forgets-completed";

/// Injection: a `build_range` batch waits here for a message before it reads (optional
/// parameter `token`: only batches of that tablet index wait).
pub const PAUSE_BUILD_RANGE: &str = "view_building_worker_pause_build_range_task";
/// Injection: `do_build_range` fails (the batch retries with back-off).
pub const BUILD_RANGE_FAIL: &str = "do_build_range_fail";

/// Pause between two rows a batch reads (the cost of a build, so that a migration or a
/// failover can overlap it).
pub const ROW_INTERVAL_MS: u64 = 2;
/// First back-off after a failed batch attempt (upstream: 1 s, doubling up to 5 min).
pub const RETRY_MIN_MS: u64 = 1_000;
/// Longest back-off (upstream: 5 min; shortened for the simulation).
pub const RETRY_MAX_MS: u64 = 8_000;

/// `work_on_view_building_tasks(term, shard, task_ids) → completed_ids`.
pub struct WorkOnViewBuildingTasks;
/// Request of [`WorkOnViewBuildingTasks`].
#[derive(Clone, Debug)]
pub struct WorkRequest {
    /// The coordinator's term.
    pub term: u64,
    /// Target shard.
    pub shard: ShardId,
    /// Task ids.
    pub tasks: Vec<TaskId>,
    /// Test instrumentation, not in upstream's RPC: a run-unique id of this call, so that the
    /// history can say which RPC started a batch (the worker only records it).
    pub rpc: u64,
}
impl Verb for WorkOnViewBuildingTasks {
    const NAME: &'static str = "work_on_view_building_tasks";
    type Req = WorkRequest;
    type Resp = Vec<TaskId>;
}

/// One batch on a worker shard.
pub struct Batch {
    id: u64,
    kind: TaskKind,
    base: TableId,
    tablet: TabletId,
    replica: Replica,
    tasks: RefCell<BTreeSet<TaskId>>,
    abort: AbortSource,
    end: Cell<Option<BatchEnd>>,
    done: Notify,
}

#[derive(Default)]
struct ShardWorker {
    batch: Option<Rc<Batch>>,
    completed: BTreeSet<TaskId>,
    processed_base: Option<TableId>,
}

/// The worker of one node incarnation.
pub struct Worker {
    incarnation: u32,
    shards: RefCell<Vec<ShardWorker>>,
    /// Shard 0's record of started `process_staging` tasks (upstream
    /// `_started_staging_tasks`): a task enters when a batch begins processing it and leaves
    /// only when the task is gone from group0 state, not when its batch ends. The registrator
    /// must not count such a task as a home for newly staged rows: it has read its staging list
    /// already, so rows staged after that would wait for a task that never comes.
    started_staging: RefCell<BTreeSet<TaskId>>,
}

#[derive(Default)]
struct Workers(RefCell<BTreeMap<sim::NodeId, Rc<Worker>>>);

#[derive(Default)]
struct BatchIds(Cell<u64>);

/// Run-unique ids of `work_on_view_building_tasks` calls (see [`WorkRequest::rpc`]).
#[derive(Default)]
struct RpcIds(Cell<u64>);

/// The next run-unique `work_on_view_building_tasks` call id.
pub fn next_rpc_id(sim: &sim::Sim) -> u64 {
    let ids = sim.ext::<RpcIds>();
    ids.0.set(ids.0.get() + 1);
    ids.0.get()
}

fn worker(h: &NodeHandle) -> Option<Rc<Worker>> {
    let w = h.sim.ext::<Workers>().0.borrow().get(&h.node).cloned()?;
    (w.incarnation == h.incarnation).then_some(w)
}

/// Has a batch of this node begun processing staging task `id` (the registrator's
/// "started")? True from the start of the batch's first attempt until the task leaves group0
/// state, whether or not the batch is still running.
pub fn started(h: &NodeHandle, id: TaskId) -> bool {
    worker(h).is_some_and(|w| w.started_staging.borrow().contains(&id))
}

fn remote(e: impl std::fmt::Display) -> RpcError {
    RpcError::Remote(e.to_string())
}

/// Start the worker of a node: register the verb, start the state observer, rediscover
/// staging lists.
pub fn serve(h: &Rc<NodeHandle>) {
    let w = Rc::new(Worker {
        incarnation: h.incarnation,
        shards: RefCell::new((0..h.cfg.shards).map(|_| ShardWorker::default()).collect()),
        started_staging: RefCell::default(),
    });
    h.sim
        .ext::<Workers>()
        .0
        .borrow_mut()
        .insert(h.node, w.clone());
    let s = h.clone();
    h.sim
        .net()
        .serve::<WorkOnViewBuildingTasks>(h.node, move |_from, req| {
            let (s, w) = (s.clone(), w.clone());
            Box::pin(async move { work_on(&s, &w, req).await })
        });
    sim::spawn(observer(h.clone()));
    super::staging::rediscover(h);
}

/// The handler (SPEC §6.6 worker side).
async fn work_on(
    h: &Rc<NodeHandle>,
    w: &Rc<Worker>,
    req: WorkRequest,
) -> Result<Vec<TaskId>, RpcError> {
    let shard = req.shard;
    if shard.0 >= h.cfg.shards {
        return Err(remote(format!("no shard {}", shard.0)));
    }
    let answered = |w: &Worker| -> Vec<TaskId> {
        let sh = w.shards.borrow();
        let c = &sh[shard.0 as usize].completed;
        req.tasks
            .iter()
            .filter(|t| c.contains(t))
            .copied()
            .collect()
    };
    // Step 2: any id already completed: answer that subset at once.
    let done = answered(w);
    if !done.is_empty() && !h.sim.mutant(FORGETS_COMPLETED) {
        h.sim.record(
            Some(h.node),
            ViewEvent::WorkAnsweredFromCompleted {
                shard,
                tasks: done.clone(),
            },
        );
        return Ok(done);
    }
    // Step 3: read barrier, then the term check.
    h.g0.read_barrier()
        .await
        .map_err(|e| remote(format!("{e:?}")))?;
    let worker_term = h.g0.term();
    if req.term != worker_term && !h.sim.mutant(RPC_IGNORES_TERM) {
        tracing::info!(term = req.term, worker_term, "work_on_view_building_tasks of term {} refused on shard {}: Invalid raft term (current {worker_term})", req.term, shard.0);
        h.sim.mark("stale-term view building RPC refused");
        h.sim.record(
            Some(h.node),
            ViewEvent::WorkRefused {
                shard,
                term: req.term,
                worker_term,
                reason: "Invalid raft term".into(),
            },
        );
        return Err(remote("Invalid raft term"));
    }
    let (vb, applied) = h.g0.with_state(|s| (s.views.clone(), h.g0.applied_index()));
    let me = Replica {
        node: h.node,
        shard,
    };
    // Step 4: the processed base changed: abort the running batch, forget completions.
    let running = {
        let mut sh = w.shards.borrow_mut();
        let sw = &mut sh[shard.0 as usize];
        if sw.processed_base != vb.processing_base {
            if let Some(b) = sw.batch.take() {
                b.abort.abort();
            }
            sw.completed.clear();
            sw.processed_base = vb.processing_base;
        }
        sw.batch.clone().filter(|b| b.end.get().is_none())
    };
    let batch = match running {
        Some(b) if b.tasks.borrow().iter().any(|t| req.tasks.contains(t)) => {
            if h.sim.mutant(RETRY_STARTS_NEW_BATCH) {
                start_batch(h, w, me, &req, &vb, applied, worker_term)?
            } else {
                // Step 6: the attach path.
                tracing::info!(
                    batch = b.id,
                    "work_on_view_building_tasks of term {} attached to running batch {} on {me}",
                    req.term,
                    b.id
                );
                h.sim.mark("retried RPC attached to running batch");
                h.sim.record(
                    Some(h.node),
                    ViewEvent::BatchAttached {
                        batch: b.id,
                        shard,
                        tasks: req.tasks.clone(),
                        term: req.term,
                        worker_term,
                    },
                );
                b
            }
        }
        Some(_) if !h.sim.mutant(TWO_BATCHES_PER_SHARD) => {
            return Err(remote("requested tasks are not in the running batch"));
        }
        // Step 5: no batch running.
        _ => start_batch(h, w, me, &req, &vb, applied, worker_term)?,
    };
    // Step 7: wait for the batch, then answer from completed_tasks.
    loop {
        let n = batch.done.notified();
        if batch.end.get().is_some() {
            break;
        }
        n.await;
    }
    Ok(answered(w))
}

#[allow(clippy::too_many_arguments)]
fn start_batch(
    h: &Rc<NodeHandle>,
    w: &Rc<Worker>,
    me: Replica,
    req: &WorkRequest,
    vb: &ViewBuildingState,
    applied: u64,
    worker_term: u64,
) -> Result<Rc<Batch>, RpcError> {
    let base = vb
        .processing_base
        .ok_or_else(|| remote("no base is processed"))?;
    let mut first = None;
    for id in &req.tasks {
        let t = vb
            .tasks
            .get(id)
            .filter(|t| t.base == base && t.replica == me && !t.aborted)
            .ok_or_else(|| remote(format!("{id} not found for {me}")))?;
        let key = (t.kind, t.tablet);
        if *first.get_or_insert(key) != key {
            return Err(remote("tasks of one batch share type and tablet"));
        }
    }
    let (kind, tablet) = first.ok_or_else(|| remote("no tasks requested"))?;
    let ids = h.sim.ext::<BatchIds>();
    ids.0.set(ids.0.get() + 1);
    let b = Rc::new(Batch {
        id: ids.0.get(),
        kind,
        base,
        tablet,
        replica: me,
        tasks: RefCell::new(req.tasks.iter().copied().collect()),
        abort: AbortSource::new(),
        end: Cell::new(None),
        done: Notify::new(),
    });
    tracing::info!(batch = b.id, %tablet, "batch {} of {kind:?} tasks {:?} started on {me} for {tablet}", b.id, req.tasks);
    h.sim.record(
        Some(h.node),
        ViewEvent::BatchStarted {
            batch: b.id,
            shard: me.shard,
            kind,
            base,
            tablet,
            tasks: req.tasks.clone(),
            applied,
            term: req.term,
            worker_term,
            rpc: req.rpc,
        },
    );
    w.shards.borrow_mut()[me.shard.0 as usize].batch = Some(b.clone());
    sim::spawn(run_batch(h.clone(), w.clone(), b.clone()));
    Ok(b)
}

/// Remove the batch's tasks that are gone or aborted in `vb`; abort it if none is left.
fn prune(h: &NodeHandle, b: &Batch, vb: &ViewBuildingState, applied: u64) {
    let removed: Vec<TaskId> = b
        .tasks
        .borrow()
        .iter()
        .filter(|id| vb.tasks.get(id).is_none_or(|t| t.aborted))
        .copied()
        .collect();
    if removed.is_empty() {
        return;
    }
    b.tasks.borrow_mut().retain(|t| !removed.contains(t));
    h.sim.mark("batch tasks removed (aborted or gone)");
    tracing::info!(
        batch = b.id,
        "batch {} on {}: tasks {removed:?} aborted or gone",
        b.id,
        b.replica
    );
    h.sim.record(
        Some(h.node),
        ViewEvent::BatchTasksRemoved {
            batch: b.id,
            tasks: removed,
            applied,
        },
    );
    if b.tasks.borrow().is_empty() {
        h.sim
            .mark("batch aborted: its tasks were aborted or deleted");
        b.abort.abort();
    }
}

/// The state observer: on every group0 apply, prune every running batch and forget started
/// staging tasks that are gone from the state (upstream `clear_started_staging_tasks`).
async fn observer(h: Rc<NodeHandle>) {
    loop {
        h.g0.changed().await;
        let Some(w) = worker(&h) else { return };
        let (vb, applied) = h.g0.with_state(|s| (s.views.clone(), h.g0.applied_index()));
        w.started_staging
            .borrow_mut()
            .retain(|id| vb.tasks.contains_key(id));
        let running: Vec<Rc<Batch>> = w
            .shards
            .borrow()
            .iter()
            .filter_map(|s| s.batch.clone())
            .collect();
        for b in running {
            if b.end.get().is_none() {
                prune(&h, &b, &vb, applied);
            }
        }
    }
}

/// Run a batch to its end, retrying failed attempts with back-off; record how it ended and
/// add its tasks to `completed_tasks` if it finished.
async fn run_batch(h: Rc<NodeHandle>, w: Rc<Worker>, b: Rc<Batch>) {
    let mut backoff = RETRY_MIN_MS;
    let end = loop {
        if b.abort.is_aborted() {
            break BatchEnd::Aborted;
        }
        match execute(&h, &w, &b).await {
            Ok(()) => break BatchEnd::Done,
            Err(e) => {
                if b.abort.is_aborted() {
                    break BatchEnd::Aborted;
                }
                tracing::info!(
                    batch = b.id,
                    "batch {} on {} failed ({e}); retrying in {backoff} ms",
                    b.id,
                    b.replica
                );
                h.sim.mark("view building batch failed, retried");
                let _ = sim::time::timeout(Duration::from_millis(backoff), b.abort.aborted()).await;
                backoff = (backoff * 2).min(RETRY_MAX_MS);
            }
        }
    };
    let (vb, applied) = h.g0.with_state(|s| (s.views.clone(), h.g0.applied_index()));
    let end = if end == BatchEnd::Done {
        prune(&h, &b, &vb, applied);
        if b.abort.is_aborted() {
            BatchEnd::Aborted
        } else {
            BatchEnd::Done
        }
    } else {
        end
    };
    let completed: Vec<TaskId> = match end {
        BatchEnd::Done => b.tasks.borrow().iter().copied().collect(),
        BatchEnd::Aborted => Vec::new(),
    };
    tracing::info!(
        batch = b.id,
        "batch {} on {} ended {end:?}; completed {completed:?}",
        b.id,
        b.replica
    );
    h.sim.record(
        Some(h.node),
        ViewEvent::BatchFinished {
            batch: b.id,
            shard: b.replica.shard,
            end,
            completed: completed.clone(),
            applied,
        },
    );
    {
        let mut sh = w.shards.borrow_mut();
        let sw = &mut sh[b.replica.shard.0 as usize];
        sw.completed.extend(completed);
        if sw.batch.as_ref().is_some_and(|x| x.id == b.id) {
            sw.batch = None;
        }
    }
    b.end.set(Some(end));
    b.done.notify();
}

/// One attempt of a batch: `do_build_range` for every view of the batch, or
/// `do_process_staging`. `Err` is a failure (retried) or an abort.
async fn execute(h: &Rc<NodeHandle>, w: &Worker, b: &Rc<Batch>) -> Result<(), String> {
    let row_ms = h.cfg.view_build_row_interval_ms.unwrap_or(ROW_INTERVAL_MS);
    let storage = Storage::of(&h.sim, h.node);
    let staging = h.sim.ext::<StagingLists>();
    match b.kind {
        TaskKind::BuildRange => {
            if let Some(hd) = h.inj.handler(&h.sim, h.node, PAUSE_BUILD_RANGE) {
                let wanted = hd.param("token").and_then(|t| t.parse::<u32>().ok());
                if wanted.is_none_or(|t| t == b.tablet.index) {
                    tracing::info!(batch = b.id, "batch {} paused at {PAUSE_BUILD_RANGE}", b.id);
                    hd.wait_for_message(Duration::from_secs(600), Some(&b.abort))
                        .await
                        .map_err(|e| format!("{e:?}"))?;
                }
            }
            h.inj
                .fail(&h.sim, h.node, BUILD_RANGE_FAIL)
                .map_err(|e| e.0)?;
            let staged = staging.keys(b.replica, b.tablet);
            let views: Vec<TableId> = h.g0.with_state(|s| {
                b.tasks
                    .borrow()
                    .iter()
                    .filter_map(|id| s.views.tasks.get(id).and_then(|t| t.view))
                    .collect()
            });
            let rows = storage.scan(b.replica.shard, b.tablet);
            for (key, cell) in rows {
                if b.abort.is_aborted() {
                    return Err("aborted".into());
                }
                if cell.value.is_none() || staged.contains(&key) {
                    continue;
                }
                for view in &views {
                    paired_or_drop(h, b.replica, b.tablet, *view, key, cell);
                }
                sleep(Duration::from_millis(row_ms)).await;
            }
            Ok(())
        }
        TaskKind::ProcessStaging => {
            // Upstream `log_started_process_staging_tasks`, before the staging list is read:
            // from here on, rows staged for this tablet replica need a task of their own.
            assert!(b.replica.node == h.node, "a batch runs on its own node");
            w.started_staging
                .borrow_mut()
                .extend(b.tasks.borrow().iter().copied());
            let keys = staging.keys(b.replica, b.tablet);
            let cells: BTreeMap<_, _> = storage
                .scan(b.replica.shard, b.tablet)
                .into_iter()
                .filter(|(k, _)| keys.contains(k))
                .collect();
            let views = h.g0.with_state(|s| s.views.views_of(b.base));
            let mut dropped = Vec::new();
            for (key, cell) in &cells {
                if b.abort.is_aborted() {
                    return Err("aborted".into());
                }
                for view in &views {
                    if !paired_or_drop(h, b.replica, b.tablet, *view, *key, *cell) {
                        dropped.push(*key);
                    }
                }
                sleep(Duration::from_millis(row_ms)).await;
            }
            staging.remove(b.replica, b.tablet, &keys);
            let (applied, in_transition) = h.g0.with_state(|s| {
                (
                    h.g0.applied_index(),
                    s.tablets
                        .get(&b.tablet)
                        .is_some_and(|i| i.transition.is_some()),
                )
            });
            if !in_transition && !keys.is_empty() {
                h.sim.mark("staging sstable processed after the transition");
            }
            h.sim.record(
                Some(h.node),
                ViewEvent::StagingProcessed {
                    batch: b.id,
                    replica: b.replica,
                    tablet: b.tablet,
                    keys: keys.into_iter().collect(),
                    dropped,
                    applied,
                },
            );
            Ok(())
        }
    }
}
