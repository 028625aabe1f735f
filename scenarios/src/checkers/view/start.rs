//! V1 (SPEC §6.11): the coordinator never *starts* a batch for a tablet in transition, as seen
//! in its own group0 state (the index it had applied when it selected the tasks); and a batch
//! running on the leaving replica of a migration is aborted once its worker has applied the
//! `allow_write_both_read_old → write_both_read_old` commit — it never reports its tasks done
//! from a later state.

use super::{safety, Item, Read};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::view::events::BatchEnd;
use model::view::ViewEvent;
use sim::History;
use std::collections::BTreeMap;

/// The V1 checker.
pub struct NoStartInTransition;

const NAME: &str = "vb_no_start_in_transition";

impl Checker for NoStartInTransition {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let r = Read::of(h);
        let mut out = Vec::new();
        // batch → (node, shard, tablet, applied at start)
        let mut started = BTreeMap::new();
        // (tablet, leaving replica, group0 index) of every abort edge
        let mut edges = Vec::new();
        for (at, it) in &r.items {
            match it {
                Item::Stage {
                    index,
                    tablet,
                    leaving: Some(l),
                    abort_edge: true,
                    ..
                } => edges.push((*tablet, *l, *index)),
                Item::View(ViewEvent::WorkSent {
                    applied,
                    tasks,
                    replica,
                    term,
                    ..
                }) => {
                    for id in tasks {
                        let Some(t) = r.tasks.get(id) else { continue };
                        if r.in_transition(t.tablet, *applied) {
                            out.push(safety(NAME, format!("the coordinator of term {term} started {id} on {replica} while {} was in transition in its state (group0 index {applied})", t.tablet), at));
                        }
                    }
                }
                Item::View(ViewEvent::BatchStarted {
                    batch,
                    shard,
                    tablet,
                    applied,
                    ..
                }) => {
                    started.insert(*batch, (at.node, *shard, *tablet, *applied));
                }
                Item::View(ViewEvent::BatchFinished {
                    batch,
                    end: BatchEnd::Done,
                    applied,
                    ..
                }) => {
                    let Some((node, shard, tablet, from)) = started.get(batch) else {
                        continue;
                    };
                    for (t, l, i) in &edges {
                        if t == tablet
                            && Some(l.node) == *node
                            && l.shard == *shard
                            && *from < *i
                            && *applied >= *i
                        {
                            out.push(safety(NAME, format!("batch {batch} on the leaving replica {l} of {t} finished its tasks although its worker had applied the migration's abort commit (group0 index {i})"), at));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}
