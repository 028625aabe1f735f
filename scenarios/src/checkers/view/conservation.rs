//! V4 (SPEC §6.11), conservation: after every group0 command, for every view not yet built,
//! every tablet `t` of its base and every current replica `r` of `t`, one of: a non-aborted
//! `build_range` task (V, t, r) exists; an aborted one exists and `t` is in transition (its
//! operation will replace or roll it back); or the build of (V, t) has completed (a finished
//! task of it was deleted by the GC). No coverage is lost across a migration, completed or
//! reverted (#21564, #22288).

use super::{safety, Item, Read};
use crate::checkers::topology::At;
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::{Replica, TableId, TabletId};
use model::view::state::{BuildStatus, TaskCause, TaskId};
use model::view::ViewEvent;
use sim::History;
use std::collections::{BTreeMap, BTreeSet};

/// The V4 checker.
pub struct Conservation;

const NAME: &str = "vb_conservation";

#[derive(Default)]
struct Model {
    views: BTreeMap<TableId, TableId>,
    built_views: BTreeSet<TableId>,
    tablets: BTreeMap<TabletId, (Vec<Replica>, bool)>,
    from_stage: BTreeSet<TabletId>,
    tasks: BTreeMap<TaskId, (Option<TableId>, TabletId, Replica, bool)>,
    built: BTreeSet<(TableId, TabletId)>,
    reported: BTreeSet<(TableId, TabletId, Replica)>,
}

impl Model {
    fn check(&mut self, at: &At, index: u64, out: &mut Vec<Violation>) {
        for (view, base) in &self.views {
            if self.built_views.contains(view) {
                continue;
            }
            for (t, (replicas, in_transition)) in &self.tablets {
                if t.table != *base || self.built.contains(&(*view, *t)) {
                    continue;
                }
                for r in replicas {
                    let covered = self.tasks.values().any(|(v, tt, rr, aborted)| {
                        *v == Some(*view) && tt == t && rr == r && (!aborted || *in_transition)
                    });
                    if !covered && self.reported.insert((*view, *t, *r)) {
                        out.push(safety(NAME, format!("after group0 index {index}, view {view} lost its coverage of {t} on {r}: no task, no aborted task of an operation in progress, and no completed build"), at));
                    }
                }
            }
        }
    }
}

impl Checker for Conservation {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let r = Read::of(h);
        let mut out = Vec::new();
        let mut m = Model::default();
        let mut last: Option<(u64, At)> = None;
        for (at, it) in &r.items {
            let index = match it {
                Item::Stage { index, .. } => *index,
                Item::View(ev) => match ev {
                    ViewEvent::ViewCreated { index, .. }
                    | ViewEvent::ViewDropped { index, .. }
                    | ViewEvent::TaskCreated { index, .. }
                    | ViewEvent::TaskAborted { index, .. }
                    | ViewEvent::TaskDeleted { index, .. }
                    | ViewEvent::ProcessingBaseSet { index, .. }
                    | ViewEvent::StatusCommitted { index, .. } => *index,
                    _ => continue,
                },
                Item::Crash(_) => continue,
            };
            if let Some((i, a)) = last {
                if i != index {
                    m.check(&a, i, &mut out);
                }
            }
            last = Some((index, *at));
            match it {
                Item::Stage {
                    tablet,
                    in_transition,
                    replicas,
                    ..
                } => {
                    m.from_stage.insert(*tablet);
                    m.tablets
                        .insert(*tablet, (replicas.clone(), *in_transition));
                }
                Item::View(ViewEvent::ViewCreated { view, base, .. }) => {
                    m.views.insert(*view, *base);
                }
                Item::View(ViewEvent::ViewDropped { view, .. }) => {
                    m.views.remove(view);
                }
                Item::View(ViewEvent::TaskCreated {
                    id,
                    view,
                    tablet,
                    replica,
                    cause,
                    ..
                }) => {
                    if *cause == TaskCause::CreateView && !m.from_stage.contains(tablet) {
                        let e = m.tablets.entry(*tablet).or_default();
                        if !e.0.contains(replica) {
                            e.0.push(*replica);
                        }
                    }
                    m.tasks.insert(*id, (*view, *tablet, *replica, false));
                }
                Item::View(ViewEvent::TaskAborted { id, .. }) => {
                    if let Some(t) = m.tasks.get_mut(id) {
                        t.3 = true;
                    }
                }
                Item::View(ViewEvent::TaskDeleted { id, cause, .. }) => {
                    if let Some((Some(v), t, _, aborted)) = m.tasks.remove(id) {
                        if *cause == TaskCause::Finished && !aborted {
                            m.built.insert((v, t));
                        }
                    }
                }
                Item::View(ViewEvent::StatusCommitted {
                    view,
                    status: BuildStatus::Success,
                    ..
                }) => {
                    m.built_views.insert(*view);
                }
                _ => {}
            }
        }
        if let Some((i, a)) = last {
            m.check(&a, i, &mut out);
        }
        out
    }
}
