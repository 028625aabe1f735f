//! Small single-threaded synchronisation primitives for code running inside the simulation.
//!
//! Everything here assumes madsim's single-threaded executor: state is in `Cell`/`RefCell`, and
//! wakers are kept in plain vectors.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

pub use futures::channel::{mpsc, oneshot};

#[derive(Default)]
struct NotifyInner {
    version: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

/// A broadcast "something changed" signal: `notified()` resolves at the next `notify()` after
/// it was created. Cheap to clone; clones share the signal.
#[derive(Clone, Default)]
pub struct Notify(Rc<NotifyInner>);

impl Notify {
    /// A new signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wake every current waiter.
    pub fn notify(&self) {
        self.0.version.set(self.0.version.get() + 1);
        let wakers = std::mem::take(&mut *self.0.wakers.borrow_mut());
        for w in wakers {
            w.wake();
        }
    }

    /// A future that resolves at the next `notify()`.
    pub fn notified(&self) -> Notified {
        Notified {
            inner: self.0.clone(),
            seen: self.0.version.get(),
            slot: None,
        }
    }
}

/// Future returned by [`Notify::notified`].
pub struct Notified {
    inner: Rc<NotifyInner>,
    seen: u64,
    /// Where this future's waker sits in `wakers` (valid while the version is `seen`: only
    /// `notify` empties the list, and it moves the version on). A future polled again while
    /// pending — in a `select` with a timer, say — pushed a copy of the same waker each time;
    /// waking a task twice in one `notify` does nothing the first wake did not.
    slot: Option<usize>,
}

impl Future for Notified {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.version.get() != self.seen {
            return Poll::Ready(());
        }
        let mut wakers = self.inner.wakers.borrow_mut();
        if let Some(w) = self.slot.and_then(|i| wakers.get(i)) {
            if w.will_wake(cx.waker()) {
                return Poll::Pending;
            }
        }
        wakers.push(cx.waker().clone());
        let i = wakers.len() - 1;
        drop(wakers);
        self.slot = Some(i);
        Poll::Pending
    }
}

/// An abort source: fires once; holders poll `is_aborted()` or await `aborted()`.
#[derive(Clone, Default)]
pub struct AbortSource {
    fired: Rc<Cell<bool>>,
    notify: Notify,
}

impl AbortSource {
    /// A new, unfired abort source.
    pub fn new() -> Self {
        Self::default()
    }
    /// Fire the abort (idempotent).
    pub fn abort(&self) {
        if !self.fired.replace(true) {
            self.notify.notify();
        }
    }
    /// Has the abort fired?
    pub fn is_aborted(&self) -> bool {
        self.fired.get()
    }
    /// Resolves once the abort has fired.
    pub async fn aborted(&self) {
        while !self.is_aborted() {
            self.notify.notified().await;
        }
    }
}

/// Wait until `cond()` holds, re-checking at every `notify` of `signal`.
pub async fn wait_until(signal: &Notify, mut cond: impl FnMut() -> bool) {
    loop {
        let n = signal.notified();
        if cond() {
            return;
        }
        n.await;
    }
}
