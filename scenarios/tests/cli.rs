//! The CLI's contract: bad input gets one clear line on stderr and exit code 2, never a panic;
//! JSON outputs carry the documented fields; failures print a repro line.

use std::process::{Command, Output};

fn clustersim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_remove("RUST_LOG")
        .output()
        .expect("run clustersim")
}

fn assert_usage_error(args: &[&str], needle: &str) {
    let out = clustersim(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "{args:?}: one line, got {stderr}"
    );
    assert!(stderr.contains(needle), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
}

fn temp_file(name: &str, content: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("clustersim-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, content).unwrap();
    p
}

#[test]
fn bad_input_exits_2_with_one_line() {
    assert_usage_error(
        &["run", "no.such.scenario", "--seed", "1"],
        "unknown scenario",
    );
    assert_usage_error(
        &["run", "harness.partition_heals", "--seed", "x"],
        "invalid value",
    );
    assert_usage_error(
        &["explore", "harness.partition_heals", "--seeds", "9..3"],
        "empty seed range",
    );
    assert_usage_error(
        &["explore", "harness.partition_heals", "--seeds", "a..b"],
        "malformed seed range",
    );
    assert_usage_error(&["explore"], "at least one scenario");
    assert_usage_error(
        &[
            "run",
            "harness.partition_heals",
            "--seed",
            "1",
            "--set",
            "phases.nope=3",
        ],
        "unknown key",
    );
    assert_usage_error(
        &[
            "run",
            "harness.partition_heals",
            "--seed",
            "1",
            "--set",
            "phases.chaos_ms=soon",
        ],
        "phases.chaos_ms",
    );
    assert_usage_error(
        &[
            "run",
            "harness.partition_heals",
            "--seed",
            "1",
            "--set",
            "novalue",
        ],
        "KEY=VALUE",
    );
    assert_usage_error(
        &[
            "run",
            "harness.partition_heals",
            "--seed",
            "1",
            "--mutant",
            "nope",
        ],
        "unknown mutant",
    );
    assert_usage_error(
        &["replay", "/definitely/not/here.json"],
        "cannot read bundle",
    );
    assert_usage_error(&["frobnicate"], "unrecognized subcommand");
    let corrupt = temp_file("corrupt.json", "{ this is not json");
    assert_usage_error(&["replay", corrupt.to_str().unwrap()], "corrupt");
    let truncated = temp_file(
        "truncated.json",
        "{\"format_version\": 1, \"tool_version\": \"0.1.0\",",
    );
    assert_usage_error(&["replay", truncated.to_str().unwrap()], "truncated");
    assert_usage_error(&["shrink", truncated.to_str().unwrap()], "truncated");
    let wrong = temp_file("wrong.json", "[1, 2, 3]");
    assert_usage_error(&["replay", wrong.to_str().unwrap()], "corrupt");
}

#[test]
fn list_json_has_the_documented_fields() {
    let out = clustersim(&["list", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let arr = v.as_array().unwrap();
    assert!(arr.len() >= 5);
    for s in arr {
        for field in ["id", "tier", "description", "mutants"] {
            assert!(s.get(field).is_some(), "missing {field} in {s}");
        }
    }
    assert!(arr.iter().any(|s| s["id"] == "harness.partition_heals"));
}

#[test]
fn run_json_reports_verdict_digest_and_metrics() {
    let out = clustersim(&[
        "run",
        "harness.stalled_verb_released",
        "--seed",
        "4",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "scenario",
        "seed",
        "verdict",
        "digest",
        "events",
        "sim_time_ns",
        "metrics",
    ] {
        assert!(v.get(field).is_some(), "missing {field}");
    }
    assert_eq!(v["verdict"], "pass");
    let again = clustersim(&[
        "run",
        "harness.stalled_verb_released",
        "--seed",
        "4",
        "--json",
    ]);
    let w: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(v["digest"], w["digest"]);
}

#[test]
fn failing_run_writes_a_bundle_that_replays() {
    let dir = std::env::temp_dir().join(format!("clustersim-cli-fail-{}", std::process::id()));
    let out = clustersim(&[
        "run",
        "harness.partition_heals",
        "--seed",
        "2",
        "--mutant",
        "harness-partition-leaks",
        "--json",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["verdict"], "safety");
    assert!(v["violation"]["message"]
        .as_str()
        .unwrap()
        .contains("crossed the partition"));
    let bundle = v["bundle"].as_str().unwrap().to_string();
    assert!(String::from_utf8_lossy(&out.stderr).contains("clustersim replay"));
    let replay = clustersim(&["replay", &bundle, "--json"]);
    assert_eq!(replay.status.code(), Some(1));
    let r: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(r["verdict_matches"], true);
    assert_eq!(r["digest_matches"], true);
    let explain = clustersim(&[
        "explain",
        "harness.partition_heals",
        "--seed",
        "2",
        "--json",
    ]);
    assert_eq!(explain.status.code(), Some(0));
    let cfg: serde_json::Value = serde_json::from_slice(&explain.stdout).unwrap();
    assert_eq!(
        cfg["faults"],
        serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&bundle).unwrap())
            .unwrap()["config"]["faults"]
    );
    let html = dir.join("t.html");
    let t = clustersim(&["timeline", &bundle, "--out", html.to_str().unwrap()]);
    assert_eq!(t.status.code(), Some(0));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg") && page.contains("crossed the partition"));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn explore_exits_1_on_failure_and_0_when_clean() {
    let dir = std::env::temp_dir().join(format!("clustersim-cli-explore-{}", std::process::id()));
    let d = dir.to_str().unwrap();
    let clean = clustersim(&[
        "explore",
        "harness.injection_blocks_until_message",
        "--seeds",
        "0..5",
        "--jobs",
        "2",
        "--out",
        d,
    ]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&clean.stderr)
    );
    let bad = clustersim(&[
        "explore",
        "harness.injection_blocks_until_message",
        "--seeds",
        "0..3",
        "--mutant",
        "harness-injection-no-wait",
        "--out",
        d,
        "--json",
    ]);
    assert_eq!(bad.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["failures"].as_array().unwrap().len(), 3);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        3,
        "one bundle per failure"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn batchlog_compare_prints_both_layouts() {
    let out = clustersim(&["batchlog-compare", "--batches", "500,2000", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    let dead = |layout: &str, n: u64| {
        rows.iter()
            .find(|r| r["layout"] == layout && r["batches_written"] == n)
            .unwrap()["replay_dead_scanned"]
            .as_u64()
            .unwrap()
    };
    assert!(
        dead("v1", 2000) >= 2000,
        "v1 steps over every deleted batch"
    );
    assert!(dead("v1", 2000) > 3 * dead("v1", 500) / 2);
    assert_usage_error(&["batchlog-compare", "--batches", "0"], "positive");
}
