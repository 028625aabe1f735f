//! Unit tests of the storage engine: reconciliation over flushes and compactions, dropped
//! partitions, and a crash that loses exactly the unsynced writes.

use super::user::UserKeys;
use super::{Engine, Mutation, Table, TableConfig, Version};
use crate::schema::TableId;
use crate::topology::ids::ShardId;
use sim::runtime::run_seed;
use sim::time::{sleep, Duration};
use sim::{NetConfig, Sim};

fn small() -> TableConfig {
    TableConfig {
        memtable_flush_fragments: 4,
        commitlog_segment_mutations: 4,
        compaction_threshold: 2,
        persist: true,
        keep_shadowed: false,
    }
}

fn put(tablet: u32, key: u64, ts: u64, v: Option<u64>) -> Mutation<UserKeys> {
    match v {
        Some(v) => Mutation::Insert {
            pk: (tablet, key),
            ck: (),
            ts,
            data: v,
        },
        None => Mutation::DeleteRow {
            pk: (tablet, key),
            ck: (),
            ts,
        },
    }
}

#[test]
fn last_write_wins_over_flushes_and_compactions() {
    let mut t: Table<UserKeys> = Table::new(small());
    // Writes to 7 keys in many versions, out of timestamp order, with deletes; the memtable
    // flushes every 4 fragments and tiers compact, so versions spread over runs.
    let mut want = std::collections::BTreeMap::new();
    for i in 0..60u64 {
        let key = i % 7;
        let ts = 1000 + (i * 7919) % 97;
        let v = (i % 5 != 0).then_some(i);
        t.apply(put(0, key, ts, v));
        let e = want.entry(key).or_insert((0u64, None));
        if ts > e.0 || (ts == e.0 && v.is_none()) {
            *e = (ts, v);
        }
    }
    assert!(t.stats().flushes > 0 && t.stats().compactions > 0);
    for (key, (ts, v)) in &want {
        let (rows, _) = t.read_partition(&(0, *key));
        assert_eq!(rows.first().map(|r| r.data), *v, "key {key}");
        let vs = t.versions((0, *key)..=(0, *key));
        assert_eq!(vs.len(), 1);
        assert_eq!(vs[0].2, Version { ts: *ts, data: *v }, "key {key}");
    }
}

#[test]
fn a_read_counts_the_dead_entries_it_steps_over() {
    let mut t: Table<UserKeys> = Table::new(TableConfig::default());
    t.apply(put(0, 1, 10, Some(1)));
    t.apply(put(0, 1, 20, None));
    t.apply(put(0, 2, 10, Some(2)));
    let (rows, cost) = t.read_range(..);
    assert_eq!(rows.len(), 1);
    assert_eq!((cost.live, cost.dead), (1, 1));
    t.flush();
    // The flush dropped the shadowed version; the tombstone stays (GC held by the commitlog).
    let (_, cost) = t.read_range(..);
    assert_eq!((cost.live, cost.dead), (1, 1));
}

#[test]
fn dropped_partitions_leave_nothing_behind() {
    let mut t: Table<UserKeys> = Table::new(small());
    for k in 0..10u64 {
        t.apply(put((k % 2) as u32, k, 5, Some(k)));
    }
    t.apply(put(1, 3, 9, None));
    let (_, removed) = t.drop_partitions(|pk| pk.0 == 1);
    assert!(removed >= 5, "{removed}");
    assert!(t.versions((1, 0)..=(1, u64::MAX)).is_empty());
    assert_eq!(t.versions((0, 0)..=(0, u64::MAX)).len(), 5);
}

/// Writes through a node's engine: what was synced survives a crash, what was not is lost, and
/// a dropped tablet is not resurrected by commitlog replay.
#[test]
fn crash_loses_exactly_the_unsynced_writes() {
    let out = run_seed(1, |h| async move {
        let sim = Sim::new(1, &[], NetConfig::default(), h);
        let n = sim.add_node(|_| Box::pin(std::future::pending()));
        sleep(Duration::from_millis(1)).await;
        let (shard, table) = (ShardId(1), TableId::user(0));
        let e = Engine::of(&sim, n);
        let t = e.table::<UserKeys>(shard, table, &small());
        for k in 0..20u64 {
            e.apply(&t, shard, table, vec![put((k % 2) as u32, k, 10, Some(k))]);
        }
        let (ops, _) = t.borrow_mut().drop_partitions(|pk| pk.0 == 1);
        e.write(shard, table, ops);
        e.sync().await.expect("sync");
        // Unsynced: a new key and an overwrite.
        e.apply(
            &t,
            shard,
            table,
            vec![put(0, 100, 20, Some(1)), put(0, 0, 20, Some(99))],
        );
        sim.crash(n);
        let down = Engine::of(&sim, n);
        let seen_down = down
            .table::<UserKeys>(shard, table, &small())
            .borrow()
            .versions(..);
        sim.restart(n);
        sleep(Duration::from_millis(1)).await;
        let e2 = Engine::of(&sim, n);
        assert!(
            !std::rc::Rc::ptr_eq(&e, &e2),
            "a restart gets a fresh engine"
        );
        let seen = e2
            .table::<UserKeys>(shard, table, &small())
            .borrow()
            .versions(..);
        (seen_down, seen)
    });
    let (down, up) = out.result.expect("no panic");
    assert_eq!(down, up, "a down node's durable view is what it recovers");
    let keys: Vec<u64> = up.iter().map(|(pk, _, _)| pk.1).collect();
    assert_eq!(keys, (0..20).step_by(2).collect::<Vec<_>>());
    assert!(up
        .iter()
        .all(|(pk, _, v)| v.data == Some(pk.1) && v.ts == 10));
}
