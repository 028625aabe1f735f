//! The batchlog area: storage-model unit tests in the shape of the boost test (SPEC §5.13),
//! every scenario passing a fixed seed range unmutated (under both layouts), each mutant caught
//! within 50 seeds, determinism, and the v1/v2 comparison.

use model::batchlog::replay::{self, PassParams, ReplayMutants, SendOutcome};
use model::batchlog::table::{Mutation, Table, TableConfig};
use model::batchlog::types::*;
use scenarios::catalog::batchlog_compare::{compare, render};
use scenarios::runner::{find, resolve, run};
use scenarios::Verdict;
use std::rc::Rc;

fn run_seed(id: &str, seed: u64, mutants: &[&str], sets: &[(&str, &str)]) -> scenarios::RunReport {
    let def = find(id).expect("scenario");
    let mutants: Vec<String> = mutants.iter().map(|m| m.to_string()).collect();
    let sets: Vec<(String, String)> = sets.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let cfg = resolve(&def, seed, &mutants, &sets).expect("resolve");
    run(&def, &cfg).0
}

fn assert_passes(id: &str, seeds: std::ops::Range<u64>, sets: &[(&str, &str)]) {
    for seed in seeds {
        let r = run_seed(id, seed, &[], sets);
        assert_eq!(
            r.verdict,
            Verdict::Pass,
            "{id} seed {seed} {sets:?}: {:?} missing marks {:?} panic {:?}",
            r.violations,
            r.missing_marks,
            r.panic
        );
    }
}

fn caught_within(id: &str, mutant: &str, seeds: u64) -> u64 {
    for seed in 0..seeds {
        let r = run_seed(id, seed, &[mutant], &[]);
        if r.verdict == Verdict::Safety {
            return seed;
        }
    }
    panic!("{mutant} not caught by {id} within {seeds} seeds");
}

#[test]
fn explore_one() {
    let id = std::env::var("BL_ID").unwrap_or_else(|_| "batchlog.swarm".into());
    let seeds: u64 = std::env::var("BL_SEEDS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let layout = std::env::var("BL_LAYOUT").unwrap_or_else(|_| "v2".into());
    let mutant = std::env::var("BL_MUTANT").ok();
    for seed in 0..seeds {
        let m: Vec<&str> = mutant.iter().map(|s| s.as_str()).collect();
        let r = run_seed(&id, seed, &m, &[("batchlog.layout", &layout)]);
        eprintln!(
            "{id} {layout} seed {seed}: {:?} {:?} missing {:?} panic {:?} metrics {:?}",
            r.verdict, r.violations.first(), r.missing_marks, r.panic, r.metrics.get("replay_dead_scanned_max")
        );
    }
}
