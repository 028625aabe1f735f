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
fn impossible_configs_are_rejected_before_any_run() {
    for (set, needle) in [
        (
            "batchlog.rf=10",
            "batchlog.rf is 10 but the cluster has 5 nodes",
        ),
        ("batchlog.rf=0", "batchlog.rf must be at least 1"),
        ("nodes=0", "nodes must be at least 1"),
        ("shards=0", "shards must be at least 1"),
        ("phases.converge_budget_ms=0", "converge_budget_ms"),
        (
            r#"faults={"faults":[{"at_ms":5,"fault":{"type":"crash","node":99}}]}"#,
            "node n99 does not exist",
        ),
        (
            r#"faults={"faults":[{"at_ms":5,"fault":{"type":"kill_connection","from":1,"to":7}}]}"#,
            "node n7 does not exist",
        ),
    ] {
        assert_usage_error(
            &["run", "batchlog.swarm", "--seed", "1", "--set", set],
            needle,
        );
    }
    for (scenario, set, needle) in [
        (
            "migration.happy_path",
            "topology.tablets=0",
            "topology.tablets must be at least 1",
        ),
        (
            "migration.happy_path",
            "topology.initial_holders=9",
            "initial_holders is 9",
        ),
        ("raft.swarm", "raft.group.heartbeat_ms=0", "heartbeat_ms"),
        // A value of the wrong type in a protocol section is caught when the config resolves,
        // not by a panic when the run first reads its section.
        (
            "batchlog.swarm",
            "batchlog.replay_cl=sometimes",
            "section batchlog: unknown variant `sometimes`",
        ),
        (
            "batchlog.swarm",
            "batchlog.layout=v3",
            "section batchlog: unknown variant `v3`",
        ),
    ] {
        assert_usage_error(&["run", scenario, "--seed", "1", "--set", set], needle);
        assert_usage_error(&["explain", scenario, "--seed", "1", "--set", set], needle);
        assert_usage_error(
            &["explore", scenario, "--seeds", "0..3", "--set", set],
            needle,
        );
    }
    // The cluster shape given twice, with two values that disagree.
    assert_usage_error(
        &[
            "run",
            "migration.happy_path",
            "--seed",
            "1",
            "--set",
            "nodes=4",
            "--set",
            "topology.nodes=3",
        ],
        "topology.nodes is 3 but nodes is 4",
    );
}

/// `--set nodes=N` (or `shards=N`) alone reshapes the cluster: the sections that restate the
/// shape follow it, so one override is enough.
#[test]
fn setting_the_cluster_shape_once_carries_over_to_its_sections() {
    let out = clustersim(&[
        "explain",
        "migration.happy_path",
        "--seed",
        "1",
        "--set",
        "nodes=4",
        "--set",
        "shards=3",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let json = &text[text.find("resolved config:\n").expect("resolved config") + 17..];
    let cfg: serde_json::Value = serde_json::from_str(json).expect("explain prints the config");
    assert_eq!(cfg["nodes"], 4);
    assert_eq!(cfg["params"]["topology"]["nodes"], 4);
    assert_eq!(cfg["params"]["topology"]["shards"], 3);
    let run = clustersim(&[
        "run",
        "migration.happy_path",
        "--seed",
        "1",
        "--set",
        "nodes=4",
    ]);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
}

/// A run that fails (the partition-leak mutant on seed 2), writing its bundle into `dir`.
fn run_failing_into(dir: &std::path::Path) -> std::process::Output {
    clustersim(&[
        "run",
        "harness.partition_heals",
        "--seed",
        "2",
        "--mutant",
        "harness-partition-leaks",
        "--json",
        "--out",
        dir.to_str().unwrap(),
    ])
}

#[test]
fn an_edited_bundle_naming_a_missing_node_is_rejected() {
    let dir = std::env::temp_dir().join(format!("clustersim-cli-edit-{}", std::process::id()));
    let out = run_failing_into(&dir);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = v["bundle"].as_str().unwrap().to_string();
    let mut bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    bundle["config"]["faults"]["faults"] =
        serde_json::json!([{"at_ms": 5, "fault": {"type": "crash", "node": 99}}]);
    let edited = dir.join("edited.json");
    std::fs::write(&edited, bundle.to_string()).unwrap();
    for cmd in ["replay", "shrink", "timeline"] {
        assert_usage_error(&[cmd, edited.to_str().unwrap()], "node n99 does not exist");
    }
    bundle["config"]["mutants"] = serde_json::json!(["no-such-mutant"]);
    bundle["mutants"] = serde_json::json!(["no-such-mutant"]);
    std::fs::write(&edited, bundle.to_string()).unwrap();
    assert_usage_error(&["replay", edited.to_str().unwrap()], "unknown mutant");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn explore_into_an_unwritable_directory_fails_before_the_first_seed() {
    let file = temp_file("not-a-dir", "x");
    let out = file.join("bundles");
    assert_usage_error(
        &[
            "explore",
            "harness.partition_heals",
            "--seeds",
            "0..1000000",
            "--out",
            out.to_str().unwrap(),
        ],
        "--out",
    );
    let junit = file.join("report.xml");
    assert_usage_error(
        &[
            "explore",
            "harness.partition_heals",
            "--seeds",
            "0..1000000",
            "--junit",
            junit.to_str().unwrap(),
        ],
        "--junit",
    );
}

/// Scenario ids and tiers from `list --json`.
fn catalog() -> Vec<(String, String)> {
    let out = clustersim(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["tier"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A parsed JUnit report: per test case, (name, failure message and body if it failed).
#[derive(Debug, Default)]
struct JUnit {
    suites: usize,
    tests_attr: usize,
    failures_attr: usize,
    cases: Vec<(String, Option<(String, String)>)>,
}

/// Parse a JUnit file with a real XML parser, checking the structure CI systems expect:
/// `testsuites > testsuite > (properties, testcase*)`, every testcase named, the suite's
/// counters agreeing with its cases.
fn parse_junit(xml: &str) -> JUnit {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut j = JUnit::default();
    let mut failure: Option<(String, String)> = None;
    let attr = |e: &quick_xml::events::BytesStart, name: &str| -> Option<String> {
        e.attributes()
            .map(|a| a.expect("well-formed attribute"))
            .find(|a| a.key.as_ref() == name.as_bytes())
            .map(|a| a.unescape_value().expect("escaped").into_owned())
    };
    loop {
        match r.read_event().expect("well-formed XML") {
            Event::Start(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                let parent = stack.last().map(String::as_str);
                match name.as_str() {
                    "testsuites" => assert_eq!(parent, None),
                    "testsuite" => {
                        assert_eq!(parent, Some("testsuites"));
                        j.suites += 1;
                        j.tests_attr += attr(&e, "tests").unwrap().parse::<usize>().unwrap();
                        j.failures_attr += attr(&e, "failures").unwrap().parse::<usize>().unwrap();
                    }
                    "properties" => assert_eq!(parent, Some("testsuite")),
                    "testcase" => {
                        assert_eq!(parent, Some("testsuite"));
                        let n = attr(&e, "name").expect("testcase name");
                        assert!(attr(&e, "classname").is_some());
                        assert!(attr(&e, "time").unwrap().parse::<f64>().is_ok());
                        j.cases.push((n, None));
                    }
                    "failure" | "error" => {
                        assert_eq!(parent, Some("testcase"));
                        failure = Some((attr(&e, "message").expect("message"), String::new()));
                    }
                    "system-out" => assert_eq!(parent, Some("testcase")),
                    other => panic!("unexpected element {other}"),
                }
                stack.push(name);
            }
            Event::Empty(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                assert!(name == "property" && stack.last().unwrap() == "properties");
                assert!(attr(&e, "name").is_some() && attr(&e, "value").is_some());
            }
            Event::Text(t) => {
                if let Some((_, body)) = failure.as_mut() {
                    body.push_str(&t.unescape().unwrap());
                }
            }
            Event::End(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                assert_eq!(stack.pop().as_deref(), Some(name.as_str()));
                if name == "failure" || name == "error" {
                    j.cases.last_mut().unwrap().1 = failure.take();
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert!(stack.is_empty(), "unclosed elements {stack:?}");
    assert_eq!(j.suites, 1);
    assert_eq!(j.tests_attr, j.cases.len());
    assert_eq!(
        j.failures_attr,
        j.cases.iter().filter(|c| c.1.is_some()).count()
    );
    j
}

#[test]
fn explore_junit_names_each_scenario_and_the_repro_line() {
    let dir = std::env::temp_dir().join(format!("clustersim-cli-junit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let xml_path = dir.join("report.xml");
    let out = clustersim(&[
        "explore",
        "streaming.fenced_after_kill_connection",
        "harness.partition_heals",
        "--seeds",
        "0..2",
        "--mutant",
        "no-fencing",
        "--out",
        dir.join("bundles").to_str().unwrap(),
        "--junit",
        xml_path.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let j = parse_junit(&std::fs::read_to_string(&xml_path).unwrap());
    assert_eq!(j.cases.len(), 2, "one test case per scenario: {j:?}");
    let (name, failure) = &j.cases[0];
    assert_eq!(name, "harness.partition_heals");
    assert!(failure.is_none(), "no-fencing does not touch the harness");
    let (name, failure) = &j.cases[1];
    assert_eq!(name, "streaming.fenced_after_kill_connection");
    let (message, body) = failure.as_ref().expect("the mutant is caught");
    assert!(message.contains("[fencing]"), "{message}");
    assert!(body.contains("clustersim replay "), "{body}");
    assert!(
        body.contains(
            "clustersim run streaming.fenced_after_kill_connection --seed 0 --mutant no-fencing"
        ),
        "{body}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn explore_selects_by_tier_and_by_glob() {
    let dir = std::env::temp_dir().join(format!("clustersim-cli-select-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = catalog();
    let ran = |args: &[&str]| -> Vec<String> {
        let xml = dir.join("sel.xml");
        let mut all = vec![
            "explore",
            "--seeds",
            "0..1",
            "--junit",
            xml.to_str().unwrap(),
        ];
        all.extend_from_slice(args);
        let out = clustersim(&all);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        parse_junit(&std::fs::read_to_string(&xml).unwrap())
            .cases
            .into_iter()
            .map(|c| c.0)
            .collect()
    };
    let want = |pred: &dyn Fn(&str, &str) -> bool| -> Vec<String> {
        catalog
            .iter()
            .filter(|(id, tier)| pred(id, tier))
            .map(|(id, _)| id.clone())
            .collect()
    };
    assert_eq!(
        ran(&["--tier", "harness"]),
        want(&|_, t| t == "harness"),
        "--tier alone selects the whole tier"
    );
    let streaming = want(&|id, _| id.starts_with("streaming."));
    assert!(streaming.len() >= 3);
    assert_eq!(ran(&["streaming.*"]), streaming);
    assert_eq!(
        ran(&["harness.*", "--tier", "harness", "harness.partition_heals"]),
        want(&|id, _| id.starts_with("harness.")),
        "each scenario once, in catalog order"
    );
    assert_usage_error(&["explore", "nothing.*"], "no scenario matches");
    assert_usage_error(
        &["explore", "harness.*", "--tier", "scripted"],
        "no selected scenario",
    );
    assert_usage_error(&["explore", "--tier", "fast"], "--tier");
    std::fs::remove_dir_all(dir).unwrap();
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

/// The `or:` line a failing `run` prints re-runs the same config: its `--set` overrides are
/// part of it (the line used to drop them and name another run).
#[test]
fn the_run_line_of_a_failure_keeps_its_overrides() {
    let dir = std::env::temp_dir().join(format!("clustersim-cli-sets-{}", std::process::id()));
    let out = clustersim(&[
        "run",
        "harness.partition_heals",
        "--seed",
        "2",
        "--mutant",
        "harness-partition-leaks",
        "--set",
        "phases.converge_budget_ms=9000",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("or: clustersim run harness.partition_heals --seed 2 --mutant harness-partition-leaks --set 'phases.converge_budget_ms=9000'"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn failing_run_writes_a_bundle_that_replays() {
    let dir = std::env::temp_dir().join(format!("clustersim-cli-fail-{}", std::process::id()));
    let out = run_failing_into(&dir);
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
    // v1, v2 all-success, v2 with replays, per size.
    assert_eq!(rows.len(), 6);
    let dead = |layout: &str, n: u64| {
        rows.iter()
            .find(|r| {
                r["layout"] == layout && r["batches_written"] == n && r["workload"] == "all_success"
            })
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

#[test]
fn state_triggered_faults_resolve_their_nodes_from_the_event() {
    // When the tablet enters `streaming`, kill the connection from its leaving to its pending
    // replica; when the second barrier starts, stall `raft_topology_cmd` from the coordinator
    // to one node it contacts.
    let faults = r#"faults={"faults":[
        {"at_ms":0,"after":{"kind":"stage_committed","nth":1,"fields":{"stage":"streaming"},
          "bind":{"from":"(replicas - new_replicas).0.node","to":"(new_replicas - replicas).0.node"}},
         "fault":{"type":"kill_connection","from":1,"to":1}},
        {"at_ms":0,"after":{"kind":"barrier_started","nth":2,"bind":{"from":"@node","to":"nodes.2"}},
         "fault":{"type":"stall","from":1,"to":1,"verb":"raft_topology_cmd"},"duration_ms":300}]}"#;
    let explain = clustersim(&["explain", "topology.swarm", "--seed", "3", "--set", faults]);
    let text = String::from_utf8_lossy(&explain.stdout);
    assert!(
        text.contains(r#"after stage_committed{stage="streaming"} #1: kill connection"#)
            && text.contains("with from = (replicas - new_replicas).0.node"),
        "{text}"
    );
    let out = clustersim(&[
        "run",
        "topology.swarm",
        "--seed",
        "3",
        "--set",
        faults,
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let timeline: Vec<String> = v["fault_timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let kill = timeline
        .iter()
        .find(|l| l.contains("kill connection") && l.ends_with("(schedule #0)"))
        .unwrap_or_else(|| panic!("{timeline:?}"));
    let nodes: Vec<&str> = kill
        .split_whitespace()
        .nth(3)
        .unwrap()
        .split("->")
        .collect();
    assert_ne!(nodes[0], nodes[1], "bound from the event: {kill}");
    assert!(
        timeline
            .iter()
            .any(|l| l.contains("(schedule #1)") || l.contains("skip schedule #1")),
        "the barrier-triggered stall fired or says why not: {timeline:?}"
    );
    assert_usage_error(
        &[
            "run",
            "topology.swarm",
            "--seed",
            "1",
            "--set",
            r#"faults={"faults":[{"at_ms":0,"after":{"kind":"x","nth":1,"bind":{"from":"(a -"}},"fault":{"type":"kill_connection","from":1,"to":2}}]}"#,
        ],
        "bad event path",
    );
}

/// A failing `run` of `scenario` at `seed` with `mutant` (exit code `exit`), its bundle shrunk
/// within `budget` runs (the same exit code) and the shrunk bundle replayed to `verdict` with a
/// matching digest. Returns the failing run's schedule and the shrunk one.
fn fail_shrink_replay(
    scenario: &str,
    seed: &str,
    mutant: &str,
    exit: i32,
    verdict: &str,
    budget: &str,
) -> (Vec<serde_json::Value>, Vec<serde_json::Value>) {
    let dir = std::env::temp_dir().join(format!(
        "clustersim-shrink-{scenario}-{seed}-{mutant}-{}",
        std::process::id()
    ));
    let out = clustersim(&[
        "run",
        scenario,
        "--seed",
        seed,
        "--mutant",
        mutant,
        "--json",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(exit),
        "{mutant} is caught at seed {seed}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bundle = v["bundle"].as_str().unwrap().to_string();
    let faults = |p: &str| -> Vec<serde_json::Value> {
        let b: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        b["config"]["faults"]["faults"].as_array().unwrap().clone()
    };
    let all = faults(&bundle);
    let shrunk = dir.join("shrunk.json");
    let s = clustersim(&[
        "shrink",
        &bundle,
        "--budget",
        budget,
        "--out",
        shrunk.to_str().unwrap(),
    ]);
    assert_eq!(
        s.status.code(),
        Some(exit),
        "{}",
        String::from_utf8_lossy(&s.stderr)
    );
    let small = faults(shrunk.to_str().unwrap());
    assert!(small.len() < all.len(), "{} -> {small:?}", all.len());
    let r = clustersim(&["replay", shrunk.to_str().unwrap(), "--json"]);
    assert_eq!(r.status.code(), Some(exit));
    let rv: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(rv["digest_matches"], true);
    assert_eq!(rv["verdict"], verdict);
    std::fs::remove_dir_all(dir).unwrap();
    (all, small)
}

/// `run` of topology.swarm at `seed` with `mutant` and the schedule `faults`.
fn topology_swarm_with(seed: &str, mutant: &str, faults: &[&serde_json::Value]) -> Output {
    assert!(!faults.is_empty(), "an empty schedule would be drawn anew");
    let set = format!("faults={}", serde_json::json!({ "faults": faults }));
    clustersim(&[
        "run",
        "topology.swarm",
        "--seed",
        seed,
        "--mutant",
        mutant,
        "--set",
        &set,
    ])
}

#[test]
fn a_buggified_injection_in_a_failing_bundle_shrinks_and_replays() {
    let (all, faults) = fail_shrink_replay(
        "harness.buggify_holds_calls",
        "1",
        "harness-injection-no-wait",
        1,
        "safety",
        "60",
    );
    assert!(all.len() >= 2, "several buggify faults to shrink from");
    assert!(
        !faults.is_empty() && faults.iter().all(|f| f["fault"]["type"] == "injection"),
        "what is left is the buggified injection the failure needs: {faults:?}"
    );
}

/// Issue 11 item 3: topology.swarm's buggify episodes are schedule faults, so a failure that
/// needs one (`no-fencing` lets a receiver held at `stream_mutation_fragments` apply its row
/// after its session closed) shrinks to a schedule that still holds the injection fault, the
/// shrunk bundle replays to the same verdict and digest, and without its injection faults the
/// same schedule passes.
#[test]
fn a_topology_swarm_failure_shrinks_to_its_buggified_injection_and_replays() {
    let (_, faults) = fail_shrink_replay("topology.swarm", "6", "no-fencing", 1, "safety", "40");
    let is_injection = |f: &serde_json::Value| {
        f["fault"]["type"] == "injection" && f["fault"]["name"] == "stream_mutation_fragments"
    };
    assert!(
        faults.iter().any(is_injection),
        "the held receiver the failure needs is still in the schedule: {faults:?}"
    );
    // The injection is what the failure needs: the shrunk schedule without it passes.
    let rest: Vec<&serde_json::Value> = faults.iter().filter(|f| !is_injection(f)).collect();
    let p = topology_swarm_with("6", "no-fencing", &rest);
    assert_eq!(
        p.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&p.stdout)
    );
}

/// Issue 11 item 3: topology.swarm's operator templates are schedule faults. A failure that
/// needs one is run, explained, shrunk and replayed: `explain` lists the fault(s) `keep`
/// selects, the shrunk schedule keeps them, the shrunk bundle replays to the same verdict and
/// digest, and the failing run's own schedule without them passes.
fn operator_template_failure_shrinks_and_replays(
    mutant: &str,
    seed: &str,
    verdict: &str,
    exit: i32,
    explained: &[&str],
    keep: fn(&serde_json::Value) -> bool,
) {
    let e = clustersim(&["explain", "topology.swarm", "--seed", seed]);
    assert_eq!(e.status.code(), Some(0));
    let text = String::from_utf8_lossy(&e.stdout);
    for line in explained {
        assert!(
            text.contains(line),
            "explain does not list {line:?}:\n{text}"
        );
    }
    let (all, small) = fail_shrink_replay("topology.swarm", seed, mutant, exit, verdict, "40");
    let needed = all.iter().filter(|f| keep(f)).count();
    assert!(needed > 0, "{all:?}");
    assert_eq!(
        small.iter().filter(|f| keep(f)).count(),
        needed,
        "the shrunk schedule keeps what the failure needs: {small:?}"
    );
    // Without those faults, the failing run's own schedule passes.
    let rest: Vec<&serde_json::Value> = all.iter().filter(|f| !keep(f)).collect();
    let p = topology_swarm_with(seed, mutant, &rest);
    assert_eq!(
        p.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&p.stdout)
    );
}

/// A receiver that never checks its guard, held at `stream_mutation_fragments` until its
/// migration ends (a fault released by that condition, not by the heal): the barrier's drain
/// waits for it forever — liveness.
#[test]
fn a_receiver_ignoring_its_guard_check_shrinks_to_the_hold_and_replays() {
    operator_template_failure_shrinks_and_replays(
        "receiver-ignores-guard-check",
        "4",
        "liveness",
        3,
        &["injection stream_mutation_fragments on n1 (one-shot) with node = (new_replicas - replicas).0.node until every migration to its node in transition when it was entered has ended"],
        |f| f["after"]["until"] == "migrations_to_node_ended",
    );
}

/// A rollback from `write_both_read_new` that skips the barrier, after the pending node was
/// crashed and excluded through the API (both schedule faults): routing, safety.
#[test]
fn a_rollback_skipping_its_barrier_shrinks_to_the_crash_and_exclude_and_replays() {
    operator_template_failure_shrinks_and_replays(
        "rollback-skips-barrier",
        "3",
        "safety",
        1,
        &[
            r#"after stage_committed{stage="write_both_read_new"} #2 while every node is up: crash n1 with node = (new_replicas - replicas).0.node"#,
            "exclude n1 (operator) with node = (new_replicas - replicas).0.node",
        ],
        |f| f["after"]["all_up"] == true || f["fault"]["type"] == "exclude_node",
    );
}

/// Runs matching a known finding are printed in full only for the first three per scenario;
/// the rest are counted in the summary, which names every seed, and all get their bundle.
#[test]
fn explore_prints_only_the_first_known_finding_runs() {
    let dir = std::env::temp_dir().join(format!("clustersim-known-{}", std::process::id()));
    let d = dir.to_str().expect("utf-8 path");
    let out = clustersim(&[
        "explore",
        "batchlog.finding_f1_inflight_store_shadowed",
        "--seeds",
        "0..6",
        "--jobs",
        "1",
        "--out",
        d,
    ]);
    assert_eq!(out.status.code(), Some(0), "known findings do not fail");
    let err = String::from_utf8_lossy(&out.stderr);
    let full = err.lines().filter(|l| l.contains(": safety [")).count();
    assert_eq!(full, 3, "{err}");
    assert_eq!(err.matches("further matching runs").count(), 1, "{err}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("known finding F1: 6 runs") && stdout.contains("seeds 0, 1, 2, 3, 4, 5"),
        "{stdout}"
    );
    let bundles = std::fs::read_dir(&dir).expect("out dir").count();
    assert_eq!(bundles, 6);
    let _ = std::fs::remove_dir_all(&dir);
}
