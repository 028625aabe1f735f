//! End-to-end smoke tests of the topology model on the simulator (the checkers and scenarios
//! proper live in the `scenarios` crate).

use super::api;
use super::config::TopologyConfig;
use super::events::{OpOutcome, TopologyEvent};
use super::ids::{NodeId, Replica, ShardId, TableId, TabletId};
use crate::node::Cluster;
use sim::time::{sleep, Duration};
use sim::{NetConfig, Sim};

fn r(n: u32, s: u32) -> Replica {
    Replica {
        node: NodeId(n),
        shard: ShardId(s),
    }
}

fn run(
    seed: u64,
    mutants: &[&str],
    f: impl FnOnce(Sim) -> futures::future::LocalBoxFuture<'static, ()>,
) -> sim::History {
    let mutants: Vec<String> = mutants.iter().map(|s| s.to_string()).collect();
    let out = sim::runtime::run_seed(seed, move |h| {
        let sim = Sim::new(seed, &mutants, NetConfig::default(), h);
        f(sim)
    });
    if let Err(e) = &out.result {
        panic!("run panicked: {e}");
    }
    out.history
}

fn count(h: &sim::History, kind: &str) -> usize {
    h.entries()
        .iter()
        .filter(|e| {
            e.proto::<TopologyEvent>()
                .is_some_and(|ev| sim::EventKind::kind(ev) == kind)
        })
        .count()
}

#[test]
fn happy_migration_moves_data() {
    let h = run(1, &[], |sim| {
        Box::pin(async move {
            let c = Cluster::start(&sim, TopologyConfig::default());
            sleep(Duration::from_millis(100)).await;
            let cl = super::data::Client::new(&sim, NodeId(1));
            assert_eq!(cl.write(7, 100).await, OpOutcome::Ok);
            api::move_tablet(&c, TabletId::new(TableId::user(0), 0), r(1, 0), r(2, 0))
                .await
                .unwrap();
            let (o, v) = cl.read(7).await;
            assert_eq!((o, v), (OpOutcome::Ok, Some(100)));
            let st = c.state().unwrap();
            assert_eq!(
                st.tablets[&TabletId::new(TableId::user(0), 0)].replicas,
                vec![r(2, 0)]
            );
        })
    });
    assert!(
        count(&h, "stage_committed") >= 8,
        "{}",
        count(&h, "stage_committed")
    );
    assert!(count(&h, "fragment_applied") >= 1);
}

fn fenced_story(mutants: &[&str]) -> (Option<u64>, sim::History) {
    let result = std::rc::Rc::new(std::cell::Cell::new(None));
    let r2 = result.clone();
    let h = run(3, mutants, move |sim| {
        Box::pin(async move {
            let c = Cluster::start(&sim, TopologyConfig::default());
            sleep(Duration::from_millis(100)).await;
            let cl = super::data::Client::new(&sim, NodeId(1));
            assert_eq!(cl.write(7, 0).await, OpOutcome::Ok);
            api::enable_injection(&sim, NodeId(2), "stream_mutation_fragments", true);
            let c2 = c.clone();
            let mv = sim::sync::oneshot::channel::<()>();
            let tx = mv.0;
            sim.spawn_supervisor(async move {
                api::move_tablet(&c2, TabletId::new(TableId::user(0), 0), r(1, 0), r(2, 0))
                    .await
                    .unwrap();
                let _ = tx.send(());
            });
            api::wait_for_injection_enter(&sim, NodeId(2), "stream_mutation_fragments", 1).await;
            api::inject_disconnect(&sim, NodeId(1), NodeId(2));
            mv.1.await.unwrap();
            assert_eq!(cl.read(7).await, (OpOutcome::Ok, Some(0)));
            assert_eq!(cl.truncate().await, OpOutcome::Ok);
            assert_eq!(cl.read(7).await, (OpOutcome::Ok, None));
            api::message_injection(&sim, NodeId(2), "stream_mutation_fragments");
            sleep(Duration::from_millis(200)).await;
            r2.set(cl.read(7).await.1);
            api::move_tablet(&c, TabletId::new(TableId::user(0), 0), r(2, 0), r(1, 0))
                .await
                .unwrap();
        })
    });
    (result.get(), h)
}

#[test]
fn abandoned_receiver_is_fenced() {
    let (v, h) = fenced_story(&[]);
    assert_eq!(v, None, "no resurrection");
    assert!(count(&h, "fragment_refused") >= 1);
}

#[test]
fn no_fencing_resurrects() {
    let (v, _) = fenced_story(&["no-fencing"]);
    assert_eq!(v, Some(0), "the mutant resurrects the truncated row");
}
