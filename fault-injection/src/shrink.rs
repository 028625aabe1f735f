//! The shrinker: the smallest fault schedule that still fails the same way.
//!
//! Delta debugging over the schedule's fault episodes (a fault and its undo are one episode, so
//! removing one never leaves a node crashed forever), then shortening what is left: durations
//! halved, start times moved earlier, clock skews halved (offset and drift) and state-triggered
//! faults moved to an earlier occurrence of their event, each kept only if the run still fails.

use crate::fault::{Fault, FaultSchedule};
use std::collections::BTreeSet;

/// `schedule` without the faults whose positions are not in `applied` (the failing run's fault
/// record shows they never took effect: skipped, or never reached).
pub fn without_unapplied(schedule: &FaultSchedule, applied: &BTreeSet<usize>) -> FaultSchedule {
    FaultSchedule {
        faults: schedule
            .faults
            .iter()
            .enumerate()
            .filter(|(i, _)| applied.contains(i))
            .map(|(_, f)| f.clone())
            .collect(),
    }
}

/// Shrink `schedule` while `still_fails` holds; `budget` bounds the number of runs tried.
/// Returns the smallest failing schedule found and the number of runs used.
pub fn shrink(
    schedule: &FaultSchedule,
    budget: usize,
    mut still_fails: impl FnMut(&FaultSchedule) -> bool,
) -> (FaultSchedule, usize) {
    let mut best = schedule.clone();
    let mut runs = 0;
    // 1. ddmin-style removal of chunks, from halves down to single faults.
    let mut chunk = best.faults.len().div_ceil(2).max(1);
    while !best.faults.is_empty() && runs < budget {
        let mut removed_any = false;
        let mut start = 0;
        while start < best.faults.len() && runs < budget {
            let mut candidate = best.clone();
            let end = (start + chunk).min(candidate.faults.len());
            candidate.faults.drain(start..end);
            runs += 1;
            if still_fails(&candidate) {
                best = candidate;
                removed_any = true;
            } else {
                start += chunk;
            }
        }
        if chunk == 1 && !removed_any {
            break;
        }
        if !removed_any {
            chunk = chunk.div_ceil(2);
        }
    }
    // 2. Shorten durations, then move faults earlier (first straight to 0, then halving).
    type Step = fn(&mut crate::fault::ScheduledFault) -> bool;
    let steps: [Step; 5] = [
        |f| match f.duration_ms {
            Some(d) if d > 1 => {
                f.duration_ms = Some(d / 2);
                true
            }
            _ => false,
        },
        |f| {
            let moved = f.at_ms > 0;
            f.at_ms = 0;
            moved
        },
        |f| {
            let moved = f.at_ms > 0;
            f.at_ms /= 2;
            moved
        },
        // A clock skew: half the offset and the drift.
        |f| match &mut f.fault {
            Fault::ClockSkew {
                offset_ms,
                drift_ppm,
                ..
            } if offset_ms.abs() > 1 || *drift_ppm != 0 => {
                *offset_ms /= 2;
                *drift_ppm /= 2;
                true
            }
            _ => false,
        },
        // A state-triggered fault: fire at an earlier occurrence of its event.
        |f| match &mut f.after {
            Some(t) if t.nth > 1 => {
                t.nth /= 2;
                true
            }
            _ => false,
        },
    ];
    for i in 0..best.faults.len() {
        for step in steps {
            loop {
                if runs >= budget {
                    return (best, runs);
                }
                let mut candidate = best.clone();
                if !step(&mut candidate.faults[i]) {
                    break;
                }
                runs += 1;
                if still_fails(&candidate) {
                    best = candidate;
                } else {
                    break;
                }
            }
        }
    }
    (best, runs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::ScheduledFault;
    use sim::NodeId;

    #[test]
    fn clock_skews_shrink_to_the_smallest_offset_that_still_fails() {
        let skew = |node: u32, offset_ms: i64, drift_ppm: i64| ScheduledFault {
            at_ms: 0,
            after: None,
            fault: Fault::ClockSkew {
                node: NodeId(node),
                offset_ms,
                drift_ppm,
            },
            duration_ms: None,
        };
        let schedule = FaultSchedule {
            faults: vec![skew(1, 400, 0), skew(2, -800, 2_000), skew(3, 100, 0)],
        };
        // "Fails" while n2 is at least 150 ms behind.
        let (small, _) = shrink(&schedule, 200, |s| {
            s.faults.iter().any(|f| {
                matches!(f.fault, Fault::ClockSkew { node: NodeId(2), offset_ms, .. } if offset_ms <= -150)
            })
        });
        assert_eq!(small.faults, vec![skew(2, -200, 500)]);
    }

    #[test]
    fn unapplied_faults_are_dropped_by_position() {
        let f = |n: u32| ScheduledFault {
            at_ms: n as u64,
            after: None,
            fault: Fault::Crash { node: NodeId(n) },
            duration_ms: None,
        };
        let s = FaultSchedule {
            faults: vec![f(1), f(2), f(3)],
        };
        let kept = without_unapplied(&s, &[0, 2].into_iter().collect());
        assert_eq!(kept.faults, vec![f(1), f(3)]);
    }

    #[test]
    fn finds_the_one_fault_that_matters() {
        let faults = (0..9)
            .map(|i| ScheduledFault {
                at_ms: 100 * i,
                after: None,
                fault: Fault::Crash {
                    node: NodeId(i as u32 + 1),
                },
                duration_ms: Some(400),
            })
            .collect();
        let schedule = FaultSchedule { faults };
        // "Fails" while n5 is crashed for at least 100 ms.
        let (small, runs) = shrink(&schedule, 200, |s| {
            s.faults.iter().any(|f| {
                f.fault == Fault::Crash { node: NodeId(5) } && f.duration_ms.unwrap_or(0) >= 100
            })
        });
        assert_eq!(small.faults.len(), 1);
        assert_eq!(small.faults[0].fault, Fault::Crash { node: NodeId(5) });
        assert_eq!(small.faults[0].duration_ms, Some(100));
        assert_eq!(small.faults[0].at_ms, 0);
        assert!(runs < 60, "{runs}");
    }
}
