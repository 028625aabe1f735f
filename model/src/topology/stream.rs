//! Tablet streaming (SPEC §1.4 `streaming`, §1.6, §2.3, §3): `tablet_stream_data` to the pending
//! replica's host runs `stream_tablet` (the streaming master), which asks the leaving replica's
//! host to push the tablet's rows over a `STREAM_MUTATION_FRAGMENTS` sink/source stream tagged
//! with the session; the receiver applies them under a topology guard.
//!
//! Promise kept here (SPEC §2.6): every streamed side effect happens under a guard of the
//! migration's session — the master holds one and stops when it closes; the receiver takes one
//! before accepting the stream and calls `check()` before every fragment and every 5 ms while
//! blocked in the `stream_mutation_fragments` injection — so once a node applies the group0
//! change that removes the session, no new fragment is applied there, and the barrier's drain
//! waits for the fragments already past their check.
//!
//! Mutants: `no-fencing` (the receiver takes no guard and never checks),
//! [`RECEIVER_IGNORES_GUARD_CHECK`] (it takes the guard but never checks), and
//! `stream-ignores-closed-session` (the master neither holds nor watches the session and streams
//! under the default session, which is never closed).

use super::data::{CellValue, Storage};
use super::events::TopologyEvent;
use super::ids::{Key, Replica, SessionId, TabletId};
use super::session::FrozenTopologyGuard;
use super::stage::Stage;
use super::tablet_guard;
use crate::node::NodeHandle;
use futures::future::{select, Either};
use sim::time::{sleep, Duration};
use sim::{RpcError, StreamVerb, Verb};
use std::rc::Rc;

/// Mutant: the receiver takes its guard but never calls `check()`, so a receiver blocked in
/// the injection never notices that its session closed and the barrier's drain waits for it
/// forever (the SPEC §3 deadlock).
pub const RECEIVER_IGNORES_GUARD_CHECK: &str = "receiver-ignores-guard-check";

/// `tablet_stream_data(dst_id, gid)`: coordinator → pending replica's host.
pub struct TabletStreamData;
impl Verb for TabletStreamData {
    const NAME: &'static str = "tablet_stream_data";
    type Req = TabletId;
    type Resp = u64;
}

/// The master's request to the source host to push a tablet's rows.
pub struct StreamTabletSource;
/// Request of [`StreamTabletSource`] and [`StreamMutationFragments`].
#[derive(Clone, Debug)]
pub struct StreamPlan {
    /// Tablet.
    pub tablet: TabletId,
    /// Source replica.
    pub src: Replica,
    /// Destination (pending) replica.
    pub dst: Replica,
    /// The frozen guard the stream carries.
    pub guard: FrozenTopologyGuard,
    /// The migration's session (for the history).
    pub origin: SessionId,
}
impl Verb for StreamTabletSource {
    const NAME: &'static str = "stream_request";
    type Req = StreamPlan;
    type Resp = u64;
}

/// `STREAM_MUTATION_FRAGMENTS`: source → pending replica's host.
pub struct StreamMutationFragments;
impl Verb for StreamMutationFragments {
    const NAME: &'static str = "stream_mutation_fragments";
    type Req = StreamPlan;
    type Resp = u64;
}
impl StreamVerb for StreamMutationFragments {
    type Item = (Key, CellValue);
}

fn remote(e: impl std::fmt::Display) -> RpcError {
    RpcError::Remote(e.to_string())
}

/// Register the streaming verbs on a node.
pub fn serve(svc: &Rc<NodeHandle>) {
    let net = svc.sim.net();
    let s = svc.clone();
    net.serve::<TabletStreamData>(svc.node, move |_from, tablet| {
        let s = s.clone();
        Box::pin(async move {
            let s2 = s.clone();
            s.join_or_run(tablet, "stream", move || async move {
                stream_tablet(&s2, tablet).await
            })
            .await
        })
    });
    let s = svc.clone();
    net.serve::<StreamTabletSource>(svc.node, move |_from, plan| {
        let s = s.clone();
        Box::pin(async move { send_fragments(&s, plan).await })
    });
    let s = svc.clone();
    net.serve_stream::<StreamMutationFragments>(svc.node, move |_from, plan, src| {
        let s = s.clone();
        Box::pin(async move { receive_fragments(&s, plan, src).await })
    });
}

/// `stream_tablet` on the pending replica's host (`do_tablet_operation`, SPEC §1.6).
async fn stream_tablet(svc: &NodeHandle, tablet: TabletId) -> Result<u64, RpcError> {
    svc.g0
        .read_barrier()
        .await
        .map_err(|e| remote(format!("{e:?}")))?;
    let (info, session) = svc.g0.with_state(|s| {
        let info = s.tablets.get(&tablet).cloned();
        let session = info.as_ref().and_then(|i| i.session());
        (info, session)
    });
    let info = info.ok_or_else(|| remote("Tablet map not found"))?;
    if info.stage() != Some(Stage::Streaming) {
        return Err(remote(format!(
            "stage is {:?}, not streaming",
            info.stage()
        )));
    }
    let session = session.ok_or_else(|| remote("no session"))?;
    let dst = info
        .pending_replica()
        .filter(|r| r.node == svc.node)
        .ok_or_else(|| remote("not the pending replica's host"))?;
    let src = info
        .leaving_replica()
        .ok_or_else(|| remote("no leaving replica"))?;
    let ignores = svc.sim.mutant("stream-ignores-closed-session");
    let guard = if ignores {
        None
    } else {
        Some(
            svc.sessions(dst.shard)
                .enter(FrozenTopologyGuard(session))
                .map_err(remote)?,
        )
    };
    tracing::info!(%tablet, %session, src = %src, dst = %dst, "stream master for {tablet} under session {session}: asking {src} to push its rows to {dst}");
    svc.sim.record(
        Some(svc.node),
        TopologyEvent::StreamStarted { tablet, session },
    );
    let plan = StreamPlan {
        tablet,
        src,
        dst,
        guard: FrozenTopologyGuard(if ignores { SessionId::DEFAULT } else { session }),
        origin: session,
    };
    let net = svc.sim.net();
    let call = net.call::<StreamTabletSource>(
        svc.node,
        src.node,
        plan,
        Duration::from_millis(svc.cfg.stream_timeout_ms),
    );
    let run = async {
        match &guard {
            None => call.await,
            Some(g) => match select(Box::pin(call), Box::pin(g.aborted())).await {
                Either::Left((r, _)) => r.and_then(|n| g.check().map(|()| n).map_err(remote)),
                Either::Right(((), _)) => {
                    tracing::info!(%tablet, %session, "stream master for {tablet} aborted: session {session} is closing");
                    svc.sim.mark("stream master aborted by session close");
                    Err(remote("session closed"))
                }
            },
        }
    };
    // The tablet metadata guard (SPEC §1.6 step 3): held for the whole operation; when the
    // tablet's stage moves on it keeps the old erm, so the next barrier waits for the master,
    // and stops it.
    let res = match tablet_guard::guarded(svc, tablet, run).await {
        Some(r) => r,
        None => {
            svc.sim
                .mark("stream master stopped: tablet metadata guard went stale");
            Err(remote("tablet metadata changed"))
        }
    };
    drop(guard);
    match &res {
        Ok(n) => {
            tracing::info!(%tablet, %session, "stream master for {tablet} under session {session} finished: {n} rows")
        }
        Err(e) => {
            tracing::info!(%tablet, %session, "stream master for {tablet} under session {session} failed: {e}")
        }
    }
    svc.sim.record(
        Some(svc.node),
        TopologyEvent::StreamFinished {
            tablet,
            session,
            ok: res.is_ok(),
            error: res.as_ref().err().map(|e| e.to_string()),
        },
    );
    res
}

/// The source side: push every row of the tablet's replica over one stream.
async fn send_fragments(svc: &NodeHandle, plan: StreamPlan) -> Result<u64, RpcError> {
    let rows = Storage::of(&svc.sim, svc.node).scan(plan.src.shard, plan.tablet);
    tracing::debug!(tablet = %plan.tablet, session = %plan.origin, "pushing {} rows of {} from {} to {}", rows.len(), plan.tablet, plan.src, plan.dst);
    let (mut sink, resp) = svc.sim.net().open_stream::<StreamMutationFragments>(
        svc.node,
        plan.dst.node,
        plan.clone(),
        Duration::from_millis(svc.cfg.stream_timeout_ms),
    );
    for row in rows {
        if let Err(e) = sink.send(row).await {
            tracing::debug!(tablet = %plan.tablet, "push of {} to {} broke: {e}", plan.tablet, plan.dst);
            sink.close();
            return Err(e);
        }
        sleep(Duration::from_millis(svc.cfg.stream_fragment_interval_ms)).await;
        if sink.is_broken() {
            sink.close();
            return Err(RpcError::ConnectionClosed);
        }
    }
    sink.close();
    resp.wait().await
}

fn refused(svc: &NodeHandle, plan: &StreamPlan, reason: String) -> RpcError {
    tracing::info!(tablet = %plan.tablet, session = %plan.origin, replica = %plan.dst, "refused stream of {} into {} (session {}): {reason}", plan.tablet, plan.dst, plan.origin);
    svc.sim.mark("stale stream refused");
    svc.sim.record(
        Some(svc.node),
        TopologyEvent::FragmentRefused {
            tablet: plan.tablet,
            replica: plan.dst,
            origin: plan.origin,
            reason: reason.clone(),
        },
    );
    RpcError::Remote(reason)
}

/// The `STREAM_MUTATION_FRAGMENTS` receiver on the pending replica's host.
async fn receive_fragments(
    svc: &NodeHandle,
    plan: StreamPlan,
    mut src: sim::Source<(Key, CellValue)>,
) -> Result<u64, RpcError> {
    let fenced = !svc.sim.mutant("no-fencing");
    tracing::debug!(tablet = %plan.tablet, session = %plan.guard.0, "receiving stream of {} into {} under session {}", plan.tablet, plan.dst, plan.guard.0);
    let guard = if fenced {
        Some(
            svc.sessions(plan.dst.shard)
                .enter(plan.guard)
                .map_err(|e| refused(svc, &plan, e.to_string()))?,
        )
    } else {
        None
    };
    let ignores_check = svc.sim.mutant(RECEIVER_IGNORES_GUARD_CHECK);
    let check = |g: &Option<super::session::TopologyGuard>| -> Result<(), RpcError> {
        match g {
            Some(g) if !ignores_check => g.check().map_err(|e| refused(svc, &plan, e.to_string())),
            _ => Ok(()),
        }
    };
    let storage = Storage::of(&svc.sim, svc.node);
    let mut applied = 0;
    let mut keys = Vec::new();
    loop {
        let item = src.recv().await?;
        let Some((key, value)) = item else { break };
        check(&guard)?;
        // SPEC §3 step 9: blocked between receiving and applying; polls every 5 ms and checks
        // the guard before each poll.
        if let Some(h) = svc
            .inj
            .handler(&svc.sim, svc.node, "stream_mutation_fragments")
        {
            loop {
                check(&guard)?;
                if h.poll_for_message() {
                    break;
                }
                sleep(Duration::from_millis(5)).await;
            }
        }
        // The consumer writing the fragment into the table holds its guard for the duration
        // of the write without re-checking: only the barrier's drain protects this window.
        if let Some(h) = svc.inj.handler(&svc.sim, svc.node, "stream_consumer_write") {
            svc.sim.mark("consumer write paused");
            let _ = h.wait_for_message(Duration::from_secs(600), None).await;
        }
        storage.put(plan.dst.shard, plan.tablet, key, value);
        tracing::debug!(tablet = %plan.tablet, session = %plan.guard.0, key, "applied streamed row {key} of {} to {} under session {}", plan.tablet, plan.dst, plan.guard.0);
        applied += 1;
        keys.push(key);
        svc.sim.record(
            Some(svc.node),
            TopologyEvent::FragmentApplied {
                tablet: plan.tablet,
                replica: plan.dst,
                session: plan.guard.0,
                origin: plan.origin,
                key,
                value: value.value,
            },
        );
    }
    storage.sync().await?;
    // Streamed while a view of the base is being built: staging (crate::view::staging).
    crate::view::staging::on_streamed(svc, plan.dst, plan.tablet, keys);
    drop(guard);
    Ok(applied)
}
