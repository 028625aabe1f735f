//! V5 (SPEC §6.11), first half: a view is marked `SUCCESS` only when no `build_range` task for
//! it remains and no `process_staging` task remains for its base. (The second half — the view
//! then equals its base — is [`super::ViewContents`].)

use super::{safety, Read};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::TableId;
use model::view::state::{BuildStatus, TaskId, TaskKind};
use model::view::ViewEvent;
use sim::History;
use std::collections::BTreeMap;

/// The V5 checker.
pub struct SuccessOnlyWhenBuilt;

const NAME: &str = "vb_success_only_when_built";

impl Checker for SuccessOnlyWhenBuilt {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let r = Read::of(h);
        let mut out = Vec::new();
        let mut base_of: BTreeMap<TableId, TableId> = BTreeMap::new();
        let mut alive: BTreeMap<TaskId, (TaskKind, TableId, Option<TableId>)> = BTreeMap::new();
        for (at, ev) in r.view_events() {
            match ev {
                ViewEvent::ViewCreated { view, base, .. } => {
                    base_of.insert(*view, *base);
                }
                ViewEvent::TaskCreated {
                    id,
                    kind,
                    base,
                    view,
                    ..
                } => {
                    alive.insert(*id, (*kind, *base, *view));
                }
                ViewEvent::TaskDeleted { id, .. } => {
                    alive.remove(id);
                }
                ViewEvent::StatusCommitted {
                    index,
                    view,
                    status: BuildStatus::Success,
                    ..
                } => {
                    let base = base_of.get(view).copied();
                    let left: Vec<String> = alive
                        .iter()
                        .filter(|(_, (k, b, v))| {
                            (*k == TaskKind::BuildRange && *v == Some(*view))
                                || (*k == TaskKind::ProcessStaging && Some(*b) == base)
                        })
                        .map(|(id, (k, _, _))| format!("{id} ({k:?})"))
                        .collect();
                    if !left.is_empty() {
                        out.push(safety(NAME, format!("view {view} marked SUCCESS at group0 index {index} while tasks remain: {}", left.join(", ")), at));
                    }
                }
                _ => {}
            }
        }
        out
    }
}
