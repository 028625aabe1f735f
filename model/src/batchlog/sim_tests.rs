//! Smoke tests of the cluster shell inside one seeded run.

use super::api::BatchlogCluster;
use super::config::BatchlogConfig;
use super::events::{BatchlogEvent, Outcome};
use super::types::{Layout, TableId};
use fault_injection::Injections;
use sim::runtime::run_seed;
use sim::time::{sleep, Duration};
use sim::{NetConfig, Sim};

fn small(layout: Layout) -> BatchlogConfig {
    BatchlogConfig {
        layout,
        shard_count: 4,
        ring_delay_ms: 1000,
        replay_interval_ms: 1000,
        write_request_timeout_ms: 500,
        replay_write_timeout_ms: 2000,
        memtable_flush_fragments: 32,
        commitlog_segment_mutations: 32,
        ..Default::default()
    }
}

fn story(layout: Layout, seed: u64) -> (Vec<Outcome>, Vec<String>, u64) {
    let out = run_seed(seed, |h| async move {
        let sim = Sim::new(seed, &[], NetConfig::default(), h);
        let bl = small(layout);
        let c = BatchlogCluster::start(&sim, BatchlogCluster::topology(4, 4, &bl), bl);
        sleep(Duration::from_millis(10)).await;
        let nodes = c.nodes();
        let inj = Injections::of(&sim);
        let mut outcomes = Vec::new();
        for i in 0..20u64 {
            if i == 5 {
                inj.enable(
                    &sim,
                    nodes[0],
                    "storage_proxy_fail_send_batch",
                    true,
                    Default::default(),
                );
            }
            let o = c
                .execute(
                    nodes[(i % 4) as usize],
                    vec![(TableId(0), i, i), (TableId(1), i * 7, i)],
                )
                .await;
            outcomes.push(o);
        }
        sim.crash(nodes[0]);
        sleep(Duration::from_secs(2)).await;
        sim.restart(nodes[0]);
        sleep(Duration::from_secs(10)).await;
        (outcomes, c.pending())
    });
    let (o, p) = out.result.expect("no panic");
    let applied = out
        .history
        .entries()
        .iter()
        .filter(|e| {
            matches!(
                e.proto::<BatchlogEvent>(),
                Some(BatchlogEvent::EntryReplayed { .. })
            )
        })
        .count() as u64;
    (o, p, applied)
}

#[test]
fn batches_apply_and_failed_send_is_replayed() {
    for layout in [Layout::V1, Layout::V2] {
        let (outcomes, pending, replayed) = story(layout, 3);
        assert_eq!(
            outcomes.iter().filter(|o| **o == Outcome::Unknown).count(),
            1,
            "{outcomes:?}"
        );
        assert!(pending.is_empty(), "{layout:?}: {pending:?}");
        eprintln!("{layout:?}: {outcomes:?} replayed={replayed}");
        assert!(replayed >= 1, "the failed send was replayed");
    }
}
