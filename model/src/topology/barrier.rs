//! The barrier (SPEC §2.4): the node-side `barrier_and_drain` handler and the coordinator-side
//! `global_tablet_token_metadata_barrier`.
//!
//! Promise kept here: when a node answers `barrier_and_drain` for version v, (1) it has applied
//! group0 at least up to the coordinator's state, so every session removed by then is closing
//! on it, (2) no in-flight operation holds a token-metadata version older than its current one,
//! and (3) every closing session has been drained (no live guard). Hence after a successful
//! global barrier only operations under still-open sessions can run. The `barrier-skips-drain`
//! mutant skips (3), [`BARRIER_SKIPS_STALE_ERM_WAIT`] skips (2), [`BARRIER_SKIPS_VERSION_CHECK`]
//! skips (1); [`BARRIER_NO_TIMEOUT`] takes the coordinator's per-call timeout away (liveness).
//! The handler sets no fence of its own: replicas fence only on group0's
//! `fence_version`, which the coordinator commits after the barrier (see `coordinator.rs`).

use super::events::TopologyEvent;
use super::ids::{NodeId, TabletId};
use crate::node::NodeHandle;
use sim::time::Duration;
use sim::{RpcError, Verb};
use std::rc::Rc;

/// Mutant: the handler answers without waiting for operations that hold an older erm (step
/// (a)), so writes routed by the previous stage may still be running after the barrier.
pub const BARRIER_SKIPS_STALE_ERM_WAIT: &str = "barrier-skips-stale-erm-wait";

/// Mutant: the handler skips its read barrier and the local-version check, answering from
/// whatever group0 state it has applied.
pub const BARRIER_SKIPS_VERSION_CHECK: &str = "barrier-skips-version-check";

/// Mutant: the coordinator's barrier calls have no timeout of their own (one hour), so a
/// barrier whose request to a down node was dropped waits until the run ends.
pub const BARRIER_NO_TIMEOUT: &str = "barrier-no-timeout";

/// Injection: the handler refuses the command (upstream `raft_topology_barrier_and_drain_fail`).
pub const BARRIER_AND_DRAIN_FAIL: &str = "raft_topology_barrier_and_drain_fail";

/// `raft_topology_cmd(barrier_and_drain)`.
pub struct BarrierAndDrain;
/// Which `raft_topology_cmd` a request carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologyCmd {
    /// `barrier_and_drain` (SPEC §2.4).
    BarrierAndDrain,
    /// `barrier`: the read barrier and the term / command-index checks only (the join path's
    /// `commit_cdc_generation` step).
    Barrier,
    /// `stream_ranges`, sent to a bootstrapping node in `write_both_read_old`: stream its vnode
    /// ranges. Only tablet tables are modelled, so there is nothing to stream: the node does the
    /// read barrier and the checks and answers.
    StreamRanges,
}

/// Request of [`BarrierAndDrain`].
#[derive(Clone, Debug)]
pub struct BarrierReq {
    /// The command.
    pub cmd: TopologyCmd,
    /// Barrier id (increasing within a term).
    pub barrier: u64,
    /// The coordinator's term.
    pub term: u64,
    /// The topology version the coordinator based the barrier on.
    pub version: u64,
}
impl Verb for BarrierAndDrain {
    const NAME: &'static str = "raft_topology_cmd";
    type Req = BarrierReq;
    type Resp = ();
}

/// Register the `barrier_and_drain` handler.
pub fn serve(svc: &Rc<NodeHandle>) {
    let s = svc.clone();
    svc.sim
        .net()
        .serve::<BarrierAndDrain>(svc.node, move |_from, req| {
            let s = s.clone();
            Box::pin(async move { barrier_and_drain(&s, req).await })
        });
}

fn refuse(svc: &NodeHandle, req: &BarrierReq, reason: String) -> Result<(), RpcError> {
    tracing::info!(
        barrier = req.barrier,
        term = req.term,
        version = req.version,
        "refused barrier {} at v{}: {reason}",
        req.barrier,
        req.version
    );
    svc.sim.record(
        Some(svc.node),
        TopologyEvent::BarrierRefused {
            barrier: req.barrier,
            reason: reason.clone(),
        },
    );
    Err(RpcError::Remote(reason))
}

async fn barrier_and_drain(svc: &NodeHandle, req: BarrierReq) -> Result<(), RpcError> {
    tracing::debug!(
        barrier = req.barrier,
        term = req.term,
        version = req.version,
        "barrier_and_drain {} for v{} received",
        req.barrier,
        req.version
    );
    let skips_version_check = svc.sim.mutant(BARRIER_SKIPS_VERSION_CHECK);
    if !skips_version_check && svc.g0.read_barrier().await.is_err() {
        return refuse(svc, &req, "read barrier failed".into());
    }
    if svc.inj.enter(&svc.sim, svc.node, BARRIER_AND_DRAIN_FAIL) {
        return refuse(svc, &req, format!("{BARRIER_AND_DRAIN_FAIL} injected"));
    }
    // Term and command-index checks (SPEC §1.9).
    let term = svc.g0.term();
    if req.term != term {
        return refuse(svc, &req, format!("term {} != current {term}", req.term));
    }
    let (last_term, last_id) = svc.last_barrier.get();
    if last_term == req.term && req.barrier <= last_id {
        return refuse(svc, &req, format!("stale command {}", req.barrier));
    }
    svc.last_barrier.set((req.term, req.barrier));
    if req.cmd != TopologyCmd::BarrierAndDrain {
        tracing::debug!(
            barrier = req.barrier,
            "raft_topology_cmd {:?} {} answered after the read barrier",
            req.cmd,
            req.barrier
        );
        return Ok(());
    }
    let local = svc.g0.with_state(|s| s.version);
    if local != req.version && !skips_version_check {
        return refuse(svc, &req, format!("version {local} != {}", req.version));
    }
    // (a) wait for in-flight operations holding an older erm.
    if !svc.sim.mutant(BARRIER_SKIPS_STALE_ERM_WAIT) && svc.erm.wait_for_stale_versions().await {
        tracing::debug!(
            barrier = req.barrier,
            "barrier {} waited for operations holding an older token metadata version",
            req.barrier
        );
        svc.sim.mark("barrier waited for stale erm");
    }
    // (b) drain closing sessions.
    let mut waited = false;
    if !svc.sim.mutant("barrier-skips-drain") {
        // Every shard drains its own registry (upstream: `invoke_on_all` shards).
        for shard in &svc.shards {
            let before = shard.sessions.with(|r| r.registered());
            if tracing::enabled!(tracing::Level::INFO) {
                let closing = shard.sessions.with(|r| r.closing_with_guards());
                if !closing.is_empty() {
                    tracing::info!(
                        barrier = req.barrier,
                        version = req.version,
                        shard = shard.id.0,
                        "barrier {} at v{} waits for {} closing session(s) {} with live guards on shard {}",
                        req.barrier,
                        req.version,
                        closing.len(),
                        sim::log::list(&closing),
                        shard.id.0
                    );
                }
            }
            if shard.sessions.drain_closing_sessions().await {
                waited = true;
            }
            let after = shard.sessions.with(|r| r.registered());
            for s in before.into_iter().filter(|s| !after.contains(s)) {
                tracing::info!(session = %s, barrier = req.barrier, shard = shard.id.0, "session {s} drained and erased on shard {} (barrier {})", shard.id.0, req.barrier);
                svc.sim.record(
                    Some(svc.node),
                    TopologyEvent::SessionDrained {
                        shard: shard.id,
                        session: s,
                    },
                );
            }
        }
        if waited {
            svc.sim.mark("barrier waited for drain");
        }
    }
    // Union over shards (each mirrors the same open set; closing must be empty everywhere).
    let mut open = std::collections::BTreeSet::new();
    let mut closing = std::collections::BTreeSet::new();
    for shard in &svc.shards {
        shard.sessions.with(|r| {
            open.extend(r.open_sessions());
            closing.extend(r.closing_with_guards());
        });
    }
    let (open, closing): (Vec<_>, Vec<_>) =
        (open.into_iter().collect(), closing.into_iter().collect());
    tracing::info!(
        barrier = req.barrier,
        version = req.version,
        waited_for_drain = waited,
        "answered barrier {} at v{}: open sessions {}, closing with guards {}",
        req.barrier,
        req.version,
        sim::log::list(&open),
        sim::log::list(&closing)
    );
    svc.sim.record(
        Some(svc.node),
        TopologyEvent::BarrierAnswered {
            barrier: req.barrier,
            version: req.version,
            local_version: svc.g0.with_state(|s| s.version),
            open,
            closing,
            waited_for_drain: waited,
        },
    );
    Ok(())
}

/// `global_tablet_token_metadata_barrier`: every non-excluded node must answer. Returns whether
/// all did.
pub async fn global_tablet_barrier(
    svc: &NodeHandle,
    term: u64,
    barrier: u64,
    tablets: Vec<TabletId>,
) -> bool {
    let (version, nodes): (u64, Vec<NodeId>) = svc.g0.with_state(|s| {
        (
            s.version,
            s.nodes
                .keys()
                .copied()
                .filter(|n| !s.excluded.contains(n))
                .collect(),
        )
    });
    tracing::info!(
        barrier,
        version,
        term,
        "barrier {barrier} at v{version} started: asking {} for barrier_and_drain (tablets {})",
        sim::log::list(&nodes),
        sim::log::list(&tablets)
    );
    svc.sim.record(
        Some(svc.node),
        TopologyEvent::BarrierStarted {
            barrier,
            version,
            nodes: nodes.clone(),
            tablets,
        },
    );
    let net = svc.sim.net();
    let timeout = if svc.sim.mutant(BARRIER_NO_TIMEOUT) {
        Duration::from_secs(3600)
    } else {
        Duration::from_millis(svc.cfg.barrier_timeout_ms)
    };
    let calls = nodes.iter().map(|n| {
        net.call::<BarrierAndDrain>(
            svc.node,
            *n,
            BarrierReq {
                cmd: TopologyCmd::BarrierAndDrain,
                barrier,
                term,
                version,
            },
            timeout,
        )
    });
    let answers = futures::future::join_all(calls).await;
    for (n, r) in nodes.iter().zip(&answers) {
        if let Err(e) = r {
            tracing::info!(barrier, node = %n, "barrier {barrier}: {n} did not answer ({e})");
        }
    }
    let ok = answers.iter().all(|r| r.is_ok());
    tracing::info!(
        barrier,
        version,
        ok,
        "barrier {barrier} at v{version} {}",
        if ok {
            "completed: every node answered"
        } else {
            "failed"
        }
    );
    svc.sim.record(
        Some(svc.node),
        TopologyEvent::BarrierCompleted { barrier, ok },
    );
    ok
}

/// `exec_global_command(barrier)` of the join path: a plain `barrier` (read barrier and term
/// checks) on every non-excluded node except `exclude`. No fence, no drain, and no barrier
/// events (the barrier checker judges `barrier_and_drain`s). Returns whether all answered.
pub async fn global_plain_barrier(
    svc: &NodeHandle,
    term: u64,
    barrier: u64,
    exclude: NodeId,
) -> bool {
    let (version, nodes): (u64, Vec<NodeId>) = svc.g0.with_state(|s| {
        (
            s.version,
            s.nodes
                .keys()
                .copied()
                .filter(|n| !s.excluded.contains(n) && *n != exclude)
                .collect(),
        )
    });
    let timeout = Duration::from_millis(svc.cfg.barrier_timeout_ms);
    let net = svc.sim.net();
    let calls = nodes.iter().map(|n| {
        net.call::<BarrierAndDrain>(
            svc.node,
            *n,
            BarrierReq {
                cmd: TopologyCmd::Barrier,
                barrier,
                term,
                version,
            },
            timeout,
        )
    });
    let ok = futures::future::join_all(calls)
        .await
        .iter()
        .all(|r| r.is_ok());
    tracing::info!(
        barrier,
        version,
        ok,
        "plain barrier {barrier} at v{version} on {}: {}",
        sim::log::list(&nodes),
        if ok { "every node answered" } else { "failed" }
    );
    ok
}

/// `exec_direct_command(stream_ranges)` to `node`.
pub async fn stream_ranges(svc: &NodeHandle, term: u64, barrier: u64, node: NodeId) -> bool {
    let version = svc.g0.with_state(|s| s.version);
    svc.sim
        .net()
        .call::<BarrierAndDrain>(
            svc.node,
            node,
            BarrierReq {
                cmd: TopologyCmd::StreamRanges,
                barrier,
                term,
                version,
            },
            Duration::from_millis(svc.cfg.stream_timeout_ms),
        )
        .await
        .is_ok()
}
