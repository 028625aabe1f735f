//! Checkers of the topology area (SPEC §1.8, §2.6): fencing, barrier, data, liveness and stage
//! monotonicity, plus the scripted stories' own expectations. Each reads only the history (the
//! model's `TopologyEvent`s and the harness's events) and the run's final state.

pub mod barrier;
pub mod data;
pub mod expectations;
pub mod fencing;
pub mod group0_tables;
pub mod liveness;
pub mod routing;
pub mod scoping;
pub mod skew;
pub mod stage;

use crate::scenario::{Verdict, Violation};
use model::raft::RaftEvent;
use model::topology::events::TopologyEvent;
use model::topology::stage::Stage;
use model::topology::{SessionId, TabletId};
use sim::{Entry, History, NodeId, SimEvent};
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

/// Every topology event of the history (`h.entries()`), with its position. The events are
/// borrowed from the history, not cloned: every checker of the area reads them.
pub fn events(entries: &[Entry]) -> Vec<(At, &TopologyEvent)> {
    entries
        .iter()
        .filter_map(|e| {
            e.proto::<TopologyEvent>().map(|ev| {
                (
                    At {
                        index: e.index,
                        at_ns: e.at.0,
                        node: e.node,
                    },
                    ev,
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
    /// Topology-wide sessions (`system.topology.session` of a node operation) → the node.
    pub node_of: BTreeMap<SessionId, NodeId>,
}

impl Sessions {
    /// Did group0 ever list `s` (a tablet's or the topology's session)?
    pub fn listed(&self, s: &SessionId) -> bool {
        self.tablet_of.contains_key(s) || self.node_of.contains_key(s)
    }
}

impl Sessions {
    /// Build from the history's `stage_committed` events.
    pub fn from_events(evs: &[(At, &TopologyEvent)]) -> Self {
        let mut s = Sessions::default();
        let mut cur: BTreeMap<TabletId, SessionId> = BTreeMap::new();
        let mut topo: Option<SessionId> = None;
        for (_, ev) in evs {
            if let TopologyEvent::NodeTransitionCommitted {
                version,
                node,
                session,
                ..
            } = ev
            {
                if let Some(id) = session {
                    s.node_of.entry(*id).or_insert(*node);
                }
                if let Some(b) = topo {
                    if Some(b) != *session {
                        s.closed_at.entry(b).or_insert(*version);
                    }
                }
                topo = *session;
                let open: BTreeSet<SessionId> = cur.values().copied().chain(topo).collect();
                match s.open_by_version.last_mut() {
                    Some((v, set)) if *v == *version => *set = open,
                    _ => s.open_by_version.push((*version, open)),
                }
                continue;
            }
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
                let open: BTreeSet<SessionId> = cur.values().copied().chain(topo).collect();
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

/// One step of a [`walk`]: a topology event with the recording node's group0 view at that
/// point, or a crash (everything the node held in memory is gone).
#[derive(Debug)]
pub enum Step<'h> {
    /// A topology event (borrowed from the history).
    Topo(At, &'h TopologyEvent, NodeView),
    /// A node crashed.
    Crash(At),
}

/// What a node had applied of group0 at a point of the history, derived from the harness's
/// per-node Raft apply events and the group0-committed versions — never from what the node
/// says about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeView {
    /// Last group0 index the node's current incarnation applied.
    pub applied: u64,
    /// `system.topology.version` at that index.
    pub version: u64,
    /// `system.topology.fence_version` at that index.
    pub fence: u64,
}

/// group0-committed (version, fence_version) by group0 index, from `topology_committed`.
#[derive(Debug, Default)]
pub struct Versions(BTreeMap<u64, (u64, u64)>);

impl Versions {
    /// Collect from the whole history.
    pub fn of(h: &History) -> Self {
        Self::of_entries(&h.entries())
    }

    /// Collect from the history's entries.
    pub fn of_entries(entries: &[Entry]) -> Self {
        let mut m = BTreeMap::new();
        for e in entries {
            if let Some(TopologyEvent::TopologyCommitted {
                index,
                version,
                fence_version,
                ..
            }) = e.proto::<TopologyEvent>()
            {
                m.insert(*index, (*version, *fence_version));
            }
        }
        Versions(m)
    }

    /// (version, fence_version) after applying group0 up to `index` (the initial state has
    /// version 1, fence 0).
    pub fn at(&self, index: u64) -> (u64, u64) {
        self.0
            .range(..=index)
            .next_back()
            .map_or((1, 0), |(_, v)| *v)
    }
}

/// A [`walk`] without borrows of the history, as [`History::memo`] keeps it: per step the
/// event's position and, for a topology event, the node's view (`None`: a crash).
struct WalkMemo(Vec<(At, Option<NodeView>)>);

impl WalkMemo {
    fn of(entries: &[Entry]) -> WalkMemo {
        let versions = Versions::of_entries(entries);
        let mut applied: BTreeMap<NodeId, u64> = BTreeMap::new();
        let mut out = Vec::new();
        for e in entries {
            let at = At {
                index: e.index,
                at_ns: e.at.0,
                node: e.node,
            };
            if let Some(RaftEvent::Applied { g, i, .. }) = e.proto::<RaftEvent>() {
                if g.is_group0() {
                    if let Some(n) = e.node {
                        let a = applied.entry(n).or_default();
                        *a = (*a).max(*i);
                    }
                }
            } else if let Some(SimEvent::Crash { .. }) = e.sim() {
                if let Some(n) = e.node {
                    applied.remove(&n);
                    out.push((at, None));
                }
            } else if e.proto::<TopologyEvent>().is_some() {
                let view = e.node.map_or_else(NodeView::default, |n| {
                    let a = applied.get(&n).copied().unwrap_or(0);
                    let (version, fence) = versions.at(a);
                    NodeView {
                        applied: a,
                        version,
                        fence,
                    }
                });
                out.push((at, Some(view)));
            }
        }
        WalkMemo(out)
    }
}

/// Every topology event of the history (`entries`, which are `h.entries()`) in order with its
/// node's group0 view, and every crash. Derived once per run for every checker that walks
/// ([`History::memo`]).
pub fn walk<'h>(h: &History, entries: &'h [Entry]) -> impl Iterator<Item = Step<'h>> + 'h {
    let memo = h.memo(WalkMemo::of);
    (0..memo.0.len()).map(move |i| {
        let (at, view) = memo.0[i];
        match view {
            None => Step::Crash(at),
            Some(view) => Step::Topo(
                at,
                entries[at.index]
                    .proto::<TopologyEvent>()
                    .expect("a walk step of a topology event"),
                view,
            ),
        }
    })
}

/// One committed stage of one migration, as group0 recorded it.
#[derive(Clone, Copy, Debug)]
pub struct StageAt {
    /// The stage (`None`: the transition was deleted).
    pub stage: Option<Stage>,
    /// Topology version after the commit.
    pub version: u64,
    /// group0 index of the commit.
    pub index: u64,
    /// History position of the commit.
    pub at: usize,
}

/// Every migration's committed stages, in order: (tablet, migration id) → stages.
pub fn migrations(evs: &[(At, &TopologyEvent)]) -> BTreeMap<(TabletId, u64), Vec<StageAt>> {
    let mut m: BTreeMap<(TabletId, u64), Vec<StageAt>> = BTreeMap::new();
    for (e, ev) in evs {
        if let TopologyEvent::StageCommitted {
            index,
            version,
            tablet,
            migration,
            stage,
            ..
        } = ev
        {
            m.entry((*tablet, *migration)).or_default().push(StageAt {
                stage: *stage,
                version: *version,
                index: *index,
                at: e.index,
            });
        }
    }
    m
}
