//! Release conditions: a held injection point outlives the heal once entered and is released
//! when every migration to its node that was in transition then has ended.

use fault_injection::{
    EventTrigger, Fault, FaultSchedule, Injections, Nemesis, ReleaseOn, ScheduledFault,
};
use futures::FutureExt;
use serde::Serialize;
use sim::runtime::run_seed;
use sim::time::{sleep, Duration};
use sim::{NetConfig, NodeId, Sim, SimEvent, UndoneBy};

#[derive(Debug, Serialize)]
struct R {
    node: u32,
}

#[derive(Debug, Serialize)]
struct StageCommitted {
    tablet: &'static str,
    migration: u64,
    stage: Option<&'static str>,
    replicas: Vec<R>,
    new_replicas: Vec<R>,
}
impl sim::EventKind for StageCommitted {
    fn kind(&self) -> &'static str {
        "stage_committed"
    }
}

#[derive(Debug, Serialize)]
struct Go;
impl sim::EventKind for Go {
    fn kind(&self) -> &'static str {
        "go"
    }
}

fn stage(
    tablet: &'static str,
    migration: u64,
    stage: Option<&'static str>,
    to: u32,
) -> StageCommitted {
    StageCommitted {
        tablet,
        migration,
        stage,
        replicas: vec![R { node: 1 }],
        new_replicas: vec![R { node: 1 }, R { node: to }],
    }
}

const P: &str = "recv";
const N2: NodeId = NodeId(2);

fn schedule() -> FaultSchedule {
    FaultSchedule {
        faults: vec![ScheduledFault {
            at_ms: 0,
            after: Some(EventTrigger {
                until: Some(ReleaseOn::MigrationsToNodeEnded),
                ..EventTrigger::on("go", 1)
            }),
            fault: Fault::Injection {
                node: N2,
                name: P.into(),
                one_shot: false,
            },
            duration_ms: None,
        }],
    }
}

fn undone_by(sim: &Sim) -> Vec<UndoneBy> {
    sim.history()
        .entries()
        .iter()
        .filter_map(|e| match e.sim() {
            Some(SimEvent::FaultUndone { by, .. }) => Some(*by),
            _ => None,
        })
        .collect()
}

/// A world of three idle nodes.
fn three_nodes(seed: u64, h: sim::History) -> Sim {
    let sim = Sim::new(seed, &[], NetConfig::default(), h);
    for _ in 0..3 {
        sim.add_node(|_| std::future::pending().boxed_local());
    }
    sim
}

#[test]
fn an_entered_hold_outlives_the_heal_and_ends_with_its_migrations() {
    let out = run_seed(5, |h| async move {
        let sim = three_nodes(5, h);
        let inj = Injections::of(&sim);
        let s = schedule();
        let tick = || sleep(Duration::from_millis(10));
        // Migrations in transition: t1 and t2 to n2, t3 to n3.
        sim.record(None, stage("t1", 5, Some("streaming"), 2));
        sim.record(None, stage("t2", 6, Some("write_both_read_old"), 2));
        sim.record(None, stage("t3", 7, Some("streaming"), 3));
        let nemesis = Nemesis::start(&sim, &s, None);
        sim.record(None, Go);
        tick().await;
        assert!(inj.is_enabled(N2, P));
        assert!(inj.enter(&sim, N2, P), "a receiver enters the point");
        // A migration to n2 that starts after the enter is not waited for.
        sim.record(None, stage("t4", 8, Some("streaming"), 2));
        tick().await;
        nemesis.stop();
        sim.heal();
        assert!(inj.is_enabled(N2, P), "kept through the heal once entered");
        sim.record(None, stage("t3", 7, None, 3));
        sim.record(None, stage("t1", 5, Some("write_both_read_new"), 2));
        sim.record(None, stage("t2", 6, None, 2));
        tick().await;
        assert!(inj.is_enabled(N2, P), "t1 is still in transition");
        assert!(undone_by(&sim).is_empty());
        // t1's migration ends (its transition deleted): released.
        sim.record(None, stage("t1", 5, None, 2));
        tick().await;
        assert!(!inj.is_enabled(N2, P), "released");
        undone_by(&sim)
    });
    assert_eq!(out.result.expect("no panic"), vec![UndoneBy::Release]);
}

#[test]
fn a_hold_not_entered_by_the_heal_is_undone_by_it() {
    let out = run_seed(6, |h| async move {
        let sim = three_nodes(6, h);
        let inj = Injections::of(&sim);
        sim.record(None, stage("t1", 5, Some("streaming"), 2));
        let nemesis = Nemesis::start(&sim, &schedule(), None);
        sim.record(None, Go);
        sleep(Duration::from_millis(10)).await;
        assert!(inj.is_enabled(N2, P));
        nemesis.stop();
        sim.heal();
        assert!(!inj.is_enabled(N2, P));
        undone_by(&sim)
    });
    assert_eq!(out.result.expect("no panic"), vec![UndoneBy::Heal]);
}

#[test]
fn a_release_condition_round_trips_prints_and_needs_an_injection() {
    let s = schedule();
    let json = serde_json::to_string(&s).unwrap();
    assert!(
        json.contains(r#""until":"migrations_to_node_ended""#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<FaultSchedule>(&json).unwrap(), s);
    assert_eq!(
        s.faults[0].to_string(),
        "+0ms after go #1: injection recv on n2 until every migration to its node in transition \
         when it was entered has ended"
    );
    let t = s.faults[0].after.clone().unwrap();
    assert!(t.check(&s.faults[0].fault).is_ok());
    assert!(t
        .check(&Fault::Crash { node: N2 })
        .unwrap_err()
        .contains("needs an injection fault"));
}
