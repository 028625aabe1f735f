//! The groups manager of a node (upstream `service/strong_consistency/groups_manager.*`): for
//! every tablet of a strongly consistent table with a replica on this node, it starts that
//! tablet's Raft server on the replica's shard, with a [`RaftGroupsStorage`] for
//! `(that shard, group_id)`; it re-runs whenever the tablet metadata changes.
//!
//! Starting a server (upstream `start_raft_group`): open the storage; if it has no snapshot
//! descriptor, store the initial configuration (the tablet's current replicas, all voters);
//! advance the stored snapshot index to the stored commit index, as the commitlog replay does
//! at boot; then start the Raft server, which recovers term, vote, commit and log.
//!
//! Simplification: servers are never stopped — the model has no table drop and no migration of
//! a strongly consistent tablet, the two metadata changes that stop one upstream.

use super::kv::{ScCmd, ScKv};
use super::storage::RaftGroupsStorage;
use super::store::ShardStore;
use super::tables::{GroupPartition, Routing};
use super::tablets::{ScTablet, TabletMap};
use crate::raft::{GroupId, Raft, RaftConfig, RaftStorage};
use sim::sync::Notify;
use sim::{NodeCtx, NodeId};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// One running server of a tablet's group.
#[derive(Clone)]
pub struct Server {
    /// The node incarnation it runs in.
    pub inc: u32,
    /// The shard it runs on.
    pub shard: u32,
    /// Its Raft handle.
    pub raft: Raft<ScKv>,
}

/// Every running server, by (group, node): the newest incarnation's.
#[derive(Default)]
pub struct Servers(pub RefCell<BTreeMap<(GroupId, NodeId), Server>>);

/// The tablet metadata every node follows (the harness's stand-in for group0).
#[derive(Default)]
pub struct TabletMeta {
    map: RefCell<TabletMap>,
    /// Fires on every change.
    pub changed: Notify,
}

impl TabletMeta {
    /// The current map.
    pub fn current(&self) -> TabletMap {
        self.map.borrow().clone()
    }

    /// Replaces the map and wakes every groups manager.
    pub fn set(&self, map: TabletMap) {
        *self.map.borrow_mut() = map;
        self.changed.notify();
    }
}

/// Starts the server of `tablet`'s group on `shard` of this node (`shard_count` shards).
pub async fn start_raft_group(
    ctx: &NodeCtx,
    tablet: &ScTablet,
    shard: u32,
    shard_count: u32,
    cfg: RaftConfig,
) -> Server {
    let sim = &ctx.sim;
    let g = tablet.raft_group_id;
    let part = GroupPartition::route(Routing::of(sim), g, shard, shard_count);
    let store = ShardStore::new(sim, ctx.node);
    let storage = RaftGroupsStorage::open::<ScCmd>(sim, ctx.node, ctx.incarnation, store, part);
    let bootstrapped = storage.load_snapshot_descriptor().is_none();
    if bootstrapped {
        storage.bootstrap(tablet.members()).await;
    }
    let hs = RaftStorage::<ScCmd>::load_hard_state(&storage);
    let log = RaftStorage::<ScCmd>::load_log(&storage);
    if let Some(e) = hs.commit.checked_sub(1).and_then(|i| log.get(i as usize)) {
        storage.store_snapshot_index(hs.commit, e.term).await;
    }
    // The boot-time writes are made durable before the server starts (a failed sync leaves
    // them buffered; the next successful one covers them).
    let _ = RaftStorage::<ScCmd>::sync(&storage).await;
    sim.record(Some(ctx.node), storage.loaded_event(bootstrapped));
    tracing::debug!(
        group = g.0,
        shard,
        "sc: {} starts the server of {g} on shard {shard}",
        ctx.node
    );
    let raft = Raft::start_group(
        ctx,
        g,
        tablet.members(),
        ScKv::default(),
        cfg,
        Box::new(storage),
    );
    Server {
        inc: ctx.incarnation,
        shard,
        raft,
    }
}

/// The groups manager loop of one node incarnation with `shard_count` shards: starts a server
/// for every local replica the metadata lists (on a shard the node has), now and after every
/// metadata change.
pub async fn run(ctx: NodeCtx, meta: Rc<TabletMeta>, shard_count: u32, cfg: RaftConfig) {
    let servers = ctx.sim.ext::<Servers>();
    let mut started: BTreeSet<GroupId> = BTreeSet::new();
    loop {
        let changed = meta.changed.notified();
        let map = meta.current();
        for t in &map.tablets {
            let Some(shard) = t.shard_on(ctx.node) else {
                continue;
            };
            // A replica on a shard this node does not have has no server (no shard runs it);
            // the boot check normally refuses to start such a node.
            if shard >= shard_count || started.contains(&t.raft_group_id) {
                continue;
            }
            started.insert(t.raft_group_id);
            let s = start_raft_group(&ctx, t, shard, shard_count, cfg.clone()).await;
            servers
                .0
                .borrow_mut()
                .insert((t.raft_group_id, ctx.node), s);
        }
        changed.await;
    }
}
