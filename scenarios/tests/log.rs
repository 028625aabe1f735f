//! Logging through the CLI: `--log`, `--log-file`, `RUST_LOG`. The same seed gives
//! byte-identical log output, the history digest is the same with logging on and off, every
//! line carries simulated time and node, and logging is off unless asked for.

use std::path::PathBuf;
use std::process::{Command, Output};

const STORY: &str = "streaming.fenced_after_kill_connection";

fn clustersim(args: &[&str], rust_log: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_clustersim"));
    cmd.args(args).current_dir(std::env::temp_dir());
    match rust_log {
        Some(v) => cmd.env("RUST_LOG", v),
        None => cmd.env_remove("RUST_LOG"),
    };
    cmd.output().expect("run clustersim")
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("clustersim-log-{}-{name}", std::process::id()))
}

fn digest(out: &Output) -> String {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json on stdout");
    v["digest"].as_str().expect("digest").to_string()
}

/// Time (`   1.234567s`), level, node (`n2` or `-`), target.
fn assert_line_shape(line: &str) {
    let (time, rest) = line.split_at(12);
    let t = time.trim_start();
    assert!(
        t.ends_with('s') && t[..t.len() - 1].parse::<f64>().is_ok(),
        "simulated time first: {line}"
    );
    let mut words = rest.split_whitespace();
    let level = words.next().unwrap_or_default();
    assert!(
        ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"].contains(&level),
        "{line}"
    );
    let node = words.next().unwrap_or_default();
    assert!(
        node == "-" || (node.starts_with('n') && node[1..].parse::<u32>().is_ok()),
        "node third: {line}"
    );
    assert!(!line.contains('\u{1b}'), "no colours: {line}");
}

#[test]
fn same_seed_gives_the_same_log_bytes() {
    let (a, b) = (temp("a.log"), temp("b.log"));
    for f in [&a, &b] {
        let out = clustersim(
            &[
                "run",
                STORY,
                "--seed",
                "1",
                "--log",
                "debug",
                "--log-file",
                f.to_str().unwrap(),
            ],
            None,
        );
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        assert!(out.stderr.is_empty(), "the log goes to the file only");
    }
    let (la, lb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert!(la.len() > 10_000, "a real log: {} bytes", la.len());
    assert!(la == lb, "same seed, different log bytes");
    let text = String::from_utf8(la).unwrap();
    for line in text.lines() {
        assert_line_shape(line);
    }
    // The story, in the model's own words and on the right nodes.
    let has = |node: &str, needle: &str| {
        text.lines()
            .any(|l| l.contains(&format!(" {node} ")) && l.contains(needle))
    };
    assert!(has(
        "n1",
        "stage write_both_read_old -> streaming committed"
    ));
    assert!(has("-", "connection n1 -> n2 killed"));
    assert!(has("n1", "failed (connection closed)"));
    // s1 is the topology session of B's join (SPEC §3 step 4); the migration's session is s2.
    assert!(has("n2", "session s1 opened"));
    assert!(
        text.lines()
            .filter(|l| l.contains("streaming table100/t0 to pending replica n2:0 under session s2"))
            .count()
            >= 2,
        "streaming retried under the same session"
    );
    assert!(has("n2", "session s2 closing"));
    assert!(has("n2", "refused stream of table100/t0"));
    assert!(has("n2", "session s2 drained"));
    assert!(has("n1", "rpc #"), "RPCs at debug");
    assert!(has("n2", "topology guard taken on session s2"));
    assert!(!text.contains("TRACE"), "--log debug leaves trace out");
    let _ = std::fs::remove_file(a);
    let _ = std::fs::remove_file(b);
}

#[test]
fn digest_is_the_same_with_logging_on_and_off() {
    for (scenario, seed) in [(STORY, "1"), ("harness.partition_heals", "3")] {
        let off = clustersim(&["run", scenario, "--seed", seed, "--json"], None);
        let log = temp(&format!("{scenario}.log"));
        let on = clustersim(
            &[
                "run",
                scenario,
                "--seed",
                seed,
                "--json",
                "--log",
                "trace",
                "--log-file",
                log.to_str().unwrap(),
            ],
            None,
        );
        assert!(std::fs::metadata(&log).unwrap().len() > 0);
        assert_eq!(digest(&off), digest(&on), "{scenario} seed {seed}");
        let _ = std::fs::remove_file(log);
    }
}

#[test]
fn rust_log_prints_to_stderr_and_stdout_stays_clean() {
    let out = clustersim(&["run", STORY, "--seed", "1", "--json"], Some("info"));
    assert_eq!(out.status.code(), Some(0));
    let plain = clustersim(&["run", STORY, "--seed", "1", "--json"], None);
    assert_eq!(out.stdout, plain.stdout, "logs never reach stdout");
    let err = String::from_utf8(out.stderr).unwrap();
    let ours: Vec<&str> = err.lines().filter(|l| l.contains("model::")).collect();
    assert!(ours.len() > 20, "{err}");
    for l in &ours {
        assert_line_shape(l);
    }
    assert!(!err.contains("DEBUG"), "RUST_LOG=info");
    assert!(plain.stderr.is_empty(), "off by default");
}

#[test]
fn bad_log_spec_exits_2_with_one_line() {
    let out = clustersim(&["run", STORY, "--seed", "1", "--log", "model=="], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bad --log"), "{err}");
}

#[test]
fn replay_with_log_reads_the_failure_and_keeps_the_digest() {
    let dir = temp("failures");
    let out = clustersim(
        &[
            "run",
            "harness.partition_heals",
            "--seed",
            "2",
            "--mutant",
            "harness-partition-leaks",
            "--json",
            "--out",
            dir.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bundle = v["bundle"].as_str().unwrap().to_string();
    let replay = clustersim(&["replay", &bundle, "--json", "--log", "debug"], None);
    assert_eq!(replay.status.code(), Some(1), "still fails the same way");
    let r: serde_json::Value = serde_json::from_slice(&replay.stdout).unwrap();
    assert_eq!(r["digest_matches"], true, "logging does not change the run");
    let err = String::from_utf8(replay.stderr).unwrap();
    assert!(
        err.lines()
            .any(|l| l.contains("applied (schedule #") && l.contains("partition")),
        "{err}"
    );
    assert!(err.contains("sim::net"), "RPCs at debug: {err}");
    std::fs::remove_dir_all(dir).unwrap();
}
