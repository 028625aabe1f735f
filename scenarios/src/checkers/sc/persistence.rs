//! Persistence of each tablet group's Raft state across a node's incarnations (SPEC §7.5),
//! from `sc_durable` (what a successful sync made durable) and `sc_loaded` (what a server read
//! back at start):
//! - the loaded term, commit index and snapshot index are at least what any earlier
//!   incarnation made durable (they never decrease across restarts);
//! - the loaded log reaches at least the highest durable commit index (committed entries are
//!   never lost);
//! - a vote once durable in a term is never replaced by another candidate, nor forgotten, in
//!   that term.

use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::raft::GroupId;
use model::sc::ScEvent;
use sim::{History, NodeId};
use std::collections::BTreeMap;

/// Group state never goes back across incarnations; one vote per term.
pub struct Persistence;

#[derive(Default, Clone, Copy)]
struct Seen {
    term: u64,
    commit: u64,
    snapshot_idx: u64,
}

impl Checker for Persistence {
    fn name(&self) -> &'static str {
        "sc_persistence"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let mut out = Vec::new();
        // (group, node) → highest durable values, and the incarnation they came from.
        let mut durable: BTreeMap<(GroupId, NodeId), (u32, Seen)> = BTreeMap::new();
        let mut votes: BTreeMap<(GroupId, NodeId, u64), NodeId> = BTreeMap::new();
        let entries = h.entries();
        for e in entries.iter() {
            let Some(ev) = e.proto::<ScEvent>() else {
                continue;
            };
            let Some(node) = e.node else { continue };
            let (g, term, vote) = match *ev {
                ScEvent::Durable {
                    g,
                    inc,
                    term,
                    vote,
                    commit,
                    snapshot_idx,
                    ..
                } => {
                    let d = durable.entry((g, node)).or_default();
                    d.0 = d.0.max(inc);
                    d.1.term = d.1.term.max(term);
                    d.1.commit = d.1.commit.max(commit);
                    d.1.snapshot_idx = d.1.snapshot_idx.max(snapshot_idx);
                    (g, term, vote)
                }
                ScEvent::Loaded {
                    g,
                    inc,
                    term,
                    vote,
                    commit,
                    snapshot_idx,
                    log_last,
                    ..
                } => {
                    if let Some(&(from, d)) = durable.get(&(g, node)) {
                        let mut bad = |what: &str, got: u64, had: u64| {
                            out.push(Violation::safety(
                                self.name(),
                                format!("{g} on {node}: incarnation {inc} loaded {what} {got}, below the {had} incarnation {from} had made durable"),
                                Some(e),
                            ));
                        };
                        if term < d.term {
                            bad("vote term", term, d.term);
                        }
                        if commit < d.commit {
                            bad("commit index", commit, d.commit);
                        }
                        if snapshot_idx < d.snapshot_idx {
                            bad("snapshot index", snapshot_idx, d.snapshot_idx);
                        }
                        if log_last < d.commit {
                            bad("a log ending at", log_last, d.commit);
                        }
                    }
                    let d = durable.entry((g, node)).or_default();
                    d.0 = d.0.max(inc);
                    d.1.term = d.1.term.max(term);
                    d.1.commit = d.1.commit.max(commit);
                    d.1.snapshot_idx = d.1.snapshot_idx.max(snapshot_idx);
                    (g, term, vote)
                }
                _ => continue,
            };
            match (votes.get(&(g, node, term)).copied(), vote) {
                (None, Some(v)) => {
                    votes.insert((g, node, term), v);
                }
                (Some(had), Some(v)) if had != v => out.push(Violation::safety(
                    self.name(),
                    format!("{g} on {node}: voted for {v} in term {term} after a durable vote for {had}"),
                    Some(e),
                )),
                (Some(had), None) => out.push(Violation::safety(
                    self.name(),
                    format!("{g} on {node}: the durable vote for {had} in term {term} was forgotten"),
                    Some(e),
                )),
                _ => {}
            }
        }
        out
    }
}
