//! Faults of the transport: killing one connection, a node's crash, per-verb stalls, per-link
//! drop and delay rules, one- or two-way partitions, and healing them all.
//!
//! The public verbs record a typed fault ([`crate::fault`]); the `*_now` mechanics behind them
//! are crate-private, so a fault is never applied without its record.

use super::{Net, RpcError};
use crate::fault::Fault;
use crate::history::SimEvent;
use crate::ids::NodeId;

/// A request held by a stall until [`Net::release`].
pub(super) struct Stalled {
    pub(super) from: NodeId,
    pub(super) to: NodeId,
    pub(super) verb: &'static str,
    pub(super) arrive: super::Arrive,
}

/// A drop probability or an extra delay on one link, for every verb or only one.
#[derive(Clone, Debug)]
pub(super) struct LinkRule {
    verb: Option<String>,
    pub(super) value: f64,
}

impl LinkRule {
    pub(super) fn matches(&self, verb: &str) -> bool {
        self.verb.as_deref().is_none_or(|v| v == verb)
    }
}

impl Net {
    /// Kill the `from -> to` connection: `from`'s pending calls fail with
    /// [`RpcError::ConnectionClosed`], its streams to `to` break, later responses are discarded.
    /// Requests `to` already admitted keep running. Recorded as a [`Fault::KillConnection`].
    pub fn kill_connection(&self, from: NodeId, to: NodeId) {
        self.0
            .apply_fault(&Fault::KillConnection { from, to }, None);
    }

    pub(crate) fn kill_now(&self, from: NodeId, to: NodeId) {
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
            self.kill_now(f, t);
        }
        // Bump the remaining connections silently: nothing was pending on them.
        let mut st = self.st();
        for ((f, t), c) in st.conns.iter_mut() {
            if *f == node || *t == node {
                c.gen += 1;
            }
        }
    }

    /// Hold every request of `verb` on `from -> to` until [`Net::release`]. Recorded as a
    /// [`Fault::Stall`].
    pub fn stall(&self, from: NodeId, to: NodeId, verb: &str) {
        let fault = Fault::Stall {
            from,
            to,
            verb: verb.to_string(),
        };
        self.0.apply_fault(&fault, None);
    }

    pub(crate) fn stall_now(&self, from: NodeId, to: NodeId, verb: &str) {
        self.st().stalls.insert((from, to, verb.to_string()));
    }

    /// Release a stall: held requests proceed (with fresh latency). Ends its stall record.
    pub fn release(&self, from: NodeId, to: NodeId, verb: &str) {
        let stall = Fault::Stall {
            from,
            to,
            verb: verb.to_string(),
        };
        if self.0.undo_matching(|f| *f == stall) == 0 {
            self.release_now(from, to, verb);
        }
    }

    pub(crate) fn release_now(&self, from: NodeId, to: NodeId, verb: &str) {
        let released: Vec<Stalled> = {
            let mut st = self.st();
            st.stalls.remove(&(from, to, verb.to_string()));
            let (rel, keep) = std::mem::take(&mut st.stalled)
                .into_iter()
                .partition(|s| s.from == from && s.to == to && s.verb == verb);
            st.stalled = keep;
            rel
        };
        tracing::info!(target: "sim::fault", "release {verb} {from}->{to}: {} held request(s) proceed", released.len());
        if !released.is_empty() {
            self.0.mark("stalled request released");
        }
        for s in released {
            let d = self.latency();
            self.deliver_after(s.to, d, s.arrive);
        }
    }

    /// Drop messages on `from -> to` (optionally only `verb`) with `probability`. Recorded as
    /// a [`Fault::Drop`].
    pub fn drop_messages(&self, from: NodeId, to: NodeId, verb: Option<&str>, probability: f64) {
        let fault = Fault::Drop {
            from,
            to,
            verb: verb.map(str::to_string),
            probability,
        };
        self.0.apply_fault(&fault, None);
    }

    pub(crate) fn drop_now(&self, from: NodeId, to: NodeId, verb: Option<&str>, probability: f64) {
        self.st().drops.insert(
            (from, to),
            LinkRule {
                verb: verb.map(str::to_string),
                value: probability,
            },
        );
    }

    /// Delay messages on `from -> to` (optionally only `verb`) by `ms` extra milliseconds.
    /// Recorded as a [`Fault::Delay`].
    pub fn delay_messages(&self, from: NodeId, to: NodeId, verb: Option<&str>, ms: u64) {
        let fault = Fault::Delay {
            from,
            to,
            verb: verb.map(str::to_string),
            ms,
        };
        self.0.apply_fault(&fault, None);
    }

    pub(crate) fn delay_now(&self, from: NodeId, to: NodeId, verb: Option<&str>, ms: u64) {
        self.st().delays.insert(
            (from, to),
            LinkRule {
                verb: verb.map(str::to_string),
                value: ms as f64,
            },
        );
    }

    /// Remove drop and delay rules of `from -> to`. Ends their records.
    pub fn clear_link(&self, from: NodeId, to: NodeId) {
        self.0.undo_matching(|f| match f {
            Fault::Drop {
                from: f2, to: t2, ..
            }
            | Fault::Delay {
                from: f2, to: t2, ..
            } => (*f2, *t2) == (from, to),
            _ => false,
        });
        self.clear_drop_now(from, to);
        self.clear_delay_now(from, to);
    }

    pub(crate) fn clear_drop_now(&self, from: NodeId, to: NodeId) {
        self.st().drops.remove(&(from, to));
    }

    pub(crate) fn clear_delay_now(&self, from: NodeId, to: NodeId) {
        self.st().delays.remove(&(from, to));
    }

    /// Partition `a` from `b`: messages from `a` to `b` (and back, unless `oneway`) are dropped,
    /// and connections across the cut die. Recorded as a [`Fault::Partition`].
    pub fn partition(&self, a: &[NodeId], b: &[NodeId], oneway: bool) {
        let fault = Fault::Partition {
            a: a.to_vec(),
            b: b.to_vec(),
            oneway,
        };
        self.0.apply_fault(&fault, None);
    }

    pub(crate) fn partition_now(&self, a: &[NodeId], b: &[NodeId], oneway: bool) {
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
        if !self.0.mutant("harness-partition-leaks") {
            for (x, y) in cut {
                self.kill_now(x, y);
            }
        }
    }

    /// Heal the partition between `a` and `b` (both directions). Ends its record.
    pub fn heal_partition(&self, a: &[NodeId], b: &[NodeId]) {
        let same = |x: &[NodeId], y: &[NodeId]| {
            let (mut x, mut y) = (x.to_vec(), y.to_vec());
            x.sort();
            y.sort();
            x == y
        };
        self.0.undo_matching(|f| match f {
            Fault::Partition { a: a2, b: b2, .. } => {
                (same(a2, a) && same(b2, b)) || (same(a2, b) && same(b2, a))
            }
            _ => false,
        });
        self.heal_partition_now(a, b);
    }

    pub(crate) fn heal_partition_now(&self, a: &[NodeId], b: &[NodeId]) {
        let mut st = self.st();
        for &x in a {
            for &y in b {
                st.blocked.remove(&(x, y));
                st.blocked.remove(&(y, x));
            }
        }
    }

    /// Is `from -> to` currently cut by a partition?
    pub fn is_partitioned(&self, from: NodeId, to: NodeId) -> bool {
        self.st().blocked.contains(&(from, to))
    }

    /// Clear every partition, drop and delay rule, and release every stall, without records:
    /// the sweep after [`Sim::heal`](crate::Sim::heal) undid every open fault.
    pub(crate) fn heal_all(&self) {
        let stalls: Vec<(NodeId, NodeId, String)> = {
            let mut st = self.st();
            st.blocked.clear();
            st.drops.clear();
            st.delays.clear();
            st.stalls.iter().cloned().collect()
        };
        for (f, t, v) in stalls {
            self.release_now(f, t, &v);
        }
    }
}
