//! The erm (effective replication map, i.e. token-metadata version) tracker of one node: which
//! versions in-flight operations still hold (SPEC §2.4 step (a)).
//!
//! Promise kept here: [`ErmTracker::wait_for_stale_versions`] returns only once no operation
//! holds a version older than the one current at the call; versions only grow.

use sim::sync::Notify;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

struct ErmInner {
    current: Cell<u64>,
    held: RefCell<BTreeMap<u64, u32>>,
    changed: Notify,
}

/// Tracks which token-metadata versions in-flight operations still hold on one node.
#[derive(Clone)]
pub struct ErmTracker(Rc<ErmInner>);

impl Default for ErmTracker {
    fn default() -> Self {
        Self::new()
    }
}

impl ErmTracker {
    /// A tracker at version 0.
    pub fn new() -> Self {
        ErmTracker(Rc::new(ErmInner {
            current: Cell::new(0),
            held: RefCell::new(BTreeMap::new()),
            changed: Notify::new(),
        }))
    }

    /// Publish a new local version (from the group0 apply).
    pub fn set_current(&self, v: u64) {
        assert!(
            v >= self.0.current.get(),
            "token metadata versions only grow"
        );
        self.0.current.set(v);
        self.0.changed.notify();
    }

    /// The current local version.
    pub fn current(&self) -> u64 {
        self.0.current.get()
    }

    /// Pin the current version until the returned guard is dropped.
    pub fn acquire(&self) -> ErmGuard {
        let v = self.current();
        *self.0.held.borrow_mut().entry(v).or_default() += 1;
        ErmGuard {
            tracker: self.clone(),
            version: v,
        }
    }

    /// Wait until no operation holds a version older than the current one (as of the call).
    /// Returns whether it had to wait.
    pub async fn wait_for_stale_versions(&self) -> bool {
        let v = self.current();
        let mut waited = false;
        loop {
            let n = self.0.changed.notified();
            let oldest = self.0.held.borrow().keys().next().copied();
            match oldest {
                Some(o) if o < v => {
                    waited = true;
                    n.await;
                }
                _ => return waited,
            }
        }
    }
}

/// A pinned erm version.
pub struct ErmGuard {
    tracker: ErmTracker,
    version: u64,
}

impl ErmGuard {
    /// The pinned version.
    pub fn version(&self) -> u64 {
        self.version
    }
}

impl Drop for ErmGuard {
    fn drop(&mut self) {
        let mut held = self.tracker.0.held.borrow_mut();
        let c = held.get_mut(&self.version).expect("held version");
        *c -= 1;
        if *c == 0 {
            held.remove(&self.version);
        }
        drop(held);
        self.tracker.0.changed.notify();
    }
}
