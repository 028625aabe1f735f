//! Staging sstables managed by the view building coordinator (SPEC §6.10).
//!
//! When a pending replica receives a tablet by streaming while a view of its base is being
//! built (some status `STARTED`), the streamed rows are written to the base table as usual
//! (readable) and also listed as *staging* for (node, shard, tablet): `build_range` skips them,
//! and a `process_staging` task generates their view updates once the tablet has left its
//! transition. The registrator creates one such task per (tablet, replica) in one group0
//! command, unless a non-aborted staging task for it exists that its worker has not started.
//! Staging lists live on the node's disk in upstream (rediscovered at start-up); here they are
//! run-scoped per node, and a booting worker re-registers what it finds. `tablet_cleanup`
//! drops the tablet's entries before deleting its data.

use super::events::ViewEvent;
use super::state::{TaskKind, ViewChange, ViewOp};
use crate::node::NodeHandle;
use crate::topology::ids::{Key, NodeId, Replica, ShardId, TabletId};
use crate::topology::state::{ApplyOutcome, Group0Command, RejectReason};
use sim::time::{sleep, Duration};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// Every node's staging lists: (node, shard, tablet) → keys.
#[derive(Default)]
pub struct StagingLists(RefCell<BTreeMap<(NodeId, ShardId, TabletId), BTreeSet<Key>>>);

impl StagingLists {
    /// The staged keys of a tablet replica.
    pub fn keys(&self, r: Replica, tablet: TabletId) -> BTreeSet<Key> {
        self.0
            .borrow()
            .get(&(r.node, r.shard, tablet))
            .cloned()
            .unwrap_or_default()
    }

    /// Drop `keys` from a tablet replica's list (they were processed).
    pub fn remove(&self, r: Replica, tablet: TabletId, keys: &BTreeSet<Key>) {
        let mut m = self.0.borrow_mut();
        if let Some(s) = m.get_mut(&(r.node, r.shard, tablet)) {
            s.retain(|k| !keys.contains(k));
            if s.is_empty() {
                m.remove(&(r.node, r.shard, tablet));
            }
        }
    }

    /// Every non-empty list of `node`.
    pub fn of_node(&self, node: NodeId) -> Vec<(ShardId, TabletId)> {
        self.0
            .borrow()
            .keys()
            .filter(|(n, _, _)| *n == node)
            .map(|(_, s, t)| (*s, *t))
            .collect()
    }

    /// Staged keys over the whole cluster.
    pub fn total(&self) -> usize {
        self.0.borrow().values().map(|s| s.len()).sum()
    }
}

/// The stream receiver's hook: rows `keys` of `tablet` were streamed into `replica` and are
/// durable. If a view of the base is being built they become staging sstables.
pub fn on_streamed(h: &NodeHandle, replica: Replica, tablet: TabletId, keys: Vec<Key>) {
    if keys.is_empty() || !h.g0.with_state(|s| s.views.building(tablet.table)) {
        return;
    }
    h.sim
        .ext::<StagingLists>()
        .0
        .borrow_mut()
        .entry((replica.node, replica.shard, tablet))
        .or_default()
        .extend(keys.iter().copied());
    tracing::info!(%tablet, %replica, "{} streamed rows of {tablet} on {replica} registered as staging (a view of its base is being built)", keys.len());
    h.sim.mark("streamed sstable registered as staging");
    h.sim.record(
        Some(h.node),
        ViewEvent::StagingRegistered {
            replica,
            tablet,
            keys,
        },
    );
    if let Some(h) = crate::node::lookup(&h.sim, h.node) {
        sim::spawn(register(h, replica, tablet));
    }
}

/// The registrator on shard 0: create the `process_staging` task for (tablet, replica).
pub async fn register(h: Rc<NodeHandle>, replica: Replica, tablet: TabletId) {
    for _ in 0..50 {
        let _ = h.g0.read_barrier().await;
        let (sid, exists) = h.g0.with_state(|s| {
            let exists = s.views.tasks.values().any(|t| {
                t.kind == TaskKind::ProcessStaging
                    && t.tablet == tablet
                    && t.replica == replica
                    && !t.aborted
                    && !super::worker::started(&h, t.id)
            });
            (s.state_id, exists)
        });
        if exists || h.sim.ext::<StagingLists>().keys(replica, tablet).is_empty() {
            return;
        }
        let cmd = Group0Command::View(ViewChange {
            base_state_id: sid,
            term: None,
            ops: vec![ViewOp::CreateStagingTask {
                base: tablet.table,
                tablet,
                replica,
            }],
            origin: "staging registrator".into(),
        });
        if let Ok(index) = h.g0.propose(cmd).await {
            match h.g0.with_state(|s| s.outcome(index).cloned()) {
                Some(ApplyOutcome::Applied) => return,
                Some(ApplyOutcome::Rejected(RejectReason::StateChanged { .. })) | None => {}
                Some(ApplyOutcome::Rejected(_)) => return,
            }
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// The cleanup hook: drop a tablet replica's staging entries before its data is deleted.
pub fn on_cleanup(h: &NodeHandle, replica: Replica, tablet: TabletId) {
    let removed =
        h.sim
            .ext::<StagingLists>()
            .0
            .borrow_mut()
            .remove(&(replica.node, replica.shard, tablet));
    if removed.is_some() {
        h.sim
            .record(Some(h.node), ViewEvent::StagingCleaned { replica, tablet });
    }
}

/// At boot: re-register every staging list this node still has (rediscovery).
pub fn rediscover(h: &Rc<NodeHandle>) {
    for (shard, tablet) in h.sim.ext::<StagingLists>().of_node(h.node) {
        sim::spawn(register(
            h.clone(),
            Replica {
                node: h.node,
                shard,
            },
            tablet,
        ));
    }
}
