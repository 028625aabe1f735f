//! The data plane: per (node, shard) tablet storage on the node's storage engine, the erm (token
//! metadata version) tracker, the replica write/read/truncate handlers, and the client that
//! routes each operation by its tablet's stage (SPEC §1.3).
//!
//! Promises kept here:
//! - a client operation holds the erm version it routed with until it completes, and a replica
//!   holds its own erm for the whole apply of a write, so a barrier waits for both (SPEC §2.4
//!   step (a));
//! - a replica rejects writes routed with a version below group0's `fence_version` as it has
//!   applied it — before the apply and again after it (upstream `run_fenceable_write`). There is
//!   no other, local fence: as upstream, a write routed at the previous version may still be
//!   admitted after a barrier until the "advance fence version" commit reaches the replica;
//! - a replica rejects reads routed with a version below its `fence_version` the same way
//!   (upstream `storage_proxy` `handle_read`'s `apply_fence_result`), so a coordinator whose
//!   topology is behind (a node just restarted, catching up on group0) cannot read a replica
//!   the tablet has left;
//! - client outcomes are three-valued: ok, failed (rejected before any replica applied it),
//!   unknown (timeouts, killed connections, crashes);
//! - a replica write that carries a [`BatchTag`] (a logged batch's member mutation, from the
//!   batchlog write path or a replay) is recorded as `mutation_applied` once durable; writes to
//!   a dropped table are refused.

use super::events::{OpKind, OpOutcome, TopologyEvent};
use super::ids::{table_of, tablet_of, Key, NodeId, Replica, ShardId, TableId, TabletId, Value};
use super::state::TopologyState;
use crate::batchlog::types::BatchTag;
use crate::batchlog::BatchlogEvent;
use crate::node::{lookup as services, NodeHandle};
use crate::storage::user::UserKeys;
use crate::storage::{Engine, Mutation, ScanCost, TableConfig, TableRef};
use sim::time::Duration;
use sim::{RpcError, Sim, Verb};
use std::cell::Cell;
use std::rc::Rc;

// ---------------------------------------------------------------------------------------------
// storage

/// A stored cell: a value or a tombstone, with its write timestamp (virtual ns).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct CellValue {
    /// Write timestamp.
    pub ts: u64,
    /// The value, or `None` for a tombstone.
    pub value: Option<Value>,
}

fn user_pk(tablet: TabletId, key: Key) -> (u32, Key) {
    (tablet.index, key)
}

fn tablet_range(tablet: TabletId) -> std::ops::RangeInclusive<(u32, Key)> {
    (tablet.index, 0)..=(tablet.index, Key::MAX)
}

/// A node's tablet storage: one table of the node's storage engine ([`crate::storage`]) per
/// (shard, user table), keyed by (tablet, key). Durable once synced; a crash loses the rest.
#[derive(Clone)]
pub struct Storage {
    engine: Rc<Engine>,
}

impl Storage {
    /// The storage of `node`'s current incarnation (a read-only view of its durable data if it
    /// is down).
    pub fn of(sim: &Sim, node: NodeId) -> Self {
        Self {
            engine: Engine::of(sim, node),
        }
    }

    fn table(&self, shard: ShardId, table: TableId) -> TableRef<UserKeys> {
        assert!(table.is_user(), "{table} is not a user table");
        self.engine.table(shard, table, &TableConfig::default())
    }

    /// Write (buffered) a cell, last-write-wins by timestamp (a tombstone wins a tie).
    pub fn put(&self, shard: ShardId, tablet: TabletId, key: Key, cell: CellValue) {
        let t = self.table(shard, tablet.table);
        let pk = user_pk(tablet, key);
        tracing::trace!(%tablet, key, "storage of {}:{}: {key} in {tablet} := {:?} at ts {}", self.engine.node(), shard.0, cell.value, cell.ts);
        let m = match cell.value {
            Some(v) => Mutation::Insert {
                pk,
                ck: (),
                ts: cell.ts,
                data: v,
            },
            None => Mutation::DeleteRow {
                pk,
                ck: (),
                ts: cell.ts,
            },
        };
        self.engine.apply(&t, shard, tablet.table, vec![m]);
    }

    /// Remove a cell entirely (no tombstone left behind).
    pub fn remove(&self, shard: ShardId, tablet: TabletId, key: Key) {
        let t = self.table(shard, tablet.table);
        let pk = user_pk(tablet, key);
        let (ops, _) = t.borrow_mut().drop_partitions(|p| *p == pk);
        self.engine.write(shard, tablet.table, ops);
    }

    /// Read a row's live value, and the dead entries the read stepped over.
    pub fn read(&self, shard: ShardId, tablet: TabletId, key: Key) -> (Option<Value>, ScanCost) {
        let (rows, cost) = self
            .table(shard, tablet.table)
            .borrow()
            .read_partition(&user_pk(tablet, key));
        (rows.first().map(|r| r.data), cost)
    }

    /// Read a row's live value.
    pub fn get(&self, shard: ShardId, tablet: TabletId, key: Key) -> Option<Value> {
        self.read(shard, tablet, key).0
    }

    /// Every cell (tombstones included) of a tablet on a shard, in key order.
    pub fn scan(&self, shard: ShardId, tablet: TabletId) -> Vec<(Key, CellValue)> {
        self.table(shard, tablet.table)
            .borrow()
            .versions(tablet_range(tablet))
            .into_iter()
            .map(|((_, key), (), v)| {
                (
                    key,
                    CellValue {
                        ts: v.ts,
                        value: v.data,
                    },
                )
            })
            .collect()
    }

    /// Drop every cell of a tablet on a shard (its storage, tombstones included); returns how
    /// many.
    pub fn delete_tablet(&self, shard: ShardId, tablet: TabletId) -> u64 {
        let t = self.table(shard, tablet.table);
        let cells = t.borrow().versions(tablet_range(tablet)).len() as u64;
        let (ops, _) = t.borrow_mut().drop_partitions(|p| p.0 == tablet.index);
        self.engine.write(shard, tablet.table, ops);
        tracing::trace!(%tablet, "storage of {}:{}: {cells} cells of {tablet} removed", self.engine.node(), shard.0);
        cells
    }

    /// Drop every cell of every user table on every shard (TRUNCATE); returns how many.
    pub fn truncate(&self) -> u64 {
        let mut cells = 0;
        for (shard, table) in self.engine.tables_present() {
            if !table.is_user() {
                continue;
            }
            let t = self.table(shard, table);
            cells += t.borrow().versions(..).len() as u64;
            let (ops, _) = t.borrow_mut().drop_partitions(|_| true);
            self.engine.write(shard, table, ops);
        }
        cells
    }

    /// Every (shard, tablet, key, cell) on this node.
    pub fn all_rows(&self) -> Vec<(ShardId, TabletId, Key, CellValue)> {
        let mut out = Vec::new();
        for (shard, table) in self.engine.tables_present() {
            if !table.is_user() {
                continue;
            }
            for ((index, key), (), v) in self.table(shard, table).borrow().versions(..) {
                out.push((
                    shard,
                    TabletId::new(table, index),
                    key,
                    CellValue {
                        ts: v.ts,
                        value: v.data,
                    },
                ));
            }
        }
        out
    }

    /// Make buffered writes durable.
    pub async fn sync(&self) -> Result<(), RpcError> {
        self.engine
            .sync()
            .await
            .map_err(|e| RpcError::Remote(format!("disk: {e:?}")))
    }
}

// ---------------------------------------------------------------------------------------------
// replica verbs

/// Replica write (or delete, `value: None`) of one row.
pub struct ReplicaWrite;
/// Request of [`ReplicaWrite`].
#[derive(Clone, Debug)]
pub struct ReplicaWriteReq {
    /// Target replica shard.
    pub shard: ShardId,
    /// Tablet.
    pub tablet: TabletId,
    /// Key.
    pub key: Key,
    /// Value, or `None` to delete (a tombstone).
    pub value: Option<Value>,
    /// Write timestamp.
    pub ts: u64,
    /// The erm version the coordinator routed with.
    pub version: u64,
    /// The logged batch this write applies, if any (recorded by the replica once durable).
    pub batch: Option<BatchTag>,
}
impl Verb for ReplicaWrite {
    const NAME: &'static str = "mutation";
    type Req = ReplicaWriteReq;
    type Resp = ();
}

/// Mutant: a replica answers reads routed below its fence version (no read fencing).
pub const MUTANT_READ_IGNORES_FENCE: &str = "read-ignores-fence";

/// Replica read of one row: shard, tablet, key, and the erm version the coordinator routed
/// it with (its fencing token).
pub struct ReplicaRead;
impl Verb for ReplicaRead {
    const NAME: &'static str = "read_data";
    type Req = (ShardId, TabletId, Key, u64);
    type Resp = Option<Value>;
}

/// TRUNCATE on one node (all shards).
pub struct ReplicaTruncate;
impl Verb for ReplicaTruncate {
    const NAME: &'static str = "truncate";
    type Req = ();
    type Resp = u64;
}

/// Text of the fence rejection before the apply (a client turns "all replicas fenced" into
/// `failed`).
pub const STALE_VERSION: &str = "stale topology version";
/// Text of the fence rejection after the apply: the row was written, so the client's outcome is
/// `unknown`, never `failed`.
pub const STALE_AFTER_APPLY: &str = "stale topology version (fence advanced during the apply)";

/// Register the replica handlers on a node.
pub fn serve(svc: &Rc<NodeHandle>) {
    let net = svc.sim.net();
    let s = svc.clone();
    net.serve::<ReplicaWrite>(svc.node, move |_from, req| {
        let s = s.clone();
        Box::pin(async move {
            if crate::schema::is_dropped(&s.sim, req.tablet.table) {
                return Err(RpcError::Remote(format!(
                    "unknown table {}",
                    req.tablet.table
                )));
            }
            // Fence check before the apply: group0's fence_version as this node applied it.
            if req.version < s.fence() {
                tracing::debug!(tablet = %req.tablet, key = req.key, "write of {} routed at v{} refused by fence v{}", req.key, req.version, s.fence());
                s.sim.mark("write refused by fence");
                return Err(RpcError::Remote(STALE_VERSION.into()));
            }
            // Hold the replica's erm for the whole apply, so a barrier's stale-version wait
            // waits for it (upstream `run_fenceable_write`).
            let erm = s.erm.acquire();
            let begun = s.sim.record(
                Some(s.node),
                TopologyEvent::ReplicaWriteBegun {
                    tablet: req.tablet,
                    replica: Replica {
                        node: s.node,
                        shard: req.shard,
                    },
                    key: req.key,
                    version: req.version,
                },
            ) as u64;
            let st = Storage::of(&s.sim, s.node);
            st.put(
                req.shard,
                req.tablet,
                req.key,
                CellValue {
                    ts: req.ts,
                    value: req.value,
                },
            );
            let synced = st.sync().await;
            // Fence check after the apply: a fence that advanced meanwhile turns the answer
            // into an error (the row stays; the coordinator cannot count it).
            let fenced_after_apply = req.version < s.fence();
            s.sim.record(
                Some(s.node),
                TopologyEvent::ReplicaWriteDone {
                    begun,
                    fenced_after_apply,
                },
            );
            drop(erm);
            synced?;
            // The view updates of the durable base row (crate::view::data).
            crate::view::data::on_base_write(
                &s,
                Replica {
                    node: s.node,
                    shard: req.shard,
                },
                req.tablet,
                req.key,
                CellValue {
                    ts: req.ts,
                    value: req.value,
                },
            );
            if let Some(tag) = req.batch {
                // Durable on this replica, whatever the answer below says.
                s.sim.record(
                    Some(s.node),
                    BatchlogEvent::MutationApplied {
                        batch: tag.batch,
                        m: tag.m,
                        replay: tag.replay,
                    },
                );
            }
            if fenced_after_apply {
                s.sim.mark("write fenced after apply");
                return Err(RpcError::Remote(STALE_AFTER_APPLY.into()));
            }
            Ok(())
        })
    });
    let s = svc.clone();
    net.serve::<ReplicaRead>(svc.node, move |_from, (shard, tablet, key, version)| {
        let s = s.clone();
        Box::pin(async move {
            // Upstream's `handle_read` applies the fence before the read and again after it;
            // the model's read is instantaneous, so one check is both.
            if version < s.fence() && !s.sim.mutant(MUTANT_READ_IGNORES_FENCE) {
                tracing::debug!(%tablet, key, "read of {key} routed at v{version} refused by fence v{}", s.fence());
                s.sim.mark("read refused by fence");
                return Err(RpcError::Remote(STALE_VERSION.into()));
            }
            Ok(Storage::of(&s.sim, s.node).get(shard, tablet, key))
        })
    });
    let s = svc.clone();
    net.serve::<ReplicaTruncate>(svc.node, move |_from, ()| {
        let s = s.clone();
        Box::pin(async move {
            let st = Storage::of(&s.sim, s.node);
            let rows = st.truncate();
            st.sync().await?;
            Ok(rows)
        })
    });
}

// ---------------------------------------------------------------------------------------------
// client

#[derive(Default)]
struct OpIds(Cell<u64>);

/// The tablet a client key lives in: keys are spread over the user tables (`key % tables`),
/// then over that table's tablets (`key / tables % tablet_count`).
pub fn route_key(s: &TopologyState, key: Key) -> TabletId {
    let tables = s.tables();
    let table = table_of(key, tables.len() as u32);
    assert!(
        tables.contains(&table),
        "user tables are numbered densely from the first"
    );
    let count = s.tablets_of(table).count() as u32;
    tablet_of(table, key / tables.len() as u64, count)
}

/// The tablet of `key` in user table `table` (a batch names its table explicitly).
pub fn route_table_key(s: &TopologyState, table: TableId, key: Key) -> TabletId {
    let count = s.tablets_of(table).count() as u32;
    assert!(count > 0, "{table} has no tablets");
    tablet_of(table, key, count)
}

/// Per-replica timeout of client operations.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);

/// A client that coordinates operations from one node (the node's storage proxy).
#[derive(Clone)]
pub struct Client {
    sim: Sim,
    /// The coordinating node.
    pub node: NodeId,
}

impl Client {
    /// A client coordinating from `node`.
    pub fn new(sim: &Sim, node: NodeId) -> Self {
        Self {
            sim: sim.clone(),
            node,
        }
    }

    fn invoke(&self, kind: OpKind, key: Key, value: Option<Value>) -> u64 {
        let ids = self.sim.ext::<OpIds>();
        let op = ids.0.get() + 1;
        ids.0.set(op);
        tracing::debug!(
            op,
            key,
            "client op {op}: {kind:?} key {key}{} from {}",
            value.map_or(String::new(), |v| format!(" = {v}")),
            self.node
        );
        self.sim.record(
            Some(self.node),
            TopologyEvent::OpInvoke {
                op,
                kind,
                key,
                value,
            },
        );
        op
    }

    fn complete(&self, op: u64, kind: OpKind, outcome: OpOutcome, value: Option<Value>) {
        tracing::debug!(
            op,
            "client op {op}: {kind:?} {outcome:?}{}",
            value.map_or(String::new(), |v| format!(", read {v}"))
        );
        self.sim.record(
            Some(self.node),
            TopologyEvent::OpComplete {
                op,
                kind,
                outcome,
                value,
            },
        );
    }

    /// The coordinating node's services, if it is up.
    fn svc(&self) -> Option<Rc<NodeHandle>> {
        services(&self.sim, self.node)
    }

    fn route(&self, svc: &NodeHandle, key: Key, write: bool) -> (TabletId, Vec<Replica>) {
        svc.g0.with_state(|s| {
            let t = route_key(s, key);
            let info = &s.tablets[&t];
            let set = if write {
                info.write_replicas()
            } else {
                info.read_replicas()
            };
            (t, set)
        })
    }

    async fn mutate(&self, kind: OpKind, key: Key, value: Option<Value>) -> OpOutcome {
        let op = self.invoke(kind, key, value);
        let Some(svc) = self.svc() else {
            self.complete(op, kind, OpOutcome::Failed, None);
            return OpOutcome::Failed;
        };
        let erm = svc.erm.acquire();
        let (tablet, targets) = self.route(&svc, key, true);
        let net = self.sim.net();
        let ts = self.sim.now().0;
        let calls = targets.iter().map(|r| {
            net.call::<ReplicaWrite>(
                self.node,
                r.node,
                ReplicaWriteReq {
                    shard: r.shard,
                    tablet,
                    key,
                    value,
                    ts,
                    version: erm.version(),
                    batch: None,
                },
                CLIENT_TIMEOUT,
            )
        });
        let results = futures::future::join_all(calls).await;
        drop(erm);
        let outcome = if results.iter().all(|r| r.is_ok()) {
            OpOutcome::Ok
        } else if results
            .iter()
            .all(|r| matches!(r, Err(RpcError::Remote(m)) if m == STALE_VERSION))
        {
            OpOutcome::Failed
        } else {
            OpOutcome::Unknown
        };
        self.complete(op, kind, outcome, None);
        outcome
    }

    /// Write `value` to `key` (to every replica the stage's write selector names).
    pub async fn write(&self, key: Key, value: Value) -> OpOutcome {
        self.mutate(OpKind::Write, key, Some(value)).await
    }

    /// Delete `key`.
    pub async fn delete(&self, key: Key) -> OpOutcome {
        self.mutate(OpKind::Delete, key, None).await
    }

    /// Read `key` from the replica the stage's read selector names.
    pub async fn read(&self, key: Key) -> (OpOutcome, Option<Value>) {
        let op = self.invoke(OpKind::Read, key, None);
        let Some(svc) = self.svc() else {
            self.complete(op, OpKind::Read, OpOutcome::Failed, None);
            return (OpOutcome::Failed, None);
        };
        let erm = svc.erm.acquire();
        let (tablet, targets) = self.route(&svc, key, false);
        let r = targets[0];
        let res = self
            .sim
            .net()
            .call::<ReplicaRead>(
                self.node,
                r.node,
                (r.shard, tablet, key, erm.version()),
                CLIENT_TIMEOUT,
            )
            .await;
        drop(erm);
        let (outcome, value) = match res {
            Ok(v) => (OpOutcome::Ok, v),
            Err(_) => (OpOutcome::Failed, None),
        };
        self.complete(op, OpKind::Read, outcome, value);
        (outcome, value)
    }

    /// TRUNCATE the table on every node.
    pub async fn truncate(&self) -> OpOutcome {
        let op = self.invoke(OpKind::Truncate, 0, None);
        let Some(svc) = self.svc() else {
            self.complete(op, OpKind::Truncate, OpOutcome::Failed, None);
            return OpOutcome::Failed;
        };
        let nodes: Vec<NodeId> = svc.g0.with_state(|s| {
            s.nodes
                .keys()
                .copied()
                .filter(|n| !s.excluded.contains(n))
                .collect()
        });
        let net = self.sim.net();
        let calls = nodes
            .iter()
            .map(|n| net.call::<ReplicaTruncate>(self.node, *n, (), Duration::from_secs(5)));
        let results = futures::future::join_all(calls).await;
        let outcome = if results.iter().all(|r| r.is_ok()) {
            OpOutcome::Ok
        } else {
            OpOutcome::Unknown
        };
        self.complete(op, OpKind::Truncate, outcome, None);
        outcome
    }
}
