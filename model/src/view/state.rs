//! The view-building part of the group0 state (SPEC §6.2): `system.view_building_tasks`, the
//! processed base (`scylla_local.view_building_processing_base_id`) and
//! `system.view_build_status_v2`, plus the views themselves; their deterministic apply and
//! the tablet-operation hooks of SPEC §6.9, which run inside the same group0 command as the
//! tablet change (so an abort, a copy or a rollback is atomic with its stage commit).
//!
//! Pure: no runtime, no I/O. The coordinator's decisions over this state ([`plan_update`],
//! [`ViewBuildingState::select_batch`], [`ViewBuildingState::gc`]) live here too so they can
//! be unit-tested; the shells in `coordinator.rs` and `worker.rs` only move messages.
//!
//! Promises kept here: an aborted task is never un-aborted (a rollback creates a copy with a
//! new id, SPEC §6.4); task ids strictly increase; a tablet operation never loses a (view,
//! tablet, replica) coverage (V4): tasks are aborted at `allow_write_both_read_old →
//! write_both_read_old`, copied to the pending replica at `end_migration` and recreated at
//! `revert_migration`. Mutants [`NO_ABORT_ON_MIGRATION`] and [`NO_ROLLBACK_ON_REVERT`] switch
//! the first and the last off.

use super::events::ViewEvent;
use crate::schema::TableId;
use crate::topology::ids::{NodeId, Replica, TabletId};
use crate::topology::stage::Stage;
use crate::topology::state::TabletInfo;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Mutant: the `allow_write_both_read_old → write_both_read_old` commit leaves the leaving
/// replica's tasks un-aborted, so a build keeps running on a replica that is being migrated
/// away (SPEC §6.9, #21564 / #22288).
pub const NO_ABORT_ON_MIGRATION: &str = "vb-no-abort-on-migration";

/// Mutant: `revert_migration` deletes the aborted tasks without recreating them, so the
/// (view, tablet, replica) coverage is lost and the view is declared built without that range.
pub const NO_ROLLBACK_ON_REVERT: &str = "vb-no-rollback-on-revert";

/// A view building task id (upstream: a time-UUID; here a counter handed out by group0, just
/// as fresh and strictly increasing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task{}", self.0)
    }
}

/// `view_building_tasks.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Read the tablet's range from the replica's sstables and generate view updates for one view.
    BuildRange,
    /// Generate view updates from the replica's staging sstables of the tablet.
    ProcessStaging,
}

/// One row of `view_building_tasks`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// `id`.
    pub id: TaskId,
    /// `type`.
    pub kind: TaskKind,
    /// `base_id`.
    pub base: TableId,
    /// `view_id` (`None` for `process_staging`).
    pub view: Option<TableId>,
    /// The tablet (`last_token`).
    pub tablet: TabletId,
    /// (`host_id`, `shard`).
    pub replica: Replica,
    /// `aborted`.
    pub aborted: bool,
}

/// `view_build_status_v2.status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BuildStatus {
    /// Building in progress.
    Started,
    /// Built.
    Success,
}

/// A materialized view of a tablet base table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewInfo {
    /// The view's table id.
    pub id: TableId,
    /// Its base table.
    pub base: TableId,
    /// `keyspace.name`.
    pub name: String,
    /// The view replicas paired with each base tablet, by tablet index (fixed at creation:
    /// view tablets are not migrated in this model).
    pub placement: Vec<Vec<Replica>>,
}

/// Why a task was created or deleted (for the history).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskCause {
    /// CREATE VIEW / CREATE INDEX.
    CreateView,
    /// A staging sstable was registered.
    Staging,
    /// `end_migration`: moved to the pending replica.
    MigrationEnd,
    /// `revert_migration`: an aborted task rolled back.
    Rollback,
    /// The finished-task GC.
    Finished,
    /// DROP VIEW.
    DropView,
}

/// One mutation of the view-building state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ViewOp {
    /// CREATE VIEW: the view, its placement, and one `build_range` task per tablet replica.
    CreateView {
        /// The view's table id.
        view: TableId,
        /// Its base.
        base: TableId,
        /// `keyspace.name`.
        name: String,
    },
    /// DROP VIEW: the view, its statuses and its tasks go (and the base's staging tasks when
    /// no view of the base is left).
    DropView {
        /// The view.
        view: TableId,
    },
    /// Set or clear the processed base.
    SetProcessingBase {
        /// The new processed base.
        base: Option<TableId>,
    },
    /// Write `status` for `view` on `nodes`.
    SetStatus {
        /// The view.
        view: TableId,
        /// The hosts.
        nodes: Vec<NodeId>,
        /// The status.
        status: BuildStatus,
    },
    /// The finished-task GC: delete these ids if they exist and are not aborted.
    DeleteFinished {
        /// Task ids.
        ids: Vec<TaskId>,
    },
    /// The staging registrator: one `process_staging` task for (base, tablet, replica).
    CreateStagingTask {
        /// Base table.
        base: TableId,
        /// Tablet.
        tablet: TabletId,
        /// Replica holding the staging sstables.
        replica: Replica,
    },
}

/// Transient flags of a node's state machine (mutants), set by the group0 shell.
#[derive(Clone, Copy, Debug, Default)]
pub struct ViewFlags {
    /// [`NO_ABORT_ON_MIGRATION`].
    pub no_abort_on_migration: bool,
    /// [`NO_ROLLBACK_ON_REVERT`].
    pub no_rollback_on_revert: bool,
}

/// The view-building group0 state.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ViewBuildingState {
    /// Views by id (dropped views are removed).
    pub views: BTreeMap<TableId, ViewInfo>,
    /// `view_building_tasks`: unfinished tasks and aborted tasks not yet replaced.
    pub tasks: BTreeMap<TaskId, Task>,
    /// The base table being processed.
    pub processing_base: Option<TableId>,
    /// `view_build_status_v2`: view → host → status.
    pub statuses: BTreeMap<TableId, BTreeMap<NodeId, BuildStatus>>,
    /// The next task id.
    pub next_task: u64,
    /// Events of the command being applied (drained by the group0 shell).
    #[serde(skip)]
    pub events: Vec<ViewEvent>,
    /// Mutants.
    #[serde(skip)]
    pub flags: ViewFlags,
    /// The group0 index being applied (for the events).
    #[serde(skip)]
    pub index: u64,
}

impl ViewBuildingState {
    fn create_task(
        &mut self,
        kind: TaskKind,
        base: TableId,
        view: Option<TableId>,
        tablet: TabletId,
        replica: Replica,
        cause: TaskCause,
    ) -> TaskId {
        self.next_task += 1;
        let id = TaskId(self.next_task);
        assert!(
            self.tasks.keys().next_back().is_none_or(|last| *last < id),
            "task ids strictly increase"
        );
        self.tasks.insert(
            id,
            Task {
                id,
                kind,
                base,
                view,
                tablet,
                replica,
                aborted: false,
            },
        );
        self.events.push(ViewEvent::TaskCreated {
            index: self.index,
            id,
            kind,
            base,
            view,
            tablet,
            replica,
            cause,
        });
        id
    }

    fn delete_task(&mut self, id: TaskId, cause: TaskCause) -> Task {
        let t = self.tasks.remove(&id).expect("deleting an existing task");
        self.events.push(ViewEvent::TaskDeleted {
            index: self.index,
            id,
            cause,
        });
        t
    }

    /// The live views of `base`, in id order.
    pub fn views_of(&self, base: TableId) -> Vec<TableId> {
        self.views
            .values()
            .filter(|v| v.base == base)
            .map(|v| v.id)
            .collect()
    }

    /// Is any view of `base` being built (status `STARTED` somewhere)? Decides whether
    /// streamed sstables go to staging (`check_needs_view_update_path`, SPEC §6.10).
    pub fn building(&self, base: TableId) -> bool {
        self.views_of(base).iter().any(|v| {
            self.statuses
                .get(v)
                .is_some_and(|m| m.values().any(|s| *s == BuildStatus::Started))
        })
    }

    /// Is `view` `SUCCESS` on every host of `nodes`?
    pub fn built_on(&self, view: TableId, nodes: &[NodeId]) -> bool {
        nodes.iter().all(|n| {
            self.statuses
                .get(&view)
                .and_then(|m| m.get(n))
                .is_some_and(|s| *s == BuildStatus::Success)
        })
    }

    /// Apply the ops of one command. `tablets` is `system.tablets` as of this command.
    pub fn apply(
        &mut self,
        ops: &[ViewOp],
        tablets: &BTreeMap<TabletId, TabletInfo>,
    ) -> Result<(), String> {
        for op in ops {
            self.validate(op)?;
            if let ViewOp::CreateView { base, .. } = op {
                if !tablets.keys().any(|t| t.table == *base) {
                    return Err(format!("base {base} has no tablets"));
                }
            }
        }
        for op in ops {
            self.apply_op(op, tablets);
        }
        Ok(())
    }

    fn validate(&self, op: &ViewOp) -> Result<(), String> {
        match op {
            ViewOp::CreateView { view, .. } if self.views.contains_key(view) => {
                Err(format!("view {view} exists"))
            }
            ViewOp::DropView { view } if !self.views.contains_key(view) => {
                Err(format!("no view {view}"))
            }
            ViewOp::SetStatus { view, .. } if !self.views.contains_key(view) => {
                Err(format!("no view {view}"))
            }
            _ => Ok(()),
        }
    }

    fn apply_op(&mut self, op: &ViewOp, tablets: &BTreeMap<TabletId, TabletInfo>) {
        match op {
            ViewOp::CreateView { view, base, name } => {
                let of_base: Vec<(&TabletId, &TabletInfo)> =
                    tablets.iter().filter(|(t, _)| t.table == *base).collect();
                assert!(!of_base.is_empty(), "{base} has tablets");
                self.views.insert(
                    *view,
                    ViewInfo {
                        id: *view,
                        base: *base,
                        name: name.clone(),
                        placement: of_base.iter().map(|(_, i)| i.replicas.clone()).collect(),
                    },
                );
                self.events.push(ViewEvent::ViewCreated {
                    index: self.index,
                    view: *view,
                    base: *base,
                });
                for (t, info) in of_base {
                    for r in &info.replicas {
                        self.create_task(
                            TaskKind::BuildRange,
                            *base,
                            Some(*view),
                            *t,
                            *r,
                            TaskCause::CreateView,
                        );
                    }
                }
            }
            ViewOp::DropView { view } => {
                let info = self.views.remove(view).expect("validated");
                self.statuses.remove(view);
                let last = self.views_of(info.base).is_empty();
                let gone: Vec<TaskId> = self
                    .tasks
                    .values()
                    .filter(|t| t.view == Some(*view) || (last && t.base == info.base))
                    .map(|t| t.id)
                    .collect();
                for id in gone {
                    self.delete_task(id, TaskCause::DropView);
                }
                self.events.push(ViewEvent::ViewDropped {
                    index: self.index,
                    view: *view,
                });
            }
            ViewOp::SetProcessingBase { base } => {
                self.processing_base = *base;
                self.events.push(ViewEvent::ProcessingBaseSet {
                    index: self.index,
                    base: *base,
                });
            }
            ViewOp::SetStatus {
                view,
                nodes,
                status,
            } => {
                let m = self.statuses.entry(*view).or_default();
                for n in nodes {
                    m.insert(*n, *status);
                }
                self.events.push(ViewEvent::StatusCommitted {
                    index: self.index,
                    view: *view,
                    nodes: nodes.clone(),
                    status: *status,
                });
            }
            ViewOp::DeleteFinished { ids } => {
                for id in ids {
                    // An aborted task stays: it is needed to create the adjusted task.
                    if self.tasks.get(id).is_some_and(|t| !t.aborted) {
                        self.delete_task(*id, TaskCause::Finished);
                    }
                }
            }
            ViewOp::CreateStagingTask {
                base,
                tablet,
                replica,
            } => {
                if !self.views_of(*base).is_empty() {
                    self.create_task(
                        TaskKind::ProcessStaging,
                        *base,
                        None,
                        *tablet,
                        *replica,
                        TaskCause::Staging,
                    );
                }
            }
        }
    }

    /// Hook of a tablet stage commit (SPEC §6.9): at `allow_write_both_read_old →
    /// write_both_read_old` every task of (tablet, leaving replica) is aborted.
    pub fn on_stage(&mut self, tablet: TabletId, from: Stage, to: Stage, leaving: Option<Replica>) {
        if from != Stage::AllowWriteBothReadOld || to != Stage::WriteBothReadOld {
            return;
        }
        if self.flags.no_abort_on_migration {
            return;
        }
        let Some(leaving) = leaving else { return };
        let ids: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|t| t.tablet == tablet && t.replica == leaving && !t.aborted)
            .map(|t| t.id)
            .collect();
        for id in ids {
            self.tasks.get_mut(&id).expect("listed").aborted = true;
            self.events.push(ViewEvent::TaskAborted {
                index: self.index,
                id,
            });
        }
    }

    /// Hook of a transition's deletion: at `end_migration` every task of (tablet, leaving) is
    /// replaced by a copy on the pending replica; at `revert_migration` every aborted task of
    /// (tablet, leaving) is replaced by an identical copy with a new id.
    pub fn on_finish(
        &mut self,
        tablet: TabletId,
        from: Stage,
        leaving: Option<Replica>,
        pending: Option<Replica>,
    ) {
        let Some(leaving) = leaving else { return };
        let of_leaving: Vec<TaskId> = self
            .tasks
            .values()
            .filter(|t| t.tablet == tablet && t.replica == leaving)
            .map(|t| t.id)
            .collect();
        for id in of_leaving {
            let (cause, to) = match from {
                Stage::EndMigration => (TaskCause::MigrationEnd, pending),
                Stage::RevertMigration if self.tasks[&id].aborted => {
                    (TaskCause::Rollback, Some(leaving))
                }
                _ => continue,
            };
            let old = self.delete_task(id, cause);
            if cause == TaskCause::Rollback && self.flags.no_rollback_on_revert {
                continue;
            }
            if let Some(to) = to {
                self.create_task(old.kind, old.base, old.view, old.tablet, to, cause);
            }
        }
    }

    /// The coordinator's selector (SPEC §6.3) for one replica: the non-aborted, unfinished
    /// tasks of the processed base on `replica`, of one tablet not in transition — all its
    /// `build_range` tasks if it has any, else its `process_staging` tasks. The lowest such
    /// tablet wins. `staging_ignores_transition` is mutant
    /// [`super::coordinator::STAGING_PROCESSED_EARLY`].
    pub fn select_batch(
        &self,
        tablets: &BTreeMap<TabletId, TabletInfo>,
        replica: Replica,
        finished: &BTreeSet<TaskId>,
        staging_ignores_transition: bool,
    ) -> Vec<TaskId> {
        let Some(base) = self.processing_base else {
            return Vec::new();
        };
        let mut by_tablet: BTreeMap<TabletId, (Vec<TaskId>, Vec<TaskId>)> = BTreeMap::new();
        for t in self.tasks.values() {
            if t.base != base || t.replica != replica || t.aborted || finished.contains(&t.id) {
                continue;
            }
            let in_transition = tablets
                .get(&t.tablet)
                .is_none_or(|i| i.transition.is_some());
            let e = by_tablet.entry(t.tablet).or_default();
            match t.kind {
                TaskKind::BuildRange if !in_transition => e.0.push(t.id),
                TaskKind::ProcessStaging if !in_transition || staging_ignores_transition => {
                    e.1.push(t.id)
                }
                _ => {}
            }
        }
        if let Some((_, (b, _))) = by_tablet.iter().find(|(_, (b, _))| !b.is_empty()) {
            return b.clone();
        }
        by_tablet
            .into_values()
            .find(|(_, s)| !s.is_empty())
            .map(|(_, s)| s)
            .unwrap_or_default()
    }

    /// The replicas that hold tasks of the processed base (the coordinator's work list).
    pub fn replicas_with_work(&self) -> BTreeSet<Replica> {
        let Some(base) = self.processing_base else {
            return BTreeSet::new();
        };
        self.tasks
            .values()
            .filter(|t| t.base == base)
            .map(|t| t.replica)
            .collect()
    }

    /// The finished-task GC (SPEC §6.8): the finished ids that still exist and are not aborted.
    pub fn gc(&self, finished: &BTreeSet<TaskId>) -> Vec<TaskId> {
        finished
            .iter()
            .filter(|id| self.tasks.get(id).is_some_and(|t| !t.aborted))
            .copied()
            .collect()
    }
}

/// `update_state` of the coordinator's main loop (SPEC §6.5 step 1): the ops to commit, given
/// the normal nodes. `ignore_staging` is mutant
/// [`super::coordinator::SUCCESS_BEFORE_STAGING_DONE`].
pub fn plan_update(vb: &ViewBuildingState, nodes: &[NodeId], ignore_staging: bool) -> Vec<ViewOp> {
    let mut ops = Vec::new();
    match vb.processing_base {
        Some(base) => {
            let staging_left = vb
                .tasks
                .values()
                .any(|t| t.base == base && t.kind == TaskKind::ProcessStaging);
            for view in vb.views_of(base) {
                let building = vb.tasks.values().any(|t| t.view == Some(view))
                    || (staging_left && !ignore_staging);
                let have = vb.statuses.get(&view);
                if !building {
                    if !vb.built_on(view, nodes) {
                        ops.push(ViewOp::SetStatus {
                            view,
                            nodes: nodes.to_vec(),
                            status: BuildStatus::Success,
                        });
                    }
                } else {
                    let missing: Vec<NodeId> = nodes
                        .iter()
                        .filter(|n| have.is_none_or(|m| !m.contains_key(n)))
                        .copied()
                        .collect();
                    if !missing.is_empty() {
                        ops.push(ViewOp::SetStatus {
                            view,
                            nodes: missing,
                            status: BuildStatus::Started,
                        });
                    }
                }
            }
            if !vb.tasks.values().any(|t| t.base == base) {
                ops.push(ViewOp::SetProcessingBase { base: None });
            }
        }
        None => {
            let bases: BTreeSet<TableId> = vb.tasks.values().map(|t| t.base).collect();
            let only_staging = bases.iter().find(|b| {
                vb.tasks
                    .values()
                    .filter(|t| t.base == **b)
                    .all(|t| t.kind == TaskKind::ProcessStaging)
            });
            if let Some(base) = only_staging.or(bases.iter().next()) {
                ops.push(ViewOp::SetProcessingBase { base: Some(*base) });
                for view in vb.views_of(*base) {
                    let have = vb.statuses.get(&view);
                    let missing: Vec<NodeId> = nodes
                        .iter()
                        .filter(|n| have.is_none_or(|m| !m.contains_key(n)))
                        .copied()
                        .collect();
                    if !missing.is_empty() {
                        ops.push(ViewOp::SetStatus {
                            view,
                            nodes: missing,
                            status: BuildStatus::Started,
                        });
                    }
                }
            }
        }
    }
    ops
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;

/// A guarded change of the view-building state (one group0 command).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewChange {
    /// The state id the writer's group0 guard was taken on.
    pub base_state_id: u64,
    /// The view building coordinator's term (`None` for schema changes and the registrator).
    pub term: Option<u64>,
    /// The mutations.
    pub ops: Vec<ViewOp>,
    /// The writer, for the history ("view building coordinator", "create view", …).
    pub origin: String,
}
