//! View building (SPEC §6): every `view.*` scenario passes a few unmutated seeds, each vb
//! mutant is caught within 50 seeds by the checker it is planted for, and the end-to-end view
//! contents check fails on a run whose view updates were lost.

use scenarios::runner::{find, resolve, run};
use scenarios::{RunReport, Verdict};

fn run_seed(id: &str, seed: u64, mutants: &[&str]) -> RunReport {
    let def = find(id).expect("scenario");
    let mutants: Vec<String> = mutants.iter().map(|m| m.to_string()).collect();
    let cfg = resolve(&def, seed, &mutants, &[]).expect("resolve");
    run(&def, &cfg).0
}

fn assert_passes(id: &str, seeds: std::ops::Range<u64>) {
    for seed in seeds {
        let r = run_seed(id, seed, &[]);
        assert_eq!(
            r.verdict,
            Verdict::Pass,
            "{id} seed {seed}: {:?} missing marks {:?} panic {:?}",
            r.violations,
            r.missing_marks,
            r.panic
        );
    }
}

/// The first seed below `seeds` on which `mutant` makes `id` fail with a violation of
/// `checker`.
fn caught_by(id: &str, mutant: &str, checker: &str, seeds: u64) -> u64 {
    for seed in 0..seeds {
        let r = run_seed(id, seed, &[mutant]);
        if r.verdict == Verdict::Safety && r.violations.iter().any(|v| v.checker == checker) {
            return seed;
        }
    }
    panic!("{mutant} not caught by {checker} in {id} within {seeds} seeds");
}

#[test]
fn scripted_view_scenarios_pass() {
    for id in [
        "view.build_happy",
        "view.rpc_failure_attaches_to_running_batch",
        "view.leader_change_mid_build",
        "view.migration_during_build",
        "view.streaming_fails_then_revert",
        "view.staging_not_processed_early",
        "view.drop_view_mid_build",
    ] {
        assert_passes(id, 0..3);
    }
}

#[test]
fn view_swarm_passes() {
    assert_passes("view.swarm", 0..4);
}

/// Seeds that failed before two fixes (regressions; a model change may move what they
/// exercise, the checks below then still say what they were about):
/// - 1965 and 2222: CREATE VIEW proposed on a leader that crashed; the entry committed under
///   the next leader, and the client's retry was told the view exists — now counted as done,
///   since the state is what the statement makes (`view::api::schema_change`);
/// - 2484: the run ended 2.9 s into a 3 s barrier that was still waiting for a node that had
///   been down; the liveness checker now gives a barrier its timeout before calling it stuck;
/// - 3476: the CREATE VIEW client kept n1's group0 handle across n1's crash and proposed through
///   it after the restart; the dead incarnation stored a term-1 entry into the commitlog, and
///   n1's next recovery replayed it over the entry committed at that index (`raft_log_agreement`:
///   a committed entry changed). A dead incarnation now neither proposes nor writes;
/// - 7643: a work RPC sent before its task completed waited in the worker's read barrier and
///   then ran the task again, as upstream's worker does (it checks `completed_tasks` only before
///   the barrier); `vb_completion_idempotent` blamed the last RPC carrying the task and called it
///   a re-run after completion. It now asks whether the RPC that started the batch was sent
///   after the completion (mutant `vb-forgets-completed` proves that part still bites).
#[test]
fn view_swarm_seeds_of_four_model_and_checker_fixes_pass() {
    for seed in [1965, 2222, 2484, 3476, 7643] {
        let r = run_seed("view.swarm", seed, &[]);
        assert_eq!(r.verdict, Verdict::Pass, "seed {seed}: {:?}", r.violations);
    }
}

/// Seed 6286 (a model bug, regression): a `process_staging` task of n3:0 ran with an empty
/// staging list (its rows were cleaned with the reverted migration) and its batch ended; the
/// next migration staged 48 rows on n3:0 again, and the registrator took the finished task for
/// an unstarted one, because the model's "started" looked only at the running batch. Upstream
/// `_started_staging_tasks` keeps a task until it leaves group0 state, so a new task is created;
/// without it the rows stayed staged forever (`converge`: "48 staged row(s) not processed").
/// Since the Raft ticks became lazy (schedules moved), the seed no longer reaches that window:
/// with the fix reverted, view.swarm seeds 0..8000 all pass or hit only the registered F2. It
/// stays as a pass check; a scripted story of the window would restore the regression.
#[test]
fn view_swarm_seed_of_the_started_staging_task_fix_passes() {
    let r = run_seed("view.swarm", 6286, &[]);
    assert_eq!(r.verdict, Verdict::Pass, "seed 6286: {:?}", r.violations);
}

#[test]
fn vb_mutants_caught_within_50_seeds() {
    for (id, mutant, checker) in [
        (
            "view.migration_during_build",
            "vb-no-abort-on-migration",
            "vb_no_start_in_transition",
        ),
        (
            "view.staging_not_processed_early",
            "vb-staging-processed-early",
            "vb_staging_after_transition",
        ),
        (
            "view.leader_change_mid_build",
            "vb-rpc-ignores-term",
            "vb_stale_term_rejected",
        ),
        (
            "view.rpc_failure_attaches_to_running_batch",
            "vb-retry-starts-new-batch",
            "vb_completion_idempotent",
        ),
        (
            "view.staging_not_processed_early",
            "vb-success-before-staging-done",
            "vb_success_only_when_built",
        ),
        (
            "view.streaming_fails_then_revert",
            "vb-no-rollback-on-revert",
            "vb_conservation",
        ),
        (
            "view.build_happy",
            "vb-two-batches-per-shard",
            "vb_one_batch_per_shard",
        ),
    ] {
        let seed = caught_by(id, mutant, checker, 50);
        eprintln!("{mutant}: caught by {checker} in {id} at seed {seed}");
    }
}

/// The end-to-end check bites: with every view update of base writes lost, the views miss
/// rows their bases hold.
#[test]
fn lost_view_updates_fail_the_view_contents_check() {
    let seed = caught_by(
        "view.build_happy",
        "vb-view-updates-lost",
        "view_contents",
        50,
    );
    eprintln!("vb-view-updates-lost: caught by view_contents at seed {seed}");
    // A reverted migration without rollback also leaves the view without the tablet's rows.
    caught_by(
        "view.streaming_fails_then_revert",
        "vb-no-rollback-on-revert",
        "view_contents",
        50,
    );
}

#[test]
fn same_seed_same_digest() {
    let a = run_seed("view.migration_during_build", 5, &[]);
    let b = run_seed("view.migration_during_build", 5, &[]);
    assert_eq!(a.digest, b.digest);
}

/// Finding F2's scripted scenario: under upstream's pairing the acknowledged write's view row
/// is missing (`view_contents`) on every seed and the run is classified as F2; under the fix
/// switch it passes.
#[test]
fn finding_f2_loses_a_view_row_upstream_and_not_under_the_fix() {
    let id = "view.finding_f2_stale_pending_replica";
    let def = find(id).expect("scenario");
    let fix = [(
        "topology.view_pairing_any_write_replica".to_string(),
        "true".to_string(),
    )];
    for seed in 0..3 {
        let cfg = resolve(&def, seed, &[], &[]).expect("resolve");
        let r = run(&def, &cfg).0;
        assert_eq!(
            r.verdict,
            Verdict::Safety,
            "seed {seed}: {:?}",
            r.violations
        );
        assert!(
            r.violations.iter().all(|v| v.checker == "view_contents"),
            "seed {seed}: {:?}",
            r.violations
        );
        let f = scenarios::findings::classify(&cfg, &r).expect("matches a finding");
        assert_eq!((f.id, f.scenario), ("F2", id));
        let fcfg = resolve(&def, seed, &[], &fix).expect("resolve");
        let fixed = run(&def, &fcfg).0;
        assert_eq!(
            fixed.verdict,
            Verdict::Pass,
            "seed {seed} under the fix: {:?} {:?}",
            fixed.violations,
            fixed.missing_marks
        );
        assert!(scenarios::findings::classify(&fcfg, &r).is_none());
    }
}

/// Seeds `view.swarm` gets to catch each of its mutants. Measured (`clustersim mutants
/// view.swarm --seeds 200`): every one is caught at seed 0 except
/// `vb-success-before-staging-done` (seed 1); the bound leaves room for a change of the run's
/// schedule without a costly search (the hunt stops at the first catch).
const SWARM_SEEDS: u64 = 5;

/// Issue 11 item 5: `view.swarm` alone, without a scripted story, catches every mutant it
/// declares — among them the four only the scripted stories caught before its
/// state-triggered episodes (`vb-rpc-ignores-term`, `vb-no-rollback-on-revert`,
/// `vb-staging-processed-early`, `vb-success-before-staging-done`) — each by the checker it is
/// planted for, within [`SWARM_SEEDS`] seeds.
#[test]
fn the_swarm_alone_catches_the_scripted_stories_mutants() {
    let swarm = find("view.swarm").expect("swarm");
    let planted = [
        ("vb-rpc-ignores-term", "vb_stale_term_rejected"),
        ("vb-no-rollback-on-revert", "vb_conservation"),
        ("vb-staging-processed-early", "vb_staging_after_transition"),
        (
            "vb-success-before-staging-done",
            "vb_success_only_when_built",
        ),
        ("vb-no-abort-on-migration", "vb_no_start_in_transition"),
        ("vb-retry-starts-new-batch", "vb_completion_idempotent"),
        ("vb-forgets-completed", "vb_completion_idempotent"),
        ("vb-two-batches-per-shard", "vb_one_batch_per_shard"),
        ("vb-view-updates-lost", "view_contents"),
    ];
    let mut declared: Vec<&str> = swarm.mutants.to_vec();
    let mut hunted: Vec<&str> = planted.iter().map(|(m, _)| *m).collect();
    declared.sort();
    hunted.sort();
    assert_eq!(declared, hunted, "every declared mutant is hunted here");
    for (mutant, checker) in planted {
        let seed = caught_by(swarm.id, mutant, checker, SWARM_SEEDS);
        eprintln!("{mutant}: caught by {checker} in view.swarm at seed {seed}");
    }
}
