//! TEMP stand-in for `sim::sync::Notify` until the harness lands (same API); removed then.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

#[derive(Default)]
struct NotifyInner {
    version: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

/// A broadcast "something changed" signal.
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
    /// Resolves at the next `notify()`.
    pub fn notified(&self) -> Notified {
        Notified {
            inner: self.0.clone(),
            seen: self.0.version.get(),
        }
    }
}

/// Future of [`Notify::notified`].
pub struct Notified {
    inner: Rc<NotifyInner>,
    seen: u64,
}

impl Future for Notified {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.inner.version.get() != self.seen {
            Poll::Ready(())
        } else {
            self.inner.wakers.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        }
    }
}
