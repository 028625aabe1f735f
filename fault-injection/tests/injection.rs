//! Injection-point semantics (SPEC §4), exercised inside seeded runs.

use fault_injection::{InjectionError, Injections};
use sim::runtime::run_seed;
use sim::sync::AbortSource;
use sim::time::{sleep, Duration};
use sim::{NetConfig, NodeId, Sim};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

fn with_sim<T>(f: impl AsyncFnOnce(Sim, Rc<Injections>) -> T) -> T {
    run_seed(1, |h| async move {
        let sim = Sim::new(1, &[], NetConfig::default(), h);
        let inj = Injections::of(&sim);
        f(sim, inj).await
    })
    .result
    .expect("no panic")
}

const N: NodeId = NodeId(1);

#[test]
fn simple_one_shot_fires_once_and_counts_enters() {
    with_sim(async |sim, inj| {
        assert!(!inj.enter(&sim, N, "p"));
        inj.enable(&sim, N, "p", true, BTreeMap::new());
        assert!(inj.is_enabled(N, "p"));
        assert!(inj.fail(&sim, N, "p").is_err());
        assert!(inj.fail(&sim, N, "p").is_ok(), "one-shot is consumed");
        assert_eq!(inj.enter_count(N, "p"), 1);
        inj.enable(&sim, N, "q", false, BTreeMap::new());
        assert!(inj.enter(&sim, N, "q") && inj.enter(&sim, N, "q"));
        assert_eq!(inj.enter_count(N, "q"), 2);
    });
}

#[test]
fn enabling_twice_keeps_the_first_parameters() {
    with_sim(async |sim, inj| {
        let p = |v: &str| BTreeMap::from([("k".to_string(), v.to_string())]);
        inj.enable(&sim, N, "p", false, p("first"));
        inj.enable(&sim, N, "p", false, p("second"));
        assert_eq!(inj.parameter(N, "p", "k").as_deref(), Some("first"));
    });
}

#[test]
fn sharing_handlers_all_go_on_after_one_message_even_an_early_one() {
    with_sim(async |sim, inj| {
        inj.enable(&sim, N, "p", false, BTreeMap::new());
        inj.message(&sim, N, "p");
        let done = Rc::new(Cell::new(0));
        for _ in 0..3 {
            let (s, i, d) = (sim.clone(), inj.clone(), done.clone());
            sim.spawn_supervisor(async move {
                let h = i.handler(&s, N, "p").expect("enabled");
                h.wait_for_message(Duration::from_secs(10), None)
                    .await
                    .unwrap();
                d.set(d.get() + 1);
            });
        }
        sleep(Duration::from_millis(10)).await;
        assert_eq!(
            done.get(),
            3,
            "a message sent before waiting still releases"
        );
    });
}

#[test]
fn non_sharing_handlers_need_one_message_each() {
    with_sim(async |sim, inj| {
        let params = BTreeMap::from([("share_messages".to_string(), "false".to_string())]);
        inj.enable(&sim, N, "p", false, params);
        let done = Rc::new(Cell::new(0));
        for _ in 0..3 {
            let (s, i, d) = (sim.clone(), inj.clone(), done.clone());
            sim.spawn_supervisor(async move {
                let h = i.handler(&s, N, "p").expect("enabled");
                h.wait_for_message(Duration::from_secs(10), None)
                    .await
                    .unwrap();
                d.set(d.get() + 1);
            });
        }
        sleep(Duration::from_millis(10)).await;
        assert_eq!(inj.waiters(N, "p"), 3);
        inj.message(&sim, N, "p");
        sleep(Duration::from_millis(10)).await;
        assert_eq!(done.get(), 1);
        inj.message(&sim, N, "p");
        inj.message(&sim, N, "p");
        sleep(Duration::from_millis(10)).await;
        assert_eq!(done.get(), 3);
    });
}

#[test]
fn one_shot_handler_stays_registered_while_running_then_disables() {
    with_sim(async |sim, inj| {
        inj.enable(&sim, N, "p", true, BTreeMap::new());
        let h = inj.handler(&sim, N, "p").expect("fires");
        assert!(!inj.is_enabled(N, "p"), "a running one-shot is not listed");
        assert!(
            inj.handler(&sim, N, "p").is_none(),
            "other passes are no-ops"
        );
        assert!(!h.poll_for_message());
        inj.message(&sim, N, "p");
        assert!(h.poll_for_message());
        drop(h);
        assert!(
            inj.handler(&sim, N, "p").is_none(),
            "disabled once the handler ends"
        );
        assert_eq!(inj.enter_count(N, "p"), 1);
    });
}

#[test]
fn disable_releases_waiters_and_abort_interrupts_them() {
    with_sim(async |sim, inj| {
        inj.enable(&sim, N, "p", false, BTreeMap::new());
        let released = Rc::new(Cell::new(false));
        let (s, i, r) = (sim.clone(), inj.clone(), released.clone());
        sim.spawn_supervisor(async move {
            let h = i.handler(&s, N, "p").expect("enabled");
            h.wait_for_message(Duration::from_secs(10), None)
                .await
                .unwrap();
            r.set(true);
        });
        sleep(Duration::from_millis(5)).await;
        inj.disable(&sim, N, "p");
        sleep(Duration::from_millis(5)).await;
        assert!(released.get());

        inj.enable(&sim, N, "a", false, BTreeMap::new());
        let abort = AbortSource::new();
        let a2 = abort.clone();
        sim.spawn_supervisor(async move {
            sleep(Duration::from_millis(5)).await;
            a2.abort();
        });
        let h = inj.handler(&sim, N, "a").unwrap();
        let r = h
            .wait_for_message(Duration::from_secs(10), Some(&abort))
            .await;
        assert_eq!(r, Err(InjectionError::Aborted));
        let slept = inj
            .sleep(&sim, N, "a", Duration::from_secs(5), Some(&abort))
            .await;
        assert_eq!(slept, Err(InjectionError::Aborted));
    });
}

#[test]
fn wait_entered_returns_once_code_reached_the_point() {
    with_sim(async |sim, inj| {
        inj.enable(&sim, N, "p", false, BTreeMap::new());
        let (s, i) = (sim.clone(), inj.clone());
        sim.spawn_supervisor(async move {
            sleep(Duration::from_millis(40)).await;
            let _ = i.enter(&s, N, "p");
        });
        inj.wait_entered(N, "p", 1).await;
        assert!(sim.now().as_millis() >= 40);
    });
}

#[test]
fn a_forgotten_message_is_a_test_failure() {
    let out = run_seed(2, |h| async move {
        let sim = Sim::new(2, &[], NetConfig::default(), h);
        let inj = Injections::of(&sim);
        inj.enable(&sim, N, "p", false, BTreeMap::new());
        let h = inj.handler(&sim, N, "p").unwrap();
        let _ = h.wait_for_message(Duration::from_millis(100), None).await;
    });
    let Err(msg) = out.result else {
        panic!("the deadline must panic")
    };
    assert!(msg.contains("deadline passed"), "{msg}");
}

#[test]
fn nemesis_fires_after_the_nth_event_and_undoes_after_the_duration() {
    use fault_injection::{EventTrigger, Fault, FaultSchedule, Nemesis, ScheduledFault};
    use futures::FutureExt;
    let (applied_ms, undone_ms, up_after) = run_seed(3, |h| async move {
        let sim = Sim::new(3, &[], NetConfig::default(), h);
        let a = sim.add_node(|_| std::future::pending().boxed_local());
        let _b = sim.add_node(|_| std::future::pending().boxed_local());
        let schedule = FaultSchedule {
            faults: vec![ScheduledFault {
                at_ms: 10,
                after: Some(EventTrigger {
                    kind: "injection_entered".into(),
                    nth: 2,
                    ..EventTrigger::default()
                }),
                fault: Fault::Crash { node: a },
                duration_ms: Some(50),
            }],
        };
        let nemesis = Nemesis::start(&sim, &schedule, None);
        let inj = Injections::of(&sim);
        inj.enable(&sim, a, "tick", false, BTreeMap::new());
        for _ in 0..3 {
            sleep(Duration::from_millis(100)).await;
            let _ = inj.enter(&sim, a, "tick");
        }
        sleep(Duration::from_millis(200)).await;
        nemesis.stop();
        let mut applied = None;
        let mut undone = None;
        for e in sim.history().entries().iter() {
            match e.sim() {
                Some(sim::SimEvent::FaultApplied { schedule, .. }) => {
                    assert_eq!(*schedule, Some(0));
                    applied = Some(e.at.as_millis())
                }
                Some(sim::SimEvent::FaultUndone { .. }) => undone = Some(e.at.as_millis()),
                _ => {}
            }
        }
        (applied, undone, sim.is_up(a))
    })
    .result
    .unwrap();
    // The second enter is at 200 ms; the crash exactly 10 ms later (the trigger is woken by
    // the recording, not by polling).
    let applied = applied_ms.expect("applied");
    assert_eq!(applied, 210);
    assert_eq!(undone_ms.expect("undone"), applied + 50);
    assert!(up_after, "restarted when the duration ran out");
}

#[test]
fn a_state_triggered_fault_fires_on_the_matching_event_with_nodes_from_it() {
    use fault_injection::{EventTrigger, Fault, FaultSchedule, Nemesis, ScheduledFault};
    use futures::FutureExt;
    use serde::Serialize;

    #[derive(Debug, Serialize)]
    struct Moved {
        tablet: u32,
        stage: &'static str,
        replicas: Vec<u32>,
        new_replicas: Vec<u32>,
    }
    impl sim::EventKind for Moved {
        fn kind(&self) -> &'static str {
            "moved"
        }
    }

    let out = run_seed(4, |h| async move {
        let sim = Sim::new(4, &[], NetConfig::default(), h);
        for _ in 0..3 {
            sim.add_node(|_| std::future::pending().boxed_local());
        }
        let mut trigger = EventTrigger::on("moved", 1);
        trigger.fields.insert("tablet".into(), 7.into());
        trigger.fields.insert("stage".into(), "streaming".into());
        trigger
            .bind
            .insert("from".into(), "(replicas - new_replicas).0".into());
        trigger
            .bind
            .insert("to".into(), "(new_replicas - replicas).0".into());
        let schedule = FaultSchedule {
            faults: vec![
                ScheduledFault {
                    at_ms: 5,
                    after: Some(trigger),
                    fault: Fault::Stall {
                        from: NodeId(0),
                        to: NodeId(0),
                        verb: "stream".into(),
                    },
                    duration_ms: Some(30),
                },
                // Bound to a node the cluster does not have: skipped, with the reason.
                ScheduledFault {
                    at_ms: 0,
                    after: Some(EventTrigger {
                        bind: [("node".to_string(), "replicas.0".to_string())].into(),
                        ..EventTrigger::on("moved", 1)
                    }),
                    fault: Fault::Crash { node: NodeId(0) },
                    duration_ms: None,
                },
            ],
        };
        let nemesis = Nemesis::start(&sim, &schedule, None);
        let ev = |tablet, stage, replicas: Vec<u32>, new_replicas: Vec<u32>| Moved {
            tablet,
            stage,
            replicas,
            new_replicas,
        };
        sleep(Duration::from_millis(10)).await;
        sim.record(None, ev(7, "write_both_read_old", vec![9, 3], vec![9, 3]));
        sleep(Duration::from_millis(10)).await;
        sim.record(None, ev(8, "streaming", vec![1, 3], vec![2, 3]));
        sleep(Duration::from_millis(10)).await;
        sim.record(None, ev(7, "streaming", vec![1, 3], vec![3, 2]));
        sleep(Duration::from_millis(100)).await;
        nemesis.stop();
        let mut seen = Vec::new();
        for e in sim.history().entries().iter() {
            match e.sim() {
                Some(sim::SimEvent::FaultApplied {
                    fault, schedule, ..
                }) => seen.push(format!(
                    "{}ms applied #{schedule:?} {fault}",
                    e.at.as_millis()
                )),
                Some(sim::SimEvent::FaultUndone { fault, .. }) => {
                    seen.push(format!("{}ms undone {fault}", e.at.as_millis()))
                }
                Some(sim::SimEvent::FaultSkipped {
                    schedule, reason, ..
                }) => seen.push(format!(
                    "{}ms skipped #{schedule}: {reason}",
                    e.at.as_millis()
                )),
                _ => {}
            }
        }
        seen
    });
    assert_eq!(
        out.result.unwrap(),
        vec![
            "10ms skipped #1: bound fault names n9, not in the cluster",
            "35ms applied #Some(0) stall stream n1->n2",
            "65ms undone stall stream n1->n2",
        ]
    );
}
