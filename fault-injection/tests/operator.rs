//! A node that leaves the cluster: a crash triggered while every node is up, then the
//! operator's exclusion through the run's [`Operator`]; the schedule's later down-faults are
//! skipped while it is down.

use fault_injection::{EventTrigger, Fault, FaultSchedule, Nemesis, ScheduledFault};
use futures::FutureExt;
use serde::Serialize;
use sim::fault::Operator;
use sim::runtime::run_seed;
use sim::time::{sleep, Duration};
use sim::{NetConfig, NodeId, Sim, SimEvent};
use std::cell::RefCell;
use std::rc::Rc;

#[derive(Debug, Serialize)]
struct Go {
    node: u32,
}
impl sim::EventKind for Go {
    fn kind(&self) -> &'static str {
        "go"
    }
}

fn go(nth: u32) -> EventTrigger {
    EventTrigger {
        bind: [("node".to_string(), "node".to_string())].into(),
        ..EventTrigger::on("go", nth)
    }
}

/// What the nemesis applied and skipped, in order.
fn record(sim: &Sim) -> Vec<String> {
    sim.history()
        .entries()
        .iter()
        .filter_map(|e| match e.sim() {
            Some(SimEvent::FaultApplied { fault, .. }) => Some(format!("{fault}")),
            Some(SimEvent::FaultSkipped { fault, reason, .. }) => {
                Some(format!("skipped {fault}: {reason}"))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn a_leaving_node_is_crashed_only_while_all_are_up_then_excluded_and_alone_down() {
    let out = run_seed(9, |h| async move {
        let sim = Sim::new(9, &[], NetConfig::default(), h);
        for _ in 0..3 {
            sim.add_node(|_| std::future::pending().boxed_local());
        }
        let excluded = Rc::new(RefCell::new(Vec::new()));
        let e2 = excluded.clone();
        Operator::of(&sim).set_exclude(move |n| e2.borrow_mut().push(n));
        let leaving = |nth| EventTrigger {
            all_up: true,
            ..go(nth)
        };
        let n0 = NodeId(0);
        let schedule = FaultSchedule {
            faults: vec![
                // #1 fires while n1 is crashed by #2: skipped.
                ScheduledFault {
                    at_ms: 0,
                    after: Some(leaving(1)),
                    fault: Fault::Crash { node: n0 },
                    duration_ms: None,
                },
                ScheduledFault {
                    at_ms: 0,
                    after: None,
                    fault: Fault::Crash { node: NodeId(1) },
                    duration_ms: Some(20),
                },
                // #3 on the second event, with every node up: n2 leaves, then is excluded.
                ScheduledFault {
                    at_ms: 0,
                    after: Some(leaving(2)),
                    fault: Fault::Crash { node: n0 },
                    duration_ms: None,
                },
                ScheduledFault {
                    at_ms: 5,
                    after: Some(go(2)),
                    fault: Fault::ExcludeNode { node: n0 },
                    duration_ms: None,
                },
                // Later down-faults are skipped while n2 is gone; an exclude of a live node too.
                ScheduledFault {
                    at_ms: 100,
                    after: None,
                    fault: Fault::Crash { node: NodeId(3) },
                    duration_ms: Some(10),
                },
                ScheduledFault {
                    at_ms: 110,
                    after: None,
                    fault: Fault::ExcludeNode { node: NodeId(3) },
                    duration_ms: None,
                },
            ],
        };
        let nemesis = Nemesis::start(&sim, &schedule, None);
        sleep(Duration::from_millis(5)).await;
        sim.record(None, Go { node: 2 });
        sleep(Duration::from_millis(40)).await;
        sim.record(None, Go { node: 2 });
        sleep(Duration::from_millis(200)).await;
        nemesis.stop();
        let excluded = excluded.borrow().clone();
        (record(&sim), excluded, sim.is_up(NodeId(2)))
    });
    let (record, excluded, n2_up) = out.result.expect("no panic");
    assert_eq!(
        record,
        vec![
            "crash n1",
            "skipped crash n2: n1 is down",
            "crash n2",
            "exclude n2 (operator)",
            "skipped crash n3: n2 left the cluster",
            "skipped exclude n3 (operator): n3 is alive",
        ]
    );
    assert_eq!(excluded, vec![NodeId(2)]);
    assert!(!n2_up, "down until the heal");
}
