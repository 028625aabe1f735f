//! No resurrection (SPEC §5.5, upstream issue #24415): a row whose delete was acknowledged
//! never reads again with a value written *before* that delete. Tombstone GC in `repair` mode
//! purges a tombstone once the table's repair time is past it by `propagation_delay`; if a
//! batch older than the delete is still waiting in some batchlog then, its replay writes the
//! old value back and nothing shadows it any more.
//!
//! Judged as a QUORUM read would see the final state: among the final replicas of the key's
//! tablet, a read of some quorum can miss every replica that holds the delete (a cell at the
//! delete's timestamp or newer, live or tombstone) exactly when fewer than a quorum hold it;
//! the key is resurrected if one of the others holds a live value older than the delete. A
//! single replica that merely missed the delete is not enough (row repair, modelled only as part
//! of a repair of a repair-mode table, would bring it the tombstone).
//! Keys written again after the delete (a batch mutation with a newer timestamp) are left out.
//!
//! Reads the history (`delete_complete` ok, `batch_invoke`) and the final state's `tablets`,
//! `cells` and `tombstones` (replica → tablet → key → timestamp), never the model.

use super::{events, safety};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::batchlog::types::TableId;
use model::batchlog::{BatchlogEvent, Outcome};
use sim::History;
use std::collections::BTreeMap;

/// The no-resurrection checker.
pub struct NoResurrection;

impl Checker for NoResurrection {
    fn name(&self) -> &'static str {
        "batchlog_no_resurrection"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, end: &RunEnd) -> Vec<Violation> {
        let fs = &end.final_state;
        let (Some(tablets), Some(cells)) = (
            fs.get("tablets").and_then(|t| t.as_object()),
            fs.get("cells").and_then(|c| c.as_object()),
        ) else {
            return Vec::new();
        };
        let tombstones = fs.get("tombstones").and_then(|t| t.as_object());
        let entries = h.entries();
        let evs = events(&entries);
        // The newest acknowledged delete of each key, and the newest write to it.
        let mut deleted: BTreeMap<(TableId, u64), (u64, usize)> = BTreeMap::new();
        let mut written: BTreeMap<(TableId, u64), u64> = BTreeMap::new();
        for (i, e) in evs.iter().enumerate() {
            match &e.ev {
                BatchlogEvent::DeleteComplete {
                    table,
                    key,
                    ts,
                    outcome: Outcome::Ok,
                } => {
                    let d = deleted.entry((*table, *key)).or_insert((*ts, i));
                    if *ts > d.0 {
                        *d = (*ts, i);
                    }
                }
                BatchlogEvent::BatchInvoke { mutations, .. } => {
                    for m in mutations {
                        let w = written.entry((m.table, m.key)).or_insert(m.ts);
                        *w = (*w).max(m.ts);
                    }
                }
                _ => {}
            }
        }
        let at = |map: &serde_json::Map<String, serde_json::Value>, r: &str, t: &str, k: u64| {
            map.get(r)?.get(t)?.get(k.to_string())?.as_u64()
        };
        let mut out = Vec::new();
        for ((table, key), (d_ts, i)) in deleted {
            if written.get(&(table, key)).is_some_and(|w| *w > d_ts) {
                continue;
            }
            let schema = table.schema_id().0;
            let prefix = format!("table{schema}/");
            let n = tablets.keys().filter(|t| t.starts_with(&prefix)).count() as u64;
            if n == 0 {
                continue;
            }
            let tablet = format!("table{schema}/t{}", key % n);
            let Some(replicas) = tablets.get(&tablet).and_then(|r| r.as_array()) else {
                continue;
            };
            let replicas: Vec<&str> = replicas.iter().filter_map(|r| r.as_str()).collect();
            let quorum = replicas.len() / 2 + 1;
            let live = |r: &str| at(cells, r, &tablet, key);
            let dead = |r: &str| tombstones.and_then(|m| at(m, r, &tablet, key));
            let holders = replicas
                .iter()
                .filter(|r| live(r).max(dead(r)).is_some_and(|ts| ts >= d_ts))
                .count();
            if holders >= quorum {
                continue;
            }
            let old: Vec<String> = replicas
                .iter()
                .filter_map(|r| {
                    live(r)
                        .filter(|ts| *ts < d_ts)
                        .map(|ts| format!("{r} (ts {ts})"))
                })
                .collect();
            if !old.is_empty() {
                out.push(safety(
                    self.name(),
                    format!(
                        "deleted row {table}:{key} is back: its delete (ts {d_ts}) was acknowledged, but only {holders}/{quorum} of the final replicas of {tablet} still hold it, and a QUORUM read can return the older value on {}",
                        old.join(", ")
                    ),
                    Some(&evs[i]),
                ));
            }
        }
        out
    }
}
