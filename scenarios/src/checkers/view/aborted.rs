//! V3 (SPEC §6.11): an aborted task never runs again — no coordinator sends it and no worker
//! starts it once the abort is in the state they acted on — and its replacement has a new id
//! (no task id is ever created twice).

use super::{safety, Read};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::view::ViewEvent;
use sim::History;

/// The V3 checker.
pub struct AbortedNeverRuns;

const NAME: &str = "vb_aborted_never_runs";

impl Checker for AbortedNeverRuns {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let r = Read::of(h);
        let mut out: Vec<Violation> = r
            .duplicate_ids
            .iter()
            .map(|(at, id)| safety(NAME, format!("task id {id} created twice"), at))
            .collect();
        for (at, ev) in r.view_events() {
            let (tasks, applied, who) = match ev {
                ViewEvent::WorkSent { tasks, applied, .. } => (tasks, *applied, "sent"),
                ViewEvent::BatchStarted { tasks, applied, .. } => (tasks, *applied, "started"),
                _ => continue,
            };
            for id in tasks {
                if r.aborted_by(*id, applied) {
                    out.push(safety(
                        NAME,
                        format!("aborted task {id} {who} again (state at group0 index {applied})"),
                        at,
                    ));
                }
            }
        }
        out
    }
}
