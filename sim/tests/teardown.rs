//! Nothing of a finished run stays alive: many seeds in one process, each building the kinds of
//! reference cycle a model builds (handlers that hold the world, node tasks parked on a signal
//! they own, supervisor tasks that never finish, disk values and extension state holding the
//! world), and after each run both the world and a drop counter say everything was freed.

use futures::FutureExt;
use sim::runtime::run_seed;
use sim::sync::Notify;
use sim::time::{sleep, Duration};
use sim::{NetConfig, Sim, Verb};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

struct Hold;
impl Verb for Hold {
    const NAME: &'static str = "hold";
    type Req = u64;
    type Resp = u64;
}

/// Counts its drops in a counter that lives outside every run.
struct Tracked {
    dropped: Rc<Cell<u64>>,
    _sim: Sim,
}
impl Drop for Tracked {
    fn drop(&mut self) {
        self.dropped.set(self.dropped.get() + 1);
    }
}

/// A model-like service: holds the world and a signal its own task waits on (a cycle).
struct Service {
    sim: Sim,
    changed: Notify,
    _tracked: Tracked,
}

#[derive(Default)]
struct Registry(RefCell<Vec<Rc<Service>>>);

fn one_run(seed: u64, dropped: Rc<Cell<u64>>) {
    let out = run_seed(seed, |h| async move {
        let sim = Sim::new(seed, &[], NetConfig::default(), h);
        for _ in 0..3 {
            let dropped = dropped.clone();
            sim.add_node(move |ctx| {
                let svc = Rc::new(Service {
                    sim: ctx.sim.clone(),
                    changed: Notify::new(),
                    _tracked: Tracked {
                        dropped: dropped.clone(),
                        _sim: ctx.sim.clone(),
                    },
                });
                ctx.sim.ext::<Registry>().0.borrow_mut().push(svc.clone());
                let s2 = svc.clone();
                ctx.sim.net().serve::<Hold>(ctx.node, move |_from, x| {
                    let s = s2.clone();
                    async move {
                        // Parks until a notify that never comes: the call stays pending.
                        s.changed.notified().await;
                        let _ = s.sim.now();
                        Ok(x)
                    }
                    .boxed_local()
                });
                async move {
                    loop {
                        svc.changed.notified().await;
                    }
                }
                .boxed_local()
            });
        }
        let nodes = sim.nodes();
        let (n1, n2) = (nodes[1], nodes[2]);
        sim.disk(nodes[0]).put("world", sim.clone());
        let s = sim.clone();
        sim.spawn_supervisor(async move {
            let _ = s
                .net()
                .call::<Hold>(n1, n2, 1, Duration::from_secs(3600))
                .await;
        });
        let s = sim.clone();
        sim.spawn_supervisor(async move {
            std::future::pending::<()>().await;
            drop(s);
        });
        sleep(Duration::from_millis(50)).await;
        sim.crash(nodes[0]);
        sim.restart(nodes[0]);
        sleep(Duration::from_millis(50)).await;
        sim.history().len()
    });
    assert!(out.result.expect("no panic") > 0);
}

#[test]
fn nothing_of_a_finished_run_stays_alive() {
    let dropped = Rc::new(Cell::new(0));
    assert_eq!(sim::world::live_worlds(), 0);
    for seed in 0..200 {
        one_run(seed, dropped.clone());
        assert_eq!(
            sim::world::live_worlds(),
            0,
            "the world of seed {seed} outlived its run"
        );
    }
    // Three nodes per run, one of them restarted once: four services per run, all dropped.
    assert_eq!(dropped.get(), 200 * 4);
}

#[test]
fn a_panicking_run_is_torn_down_too() {
    let out = run_seed(3, |h| async move {
        let sim = Sim::new(3, &[], NetConfig::default(), h);
        let n = sim.add_node(|_| std::future::pending().boxed_local());
        let s = sim.clone();
        sim.net().serve::<Hold>(n, move |_f, x| {
            let _keep = s.clone();
            async move { Ok(x) }.boxed_local()
        });
        sleep(Duration::from_millis(1)).await;
        panic!("model bug");
    });
    assert!(out.result.unwrap_err().contains("model bug"));
    assert_eq!(sim::world::live_worlds(), 0);
}
