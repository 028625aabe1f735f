//! Faults as data: what the nemesis can do, when, and for how long.
//!
//! A [`FaultSchedule`] is chosen by the seed (see [`crate::swarm`]) but is never the seed: it is
//! printed by `explain`, stored in repro bundles, replayed verbatim and minimised by the
//! shrinker. Each fault with a duration is undone by the nemesis when it runs out (crash ->
//! restart, stall -> release, partition -> heal, ...), so a shrinker removes whole episodes.
//!
//! The [`Fault`] values themselves live in `sim` ([`sim::fault`]): the world applies and
//! records them, for the nemesis and for scripted stories alike.

use serde::{Deserialize, Serialize};
use std::fmt;

pub use sim::fault::{Fault, FaultKind};

pub use crate::trigger::EventTrigger;

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
            Some(t) => {
                write!(f, "+{}ms after {t}: {}", self.at_ms, self.fault)?;
                if !t.bind.is_empty() {
                    let b: Vec<String> = t.bind.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    write!(f, " with {}", b.join(", "))?;
                }
                if let Some(r) = &t.until {
                    write!(f, " {r}")?;
                }
            }
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
    use sim::NodeId;

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
                        ..EventTrigger::default()
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
