//! Repro bundles: one JSON file with everything needed to re-run a failure exactly — the
//! resolved config with its explicit fault schedule (so a replay survives changes to the
//! generator), the verdict, and the history digest to compare against.

use crate::config::RunConfig;
use crate::runner::RunReport;
use crate::scenario::{Verdict, Violation};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Current bundle format.
pub const FORMAT_VERSION: u32 = 1;

/// A repro bundle.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Bundle format version.
    pub format_version: u32,
    /// clustersim version that wrote it.
    pub tool_version: String,
    /// Scenario id.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Mutants on.
    pub mutants: Vec<String>,
    /// The resolved config, with its explicit fault schedule.
    pub config: RunConfig,
    /// Verdict of the recorded run.
    pub verdict: Verdict,
    /// The violation that decided it.
    pub violation: Option<Violation>,
    /// Panic message, if any.
    pub panic: Option<String>,
    /// History digest of the recorded run.
    pub digest: String,
    /// Events in the history.
    pub events: usize,
    /// Virtual time at the end, ns.
    pub sim_time_ns: u64,
}

impl Bundle {
    /// The bundle of a finished run.
    pub fn from_report(cfg: &RunConfig, report: &RunReport) -> Bundle {
        Bundle {
            format_version: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            scenario: report.scenario.clone(),
            seed: report.seed,
            mutants: report.mutants.clone(),
            config: cfg.clone(),
            verdict: report.verdict,
            violation: report.first_violation().cloned(),
            panic: report.panic.clone(),
            digest: report.digest.clone(),
            events: report.events,
            sim_time_ns: report.sim_time_ns,
        }
    }

    /// File name: `<scenario>-seed<seed>[+<mutants>].json`.
    pub fn file_name(&self) -> String {
        let mut name = format!("{}-seed{}", self.scenario, self.seed);
        for m in &self.mutants {
            name.push('+');
            name.push_str(m);
        }
        name.push_str(".json");
        name
    }

    /// Write atomically into `dir` (temporary file, then rename). Returns the path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let path = dir.join(self.file_name());
        let tmp = dir.join(format!(".{}.tmp", self.file_name()));
        let json = serde_json::to_string_pretty(self).expect("bundle serialises");
        std::fs::write(&tmp, json + "\n")
            .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| format!("cannot rename to {}: {e}", path.display()))?;
        Ok(path)
    }

    /// Load and validate a bundle.
    pub fn load(path: &Path) -> Result<Bundle, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read bundle {}: {e}", path.display()))?;
        let bundle: Bundle = serde_json::from_str(&text).map_err(|e| {
            if e.is_eof() {
                format!("bundle {} is truncated ({e})", path.display())
            } else {
                format!("bundle {} is corrupt: {e}", path.display())
            }
        })?;
        if bundle.format_version != FORMAT_VERSION {
            return Err(format!(
                "bundle {} has format version {}, this clustersim reads {FORMAT_VERSION}",
                path.display(),
                bundle.format_version
            ));
        }
        if bundle.config.scenario != bundle.scenario
            || bundle.config.seed != bundle.seed
            || bundle.config.mutants != bundle.mutants
        {
            return Err(format!(
                "bundle {} is inconsistent: its config names another run",
                path.display()
            ));
        }
        crate::runner::find(&bundle.scenario)?;
        bundle
            .config
            .validate()
            .map_err(|e| format!("bundle {}: {e}", path.display()))?;
        Ok(bundle)
    }

    /// The command line that reproduces this bundle.
    pub fn repro_line(path: &Path) -> String {
        format!("clustersim replay {}", path.display())
    }
}

/// The command line that re-runs `report` from its seed, with the `--set` overrides it was
/// resolved with (without them the line would run another config).
pub fn run_line(report: &RunReport, sets: &[(String, String)]) -> String {
    let mut s = format!("clustersim run {} --seed {}", report.scenario, report.seed);
    for m in &report.mutants {
        s.push_str(&format!(" --mutant {m}"));
    }
    for (k, v) in sets {
        s.push_str(&format!(" --set '{k}={v}'"));
    }
    s
}
