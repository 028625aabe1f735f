//! The logged-batch write path on the coordinator (`storage_proxy::mutate_atomically_result`,
//! SPEC §5.3): batchlog write (CL ONE) to endpoints picked from the live nodes, apply at the
//! user's CL on the tablet data plane, batchlog delete (CL ANY, failures only logged).
//!
//! A batch's member mutations travel the data plane like any write: each takes an erm guard on
//! the coordinator (so a barrier waits for it), is routed to the tablet replicas of the current
//! effective replication map by the stage's write selector, carries the erm version (so a
//! fenced replica refuses it), and needs the CL's acknowledgements plus one per pending replica
//! (upstream adds pending endpoints to `block_for`). Replays send through the same function.
//!
//! Promise kept here: the batch's mutations are sent only after its batchlog entry is durable on
//! at least one batchlog endpoint, and the entry is deleted only after every mutation was
//! acknowledged at the user's CL. Any failure after the batchlog write is reported as
//! `unknown`: the entry stays and a replay will apply the batch later.
//!
//! Simplification: the failure detector behind "live nodes" (endpoint choice, the availability
//! check) is the harness's `is_up` oracle standing in for gossip; one datacenter, one rack.

use super::config::ReplayCl;
use super::events::{BatchlogEvent, Outcome};
use super::replay;
use super::service::{BatchlogMutateVerb, BatchlogReq};
use super::state::features;
use super::types::{BatchBody, BatchId, BatchTag, ClusteringKey, TableId, WriteMutation};
use crate::node::NodeHandle;
use crate::topology::data::{route_table_key, ReplicaWrite, ReplicaWriteReq};
use crate::topology::ids::{Replica, TabletId};
use crate::topology::state::TopologyState;
use futures::stream::{FuturesUnordered, StreamExt};
use rand::seq::SliceRandom;
use sim::time::Duration;
use sim::NodeId;
use std::rc::Rc;

/// Mutant: delete the batchlog entry before applying the mutations.
pub const MUTANT_DELETE_BEFORE_APPLY: &str = "batchlog-delete-before-apply";

/// Where a mutation goes: its tablet, the replicas the write selector names, and the
/// acknowledgements needed for `cl` out of the tablet's replication factor.
fn route(s: &TopologyState, m: &WriteMutation) -> (TabletId, Vec<Replica>, usize) {
    let tablet = route_table_key(s, m.table.schema_id(), m.key);
    let info = &s.tablets[&tablet];
    let targets = info.write_replicas();
    let rf = info.replicas.len();
    (tablet, targets, rf)
}

/// Acknowledgements QUORUM (and EACH_QUORUM, one DC) needs out of `rf` replicas.
pub fn quorum(rf: usize) -> usize {
    rf / 2 + 1
}

/// Sends `m` of `batch` to the tablet replicas of `stale` if given (the stale-map mutant),
/// else of the coordinator's current erm, and waits for a quorum plus one acknowledgement per
/// pending replica (a replay, `replay = Some(cl)`, with `cl = All`: for every target), or for
/// all answers, or the timeout. The erm guard is held until every
/// replica answered, as upstream's write response handler holds its erm.
pub(crate) async fn write_to_replicas(
    h: &NodeHandle,
    batch: BatchId,
    m: WriteMutation,
    timeout: Duration,
    replay: Option<ReplayCl>,
    stale: Option<&TopologyState>,
) -> Result<(), String> {
    let all = replay == Some(ReplayCl::All);
    let replay = replay.is_some();
    let erm = h.erm.acquire();
    let (tablet, targets, rf) = match stale {
        Some(s) => route(s, &m),
        None => h.g0.with_state(|s| route(s, &m)),
    };
    let needed = if all {
        targets.len()
    } else {
        quorum(rf) + targets.len().saturating_sub(rf)
    };
    if replay && targets.len() > rf {
        h.sim.mark("replayed mutation routed to a pending replica");
    }
    let net = h.sim.net();
    let from = h.node;
    let version = erm.version();
    let mut calls: FuturesUnordered<_> = targets
        .iter()
        .map(|r| {
            let net = net.clone();
            let r = *r;
            let req = ReplicaWriteReq {
                shard: r.shard,
                tablet,
                key: m.key,
                value: Some(m.value),
                ts: m.ts,
                version,
                batch: Some(BatchTag { batch, m, replay }),
            };
            async move {
                (
                    r,
                    net.call::<ReplicaWrite>(from, r.node, req, timeout).await,
                )
            }
        })
        .collect();
    let mut acks = 0;
    let mut errors = Vec::new();
    while let Some((r, res)) = calls.next().await {
        match res {
            Ok(()) => {
                acks += 1;
                if acks >= needed {
                    // The rest answer in the background, still under the erm guard.
                    sim::spawn(async move {
                        while calls.next().await.is_some() {}
                        drop(erm);
                    });
                    return Ok(());
                }
            }
            Err(e) => errors.push(format!("{r}: {e}")),
        }
    }
    Err(format!(
        "{acks}/{needed} acks for {}:{} in {tablet} ({})",
        m.table,
        m.key,
        errors.join(", ")
    ))
}

/// Chooses the batchlog endpoints of a batch coordinated by `h`'s node (SPEC §5.3 step 1, one
/// rack, as upstream's `get_batchlog_endpoints`): the other live normal nodes of the topology;
/// all of them if at most 2, else 2 at random; a single-node cluster uses itself. `None` if
/// there is none (Unavailable; the user's CL is never ANY here).
fn batchlog_endpoints(h: &NodeHandle) -> Option<Vec<NodeId>> {
    let sim = &h.sim;
    let members: Vec<NodeId> = h.g0.with_state(|s| {
        s.nodes
            .keys()
            .copied()
            .filter(|n| !s.excluded.contains(n))
            .collect()
    });
    if members == [h.node] {
        return Some(vec![h.node]);
    }
    let mut live: Vec<NodeId> = members
        .into_iter()
        .filter(|n| *n != h.node && sim.is_up(*n))
        .collect();
    if live.is_empty() {
        return None;
    }
    if live.len() > 2 {
        live.shuffle(&mut sim.rng("batchlog"));
        live.truncate(2);
        live.sort();
    }
    Some(live)
}

/// Executes a logged batch of `(table, key, value)` writes on coordinator `h` at CL QUORUM.
/// Records `batch_invoke` and `batch_complete`; returns the outcome.
pub async fn mutate_atomically(
    h: Rc<NodeHandle>,
    writes: Vec<(TableId, u64, u64)>,
) -> (BatchId, Outcome) {
    let sim = h.sim.clone();
    let coord = h.node;
    let id = features::next_batch_id(&sim);
    let ts = h.batchlog.new_ts(&sim);
    let mutations: Vec<WriteMutation> = writes
        .iter()
        .map(|&(table, key, value)| WriteMutation {
            table,
            key,
            value,
            ts,
        })
        .collect();
    let cl_acks = quorum(h.bl.rf);
    sim.record(
        Some(coord),
        BatchlogEvent::BatchInvoke {
            id,
            mutations: mutations.clone(),
            cl_acks,
        },
    );
    tracing::debug!(batch = %id, "logged batch {id}: {} mutation(s), {cl_acks} ack(s) needed", mutations.len());
    let (outcome, reason) = run(&h, id, mutations).await;
    tracing::debug!(batch = %id, outcome = ?outcome, "logged batch {id}: {outcome:?}{}", if reason.is_empty() { String::new() } else { format!(" ({reason})") });
    if outcome != Outcome::Ok {
        sim.mark("batch not ok");
    }
    sim.record(
        Some(coord),
        BatchlogEvent::BatchComplete {
            id,
            outcome,
            reason,
        },
    );
    (id, outcome)
}

async fn run(h: &Rc<NodeHandle>, id: BatchId, mutations: Vec<WriteMutation>) -> (Outcome, String) {
    let sim = h.sim.clone();
    let cfg = h.bl.clone();
    let inj = h.inj.clone();
    let coord = h.node;
    let timeout = Duration::from_millis(cfg.write_request_timeout_ms);
    // Step 1: the batch context. `written_at` is the coordinator's db_clock (its wall clock,
    // skewed under a clock-skew fault); the store's deadline is a relative timeout, as RPC
    // timeouts are, so it is taken on the global virtual clock.
    let written_at = sim.wall_clock_ms(coord);
    let deadline_ms = sim.now().as_millis() + cfg.write_request_timeout_ms;
    let Some(endpoints) = batchlog_endpoints(h) else {
        return (Outcome::Failed, "unavailable: no batchlog endpoint".into());
    };
    // Step 2: availability check at the user's CL, on the current erm.
    for m in &mutations {
        let (tablet, targets, rf) = h.g0.with_state(|s| route(s, m));
        let needed = quorum(rf) + targets.len().saturating_sub(rf);
        let live = targets.iter().filter(|r| sim.is_up(r.node)).count();
        if live < needed {
            return (
                Outcome::Failed,
                format!(
                    "unavailable: {}:{} in {tablet} has {live} live replicas of {needed} needed",
                    m.table, m.key
                ),
            );
        }
    }
    // Step 3: the batchlog entry, stage initial, CL ONE.
    let body = Rc::new(BatchBody {
        id,
        mutations: mutations.clone(),
    });
    let pk = replay::entry_partition(features::layout(&sim), id, written_at, cfg.shard_count);
    let ck = ClusteringKey { written_at, id };
    let entry_ts = h.batchlog.new_ts(&sim);
    let net = sim.net();
    let mut calls: FuturesUnordered<_> = endpoints
        .iter()
        .map(|&e| {
            let net = net.clone();
            let req = BatchlogReq::Store {
                deadline_ms,
                pk,
                ck,
                ts: entry_ts,
                data: body.clone(),
            };
            async move { net.call::<BatchlogMutateVerb>(coord, e, req, timeout).await }
        })
        .collect();
    let mut stored = false;
    let mut definite_failures = 0;
    while let Some(res) = calls.next().await {
        match res {
            Ok(()) => {
                stored = true;
                break;
            }
            Err(sim::RpcError::NodeDown | sim::RpcError::NoHandler) => definite_failures += 1,
            Err(_) => {}
        }
    }
    drop(calls);
    if !stored {
        // A timed-out store may still land and be replayed: only definite refusals are failures.
        return if definite_failures == endpoints.len() {
            (Outcome::Failed, "batchlog write refused".into())
        } else {
            (Outcome::Unknown, "batchlog write timed out".into())
        };
    }
    sim.metric_add("batches_written", 1);
    tracing::debug!(batch = %id, "batchlog entry of batch {id} acknowledged by {}", sim::log::list(&endpoints));
    sim.record(
        Some(coord),
        BatchlogEvent::BatchlogWriteAcked {
            id,
            written_at,
            endpoints: endpoints.clone(),
        },
    );
    let remove = |sim: &sim::Sim| {
        let ts = h.batchlog.new_ts(sim);
        for &e in &endpoints {
            // CL ANY, failures only logged: fire and forget.
            let net = sim.net();
            let req = BatchlogReq::Remove { pk, ck, ts };
            sim::spawn(async move {
                let _ = net.call::<BatchlogMutateVerb>(coord, e, req, timeout).await;
            });
        }
    };
    if sim.mutant(MUTANT_DELETE_BEFORE_APPLY) {
        remove(&sim);
    }
    if inj
        .fail(&sim, coord, "storage_proxy_fail_send_batch")
        .is_err()
    {
        sim.mark("storage_proxy_fail_send_batch");
        return (
            Outcome::Unknown,
            "injected: storage_proxy_fail_send_batch".into(),
        );
    }
    // Step 4: the mutations at the user's CL, all in parallel.
    let results = futures::future::join_all(
        mutations
            .iter()
            .map(|m| write_to_replicas(h, id, *m, timeout, None, None)),
    )
    .await;
    let errors: Vec<String> = results.into_iter().filter_map(|r| r.err()).collect();
    if !errors.is_empty() {
        tracing::info!(batch = %id, "batch {id} not applied everywhere ({}): its batchlog entry stays for replay", errors.join("; "));
        sim.mark("batch apply failed, entry left for replay");
        return (Outcome::Unknown, errors.join("; "));
    }
    // Step 5: delete the entry.
    if inj
        .fail(&sim, coord, "storage_proxy_fail_remove_from_batchlog")
        .is_err()
    {
        sim.mark("storage_proxy_fail_remove_from_batchlog");
        return (Outcome::Ok, String::new());
    }
    if !sim.mutant(MUTANT_DELETE_BEFORE_APPLY) {
        remove(&sim);
    }
    (Outcome::Ok, String::new())
}

/// A plain (unlogged) delete of `key` of user `table` coordinated by `h` at CL QUORUM: a
/// tombstone stamped with the coordinator's clock, sent to the tablet's write replicas. The
/// deletes whose tombstones repair-mode GC may purge (see [`super::repair`]). Records
/// `delete_invoke` and `delete_complete`.
pub async fn delete(h: Rc<NodeHandle>, table: TableId, key: u64) -> Outcome {
    let sim = h.sim.clone();
    let coord = h.node;
    let ts = h.batchlog.new_ts(&sim);
    sim.record(Some(coord), BatchlogEvent::DeleteInvoke { table, key, ts });
    let erm = h.erm.acquire();
    let probe = WriteMutation {
        table,
        key,
        value: 0,
        ts,
    };
    let (tablet, targets, rf) = h.g0.with_state(|s| route(s, &probe));
    let needed = quorum(rf) + targets.len().saturating_sub(rf);
    let timeout = Duration::from_millis(h.bl.write_request_timeout_ms);
    let net = sim.net();
    let version = erm.version();
    let calls = targets.iter().map(|r| {
        net.call::<ReplicaWrite>(
            coord,
            r.node,
            ReplicaWriteReq {
                shard: r.shard,
                tablet,
                key,
                value: None,
                ts,
                version,
                batch: None,
            },
            timeout,
        )
    });
    let results = futures::future::join_all(calls).await;
    drop(erm);
    let acks = results.iter().filter(|r| r.is_ok()).count();
    let outcome = if acks >= needed {
        Outcome::Ok
    } else {
        // Some replica may hold the tombstone: neither applied nor refused for sure.
        Outcome::Unknown
    };
    tracing::debug!(%tablet, key, "delete of {table}:{key} at ts {ts}: {outcome:?} ({acks}/{needed} acks)");
    sim.record(
        Some(coord),
        BatchlogEvent::DeleteComplete {
            table,
            key,
            ts,
            outcome,
        },
    );
    outcome
}
