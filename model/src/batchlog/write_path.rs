//! The logged-batch write path on the coordinator (`storage_proxy::mutate_atomically_result`,
//! SPEC §5.3): batchlog write (CL ONE), apply at the user's CL, batchlog delete (CL ANY, failures
//! only logged).
//!
//! Promise kept here: the batch's mutations are sent only after its batchlog entry is durable on
//! at least one batchlog endpoint, and the entry is deleted only after every mutation was
//! acknowledged at the user's CL. Any failure after the batchlog write is reported as
//! `unknown`: the entry stays and a replay will apply the batch later.

use super::cluster::{BatchlogMutateVerb, BatchlogReq, Cluster, ReplicaWrite, ReplicaWriteVerb};
use super::events::{BatchlogEvent, Outcome};
use super::replay;
use super::types::{BatchBody, BatchId, ClusteringKey, TableId, WriteMutation};
use fault_injection::Injections;
use futures::stream::{FuturesUnordered, StreamExt};
use rand::seq::SliceRandom;
use sim::time::Duration;
use sim::NodeId;
use std::rc::Rc;

/// Mutant: delete the batchlog entry before applying the mutations.
pub const MUTANT_DELETE_BEFORE_APPLY: &str = "batchlog-delete-before-apply";

/// Sends `mutation` of `batch` to all its replicas and waits for `needed` acknowledgements
/// (or for all answers, or the timeout). Returns whether `needed` was reached.
pub(crate) async fn write_to_replicas(
    c: &Cluster,
    from: NodeId,
    batch: BatchId,
    m: WriteMutation,
    needed: usize,
    timeout: Duration,
    replay: bool,
) -> Result<(), String> {
    let net = c.sim().net();
    let mut calls: FuturesUnordered<_> = c
        .replicas(m.key)
        .into_iter()
        .map(|r| {
            let net = net.clone();
            async move {
                (
                    r,
                    net.call::<ReplicaWriteVerb>(
                        from,
                        r,
                        ReplicaWrite { batch, m, replay },
                        timeout,
                    )
                    .await,
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
                    return Ok(());
                }
            }
            Err(e) => errors.push(format!("{r}: {e}")),
        }
    }
    Err(format!(
        "{acks}/{needed} acks for {}:{} ({})",
        m.table,
        m.key,
        errors.join(", ")
    ))
}

/// Chooses the batchlog endpoints of a batch coordinated by `coord` (SPEC §5.3 step 1, one
/// rack): the other live nodes; all of them if at most 2, else 2 at random; a single-node
/// cluster uses itself. `None` if there is none (Unavailable; the user's CL is never ANY here).
fn batchlog_endpoints(c: &Cluster, coord: NodeId) -> Option<Vec<NodeId>> {
    let sim = c.sim();
    let nodes = c.nodes();
    if nodes.len() == 1 {
        return Some(vec![coord]);
    }
    let mut live: Vec<NodeId> = nodes
        .into_iter()
        .filter(|n| *n != coord && sim.is_up(*n))
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

/// Executes a logged batch of `(table, key, value)` writes on coordinator `coord` at CL
/// QUORUM. Records `batch_invoke` and `batch_complete`; returns the outcome.
pub async fn mutate_atomically(
    c: &Cluster,
    coord: NodeId,
    writes: Vec<(TableId, u64, u64)>,
) -> (BatchId, Outcome) {
    let sim = c.sim().clone();
    let Some(st) = c.state(coord) else {
        return (BatchId(0), Outcome::Failed);
    };
    let id = c.next_batch_id();
    let ts = st.new_ts(&sim);
    let mutations: Vec<WriteMutation> = writes
        .iter()
        .map(|&(table, key, value)| WriteMutation {
            table,
            key,
            value,
            ts,
        })
        .collect();
    let cl_acks = c.quorum();
    sim.record(
        Some(coord),
        BatchlogEvent::BatchInvoke {
            id,
            mutations: mutations.clone(),
            cl_acks,
        },
    );
    tracing::debug!(batch = %id, "logged batch {id}: {} mutation(s), {cl_acks} ack(s) needed", mutations.len());
    let (outcome, reason) = run(c, coord, id, mutations, cl_acks).await;
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

async fn run(
    c: &Cluster,
    coord: NodeId,
    id: BatchId,
    mutations: Vec<WriteMutation>,
    cl_acks: usize,
) -> (Outcome, String) {
    let sim = c.sim().clone();
    let cfg = c.cfg().clone();
    let inj = Injections::of(&sim);
    let st = c.state(coord).expect("coordinator state");
    let timeout = Duration::from_millis(cfg.write_request_timeout_ms);
    // Step 1: the batch context.
    let written_at = sim.now().as_millis();
    let Some(endpoints) = batchlog_endpoints(c, coord) else {
        return (Outcome::Failed, "unavailable: no batchlog endpoint".into());
    };
    // Step 2: availability check at the user's CL.
    for m in &mutations {
        let live = c
            .replicas(m.key)
            .into_iter()
            .filter(|r| sim.is_up(*r))
            .count();
        if live < cl_acks {
            return (
                Outcome::Failed,
                format!(
                    "unavailable: {}:{} has {live} live replicas",
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
    let pk = replay::entry_partition(c.layout(), id, written_at, cfg.shard_count);
    let ck = ClusteringKey { written_at, id };
    let entry_ts = st.new_ts(&sim);
    let net = sim.net();
    let mut calls: FuturesUnordered<_> = endpoints
        .iter()
        .map(|&e| {
            let net = net.clone();
            let req = BatchlogReq::Store {
                deadline_ms: written_at + cfg.write_request_timeout_ms,
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
        let ts = st.new_ts(sim);
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
            .map(|m| write_to_replicas(c, coord, id, *m, cl_acks, timeout, false)),
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
