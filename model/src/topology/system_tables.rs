//! group0's state tables on the storage engine: `system.topology` and `system.tablets` on
//! shard 0 of every node, written by the group0 state machine as it applies (upstream's group0
//! commands are mutations of these tables; its state machine applies them and reloads the
//! in-memory topology from them).
//!
//! | table | partition | clustering | cells |
//! |---|---|---|---|
//! | `system.topology` | `"topology"` | the static row, then one row per node | static: version, fence_version, coordinator term, balancing, session, transition state, ignored nodes, state id, applied index; node rows: shard count, `node_state`, join request |
//! | `system.tablets` | table id | tablet index | `replicas`, transition (stage, `new_replicas`, session, migration id) |
//!
//! After every applied command ([`Group0Tables::on_apply`]) the rows that changed are written
//! (a row gone from the state is a row tombstone) together with the static row, which carries
//! the applied group0 index. The writes are buffered on the node's disk like every engine write
//! and become durable with the next sync (group0's own log sync, in practice), so what a crash
//! leaves in the tables is the state at some applied index `A` the static row names.
//!
//! On restart the check: the node re-applies its log from index 1 (the model's group0 has no
//! snapshots); the replay skips the table writes up to `A`, and when it reaches `A` the rows
//! the tables hold are compared with the rows of the re-applied state, recorded as
//! [`TopologyEvent::Group0TablesChecked`] (both digests) for the `group0_tables` checker, and
//! counted as [`MARK_TABLES_CHECKED`].
//!
//! Simplifications (said here because they bound what the check can see):
//! - the model still re-applies the whole log on every restart and serves from the in-memory
//!   state; the tables are a mirror checked against it, never read back in service (upstream
//!   reloads from them; restart cost is measured in BENCHMARKS.md);
//! - no group0 snapshots and no log truncation;
//! - the view-building tables and the bounded command-outcome list are not mirrored;
//! - the applied index lives in `system.topology`'s static row (upstream: `group0_history`).
//!
//! Mutant [`MUTANT_TABLES_SKIP_TRANSITIONS`]: a tablet row is written only when its replica
//! set changes, so stage changes of a migration never reach `system.tablets`.

use super::events::TopologyEvent;
use super::ids::{NodeId, SessionId, ShardId, TabletId};
use super::state::{NodeState, NodeTransition, TabletInfo, TopologyState};
use crate::schema::TableId;
use crate::storage::{Engine, Keys, Mutation, TableConfig, TableRef};
use sim::Sim;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher;
use std::rc::Rc;

/// `system.topology`.
pub const TOPOLOGY_TABLE: TableId = TableId(1);
/// `system.tablets`.
pub const TABLETS_TABLE: TableId = TableId(2);
/// The shard the tables live on.
pub const TABLES_SHARD: ShardId = ShardId(0);
/// Coverage mark: a restarted node compared its tables with its re-applied state.
pub const MARK_TABLES_CHECKED: &str = "group0 tables checked against the re-applied log";
/// Mutant: tablet rows are written only when their replicas change.
pub const MUTANT_TABLES_SKIP_TRANSITIONS: &str = "group0-tables-skip-transitions";

/// `system.topology`'s static cells.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopologyStatics {
    /// `version`.
    pub version: u64,
    /// `fence_version`.
    pub fence_version: u64,
    /// The fencing coordinator term.
    pub coordinator_term: u64,
    /// `tablet_balancing_enabled`.
    pub tablet_balancing_enabled: bool,
    /// `session`.
    pub session: Option<SessionId>,
    /// The node worked on and `transition_state`.
    pub node_transition: Option<(NodeId, NodeTransition)>,
    /// `ignored_nodes`.
    pub excluded: BTreeSet<NodeId>,
    /// The group0 state id.
    pub state_id: u64,
    /// The next fresh session id.
    pub next_session: u64,
}

/// A node row of `system.topology`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeRow {
    /// Shard count, while a member (normal or joining).
    pub shards: Option<u32>,
    /// `node_state`.
    pub node_state: Option<NodeState>,
    /// Shard count of a pending join request.
    pub join_request: Option<u32>,
}

/// The rows of both tables (what they hold, or what a state projects to).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopologyRows {
    /// The static row.
    pub statics: TopologyStatics,
    /// Node rows.
    pub nodes: BTreeMap<NodeId, NodeRow>,
    /// Tablet rows.
    pub tablets: BTreeMap<TabletId, TabletInfo>,
}

impl TopologyRows {
    /// The rows `state` projects to.
    pub fn of(state: &TopologyState) -> TopologyRows {
        TopologyRows {
            statics: Self::statics_of(state),
            nodes: Self::nodes_of(state),
            tablets: state.tablets.clone(),
        }
    }

    /// The static row `state` projects to.
    fn statics_of(state: &TopologyState) -> TopologyStatics {
        TopologyStatics {
            version: state.version,
            fence_version: state.fence_version,
            coordinator_term: state.coordinator_term,
            tablet_balancing_enabled: state.tablet_balancing_enabled,
            session: state.session,
            node_transition: state.node_transition,
            excluded: state.excluded.clone(),
            state_id: state.state_id,
            next_session: state.next_session,
        }
    }

    /// The node rows `state` projects to.
    fn nodes_of(state: &TopologyState) -> BTreeMap<NodeId, NodeRow> {
        let mut nodes: BTreeMap<NodeId, NodeRow> = BTreeMap::new();
        for (n, s) in &state.nodes {
            nodes.entry(*n).or_default().shards = Some(*s);
        }
        for (n, s) in &state.node_states {
            nodes.entry(*n).or_default().node_state = Some(*s);
        }
        for (n, s) in &state.join_requests {
            nodes.entry(*n).or_default().join_request = Some(*s);
        }
        nodes
    }

    /// A digest of the rows (stable within one binary).
    pub fn digest(&self) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        h.write(format!("{self:?}").as_bytes());
        format!("{:016x}", h.finish())
    }

    /// The first difference from `other`, for the check's message.
    pub fn first_difference(&self, other: &TopologyRows) -> Option<String> {
        if self.statics != other.statics {
            return Some(format!(
                "static row {:?} vs {:?}",
                self.statics, other.statics
            ));
        }
        let keys: BTreeSet<&NodeId> = self.nodes.keys().chain(other.nodes.keys()).collect();
        for n in keys {
            if self.nodes.get(n) != other.nodes.get(n) {
                return Some(format!(
                    "node row {n}: {:?} vs {:?}",
                    self.nodes.get(n),
                    other.nodes.get(n)
                ));
            }
        }
        let keys: BTreeSet<&TabletId> = self.tablets.keys().chain(other.tablets.keys()).collect();
        for t in keys {
            if self.tablets.get(t) != other.tablets.get(t) {
                return Some(format!(
                    "tablet row {t}: {:?} vs {:?}",
                    self.tablets.get(t),
                    other.tablets.get(t)
                ));
            }
        }
        None
    }
}

/// Clustering key of `system.topology`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TopologyCk {
    /// The static row.
    Static,
    /// A node's row.
    Node(NodeId),
}

/// A `system.topology` row.
#[derive(Clone, Debug)]
pub enum TopologyCell {
    /// The static row, with the applied group0 index.
    Statics(Rc<(TopologyStatics, u64)>),
    /// A node row.
    Node(NodeRow),
}

/// Keys of `system.topology` (one partition).
#[derive(Clone, Copy, Debug)]
pub struct TopologyKeys;

impl Keys for TopologyKeys {
    type Pk = ();
    type Ck = TopologyCk;
    type Bound = ();
    type Cell = TopologyCell;
    fn bound_of(_: &TopologyCk) {}
}

/// Keys of `system.tablets`: partition = table, rows = tablets.
#[derive(Clone, Copy, Debug)]
pub struct TabletsKeys;

impl Keys for TabletsKeys {
    type Pk = TableId;
    type Ck = u32;
    type Bound = ();
    type Cell = TabletInfo;
    fn bound_of(_: &u32) {}
}

/// The state tables of one node incarnation, as the group0 state machine writes them.
pub struct Group0Tables {
    sim: Sim,
    node: NodeId,
    engine: Rc<Engine>,
    topology: TableRef<TopologyKeys>,
    tablets: TableRef<TabletsKeys>,
    /// What the tables hold (buffered writes included).
    held: TopologyRows,
    /// The applied index the tables named when opened.
    loaded_at: u64,
    checked: bool,
    skip_transitions: bool,
    last_ts: u64,
}

impl Group0Tables {
    /// Opens the tables of `node`'s current incarnation (recovered from its disk).
    pub fn open(sim: &Sim, node: NodeId) -> Group0Tables {
        let engine = Engine::of(sim, node);
        let cfg = TableConfig::default();
        let topology = engine.table::<TopologyKeys>(TABLES_SHARD, TOPOLOGY_TABLE, &cfg);
        let tablets = engine.table::<TabletsKeys>(TABLES_SHARD, TABLETS_TABLE, &cfg);
        let mut held = TopologyRows::default();
        let mut loaded_at = 0;
        let mut last_ts = topology.borrow().max_timestamp(&()).unwrap_or(0);
        for r in topology.borrow().live_rows() {
            match (r.ck, r.data) {
                (TopologyCk::Static, TopologyCell::Statics(s)) => {
                    held.statics = s.0.clone();
                    loaded_at = s.1;
                }
                (TopologyCk::Node(n), TopologyCell::Node(row)) => {
                    held.nodes.insert(n, row);
                }
                (ck, cell) => unreachable!("system.topology row {ck:?} holds {cell:?}"),
            }
        }
        let (rows, _) = tablets.borrow().scan_all();
        for r in rows {
            held.tablets.insert(TabletId::new(r.pk, r.ck), r.data);
        }
        let tables: BTreeSet<TableId> = held.tablets.keys().map(|t| t.table).collect();
        for t in tables {
            last_ts = last_ts.max(tablets.borrow().max_timestamp(&t).unwrap_or(0));
        }
        Group0Tables {
            sim: sim.clone(),
            node,
            engine,
            topology,
            tablets,
            held,
            loaded_at,
            checked: loaded_at == 0,
            skip_transitions: sim.mutant(MUTANT_TABLES_SKIP_TRANSITIONS),
            last_ts,
        }
    }

    /// What the tables hold.
    pub fn rows(&self) -> &TopologyRows {
        &self.held
    }

    /// The applied index the tables named when opened.
    pub fn loaded_at(&self) -> u64 {
        self.loaded_at
    }

    fn ts(&mut self) -> u64 {
        self.last_ts = self.sim.now().0.max(self.last_ts + 1);
        self.last_ts
    }

    /// After applying the command at `index` (state `state`): on a replay up to the index the
    /// tables were opened at, nothing is written and, at that index, the tables are checked
    /// against the re-applied state; past it, the changed rows are written.
    pub fn on_apply(&mut self, index: u64, state: &TopologyState) {
        if index < self.loaded_at {
            return;
        }
        if !self.checked {
            self.checked = true;
            let rows = TopologyRows::of(state);
            let diff = self.held.first_difference(&rows);
            self.sim.mark(MARK_TABLES_CHECKED);
            tracing::info!(
                index,
                loaded_at = self.loaded_at,
                "group0 tables at index {} checked against the log re-applied to {index}: {}",
                self.loaded_at,
                diff.as_deref().unwrap_or("equal")
            );
            self.sim.record(
                Some(self.node),
                TopologyEvent::Group0TablesChecked {
                    index: self.loaded_at,
                    replayed_index: index,
                    tables: self.held.digest(),
                    replayed: rows.digest(),
                    difference: diff,
                },
            );
            if index == self.loaded_at {
                return;
            }
        }
        self.write(index, state);
    }

    /// Write the rows of `state` that differ from what the tables hold. The tablet rows are
    /// compared in place (one merge of the two sorted maps, in tablet order) and `held`
    /// updated in place: projecting and cloning every tablet row per applied command cost
    /// ~5 % of a topology swarm.
    fn write(&mut self, index: u64, state: &TopologyState) {
        let rows = TopologyRows {
            statics: TopologyRows::statics_of(state),
            nodes: TopologyRows::nodes_of(state),
            tablets: BTreeMap::new(),
        };
        let mut topo: Vec<Mutation<TopologyKeys>> = Vec::new();
        let ts = self.ts();
        topo.push(Mutation::Insert {
            pk: (),
            ck: TopologyCk::Static,
            ts,
            data: TopologyCell::Statics(Rc::new((rows.statics.clone(), index))),
        });
        let nodes: BTreeSet<NodeId> = rows
            .nodes
            .keys()
            .chain(self.held.nodes.keys())
            .copied()
            .collect();
        for n in nodes {
            match (rows.nodes.get(&n), self.held.nodes.get(&n)) {
                (Some(new), old) if old != Some(new) => topo.push(Mutation::Insert {
                    pk: (),
                    ck: TopologyCk::Node(n),
                    ts,
                    data: TopologyCell::Node(new.clone()),
                }),
                (None, Some(_)) => topo.push(Mutation::DeleteRow {
                    pk: (),
                    ck: TopologyCk::Node(n),
                    ts,
                }),
                _ => {}
            }
        }
        let mut tabs: Vec<Mutation<TabletsKeys>> = Vec::new();
        let mut written: Vec<(TabletId, Option<&TabletInfo>)> = Vec::new();
        let mut new = state.tablets.iter().peekable();
        let mut old = self.held.tablets.iter().peekable();
        loop {
            let (t, new_row, old_row) = match (new.peek(), old.peek()) {
                (None, None) => break,
                (Some((tn, _)), Some((to, _))) if tn == to => {
                    let ((t, n), (_, o)) =
                        (new.next().expect("peeked"), old.next().expect("peeked"));
                    (*t, Some(n), Some(o))
                }
                (Some((tn, _)), Some((to, _))) if tn > to => {
                    let (t, o) = old.next().expect("peeked");
                    (*t, None, Some(o))
                }
                (None, Some(_)) => {
                    let (t, o) = old.next().expect("peeked");
                    (*t, None, Some(o))
                }
                _ => {
                    let (t, n) = new.next().expect("peeked");
                    (*t, Some(n), None)
                }
            };
            match (new_row, old_row) {
                (Some(new), old) if old != Some(new) => {
                    if self.skip_transitions && old.is_some_and(|o| o.replicas == new.replicas) {
                        continue;
                    }
                    written.push((t, Some(new)));
                    tabs.push(Mutation::Insert {
                        pk: t.table,
                        ck: t.index,
                        ts,
                        data: new.clone(),
                    });
                }
                (None, Some(_)) => {
                    written.push((t, None));
                    tabs.push(Mutation::DeleteRow {
                        pk: t.table,
                        ck: t.index,
                        ts,
                    });
                }
                _ => {}
            }
        }
        for (t, row) in written {
            match row {
                Some(r) => self.held.tablets.insert(t, r.clone()),
                None => self.held.tablets.remove(&t),
            };
        }
        self.engine
            .apply(&self.topology, TABLES_SHARD, TOPOLOGY_TABLE, topo);
        if !tabs.is_empty() {
            self.engine
                .apply(&self.tablets, TABLES_SHARD, TABLETS_TABLE, tabs);
        }
        self.held.statics = rows.statics;
        self.held.nodes = rows.nodes;
    }
}
