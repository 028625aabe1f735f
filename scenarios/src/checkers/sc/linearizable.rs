//! Linearizability of every key of a strongly consistent table, from the client events alone
//! (`sc_invoke` / `sc_complete`): per key, a register history over ok / failed / unknown
//! outcomes searched by [`super::lin`]. An operation whose end was never recorded (its
//! coordinator crashed) is unknown.
//!
//! Each key is decided twice: by the Wing–Gong/Lowe search (bounded by [`SEARCH_BUDGET`]) and
//! by the exact polynomial decision for distinct-value registers. A search that runs out of
//! budget (a long stall leaves dozens of writes concurrent) defers to the decision; two
//! verdicts that disagree are reported as a violation of the checker itself.

use super::lin::{
    check_register, check_register_groups, from_outcomes, ClientOp, LinResult, RegOp,
};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::sc::ScClientEvent;
use model::Outcome;
use sim::History;
use std::collections::BTreeMap;

/// Steps one key's search may take before it is called inconclusive.
pub const SEARCH_BUDGET: u64 = 300_000;

/// Every key's history is linearizable.
pub struct Linearizable;

/// The per-key register histories of a run, in key order.
pub fn key_histories(h: &History) -> BTreeMap<u64, Vec<ClientOp>> {
    let mut ops: BTreeMap<u64, (u64, ClientOp)> = BTreeMap::new();
    for e in h.entries().iter() {
        match e.proto::<ScClientEvent>() {
            Some(&ScClientEvent::Invoke { op, key, write }) => {
                let reg = match write {
                    Some(v) => RegOp::Write(v),
                    None => RegOp::Read(None),
                };
                let c = ClientOp {
                    id: op,
                    call: e.index as u64,
                    ret: None,
                    op: reg,
                    outcome: Outcome::Unknown,
                };
                ops.insert(op, (key, c));
            }
            Some(&ScClientEvent::Complete { op, outcome, value }) => {
                if let Some((_, c)) = ops.get_mut(&op) {
                    c.ret = Some(e.index as u64);
                    c.outcome = outcome;
                    if let RegOp::Read(_) = c.op {
                        c.op = RegOp::Read(value);
                    }
                }
            }
            None => {}
        }
    }
    let mut by_key: BTreeMap<u64, Vec<ClientOp>> = BTreeMap::new();
    for (_, (key, c)) in ops {
        by_key.entry(key).or_default().push(c);
    }
    by_key
}

impl Checker for Linearizable {
    fn name(&self) -> &'static str {
        "sc_linearizable"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let mut out = Vec::new();
        let by_key = key_histories(h);
        let entries = h.entries();
        for (key, ops) in by_key {
            let hist = from_outcomes(&ops);
            let exact = check_register_groups(&hist);
            let verdict = match check_register(&hist, SEARCH_BUDGET) {
                LinResult::Inconclusive => exact,
                searched => {
                    if (searched == LinResult::Linearizable) != (exact == LinResult::Linearizable) {
                        out.push(Violation::safety(
                            self.name(),
                            format!("key {key}: the search says {searched:?}, the group decision {exact:?}"),
                            None,
                        ));
                    }
                    searched
                }
            };
            if let LinResult::NotLinearizable { stuck_at, placed } = verdict {
                let at = ops
                    .iter()
                    .find(|o| o.id == stuck_at)
                    .map(|o| o.call as usize);
                out.push(Violation::safety(
                    self.name(),
                    format!(
                        "key {key}: no linearization of its {} operations; the deepest attempt placed {placed} and could not place operation {stuck_at}",
                        hist.len()
                    ),
                    at.and_then(|i| entries.get(i)),
                ));
            }
        }
        out
    }
}
