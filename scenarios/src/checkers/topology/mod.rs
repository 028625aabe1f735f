//! Checkers of the topology area (SPEC §1.8, §2.6): fencing, barrier, data, liveness and stage
//! monotonicity, plus the scripted stories' own expectations. Each reads only the history (the
//! model's `TopologyEvent`s and the harness's events) and the run's final state.

pub mod barrier;
pub mod data;
pub mod expectations;
pub mod fencing;
pub mod liveness;
pub mod stage;

use crate::scenario::{Verdict, Violation};
use model::topology::events::TopologyEvent;
use model::topology::{SessionId, TabletId};
use sim::{History, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// Where an event sits in the history.
#[derive(Clone, Copy, Debug)]
pub struct At {
    /// History index.
    pub index: usize,
    /// Virtual time, ns.
    pub at_ns: u64,
    /// Node that recorded it.
    pub node: Option<NodeId>,
}

/// Every topology event of the history, with its position.
pub fn events(h: &History) -> Vec<(At, TopologyEvent)> {
    h.entries()
        .iter()
        .filter_map(|e| {
            e.proto::<TopologyEvent>().map(|ev| {
                (
                    At {
                        index: e.index,
                        at_ns: e.at.0,
                        node: e.node,
                    },
                    ev.clone(),
                )
            })
        })
        .collect()
}

/// A safety violation at `at`.
pub fn safety(checker: &str, message: String, at: &At) -> Violation {
    Violation {
        checker: checker.to_string(),
        verdict: Verdict::Safety,
        message,
        at_index: Some(at.index),
        at_ns: Some(at.at_ns),
    }
}

/// The session timeline reconstructed from committed tablet rows.
#[derive(Debug, Default)]
pub struct Sessions {
    /// (version, open sessions after every commit up to that version), ascending.
    open_by_version: Vec<(u64, BTreeSet<SessionId>)>,
    /// Session → version of the commit that removed it.
    pub closed_at: BTreeMap<SessionId, u64>,
    /// Session → migration id it belongs to.
    pub migration_of: BTreeMap<SessionId, u64>,
    /// Session → tablet.
    pub tablet_of: BTreeMap<SessionId, TabletId>,
}

impl Sessions {
    /// Build from the history's `stage_committed` events.
    pub fn from_events(evs: &[(At, TopologyEvent)]) -> Self {
        let mut s = Sessions::default();
        let mut cur: BTreeMap<TabletId, SessionId> = BTreeMap::new();
        for (_, ev) in evs {
            if let TopologyEvent::StageCommitted {
                version,
                tablet,
                session,
                migration,
                ..
            } = ev
            {
                let before = cur.get(tablet).copied();
                match session {
                    Some(id) => {
                        cur.insert(*tablet, *id);
                        s.migration_of.entry(*id).or_insert(*migration);
                        s.tablet_of.entry(*id).or_insert(*tablet);
                    }
                    None => {
                        cur.remove(tablet);
                    }
                }
                if let Some(b) = before {
                    if Some(b) != *session {
                        s.closed_at.entry(b).or_insert(*version);
                    }
                }
                let open: BTreeSet<SessionId> = cur.values().copied().collect();
                match s.open_by_version.last_mut() {
                    Some((v, set)) if *v == *version => *set = open,
                    _ => s.open_by_version.push((*version, open)),
                }
            }
        }
        s
    }

    /// The sessions group0 listed as open at topology version `v`.
    pub fn open_at(&self, v: u64) -> BTreeSet<SessionId> {
        let i = self.open_by_version.partition_point(|(ver, _)| *ver <= v);
        if i == 0 {
            BTreeSet::new()
        } else {
            self.open_by_version[i - 1].1.clone()
        }
    }
}
