//! The harness scenarios: clean runs pass, each harness mutant is caught quickly, runs are
//! deterministic, and a saved bundle replays to the same verdict and digest.

use scenarios::bundle::Bundle;
use scenarios::explore::{explore, hunt_mutants};
use scenarios::runner::{find, resolve, run};
use scenarios::{catalog, Tier, Verdict};

fn harness_defs() -> Vec<scenarios::ScenarioDef> {
    catalog::all()
        .into_iter()
        .filter(|d| d.tier == Tier::Harness)
        .collect()
}

#[test]
fn unmutated_harness_passes_100_seeds_of_every_scenario() {
    let defs = harness_defs();
    assert_eq!(defs.len(), 6);
    let s = explore(&defs, 0..100, &[], &[], 2, None, |_, _| {}).unwrap();
    let failures: Vec<String> = s
        .failures
        .iter()
        .map(|f| format!("{} seed {}: {}", f.scenario, f.seed, f.message))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(s.runs, 600);
}

#[test]
fn every_harness_mutant_is_caught_within_50_seeds() {
    let results = hunt_mutants(&harness_defs(), 50, 2);
    assert_eq!(results.len(), 6);
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
fn same_seed_same_digest_and_different_seeds_differ() {
    for def in harness_defs() {
        let cfg = resolve(&def, 7, &[], &[]).unwrap();
        let (a, _) = run(&def, &cfg);
        let (b, _) = run(&def, &cfg);
        assert_eq!(a.digest, b.digest, "{} is nondeterministic", def.id);
        let cfg8 = resolve(&def, 8, &[], &[]).unwrap();
        let (c, _) = run(&def, &cfg8);
        assert_ne!(
            a.digest, c.digest,
            "{}: seeds 7 and 8 gave one digest",
            def.id
        );
    }
}

#[test]
fn a_saved_bundle_replays_to_the_same_verdict_and_digest() {
    let def = find("harness.crash_loses_unsynced").unwrap();
    let mutants = vec!["harness-crash-keeps-unsynced".to_string()];
    let cfg = resolve(&def, 3, &mutants, &[]).unwrap();
    let (report, _) = run(&def, &cfg);
    assert_eq!(report.verdict, Verdict::Safety);
    let dir = std::env::temp_dir().join(format!("clustersim-bundle-{}", std::process::id()));
    let path = Bundle::from_report(&cfg, &report).write(&dir).unwrap();
    let loaded = Bundle::load(&path).unwrap();
    assert_eq!(loaded.config, cfg);
    let (again, _) = run(&def, &loaded.config);
    assert_eq!(again.verdict, loaded.verdict);
    assert_eq!(again.digest, loaded.digest);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn shrinking_keeps_the_failure_and_drops_faults() {
    let def = find("harness.crash_loses_unsynced").unwrap();
    let mutants = vec!["harness-crash-keeps-unsynced".to_string()];
    let cfg = (0..20)
        .map(|seed| resolve(&def, seed, &mutants, &[]).unwrap())
        .find(|c| c.faults.faults.len() >= 2)
        .expect("a seed with several crashes");
    let (small, _) = fault_injection::shrink::shrink(&cfg.faults, 100, |s| {
        let mut c = cfg.clone();
        c.faults = s.clone();
        run(&def, &c).0.verdict == Verdict::Safety
    });
    assert_eq!(small.faults.len(), 1, "{small:?}");
}
