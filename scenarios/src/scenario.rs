//! What a scenario is: an id, a config, an async body that runs the cluster through its phases,
//! and checkers over the recorded history.

use crate::config::RunConfig;
use futures::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};
use sim::{History, Sim};
use std::rc::Rc;

/// How a scenario is driven.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Proves a feature of the harness itself.
    Harness,
    /// A scripted story around a known-hard case.
    Scripted,
    /// Randomised workload and swarm faults.
    Randomised,
}

/// The verdict of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every checker passed and everything converged.
    Pass,
    /// A safety property was violated.
    Safety,
    /// Something did not converge within the budget (or a scripted scenario missed its marks).
    Liveness,
    /// Code inside the simulated cluster panicked.
    Panic,
}

impl Verdict {
    /// The process exit code for this verdict (DESIGN.md).
    pub fn exit_code(self) -> i32 {
        match self {
            Verdict::Pass => 0,
            Verdict::Safety => 1,
            Verdict::Liveness => 3,
            Verdict::Panic => 4,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Safety => "safety",
            Verdict::Liveness => "liveness",
            Verdict::Panic => "panic",
        })
    }
}

/// One broken promise, found by a checker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// Checker name.
    pub checker: String,
    /// Safety or liveness.
    pub verdict: Verdict,
    /// What went wrong, in one sentence.
    pub message: String,
    /// History index of the offending event, if any.
    pub at_index: Option<usize>,
    /// Virtual time of the offending event (ns), if any.
    pub at_ns: Option<u64>,
}

impl Violation {
    /// A safety violation at history entry `entry` (if given).
    pub fn safety(checker: &str, message: impl Into<String>, entry: Option<&sim::Entry>) -> Self {
        Violation {
            checker: checker.to_string(),
            verdict: Verdict::Safety,
            message: message.into(),
            at_index: entry.map(|e| e.index),
            at_ns: entry.map(|e| e.at.0),
        }
    }

    /// A liveness violation.
    pub fn liveness(checker: &str, message: impl Into<String>) -> Self {
        Violation {
            checker: checker.to_string(),
            verdict: Verdict::Liveness,
            message: message.into(),
            at_index: None,
            at_ns: None,
        }
    }
}

/// What a scenario's body returns at the end of the run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunEnd {
    /// Final state the checkers may read (and the report digests), e.g. final reads.
    pub final_state: serde_json::Value,
    /// What is still pending after the converge budget, by name (liveness failures).
    pub pending: Vec<String>,
}

/// A checker over the history and the final state. It never sees the model's internals.
pub trait Checker: Sync {
    /// Checker name, e.g. `"fencing"`.
    fn name(&self) -> &'static str;
    /// Every violation found (empty: the promise held).
    fn check(&self, cfg: &RunConfig, history: &History, end: &RunEnd) -> Vec<Violation>;
}

/// The async body of a scenario.
pub type RunFn = fn(Sim, Rc<RunConfig>) -> LocalBoxFuture<'static, RunEnd>;

/// A scenario of the catalog.
#[derive(Clone)]
pub struct ScenarioDef {
    /// Id, read as a path: `streaming.fenced_after_kill_connection`.
    pub id: &'static str,
    /// How it is driven.
    pub tier: Tier,
    /// One line.
    pub description: &'static str,
    /// Mutants this scenario is expected to catch.
    pub mutants: &'static [&'static str],
    /// Coverage marks every unmutated run must hit.
    pub marks: &'static [&'static str],
    /// Fill the scenario's defaults into a base config (seed already set).
    pub config: fn(&mut RunConfig),
    /// Run the cluster through the phases.
    pub run: RunFn,
    /// Checkers applied to every run.
    pub checkers: &'static [&'static dyn Checker],
}
