//! V8 (SPEC §6.11): staging sstables of a tablet are processed only while that tablet has no
//! transition — never handed out by the coordinator from a state where it is in transition,
//! and never processed where their view updates are dropped (on a pending replica, which has
//! no paired view replica: #19149 problem 2). A batch handed out before a migration started
//! may still run on the (natural) leaving replica until the abort reaches it; that is allowed.

use super::{safety, Read};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::view::state::TaskKind;
use model::view::ViewEvent;
use sim::History;

/// The V8 checker.
pub struct StagingAfterTransition;

const NAME: &str = "vb_staging_after_transition";

impl Checker for StagingAfterTransition {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let r = Read::of(h);
        let mut out = Vec::new();
        for (at, ev) in r.view_events() {
            match ev {
                ViewEvent::WorkSent { tasks, applied, .. } => {
                    for id in tasks {
                        let Some(t) = r.tasks.get(id) else { continue };
                        if t.kind == TaskKind::ProcessStaging && r.in_transition(t.tablet, *applied)
                        {
                            out.push(safety(NAME, format!("staging task {id} of {} handed out while the tablet was in transition (group0 index {applied})", t.tablet), at));
                        }
                    }
                }
                ViewEvent::StagingProcessed {
                    tablet,
                    replica,
                    applied,
                    dropped,
                    ..
                } if !dropped.is_empty() => {
                    out.push(safety(NAME, format!("staging sstables of {tablet} processed on {replica}, which had no paired view replica (group0 index {applied}, in transition: {}): {} view update(s) dropped", r.in_transition(*tablet, *applied), dropped.len()), at));
                }
                _ => {}
            }
        }
        out
    }
}
