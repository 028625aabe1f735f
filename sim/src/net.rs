//! The RPC transport: typed calls, one-way messages and streams over per-(source, destination)
//! connections, with the faults madsim cannot give (kill one connection, per-verb stalls,
//! per-link drop and delay rules, one- or two-way partitions).
//!
//! The hazard this transport exists to reproduce: killing a connection fails the *caller's*
//! pending calls and breaks its streams at once, but a request the receiver already admitted
//! keeps running — its side effects can land long after the caller gave up. Its late response is
//! discarded, never delivered on the new connection.
//!
//! Every message travels as a task on the destination node that sleeps for the link latency, so
//! a crash of the destination drops what is in flight to it, and a pause delays it.

use crate::history::{RpcOutcome, SimEvent};
use crate::ids::NodeId;
use crate::sync::{oneshot, Notify};
use crate::world::Sim;
use futures::future::{AbortHandle, Abortable, LocalBoxFuture};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

/// A request/response verb. `NAME` is what faults and the history refer to.
pub trait Verb: 'static {
    /// Verb name, e.g. `"tablet_stream_data"`.
    const NAME: &'static str;
    /// Request type.
    type Req: Debug + 'static;
    /// Response type (`()` for one-way messages).
    type Resp: Debug + 'static;
}

/// A verb that opens a stream of `Item`s from the caller to the handler.
pub trait StreamVerb: Verb {
    /// Stream element type.
    type Item: Debug + 'static;
}

/// Why an RPC failed, as the caller sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RpcError {
    /// The connection was killed or its peer crashed while the call was outstanding.
    ConnectionClosed,
    /// No answer within the timeout (dropped, partitioned, stalled, or slow).
    Timeout,
    /// The destination has no handler for the verb.
    NoHandler,
    /// The destination is down.
    NodeDown,
    /// The handler returned an error.
    Remote(String),
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::ConnectionClosed => write!(f, "connection closed"),
            RpcError::Timeout => write!(f, "timeout"),
            RpcError::NoHandler => write!(f, "no handler"),
            RpcError::NodeDown => write!(f, "node down"),
            RpcError::Remote(m) => write!(f, "remote error: {m}"),
        }
    }
}

/// Link latency of the transport.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Minimum one-way latency, microseconds.
    pub latency_us_min: u64,
    /// Maximum one-way latency, microseconds.
    pub latency_us_max: u64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency_us_min: 500,
            latency_us_max: 5_000,
        }
    }
}

type AnyBox = Box<dyn Any>;
type ErasedResult = Result<AnyBox, RpcError>;
type ErasedHandler = Rc<dyn Fn(NodeId, AnyBox) -> LocalBoxFuture<'static, ErasedResult>>;
type ErasedStreamHandler =
    Rc<dyn Fn(NodeId, AnyBox, Rc<StreamShared>) -> LocalBoxFuture<'static, ErasedResult>>;
type Arrive = Box<dyn FnOnce() -> LocalBoxFuture<'static, ()>>;

#[derive(Default)]
struct Conn {
    gen: u64,
    pending: BTreeMap<u64, oneshot::Sender<ErasedResult>>,
    streams: BTreeMap<u64, Rc<StreamShared>>,
    admitted: Vec<AbortHandle>,
}

struct Stalled {
    from: NodeId,
    to: NodeId,
    verb: &'static str,
    arrive: Arrive,
}

#[derive(Clone, Debug)]
struct LinkRule {
    verb: Option<String>,
    value: f64,
}

impl LinkRule {
    fn matches(&self, verb: &str) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb)
    }
}

pub(crate) struct NetState {
    cfg: NetConfig,
    next_id: u64,
    messages: u64,
    conns: BTreeMap<(NodeId, NodeId), Conn>,
    handlers: BTreeMap<(NodeId, &'static str), ErasedHandler>,
    stream_handlers: BTreeMap<(NodeId, &'static str), ErasedStreamHandler>,
    blocked: BTreeSet<(NodeId, NodeId)>,
    stalls: BTreeSet<(NodeId, NodeId, String)>,
    stalled: Vec<Stalled>,
    drops: BTreeMap<(NodeId, NodeId), LinkRule>,
    delays: BTreeMap<(NodeId, NodeId), LinkRule>,
}

impl NetState {
    pub(crate) fn new(cfg: NetConfig) -> Self {
        assert!(cfg.latency_us_min <= cfg.latency_us_max);
        NetState {
            cfg,
            next_id: 1,
            messages: 0,
            conns: BTreeMap::new(),
            handlers: BTreeMap::new(),
            stream_handlers: BTreeMap::new(),
            blocked: BTreeSet::new(),
            stalls: BTreeSet::new(),
            stalled: Vec::new(),
            drops: BTreeMap::new(),
            delays: BTreeMap::new(),
        }
    }
}

/// Shared state of one stream (both ends hold it).
pub struct StreamShared {
    verb: &'static str,
    id: u64,
    /// Arrived elements by sequence number (`None` is end-of-stream); read strictly in order,
    /// like TCP, whatever order the delivery tasks ran in.
    items: RefCell<BTreeMap<u64, Option<AnyBox>>>,
    send_seq: Cell<u64>,
    recv_seq: Cell<u64>,
    ended: Cell<bool>,
    broken: Cell<bool>,
    last_delivery_ns: Cell<u64>,
    notify: Notify,
}

impl StreamShared {
    fn break_stream(&self) {
        self.broken.set(true);
        self.notify.notify();
    }
}

/// The transport of a run (a view of the [`Sim`]).
#[derive(Clone)]
pub struct Net(pub(crate) Sim);

impl Net {
    fn st(&self) -> std::cell::RefMut<'_, NetState> {
        self.0 .0.net.borrow_mut()
    }

    fn latency(&self) -> Duration {
        let (lo, hi) = {
            let st = self.st();
            (st.cfg.latency_us_min, st.cfg.latency_us_max)
        };
        Duration::from_micros(self.0.rng("net").gen_range(lo..=hi))
    }

    /// Messages sent so far (requests, responses, stream items).
    pub fn messages(&self) -> u64 {
        self.0 .0.net.borrow().messages
    }

    /// Serve verb `V` on `node` (until the node crashes; boot code registers again).
    pub fn serve<V: Verb>(
        &self,
        node: NodeId,
        handler: impl Fn(NodeId, V::Req) -> LocalBoxFuture<'static, Result<V::Resp, RpcError>> + 'static,
    ) {
        let erased: ErasedHandler = Rc::new(move |from, req: AnyBox| {
            let req = *req.downcast::<V::Req>().expect("request type of verb");
            let fut = handler(from, req);
            Box::pin(async move { fut.await.map(|r| Box::new(r) as AnyBox) })
        });
        self.st().handlers.insert((node, V::NAME), erased);
    }

    /// Serve stream verb `V` on `node`.
    pub fn serve_stream<V: StreamVerb>(
        &self,
        node: NodeId,
        handler: impl Fn(
                NodeId,
                V::Req,
                Source<V::Item>,
            ) -> LocalBoxFuture<'static, Result<V::Resp, RpcError>>
            + 'static,
    ) {
        let sim = self.0.clone();
        let erased: ErasedStreamHandler = Rc::new(move |from, req: AnyBox, shared| {
            let req = *req.downcast::<V::Req>().expect("request type of verb");
            let src = Source {
                sim: sim.clone(),
                node,
                shared,
                done: false,
                _t: PhantomData,
            };
            let fut = handler(from, req, src);
            Box::pin(async move { fut.await.map(|r| Box::new(r) as AnyBox) })
        });
        self.st().stream_handlers.insert((node, V::NAME), erased);
    }

    fn open_conn(&self, from: NodeId, to: NodeId) -> (u64, u64) {
        let mut st = self.st();
        let id = st.next_id;
        st.next_id += 1;
        let gen = st.conns.entry((from, to)).or_default().gen;
        (id, gen)
    }

    fn conn_gen(&self, from: NodeId, to: NodeId) -> u64 {
        self.st().conns.get(&(from, to)).map_or(0, |c| c.gen)
    }

    /// Call `V` on `to` from `from`, waiting at most `timeout` for the response.
    pub async fn call<V: Verb>(
        &self,
        from: NodeId,
        to: NodeId,
        req: V::Req,
        timeout: Duration,
    ) -> Result<V::Resp, RpcError> {
        let (id, gen) = self.open_conn(from, to);
        let (tx, rx) = oneshot::channel();
        self.st()
            .conns
            .get_mut(&(from, to))
            .expect("conn")
            .pending
            .insert(id, tx);
        self.0.record_sim(
            Some(from),
            SimEvent::RpcSend {
                id,
                verb: V::NAME,
                to,
                conn: gen,
            },
        );
        let net = self.clone();
        self.route_request(
            from,
            to,
            V::NAME,
            id,
            Box::new(move || Box::pin(net.arrive_call(from, to, V::NAME, id, gen, Box::new(req)))),
        );
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
        let (id, gen) = self.open_conn(from, to);
        self.0.record_sim(
            Some(from),
            SimEvent::RpcSend {
                id,
                verb: V::NAME,
                to,
                conn: gen,
            },
        );
        let net = self.clone();
        self.route_request(
            from,
            to,
            V::NAME,
            id,
            Box::new(move || {
                Box::pin(async move {
                    if net.conn_gen(from, to) != gen || !net.0.is_up(to) {
                        return;
                    }
                    let handler = net.st().handlers.get(&(to, V::NAME)).cloned();
                    if let Some(h) = handler {
                        net.0.record_sim(
                            Some(to),
                            SimEvent::RpcAdmit {
                                id,
                                verb: V::NAME,
                                from,
                            },
                        );
                        let _ = h(from, Box::new(req)).await;
                    }
                })
            }),
        );
    }

    /// Open a stream of `V::Item`s to `to`; `timeout` bounds the wait for the final response.
    pub fn open_stream<V: StreamVerb>(
        &self,
        from: NodeId,
        to: NodeId,
        req: V::Req,
        timeout: Duration,
    ) -> (Sink<V::Item>, StreamResponse<V::Resp>) {
        let (id, gen) = self.open_conn(from, to);
        let (tx, rx) = oneshot::channel();
        let shared = Rc::new(StreamShared {
            verb: V::NAME,
            id,
            items: RefCell::new(BTreeMap::new()),
            send_seq: Cell::new(0),
            recv_seq: Cell::new(0),
            ended: Cell::new(false),
            broken: Cell::new(false),
            last_delivery_ns: Cell::new(0),
            notify: Notify::new(),
        });
        {
            let mut st = self.st();
            let conn = st.conns.get_mut(&(from, to)).expect("conn");
            conn.pending.insert(id, tx);
            conn.streams.insert(id, shared.clone());
        }
        self.0.record_sim(
            Some(from),
            SimEvent::StreamOpen {
                id,
                verb: V::NAME,
                to,
            },
        );
        let net = self.clone();
        let sh = shared.clone();
        self.route_request(
            from,
            to,
            V::NAME,
            id,
            Box::new(move || {
                Box::pin(net.arrive_stream(from, to, V::NAME, id, gen, Box::new(req), sh))
            }),
        );
        let sink = Sink {
            net: self.clone(),
            from,
            to,
            gen,
            incarnation: self.0.incarnation(from),
            shared,
            closed: false,
            _t: PhantomData,
        };
        let resp = StreamResponse {
            net: self.clone(),
            from,
            to,
            id,
            verb: V::NAME,
            rx,
            timeout,
            _t: PhantomData,
        };
        (sink, resp)
    }

    /// Apply partitions, drop rules and stalls to a request, then deliver it after the latency.
    fn route_request(&self, from: NodeId, to: NodeId, verb: &'static str, id: u64, arrive: Arrive) {
        self.st().messages += 1;
        if let Some(reason) = self.drop_reason(from, to, verb) {
            self.0
                .record_sim(Some(from), SimEvent::RpcDropped { id, verb, reason });
            return;
        }
        let stalled = {
            let st = self.st();
            st.stalls.contains(&(from, to, verb.to_string()))
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

    fn deliver_after(&self, to: NodeId, delay: Duration, arrive: Arrive) {
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
            if self.0.rng("net").gen_bool(p.clamp(0.0, 1.0)) {
                return Some("drop rule");
            }
        }
        None
    }

    async fn admit(
        &self,
        from: NodeId,
        to: NodeId,
        verb: &'static str,
        id: u64,
        gen: u64,
        fut: LocalBoxFuture<'static, ErasedResult>,
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
        self.respond(from, to, verb, id, gen, result);
    }

    async fn arrive_call(
        self,
        from: NodeId,
        to: NodeId,
        verb: &'static str,
        id: u64,
        gen: u64,
        req: AnyBox,
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
                self.admit(from, to, verb, id, gen, fut).await;
            }
            None => self.respond(from, to, verb, id, gen, Err(RpcError::NoHandler)),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn arrive_stream(
        self,
        from: NodeId,
        to: NodeId,
        verb: &'static str,
        id: u64,
        gen: u64,
        req: AnyBox,
        shared: Rc<StreamShared>,
    ) {
        if self.conn_gen(from, to) != gen {
            return;
        }
        let handler = self.st().stream_handlers.get(&(to, verb)).cloned();
        match handler {
            Some(h) => {
                let fut = h(from, req, shared);
                self.admit(from, to, verb, id, gen, fut).await;
            }
            None => self.respond(from, to, verb, id, gen, Err(RpcError::NoHandler)),
        }
    }

    /// Send a handler's result back to the caller, unless its connection was killed meanwhile.
    fn respond(
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

    fn route_stream_item(
        &self,
        from: NodeId,
        to: NodeId,
        gen: u64,
        shared: &Rc<StreamShared>,
        item: Option<AnyBox>,
    ) {
        self.st().messages += 1;
        // FIFO within a stream: never deliver before the previous element.
        let now = self.0.now().0;
        let at = (now + self.latency().as_nanos() as u64).max(shared.last_delivery_ns.get() + 1);
        shared.last_delivery_ns.set(at);
        let seq = shared.send_seq.get();
        shared.send_seq.set(seq + 1);
        let net = self.clone();
        let sh = shared.clone();
        self.deliver_after(
            to,
            Duration::from_nanos(at - now),
            Box::new(move || {
                Box::pin(async move {
                    if net.conn_gen(from, to) != gen || sh.broken.get() {
                        return;
                    }
                    sh.items.borrow_mut().insert(seq, item);
                    sh.notify.notify();
                })
            }),
        );
    }

    /// Kill the `from -> to` connection: `from`'s pending calls fail with
    /// [`RpcError::ConnectionClosed`], its streams to `to` break, later responses are discarded.
    /// Requests `to` already admitted keep running.
    pub fn kill_connection(&self, from: NodeId, to: NodeId) {
        let (pending, streams, admitted) = {
            let mut st = self.st();
            let conn = st.conns.entry((from, to)).or_default();
            conn.gen += 1;
            (
                std::mem::take(&mut conn.pending),
                std::mem::take(&mut conn.streams),
                std::mem::take(&mut conn.admitted),
            )
        };
        self.0.record_sim(
            Some(from),
            SimEvent::ConnectionKilled {
                from,
                to,
                failed_calls: pending.len() as u64,
            },
        );
        if !pending.is_empty() {
            self.0.mark("connection killed with calls pending");
        }
        for (_, tx) in pending {
            let _ = tx.send(Err(RpcError::ConnectionClosed));
        }
        for (_, s) in streams {
            s.break_stream();
        }
        for a in admitted {
            a.abort();
        }
    }

    /// A node crashed: every connection to or from it dies, its handlers are gone, stalled
    /// messages to or from it are lost.
    pub(crate) fn on_crash(&self, node: NodeId) {
        let pairs: Vec<(NodeId, NodeId)> = {
            let mut st = self.st();
            st.handlers.retain(|(n, _), _| *n != node);
            st.stream_handlers.retain(|(n, _), _| *n != node);
            st.stalled.retain(|s| s.from != node && s.to != node);
            st.conns
                .iter()
                .filter(|((f, t), c)| {
                    (*f == node || *t == node) && (!c.pending.is_empty() || !c.streams.is_empty())
                })
                .map(|(k, _)| *k)
                .collect()
        };
        for (f, t) in pairs {
            self.kill_connection(f, t);
        }
        // Bump the remaining connections silently: nothing was pending on them.
        let mut st = self.st();
        for ((f, t), c) in st.conns.iter_mut() {
            if *f == node || *t == node {
                c.gen += 1;
            }
        }
    }

    /// Hold every request of `verb` on `from -> to` until [`Net::release`].
    pub fn stall(&self, from: NodeId, to: NodeId, verb: &str) {
        self.st().stalls.insert((from, to, verb.to_string()));
        self.0.record_fault(format!("stall {verb} {from}->{to}"));
    }

    /// Release a stall: held requests proceed (with fresh latency).
    pub fn release(&self, from: NodeId, to: NodeId, verb: &str) {
        let released: Vec<Stalled> = {
            let mut st = self.st();
            st.stalls.remove(&(from, to, verb.to_string()));
            let (rel, keep) = std::mem::take(&mut st.stalled)
                .into_iter()
                .partition(|s| s.from == from && s.to == to && s.verb == verb);
            st.stalled = keep;
            rel
        };
        self.0.record_fault(format!(
            "release {verb} {from}->{to} ({} held)",
            released.len()
        ));
        if !released.is_empty() {
            self.0.mark("stalled request released");
        }
        for s in released {
            let d = self.latency();
            self.deliver_after(s.to, d, s.arrive);
        }
    }

    /// Drop messages on `from -> to` (optionally only `verb`) with `probability`.
    pub fn drop_messages(&self, from: NodeId, to: NodeId, verb: Option<&str>, probability: f64) {
        self.st().drops.insert(
            (from, to),
            LinkRule {
                verb: verb.map(str::to_string),
                value: probability,
            },
        );
        self.0.record_fault(format!(
            "drop {} {from}->{to} p={probability}",
            verb.unwrap_or("*")
        ));
    }

    /// Delay messages on `from -> to` (optionally only `verb`) by `ms` extra milliseconds.
    pub fn delay_messages(&self, from: NodeId, to: NodeId, verb: Option<&str>, ms: u64) {
        self.st().delays.insert(
            (from, to),
            LinkRule {
                verb: verb.map(str::to_string),
                value: ms as f64,
            },
        );
        self.0.record_fault(format!(
            "delay {} {from}->{to} +{ms}ms",
            verb.unwrap_or("*")
        ));
    }

    /// Remove drop and delay rules of `from -> to`.
    pub fn clear_link(&self, from: NodeId, to: NodeId) {
        let mut st = self.st();
        st.drops.remove(&(from, to));
        st.delays.remove(&(from, to));
    }

    /// Partition `a` from `b`: messages from `a` to `b` (and back, unless `oneway`) are dropped,
    /// and connections across the cut die.
    pub fn partition(&self, a: &[NodeId], b: &[NodeId], oneway: bool) {
        let mut cut = Vec::new();
        for &x in a {
            for &y in b {
                if x == y {
                    continue;
                }
                cut.push((x, y));
                if !oneway {
                    cut.push((y, x));
                }
            }
        }
        self.st().blocked.extend(cut.iter().copied());
        self.0.record_fault(format!(
            "partition {:?} {} {:?}",
            a.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            if oneway { "-/->" } else { "<-/->" },
            b.iter().map(|n| n.to_string()).collect::<Vec<_>>()
        ));
        if !self.0.mutant("harness-partition-leaks") {
            for (x, y) in cut {
                self.kill_connection(x, y);
            }
        }
    }

    /// Heal the partition between `a` and `b` (both directions).
    pub fn heal_partition(&self, a: &[NodeId], b: &[NodeId]) {
        let mut st = self.st();
        for &x in a {
            for &y in b {
                st.blocked.remove(&(x, y));
                st.blocked.remove(&(y, x));
            }
        }
        drop(st);
        self.0.record_fault("heal partition".to_string());
    }

    /// Is `from -> to` currently cut by a partition?
    pub fn is_partitioned(&self, from: NodeId, to: NodeId) -> bool {
        self.st().blocked.contains(&(from, to))
    }

    /// Clear every partition, drop and delay rule, and release every stall.
    pub fn heal_all(&self) {
        let stalls: Vec<(NodeId, NodeId, String)> = {
            let mut st = self.st();
            st.blocked.clear();
            st.drops.clear();
            st.delays.clear();
            st.stalls.iter().cloned().collect()
        };
        for (f, t, v) in stalls {
            self.release(f, t, &v);
        }
    }
}

/// The sending end of a stream. Must be closed with [`Sink::close`]: dropping an open sink on
/// a live node is a model bug and panics.
pub struct Sink<T> {
    net: Net,
    from: NodeId,
    to: NodeId,
    gen: u64,
    incarnation: u32,
    shared: Rc<StreamShared>,
    closed: bool,
    _t: PhantomData<T>,
}

impl<T: Debug + 'static> Sink<T> {
    /// Send one element. Fails once the connection is broken.
    pub async fn send(&mut self, item: T) -> Result<(), RpcError> {
        assert!(!self.closed, "send on a closed sink");
        if self.shared.broken.get() {
            return Err(RpcError::ConnectionClosed);
        }
        self.net.route_stream_item(
            self.from,
            self.to,
            self.gen,
            &self.shared,
            Some(Box::new(item)),
        );
        Ok(())
    }

    /// Has the connection under this stream been killed?
    pub fn is_broken(&self) -> bool {
        self.shared.broken.get()
    }

    /// Close the stream (idempotent). The receiver sees end-of-stream after the last element.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.closed = true;
        if !self.shared.broken.get() {
            self.net
                .route_stream_item(self.from, self.to, self.gen, &self.shared, None);
        }
    }
}

impl<T> Drop for Sink<T> {
    fn drop(&mut self) {
        let sim = &self.net.0;
        // Tasks dropped while the runtime shuts down, or because their node crashed, are not
        // the model's fault.
        let in_run = madsim::time::TimeHandle::try_current().is_some();
        let owner_alive =
            in_run && sim.is_up(self.from) && sim.incarnation(self.from) == self.incarnation;
        if !self.closed && owner_alive && !std::thread::panicking() {
            panic!(
                "stream sink {} #{} {}->{} dropped without close",
                self.shared.verb, self.shared.id, self.from, self.to
            );
        }
    }
}

/// The receiving end of a stream.
pub struct Source<T> {
    sim: Sim,
    node: NodeId,
    shared: Rc<StreamShared>,
    done: bool,
    _t: PhantomData<T>,
}

impl<T: 'static> Source<T> {
    /// Next element; `Ok(None)` at end-of-stream, `Err(ConnectionClosed)` once broken.
    pub async fn recv(&mut self) -> Result<Option<T>, RpcError> {
        loop {
            let notified = self.shared.notify.notified();
            let seq = self.shared.recv_seq.get();
            let next = self.shared.items.borrow_mut().remove(&seq);
            if next.is_some() {
                self.shared.recv_seq.set(seq + 1);
            }
            match next {
                Some(Some(item)) => return Ok(Some(*item.downcast::<T>().expect("item type"))),
                Some(None) => {
                    self.shared.ended.set(true);
                    self.finish("closed");
                    return Ok(None);
                }
                None if self.shared.ended.get() => return Ok(None),
                None if self.shared.broken.get() => {
                    self.finish("broken");
                    return Err(RpcError::ConnectionClosed);
                }
                None => notified.await,
            }
        }
    }

    /// Stream id (for history events).
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    fn finish(&mut self, how: &'static str) {
        if !self.done {
            self.done = true;
            self.sim.record_sim(
                Some(self.node),
                SimEvent::StreamEnd {
                    id: self.shared.id,
                    how,
                },
            );
        }
    }
}

/// The final response of a stream's handler.
pub struct StreamResponse<R> {
    net: Net,
    from: NodeId,
    to: NodeId,
    id: u64,
    verb: &'static str,
    rx: oneshot::Receiver<ErasedResult>,
    timeout: Duration,
    _t: PhantomData<R>,
}

impl<R: 'static> StreamResponse<R> {
    /// Wait for the handler's result (after closing the sink).
    pub async fn wait(self) -> Result<R, RpcError> {
        let res = madsim::time::timeout(self.timeout, self.rx).await;
        let (outcome, result) = match res {
            Ok(Ok(Ok(r))) => (RpcOutcome::Ok, Ok(r)),
            Ok(Ok(Err(RpcError::ConnectionClosed))) | Ok(Err(_)) => (
                RpcOutcome::ConnectionClosed,
                Err(RpcError::ConnectionClosed),
            ),
            Ok(Ok(Err(e))) => (RpcOutcome::Error, Err(e)),
            Err(_) => {
                if let Some(c) = self.net.st().conns.get_mut(&(self.from, self.to)) {
                    c.pending.remove(&self.id);
                }
                (RpcOutcome::Timeout, Err(RpcError::Timeout))
            }
        };
        self.net.0.record_sim(
            Some(self.from),
            SimEvent::RpcDone {
                id: self.id,
                verb: self.verb,
                outcome,
            },
        );
        result.map(|b| *b.downcast::<R>().expect("response type of stream verb"))
    }
}
