//! Resolving a scenario and seed into a config, running it in a fresh simulation, and judging
//! the result with the scenario's checkers.

use crate::config::RunConfig;
use crate::scenario::{RunEnd, ScenarioDef, Verdict, Violation};
use serde::Serialize;
use sim::{History, Sim};
use sim::{SimEvent, UndoneBy};
use std::collections::BTreeMap;
use std::rc::Rc;

/// Find a scenario by id.
pub fn find(id: &str) -> Result<ScenarioDef, String> {
    crate::catalog::all()
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| format!("unknown scenario '{id}' (see `clustersim list`)"))
}

/// Every mutant some scenario of the catalog declares, sorted.
pub fn known_mutants() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = crate::catalog::all()
        .iter()
        .flat_map(|s| s.mutants.iter().copied())
        .collect();
    v.extend(HARNESS_MUTANTS);
    v.sort();
    v.dedup();
    v
}

/// Mutants of the harness itself (checked inside `sim` and `fault_injection`).
pub const HARNESS_MUTANTS: &[&str] = &[
    "harness-kill-aborts-receiver",
    "harness-stall-ignored",
    "harness-crash-keeps-unsynced",
    "harness-injection-no-wait",
    "harness-partition-leaks",
];

/// Resolve `def` for `seed`: base defaults, the scenario's own, `--set` overrides, then the
/// fault schedule drawn from the fault model (unless the config already has one, or `--set`
/// gave one: `--set 'faults={"faults":[]}'` means no scheduled faults at all).
pub fn resolve(
    def: &ScenarioDef,
    seed: u64,
    mutants: &[String],
    sets: &[(String, String)],
) -> Result<RunConfig, String> {
    let mut cfg = RunConfig::base(def.id, seed, mutants);
    (def.config)(&mut cfg);
    for (k, v) in sets {
        cfg.set(k, v)?;
    }
    // `--set nodes=N` and `--set shards=N` carry over to the sections that restate the cluster
    // shape (those with a `nodes` field, such as `topology`), unless the same command sets that
    // section's field too: one fact, one override. Two explicit values that disagree are still
    // refused by `validate`.
    for field in ["nodes", "shards"] {
        if !sets.iter().any(|(k, _)| k == field) {
            continue;
        }
        let want = if field == "nodes" {
            cfg.nodes
        } else {
            cfg.shards
        };
        for (name, sec) in cfg.params.iter_mut() {
            let explicit = sets.iter().any(|(k, _)| *k == format!("{name}.{field}"));
            if sec.get("nodes").is_some() && sec.get(field).is_some() && !explicit {
                sec[field] = want.into();
            }
        }
    }
    cfg.validate()?;
    let schedule_set = sets
        .iter()
        .any(|(k, _)| k == "faults" || k.starts_with("faults."));
    if cfg.faults.is_empty() && !schedule_set {
        let mut rng = sim::rng::standalone(seed, "faults");
        cfg.faults = fault_injection::swarm::generate(&cfg.fault_model, &cfg.node_ids(), &mut rng);
    }
    Ok(cfg)
}

/// The outcome of one run.
#[derive(Clone, Debug, Serialize)]
pub struct RunReport {
    /// Scenario id.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Mutants on.
    pub mutants: Vec<String>,
    /// Verdict.
    pub verdict: Verdict,
    /// All violations found (the first decides the verdict).
    pub violations: Vec<Violation>,
    /// History digest.
    pub digest: String,
    /// Number of history events.
    pub events: usize,
    /// Virtual time at the end, ns.
    pub sim_time_ns: u64,
    /// Named counters.
    pub metrics: BTreeMap<String, u64>,
    /// Coverage marks hit.
    pub marks: BTreeMap<String, u64>,
    /// Required marks not hit.
    pub missing_marks: Vec<String>,
    /// Protocol and harness events, per kind.
    pub events_per_kind: BTreeMap<String, u64>,
    /// Faults applied, in order, with their virtual time in ms.
    pub fault_timeline: Vec<String>,
    /// What was still pending at the end.
    pub pending: Vec<String>,
    /// Digest of the final state.
    pub final_state_digest: String,
    /// Panic message, if the simulated cluster panicked.
    pub panic: Option<String>,
    /// What the scenario's story wants a reader of the report to see (the final state's
    /// `notes`, e.g. the message a node refused to start with).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl RunReport {
    /// The first violation, which decides the verdict.
    pub fn first_violation(&self) -> Option<&Violation> {
        self.violations
            .iter()
            .find(|v| v.verdict == self.verdict)
            .or(self.violations.first())
    }
}

/// Run `cfg` of scenario `def` and judge it. Returns the report and the full history.
pub fn run(def: &ScenarioDef, cfg: &RunConfig) -> (RunReport, History) {
    let cfg_rc = Rc::new(cfg.clone());
    let out = sim::runtime::run_seed(cfg.seed, |h| {
        let sim = Sim::new(cfg.seed, &cfg.mutants, cfg.net.clone(), h);
        let body = (def.run)(sim.clone(), cfg_rc.clone());
        async move {
            let end = body.await;
            sim.metric_add("net_messages", sim.net().messages());
            end
        }
    });
    let history = out.history;
    let mut violations = Vec::new();
    let (end, panic) = match out.result {
        Ok(end) => (end, None),
        Err(msg) => (RunEnd::default(), Some(msg)),
    };
    if panic.is_none() {
        for checker in def.checkers {
            violations.extend(checker.check(cfg, &history, &end));
        }
        if !end.pending.is_empty() {
            violations.push(Violation::liveness(
                "converge",
                format!(
                    "still pending after the converge budget: {}",
                    end.pending.join("; ")
                ),
            ));
        }
    }
    let marks: BTreeMap<String, u64> = history
        .marks()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let missing_marks: Vec<String> = def
        .marks
        .iter()
        .filter(|m| !marks.contains_key(**m))
        .map(|m| m.to_string())
        .collect();
    if panic.is_none() && cfg.mutants.is_empty() && !missing_marks.is_empty() {
        violations.push(Violation::liveness(
            "coverage",
            format!("never reached: {}", missing_marks.join(", ")),
        ));
    }
    let verdict = if panic.is_some() {
        Verdict::Panic
    } else if violations.iter().any(|v| v.verdict == Verdict::Safety) {
        Verdict::Safety
    } else if !violations.is_empty() {
        Verdict::Liveness
    } else {
        Verdict::Pass
    };
    let fault_timeline = history
        .entries()
        .iter()
        .filter_map(|e| {
            let ms = e.at.as_millis();
            match e.sim()? {
                SimEvent::FaultApplied {
                    fault,
                    schedule: Some(i),
                    ..
                } => Some(format!("{ms}ms {fault} (schedule #{i})")),
                SimEvent::FaultApplied { fault, .. } => Some(format!("{ms}ms {fault} (scripted)")),
                SimEvent::FaultUndone { fault, by, .. } => Some(match by {
                    UndoneBy::Heal => format!("{ms}ms undo {fault} (heal)"),
                    _ => format!("{ms}ms undo {fault}"),
                }),
                SimEvent::FaultSkipped {
                    schedule, reason, ..
                } => Some(format!("{ms}ms skip schedule #{schedule}: {reason}")),
                _ => None,
            }
        })
        .collect();
    let final_json = serde_json::to_vec(&end.final_state).expect("final state serialises");
    let report = RunReport {
        scenario: def.id.to_string(),
        seed: cfg.seed,
        mutants: cfg.mutants.clone(),
        verdict,
        violations,
        digest: history.digest(),
        events: history.len(),
        sim_time_ns: out.sim_time_ns,
        metrics: history.metrics(),
        marks,
        missing_marks,
        events_per_kind: history
            .kind_counts()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        fault_timeline,
        pending: end.pending.clone(),
        final_state_digest: blake3::hash(&final_json).to_hex()[..16].to_string(),
        panic,
        notes: end.final_state["notes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
    };
    (report, history)
}

/// Positions in the run's fault schedule of every fault the record shows applied.
pub fn applied_schedule_positions(h: &History) -> std::collections::BTreeSet<usize> {
    h.entries()
        .iter()
        .filter_map(|e| match e.sim()? {
            SimEvent::FaultApplied {
                schedule: Some(i), ..
            } => Some(*i),
            _ => None,
        })
        .collect()
}

/// The normalised report kept in `snapshots/`: resolved config, fault timeline, events per
/// kind, verdicts, coverage marks, metrics and digests. Nothing in it depends on wall-clock
/// time, addresses or hash-map order.
pub fn normalized(cfg: &RunConfig, r: &RunReport) -> serde_json::Value {
    serde_json::json!({
        "scenario": r.scenario,
        "seed": r.seed,
        "mutants": r.mutants,
        "verdict": r.verdict,
        "violations": r.violations.iter().map(|v| format!("[{}] {}: {}", v.checker, v.verdict, v.message)).collect::<Vec<_>>(),
        "panic": r.panic,
        "history_digest": r.digest,
        "final_state_digest": r.final_state_digest,
        "events": r.events,
        "sim_time_ms": r.sim_time_ns / 1_000_000,
        "fault_timeline": r.fault_timeline,
        "events_per_kind": r.events_per_kind,
        "marks": r.marks,
        "metrics": r.metrics,
        "pending": r.pending,
        "config": cfg,
    })
}
