//! A randomised shell test under the harness nemesis (crash, partition, kill connection, leader
//! kill, stalls, disk faults): agreement of applied entries across nodes, and convergence after
//! heal. The catalog's `raft.swarm` is the full scenario; this is its quick model-level twin.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use fault_injection::{FaultKind, FaultModel, Nemesis};
use rand::Rng;
use sim::time::{sleep, timeout, Duration};
use sim::{History, NetConfig, NodeId, Sim};

use super::service::VERBS;
use super::{Raft, RaftConfig, RaftEvent, StateMachine, MUTANT_COMMIT_WITHOUT_MAJORITY};

#[derive(Default)]
struct ListSm {
    items: Vec<u64>,
}

impl StateMachine for ListSm {
    type Command = u64;
    fn apply(&mut self, _index: u64, cmd: &u64) {
        self.items.push(*cmd);
    }
}

type Registry = Rc<RefCell<BTreeMap<NodeId, Raft<ListSm>>>>;

fn leader(sim: &Sim, reg: &Registry) -> Option<NodeId> {
    reg.borrow()
        .iter()
        .filter(|(n, r)| sim.is_up(**n) && !sim.is_paused(**n) && r.is_leader())
        .max_by_key(|(_, r)| r.term())
        .map(|(n, _)| *n)
}

/// Index -> (term, hash) must agree across every commit and apply event; each incarnation
/// applies 1, 2, 3, ... Returns the first disagreement.
fn check(h: &History) -> Result<(), String> {
    let mut seen: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut last: BTreeMap<(NodeId, u32), u64> = BTreeMap::new();
    let mut leaders: BTreeMap<u64, NodeId> = BTreeMap::new();
    for e in h.entries().iter() {
        let Some(ev) = e.proto::<RaftEvent>() else {
            continue;
        };
        let node = e.node.expect("raft events have a node");
        let (i, t, hh) = match *ev {
            RaftEvent::BecameLeader { t, .. } => {
                if let Some(o) = leaders.insert(t, node) {
                    return Err(format!("two leaders in term {t}: {o} and {node}"));
                }
                continue;
            }
            RaftEvent::Committed { i, t, h, .. } => (i, t, h),
            RaftEvent::Applied { inc, i, t, h, .. } => {
                let l = last.entry((node, inc)).or_insert(0);
                if i != *l + 1 {
                    return Err(format!("{node}/{inc} applied {i} after {l}"));
                }
                *l = i;
                (i, t, h)
            }
        };
        if let Some(&prev) = seen.get(&i) {
            if prev != (t, hh) {
                return Err(format!("index {i}: {prev:?} vs {:?} on {node}", (t, hh)));
            }
        } else {
            seen.insert(i, (t, hh));
        }
    }
    Ok(())
}

fn run(seed: u64, mutant: bool) -> (Result<(), String>, Result<String, String>, String) {
    let out = sim::runtime::run_seed(seed, |history| async move {
        let mutants = if mutant {
            vec![MUTANT_COMMIT_WITHOUT_MAJORITY.to_string()]
        } else {
            vec![]
        };
        let sim = Sim::new(seed, &mutants, NetConfig::default(), history);
        let mut rng = sim.rng("cluster");
        let size: u32 = rng.gen_range(3..=5);
        let members: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let reg: Registry = Rc::default();
        for _ in 0..size {
            let (reg, members) = (reg.clone(), members.clone());
            sim.add_node(move |ctx| {
                let (reg, members) = (reg.clone(), members.clone());
                Box::pin(async move {
                    let r = Raft::start(&ctx, members, ListSm::default(), RaftConfig::default());
                    reg.borrow_mut().insert(ctx.node, r);
                    std::future::pending::<()>().await
                })
            });
        }
        let model = FaultModel {
            kinds: vec![
                FaultKind::Crash,
                FaultKind::KillLeader,
                FaultKind::Partition,
                FaultKind::KillConnection,
                FaultKind::Stall,
                FaultKind::Drop,
                FaultKind::DiskStall,
                FaultKind::DiskError,
                FaultKind::Pause,
            ],
            min_faults: 3,
            max_faults: 10,
            window_ms: 4_000,
            max_duration_ms: 1_500,
            verbs: VERBS.iter().map(|v| v.to_string()).collect(),
            max_down: (size - 1) / 2,
            ..FaultModel::default()
        };
        let schedule = fault_injection::swarm::generate(&model, &members, &mut sim.rng("faults"));
        sleep(Duration::from_millis(500)).await;
        let probe_sim = sim.clone();
        let probe_reg = reg.clone();
        let nemesis = Nemesis::start(
            &sim,
            &schedule,
            Some(Rc::new(move || leader(&probe_sim, &probe_reg))),
        );
        // Workload: proposals from random nodes, each running on (and dying with) its node.
        let mut wl = sim.rng("workload");
        for k in 0..120u64 {
            let from = NodeId(wl.gen_range(1..=size));
            let r = reg.borrow().get(&from).cloned();
            if let Some(r) = r {
                if sim.is_up(from) {
                    sim.spawn_on(from, async move {
                        let _ = r.propose(k).await;
                    });
                }
            }
            sleep(Duration::from_millis(wl.gen_range(10..60))).await;
        }
        nemesis.stop();
        sim.heal();
        // Converge: a leader, and every node applied the leader's commit index.
        let converged = timeout(Duration::from_secs(20), async {
            loop {
                sleep(Duration::from_millis(100)).await;
                let Some(l) = leader(&sim, &reg) else {
                    continue;
                };
                let reg = reg.borrow();
                let commit = reg[&l].commit_index();
                if reg.values().all(|r| r.applied_index() == commit) {
                    return commit;
                }
            }
        })
        .await;
        match converged {
            Ok(c) => Ok(format!("converged at {c}")),
            Err(_) => {
                let reg = reg.borrow();
                Err(reg
                    .iter()
                    .map(|(n, r)| {
                        format!(
                            "{n}: t{} l{:?} a{} c{}",
                            r.term(),
                            r.leader(),
                            r.applied_index(),
                            r.commit_index()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "))
            }
        }
    });
    let verdict = check(&out.history);
    let conv = out.result.unwrap_or_else(|p| Err(format!("panic: {p}")));
    (verdict, conv, out.history.digest())
}

#[test]
fn swarm_agrees_and_converges() {
    for seed in 0..20 {
        let (v, c, _) = run(seed, false);
        eprintln!("seed {seed}: {v:?} {c:?}");
        assert_eq!(v, Ok(()), "seed {seed}");
        assert!(c.is_ok(), "seed {seed}: {c:?}");
    }
}

#[test]
fn swarm_catches_commit_mutant() {
    let caught = (0..50).find(|&seed| run(seed, true).0.is_err());
    assert!(caught.is_some(), "mutant not caught in 50 seeds");
    eprintln!("commit mutant caught at seed {caught:?}");
}

#[test]
#[ignore]
fn swarm_many() {
    let n: u64 = std::env::var("SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let mut bad = Vec::new();
    for seed in 0..n {
        let (v, c, _) = run(seed, false);
        if v.is_err() || c.is_err() {
            bad.push((seed, v, c));
        }
    }
    let caught = (0..50).filter(|&seed| run(seed, true).0.is_err()).count();
    eprintln!("mutant caught in {caught}/50 seeds");
    assert!(bad.is_empty(), "{bad:?}");
}
