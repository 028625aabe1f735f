//! One typed fault record: every fault applied through the low-level verbs (`crash`, `stall`,
//! `partition`, disk faults, ...) is recorded once as `fault_applied` with its typed value, and
//! its end once as `fault_undone` with the same id; the heal undoes what is still open.

use futures::FutureExt;
use sim::runtime::run_seed;
use sim::time::{sleep, Duration};
use sim::{Fault, NetConfig, NodeId, Sim, SimEvent, UndoneBy};

fn records(sim: &Sim) -> Vec<(String, u64, Fault)> {
    sim.history()
        .entries()
        .iter()
        .filter_map(|e| match e.sim()? {
            SimEvent::FaultApplied { id, fault, .. } => {
                Some(("applied".into(), *id, fault.clone()))
            }
            SimEvent::FaultUndone { id, fault, by } => {
                Some((format!("undone by {by:?}"), *id, fault.clone()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn scripted_verbs_record_each_fault_once_and_the_heal_closes_the_rest() {
    let out = run_seed(7, |h| async move {
        let sim = Sim::new(7, &[], NetConfig::default(), h);
        let a = sim.add_node(|_| std::future::pending().boxed_local());
        let b = sim.add_node(|_| std::future::pending().boxed_local());
        sleep(Duration::from_millis(5)).await;
        sim.crash(a);
        sim.crash(a); // already down: no second record
        sim.net().stall(b, a, "echo");
        sim.net().kill_connection(a, b);
        sim.net().partition(&[a], &[b], true);
        sim.disk(b).fail_syncs(2);
        sleep(Duration::from_millis(5)).await;
        sim.restart(a);
        sim.net().release(b, a, "echo");
        sim.net().heal_partition(&[b], &[a]);
        sim.disk(b).set_latency(3);
        assert_eq!(
            sim.open_faults().len(),
            2,
            "disk error and latency stay open"
        );
        sim.heal();
        assert!(sim.open_faults().is_empty());
        records(&sim)
    });
    let r = out.result.unwrap();
    let (a, b) = (NodeId(1), NodeId(2));
    let stall = Fault::Stall {
        from: b,
        to: a,
        verb: "echo".into(),
    };
    let part = Fault::Partition {
        a: vec![a],
        b: vec![b],
        oneway: true,
    };
    let expected = vec![
        ("applied".to_string(), 1, Fault::Crash { node: a }),
        ("applied".into(), 2, stall.clone()),
        (
            "applied".into(),
            3,
            Fault::KillConnection { from: a, to: b },
        ),
        ("applied".into(), 4, part.clone()),
        ("applied".into(), 5, Fault::DiskError { node: b, count: 2 }),
        ("undone by Script".into(), 1, Fault::Crash { node: a }),
        ("undone by Script".into(), 2, stall),
        ("undone by Script".into(), 4, part),
        ("applied".into(), 6, Fault::DiskLatency { node: b, ms: 3 }),
        (
            "undone by Heal".into(),
            5,
            Fault::DiskError { node: b, count: 2 },
        ),
        (
            "undone by Heal".into(),
            6,
            Fault::DiskLatency { node: b, ms: 3 },
        ),
    ];
    assert_eq!(r, expected);
}

#[test]
fn undoing_a_fault_twice_is_a_no_op() {
    let out = run_seed(1, |h| async move {
        let sim = Sim::new(1, &[], NetConfig::default(), h);
        let a = sim.add_node(|_| std::future::pending().boxed_local());
        let id = sim.apply_fault(&Fault::Pause { node: a }, Some(3));
        assert!(sim.is_paused(a));
        assert!(sim.undo_fault(id, UndoneBy::Schedule));
        assert!(!sim.undo_fault(id, UndoneBy::Schedule));
        sim.resume(a); // nothing open: no record
        assert!(!sim.is_paused(a));
        let applied: Vec<Option<usize>> = sim
            .history()
            .entries()
            .iter()
            .filter_map(|e| match e.sim()? {
                SimEvent::FaultApplied { schedule, .. } => Some(*schedule),
                _ => None,
            })
            .collect();
        (applied, records(&sim).len())
    });
    let (applied, n) = out.result.unwrap();
    assert_eq!(
        applied,
        vec![Some(3)],
        "the schedule position is on the record"
    );
    assert_eq!(n, 2);
}

#[test]
fn a_watch_counts_past_entries_and_wakes_on_new_ones() {
    let out = run_seed(2, |h| async move {
        let sim = Sim::new(2, &[], NetConfig::default(), h);
        let a = sim.add_node(|_| std::future::pending().boxed_local());
        sim.crash(a);
        let w = sim.history().watch("fault_applied", |_| true);
        assert_eq!(
            w.matched().len(),
            1,
            "an entry recorded before the watch counts"
        );
        let s2 = sim.clone();
        sim.spawn_supervisor(async move {
            sleep(Duration::from_millis(40)).await;
            s2.net().kill_connection(NodeId(1), NodeId(1));
        });
        let at = w.nth(2).await;
        (at, sim.now().as_millis())
    });
    let (_, ms) = out.result.unwrap();
    assert_eq!(ms, 40, "woken by the recording itself");
}
