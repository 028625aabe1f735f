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

mod calls;
mod faults;
mod streams;

pub use streams::{Sink, Source, StreamResponse, StreamShared};

use crate::ids::NodeId;
use crate::sync::oneshot;
use crate::world::Sim;
use faults::{LinkRule, Stalled};
use futures::future::{AbortHandle, LocalBoxFuture};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
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
    /// The destination is down, or the caller itself is (a task holding the handle of a node
    /// that crashed: a crashed process sends nothing).
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

/// One (source, destination) connection. Killing it bumps `gen`: whatever carries an older
/// generation is dead.
#[derive(Default)]
struct Conn {
    gen: u64,
    pending: BTreeMap<u64, oneshot::Sender<ErasedResult>>,
    streams: BTreeMap<u64, Rc<StreamShared>>,
    admitted: Vec<AbortHandle>,
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
    /// The run's `net` random stream, looked up once (every message draws from it).
    rng: Option<crate::rng::Rng>,
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
            rng: None,
        }
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
        Duration::from_micros(self.rng().gen_range(lo..=hi))
    }

    /// The run's `net` stream (the same one as `Sim::rng("net")`, without the lookup by name
    /// on every message).
    fn rng(&self) -> crate::rng::Rng {
        let mut st = self.st();
        match &st.rng {
            Some(r) => r.clone(),
            None => {
                let r = self.0.rng("net");
                st.rng = Some(r.clone());
                r
            }
        }
    }

    /// Messages sent so far (requests, responses, stream items).
    pub fn messages(&self) -> u64 {
        self.0 .0.net.borrow().messages
    }

    /// Serve verb `V` on `node` until the node crashes (boot code registers again in the next
    /// incarnation).
    ///
    /// Panics if `node` already serves a verb named `V::NAME` in this incarnation: two services
    /// answering one verb is a model bug, and silently replacing the first hid it.
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
        self.register(node, V::NAME);
        self.st().handlers.insert((node, V::NAME), erased);
    }

    /// The verb registry of a node: one handler per verb name (calls and streams share the
    /// names), for the node's current incarnation. A crash clears it ([`Net::on_crash`]).
    fn register(&self, node: NodeId, verb: &'static str) {
        let st = self.st();
        let taken = st.handlers.contains_key(&(node, verb))
            || st.stream_handlers.contains_key(&(node, verb));
        drop(st);
        assert!(
            !taken,
            "verb `{verb}` registered twice on {node} (incarnation {}): a verb is served once per \
             node incarnation",
            self.0.incarnation(node)
        );
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
}
