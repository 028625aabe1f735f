//! Unit tests of the pure Raft core over a tiny in-test network: elections, split votes, log
//! repair, the figure-8 commit rule, read index, pre-vote, check-quorum, and a randomised
//! safety fuzz with drops, partitions and crash/restart.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::core::{Core, CoreConfig, CoreEvent, HardState, Message, Request, Response, Role};
use super::log::Entry;
use super::NodeId;

fn n(i: u32) -> NodeId {
    NodeId(i)
}

struct Opts {
    pre_vote: bool,
    check_quorum: bool,
    max_entries: usize,
    mutant: bool,
    heartbeat_ticks: u64,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            pre_vote: true,
            check_quorum: true,
            max_entries: 8,
            mutant: false,
            heartbeat_ticks: 2,
        }
    }
}

fn config(id: NodeId, size: u32, o: &Opts) -> CoreConfig {
    CoreConfig {
        id,
        members: (1..=size).map(n).collect(),
        election_ticks_min: 10,
        election_ticks_max: 20,
        heartbeat_ticks: o.heartbeat_ticks,
        max_entries_per_append: o.max_entries,
        pre_vote: o.pre_vote,
        check_quorum: o.check_quorum,
        commit_without_majority: o.mutant,
    }
}

/// Durable state of one node (everything persisted is immediately durable in these tests).
#[derive(Clone, Default)]
struct Disk {
    hs: HardState,
    log: Vec<Entry<u32>>,
}

struct Net {
    size: u32,
    opts: Opts,
    cores: BTreeMap<NodeId, Core<u32>>,
    disks: BTreeMap<NodeId, Disk>,
    queue: VecDeque<(NodeId, Message<u32>)>,
    /// Responses held back by a slow sync on the responder: (from, to, sent_term, response).
    held: Vec<(NodeId, NodeId, u64, Response)>,
    /// Directed links that drop everything.
    cut: BTreeSet<(NodeId, NodeId)>,
    down: BTreeSet<NodeId>,
    /// Applied entries per node, for the current incarnation.
    applied: BTreeMap<NodeId, Vec<Entry<u32>>>,
    /// Every entry applied anywhere: index -> term.
    committed: BTreeMap<u64, (u64, Option<u32>)>,
    leaders: BTreeMap<u64, NodeId>,
    seed: u64,
}

impl Net {
    fn new(size: u32, seed: u64, opts: Opts) -> Net {
        let disks: BTreeMap<_, _> = (1..=size).map(|i| (n(i), Disk::default())).collect();
        Net::with_disks(size, seed, opts, disks)
    }

    fn with_disks(size: u32, seed: u64, opts: Opts, disks: BTreeMap<NodeId, Disk>) -> Net {
        let mut net = Net {
            size,
            opts,
            cores: BTreeMap::new(),
            disks,
            queue: VecDeque::new(),
            held: Vec::new(),
            cut: BTreeSet::new(),
            down: BTreeSet::new(),
            applied: BTreeMap::new(),
            committed: BTreeMap::new(),
            leaders: BTreeMap::new(),
            seed,
        };
        for i in 1..=size {
            net.boot(n(i));
        }
        net
    }

    fn boot(&mut self, id: NodeId) {
        let d = self.disks[&id].clone();
        self.seed += 1;
        let rng = Box::new(ChaCha8Rng::seed_from_u64(self.seed * 1000 + id.0 as u64));
        let core = Core::new(config(id, self.size, &self.opts), d.hs, d.log, rng);
        self.cores.insert(id, core);
        self.applied.insert(id, Vec::new());
        self.down.remove(&id);
        self.collect(id);
    }

    fn crash(&mut self, id: NodeId) {
        self.down.insert(id);
        self.cores.remove(&id);
        self.queue.retain(|(from, _)| *from != id);
        // Responses the crashed node had not synced yet never leave it; its own calls die.
        let held = std::mem::take(&mut self.held);
        for (from, to, sent_term, resp) in held {
            if to == id {
                if matches!(resp, Response::Append(_)) && from != id {
                    self.core(from).append_failed(to, sent_term);
                    self.collect(from);
                }
            } else if from != id {
                self.held.push((from, to, sent_term, resp));
            }
        }
        // Calls to the crashed node fail (the shell's RPC times out).
        self.drop_where(|_, m| m.to == id);
    }

    fn core(&mut self, id: NodeId) -> &mut Core<u32> {
        self.cores.get_mut(&id).unwrap()
    }

    /// Persist (durably, at once), then take the ready: queue messages, apply, record.
    fn collect(&mut self, id: NodeId) {
        let core = self.cores.get_mut(&id).unwrap();
        let p = core.take_persist();
        let disk = self.disks.get_mut(&id).unwrap();
        if let Some(hs) = p.hard_state {
            disk.hs = hs;
        }
        if let Some(u) = p.log {
            for e in u.entries {
                let i = e.index as usize;
                if disk.log.len() >= i {
                    disk.log.truncate(i - 1);
                }
                assert_eq!(disk.log.len() + 1, i);
                disk.log.push(e);
            }
            disk.log.truncate(u.last_index as usize);
        }
        let (li, lt) = (core.log().last_index(), core.log().last_term());
        core.persisted(li, lt);
        let rd = core.take_ready();
        for m in rd.messages {
            self.queue.push_back((id, m));
        }
        for e in rd.committed {
            let applied = self.applied.get_mut(&id).unwrap();
            assert_eq!(e.index, applied.len() as u64 + 1, "gap in apply on {id}");
            match self.committed.get(&e.index) {
                Some(&(t, c)) => assert_eq!(
                    (t, c),
                    (e.term, e.cmd),
                    "{id} applied a different entry at committed index {}",
                    e.index
                ),
                None => {
                    self.committed.insert(e.index, (e.term, e.cmd));
                }
            }
            applied.push(e);
        }
        for ev in rd.events {
            if let CoreEvent::BecameLeader { term } = ev {
                let prev = self.leaders.insert(term, id);
                assert!(
                    prev.is_none(),
                    "two leaders in term {term}: {prev:?} and {id}"
                );
            }
        }
    }

    /// Delivers the queued message at position `pos` and its response.
    fn deliver_at(&mut self, pos: usize) {
        self.deliver(pos, false)
    }

    /// Delivers queued message `pos`; with `hold`, its response waits (a slow sync) until
    /// [`Net::release_held`].
    fn deliver(&mut self, pos: usize, hold: bool) {
        let (from, m) = self.queue.remove(pos).unwrap();
        let is_append = matches!(m.req, Request::Append(_));
        if self.cut.contains(&(from, m.to)) || self.down.contains(&m.to) {
            if is_append && !self.down.contains(&from) {
                self.core(from).append_failed(m.to, m.sent_term);
                self.collect(from);
            }
            return;
        }
        let resp = self.core(m.to).step_request(from, m.req);
        self.collect(m.to);
        if hold {
            self.held.push((from, m.to, m.sent_term, resp));
            return;
        }
        if self.down.contains(&from) {
            return;
        }
        if self.cut.contains(&(m.to, from)) {
            if is_append {
                self.core(from).append_failed(m.to, m.sent_term);
                self.collect(from);
            }
            return;
        }
        self.core(from).step_response(m.to, m.sent_term, resp);
        self.collect(from);
    }

    fn release_held(&mut self, k: usize) {
        let (from, to, sent_term, resp) = self.held.remove(k);
        let is_append = matches!(resp, Response::Append(_));
        let resp = self.cores[&to].revalidate(resp);
        if self.cut.contains(&(to, from)) {
            if is_append {
                self.core(from).append_failed(to, sent_term);
                self.collect(from);
            }
            return;
        }
        self.core(from).step_response(to, sent_term, resp);
        self.collect(from);
    }

    fn deliver_where(&mut self, pred: impl Fn(NodeId, &Message<u32>) -> bool) -> bool {
        match self.queue.iter().position(|(f, m)| pred(*f, m)) {
            Some(pos) => {
                self.deliver_at(pos);
                true
            }
            None => false,
        }
    }

    fn drop_where(&mut self, pred: impl Fn(NodeId, &Message<u32>) -> bool) {
        let q = std::mem::take(&mut self.queue);
        for (f, m) in q {
            if pred(f, &m) {
                if matches!(m.req, Request::Append(_)) && !self.down.contains(&f) {
                    self.core(f).append_failed(m.to, m.sent_term);
                    self.collect(f);
                }
            } else {
                self.queue.push_back((f, m));
            }
        }
    }

    fn run(&mut self) {
        let mut steps = 0;
        while !self.queue.is_empty() {
            self.deliver_at(0);
            steps += 1;
            assert!(steps < 100_000, "message storm");
        }
    }

    fn tick_all(&mut self) {
        let ids: Vec<NodeId> = self.cores.keys().copied().collect();
        for id in ids {
            self.core(id).tick();
            self.collect(id);
        }
    }

    fn leader(&self) -> Option<NodeId> {
        self.cores
            .iter()
            .filter(|(_, c)| c.role() == Role::Leader)
            .max_by_key(|(_, c)| c.term())
            .map(|(&id, _)| id)
    }

    fn elect(&mut self) -> NodeId {
        for _ in 0..500 {
            self.tick_all();
            self.run();
            if let Some(l) = self.leader() {
                return l;
            }
        }
        panic!("no leader elected");
    }

    fn settle(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.tick_all();
            self.run();
        }
    }
}

fn entries(terms: &[u64]) -> Vec<Entry<u32>> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &t)| Entry {
            index: i as u64 + 1,
            term: t,
            cmd: Some(1000 * t as u32 + i as u32),
        })
        .collect()
}

#[test]
fn elects_one_leader_and_replicates() {
    for seed in 0..20 {
        let mut net = Net::new(3, seed, Opts::default());
        let l = net.elect();
        for k in 0..5 {
            net.core(l).propose(k).unwrap();
        }
        net.run();
        net.settle(5);
        let l = net.leader().unwrap();
        let commit = net.cores[&l].commit();
        assert_eq!(commit, 6, "noop + 5 proposals");
        for i in 1..=3 {
            assert_eq!(
                net.applied[&n(i)].len() as u64,
                commit,
                "node {i} applied all"
            );
        }
        assert!(net
            .core(n(if l == n(1) { 2 } else { 1 }))
            .propose(9)
            .is_err());
    }
}

#[test]
fn single_node_group_commits_alone() {
    let mut net = Net::new(1, 3, Opts::default());
    let l = net.elect();
    assert_eq!(l, n(1));
    let (idx, term) = net.core(l).propose(5).unwrap();
    net.collect(l);
    assert_eq!((idx, term), (2, 1));
    assert_eq!(net.cores[&l].commit(), 2);
    assert_eq!(net.applied[&l].len(), 2);
}

#[test]
fn split_vote_then_new_term_elects() {
    let opts = Opts {
        pre_vote: false,
        check_quorum: false,
        ..Opts::default()
    };
    let mut net = Net::new(4, 7, opts);
    net.core(n(1)).campaign_now();
    net.collect(n(1));
    net.core(n(2)).campaign_now();
    net.collect(n(2));
    // n3 votes for n1, n4 for n2, n1 and n2 reject each other: 2 votes each, no majority of 3.
    assert!(net.deliver_where(|f, m| f == n(1) && m.to == n(3)));
    assert!(net.deliver_where(|f, m| f == n(2) && m.to == n(4)));
    net.run();
    assert_eq!(net.leader(), None, "split vote elects nobody in term 1");
    assert!(net.leaders.is_empty());
    let l = net.elect();
    assert!(net.cores[&l].term() >= 2);
}

#[test]
fn stale_log_cannot_win() {
    let mut disks = BTreeMap::new();
    disks.insert(
        n(1),
        Disk {
            hs: HardState {
                term: 2,
                vote: None,
                commit: 0,
            },
            log: entries(&[1]),
        },
    );
    for i in 2..=3 {
        disks.insert(
            n(i),
            Disk {
                hs: HardState {
                    term: 2,
                    vote: None,
                    commit: 0,
                },
                log: entries(&[1, 2]),
            },
        );
    }
    let opts = Opts {
        pre_vote: false,
        check_quorum: false,
        ..Opts::default()
    };
    let mut net = Net::with_disks(3, 1, opts, disks);
    net.core(n(1)).campaign_now();
    net.collect(n(1));
    net.run();
    assert_eq!(net.leader(), None);
    let l = net.elect();
    assert_ne!(
        l,
        n(1),
        "a node missing a committed-looking entry must not win"
    );
}

#[test]
fn leader_repairs_divergent_logs() {
    let mut disks = BTreeMap::new();
    let hs = HardState {
        term: 3,
        vote: None,
        commit: 2,
    };
    disks.insert(
        n(1),
        Disk {
            hs: hs.clone(),
            log: entries(&[1, 1, 2, 3, 3]),
        },
    );
    disks.insert(
        n(2),
        Disk {
            hs: hs.clone(),
            log: entries(&[1, 1, 2, 2, 2, 2, 2]),
        },
    );
    disks.insert(
        n(3),
        Disk {
            hs: HardState {
                commit: 1,
                ..hs.clone()
            },
            log: entries(&[1]),
        },
    );
    let opts = Opts {
        max_entries: 2,
        ..Opts::default()
    };
    let mut net = Net::with_disks(3, 2, opts, disks);
    // n1 has the most up-to-date log (last term 3); make it campaign first.
    net.core(n(1)).campaign_now();
    net.collect(n(1));
    net.run();
    assert_eq!(net.leader(), Some(n(1)));
    net.settle(10);
    let leader_log = net.disks[&n(1)].log.clone();
    assert_eq!(leader_log.len(), 6, "5 old entries + the noop of term 4");
    for i in 2..=3 {
        assert_eq!(net.disks[&n(i)].log, leader_log, "n{i} log repaired");
        assert_eq!(net.cores[&n(i)].commit(), 6);
    }
}

/// Raft paper, figure 8: a leader must not commit an entry of an earlier term by counting
/// replicas, even when a majority stores it; a later leader may legally overwrite it.
#[test]
fn figure_8_old_term_entry_not_committed_by_counting() {
    let mut disks = BTreeMap::new();
    let d = |term, vote, log: &[u64]| Disk {
        hs: HardState {
            term,
            vote: Some(n(vote)),
            commit: 1,
        },
        log: entries(log),
    };
    disks.insert(n(1), d(3, 1, &[1, 2]));
    disks.insert(n(2), d(3, 1, &[1, 2]));
    disks.insert(n(3), d(3, 5, &[1]));
    disks.insert(n(4), d(3, 5, &[1]));
    disks.insert(n(5), d(3, 5, &[1, 3]));
    let opts = Opts {
        pre_vote: false,
        check_quorum: false,
        max_entries: 1,
        mutant: false,
        heartbeat_ticks: 2,
    };
    let mut net = Net::with_disks(5, 4, opts, disks);
    // n1 wins term 4 with n2, n3, n4; n5 never hears of it.
    net.core(n(1)).campaign_now();
    net.collect(n(1));
    net.drop_where(|_, m| m.to == n(5));
    for to in 2..=4 {
        assert!(net.deliver_where(|f, m| f == n(1) && m.to == n(to)));
    }
    assert_eq!(net.leader(), Some(n(1)));
    assert_eq!(net.cores[&n(1)].term(), 4);
    net.drop_where(|f, m| f == n(1) && (m.to == n(2) || m.to == n(5)));
    // n3 and n4: probe rejected, then only index 2 (term 2) is sent (one entry per append);
    // the append of index 3 (the term-4 empty entry) is lost.
    for to in 3..=4 {
        while net.disks[&n(to)].log.len() < 2 {
            assert!(net.deliver_where(|f, m| f == n(1) && m.to == n(to)));
        }
        net.drop_where(|f, m| f == n(1) && m.to == n(to));
    }
    assert_eq!(net.disks[&n(3)].log, entries(&[1, 2]));
    assert_eq!(net.disks[&n(4)].log, entries(&[1, 2]));
    // n1, n2, n3, n4 store index 2 of term 2: a majority. Still not committed.
    assert!(
        net.cores[&n(1)].commit() < 2,
        "old-term entry committed by counting replicas"
    );
    // n1 crashes; n5 (last term 3) wins term 5 with n2, n3 and overwrites index 2.
    net.crash(n(1));
    // Term 4 is taken (n2..n4 voted for n1), so n5 needs two tries: term 4, then term 5.
    for _ in 0..2 {
        net.core(n(5)).campaign_now();
        net.collect(n(5));
        net.run();
    }
    assert_eq!(net.leader(), Some(n(5)));
    net.settle(5);
    for i in 2..=5 {
        assert_eq!(
            net.disks[&n(i)].log[1].term,
            3,
            "n{i} index 2 overwritten by term 3"
        );
    }
    assert_eq!(net.committed[&2].0, 3);
}

#[test]
fn figure_8_mutant_commits_by_counting() {
    let mut disks = BTreeMap::new();
    for i in 1..=3 {
        disks.insert(
            n(i),
            Disk {
                hs: HardState {
                    term: 1,
                    vote: None,
                    commit: 0,
                },
                log: entries(&[1]),
            },
        );
    }
    let opts = Opts {
        mutant: true,
        ..Opts::default()
    };
    let mut net = Net::with_disks(3, 9, opts, disks);
    net.core(n(1)).campaign_now();
    net.collect(n(1));
    net.run();
    assert_eq!(net.leader(), Some(n(1)));
    net.cut.insert((n(1), n(2)));
    net.cut.insert((n(1), n(3)));
    net.core(n(1)).propose(77).unwrap();
    net.collect(n(1));
    assert_eq!(net.cores[&n(1)].commit(), 3, "the mutant commits alone");
}

#[test]
fn read_index_needs_quorum_and_current_term_commit() {
    let mut net = Net::new(3, 11, Opts::default());
    let l = net.elect();
    net.settle(2);
    let others: Vec<NodeId> = (1..=3).map(n).filter(|&x| x != l).collect();
    for &o in &others {
        net.cut.insert((l, o));
    }
    net.core(l).read_index(42).unwrap();
    net.collect(l);
    net.run();
    // No acknowledgement from a majority: no answer (checked via a fresh ready).
    let rd = net.core(l).take_ready();
    assert!(rd.reads.is_empty());
    net.cut.clear();
    net.core(l).read_index(43).unwrap();
    let rd_id = net.core(l).commit();
    net.collect(l);
    // Deliver by hand to catch the answer in the ready.
    let mut answers = Vec::new();
    while let Some((from, m)) = net.queue.pop_front() {
        let resp = net.core(m.to).step_request(from, m.req);
        net.core(m.to).take_persist();
        net.core(from).step_response(m.to, m.sent_term, resp);
        answers.extend(net.core(from).take_ready().reads);
    }
    assert!(answers.contains(&(43, Ok(rd_id))), "{answers:?}");
    assert!(answers.contains(&(42, Ok(rd_id))), "{answers:?}");
    assert!(net.core(others[0]).read_index(1).is_err());
}

#[test]
fn pre_vote_keeps_partitioned_node_from_bumping_terms() {
    let mut net = Net::new(3, 5, Opts::default());
    let l = net.elect();
    net.settle(3);
    let term = net.cores[&l].term();
    let lonely = (1..=3).map(n).find(|&x| x != l).unwrap();
    for i in 1..=3 {
        net.cut.insert((lonely, n(i)));
        net.cut.insert((n(i), lonely));
    }
    net.settle(200);
    assert_eq!(
        net.cores[&lonely].term(),
        term,
        "pre-vote failed, term stays"
    );
    net.cut.clear();
    net.settle(20);
    assert_eq!(
        net.leader(),
        Some(l),
        "rejoining node does not depose the leader"
    );
    assert_eq!(net.cores[&l].term(), term);
}

#[test]
fn check_quorum_isolated_leader_steps_down() {
    let mut net = Net::new(3, 6, Opts::default());
    let l = net.elect();
    for i in 1..=3 {
        net.cut.insert((l, n(i)));
        net.cut.insert((n(i), l));
    }
    net.settle(100);
    assert_ne!(net.cores[&l].role(), Role::Leader);
    let new = net.leader().expect("the majority elects a new leader");
    assert_ne!(new, l);
}

/// Random drops, partitions, crashes and restarts; the net's own assertions check election
/// safety and that applied entries agree at every index.
fn fuzz(seed: u64, mutant: bool) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let size = rng.gen_range(3..=5);
    let opts = Opts {
        mutant,
        max_entries: rng.gen_range(1..=4),
        ..Opts::default()
    };
    let mut net = Net::new(size, seed, opts);
    let mut next_cmd = 0u32;
    for _ in 0..3000 {
        match rng.gen_range(0..100) {
            0..=34 => {
                if !net.queue.is_empty() {
                    let pos = rng.gen_range(0..net.queue.len().min(4));
                    net.deliver_at(pos);
                }
            }
            35..=37 => {
                if !net.queue.is_empty() {
                    let pos = rng.gen_range(0..net.queue.len().min(4));
                    net.deliver(pos, true);
                }
            }
            38..=39 => {
                if !net.held.is_empty() {
                    let k = rng.gen_range(0..net.held.len());
                    net.release_held(k);
                }
            }
            40..=44 => {
                if !net.queue.is_empty() {
                    let pos = rng.gen_range(0..net.queue.len());
                    let (f, m) = net.queue.remove(pos).unwrap();
                    net.queue.push_back((f, m.clone()));
                    net.drop_where(|ff, mm| {
                        ff == f && mm.to == m.to && mm.sent_term == m.sent_term
                    });
                }
            }
            45..=69 => net.tick_all(),
            70..=84 => {
                if let Some(l) = net.leader() {
                    next_cmd += 1;
                    let _ = net.core(l).propose(next_cmd);
                    net.collect(l);
                }
            }
            85..=88 => {
                let a = n(rng.gen_range(1..=size));
                let b = n(rng.gen_range(1..=size));
                if a != b {
                    net.cut.insert((a, b));
                    net.cut.insert((b, a));
                }
            }
            89..=92 => net.cut.clear(),
            93..=95 => {
                let a = n(rng.gen_range(1..=size));
                if !net.down.contains(&a) && net.down.len() + 1 < size as usize / 2 + 1 {
                    net.crash(a);
                }
            }
            _ => {
                if let Some(&a) = net.down.iter().next() {
                    net.boot(a);
                }
            }
        }
    }
    // Heal and converge.
    net.cut.clear();
    while !net.held.is_empty() {
        net.release_held(0);
    }
    let down: Vec<NodeId> = net.down.iter().copied().collect();
    for a in down {
        net.boot(a);
    }
    net.settle(100);
    let l = net.leader().expect("a leader after heal");
    let commit = net.cores[&l].commit();
    for i in 1..=size {
        let c = &net.cores[&n(i)];
        assert_eq!(
            c.commit(),
            commit,
            "seed {seed}: n{i} converged (leader {l}, role {:?}, term {} vs {}, last {} vs {})",
            c.role(),
            c.term(),
            net.cores[&l].term(),
            c.log().last_index(),
            net.cores[&l].log().last_index()
        );
    }
}

#[test]
fn fuzz_safety_holds() {
    for seed in 0..40 {
        fuzz(seed, false);
    }
}

#[test]
fn fuzz_catches_commit_without_majority() {
    let caught = (0..40).any(|seed| std::panic::catch_unwind(|| fuzz(seed, true)).is_err());
    assert!(caught, "the mutant must break agreement on some seed");
}

/// An acknowledgement held back by a slow sync must not claim entries a newer leader has
/// truncated in the meantime.
#[test]
fn revalidate_turns_stale_ack_into_rejection() {
    use super::core::AppendReq;
    let mut net = Net::new(3, 12, Opts::default());
    let ent = |t: u64| Entry {
        index: 1,
        term: t,
        cmd: Some(t as u32),
    };
    let req = |term: u64, e: Entry<u32>| {
        Request::Append(AppendReq {
            term,
            prev_index: 0,
            prev_term: 0,
            entries: vec![e],
            commit: 0,
        })
    };
    let first = net.core(n(2)).step_request(n(1), req(1, ent(1)));
    assert!(matches!(&first, Response::Append(a) if a.success && a.match_index == 1));
    // Before `first` leaves (its sync is slow), a term-2 leader overwrites index 1.
    let second = net.core(n(2)).step_request(n(3), req(2, ent(2)));
    assert!(matches!(&second, Response::Append(a) if a.success && a.term == 2));
    assert_eq!(net.cores[&n(2)].log().term(1), Some(2));
    match net.cores[&n(2)].revalidate(first) {
        Response::Append(a) => assert!(!a.success && a.term == 2, "{a:?}"),
        r => panic!("{r:?}"),
    }
    assert!(matches!(net.cores[&n(2)].revalidate(second), Response::Append(a) if a.success));
}

/// A non-voter (upstream: a node added to group0 as a non-voter while it joins) is replicated
/// to once the leader knows it, catches up from index 1, never counts towards a majority and
/// never campaigns.
#[test]
fn a_non_voter_catches_up_but_never_counts_or_campaigns() {
    let mut net = Net::new(3, 11, Opts::default());
    let l = net.elect();
    for k in 0..20 {
        net.core(l).propose(k).unwrap();
    }
    net.collect(l);
    net.run();
    net.settle(5);
    // n4 boots outside the voter set: a non-voter nobody replicates to yet.
    net.disks.insert(n(4), Disk::default());
    net.boot(n(4));
    net.settle(40);
    assert!(
        net.applied[&n(4)].is_empty(),
        "replicated before it was added"
    );
    assert_eq!(net.core(n(4)).term(), 0, "a non-voter never campaigns");
    for id in [n(1), n(2), n(3)] {
        net.core(id).set_learners([n(4)]);
        net.collect(id);
    }
    net.settle(20);
    assert_eq!(net.applied[&n(4)].len(), net.applied[&l].len(), "caught up");
    // With both other voters down, the leader and the non-voter are no majority: nothing new
    // commits even though the non-voter stores the entry.
    let others: Vec<NodeId> = [n(1), n(2), n(3)].into_iter().filter(|x| *x != l).collect();
    for o in &others {
        net.crash(*o);
    }
    let before = net.applied[&l].len();
    let _ = net.core(l).propose(4242);
    net.collect(l);
    net.run();
    assert_eq!(
        net.applied[&l].len(),
        before,
        "a non-voter counted for commit"
    );
    assert!(net.disks[&n(4)].log.iter().any(|e| e.cmd == Some(4242)));
    // Without any leader for many election timeouts, the non-voter still never campaigns.
    net.crash(l);
    let term = net.core(n(4)).term();
    net.settle(200);
    assert_eq!(net.core(n(4)).term(), term);
    assert_eq!(net.core(n(4)).role(), Role::Follower);
}

/// What the lazy tick driver relies on (`service::Inner::tick_loop`): every tick before the one
/// `ticks_until_event` names only counts — no message, no persisted state, no event, no role or
/// term change — and the prediction counts down by one per tick. Checked on every node at every
/// step of runs with elections, heartbeats, failovers and partitions.
#[test]
fn ticks_before_the_predicted_one_only_count() {
    for seed in 0..20u64 {
        // A heartbeat period that does not divide the quorum window, so the two kinds of
        // acting tick fall apart.
        let opts = Opts {
            heartbeat_ticks: 3,
            ..Opts::default()
        };
        let mut net = Net::new(3, seed, opts);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut acted = 0;
        for step in 0..400 {
            if step % 97 == 50 {
                // Cut one node off for a while: elections, step-downs, a stale leader.
                let lone = n(rng.gen_range(1..=3));
                net.cut = (1..=3)
                    .map(n)
                    .filter(|&o| o != lone)
                    .flat_map(|o| [(lone, o), (o, lone)])
                    .collect();
            } else if step % 97 == 80 {
                net.cut.clear();
            }
            let ids: Vec<NodeId> = net.cores.keys().copied().collect();
            for id in ids {
                net.collect(id);
                let core = net.core(id);
                let before = core.ticks_until_event();
                let (role, term) = (core.role(), core.term());
                let marks = core.active_marks();
                core.tick();
                match before {
                    Some(1) => acted += 1,
                    Some(k) => {
                        assert_eq!(
                            core.ticks_until_event(),
                            Some(k - 1),
                            "seed {seed} step {step} {id}"
                        );
                        assert_eq!(
                            core.active_marks(),
                            marks,
                            "seed {seed} step {step} {id}: a quorum check ran"
                        );
                        assert_eq!(
                            (core.role(), core.term()),
                            (role, term),
                            "seed {seed} step {step} {id}"
                        );
                        let p = core.take_persist();
                        assert!(
                            p.hard_state.is_none() && p.log.is_none(),
                            "seed {seed} step {step} {id}: persisted"
                        );
                        assert!(
                            core.take_ready().is_empty(),
                            "seed {seed} step {step} {id}: a counting tick made output"
                        );
                    }
                    None => unreachable!("every member of these groups is a voter"),
                }
                net.collect(id);
            }
            net.run();
        }
        assert!(acted > 20, "seed {seed}: only {acted} acting ticks");
    }
}
