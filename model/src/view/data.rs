//! View data: the view tables on the storage engine, the base-replica → view-replica pairing,
//! the view updates a base write generates, and their delivery.
//!
//! - **Rows.** View `V` of base `B` holds, for every live base row `(k, v)`, the view row
//!   `(k, v)` (a view keyed like its base, `PRIMARY KEY (pk, c)`); a base delete writes a view
//!   tombstone. Every view write carries the base cell's timestamp, so updates from a base write
//!   and from a build of the same row commute (last write wins).
//! - **Placement and pairing.** A view's tablets mirror its base's: view tablet `i` holds the
//!   view rows of base tablet `i`, on the replicas the base tablet had at CREATE VIEW (fixed).
//!   A base replica pairs with the view replica at its own index among the base tablet's
//!   *natural* replicas — `replicas` while writes go to the previous or both sets, `new_replicas`
//!   once they go to next (upstream `get_natural_replicas`). A pending base replica (in
//!   `write_both_*` stages) is not natural, has no paired view replica, and its view updates
//!   are dropped (SPEC §8 #19149); the leaving replica, still natural, generates them.
//! - **Delivery.** View updates go into a per-node queue that survives restarts (as hints do)
//!   and a per-node fiber delivers them with `view_update`, retrying until acknowledged; the
//!   converge phase waits for the queues to drain.
//!
//! Mutant [`VIEW_UPDATES_LOST`]: base writes generate no view update at all.

use super::events::ViewEvent;
use crate::node::NodeHandle;
use crate::schema::TableId;
use crate::storage::user::UserKeys;
use crate::storage::{Engine, Mutation, TableConfig, TableRef};
use crate::topology::data::CellValue;
use crate::topology::ids::{Key, NodeId, Replica, ShardId, TabletId, Value};
use crate::topology::stage::WriteSelector;
use crate::topology::state::TabletInfo;
use sim::time::{sleep, Duration};
use sim::{RpcError, Sim, Verb};
use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

/// Mutant: the base write path drops every view update (the lost-view-update check must fail).
pub const VIEW_UPDATES_LOST: &str = "vb-view-updates-lost";

/// The table id of view number `i`. View ids sit below the user range, so that base-table
/// scans (`Storage::all_rows`, INV-TABL-1) never see view rows: views have no tablets of
/// their own in `system.tablets` here.
pub const fn view_table(i: u32) -> TableId {
    TableId(60 + i)
}

/// The natural replicas of a base tablet (upstream `get_natural_replicas` for tablets).
pub fn natural_replicas(info: &TabletInfo) -> &[Replica] {
    match &info.transition {
        Some(t) if t.stage.write_selector() == WriteSelector::Next => &t.new_replicas,
        _ => &info.replicas,
    }
}

/// The view replica paired with `base` for a tablet, or `None` when `base` is not a natural
/// replica (a pending replica: its view updates are dropped).
pub fn paired_view_replica(
    info: &TabletInfo,
    placement: &[Replica],
    base: Replica,
) -> Option<Replica> {
    let idx = natural_replicas(info).iter().position(|r| *r == base)?;
    placement.get(idx).copied()
}

fn table(engine: &Engine, shard: ShardId, view: TableId) -> TableRef<UserKeys> {
    assert!(!view.is_user(), "{view} is not a view table");
    engine.table(shard, view, &TableConfig::default())
}

/// Apply a view row (buffered; durable after the node's next sync).
pub fn put_view_row(sim: &Sim, node: NodeId, u: &ViewUpdate) {
    let engine = Engine::of(sim, node);
    let t = table(&engine, u.to.shard, u.view);
    let pk = (u.tablet, u.key);
    let m = match u.cell.value {
        Some(v) => Mutation::Insert {
            pk,
            ck: (),
            ts: u.cell.ts,
            data: v,
        },
        None => Mutation::DeleteRow {
            pk,
            ck: (),
            ts: u.cell.ts,
        },
    };
    engine.apply(&t, u.to.shard, u.view, vec![m]);
}

/// The live rows of view tablet `tablet` of `view` on `replica` (its durable data if down).
pub fn view_rows(sim: &Sim, replica: Replica, view: TableId, tablet: u32) -> BTreeMap<Key, Value> {
    let engine = Engine::of(sim, replica.node);
    let t = table(&engine, replica.shard, view);
    let rows = t
        .borrow()
        .versions((tablet, 0)..=(tablet, Key::MAX))
        .into_iter()
        .filter_map(|((_, k), (), v)| v.data.map(|d| (k, d)))
        .collect();
    rows
}

/// One view update on its way to a view replica.
#[derive(Clone, Debug)]
pub struct ViewUpdate {
    /// The view.
    pub view: TableId,
    /// The view replica.
    pub to: Replica,
    /// The (view = base) tablet index.
    pub tablet: u32,
    /// Base key.
    pub key: Key,
    /// The base cell (value or tombstone, with its timestamp).
    pub cell: CellValue,
}

/// `view_update`: a base replica (or a worker) → the paired view replica.
pub struct ViewUpdateVerb;
impl Verb for ViewUpdateVerb {
    const NAME: &'static str = "view_update";
    type Req = ViewUpdate;
    type Resp = ();
}

/// The view update queues, one per node (run-scoped: they outlive an incarnation, as hints
/// on disk do).
#[derive(Default)]
pub struct ViewUpdateQueues {
    queues: RefCell<BTreeMap<NodeId, VecDeque<ViewUpdate>>>,
    wake: sim::sync::Notify,
}

impl ViewUpdateQueues {
    /// Queue `u` on `node`.
    pub fn push(&self, node: NodeId, u: ViewUpdate) {
        self.queues
            .borrow_mut()
            .entry(node)
            .or_default()
            .push_back(u);
        self.wake.notify();
    }

    /// View updates not delivered yet, over every node.
    pub fn pending(&self) -> usize {
        self.queues.borrow().values().map(|q| q.len()).sum()
    }
}

/// The view updates of a base write applied on `replica` (SPEC §6.13: the paired view
/// replica gets it, a pending base replica drops it). Called once the base row is durable.
pub fn on_base_write(
    h: &NodeHandle,
    replica: Replica,
    tablet: TabletId,
    key: Key,
    cell: CellValue,
) {
    if h.sim.mutant(VIEW_UPDATES_LOST) {
        return;
    }
    let views = h.g0.with_state(|s| s.views.views_of(tablet.table));
    for view in views {
        paired_or_drop(h, replica, tablet, view, key, cell);
    }
}

/// Generate the view update of base row `key` (cell `cell`) of `tablet` on base replica
/// `replica` for `view`: queue it for the paired view replica, or drop it (recorded) when
/// `replica` has none. Returns whether it was queued.
pub fn paired_or_drop(
    h: &NodeHandle,
    replica: Replica,
    tablet: TabletId,
    view: TableId,
    key: Key,
    cell: CellValue,
) -> bool {
    let to = h.g0.with_state(|s| {
        let info = s.tablets.get(&tablet)?;
        let v = s.views.views.get(&view)?;
        let placement = &v.placement[tablet.index as usize];
        paired_view_replica(info, placement, replica).or_else(|| {
            // Candidate fix of finding F2 (off by default, not upstream).
            if h.cfg.view_pairing_any_write_replica != Some(true) {
                return None;
            }
            let next = info.transition.as_ref().map(|t| &t.new_replicas);
            let idx = info
                .replicas
                .iter()
                .position(|r| *r == replica)
                .or_else(|| next.and_then(|n| n.iter().position(|r| *r == replica)))?;
            placement.get(idx).copied()
        })
    });
    match to {
        None => {
            tracing::debug!(%tablet, key, "view update of {key} for {view} dropped: {replica} has no paired view replica for {tablet} (a pending base replica)");
            h.sim.mark("view update dropped on a pending replica");
            h.sim.record(
                Some(h.node),
                ViewEvent::ViewUpdateDropped {
                    replica,
                    tablet,
                    view,
                    key,
                },
            );
            false
        }
        Some(to) => {
            h.sim.ext::<ViewUpdateQueues>().push(
                h.node,
                ViewUpdate {
                    view,
                    to,
                    tablet: tablet.index,
                    key,
                    cell,
                },
            );
            true
        }
    }
}

/// Register `view_update` on a node and start its delivery fiber.
pub fn serve(h: &Rc<NodeHandle>) {
    let s = h.clone();
    h.sim
        .net()
        .serve::<ViewUpdateVerb>(h.node, move |_from, u| {
            let s = s.clone();
            Box::pin(async move {
                put_view_row(&s.sim, s.node, &u);
                Engine::of(&s.sim, s.node)
                    .sync()
                    .await
                    .map_err(|e| RpcError::Remote(format!("disk: {e:?}")))
            })
        });
    sim::spawn(deliver(h.clone()));
}

/// Deliver this node's queued view updates in order, retrying each until acknowledged.
async fn deliver(h: Rc<NodeHandle>) {
    let q = h.sim.ext::<ViewUpdateQueues>();
    loop {
        let next = q
            .queues
            .borrow()
            .get(&h.node)
            .and_then(|d| d.front().cloned());
        let Some(u) = next else {
            let woken = q.wake.notified();
            let _ = sim::time::timeout(Duration::from_millis(100), woken).await;
            continue;
        };
        let res = h
            .sim
            .net()
            .call::<ViewUpdateVerb>(h.node, u.to.node, u.clone(), Duration::from_secs(2))
            .await;
        match res {
            Ok(()) => {
                if let Some(d) = q.queues.borrow_mut().get_mut(&h.node) {
                    d.pop_front();
                }
            }
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    }
}
