//! Liveness (SPEC §5.12, DESIGN "converge"): after the heal, every node's batchlog drains —
//! no live entry in `initial` or `failed_replay` — within the converge budget. Names what is
//! stuck, from the final state.

use super::no_lost_batch::live_ids;
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use sim::History;

/// The batchlog-drained checker.
pub struct BatchlogDrained;

impl Checker for BatchlogDrained {
    fn name(&self) -> &'static str {
        "batchlog_drained"
    }

    fn check(&self, _cfg: &RunConfig, _h: &History, end: &RunEnd) -> Vec<Violation> {
        live_ids(end)
            .into_iter()
            .map(|(id, wheres)| {
                Violation::liveness(
                    self.name(),
                    format!(
                        "batch {id} still live in the batchlog after converge: {}",
                        wheres.join(", ")
                    ),
                )
            })
            .collect()
    }
}
