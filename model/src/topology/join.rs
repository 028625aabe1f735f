//! Adding a node (bootstrap): the joining node's side (`join_node_request`, waiting for the
//! coordinator's `join_node_response`) and the topology coordinator's join path (upstream
//! `topology_coordinator::handle_node_transition` for a node in state `none` with a `join`
//! request, then the transition states `join_group0` → `commit_cdc_generation` →
//! `write_both_read_old` → `write_both_read_new` → the node `normal`).
//!
//! The coordinator's side, one step per pass ([`decide`] is the pure choice, [`step`] runs it):
//! 1. *accept*: with no other transition running (the join preempts the tablet balancer and
//!    waits for running tablet transitions), commit `bootstrapping` and `join_group0`; the
//!    node now counts as a transitioning node: every barrier targets it.
//! 2. `join_group0`: group0 adds the node as a non-voter (it starts receiving the log from
//!    index 1) and the coordinator answers it with `join_node_response`; if the answer fails,
//!    the node goes to `left`. Then `commit_cdc_generation` (tokens and CDC data).
//! 3. `commit_cdc_generation`: a plain `barrier` on every node but the coordinator, then
//!    `write_both_read_old` with a fresh topology session and version+1.
//! 4. `write_both_read_old`: `global_token_metadata_barrier` (`barrier_and_drain` everywhere,
//!    then the fence), then `stream_ranges` to the node, then `write_both_read_new`, the session
//!    deleted, version+1.
//! 5. `write_both_read_new`: the barrier again (it closes and drains the topology session on
//!    every node); if it fails, wait `ring_delay` and go on, as upstream does; then the node is
//!    `normal`. From here on the balancer and `move_tablet` may give it tablets.
//!
//! Simplifications (and what they cost the checkers):
//! - The joining node stays a group0 non-voter (upstream makes it a voter once it has joined):
//!   group0's majority never changes at run time, so a configuration change's own hazards are
//!   not exercised. The non-voter set is derived from the applied topology state
//!   ([`super::state::TopologyState::group0_non_voters`]) instead of a Raft configuration
//!   entry: a leader replicates to a node once it has applied its acceptance.
//! - No join validation (features, IP wait), no tokens and no CDC generation (only tablets
//!   are modelled): `commit_cdc_generation` is its barrier and its commit, `stream_ranges` has
//!   nothing to stream.
//! - A failed barrier or `stream_ranges` is retried after the back-off instead of rolling the
//!   join back (upstream sets `_rollback` and goes through `left_token_ring`): the rollback of
//!   a join is never exercised.

use super::barrier::{global_plain_barrier, global_tablet_barrier, stream_ranges};
use super::events::TopologyEvent;
use super::group0::Group0Error;
use super::ids::{NodeId, SessionId};
use super::state::{
    ApplyOutcome, Group0Command, NodeChange, NodeOp, NodeState, NodeTransition, TopologyState,
};
use crate::node::NodeHandle;
use sim::time::{sleep, Duration};
use sim::{RpcError, Verb};
use std::cell::Cell;
use std::rc::Rc;

/// Upstream's `ring_delay` (30 s): how long `write_both_read_new` waits after a failed
/// barrier before it makes the node normal anyway.
pub const RING_DELAY_MS: u64 = 30_000;

/// Coverage mark: a node joined the cluster (is `normal`).
pub const MARK_NODE_JOINED: &str = "node joined through the topology coordinator";

/// `join_node_request`: a joining node asks to join (sent to any member).
pub struct JoinNodeRequest;
impl Verb for JoinNodeRequest {
    const NAME: &'static str = "join_node_request";
    /// The joining node's shard count.
    type Req = u32;
    type Resp = ();
}

/// `join_node_response`: the coordinator answers the joining node.
pub struct JoinNodeResponse;
impl Verb for JoinNodeResponse {
    const NAME: &'static str = "join_node_response";
    /// Accepted?
    type Req = bool;
    type Resp = ();
}

/// The next step of the join path in state `st` (pure): `None` when there is nothing to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JoinStep {
    /// Accept the join request of this node.
    Accept(NodeId),
    /// `join_group0`: answer the node, then commit `commit_cdc_generation` (or `left`).
    Respond(NodeId),
    /// `commit_cdc_generation`: plain barrier, then `write_both_read_old`.
    CommitCdcGeneration(NodeId),
    /// `write_both_read_old`: barrier and fence, `stream_ranges`, then `write_both_read_new`.
    WriteBothReadOld(NodeId),
    /// `write_both_read_new`: barrier and fence, then the node is normal.
    WriteBothReadNew(NodeId),
}

/// Decide the join path's next step. A node operation in progress goes on; a pending join
/// request starts only when no tablet is in transition (the tablet track excludes other
/// topology operations; the pending request keeps the balancer from starting more).
pub fn decide(st: &TopologyState) -> Option<JoinStep> {
    if let Some((n, t)) = st.node_transition {
        return Some(match t {
            NodeTransition::JoinGroup0 => JoinStep::Respond(n),
            NodeTransition::CommitCdcGeneration => JoinStep::CommitCdcGeneration(n),
            NodeTransition::WriteBothReadOld => JoinStep::WriteBothReadOld(n),
            NodeTransition::WriteBothReadNew => JoinStep::WriteBothReadNew(n),
        });
    }
    let (n, _) = st.join_requests.first_key_value()?;
    (!st.tablets_in_transition()).then_some(JoinStep::Accept(*n))
}

/// Does a node operation hold the state machine or wait for it (so the balancer must not
/// start migrations)?
pub fn preempts_balancing(st: &TopologyState) -> bool {
    st.node_transition.is_some() || !st.join_requests.is_empty()
}

/// The outcome of one join step for the coordinator loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepResult {
    /// Progress was made or attempted; run another pass.
    Busy,
    /// The term changed: the coordinator stops.
    Stop,
}

/// Commit a node change in `term` built on the current state. `Ok(true)`: applied.
async fn commit(
    svc: &NodeHandle,
    term: u64,
    node: NodeId,
    op: NodeOp,
    origin: &str,
    ignores_term: bool,
) -> Result<bool, Group0Error> {
    let base = svc.g0.with_state(|s| s.state_id);
    let cmd = Group0Command::Node(NodeChange {
        base_state_id: base,
        term: Some(term),
        node,
        op,
        origin: origin.to_string(),
    });
    let index = if ignores_term {
        svc.g0.propose(cmd).await?
    } else {
        svc.g0.propose_in_term(term, cmd).await?
    };
    Ok(svc
        .g0
        .with_state(|s| s.outcome(index) == Some(&ApplyOutcome::Applied)))
}

/// Run one step of the join path as the coordinator of `term`. `next_barrier` hands out the
/// coordinator's barrier ids (one sequence for every `raft_topology_cmd`).
pub async fn step(
    svc: &Rc<NodeHandle>,
    term: u64,
    js: JoinStep,
    next_barrier: &dyn Fn() -> u64,
    ignores_term: bool,
) -> StepResult {
    let backoff = Duration::from_millis(svc.cfg.action_failure_backoff_ms);
    let (node, op, origin) = match js {
        JoinStep::Accept(n) => {
            tracing::info!(node = %n, "coordinator found a node to work on: {n} asks to join");
            (n, NodeOp::Accept, "bootstrap: accept node")
        }
        JoinStep::Respond(n) => {
            // group0 lists the node as a non-voter from the acceptance on; answer it.
            let answered = svc
                .sim
                .net()
                .call::<JoinNodeResponse>(
                    svc.node,
                    n,
                    true,
                    Duration::from_millis(svc.cfg.barrier_timeout_ms),
                )
                .await
                .is_ok();
            svc.sim.record(
                Some(svc.node),
                TopologyEvent::JoinAnswered {
                    node: n,
                    accepted: answered,
                },
            );
            if answered {
                (
                    n,
                    NodeOp::CommitCdcGeneration,
                    "bootstrap: insert tokens and CDC generation data",
                )
            } else {
                tracing::info!(node = %n, "answering {n} failed: it moves to left");
                (n, NodeOp::Reject, "bootstrap: failed to accept")
            }
        }
        JoinStep::CommitCdcGeneration(n) => {
            if !global_plain_barrier(svc, term, next_barrier(), svc.node).await {
                sleep(backoff).await;
                return StepResult::Busy;
            }
            let session = SessionId(svc.g0.with_state(|s| s.next_session));
            (
                n,
                NodeOp::WriteBothReadOld { session },
                "committed new CDC generation",
            )
        }
        JoinStep::WriteBothReadOld(n) => {
            if !token_metadata_barrier(svc, term, next_barrier(), ignores_term).await {
                sleep(backoff).await;
                return StepResult::Busy;
            }
            if !stream_ranges(svc, term, next_barrier(), n).await {
                tracing::info!(node = %n, "stream_ranges to {n} failed; retried after the back-off");
                sleep(backoff).await;
                return StepResult::Busy;
            }
            (
                n,
                NodeOp::WriteBothReadNew,
                "bootstrapping: streaming completed",
            )
        }
        JoinStep::WriteBothReadNew(n) => {
            if !token_metadata_barrier(svc, term, next_barrier(), ignores_term).await {
                tracing::info!(node = %n, "barrier of write_both_read_new failed: waiting ring_delay ({RING_DELAY_MS} ms) before making {n} normal");
                sleep(Duration::from_millis(RING_DELAY_MS)).await;
            }
            (n, NodeOp::Normal, "bootstrap: read fence completed")
        }
    };
    match commit(svc, term, node, op, origin, ignores_term).await {
        Err(Group0Error::TermChanged) => StepResult::Stop,
        Err(Group0Error::Unavailable) => {
            sleep(Duration::from_millis(100)).await;
            StepResult::Busy
        }
        Ok(applied) => {
            if applied && js == JoinStep::WriteBothReadNew(node) {
                svc.sim.mark(MARK_NODE_JOINED);
            }
            StepResult::Busy
        }
    }
}

/// `global_token_metadata_barrier`: `barrier_and_drain` on every node, then the fence.
async fn token_metadata_barrier(
    svc: &Rc<NodeHandle>,
    term: u64,
    id: u64,
    ignores_term: bool,
) -> bool {
    let version = svc.g0.with_state(|s| s.version);
    global_tablet_barrier(svc, term, id, vec![]).await
        && super::coordinator::advance_fence_version(svc, term, version, ignores_term).await
}

/// Serve the joining node's `join_node_response`, and every member's `join_node_request`
/// (the request becomes a guarded group0 write: a node row in state `none` with `join`).
pub fn serve(svc: &Rc<NodeHandle>) {
    let s = svc.clone();
    svc.sim
        .net()
        .serve::<JoinNodeRequest>(svc.node, move |from, shards| {
            let s = s.clone();
            Box::pin(async move { request_join(&s, from, shards).await })
        });
    let s = svc.clone();
    svc.sim
        .net()
        .serve::<JoinNodeResponse>(svc.node, move |from, accepted| {
            let s = s.clone();
            Box::pin(async move {
                tracing::info!(coordinator = %from, accepted, "join_node_response from {from}: {}", if accepted { "accepted" } else { "rejected" });
                s.join_accepted.set(Some(accepted));
                Ok(())
            })
        });
}

async fn request_join(svc: &NodeHandle, node: NodeId, shards: u32) -> Result<(), RpcError> {
    for _ in 0..20 {
        if svc.g0.read_barrier().await.is_err() {
            sleep(Duration::from_millis(100)).await;
            continue;
        }
        let (base, known) = svc
            .g0
            .with_state(|s| (s.state_id, s.node_states.contains_key(&node)));
        if known {
            return Ok(());
        }
        let cmd = Group0Command::Node(NodeChange {
            base_state_id: base,
            term: None,
            node,
            op: NodeOp::RequestJoin { shards },
            origin: "join_node_request".into(),
        });
        if svc.g0.propose(cmd).await.is_err() {
            sleep(Duration::from_millis(100)).await;
        }
    }
    Err(RpcError::Remote("join request not committed".into()))
}

/// The joining node's side, run once per boot of a node that is not in the initial cluster:
/// ask the members (lowest id first) until one has written the join request into group0,
/// then wait for the coordinator's answer.
pub async fn join(svc: Rc<NodeHandle>, seeds: Vec<NodeId>) {
    let known = svc.g0.with_state(|s| s.node_states.get(&svc.node).copied());
    if known.is_some_and(|s| s != NodeState::None) {
        return; // a restart of a node that was accepted already
    }
    let asked = Cell::new(0usize);
    loop {
        let seed = seeds[asked.get() % seeds.len()];
        asked.set(asked.get() + 1);
        let shards = svc.shards.len() as u32;
        let res = svc
            .sim
            .net()
            .call::<JoinNodeRequest>(svc.node, seed, shards, Duration::from_secs(10))
            .await;
        if res.is_ok() {
            tracing::info!(seed = %seed, "join request written to group0 through {seed}; waiting for the coordinator");
            return;
        }
        sleep(Duration::from_millis(200)).await;
    }
}
