//! group0's state tables agree with its log: every time a restarted node compared the rows its
//! `system.topology` / `system.tablets` held (the state at the applied index they name) with
//! the state re-applying its log reached at that index, the two are the same
//! ([`TopologyEvent::Group0TablesChecked`]). A difference means an applied change never reached
//! the tables, or reached them wrongly: upstream serves from those tables after a restart.

use super::{events, safety};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::events::TopologyEvent;
use sim::History;

/// The group0 state-tables checker.
pub struct Group0TablesMatchLog;

impl Checker for Group0TablesMatchLog {
    fn name(&self) -> &'static str {
        "group0_tables"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let mut out = Vec::new();
        let entries = h.entries();
        for (at, ev) in events(&entries) {
            let TopologyEvent::Group0TablesChecked {
                index,
                replayed_index,
                tables,
                replayed,
                difference,
            } = ev
            else {
                continue;
            };
            let node = at.node.map_or("?".to_string(), |n| n.to_string());
            if replayed_index != index {
                out.push(safety(
                    self.name(),
                    format!("{node}'s group0 tables name applied index {index}, but its log replay went from below it to {replayed_index}"),
                    &at,
                ));
            } else if tables != replayed || difference.is_some() {
                out.push(safety(
                    self.name(),
                    format!(
                        "{node}'s group0 tables at index {index} differ from its re-applied log ({tables} vs {replayed}): {}",
                        difference.as_deref().unwrap_or_default()
                    ),
                    &at,
                ));
            }
        }
        out
    }
}
