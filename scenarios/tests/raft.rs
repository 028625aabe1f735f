//! group0 Raft scenarios: the unmutated model passes a fixed seed range, the planted
//! commit-without-majority bug is caught as a safety violation within 50 seeds, the scripted
//! leader-crash story hits its coverage marks, and a seed replays to the same digest.

use scenarios::runner::{find, resolve, run};
use scenarios::Verdict;

fn run_seed(id: &str, seed: u64, mutants: &[&str]) -> scenarios::RunReport {
    let def = find(id).expect("scenario exists");
    let mutants: Vec<String> = mutants.iter().map(|m| m.to_string()).collect();
    let cfg = resolve(&def, seed, &mutants, &[]).expect("config resolves");
    run(&def, &cfg).0
}

fn describe(r: &scenarios::RunReport) -> String {
    format!(
        "{} seed {}: {} {:?} pending={:?} panic={:?}",
        r.scenario,
        r.seed,
        r.verdict,
        r.first_violation().map(|v| &v.message),
        r.pending,
        r.panic
    )
}

#[test]
fn swarm_passes_50_seeds_unmutated() {
    let failures: Vec<String> = (0..50)
        .map(|seed| run_seed("raft.swarm", seed, &[]))
        .filter(|r| r.verdict != Verdict::Pass)
        .map(|r| describe(&r))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn swarm_catches_commit_without_majority_within_50_seeds() {
    let first = (0..50)
        .map(|seed| run_seed("raft.swarm", seed, &["raft-commit-without-majority"]))
        .find(|r| r.verdict != Verdict::Pass)
        .expect("the mutant must be caught within 50 seeds");
    assert_eq!(first.verdict, Verdict::Safety, "{}", describe(&first));
    let v = first.first_violation().expect("a violation");
    assert!(v.checker.starts_with("raft_"), "{}", describe(&first));
}

#[test]
fn leader_crash_elects_new_leader_hits_its_marks() {
    for seed in 0..10 {
        let r = run_seed("raft.leader_crash_elects_new_leader", seed, &[]);
        assert_eq!(r.verdict, Verdict::Pass, "{}", describe(&r));
        assert!(
            r.missing_marks.is_empty(),
            "seed {seed}: {:?}",
            r.missing_marks
        );
    }
}

#[test]
fn same_seed_same_digest() {
    for id in ["raft.swarm", "raft.leader_crash_elects_new_leader"] {
        let a = run_seed(id, 7, &[]);
        let b = run_seed(id, 7, &[]);
        assert_eq!(a.digest, b.digest, "{id}");
        assert_eq!(a.final_state_digest, b.final_state_digest, "{id}");
        assert_eq!(a.events, b.events, "{id}");
    }
}

#[test]
fn groups_swarm_passes_20_seeds_and_its_groups_elect_independently() {
    let reports: Vec<_> = (0..20)
        .map(|seed| run_seed("raft.groups_swarm", seed, &[]))
        .collect();
    let failures: Vec<String> = reports
        .iter()
        .filter(|r| r.verdict != Verdict::Pass)
        .map(describe)
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
    let apart = reports
        .iter()
        .filter(|r| r.missing_marks.is_empty())
        .count();
    assert!(
        apart >= 10,
        "groups led by different nodes in only {apart} of 20 seeds"
    );
}

#[test]
fn groups_swarm_catches_commit_without_majority_within_50_seeds() {
    let first = (0..50)
        .map(|seed| run_seed("raft.groups_swarm", seed, &["raft-commit-without-majority"]))
        .find(|r| r.verdict != Verdict::Pass)
        .expect("the mutant must be caught within 50 seeds");
    assert_eq!(first.verdict, Verdict::Safety, "{}", describe(&first));
}
