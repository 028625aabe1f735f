//! V7 (SPEC §6.11): RPCs from a coordinator of an old term are rejected after the worker's
//! read barrier: no batch is started or attached to for a caller whose term differs from the
//! worker's Raft term at that point.

use super::{safety, Read};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::view::ViewEvent;
use sim::History;

/// The V7 checker.
pub struct StaleTermRejected;

const NAME: &str = "vb_stale_term_rejected";

impl Checker for StaleTermRejected {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let r = Read::of(h);
        let mut out = Vec::new();
        for (at, ev) in r.view_events() {
            let (batch, term, worker_term, what) = match ev {
                ViewEvent::BatchStarted {
                    batch,
                    term,
                    worker_term,
                    ..
                } => (*batch, *term, *worker_term, "started"),
                ViewEvent::BatchAttached {
                    batch,
                    term,
                    worker_term,
                    ..
                } => (*batch, *term, *worker_term, "attached to"),
                _ => continue,
            };
            if term != worker_term {
                out.push(safety(NAME, format!("batch {batch} {what} for a coordinator of term {term} while the worker was in term {worker_term}"), at));
            }
        }
        out
    }
}
