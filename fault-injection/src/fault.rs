//! Faults as data: what the nemesis can do, when, and for how long.
//!
//! A [`FaultSchedule`] is chosen by the seed (see [`crate::swarm`]) but is never the seed: it is
//! printed by `explain`, stored in repro bundles, replayed verbatim and minimised by the
//! shrinker. Each fault with a duration is undone by the nemesis when it runs out (crash ->
//! restart, stall -> release, partition -> heal, ...), so a shrinker removes whole episodes.

use serde::{Deserialize, Serialize};
use sim::NodeId;
use std::fmt;

/// One environment fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Kill the `from -> to` connection (pending calls fail, admitted requests keep running).
    KillConnection {
        /// Client side.
        from: NodeId,
        /// Server side.
        to: NodeId,
    },
    /// Hold requests of `verb` on `from -> to` until the fault ends.
    Stall {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
        /// Verb name.
        verb: String,
    },
    /// Drop messages on `from -> to` with a probability.
    Drop {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
        /// Only this verb, or all.
        verb: Option<String>,
        /// Probability of dropping each message.
        probability: f64,
    },
    /// Add latency on `from -> to`.
    Delay {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
        /// Only this verb, or all.
        verb: Option<String>,
        /// Extra milliseconds.
        ms: u64,
    },
    /// Cut `a` from `b` (both ways unless `oneway`).
    Partition {
        /// One side.
        a: Vec<NodeId>,
        /// The other side.
        b: Vec<NodeId>,
        /// Only `a -> b` is cut.
        oneway: bool,
    },
    /// Crash a node (restarted when the fault ends).
    Crash {
        /// The node.
        node: NodeId,
    },
    /// Pause a node (resumed when the fault ends).
    Pause {
        /// The node.
        node: NodeId,
    },
    /// Stall a node's disk syncs.
    DiskStall {
        /// The node.
        node: NodeId,
    },
    /// Fail a node's next `count` disk syncs.
    DiskError {
        /// The node.
        node: NodeId,
        /// How many syncs fail.
        count: u32,
    },
    /// Slow a node's disk syncs.
    DiskLatency {
        /// The node.
        node: NodeId,
        /// Milliseconds per sync.
        ms: u64,
    },
    /// Crash whichever node leads group0 when the fault fires (restarted when it ends).
    KillLeader,
}

impl Fault {
    /// The kind name of this fault, as used in fault models.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::KillConnection { .. } => FaultKind::KillConnection,
            Fault::Stall { .. } => FaultKind::Stall,
            Fault::Drop { .. } => FaultKind::Drop,
            Fault::Delay { .. } => FaultKind::Delay,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::Crash { .. } => FaultKind::Crash,
            Fault::Pause { .. } => FaultKind::Pause,
            Fault::DiskStall { .. } => FaultKind::DiskStall,
            Fault::DiskError { .. } => FaultKind::DiskError,
            Fault::DiskLatency { .. } => FaultKind::DiskLatency,
            Fault::KillLeader => FaultKind::KillLeader,
        }
    }
}

fn names(v: &[NodeId]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillConnection { from, to } => write!(f, "kill connection {from}->{to}"),
            Fault::Stall { from, to, verb } => write!(f, "stall {verb} {from}->{to}"),
            Fault::Drop {
                from,
                to,
                verb,
                probability,
            } => write!(
                f,
                "drop {} {from}->{to} p={probability:.2}",
                verb.as_deref().unwrap_or("*")
            ),
            Fault::Delay { from, to, verb, ms } => {
                write!(
                    f,
                    "delay {} {from}->{to} +{ms}ms",
                    verb.as_deref().unwrap_or("*")
                )
            }
            Fault::Partition { a, b, oneway } => write!(
                f,
                "partition [{}] {} [{}]",
                names(a),
                if *oneway { "-/->" } else { "<-/->" },
                names(b)
            ),
            Fault::Crash { node } => write!(f, "crash {node}"),
            Fault::Pause { node } => write!(f, "pause {node}"),
            Fault::DiskStall { node } => write!(f, "disk stall {node}"),
            Fault::DiskError { node, count } => write!(f, "disk error {node} x{count}"),
            Fault::DiskLatency { node, ms } => write!(f, "disk latency {node} {ms}ms"),
            Fault::KillLeader => write!(f, "kill group0 leader"),
        }
    }
}

/// Fault kinds, for fault models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// [`Fault::KillConnection`].
    KillConnection,
    /// [`Fault::Stall`].
    Stall,
    /// [`Fault::Drop`].
    Drop,
    /// [`Fault::Delay`].
    Delay,
    /// [`Fault::Partition`].
    Partition,
    /// [`Fault::Crash`].
    Crash,
    /// [`Fault::Pause`].
    Pause,
    /// [`Fault::DiskStall`].
    DiskStall,
    /// [`Fault::DiskError`].
    DiskError,
    /// [`Fault::DiskLatency`].
    DiskLatency,
    /// [`Fault::KillLeader`].
    KillLeader,
}

/// Fire after the `nth` (1-based) history event of `kind`, plus `at_ms`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTrigger {
    /// Event kind name, e.g. `"stage_committed"`.
    pub kind: String,
    /// Which occurrence (1-based).
    pub nth: u32,
}

/// A fault at a point in (virtual) time, optionally undone after `duration_ms`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduledFault {
    /// Milliseconds after the chaos phase starts (or after the trigger event).
    pub at_ms: u64,
    /// Fire relative to an event instead of the chaos start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<EventTrigger>,
    /// What happens.
    pub fault: Fault,
    /// Undo after this long; `None` lasts until the heal phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
}

impl fmt::Display for ScheduledFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.after {
            Some(t) => write!(
                f,
                "+{}ms after {} #{}: {}",
                self.at_ms, t.kind, t.nth, self.fault
            )?,
            None => write!(f, "@{}ms: {}", self.at_ms, self.fault)?,
        }
        if let Some(d) = self.duration_ms {
            write!(f, " for {d}ms")?;
        }
        Ok(())
    }
}

/// The faults of one run, in firing order.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSchedule {
    /// Faults.
    pub faults: Vec<ScheduledFault>,
}

impl FaultSchedule {
    /// No faults.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_round_trips_through_json() {
        let s = FaultSchedule {
            faults: vec![
                ScheduledFault {
                    at_ms: 10,
                    after: None,
                    fault: Fault::Partition {
                        a: vec![NodeId(1)],
                        b: vec![NodeId(2), NodeId(3)],
                        oneway: false,
                    },
                    duration_ms: Some(500),
                },
                ScheduledFault {
                    at_ms: 0,
                    after: Some(EventTrigger {
                        kind: "stage_committed".into(),
                        nth: 2,
                    }),
                    fault: Fault::KillLeader,
                    duration_ms: None,
                },
                ScheduledFault {
                    at_ms: 3,
                    after: None,
                    fault: Fault::Drop {
                        from: NodeId(2),
                        to: NodeId(1),
                        verb: Some("append_entries".into()),
                        probability: 0.25,
                    },
                    duration_ms: Some(7),
                },
            ],
        };
        let json = serde_json::to_string(&s).unwrap();
        let back: FaultSchedule = serde_json::from_str(&json).unwrap();
        assert_eq!(s, back);
        assert!(json.contains("\"type\":\"kill_leader\""));
        assert_eq!(
            s.faults[0].to_string(),
            "@10ms: partition [n1] <-/-> [n2,n3] for 500ms"
        );
    }

    #[test]
    fn unknown_fault_fields_are_rejected() {
        let bad = r#"{"faults":[{"at_ms":1,"fault":{"type":"crash","node":1,"oops":2}}]}"#;
        assert!(serde_json::from_str::<FaultSchedule>(bad).is_err());
        let bad_kind = r#"{"faults":[{"at_ms":1,"fault":{"type":"meteor"}}]}"#;
        assert!(serde_json::from_str::<FaultSchedule>(bad_kind).is_err());
    }
}
