//! Many runs at once: exploring seed ranges in parallel (one madsim runtime per OS thread),
//! writing a repro bundle for every failure as soon as it is seen, checking determinism, and
//! measuring how quickly each mutant is caught.

use crate::bundle::Bundle;
use crate::config::RunConfig;
use crate::runner::{self, RunReport};
use crate::scenario::{ScenarioDef, Verdict};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Parse a seed range: `A..B` (B exclusive), `A..=B`, or a single seed `N`.
pub fn parse_seeds(s: &str) -> Result<std::ops::Range<u64>, String> {
    let bad = || format!("malformed seed range '{s}' (expected A..B, A..=B or N)");
    let num = |x: &str| x.trim().parse::<u64>().map_err(|_| bad());
    let range = if let Some((a, b)) = s.split_once("..=") {
        let (a, b) = (num(a)?, num(b)?);
        a..b.checked_add(1).ok_or_else(bad)?
    } else if let Some((a, b)) = s.split_once("..") {
        num(a)?..num(b)?
    } else {
        let n = num(s)?;
        n..n + 1
    };
    if range.is_empty() {
        return Err(format!("empty seed range '{s}'"));
    }
    Ok(range)
}

/// One finished run of an exploration.
pub struct Finished {
    /// The report.
    pub report: RunReport,
    /// Its resolved config.
    pub config: RunConfig,
    /// Wall-clock seconds this run took (outside the simulation; for throughput only).
    pub wall_s: f64,
}

/// Run `scenario` with `seed`, resolved with `mutants` and `sets`.
pub fn run_one(
    def: &ScenarioDef,
    seed: u64,
    mutants: &[String],
    sets: &[(String, String)],
) -> Result<Finished, String> {
    let cfg = runner::resolve(def, seed, mutants, sets)?;
    #[allow(clippy::disallowed_methods)] // wall time of the run, measured outside it
    let t0 = std::time::Instant::now();
    let (report, _history) = runner::run(def, &cfg);
    Ok(Finished {
        report,
        config: cfg,
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

/// Summary of an exploration.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Runs done.
    pub runs: u64,
    /// Runs that passed.
    pub passed: u64,
    /// Unknown failures: scenario, seed, verdict, violation, bundle path.
    pub failures: Vec<FailureLine>,
    /// Failures that match a registered finding (`crate::findings`), by finding id. They have
    /// bundles too, and fail the exploration only with `--strict`.
    pub known_findings: std::collections::BTreeMap<String, KnownFinding>,
    /// Wall seconds for the whole exploration.
    pub wall_s: f64,
    /// Runs per wall second.
    pub seeds_per_s: f64,
    /// Simulated seconds over all runs.
    pub sim_s: f64,
    /// History events over all runs.
    pub events: u64,
    /// Transport messages over all runs.
    pub messages: u64,
}

/// The runs of an exploration that matched one known finding.
#[derive(Debug, Clone, Default, Serialize)]
pub struct KnownFinding {
    /// What the finding is.
    pub title: String,
    /// How many runs matched.
    pub runs: u64,
    /// Those runs.
    pub failures: Vec<FailureLine>,
}

/// One failure of an exploration.
#[derive(Debug, Clone, Serialize)]
pub struct FailureLine {
    /// Scenario id.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// Verdict.
    pub verdict: Verdict,
    /// First violation or panic message.
    pub message: String,
    /// Where the repro bundle was written.
    pub bundle: Option<PathBuf>,
    /// The known finding it matches (`F1`, …), if any.
    pub finding: Option<String>,
}

/// Explore every (scenario, seed) pair on `jobs` threads. `on_run` sees each finished run on
/// the calling thread (for progress); failing runs get a bundle in `out` before `on_run`.
pub fn explore(
    defs: &[ScenarioDef],
    seeds: std::ops::Range<u64>,
    mutants: &[String],
    sets: &[(String, String)],
    jobs: usize,
    out: Option<&Path>,
    mut on_run: impl FnMut(&Finished, Option<&FailureLine>),
) -> Result<Summary, String> {
    // Resolve once up front so bad input fails before any run.
    for d in defs {
        runner::resolve(d, seeds.start, mutants, sets)?;
    }
    let items: Vec<(usize, u64)> = defs
        .iter()
        .enumerate()
        .flat_map(|(i, _)| seeds.clone().map(move |s| (i, s)))
        .collect();
    #[allow(clippy::disallowed_methods)] // wall time of the exploration, outside any run
    let t0 = std::time::Instant::now();
    let mut summary = Summary::default();
    let mut write_error = None;
    sim::runtime::parallel(
        &items,
        jobs,
        |&(i, seed)| run_one(&defs[i], seed, mutants, sets).expect("resolved above"),
        |_, fin| {
            summary.runs += 1;
            summary.sim_s += fin.report.sim_time_ns as f64 / 1e9;
            summary.events += fin.report.events as u64;
            summary.messages += fin.report.metrics.get("net_messages").copied().unwrap_or(0);
            if fin.report.verdict == Verdict::Pass {
                summary.passed += 1;
                on_run(&fin, None);
                return;
            }
            let bundle = out.and_then(|dir| {
                match Bundle::from_report(&fin.config, &fin.report).write(dir) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        write_error = Some(e);
                        None
                    }
                }
            });
            let line = FailureLine {
                scenario: fin.report.scenario.clone(),
                seed: fin.report.seed,
                verdict: fin.report.verdict,
                message: failure_message(&fin.report),
                bundle,
                finding: crate::findings::classify(&fin.config, &fin.report).map(|f| f.id.into()),
            };
            on_run(&fin, Some(&line));
            match line.finding.as_deref().and_then(crate::findings::find) {
                Some(f) => {
                    let k = summary.known_findings.entry(f.id.to_string()).or_default();
                    k.title = f.title.to_string();
                    k.runs += 1;
                    k.failures.push(line);
                }
                None => summary.failures.push(line),
            }
        },
    );
    if let Some(e) = write_error {
        return Err(e);
    }
    summary
        .failures
        .sort_by(|a, b| (&a.scenario, a.seed).cmp(&(&b.scenario, b.seed)));
    for k in summary.known_findings.values_mut() {
        k.failures
            .sort_by(|a, b| (&a.scenario, a.seed).cmp(&(&b.scenario, b.seed)));
    }
    summary.wall_s = t0.elapsed().as_secs_f64();
    summary.seeds_per_s = summary.runs as f64 / summary.wall_s.max(1e-9);
    Ok(summary)
}

/// One line saying why a run failed.
pub fn failure_message(r: &RunReport) -> String {
    if let Some(p) = &r.panic {
        return format!("panic: {p}");
    }
    match r.first_violation() {
        Some(v) => format!("[{}] {}", v.checker, v.message),
        None => "failed".to_string(),
    }
}

/// How quickly one mutant is caught by one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct MutantResult {
    /// Mutant name.
    pub mutant: String,
    /// Scenario id.
    pub scenario: String,
    /// First failing seed, if any within the budget.
    pub caught_at_seed: Option<u64>,
    /// Seeds run.
    pub seeds_run: u64,
    /// Verdict of the catching run.
    pub verdict: Option<Verdict>,
    /// Its first violation.
    pub message: Option<String>,
}

/// For every (scenario, mutant) it declares, the first seed in `0..max_seeds` that fails.
pub fn hunt_mutants(defs: &[ScenarioDef], max_seeds: u64, jobs: usize) -> Vec<MutantResult> {
    let pairs: Vec<(usize, &'static str)> = defs
        .iter()
        .enumerate()
        .flat_map(|(i, d)| d.mutants.iter().map(move |m| (i, *m)))
        .collect();
    let mut results: Vec<Option<MutantResult>> = vec![None; pairs.len()];
    sim::runtime::parallel(
        &pairs,
        jobs,
        |&(i, mutant)| {
            let def = &defs[i];
            let mutants = vec![mutant.to_string()];
            for seed in 0..max_seeds {
                let fin = run_one(def, seed, &mutants, &[]).expect("catalog configs resolve");
                if fin.report.verdict != Verdict::Pass {
                    return MutantResult {
                        mutant: mutant.to_string(),
                        scenario: def.id.to_string(),
                        caught_at_seed: Some(seed),
                        seeds_run: seed + 1,
                        verdict: Some(fin.report.verdict),
                        message: Some(failure_message(&fin.report)),
                    };
                }
            }
            MutantResult {
                mutant: mutant.to_string(),
                scenario: def.id.to_string(),
                caught_at_seed: None,
                seeds_run: max_seeds,
                verdict: None,
                message: None,
            }
        },
        |i, r| results[i] = Some(r),
    );
    results
        .into_iter()
        .map(|r| r.expect("every pair ran"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges() {
        assert_eq!(parse_seeds("0..10").unwrap(), 0..10);
        assert_eq!(parse_seeds("3..=5").unwrap(), 3..6);
        assert_eq!(parse_seeds("7").unwrap(), 7..8);
        assert!(parse_seeds("5..2").is_err());
        assert!(parse_seeds("a..b").is_err());
        assert!(parse_seeds("..").is_err());
        assert!(parse_seeds("1..2..3").is_err());
        assert!(parse_seeds("").is_err());
        assert!(parse_seeds("-1..4").is_err());
    }
}
