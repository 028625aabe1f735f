//! View building for tablet-based tables (SPEC §6): materialized views built by one view
//! building coordinator on the group0 leader, through node-local workers, across tablet
//! migrations, failovers and RPC failures.
//!
//! Pure core: [`state`] (the group0 state of SPEC §6.2, its apply, the tablet hooks of §6.9 and
//! the coordinator's decisions). Shells: [`coordinator`], [`worker`] (the RPC
//! `work_on_view_building_tasks` and the batches), [`data`] (view rows, pairing, view updates),
//! [`staging`] (staging sstables), [`api`] (CREATE / DROP VIEW, what scenarios read). History
//! events: [`events`]. The group0 state lives in `TopologyState::views`; the hooks run inside
//! the same apply as the tablet change they belong to.
//!
//! Decisions on SPEC §6.13's open points (from `db/view/view.cc`, `view_building_*` upstream):
//! - **View data model.** A base replica sends its view update to its *paired* view replica:
//!   the view replica at the base replica's index among the base tablet's natural replicas
//!   (`replicas` while writes go to previous/both, `new_replicas` from `use_new`). A pending
//!   base replica (the `write_both_*` stages) is not natural: it has no pair and its view
//!   updates are dropped (#19149); the leaving replica, still natural, covers those writes.
//!   The end-to-end check compares, per view tablet and replica index, the view rows with the
//!   live rows of the paired base replica.
//! - **Whose "in transition" counts for V1.** The coordinator's: it selects tasks from its own
//!   applied group0 state, which is the leader's and therefore the newest committed state. A
//!   worker may apply the abort only after the RPC arrived (it runs the batch, its observer
//!   then aborts it); that lag is allowed by V1 and the checker judges "started" at the
//!   coordinator's applied index and "must have stopped" at the worker's.
//! - **A worker restarting mid-batch.** Its batches and `completed_tasks` are in memory and
//!   gone; the coordinator's RPC fails (connection) and is re-sent; the new worker runs the
//!   tasks again from the start (idempotent: a rebuilt view row is the same row). A coordinator
//!   failover loses `_finished_tasks` the same way: finished but not GC'd tasks are re-sent
//!   and either answered from `completed_tasks` or re-run.
//! - **Scope.** Only tablet *migration* exists in the topology model: there is no resize
//!   (split/merge) and no RF change, so the split/merge/RF rows of SPEC §6.9 are not
//!   modelled and V3/V4 are only checked across migrations (succeeded and reverted).
//!
//! Simplifications, and what they cost the checkers:
//! - A view is keyed like its base (`PRIMARY KEY (pk, c)` over a one-column base): the view row
//!   of base row `(k, v)` is `(k, v)`, a base delete is a view tombstone. Read-before-write of
//!   a view that re-keys rows is not modelled (no stale-row deletion bugs are reachable).
//! - View tablets mirror the base's tablets and keep the base's placement at CREATE VIEW: view
//!   tablets are never migrated (only base tablets move), so view-side migration hazards are
//!   not exercised. View table ids are below the user range (see [`data::view_table`]).
//! - View updates travel through a per-node queue that survives restarts (hints) and is
//!   retried until delivered; convergence waits for it. A view update lost in transit (other
//!   than the #19149 drop) is therefore never modelled.
//! - Staging lists are run-scoped per node (the staging directory, durable once streamed rows
//!   are synced), not sstables on the simulated disk; only streaming creates staging (no
//!   repair, load-and-stream or upload). No flush before a batch (SPEC §6.6 step 4): reads see
//!   memtables directly.
//! - The `move_tablet` API does not abort tasks itself (only the `allow_write_both_read_old →
//!   write_both_read_old` edge does, which every migration reaches). No `built_views` /
//!   `scylla_views_builds_in_progress` reconciliation; no `min_task_id` / tombstone cost of
//!   the GC; "gossip says the host is dead" is the simulation's own liveness.
//! - Tasks of one batch share type and tablet; the coordinator's selector never mixes views of
//!   two tablets, and the worker refuses a mixed request.
//! - `work_on_view_building_tasks` has a 10 s timeout (upstream relies on the connection and
//!   the abort source): the simulated transport drops a request cut by a partition, and the
//!   replica's one RPC slot must not stay busy past the converge budget. A longer batch makes
//!   the call fail and its retry attach, which is the path V6 checks.
//! - Finding F2 (FINDINGS.md): pairing with the replica's own erm drops the view update of a
//!   write whose coordinator is one stage away across `write_both_read_new`/`use_new`; its
//!   candidate fix is `topology.view_pairing_any_write_replica` (off: faithful).

pub mod api;
pub mod coordinator;
pub mod data;
pub mod events;
pub mod staging;
pub mod state;
pub mod worker;

pub use events::ViewEvent;

use crate::node::NodeHandle;
use std::rc::Rc;

/// Start the view services of a node, if the cluster has the `VIEW_BUILDING_COORDINATOR`
/// feature: the worker (verb, observer, staging rediscovery), the view update verb and its
/// delivery fiber, and the coordinator loop.
pub fn serve(h: &Rc<NodeHandle>) {
    if !h.cfg.view_building_coordinator {
        return;
    }
    worker::serve(h);
    data::serve(h);
    sim::spawn(coordinator::run(h.clone()));
}
