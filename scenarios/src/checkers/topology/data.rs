//! Data (SPEC §2.6 corollaries, §3 steps 12–15): every acknowledged write is readable (from the
//! replica set the stage routes reads to) until something deletes it, and nothing deleted or
//! truncated comes back (no resurrection). Writes go to fresh keys with unique values, so each
//! key has one write; unknown writes may or may not be present.

use super::events;
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::events::{OpKind, OpOutcome, TopologyEvent};
use model::topology::{Key, Value};
use sim::History;
use std::collections::BTreeMap;

/// The data checker.
pub struct Data;

#[derive(Clone, Copy, Debug)]
struct Op {
    kind: OpKind,
    key: Key,
    value: Option<Value>,
    invoke: usize,
    complete: Option<usize>,
    outcome: Option<OpOutcome>,
}

impl Checker for Data {
    fn name(&self) -> &'static str {
        "data"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let entries = h.entries();
        let evs = events(&entries);
        let mut ops: BTreeMap<u64, Op> = BTreeMap::new();
        let mut read_values: BTreeMap<u64, Option<Value>> = BTreeMap::new();
        for (e, ev) in &evs {
            match ev {
                TopologyEvent::OpInvoke {
                    op,
                    kind,
                    key,
                    value,
                } => {
                    ops.insert(
                        *op,
                        Op {
                            kind: *kind,
                            key: *key,
                            value: *value,
                            invoke: e.index,
                            complete: None,
                            outcome: None,
                        },
                    );
                }
                TopologyEvent::OpComplete {
                    op, outcome, value, ..
                } => {
                    if let Some(o) = ops.get_mut(op) {
                        o.complete = Some(e.index);
                        o.outcome = Some(*outcome);
                    }
                    read_values.insert(*op, *value);
                }
                _ => {}
            }
        }
        let writes: BTreeMap<Key, Op> = ops
            .values()
            .filter(|o| o.kind == OpKind::Write)
            .map(|o| (o.key, *o))
            .collect();
        // Erasures of a key: its deletes and every truncate, in op-id order (built once: a
        // scan of every op per read made this checker quadratic in the run's length).
        let mut truncates: Vec<Op> = Vec::new();
        let mut deletes: BTreeMap<Key, Vec<Op>> = BTreeMap::new();
        for o in ops.values() {
            match o.kind {
                OpKind::Truncate => truncates.push(*o),
                OpKind::Delete => deletes.entry(o.key).or_default().push(*o),
                _ => {}
            }
        }
        let erasures = |key: Key| {
            truncates
                .iter()
                .chain(deletes.get(&key).into_iter().flatten())
        };
        let mut out = Vec::new();
        for (id, r) in &ops {
            if r.kind != OpKind::Read || r.outcome != Some(OpOutcome::Ok) {
                continue;
            }
            let (Some(rc), Some(w)) = (r.complete, writes.get(&r.key)) else {
                continue;
            };
            let got = read_values.get(id).copied().flatten();
            match w.outcome {
                Some(OpOutcome::Ok) => {
                    let wc = w.complete.expect("completed");
                    // A definite erasure that started after the write was acknowledged and
                    // finished before the read started: the value must be gone.
                    let erased = erasures(r.key).any(|d| {
                        d.outcome == Some(OpOutcome::Ok)
                            && d.invoke > wc
                            && d.complete.is_some_and(|c| c < r.invoke)
                    });
                    // Any erasure that may have taken effect before the read completed.
                    let maybe_erased = erasures(r.key).any(|d| d.invoke < rc);
                    if erased && got.is_some() {
                        out.push(Violation::safety(
                            self.name(),
                            format!(
                                "key {} was deleted or truncated after its write was acknowledged, yet a later read returned {:?} (resurrection)",
                                r.key, got
                            ),
                            Some(&entries[rc]),
                        ));
                    } else if !maybe_erased && wc < r.invoke && got != w.value {
                        out.push(Violation::safety(
                            self.name(),
                            format!(
                                "acknowledged write of key {} = {:?} not readable: read returned {:?}",
                                r.key, w.value, got
                            ),
                            Some(&entries[rc]),
                        ));
                    }
                }
                Some(OpOutcome::Failed)
                    if got.is_some() && w.complete.is_some_and(|c| c < r.invoke) =>
                {
                    out.push(Violation::safety(
                        self.name(),
                        format!("failed write of key {} became visible: {:?}", r.key, got),
                        Some(&entries[rc]),
                    ));
                }
                _ => {}
            }
        }
        out
    }
}
