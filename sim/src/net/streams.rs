//! Streams: a caller opens a stream of elements to a handler, which reads them strictly in
//! order (like TCP) and answers once at the end. Killing the connection breaks both ends at once.

use super::calls::Reply;
use super::{AnyBox, ErasedResult, ErasedStreamHandler, Net, RpcError, StreamVerb};
use crate::history::{RpcOutcome, SimEvent};
use crate::ids::NodeId;
use crate::sync::{oneshot, Notify};
use crate::world::Sim;
use futures::future::LocalBoxFuture;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::Duration;

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
    pub(super) fn break_stream(&self) {
        self.broken.set(true);
        self.notify.notify();
    }
}

impl Net {
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
        self.register(node, V::NAME);
        self.st().stream_handlers.insert((node, V::NAME), erased);
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

    /// A stream's opening request arrived: hand it to the handler, unless its connection died.
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
                self.admit(from, to, verb, id, gen, fut, Reply::Respond)
                    .await;
            }
            None => self.respond(from, to, verb, id, gen, Err(RpcError::NoHandler)),
        }
    }

    /// Send one stream element (or end-of-stream), in order after the previous one.
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
        let owner_alive = in_run && sim.is_running(self.from, self.incarnation);
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
