//! Tests of [`SysTableStorage`]: buffered writes are visible at once, a sync makes them
//! durable, a crash loses exactly the unsynced ones (random store / remove / sync / crash /
//! reload sequences against a reference model), and a truncated suffix is one range tombstone
//! that reads step over.

use super::core::HardState;
use super::log::Entry;
use super::sys_table::{SysTableStorage, RAFT_SHARD, RAFT_TABLE};
use super::{GroupId, RaftStorage};
use crate::storage::{Engine, TableConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sim::runtime::run_seed;
use sim::time::{sleep, Duration};
use sim::{NetConfig, NodeId, Sim};

type Storage = SysTableStorage<u32>;

fn entry(index: u64, term: u64) -> Entry<u32> {
    Entry {
        index,
        term,
        cmd: Some((index * 1000 + term) as u32),
    }
}

/// Runs `f` on a one-node world; `f` gets the sim and the node.
fn on_node<T: 'static>(f: impl AsyncFnOnce(Sim, NodeId) -> T + 'static) -> T {
    let out = run_seed(1, move |h| async move {
        let sim = Sim::new(1, &[], NetConfig::default(), h);
        let n = sim.add_node(|_| Box::pin(std::future::pending()));
        sleep(Duration::from_millis(1)).await;
        let r = f(sim.clone(), n).await;
        sim.teardown();
        r
    });
    out.result.expect("test body")
}

const MEMBERS: &[NodeId] = &[NodeId(1), NodeId(2), NodeId(3)];

fn open(sim: &Sim, n: NodeId, g: u64) -> Storage {
    Storage::open(sim, n, GroupId(g), MEMBERS)
}

#[test]
fn bootstrap_stores_the_initial_configuration_once() {
    on_node(async |sim, n| {
        let s = open(&sim, n, 0);
        let d = s.load_snapshot_descriptor().expect("bootstrapped");
        assert_eq!((d.idx, d.term), (0, 0));
        assert_eq!(d.current, MEMBERS.to_vec());
        RaftStorage::<u32>::sync(&s).await.expect("sync");
        sim.crash(n);
        sim.restart(n);
        sleep(Duration::from_millis(1)).await;
        // A restarted member finds its descriptor and does not bootstrap again.
        let again = Storage::open(&sim, n, GroupId(0), &[NodeId(9)]);
        assert_eq!(again.load_snapshot_descriptor(), Some(d));
        // Another group's partition is its own.
        let other = open(&sim, n, 7);
        assert_ne!(other.load_snapshot_descriptor().map(|d| d.id), Some(0));
        assert!(RaftStorage::<u32>::load_log(&other).is_empty());
    });
}

#[test]
fn a_truncated_suffix_is_one_range_tombstone_reads_step_over() {
    on_node(async |sim, n| {
        let s = open(&sim, n, 0);
        let log: Vec<Entry<u32>> = (1..=6).map(|i| entry(i, 1)).collect();
        s.store_entries(&log);
        assert_eq!(s.range_tombstones(), 0);
        // The shell truncates 4..=6 and writes a new entry 4 of term 2.
        s.remove_entries(4, 6);
        assert_eq!(
            s.range_tombstones(),
            1,
            "one tombstone for the whole suffix"
        );
        let (read, dead) = s.read_log();
        assert_eq!(read, log[..3].to_vec());
        // The tombstone and the three rows it shadows.
        assert_eq!(dead, 4);
        s.store_entries(&[entry(4, 2)]);
        let (read, _) = s.read_log();
        assert_eq!(
            read,
            vec![entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 2)]
        );
        // Durable across a crash, the tombstone included (entries 5 and 6 stay dead).
        s.sync().await.expect("sync");
        sim.crash(n);
        sim.restart(n);
        let again = open(&sim, n, 0);
        assert_eq!(again.load_log(), read);
        assert_eq!(
            again.read_statics().snapshot_id,
            s.read_statics().snapshot_id
        );
        // The engine holds the rows on shard 0's system.raft.
        let e = Engine::of(&sim, n);
        let t = e.table::<super::sys_table::RaftKeys<u32>>(
            RAFT_SHARD,
            RAFT_TABLE,
            &TableConfig::default(),
        );
        assert!(t.borrow().range_tombstone_count(&0) >= 1);
    });
}

/// What the reference model holds: the log and the hard state.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    log: Vec<Entry<u32>>,
    hs: HardState,
}

/// Random shell-like write sequences (appends that overwrite a suffix, truncations, hard
/// states), syncs, reopenings and crashes: the storage always reads back the buffered model,
/// and after a crash exactly the model as of the last successful sync.
#[test]
fn random_writes_syncs_and_crashes_round_trip() {
    for seed in 0..24u64 {
        on_node(async move |sim, n| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let mut s = open(&sim, n, 0);
            let mut buffered = Model::default();
            let mut durable = Model::default();
            let mut term = 1;
            let mut crashes = 0;
            for step in 0..400 {
                match rng.gen_range(0..20) {
                    0..=9 => {
                        // Append k entries at p (overwriting from p), like the shell.
                        let last = buffered.log.len() as u64;
                        let p = rng.gen_range(last.saturating_sub(3) + 1..=last + 1);
                        let k = rng.gen_range(1..=4u64);
                        if rng.gen_bool(0.3) {
                            term += 1;
                        }
                        let es: Vec<Entry<u32>> = (p..p + k).map(|i| entry(i, term)).collect();
                        s.store_entries(&es);
                        let new_last = p + k - 1;
                        if new_last < last {
                            s.remove_entries(new_last + 1, last);
                        }
                        buffered.log.truncate(p as usize - 1);
                        buffered.log.extend(es);
                    }
                    10..=11 => {
                        // A shorter log: the suffix after a random point goes.
                        let last = buffered.log.len() as u64;
                        if last >= 2 {
                            let from = rng.gen_range(2..=last);
                            s.remove_entries(from, last);
                            buffered.log.truncate(from as usize - 1);
                        }
                    }
                    12..=14 => {
                        let hs = HardState {
                            term,
                            vote: rng.gen_bool(0.5).then(|| NodeId(rng.gen_range(1..4))),
                            commit: rng.gen_range(0..=buffered.log.len() as u64),
                        };
                        s.store_hard_state(&hs);
                        buffered.hs = hs;
                    }
                    15..=17 => {
                        RaftStorage::<u32>::sync(&s).await.expect("sync");
                        durable = buffered.clone();
                    }
                    18 => {
                        // Reopened in the same incarnation: the buffered writes are there.
                        s = open(&sim, n, 0);
                    }
                    _ => {
                        sim.crash(n);
                        if rng.gen_bool(0.5) {
                            sleep(Duration::from_millis(1)).await;
                        }
                        sim.restart(n);
                        s = open(&sim, n, 0);
                        buffered = durable.clone();
                        crashes += 1;
                    }
                }
                let got = Model {
                    log: s.load_log(),
                    hs: s.load_hard_state(),
                };
                assert_eq!(got, buffered, "seed {seed} step {step}");
            }
            assert!(crashes > 5, "seed {seed}: the sequence crashes the node");
        });
    }
}
