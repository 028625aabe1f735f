//! Calls and one-way messages: a request travels to the destination after the link latency
//! (unless a partition, a drop rule or a stall holds it), the handler runs there as an admitted
//! request, and its response travels back on the same connection generation or is discarded.

use super::faults::Stalled;
use super::{AnyBox, Arrive, ErasedResult, Net, RpcError, Verb};
use crate::history::{RpcOutcome, SimEvent};
use crate::ids::NodeId;
use crate::sync::oneshot;
use futures::future::{AbortHandle, Abortable, LocalBoxFuture};
use rand::Rng as _;
use std::time::Duration;

/// What becomes of a handler's result.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Reply {
    /// Travel back to the caller (a call).
    Respond,
    /// Dropped (a one-way message).
    Discard,
}

impl Net {
    /// Call `V` on `to` from `from`, waiting at most `timeout` for the response.
    pub async fn call<V: Verb>(
        &self,
        from: NodeId,
        to: NodeId,
        req: V::Req,
        timeout: Duration,
    ) -> Result<V::Resp, RpcError> {
        if !self.0.is_up(from) {
            // A crashed process sends nothing (a task holding a handle of a node that is down).
            return Err(RpcError::NodeDown);
        }
        let (id, gen) = self.open_conn(from, to);
        let (tx, rx) = oneshot::channel();
        self.st()
            .conns
            .get_mut(&(from, to))
            .expect("conn")
            .pending
            .insert(id, tx);
        self.send_request(from, to, V::NAME, id, gen, Box::new(req), Reply::Respond);
        let res = madsim::time::timeout(timeout, rx).await;
        let (outcome, result) = match res {
            Ok(Ok(r)) => (
                if r.is_ok() {
                    RpcOutcome::Ok
                } else {
                    match r.as_ref().err() {
                        Some(RpcError::ConnectionClosed) => RpcOutcome::ConnectionClosed,
                        Some(RpcError::NoHandler) => RpcOutcome::NoHandler,
                        _ => RpcOutcome::Error,
                    }
                },
                r,
            ),
            Ok(Err(_canceled)) => (
                RpcOutcome::ConnectionClosed,
                Err(RpcError::ConnectionClosed),
            ),
            Err(_elapsed) => {
                if let Some(c) = self.st().conns.get_mut(&(from, to)) {
                    c.pending.remove(&id);
                }
                (RpcOutcome::Timeout, Err(RpcError::Timeout))
            }
        };
        self.0.record_sim(
            Some(from),
            SimEvent::RpcDone {
                id,
                verb: V::NAME,
                outcome,
            },
        );
        result.map(|b| *b.downcast::<V::Resp>().expect("response type of verb"))
    }

    /// Send a one-way message `V` (no response, no failure reported).
    pub fn send<V: Verb<Resp = ()>>(&self, from: NodeId, to: NodeId, req: V::Req) {
        if !self.0.is_up(from) {
            return;
        }
        let (id, gen) = self.open_conn(from, to);
        self.send_request(from, to, V::NAME, id, gen, Box::new(req), Reply::Discard);
    }

    /// The part a call and a one-way message share: record the send, route the request, and
    /// on arrival run the handler.
    #[allow(clippy::too_many_arguments)]
    fn send_request(
        &self,
        from: NodeId,
        to: NodeId,
        verb: &'static str,
        id: u64,
        gen: u64,
        req: AnyBox,
        reply: Reply,
    ) {
        self.0.record_sim(
            Some(from),
            SimEvent::RpcSend {
                id,
                verb,
                to,
                conn: gen,
            },
        );
        let net = self.clone();
        self.route_request(
            from,
            to,
            verb,
            id,
            Box::new(move || Box::pin(net.arrive_call(from, to, verb, id, gen, req, reply))),
        );
    }

    /// Apply partitions, drop rules and stalls to a request, then deliver it after the latency.
    pub(super) fn route_request(
        &self,
        from: NodeId,
        to: NodeId,
        verb: &'static str,
        id: u64,
        arrive: Arrive,
    ) {
        self.st().messages += 1;
        if let Some(reason) = self.drop_reason(from, to, verb) {
            self.0
                .record_sim(Some(from), SimEvent::RpcDropped { id, verb, reason });
            return;
        }
        let stalled = {
            // Most runs have no stall in force: no lookup (and no key to build) then.
            let st = self.st();
            !st.stalls.is_empty()
                && st
                    .stalls
                    .iter()
                    .any(|(f, t, v)| *f == from && *t == to && v == verb)
        } && !self.0.mutant("harness-stall-ignored");
        if stalled {
            self.0
                .record_sim(Some(from), SimEvent::RpcStalled { id, verb });
            self.st().stalled.push(Stalled {
                from,
                to,
                verb,
                arrive,
            });
            return;
        }
        let extra = {
            let st = self.st();
            st.delays
                .get(&(from, to))
                .filter(|r| r.matches(verb))
                .map_or(0.0, |r| r.value)
        };
        let delay = self.latency() + Duration::from_micros((extra * 1000.0) as u64);
        self.deliver_after(to, delay, arrive);
    }

    pub(super) fn deliver_after(&self, to: NodeId, delay: Duration, arrive: Arrive) {
        // The deadline is fixed now, not when the delivery task is first polled, so that
        // elements of one stream keep their order.
        let deadline = madsim::time::TimeHandle::current().now_instant() + delay;
        self.0.spawn_on(to, async move {
            madsim::time::sleep_until(deadline).await;
            arrive().await;
        });
    }

    fn drop_reason(&self, from: NodeId, to: NodeId, verb: &str) -> Option<&'static str> {
        let (blocked, drop_p) = {
            let st = self.st();
            (
                st.blocked.contains(&(from, to)),
                st.drops
                    .get(&(from, to))
                    .filter(|r| r.matches(verb))
                    .map(|r| r.value),
            )
        };
        if blocked && !self.0.mutant("harness-partition-leaks") {
            self.0.mark("partition dropped a message");
            return Some("partition");
        }
        if let Some(p) = drop_p {
            if self.rng().gen_bool(p.clamp(0.0, 1.0)) {
                return Some("drop rule");
            }
        }
        None
    }

    /// Run an admitted request's handler; a kill of its connection does not stop it (unless
    /// the `harness-kill-aborts-receiver` mutant is on).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn admit(
        &self,
        from: NodeId,
        to: NodeId,
        verb: &'static str,
        id: u64,
        gen: u64,
        fut: LocalBoxFuture<'static, ErasedResult>,
        reply: Reply,
    ) {
        self.0
            .record_sim(Some(to), SimEvent::RpcAdmit { id, verb, from });
        let result = if self.0.mutant("harness-kill-aborts-receiver") {
            let (handle, reg) = AbortHandle::new_pair();
            if let Some(c) = self.st().conns.get_mut(&(from, to)) {
                c.admitted.push(handle);
            }
            match Abortable::new(fut, reg).await {
                Ok(r) => r,
                Err(_) => return,
            }
        } else {
            fut.await
        };
        if reply == Reply::Respond {
            self.respond(from, to, verb, id, gen, result);
        }
    }

    /// A request arrived at `to`: run its handler unless its connection died in flight.
    #[allow(clippy::too_many_arguments)]
    async fn arrive_call(
        self,
        from: NodeId,
        to: NodeId,
        verb: &'static str,
        id: u64,
        gen: u64,
        req: AnyBox,
        reply: Reply,
    ) {
        if self.conn_gen(from, to) != gen {
            self.0.record_sim(
                Some(to),
                SimEvent::RpcDropped {
                    id,
                    verb,
                    reason: "connection killed in flight",
                },
            );
            return;
        }
        let handler = self.st().handlers.get(&(to, verb)).cloned();
        match handler {
            Some(h) => {
                let fut = h(from, req);
                self.admit(from, to, verb, id, gen, fut, reply).await;
            }
            None if reply == Reply::Respond => {
                self.respond(from, to, verb, id, gen, Err(RpcError::NoHandler))
            }
            None => {}
        }
    }

    /// Send a handler's result back to the caller, unless its connection was killed meanwhile.
    pub(super) fn respond(
        &self,
        caller: NodeId,
        server: NodeId,
        verb: &'static str,
        id: u64,
        gen: u64,
        result: ErasedResult,
    ) {
        if self.conn_gen(caller, server) != gen {
            self.0.record_sim(
                Some(server),
                SimEvent::RpcLateResponseDiscarded { id, verb },
            );
            self.0.mark("late response discarded");
            return;
        }
        self.st().messages += 1;
        if let Some(reason) = self.drop_reason(server, caller, verb) {
            self.0
                .record_sim(Some(server), SimEvent::RpcDropped { id, verb, reason });
            return;
        }
        let net = self.clone();
        let delay = self.latency();
        self.deliver_after(
            caller,
            delay,
            Box::new(move || {
                Box::pin(async move {
                    let tx = {
                        let mut st = net.st();
                        match st.conns.get_mut(&(caller, server)) {
                            Some(c) if c.gen == gen => c.pending.remove(&id),
                            _ => None,
                        }
                    };
                    match tx {
                        Some(tx) => {
                            let _ = tx.send(result);
                        }
                        None => {
                            net.0.record_sim(
                                Some(caller),
                                SimEvent::RpcLateResponseDiscarded { id, verb },
                            );
                        }
                    }
                })
            }),
        );
    }
}
