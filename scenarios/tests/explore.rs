//! Exploration at scale: nothing of a finished run stays alive from one seed to the next.

use scenarios::runner::{find, resolve, run};

#[test]
fn no_world_outlives_its_run_across_many_seeds() {
    // Every protocol swarm plus a scripted story: after each run on this thread no world of any
    // finished run is alive (the count is per thread, so parallel tests do not disturb it).
    for id in [
        "raft.swarm",
        "topology.swarm",
        "batchlog.swarm",
        "harness.partition_heals",
    ] {
        let def = find(id).expect("scenario exists");
        for seed in 0..4 {
            let cfg = resolve(&def, seed, &[], &[]).expect("config resolves");
            let (report, history) = run(&def, &cfg);
            assert!(report.events > 0 && !history.is_empty());
            assert_eq!(
                sim::world::live_worlds(),
                0,
                "the world of {id} seed {seed} outlived its run"
            );
        }
    }
}

use scenarios::explore::{
    self, Coverage, CoverageVerdict, Limits, Shard, SometimesResult, Summary,
};
use std::process::Command;

fn defs(ids: &[&str]) -> Vec<scenarios::ScenarioDef> {
    ids.iter()
        .map(|id| find(id).expect("scenario exists"))
        .collect()
}

#[test]
fn four_shards_merged_equal_one_unsharded_run() {
    let defs = defs(&[
        "harness.partition_heals",
        "harness.crash_loses_unsynced",
        "raft.swarm",
    ]);
    let whole = explore::explore(&defs, 0..10, &[], &[], 2, None, |_, _| {}).expect("explore");
    let mut parts = Vec::new();
    let mut seen = 0;
    for k in 1..=4 {
        let shard = Shard { index: k, count: 4 };
        let part = explore::explore_with(
            &defs,
            0..10,
            shard,
            Limits::default(),
            &[],
            &[],
            1,
            None,
            |_, _| {},
        )
        .expect("explore shard");
        seen += part.runs;
        parts.push(part);
    }
    assert_eq!(seen, 30, "the shards split the 30 pairs without overlap");
    let merged = explore::merge(&parts);
    assert_eq!(merged.shards, 4);
    assert_eq!(merged.deterministic(), whole.deterministic());
    assert!(merged.coverage["raft.swarm"].seeds == 10);
}

#[test]
fn shard_syntax_follows_nextest() {
    assert_eq!(Shard::parse("2/4"), Ok(Shard { index: 2, count: 4 }));
    assert_eq!(Shard::parse("count:1/3"), Ok(Shard { index: 1, count: 3 }));
    for bad in ["0/4", "5/4", "1/0", "x/2", "3", ""] {
        assert!(Shard::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(
        explore::parse_duration("10m"),
        Ok(std::time::Duration::from_secs(600))
    );
    assert!(explore::parse_duration("ten minutes").is_err());
}

fn judged(seeds: u64, hit: u64, min_share: f64) -> Summary {
    let mut c = Coverage {
        seeds,
        unmutated_seeds: seeds,
        ..Coverage::default()
    };
    c.seeds_hit.insert("rare state".into(), hit);
    c.sometimes.push(SometimesResult {
        mark: "rare state".into(),
        min_share,
        seeds_hit: 0,
        share: 0.0,
        verdict: CoverageVerdict::TooFewSeeds,
    });
    let mut s = Summary {
        runs: seeds,
        passed: seeds,
        ..Summary::default()
    };
    s.coverage.insert("x.swarm".into(), c);
    explore::merge(&[s])
}

#[test]
fn a_sometimes_mark_below_its_share_fails_over_200_seeds_only() {
    // 200 seeds, 4 hits = 2% < 5%: a coverage verdict.
    let s = judged(200, 4, 0.05);
    assert_eq!(
        s.coverage["x.swarm"].sometimes[0].verdict,
        CoverageVerdict::Missed
    );
    assert!(!s.passed_all());
    assert!(s.coverage_failures()[0].contains("'rare state' reached in 4/200 seeds"));
    // The same share over 100 seeds is reported but not judged.
    let s = judged(100, 2, 0.05);
    assert_eq!(
        s.coverage["x.swarm"].sometimes[0].verdict,
        CoverageVerdict::TooFewSeeds
    );
    assert!(s.passed_all());
    // Enough hits: fine.
    let s = judged(400, 40, 0.05);
    assert_eq!(
        s.coverage["x.swarm"].sometimes[0].verdict,
        CoverageVerdict::Ok
    );
}

#[test]
fn explore_counts_marks_per_seed_and_names_the_never_hit() {
    let d = defs(&["raft.swarm"]);
    let s = explore::explore(&d, 0..8, &[], &[], 1, None, |_, _| {}).expect("explore");
    let c = &s.coverage["raft.swarm"];
    assert_eq!(c.seeds, 8);
    assert!(c.seeds_hit.values().all(|n| (1..=8).contains(n)));
    // Every declared "sometimes" mark is either hit by some seed or named as never hit.
    for m in &c.sometimes {
        assert_eq!(
            m.seeds_hit == 0,
            c.never_hit.contains(&m.mark),
            "{}",
            m.mark
        );
    }
    let text = explore::render_coverage(&s);
    assert!(text.contains("coverage of raft.swarm over 8 seeds"));
}

#[test]
fn fail_fast_stops_after_the_first_failure() {
    let d = defs(&["raft.swarm"]);
    let mutants = vec!["raft-commit-without-majority".to_string()];
    let limits = Limits {
        fail_fast: true,
        ..Limits::default()
    };
    let s = explore::explore_with(
        &d,
        0..200,
        Shard::ALL,
        limits,
        &mutants,
        &[],
        1,
        None,
        |_, _| {},
    )
    .expect("explore");
    assert!(!s.failures.is_empty());
    assert!(s.runs < 200, "stopped early, ran {}", s.runs);
    assert!(s
        .stopped_early
        .as_deref()
        .unwrap_or("")
        .contains("fail-fast"));
}

#[test]
fn cli_shards_merge_into_the_unsharded_summary() {
    let bin = env!("CARGO_BIN_EXE_clustersim");
    let dir = std::env::temp_dir().join(format!("clustersim-merge-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let explore = |extra: &[&str]| {
        let out = Command::new(bin)
            .args([
                "explore",
                "harness.partition_heals",
                "raft.swarm",
                "--seeds",
                "0..6",
            ])
            .args(["--jobs", "1", "--json", "--out"])
            .arg(dir.join("failures"))
            .args(extra)
            .output()
            .expect("runs");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let mut files = Vec::new();
    for k in 1..=4 {
        let path = dir.join(format!("shard{k}.json"));
        std::fs::write(&path, explore(&["--shard", &format!("{k}/4")])).unwrap();
        files.push(path);
    }
    let whole: Summary = serde_json::from_slice(&explore(&[])).unwrap();
    let out = Command::new(bin)
        .arg("merge")
        .args(&files)
        .arg("--json")
        .output()
        .expect("merge runs");
    assert_eq!(out.status.code(), Some(0));
    let merged: Summary = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(merged.shards, 4);
    assert_eq!(merged.deterministic(), whole.deterministic());
    // Bad input: one line, exit 2.
    let bad = Command::new(bin)
        .args(["explore", "raft.swarm", "--shard", "5/4"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let bad = Command::new(bin)
        .arg("merge")
        .arg(dir.join("missing.json"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A mutant is caught only by a seed that fails under it and passes without it: a seed that
/// fails unmutated (here every seed of finding F1's scripted story) proves nothing about the
/// mutant, so the hunt lists it and goes on. (The mutant switches off the partition mechanism
/// of the harness, which this story never uses: its runs fail exactly as unmutated ones.)
#[test]
fn a_seed_failing_without_the_mutant_is_not_a_catch() {
    let f1 = find("batchlog.finding_f1_inflight_store_shadowed").expect("scenario");
    let def = scenarios::scenario::ScenarioDef {
        mutants: &["harness-partition-leaks"],
        ..f1
    };
    let results = explore::hunt_mutants(&[def], 2, 1);
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r.caught_at_seed, None, "{r:?}");
    assert_eq!(r.seeds_failing_unmutated, vec![0, 1], "{r:?}");
    // And a real catch records no such seed.
    let swarm = find("topology.swarm").expect("scenario");
    let def = scenarios::scenario::ScenarioDef {
        mutants: &["no-fencing"],
        ..swarm
    };
    let r = &explore::hunt_mutants(&[def], 50, 1)[0];
    assert!(r.caught_at_seed.is_some(), "{r:?}");
    assert!(r.seeds_failing_unmutated.is_empty(), "{r:?}");
}

/// A schedule given with `--set faults=…` is the run's schedule, even an empty one: only a
/// config with no schedule from anywhere gets one drawn from the fault model.
#[test]
fn an_empty_schedule_set_on_the_command_line_means_no_faults() {
    let def = find("topology.swarm").expect("scenario");
    let drawn = resolve(&def, 3, &[], &[]).expect("resolves");
    assert!(!drawn.faults.is_empty(), "topology.swarm draws faults");
    let none = resolve(
        &def,
        3,
        &[],
        &[("faults".to_string(), r#"{"faults":[]}"#.to_string())],
    )
    .expect("resolves");
    assert!(none.faults.is_empty(), "{:?}", none.faults);
    let (report, _) = run(&def, &none);
    assert!(
        report
            .fault_timeline
            .iter()
            .all(|t| !t.contains("(schedule #")),
        "{:?}",
        report.fault_timeline
    );
}
