//! Node wall clocks: what a node reads as "the time of day" (`db_clock`, write timestamps),
//! apart from the simulator's one global virtual time.
//!
//! Virtual time ([`Sim::now`]) stays global: it orders events, drives timers and stamps the
//! history. A node's wall clock is virtual time plus the node's clock skew — an offset, and a
//! drift (parts per million) accumulated since the skew was applied — set by
//! [`Fault::ClockSkew`](crate::Fault::ClockSkew) and removed when that fault is undone (the
//! clock is then stepped back to true time, as NTP would). Timers and RPC timeouts are relative
//! durations and are not skewed; only what a model reads as wall-clock time is.
//!
//! A node without skew reads exactly virtual time, so a run without clock-skew faults is the
//! same run as before this module existed.

use crate::ids::NodeId;
use crate::world::Sim;
use std::cell::RefCell;
use std::collections::BTreeMap;

/// One node's skew: its clock reads `virtual + offset + drift × (virtual − since)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Skew {
    offset_ns: i64,
    drift_ppm: i64,
    since_ns: u64,
}

/// The skews in force, per node (a run extension, so nothing outlives the run).
#[derive(Default)]
struct Clocks {
    skews: RefCell<BTreeMap<NodeId, Skew>>,
}

impl Sim {
    /// `node`'s wall clock now, in ns (never below 0).
    pub fn wall_clock_ns(&self, node: NodeId) -> u64 {
        let now = self.now().0;
        let clocks = self.ext::<Clocks>();
        let skews = clocks.skews.borrow();
        let Some(s) = skews.get(&node) else {
            return now;
        };
        let elapsed = now.saturating_sub(s.since_ns) as i128;
        let drift = elapsed * s.drift_ppm as i128 / 1_000_000;
        let t = now as i128 + s.offset_ns as i128 + drift;
        t.clamp(0, u64::MAX as i128) as u64
    }

    /// `node`'s wall clock now, in µs (the unit of write timestamps).
    pub fn wall_clock_us(&self, node: NodeId) -> u64 {
        self.wall_clock_ns(node) / 1_000
    }

    /// `node`'s wall clock now, in ms (the unit of `db_clock` values such as `written_at`).
    pub fn wall_clock_ms(&self, node: NodeId) -> u64 {
        self.wall_clock_ns(node) / 1_000_000
    }

    /// How far `node`'s clock is from virtual time now, in ms (positive: ahead).
    pub fn clock_offset_ms(&self, node: NodeId) -> i64 {
        (self.wall_clock_ns(node) as i128 - self.now().0 as i128) as i64 / 1_000_000
    }

    /// Skew `node`'s clock from now on (replacing any skew it had).
    pub(crate) fn skew_clock_now(&self, node: NodeId, offset_ms: i64, drift_ppm: i64) {
        let since_ns = self.now().0;
        self.ext::<Clocks>().skews.borrow_mut().insert(
            node,
            Skew {
                offset_ns: offset_ms.saturating_mul(1_000_000),
                drift_ppm,
                since_ns,
            },
        );
    }

    /// Step `node`'s clock back to virtual time.
    pub(crate) fn unskew_clock_now(&self, node: NodeId) {
        self.ext::<Clocks>().skews.borrow_mut().remove(&node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::run_seed;
    use crate::time::{sleep, Duration};
    use crate::NetConfig;

    #[test]
    fn skew_offsets_and_drifts_one_nodes_clock() {
        let out = run_seed(1, |h| async move {
            let sim = Sim::new(1, &[], NetConfig::default(), h);
            let (a, b) = (NodeId(1), NodeId(2));
            sleep(Duration::from_millis(1_000)).await;
            assert_eq!(sim.wall_clock_ns(a), sim.now().0);
            sim.skew_clock_now(a, -300, 0);
            sim.skew_clock_now(b, 250, 100_000);
            assert_eq!(sim.clock_offset_ms(a), -300);
            assert_eq!(sim.clock_offset_ms(b), 250);
            // 10% drift: 2 s later b is 200 ms further ahead; a's offset stays.
            sleep(Duration::from_millis(2_000)).await;
            assert_eq!(sim.clock_offset_ms(b), 450);
            assert_eq!(sim.clock_offset_ms(a), -300);
            assert_eq!(sim.wall_clock_ms(a), sim.now().as_millis() - 300);
            sim.skew_clock_now(a, -10_000, 0);
            assert_eq!(sim.wall_clock_ns(a), 0, "never below zero");
            sim.unskew_clock_now(a);
            assert_eq!(sim.clock_offset_ms(a), 0);
            sim.teardown();
        });
        out.result.unwrap();
    }
}
