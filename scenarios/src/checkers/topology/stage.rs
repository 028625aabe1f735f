//! Stage monotonicity (SPEC §1.8): each committed stage is a legal successor of the tablet's
//! previous one; no commit of a fenced coordinator term takes effect (SPEC §1.9); a session id
//! is fresh for each stage that opens one.

use super::{events, safety};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::events::TopologyEvent;
use model::topology::stage::is_legal_successor;
use sim::History;
use std::collections::{BTreeMap, BTreeSet};

/// The stage checker.
pub struct StageMonotonicity;

impl Checker for StageMonotonicity {
    fn name(&self) -> &'static str {
        "stage"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let mut out = Vec::new();
        let mut last = BTreeMap::new();
        let mut sessions_seen = BTreeSet::new();
        let mut cur_session = BTreeMap::new();
        for (e, ev) in events(h) {
            let TopologyEvent::StageCommitted {
                tablet,
                stage,
                session,
                term,
                fenced_term,
                ..
            } = ev
            else {
                continue;
            };
            let prev = last.get(&tablet).copied().flatten();
            if !is_legal_successor(prev, stage) {
                out.push(safety(
                    self.name(),
                    format!("{tablet}: illegal stage change {prev:?} -> {stage:?}"),
                    &e,
                ));
            }
            if let Some(t) = term {
                if t < fenced_term {
                    out.push(safety(self.name(), format!(
                            "{tablet}: a commit of coordinator term {t} took effect after term {fenced_term} fenced it"
                        ), &e));
                }
            }
            if let Some(s) = session {
                if cur_session.get(&tablet) != Some(&s) && !sessions_seen.insert(s) {
                    out.push(safety(
                        self.name(),
                        format!("{tablet}: session {s} reused by a new stage"),
                        &e,
                    ));
                }
            }
            match session {
                Some(s) => cur_session.insert(tablet, s),
                None => cur_session.remove(&tablet),
            };
            last.insert(tablet, stage);
        }
        out
    }
}
