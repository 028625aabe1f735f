//! The topology scenarios: clean runs pass a fixed seed range, every declared mutant is caught
//! within 50 seeds with a safety verdict, and runs are deterministic.

use scenarios::explore::{explore, hunt_mutants};
use scenarios::runner::{resolve, run};
use scenarios::{catalog, ScenarioDef, Verdict};

const IDS: &[&str] = &[
    "migration.happy_path",
    "streaming.fenced_after_kill_connection",
    "streaming.fenced_after_revert",
    "streaming.stalled_rpc_then_revert",
    "streaming.coordinator_failover_during_streaming",
    "streaming.pending_node_crash",
    "barrier.blocks_until_drained",
    "raft.leader_crash_mid_migration",
    "topology.swarm",
];

fn defs() -> Vec<ScenarioDef> {
    let all = catalog::all();
    IDS.iter()
        .map(|id| {
            all.iter()
                .find(|d| d.id == *id)
                .unwrap_or_else(|| panic!("{id} not in the catalog"))
                .clone()
        })
        .collect()
}

#[test]
fn unmutated_topology_scenarios_pass_30_seeds() {
    let defs = defs();
    let s = explore(&defs, 0..30, &[], &[], 2, None, |_, _| {}).unwrap();
    let failures: Vec<String> = s
        .failures
        .iter()
        .map(|f| format!("{} seed {}: {}", f.scenario, f.seed, f.message))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(s.runs, 30 * IDS.len() as u64);
}

#[test]
fn every_topology_mutant_is_caught_within_50_seeds() {
    let results = hunt_mutants(&defs(), 50, 2);
    let mutants: std::collections::BTreeSet<String> =
        results.iter().map(|r| r.mutant.clone()).collect();
    for m in [
        "no-fencing",
        "barrier-skips-drain",
        "stream-ignores-closed-session",
        "coordinator-ignores-term",
    ] {
        assert!(mutants.contains(m), "no scenario declares {m}");
    }
    for r in results {
        assert!(
            r.caught_at_seed.is_some(),
            "{} not caught by {}",
            r.mutant,
            r.scenario
        );
        assert_eq!(r.verdict, Some(Verdict::Safety), "{r:?}");
    }
}

#[test]
fn same_seed_same_digest() {
    for def in defs() {
        let cfg = resolve(&def, 5, &[], &[]).unwrap();
        let (a, _) = run(&def, &cfg);
        let (b, _) = run(&def, &cfg);
        assert_eq!(a.digest, b.digest, "{} is nondeterministic", def.id);
        assert_eq!(a.verdict, Verdict::Pass, "{}: {:?}", def.id, a.violations);
    }
}
