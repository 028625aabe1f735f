//! Checkers of view building (SPEC §6.11 V1–V8) and the end-to-end view contents check. Each
//! reads only the history — the model's `ViewEvent`s, the topology's `stage_committed` events,
//! the harness's crash / start events — and the run's final state; [`Read`] is the one way
//! they read it. They carry their own reading of group0 (which tablet is in transition at a
//! group0 index, when a task was created, aborted, deleted), rebuilt from the events.

pub mod aborted;
pub mod batches;
pub mod conservation;
pub mod contents;
pub mod idempotent;
pub mod staging;
pub mod start;
pub mod success;
pub mod term;

pub use aborted::AbortedNeverRuns;
pub use batches::OneBatchPerShard;
pub use conservation::Conservation;
pub use contents::ViewContents;
pub use idempotent::CompletionIdempotent;
pub use staging::StagingAfterTransition;
pub use start::NoStartInTransition;
pub use success::SuccessOnlyWhenBuilt;
pub use term::StaleTermRejected;

use crate::checkers::topology::At;
use crate::scenario::{Verdict, Violation};
use model::topology::events::TopologyEvent;
use model::topology::stage::Stage;
use model::topology::{Replica, TableId, TabletId};
use model::view::state::{TaskId, TaskKind};
use model::view::ViewEvent;
use sim::{History, NodeId, SimEvent};
use std::collections::BTreeMap;

/// One history item a view checker reads.
#[derive(Clone, Debug)]
pub enum Item {
    /// A view-building event.
    View(ViewEvent),
    /// A tablet row commit: (group0 index, tablet, in transition after it, replicas after it).
    Stage {
        /// group0 index.
        index: u64,
        /// The tablet.
        tablet: TabletId,
        /// In transition after the commit.
        in_transition: bool,
        /// Replicas after the commit.
        replicas: Vec<Replica>,
        /// Replicas before the commit minus next: the leaving replica of an
        /// `allow_write_both_read_old → write_both_read_old` commit.
        leaving: Option<Replica>,
        /// Whether this is the `allow_write_both_read_old → write_both_read_old` edge.
        abort_edge: bool,
    },
    /// A node crashed.
    Crash(NodeId),
}

/// A task's life, from its events.
#[derive(Clone, Debug)]
pub struct TaskLife {
    /// Type.
    pub kind: TaskKind,
    /// Base.
    pub base: TableId,
    /// View.
    pub view: Option<TableId>,
    /// Tablet.
    pub tablet: TabletId,
    /// Replica.
    pub replica: Replica,
    /// group0 index of its creation.
    pub created: u64,
    /// group0 index of its abort.
    pub aborted: Option<u64>,
    /// group0 index of its deletion.
    pub deleted: Option<u64>,
}

/// The history as the view checkers read it.
pub struct Read {
    /// Every item, in history order.
    pub items: Vec<(At, Item)>,
    /// Every task ever created (first creation; [`Read::duplicate_ids`] lists re-creations).
    pub tasks: BTreeMap<TaskId, TaskLife>,
    /// Ids created more than once.
    pub duplicate_ids: Vec<(At, TaskId)>,
    transitions: BTreeMap<TabletId, Vec<(u64, bool)>>,
}

impl Read {
    /// Read `h`.
    pub fn of(h: &History) -> Read {
        let mut items = Vec::new();
        for e in h.entries().iter() {
            let at = At {
                index: e.index,
                at_ns: e.at.0,
                node: e.node,
            };
            if let Some(v) = e.proto::<ViewEvent>() {
                items.push((at, Item::View(v.clone())));
            } else if let Some(TopologyEvent::StageCommitted {
                index,
                tablet,
                from,
                stage,
                replicas,
                new_replicas,
                ..
            }) = e.proto::<TopologyEvent>()
            {
                let abort_edge = *from == Some(Stage::AllowWriteBothReadOld)
                    && *stage == Some(Stage::WriteBothReadOld);
                items.push((
                    at,
                    Item::Stage {
                        index: *index,
                        tablet: *tablet,
                        in_transition: stage.is_some(),
                        replicas: replicas.clone(),
                        leaving: replicas.iter().find(|r| !new_replicas.contains(r)).copied(),
                        abort_edge,
                    },
                ));
            } else if let (Some(SimEvent::Crash { .. }), Some(n)) = (e.sim(), e.node) {
                items.push((at, Item::Crash(n)));
            }
        }
        let mut tasks = BTreeMap::new();
        let mut duplicate_ids = Vec::new();
        let mut transitions: BTreeMap<TabletId, Vec<(u64, bool)>> = BTreeMap::new();
        for (at, it) in &items {
            match it {
                Item::View(ViewEvent::TaskCreated {
                    index,
                    id,
                    kind,
                    base,
                    view,
                    tablet,
                    replica,
                    ..
                }) => {
                    if tasks.contains_key(id) {
                        duplicate_ids.push((*at, *id));
                        continue;
                    }
                    tasks.insert(
                        *id,
                        TaskLife {
                            kind: *kind,
                            base: *base,
                            view: *view,
                            tablet: *tablet,
                            replica: *replica,
                            created: *index,
                            aborted: None,
                            deleted: None,
                        },
                    );
                }
                Item::View(ViewEvent::TaskAborted { index, id }) => {
                    if let Some(t) = tasks.get_mut(id) {
                        t.aborted.get_or_insert(*index);
                    }
                }
                Item::View(ViewEvent::TaskDeleted { index, id, .. }) => {
                    if let Some(t) = tasks.get_mut(id) {
                        t.deleted.get_or_insert(*index);
                    }
                }
                Item::Stage {
                    index,
                    tablet,
                    in_transition,
                    ..
                } => transitions
                    .entry(*tablet)
                    .or_default()
                    .push((*index, *in_transition)),
                _ => {}
            }
        }
        Read {
            items,
            tasks,
            duplicate_ids,
            transitions,
        }
    }

    /// Was `tablet` in transition in the group0 state at `index` (after applying it)?
    pub fn in_transition(&self, tablet: TabletId, index: u64) -> bool {
        self.transitions.get(&tablet).is_some_and(|v| {
            v.iter()
                .rev()
                .find(|(i, _)| *i <= index)
                .is_some_and(|(_, t)| *t)
        })
    }

    /// Was task `id` aborted at or before group0 index `index`?
    pub fn aborted_by(&self, id: TaskId, index: u64) -> bool {
        self.tasks
            .get(&id)
            .and_then(|t| t.aborted)
            .is_some_and(|a| a <= index)
    }

    /// The view events, with their position.
    pub fn view_events(&self) -> impl Iterator<Item = (&At, &ViewEvent)> {
        self.items.iter().filter_map(|(at, it)| match it {
            Item::View(v) => Some((at, v)),
            _ => None,
        })
    }
}

/// A safety violation at `at`.
pub fn safety(checker: &str, message: String, at: &At) -> Violation {
    Violation {
        checker: checker.to_string(),
        verdict: Verdict::Safety,
        message,
        at_index: Some(at.index),
        at_ns: Some(at.at_ns),
    }
}
