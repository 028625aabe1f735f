//! Unit tests of the transport, the disk model and node crash/restart, each inside one seeded run.

use futures::FutureExt;
use sim::runtime::run_seed;
use sim::time::{sleep, Duration};
use sim::{NetConfig, NodeId, RpcError, Sim, SimEvent, StreamVerb, Verb};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

struct Echo;
impl Verb for Echo {
    const NAME: &'static str = "echo";
    type Req = u64;
    type Resp = u64;
}

struct Slow;
impl Verb for Slow {
    const NAME: &'static str = "slow";
    type Req = u64;
    type Resp = u64;
}

struct Note;
impl Verb for Note {
    const NAME: &'static str = "note";
    type Req = u64;
    type Resp = ();
}

struct Frags;
impl Verb for Frags {
    const NAME: &'static str = "frags";
    type Req = ();
    type Resp = u64;
}
impl StreamVerb for Frags {
    type Item = u64;
}

fn idle_node(sim: &Sim) -> NodeId {
    sim.add_node(|_ctx| std::future::pending().boxed_local())
}

fn with_sim<T>(seed: u64, f: impl AsyncFnOnce(Sim) -> T) -> T {
    let out = run_seed(seed, |h| async move {
        let sim = Sim::new(seed, &[], NetConfig::default(), h);
        f(sim).await
    });
    out.result.expect("run did not panic")
}

#[test]
fn call_round_trip() {
    let got = with_sim(1, async |sim| {
        let a = idle_node(&sim);
        let b = idle_node(&sim);
        sim.net()
            .serve::<Echo>(b, |_from, x| async move { Ok(x * 2) }.boxed_local());
        sim.net()
            .call::<Echo>(a, b, 21, Duration::from_secs(1))
            .await
    });
    assert_eq!(got, Ok(42));
}

/// A task that outlives its node's crash (a supervisor task holding a handle) cannot send as
/// the dead node: a call fails at once and a one-way message is dropped, neither reaches a
/// handler.
#[test]
fn a_node_that_is_down_sends_nothing() {
    let (got, served) = with_sim(2, async |sim| {
        let a = idle_node(&sim);
        let b = idle_node(&sim);
        let served = Rc::new(Cell::new(0));
        let s = served.clone();
        sim.net().serve::<Echo>(b, move |_from, x| {
            s.set(s.get() + 1);
            async move { Ok(x) }.boxed_local()
        });
        let s = served.clone();
        sim.net().serve::<Note>(b, move |_from, _x| {
            s.set(s.get() + 1);
            async move { Ok(()) }.boxed_local()
        });
        sim.crash(a);
        sim.net().send::<Note>(a, b, 2);
        let got = sim
            .net()
            .call::<Echo>(a, b, 1, Duration::from_secs(1))
            .await;
        sleep(Duration::from_millis(100)).await;
        (got, served.get())
    });
    assert_eq!(got, Err(RpcError::NodeDown));
    assert_eq!(served, 0);
}

#[test]
fn killed_connection_fails_caller_but_receiver_keeps_running() {
    let (res, applied, discarded) = with_sim(2, async |sim| {
        let a = idle_node(&sim);
        let b = idle_node(&sim);
        let applied = Rc::new(Cell::new(false));
        let ap = applied.clone();
        sim.net().serve::<Slow>(b, move |_f, x| {
            let ap = ap.clone();
            async move {
                sleep(Duration::from_millis(100)).await;
                ap.set(true);
                Ok(x)
            }
            .boxed_local()
        });
        let net = sim.net();
        let killer = sim.clone();
        sim.spawn_supervisor(async move {
            sleep(Duration::from_millis(30)).await;
            killer.net().kill_connection(a, b);
        });
        let res = net.call::<Slow>(a, b, 1, Duration::from_secs(5)).await;
        let applied_at_failure = applied.get();
        sleep(Duration::from_millis(200)).await;
        assert!(
            !applied_at_failure,
            "caller failed before the handler finished"
        );
        let discarded = sim
            .history()
            .entries()
            .iter()
            .any(|e| matches!(e.sim(), Some(SimEvent::RpcLateResponseDiscarded { .. })));
        (res, applied.get(), discarded)
    });
    assert_eq!(res, Err(RpcError::ConnectionClosed));
    assert!(applied, "admitted handler ran to completion");
    assert!(discarded, "late response was discarded");
}

#[test]
fn stall_holds_until_release() {
    let (early, late) = with_sim(3, async |sim| {
        let a = idle_node(&sim);
        let b = idle_node(&sim);
        sim.net()
            .serve::<Echo>(b, |_f, x| async move { Ok(x) }.boxed_local());
        sim.net().stall(a, b, "echo");
        let early = sim
            .net()
            .call::<Echo>(a, b, 1, Duration::from_millis(200))
            .await;
        let s2 = sim.clone();
        sim.spawn_supervisor(async move {
            sleep(Duration::from_millis(300)).await;
            s2.net().release(a, b, "echo");
        });
        let late = sim
            .net()
            .call::<Echo>(a, b, 2, Duration::from_secs(2))
            .await;
        (early, late)
    });
    assert_eq!(early, Err(RpcError::Timeout));
    assert_eq!(late, Ok(2));
}

#[test]
fn partition_drops_then_heals() {
    let (cut, healed) = with_sim(4, async |sim| {
        let a = idle_node(&sim);
        let b = idle_node(&sim);
        sim.net()
            .serve::<Echo>(b, |_f, x| async move { Ok(x) }.boxed_local());
        sim.net().partition(&[a], &[b], false);
        let cut = sim
            .net()
            .call::<Echo>(a, b, 1, Duration::from_millis(100))
            .await;
        sim.net().heal_partition(&[a], &[b]);
        let healed = sim
            .net()
            .call::<Echo>(a, b, 2, Duration::from_millis(100))
            .await;
        (cut, healed)
    });
    assert_eq!(cut, Err(RpcError::Timeout));
    assert_eq!(healed, Ok(2));
}

#[test]
fn stream_delivers_in_order_and_breaks_on_kill() {
    let (sum, broken) = with_sim(5, async |sim| {
        let a = idle_node(&sim);
        let b = idle_node(&sim);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s2 = seen.clone();
        sim.net().serve_stream::<Frags>(b, move |_f, (), mut src| {
            let seen = s2.clone();
            async move {
                let mut sum = 0;
                while let Some(x) = src.recv().await? {
                    seen.borrow_mut().push(x);
                    sum += x;
                }
                Ok(sum)
            }
            .boxed_local()
        });
        let (mut sink, resp) = sim
            .net()
            .open_stream::<Frags>(a, b, (), Duration::from_secs(1));
        for i in 1..=10 {
            sink.send(i).await.unwrap();
        }
        sink.close();
        let sum = resp.wait().await;
        assert_eq!(*seen.borrow(), (1..=10).collect::<Vec<_>>());
        // A second stream, broken by killing the connection.
        let (mut sink, resp) = sim
            .net()
            .open_stream::<Frags>(a, b, (), Duration::from_secs(1));
        sink.send(1).await.unwrap();
        sim.net().kill_connection(a, b);
        let broken = sink.send(2).await;
        sink.close();
        assert_eq!(resp.wait().await, Err(RpcError::ConnectionClosed));
        (sum, broken)
    });
    assert_eq!(sum, Ok(55));
    assert_eq!(broken, Err(RpcError::ConnectionClosed));
}

#[test]
#[should_panic(expected = "dropped without close")]
fn dropping_an_open_sink_is_a_bug() {
    let out = run_seed(6, |h| async move {
        let sim = Sim::new(6, &[], NetConfig::default(), h);
        let a = idle_node(&sim);
        let b = idle_node(&sim);
        let s2 = sim.clone();
        sim.spawn_on(a, async move {
            let (_sink, _resp) = s2
                .net()
                .open_stream::<Frags>(a, b, (), Duration::from_secs(1));
        });
        sleep(Duration::from_millis(10)).await;
    });
    panic!("{}", out.result.err().unwrap_or_default());
}

#[test]
fn crash_loses_unsynced_writes_and_restart_recovers_synced_ones() {
    let (synced, unsynced, boots) = with_sim(7, async |sim| {
        let boots = Rc::new(Cell::new(0));
        let b2 = boots.clone();
        let n = sim.add_node(move |_ctx| {
            b2.set(b2.get() + 1);
            std::future::pending().boxed_local()
        });
        let disk = sim.disk(n);
        disk.put("a", 1u64);
        disk.sync().await.unwrap();
        disk.put("b", 2u64);
        assert_eq!(disk.get::<u64>("b"), Some(2));
        sim.crash(n);
        sim.restart(n);
        sleep(Duration::from_millis(1)).await;
        (disk.get::<u64>("a"), disk.get::<u64>("b"), boots.get())
    });
    assert_eq!(synced, Some(1));
    assert_eq!(unsynced, None);
    assert_eq!(boots, 2);
}

#[test]
fn disk_faults_stall_and_fail_syncs() {
    let (stalled_for, err) = with_sim(8, async |sim| {
        let n = idle_node(&sim);
        let disk = sim.disk(n);
        disk.stall();
        let d2 = disk.clone();
        sim.spawn_supervisor(async move {
            sleep(Duration::from_millis(50)).await;
            d2.release();
        });
        let t0 = sim.now();
        disk.put("k", 1u8);
        disk.sync().await.unwrap();
        let stalled_for = sim.now().0 - t0.0;
        disk.fail_syncs(1);
        disk.put("k", 2u8);
        let err = disk.sync().await;
        (stalled_for, err)
    });
    assert!(stalled_for >= 50_000_000);
    assert!(err.is_err());
}

/// The directories of every key `scan` returns, cut to `depth` components after `prefix`.
fn dirs_by_scan(disk: &sim::Disk, prefix: &str, depth: usize) -> Vec<String> {
    let mut out: Vec<String> = disk
        .scan::<u8>(prefix)
        .into_iter()
        .filter_map(|(k, _)| {
            let rest = &k[prefix.len()..];
            let mut end = 0;
            for _ in 0..depth {
                end += rest[end..].find('/')? + 1;
            }
            Some(k[..prefix.len() + end].to_string())
        })
        .collect();
    out.dedup();
    out
}

#[test]
fn disk_dirs_are_the_directories_of_the_live_keys() {
    with_sim(9, async |sim| {
        let n = idle_node(&sim);
        let disk = sim.disk(n);
        for k in [
            "st/000/00001/cl/1",
            "st/000/00001/cl/2",
            "st/000/00002/sst/1",
            "st/001/00001/sst/1",
            "st/001/00003/cl/1",
            "st/0015/00001/x",
            "other/000/00001/x",
            "st/flat",
        ] {
            disk.put(k, 1u8);
        }
        disk.sync().await.unwrap();
        let check = |what: &str| {
            for depth in 1..=3 {
                assert_eq!(
                    disk.dirs("st/", depth),
                    dirs_by_scan(&disk, "st/", depth),
                    "{what}, depth {depth}"
                );
            }
        };
        check("all durable");
        // Buffered deletes hide a whole directory, or part of one; buffered writes add one.
        disk.delete("st/000/00002/sst/1");
        disk.delete("st/000/00001/cl/1");
        disk.put("st/002/00007/cl/1", 1u8);
        check("with buffered deletes and writes");
        assert_eq!(
            disk.dirs("st/", 2),
            [
                "st/000/00001/",
                "st/001/00001/",
                "st/001/00003/",
                "st/0015/00001/",
                "st/002/00007/"
            ]
        );
        disk.sync().await.unwrap();
        check("after the sync");
    });
}

#[test]
fn same_seed_same_digest() {
    let digest = |seed: u64| {
        let out = run_seed(seed, |h| async move {
            let sim = Sim::new(seed, &[], NetConfig::default(), h);
            let a = idle_node(&sim);
            let b = idle_node(&sim);
            sim.net()
                .serve::<Echo>(b, |_f, x| async move { Ok(x + 1) }.boxed_local());
            for i in 0..20 {
                let _ = sim
                    .net()
                    .call::<Echo>(a, b, i, Duration::from_secs(1))
                    .await;
            }
        });
        out.history.digest()
    };
    assert_eq!(digest(11), digest(11));
    assert_ne!(digest(11), digest(12));
}

/// `pause_covering` names the pause a timer firing at an instant fell into, and when it ended;
/// a crash ends a pause, so a restarted node is not taken for a paused one.
#[test]
fn pause_covering_names_the_pause_an_instant_falls_into() {
    with_sim(10, async |sim| {
        sleep(Duration::from_millis(10)).await;
        let b = idle_node(&sim);
        let paused = sim.now().0;
        sim.pause(b);
        assert_eq!(
            sim.pause_covering(b, paused + 1),
            Some(None),
            "still paused"
        );
        sleep(Duration::from_millis(100)).await;
        sim.resume(b);
        let resumed = sim.now().0;
        assert_eq!(sim.pause_covering(b, paused - 1), None, "before the pause");
        assert_eq!(sim.pause_covering(b, paused), Some(Some(resumed)));
        assert_eq!(sim.pause_covering(b, resumed - 1), Some(Some(resumed)));
        assert_eq!(
            sim.pause_covering(b, resumed),
            None,
            "the resume instant runs"
        );
        sleep(Duration::from_millis(100)).await;
        let paused = sim.now().0;
        sim.pause(b);
        sleep(Duration::from_millis(50)).await;
        sim.crash(b);
        let crashed = sim.now().0;
        assert_eq!(sim.pause_covering(b, paused + 1), Some(Some(crashed)));
        assert_eq!(sim.pause_covering(b, crashed), None, "the crash ended it");
    });
}

#[test]
fn a_paused_node_answers_only_after_resume() {
    let (answered_ms, paused_flag) = with_sim(9, async |sim| {
        let a = idle_node(&sim);
        let b = idle_node(&sim);
        sim.net()
            .serve::<Echo>(b, |_f, x| async move { Ok(x) }.boxed_local());
        sim.pause(b);
        let paused_flag = sim.is_paused(b) && sim.is_up(b);
        let s2 = sim.clone();
        sim.spawn_supervisor(async move {
            sleep(Duration::from_millis(300)).await;
            s2.resume(b);
        });
        let r = sim
            .net()
            .call::<Echo>(a, b, 5, Duration::from_secs(2))
            .await;
        assert_eq!(r, Ok(5));
        (sim.now().as_millis(), paused_flag)
    });
    assert!(paused_flag);
    assert!(
        answered_ms >= 300,
        "answered at {answered_ms} ms, before the resume"
    );
}

#[test]
fn a_second_serve_of_a_verb_on_one_node_panics_naming_the_verb() {
    let out = run_seed(12, |h| async move {
        let sim = Sim::new(12, &[], NetConfig::default(), h);
        let a = idle_node(&sim);
        sim.net()
            .serve::<Echo>(a, |_f, x| async move { Ok(x) }.boxed_local());
        sim.net()
            .serve::<Echo>(a, |_f, x| async move { Ok(x + 1) }.boxed_local());
    });
    let msg = out.result.expect_err("second serve must panic");
    assert!(
        msg.contains("verb `echo` registered twice on n1"),
        "panic message names the verb and the node: {msg}"
    );
}

#[test]
fn a_stream_verb_and_a_call_verb_share_one_registry() {
    struct FragsAsCall;
    impl Verb for FragsAsCall {
        const NAME: &'static str = "frags";
        type Req = ();
        type Resp = u64;
    }
    let out = run_seed(13, |h| async move {
        let sim = Sim::new(13, &[], NetConfig::default(), h);
        let a = idle_node(&sim);
        sim.net()
            .serve_stream::<Frags>(a, |_f, (), _src| async move { Ok(0) }.boxed_local());
        sim.net()
            .serve::<FragsAsCall>(a, |_f, ()| async move { Ok(1) }.boxed_local());
    });
    let msg = out.result.expect_err("second registration must panic");
    assert!(msg.contains("verb `frags` registered twice"), "{msg}");
}

#[test]
fn the_same_verb_may_be_served_again_after_a_restart() {
    let got = with_sim(14, async |sim| {
        let n = sim.add_node(move |ctx| {
            ctx.sim.net().serve::<Echo>(ctx.node, move |_f, x| {
                async move { Ok(x + u64::from(ctx.incarnation)) }.boxed_local()
            });
            std::future::pending().boxed_local()
        });
        let client = idle_node(&sim);
        sleep(Duration::from_millis(1)).await;
        let first = sim
            .net()
            .call::<Echo>(client, n, 10, Duration::from_secs(1))
            .await;
        sim.crash(n);
        sim.restart(n);
        sleep(Duration::from_millis(1)).await;
        let second = sim
            .net()
            .call::<Echo>(client, n, 10, Duration::from_secs(1))
            .await;
        (first, second)
    });
    assert_eq!(got, (Ok(10), Ok(11)));
}

#[test]
fn a_one_way_message_runs_its_handler_and_takes_the_call_path() {
    struct Note;
    impl Verb for Note {
        const NAME: &'static str = "note";
        type Req = u64;
        type Resp = ();
    }
    let (seen, admits) = with_sim(15, async |sim| {
        let a = idle_node(&sim);
        let b = idle_node(&sim);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s2 = seen.clone();
        sim.net().serve::<Note>(b, move |from, x| {
            s2.borrow_mut().push((from, x));
            async { Ok(()) }.boxed_local()
        });
        sim.net().send::<Note>(a, b, 7);
        // No handler on `a`: a one-way message to it vanishes without an answer.
        sim.net().send::<Note>(b, a, 8);
        sleep(Duration::from_millis(50)).await;
        let admits = sim
            .history()
            .entries()
            .iter()
            .filter(|e| matches!(e.sim(), Some(SimEvent::RpcAdmit { verb: "note", .. })))
            .count();
        let seen = seen.borrow().clone();
        (seen, admits)
    });
    assert_eq!(seen, vec![(NodeId(1), 7)]);
    assert_eq!(admits, 1);
}
