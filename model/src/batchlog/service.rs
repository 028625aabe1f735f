//! The batchlog service of one node: the `batchlog_mutate` verb (store or delete an entry on a
//! batchlog endpoint), `repair_flush_hints_batchlog` (a replay with cleanup=no), and the node's
//! batchlog tables on its storage engine. Registered by the node assembler; depends only on the
//! node handle.
//!
//! Promise kept here: every durable change is recorded in the history only after the disk sync
//! that made it durable; a restarted node recovers its batchlog tables from its disk.

use super::events::{BatchlogEvent, DeletedBy};
use super::table::{BatchlogRead, Mutation};
use super::types::{BatchId, ClusteringKey, Layout, PartitionKey, Payload, Stage, Timestamp};
use crate::node::NodeHandle;
use futures::future::LocalBoxFuture;
use serde::Serialize;
use sim::{RpcError, Verb};
use std::rc::Rc;

/// Store or delete a batchlog entry on a batchlog endpoint.
pub struct BatchlogMutateVerb;

/// Request of [`BatchlogMutateVerb`].
#[derive(Clone, Debug)]
pub enum BatchlogReq {
    /// Step 3: insert the entry in stage `initial`.
    Store {
        /// The coordinator's deadline for this write (global virtual ms, not a node's wall
        /// clock: RPC timeouts are relative durations): a replica drops a request that reaches
        /// it later, as the real write handler drops timed-out requests. This keeps a late
        /// store from landing under a `now − replay_timeout` cleanup range tombstone, as long
        /// as the clocks agree.
        deadline_ms: u64,
        /// Partition.
        pk: PartitionKey,
        /// Row.
        ck: ClusteringKey,
        /// Write timestamp.
        ts: Timestamp,
        /// The batch.
        data: Payload,
    },
    /// Step 5: delete it.
    Remove {
        /// Partition.
        pk: PartitionKey,
        /// Row.
        ck: ClusteringKey,
        /// Deletion timestamp.
        ts: Timestamp,
    },
}

impl Verb for BatchlogMutateVerb {
    const NAME: &'static str = "batchlog_mutate";
    type Req = BatchlogReq;
    type Resp = ();
}

/// `repair_flush_hints_batchlog`: replay with cleanup=no; answers whether all was replayed and
/// the node's flush time.
pub struct RepairFlushVerb;

/// The answer of [`RepairFlushVerb`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushAnswer {
    /// Did the replay replay every entry (nothing failed, nothing too young, not skipped)?
    pub all_replayed: bool,
    /// The node's wall clock when it took the request (`gc_clock::now()`), in ms: no write
    /// older than this is left pending in its batchlog, if `all_replayed`.
    pub flush_time_ms: u64,
}

impl Verb for RepairFlushVerb {
    const NAME: &'static str = "repair_flush_hints_batchlog";
    type Req = ();
    type Resp = FlushAnswer;
}

/// Register the batchlog verbs on a node.
pub fn serve(h: &Rc<NodeHandle>) {
    let net = h.sim.net();
    let h2 = h.clone();
    net.serve::<BatchlogMutateVerb>(h.node, move |_from, req| {
        let h = h2.clone();
        Box::pin(async move { handle_batchlog(&h, req).await }) as LocalBoxFuture<'static, _>
    });
    let h2 = h.clone();
    net.serve::<RepairFlushVerb>(h.node, move |_from, ()| {
        let h = h2.clone();
        Box::pin(async move {
            let flush_time_ms = h.sim.wall_clock_ms(h.node);
            let all_replayed = super::manager::do_batch_log_replay(&h, false).await;
            Ok(FlushAnswer {
                all_replayed,
                flush_time_ms,
            })
        }) as LocalBoxFuture<'static, _>
    });
}

async fn handle_batchlog(h: &NodeHandle, req: BatchlogReq) -> Result<(), RpcError> {
    let (m, ev) = match req {
        BatchlogReq::Store { deadline_ms, .. } if h.sim.now().as_millis() > deadline_ms => {
            h.sim.mark("late batchlog store dropped");
            return Err(RpcError::Timeout);
        }
        BatchlogReq::Store {
            pk, ck, ts, data, ..
        } => (
            Mutation::Insert { pk, ck, ts, data },
            BatchlogEvent::EntryWritten {
                id: ck.id,
                written_at: ck.written_at,
                stage: Stage::Initial,
                shard: shard_of(&pk),
                ts,
                layout: match pk {
                    PartitionKey::V1(_) => Layout::V1,
                    PartitionKey::V2 { .. } => Layout::V2,
                },
            },
        ),
        BatchlogReq::Remove { pk, ck, ts } => (
            match pk {
                PartitionKey::V1(_) => Mutation::DeletePartition { pk, ts },
                PartitionKey::V2 { .. } => Mutation::DeleteRow { pk, ck, ts },
            },
            BatchlogEvent::EntryDeleted {
                id: ck.id,
                written_at: ck.written_at,
                stage: Stage::Initial,
                shard: shard_of(&pk),
                by: DeletedBy::WritePath,
                now_ms: None,
                ts: Some(ts),
            },
        ),
    };
    apply_batchlog(h, vec![m])
        .await
        .map_err(|e| RpcError::Remote(e.to_string()))?;
    h.sim.record(Some(h.node), ev);
    Ok(())
}

/// Applies mutations to the node's batchlog tables and syncs them to disk.
pub(crate) async fn apply_batchlog(
    h: &NodeHandle,
    muts: Vec<Mutation>,
) -> Result<(), sim::DiskError> {
    h.batchlog.table.apply(muts);
    h.batchlog.table.sync().await
}

/// A live batchlog entry, as the final state lists it.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LiveEntry {
    /// Batch.
    pub id: BatchId,
    /// written_at.
    pub written_at: u64,
    /// Stage.
    pub stage: Stage,
    /// Batchlog shard (0 for v1).
    pub shard: u32,
}

/// Live batchlog entries of a node, from its tables.
pub fn live_entries(h: &NodeHandle) -> Vec<LiveEntry> {
    live_entries_of(&h.batchlog)
}

/// Live batchlog entries of one node's batchlog state.
pub fn live_entries_of(b: &super::state::NodeBatchlog) -> Vec<LiveEntry> {
    b.table
        .view()
        .live_rows()
        .into_iter()
        .map(|r| LiveEntry {
            id: r.ck.id,
            written_at: r.ck.written_at,
            stage: match r.pk {
                PartitionKey::V1(_) => Stage::Initial,
                PartitionKey::V2 { stage, .. } => stage,
            },
            shard: shard_of(&r.pk),
        })
        .collect()
}

/// The batchlog shard of a partition (0 for v1).
pub fn shard_of(pk: &PartitionKey) -> u32 {
    match pk {
        PartitionKey::V1(_) => 0,
        PartitionKey::V2 { shard, .. } => *shard,
    }
}
