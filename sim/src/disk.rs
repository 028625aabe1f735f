//! The disk model: one per node, living outside the node's tasks so it survives a crash.
//!
//! Writes go to a buffer (the page cache) and become durable only at [`Disk::sync`]; a crash
//! drops everything not yet synced — the behaviour madsim's own file system does not have.
//! Faults hit `sync`: extra latency, a stall until released, or injected I/O errors.

use crate::fault::Fault;
use crate::history::SimEvent;
use crate::ids::NodeId;
use crate::sync::{wait_until, Notify};
use crate::world::Sim;
use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

type Value = Rc<dyn Any>;

/// Error returned by a failed sync.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskError {
    /// An injected I/O error; the buffered writes stay unsynced.
    Io,
}

impl std::fmt::Display for DiskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "injected I/O error")
    }
}

#[derive(Default)]
pub(crate) struct DiskState {
    durable: BTreeMap<String, Value>,
    /// Buffered writes; `None` is a buffered delete.
    pending: BTreeMap<String, Option<Value>>,
    pending_writes: u64,
    stalled: bool,
    latency_ms: u64,
    errors_left: u32,
    released: Notify,
}

/// The disk of one node (a view of the [`Sim`]).
#[derive(Clone)]
pub struct Disk {
    pub(crate) sim: Sim,
    pub(crate) node: NodeId,
    pub(crate) state: Rc<RefCell<DiskState>>,
}

impl Disk {
    /// Buffer a write of `value` under `key`.
    pub fn put<T: Clone + 'static>(&self, key: impl Into<String>, value: T) {
        let key = key.into();
        tracing::trace!(target: "sim::disk", key, "disk of {}: write of {key} buffered", self.node);
        let mut s = self.state.borrow_mut();
        s.pending.insert(key, Some(Rc::new(value)));
        s.pending_writes += 1;
    }

    /// Buffer a delete of `key`.
    pub fn delete(&self, key: impl Into<String>) {
        let key = key.into();
        tracing::trace!(target: "sim::disk", key, "disk of {}: delete of {key} buffered", self.node);
        let mut s = self.state.borrow_mut();
        s.pending.insert(key, None);
        s.pending_writes += 1;
    }

    /// Read `key`, seeing buffered writes.
    pub fn get<T: Clone + 'static>(&self, key: &str) -> Option<T> {
        let s = self.state.borrow();
        let v = match s.pending.get(key) {
            Some(v) => v.clone(),
            None => s.durable.get(key).cloned(),
        };
        v.map(|v| v.downcast_ref::<T>().expect("disk value type").clone())
    }

    /// Every `(key, value)` whose key starts with `prefix`, in key order, seeing buffered writes.
    pub fn scan<T: Clone + 'static>(&self, prefix: &str) -> Vec<(String, T)> {
        let s = self.state.borrow();
        let mut merged: BTreeMap<&str, Option<&Value>> = BTreeMap::new();
        for (k, v) in s.durable.range(prefix.to_string()..) {
            if !k.starts_with(prefix) {
                break;
            }
            merged.insert(k, Some(v));
        }
        for (k, v) in s.pending.range(prefix.to_string()..) {
            if !k.starts_with(prefix) {
                break;
            }
            merged.insert(k, v.as_ref());
        }
        merged
            .into_iter()
            .filter_map(|(k, v)| {
                v.map(|v| {
                    (
                        k.to_string(),
                        v.downcast_ref::<T>().expect("disk value type").clone(),
                    )
                })
            })
            .collect()
    }

    /// The distinct directories `prefix` + `a/` … `c/` of depth `depth` (path components after
    /// `prefix`) that hold at least one key (durable and not deleted since, or buffered), in
    /// order. The same set as cutting every key of [`Disk::scan`] to that depth, without
    /// visiting each key or cloning a value: it seeks past each directory once one live key
    /// shows it (a whole-disk scan for the table list took ~1.5 % of a topology swarm).
    pub fn dirs(&self, prefix: &str, depth: usize) -> Vec<String> {
        let s = self.state.borrow();
        let mut out: Vec<String> = Vec::new();
        let mut cursor = prefix.to_string();
        // The directory of `k` (which starts with `prefix`), if `k` is that deep.
        let dir_of = |k: &str| -> Option<String> {
            let rest = &k[prefix.len()..];
            let mut end = 0;
            for _ in 0..depth {
                end += rest[end..].find('/')? + 1;
            }
            Some(k[..prefix.len() + end].to_string())
        };
        loop {
            let durable = s
                .durable
                .range(cursor.clone()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .find(|(k, _)| {
                    !matches!(s.pending.get(k.as_str()), Some(None)) && dir_of(k).is_some()
                })
                .map(|(k, _)| k);
            let pending = s
                .pending
                .range(cursor.clone()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .find(|(k, v)| v.is_some() && dir_of(k).is_some())
                .map(|(k, _)| k);
            let Some(first) = durable.into_iter().chain(pending).min() else {
                break;
            };
            let dir = dir_of(first).expect("deep enough");
            // The least key after every key under `dir` ('/' + 1 = '0').
            cursor = format!("{}0", &dir[..dir.len() - 1]);
            out.push(dir);
        }
        out
    }

    /// Writes buffered and not yet synced.
    pub fn unsynced(&self) -> u64 {
        self.state.borrow().pending_writes
    }

    /// Make every buffered write durable. Subject to the disk's latency, stall and error faults.
    pub async fn sync(&self) -> Result<(), DiskError> {
        let (released, latency) = {
            let s = self.state.borrow();
            (s.released.clone(), s.latency_ms)
        };
        if self.state.borrow().stalled {
            tracing::trace!(target: "sim::disk", "disk of {}: sync waits for the stalled disk", self.node);
        }
        wait_until(&released, || !self.state.borrow().stalled).await;
        if latency > 0 {
            madsim::time::sleep(Duration::from_millis(latency)).await;
        }
        let (writes, failed) = {
            let mut s = self.state.borrow_mut();
            if s.errors_left > 0 {
                s.errors_left -= 1;
                (0, true)
            } else {
                let pending = std::mem::take(&mut s.pending);
                for (k, v) in pending {
                    match v {
                        Some(v) => {
                            s.durable.insert(k, v);
                        }
                        None => {
                            s.durable.remove(&k);
                        }
                    }
                }
                (std::mem::take(&mut s.pending_writes), false)
            }
        };
        self.sim
            .record_sim(Some(self.node), SimEvent::DiskSync { writes, failed });
        if failed {
            Err(DiskError::Io)
        } else {
            Ok(())
        }
    }

    /// The node crashed: buffered writes are lost (unless the harness mutant keeps them).
    /// Returns how many were lost.
    pub(crate) fn crash(&self) -> u64 {
        let mut s = self.state.borrow_mut();
        if self.sim.mutant("harness-crash-keeps-unsynced") {
            return 0;
        }
        s.pending.clear();
        std::mem::take(&mut s.pending_writes)
    }

    /// Stall every sync until [`Disk::release`]. Recorded as a [`Fault::DiskStall`].
    pub fn stall(&self) {
        self.sim
            .apply_fault(&Fault::DiskStall { node: self.node }, None);
    }

    pub(crate) fn stall_now(&self) {
        self.state.borrow_mut().stalled = true;
    }

    /// Release a stalled disk. Ends its stall record.
    pub fn release(&self) {
        let node = self.node;
        if self.sim.undo_matching(|f| *f == Fault::DiskStall { node }) == 0 {
            self.release_now();
        }
    }

    pub(crate) fn release_now(&self) {
        let n = {
            let mut s = self.state.borrow_mut();
            s.stalled = false;
            s.released.clone()
        };
        n.notify();
    }

    /// Add `ms` of latency to every sync (`0` ends it). Recorded as a [`Fault::DiskLatency`].
    pub fn set_latency(&self, ms: u64) {
        let node = self.node;
        self.sim
            .undo_matching(|f| matches!(f, Fault::DiskLatency { node: n, .. } if *n == node));
        if ms > 0 {
            self.sim.apply_fault(&Fault::DiskLatency { node, ms }, None);
        } else {
            self.set_latency_now(0);
        }
    }

    pub(crate) fn set_latency_now(&self, ms: u64) {
        self.state.borrow_mut().latency_ms = ms;
    }

    /// Fail the next `count` syncs with an I/O error (`0` ends it). Recorded as a
    /// [`Fault::DiskError`].
    pub fn fail_syncs(&self, count: u32) {
        let node = self.node;
        self.sim
            .undo_matching(|f| matches!(f, Fault::DiskError { node: n, .. } if *n == node));
        if count > 0 {
            self.sim
                .apply_fault(&Fault::DiskError { node, count }, None);
        } else {
            self.fail_syncs_now(0);
        }
    }

    pub(crate) fn fail_syncs_now(&self, count: u32) {
        self.state.borrow_mut().errors_left = count;
    }

    /// Clear every disk fault (stall, latency, errors).
    pub fn clear_faults(&self) {
        let n = {
            let mut s = self.state.borrow_mut();
            s.stalled = false;
            s.latency_ms = 0;
            s.errors_left = 0;
            s.released.clone()
        };
        n.notify();
    }
}
