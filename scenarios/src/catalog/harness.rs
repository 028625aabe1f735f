//! The `harness.*` scenarios: small stories that prove the harness itself keeps its promises
//! (a receiver outlives its killed connection, a stalled verb is released, a crash loses exactly
//! the unsynced writes, an injection point blocks until messaged, a partition heals). Each has
//! a checker over the history and a harness mutant that breaks the feature it checks; they stay
//! as regression tests of the harness.

use crate::checkers::harness as chk;
use crate::config::RunConfig;
use crate::phases;
use crate::scenario::{RunEnd, ScenarioDef, Tier};
use fault_injection::{
    BuggifyPoint, Fault, FaultKind, FaultModel, FaultSchedule, Injections, ScheduledFault,
};
use futures::FutureExt;
use rand::Rng;
use serde::Serialize;
use sim::time::{sleep, Duration};
use sim::{EventKind, NodeId, RpcError, Sim, Verb};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// History events of the harness scenarios' workloads.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum HarnessEvent {
    /// A client call started (node: caller).
    CallStart {
        /// Workload call number.
        call: u64,
        /// Destination.
        to: NodeId,
    },
    /// A client call ended (node: caller).
    CallEnd {
        /// Workload call number.
        call: u64,
        /// `ok`, `connection_closed`, `timeout`, ...
        outcome: String,
    },
    /// A handler admitted the call (node: server).
    HandlerStart {
        /// Workload call number.
        call: u64,
        /// Caller.
        from: NodeId,
    },
    /// A handler applied its side effect (node: server).
    HandlerApplied {
        /// Workload call number.
        call: u64,
    },
    /// A key was written to the disk buffer.
    Wrote {
        /// Key.
        key: u64,
    },
    /// A sync succeeded: every key written before it is durable.
    Synced {
        /// Last key written before the sync.
        upto: u64,
    },
    /// Keys found on disk at boot.
    Recovered {
        /// Keys.
        keys: Vec<u64>,
    },
}

impl EventKind for HarnessEvent {
    fn kind(&self) -> &'static str {
        match self {
            HarnessEvent::CallStart { .. } => "call_start",
            HarnessEvent::CallEnd { .. } => "call_end",
            HarnessEvent::HandlerStart { .. } => "handler_start",
            HarnessEvent::HandlerApplied { .. } => "handler_applied",
            HarnessEvent::Wrote { .. } => "wrote",
            HarnessEvent::Synced { .. } => "synced",
            HarnessEvent::Recovered { .. } => "recovered",
        }
    }
}

/// The verb every harness workload uses: the request is the workload's call number, the
/// handler may wait before applying.
pub struct Work;
impl Verb for Work {
    const NAME: &'static str = "harness_work";
    type Req = u64;
    type Resp = u64;
}

/// Every `harness.*` scenario, in catalog order.
pub fn scenarios() -> Vec<ScenarioDef> {
    vec![
        ScenarioDef {
            id: "harness.receiver_outlives_killed_connection",
            tier: Tier::Harness,
            description: "killing a connection fails the caller at once, but admitted work runs to completion and its late response is discarded",
            mutants: &["harness-kill-aborts-receiver"],
            marks: &["connection killed with calls pending", "late response discarded"],
            config: config_kill,
            run: |sim, cfg| run_kill(sim, cfg).boxed_local(),
            checkers: &[&chk::ReceiverOutlivesKill],
        },
        ScenarioDef {
            id: "harness.stalled_verb_released",
            tier: Tier::Harness,
            description: "a stalled verb admits nothing until released, then every held request goes through",
            mutants: &["harness-stall-ignored"],
            marks: &["stalled request released"],
            config: config_stall,
            run: |sim, cfg| run_calls(sim, cfg, 2_500).boxed_local(),
            checkers: &[&chk::StallHolds],
        },
        ScenarioDef {
            id: "harness.crash_loses_unsynced",
            tier: Tier::Harness,
            description: "a crash loses exactly the writes not yet synced; synced writes survive the restart",
            mutants: &["harness-crash-keeps-unsynced"],
            marks: &["unsynced writes lost on crash"],
            config: config_crash,
            run: |sim, cfg| run_crash(sim, cfg).boxed_local(),
            checkers: &[&chk::CrashDurability],
        },
        ScenarioDef {
            id: "harness.injection_blocks_until_message",
            tier: Tier::Harness,
            description: "code at an enabled wait-for-message injection point blocks until the scenario sends a message",
            mutants: &["harness-injection-no-wait"],
            marks: &["injection released by message"],
            config: config_injection,
            run: |sim, cfg| run_injection(sim, cfg).boxed_local(),
            checkers: &[&chk::InjectionBlocks],
        },
        ScenarioDef {
            id: "harness.buggify_holds_calls",
            tier: Tier::Harness,
            description: "buggify: the swarm enables a wait-for-message injection point as a fault; calls reaching it are held until the fault ends, and the fault's record covers it",
            mutants: &["harness-injection-no-wait"],
            marks: &[],
            config: config_buggify,
            run: |sim, cfg| run_buggify(sim, cfg).boxed_local(),
            checkers: &[&chk::BuggifyHolds],
        },
        ScenarioDef {
            id: "harness.partition_heals",
            tier: Tier::Harness,
            description: "nothing crosses a partition while it lasts, and traffic flows again once it heals",
            mutants: &["harness-partition-leaks"],
            marks: &["partition dropped a message"],
            config: config_partition,
            run: |sim, cfg| run_calls(sim, cfg, 2_500).boxed_local(),
            checkers: &[&chk::PartitionHolds],
        },
    ]
}

fn short_phases(cfg: &mut RunConfig) {
    cfg.phases.warmup_ms = 50;
    cfg.phases.chaos_ms = 3_000;
    cfg.phases.converge_budget_ms = 10_000;
}

fn config_kill(cfg: &mut RunConfig) {
    short_phases(cfg);
    let mut rng = sim::rng::standalone(cfg.seed, "faults");
    let n = rng.gen_range(3..=6);
    let mut faults: Vec<ScheduledFault> = (0..n)
        .map(|_| ScheduledFault {
            at_ms: rng.gen_range(100..2_400),
            after: None,
            fault: Fault::KillConnection {
                from: NodeId(1),
                to: NodeId(rng.gen_range(2..=3)),
            },
            duration_ms: None,
        })
        .collect();
    faults.sort_by_key(|f| f.at_ms);
    cfg.faults = FaultSchedule { faults };
}

fn config_stall(cfg: &mut RunConfig) {
    short_phases(cfg);
    cfg.nodes = 2;
    let mut rng = sim::rng::standalone(cfg.seed, "faults");
    cfg.faults = FaultSchedule {
        faults: vec![ScheduledFault {
            at_ms: rng.gen_range(200..800),
            after: None,
            fault: Fault::Stall {
                from: NodeId(1),
                to: NodeId(2),
                verb: Work::NAME.to_string(),
            },
            duration_ms: Some(rng.gen_range(300..1_500)),
        }],
    };
}

fn config_crash(cfg: &mut RunConfig) {
    short_phases(cfg);
    cfg.nodes = 1;
    let mut rng = sim::rng::standalone(cfg.seed, "faults");
    let mut at = 0;
    let faults = (0..rng.gen_range(1..=3))
        .map(|_| {
            at += rng.gen_range(150..800);
            let d = rng.gen_range(50..300);
            let f = ScheduledFault {
                at_ms: at,
                after: None,
                fault: Fault::Crash { node: NodeId(1) },
                duration_ms: Some(d),
            };
            at += d;
            f
        })
        .collect();
    cfg.faults = FaultSchedule { faults };
}

fn config_injection(cfg: &mut RunConfig) {
    short_phases(cfg);
    cfg.nodes = 2;
}

/// The wait-for-message point of `harness.buggify_holds_calls`, and its deadline: a handler
/// still held after it is a test failure (a forgotten release).
pub const BUGGIFY_POINT: &str = "harness_hold";
const BUGGIFY_DEADLINE_MS: u64 = 2_000;

fn config_buggify(cfg: &mut RunConfig) {
    short_phases(cfg);
    cfg.nodes = 3;
    cfg.fault_model = FaultModel {
        kinds: vec![FaultKind::Injection],
        min_faults: 1,
        max_faults: 4,
        window_ms: 2_000,
        max_duration_ms: 1_500,
        injections: vec![BuggifyPoint {
            name: BUGGIFY_POINT.into(),
            max_hold_ms: BUGGIFY_DEADLINE_MS - 500,
            min_hold_ms: 0,
            episodes: [0, 0],
            one_shot: None,
        }],
        ..FaultModel::default()
    };
}

async fn run_buggify(sim: Sim, cfg: Rc<RunConfig>) -> RunEnd {
    idle_nodes(&sim, &cfg, |sim, node| {
        let s = sim.clone();
        sim.net().serve::<Work>(node, move |from, call| {
            let sim = s.clone();
            async move {
                sim.record(Some(node), HarnessEvent::HandlerStart { call, from });
                if let Some(h) = Injections::of(&sim).handler(&sim, node, BUGGIFY_POINT) {
                    let deadline = Duration::from_millis(BUGGIFY_DEADLINE_MS);
                    let _ = h.wait_for_message(deadline, None).await;
                    sim.mark("buggified call held then released");
                }
                sim.record(Some(node), HarnessEvent::HandlerApplied { call });
                Ok(call)
            }
            .boxed_local()
        });
    });
    run_workload(sim, cfg, 2_500).await
}

fn config_partition(cfg: &mut RunConfig) {
    short_phases(cfg);
    cfg.nodes = 5;
    let mut rng = sim::rng::standalone(cfg.seed, "faults");
    let mut at = rng.gen_range(100..500);
    let mut faults = Vec::new();
    for _ in 0..rng.gen_range(1..=2) {
        let mut nodes = cfg.node_ids();
        use rand::seq::SliceRandom;
        nodes.shuffle(&mut rng);
        let k = rng.gen_range(1..=2);
        let mut a = nodes[..k].to_vec();
        let mut b = nodes[k..].to_vec();
        a.sort();
        b.sort();
        let d = rng.gen_range(200..1_000);
        faults.push(ScheduledFault {
            at_ms: at,
            after: None,
            fault: Fault::Partition {
                a,
                b,
                oneway: false,
            },
            duration_ms: Some(d),
        });
        at += d + rng.gen_range(50..300);
    }
    cfg.faults = FaultSchedule { faults };
}

/// Serve [`Work`] on `node`: record the admission, wait `delay_ms` (drawn per call), apply.
fn serve_work(sim: &Sim, node: NodeId, delay_ms: (u64, u64)) {
    let s = sim.clone();
    sim.net().serve::<Work>(node, move |from, call| {
        let sim = s.clone();
        async move {
            sim.record(Some(node), HarnessEvent::HandlerStart { call, from });
            if delay_ms.1 > 0 {
                let d = sim.rng("workload").gen_range(delay_ms.0..=delay_ms.1);
                sleep(Duration::from_millis(d)).await;
            }
            sim.record(Some(node), HarnessEvent::HandlerApplied { call });
            Ok(call)
        }
        .boxed_local()
    });
}

fn outcome_name(r: &Result<u64, RpcError>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(RpcError::ConnectionClosed) => "connection_closed".into(),
        Err(RpcError::Timeout) => "timeout".into(),
        Err(RpcError::NoHandler) => "no_handler".into(),
        Err(RpcError::NodeDown) => "node_down".into(),
        Err(RpcError::Remote(_)) => "error".into(),
    }
}

/// Start one workload call from `from` to `to` on `from`; `open` tracks unfinished calls.
fn start_call(
    sim: &Sim,
    from: NodeId,
    to: NodeId,
    call: u64,
    timeout_ms: u64,
    open: &Rc<RefCell<BTreeMap<u64, NodeId>>>,
) {
    sim.record(Some(from), HarnessEvent::CallStart { call, to });
    open.borrow_mut().insert(call, to);
    let s = sim.clone();
    let open = open.clone();
    sim.spawn_on(from, async move {
        let r = s
            .net()
            .call::<Work>(from, to, call, Duration::from_millis(timeout_ms))
            .await;
        s.record(
            Some(from),
            HarnessEvent::CallEnd {
                call,
                outcome: outcome_name(&r),
            },
        );
        open.borrow_mut().remove(&call);
    });
}

fn idle_nodes(sim: &Sim, cfg: &RunConfig, serve: impl Fn(&Sim, NodeId) + 'static) {
    let serve = Rc::new(serve);
    for _ in 0..cfg.nodes {
        let serve = serve.clone();
        sim.add_node(move |ctx| {
            serve(&ctx.sim, ctx.node);
            std::future::pending().boxed_local()
        });
    }
}

fn pending_calls(open: &Rc<RefCell<BTreeMap<u64, NodeId>>>) -> Vec<String> {
    open.borrow()
        .iter()
        .map(|(c, to)| format!("call {c} to {to} never ended"))
        .collect()
}

async fn run_kill(sim: Sim, cfg: Rc<RunConfig>) -> RunEnd {
    idle_nodes(&sim, &cfg, |sim, node| {
        if node != NodeId(1) {
            serve_work(sim, node, (50, 300));
        }
    });
    phases::warmup(&sim, &cfg).await;
    let open = Rc::new(RefCell::new(BTreeMap::new()));
    let s = sim.clone();
    let o = open.clone();
    sim.spawn_supervisor(async move {
        let mut rng = s.rng("workload");
        for call in 0..60 {
            let to = NodeId(rng.gen_range(2..=3));
            start_call(&s, NodeId(1), to, call, 2_000, &o);
            sleep(Duration::from_millis(rng.gen_range(20..60))).await;
        }
    });
    phases::chaos(&sim, &cfg, None).await;
    phases::heal(&sim);
    let pending = phases::converge(&sim, &cfg, 10, || pending_calls(&open)).await;
    RunEnd {
        final_state: serde_json::json!({}),
        pending,
    }
}

/// A steady stream of calls between random nodes for `duration_ms` (stall and partition).
async fn run_calls(sim: Sim, cfg: Rc<RunConfig>, duration_ms: u64) -> RunEnd {
    idle_nodes(&sim, &cfg, |sim, node| serve_work(sim, node, (0, 0)));
    run_workload(sim, cfg, duration_ms).await
}

/// Random calls between the nodes for `duration_ms` (and a second after the heal).
async fn run_workload(sim: Sim, cfg: Rc<RunConfig>, duration_ms: u64) -> RunEnd {
    phases::warmup(&sim, &cfg).await;
    let open = Rc::new(RefCell::new(BTreeMap::new()));
    let s = sim.clone();
    let o = open.clone();
    let nodes = cfg.node_ids();
    let end_at = sim.now().0 + (duration_ms + 1_000) * 1_000_000;
    sim.spawn_supervisor(async move {
        let mut rng = s.rng("workload");
        let mut call = 0;
        while s.now().0 < end_at {
            let from = nodes[rng.gen_range(0..nodes.len())];
            let mut to = nodes[rng.gen_range(0..nodes.len())];
            while to == from {
                to = nodes[rng.gen_range(0..nodes.len())];
            }
            start_call(&s, from, to, call, 5_000, &o);
            call += 1;
            sleep(Duration::from_millis(rng.gen_range(10..30))).await;
        }
    });
    phases::chaos(&sim, &cfg, None).await;
    phases::heal(&sim);
    // Let the workload run on after the heal, so traffic is seen to flow again.
    sleep(Duration::from_millis(1_000)).await;
    let pending = phases::converge(&sim, &cfg, 10, || pending_calls(&open)).await;
    RunEnd {
        final_state: serde_json::json!({}),
        pending,
    }
}

async fn run_crash(sim: Sim, cfg: Rc<RunConfig>) -> RunEnd {
    sim.add_node(|ctx| {
        async move {
            let sim = ctx.sim.clone();
            let disk = sim.disk(ctx.node);
            let keys: Vec<u64> = disk.scan::<u64>("k/").into_iter().map(|(_, v)| v).collect();
            sim.record(Some(ctx.node), HarnessEvent::Recovered { keys });
            let mut rng = sim.rng("workload");
            let mut j = 0u64;
            // Sync (sometimes), then write, then sleep: a crash always lands while at least one
            // write is buffered, so every run exercises the loss.
            let mut last = None;
            loop {
                if let Some(upto) = last {
                    if rng.gen_range(0..4) == 0 && disk.sync().await.is_ok() {
                        sim.record(Some(ctx.node), HarnessEvent::Synced { upto });
                    }
                }
                let key = u64::from(ctx.incarnation) * 1_000_000 + j;
                disk.put(format!("k/{key:012}"), key);
                sim.record(Some(ctx.node), HarnessEvent::Wrote { key });
                last = Some(key);
                j += 1;
                sleep(Duration::from_millis(rng.gen_range(3..15))).await;
            }
        }
        .boxed_local()
    });
    phases::warmup(&sim, &cfg).await;
    phases::chaos(&sim, &cfg, None).await;
    phases::heal(&sim);
    sleep(Duration::from_millis(50)).await;
    RunEnd::default()
}

async fn run_injection(sim: Sim, cfg: Rc<RunConfig>) -> RunEnd {
    const POINT: &str = "harness_block";
    idle_nodes(&sim, &cfg, |sim, node| {
        if node == NodeId(2) {
            let s = sim.clone();
            sim.net().serve::<Work>(node, move |from, call| {
                let sim = s.clone();
                async move {
                    sim.record(Some(node), HarnessEvent::HandlerStart { call, from });
                    if let Some(h) = Injections::of(&sim).handler(&sim, node, POINT) {
                        let _ = h.wait_for_message(Duration::from_secs(60), None).await;
                        sim.mark("injection released by message");
                    }
                    sim.record(Some(node), HarnessEvent::HandlerApplied { call });
                    Ok(call)
                }
                .boxed_local()
            });
        }
    });
    let inj = Injections::of(&sim);
    inj.enable(&sim, NodeId(2), POINT, false, BTreeMap::new());
    phases::warmup(&sim, &cfg).await;
    phases::enter(&sim, "chaos");
    let open = Rc::new(RefCell::new(BTreeMap::new()));
    let mut rng = sim.rng("workload");
    let calls = rng.gen_range(3..=6);
    for call in 0..calls {
        start_call(&sim, NodeId(1), NodeId(2), call, 30_000, &open);
        sleep(Duration::from_millis(rng.gen_range(0..200))).await;
    }
    inj.wait_entered(NodeId(2), POINT, 1).await;
    sleep(Duration::from_millis(rng.gen_range(50..500))).await;
    inj.message(&sim, NodeId(2), POINT);
    sleep(Duration::from_millis(rng.gen_range(50..500))).await;
    inj.disable(&sim, NodeId(2), POINT);
    let pending = phases::converge(&sim, &cfg, 10, || pending_calls(&open)).await;
    RunEnd {
        final_state: serde_json::json!({}),
        pending,
    }
}
