//! Many runs at once: exploring seed ranges in parallel (one madsim runtime per OS thread),
//! writing a repro bundle for every failure as soon as it is seen, aggregating coverage marks
//! across seeds (and judging the marks a randomised scenario must reach *sometimes*), splitting
//! the (scenario, seed) space into shards that [`merge`] back into one summary, bounding an
//! exploration by a time budget or the first failure, and measuring how quickly each mutant is
//! caught.

use crate::bundle::Bundle;
use crate::config::RunConfig;
use crate::runner::{self, RunReport};
use crate::scenario::{ScenarioDef, Verdict};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

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

/// Summary of an exploration. Everything but the wall-clock figures is a function of the
/// (scenario, seed) pairs run, so shard summaries [`merge`] into exactly the unsharded one.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Runs done.
    pub runs: u64,
    /// Runs that passed.
    pub passed: u64,
    /// Unknown failures: scenario, seed, verdict, violation, bundle path (sorted by scenario,
    /// seed).
    pub failures: Vec<FailureLine>,
    /// Failures that match a registered finding (`crate::findings`), by finding id. They have
    /// bundles too, and fail the exploration only with `--strict`.
    #[serde(default)]
    pub known_findings: BTreeMap<String, KnownFinding>,
    /// Wall seconds for the whole exploration (for a merge: the longest shard).
    pub wall_s: f64,
    /// Runs per wall second.
    pub seeds_per_s: f64,
    /// Simulated seconds over all runs.
    pub sim_s: f64,
    /// Simulated nanoseconds over all runs (exact; `sim_s` is derived from it).
    #[serde(default)]
    pub sim_ns: u64,
    /// History events over all runs.
    pub events: u64,
    /// Transport messages over all runs.
    pub messages: u64,
    /// Coverage across seeds, per scenario id.
    #[serde(default)]
    pub coverage: BTreeMap<String, Coverage>,
    /// Shards merged into this summary (1 for one exploration).
    #[serde(default = "one")]
    pub shards: u32,
    /// Why the exploration stopped before running every pair, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<String>,
}

fn one() -> u32 {
    1
}

impl Summary {
    /// Did the exploration pass: no failure and no coverage verdict?
    pub fn passed_all(&self) -> bool {
        self.failures.is_empty() && self.coverage_failures().is_empty()
    }

    /// Every declared "sometimes" mark reached by too small a share of seeds, as one line each.
    pub fn coverage_failures(&self) -> Vec<String> {
        self.coverage
            .iter()
            .flat_map(|(id, c)| {
                c.sometimes
                    .iter()
                    .filter(|s| s.verdict == CoverageVerdict::Missed)
                    .map(move |s| {
                        format!(
                            "{id}: '{}' reached in {}/{} seeds ({:.1}%), needs at least {:.1}%",
                            s.mark,
                            s.seeds_hit,
                            c.seeds,
                            100.0 * s.share,
                            100.0 * s.min_share
                        )
                    })
            })
            .collect()
    }

    /// The summary without its wall-clock figures (what two explorations of the same pairs
    /// must agree on).
    pub fn deterministic(&self) -> Summary {
        Summary {
            wall_s: 0.0,
            seeds_per_s: 0.0,
            shards: 1,
            ..self.clone()
        }
    }

    fn add_run(&mut self, def: &ScenarioDef, report: &RunReport) {
        self.runs += 1;
        self.sim_ns += report.sim_time_ns;
        self.events += report.events as u64;
        self.messages += report.metrics.get("net_messages").copied().unwrap_or(0);
        if report.verdict == Verdict::Pass {
            self.passed += 1;
        }
        let cov = self
            .coverage
            .entry(def.id.to_string())
            .or_insert_with(|| Coverage::declared(def));
        cov.seeds += 1;
        if report.mutants.is_empty() {
            cov.unmutated_seeds += 1;
        }
        for m in report.marks.keys() {
            *cov.seeds_hit.entry(m.clone()).or_default() += 1;
        }
    }

    /// Recompute derived figures: sorted failures, simulated seconds, coverage verdicts.
    fn finish(&mut self) {
        self.failures
            .sort_by(|a, b| (&a.scenario, a.seed).cmp(&(&b.scenario, b.seed)));
        for k in self.known_findings.values_mut() {
            k.failures
                .sort_by(|a, b| (&a.scenario, a.seed).cmp(&(&b.scenario, b.seed)));
        }
        self.sim_s = self.sim_ns as f64 / 1e9;
        self.seeds_per_s = self.runs as f64 / self.wall_s.max(1e-9);
        for c in self.coverage.values_mut() {
            c.judge();
        }
    }
}

/// Below this many unmutated seeds of a scenario, a missed "sometimes" mark is reported but
/// does not fail the exploration (too few seeds to judge a share).
pub const COVERAGE_MIN_SEEDS: u64 = 200;

/// Coverage marks of one scenario across the seeds of an exploration.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Seeds run.
    pub seeds: u64,
    /// Seeds run without mutants (the ones "sometimes" marks are judged on).
    pub unmutated_seeds: u64,
    /// For every mark hit at least once: how many seeds hit it.
    pub seeds_hit: BTreeMap<String, u64>,
    /// Declared marks (required or "sometimes") that no seed hit.
    pub never_hit: Vec<String>,
    /// The scenario's "sometimes" declarations, judged.
    pub sometimes: Vec<SometimesResult>,
}

/// One "sometimes" declaration, judged over the seeds run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SometimesResult {
    /// Mark name.
    pub mark: String,
    /// Least share of seeds that must hit it.
    pub min_share: f64,
    /// Seeds that hit it.
    pub seeds_hit: u64,
    /// seeds_hit / seeds.
    pub share: f64,
    /// The judgement.
    pub verdict: CoverageVerdict,
}

/// Judgement of one "sometimes" mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageVerdict {
    /// Reached in at least its share of seeds.
    Ok,
    /// Reached too rarely, over at least [`COVERAGE_MIN_SEEDS`] unmutated seeds: a failure.
    Missed,
    /// Reached too rarely so far, but too few unmutated seeds to judge.
    TooFewSeeds,
}

impl Coverage {
    fn declared(def: &ScenarioDef) -> Coverage {
        let mut c = Coverage {
            never_hit: def.marks.iter().map(|m| m.to_string()).collect(),
            ..Coverage::default()
        };
        for s in crate::coverage::sometimes(def.id) {
            c.sometimes.push(SometimesResult {
                mark: s.mark.to_string(),
                min_share: s.min_share,
                seeds_hit: 0,
                share: 0.0,
                verdict: CoverageVerdict::TooFewSeeds,
            });
        }
        c
    }

    fn judge(&mut self) {
        let mut declared: Vec<String> = self.never_hit.clone();
        declared.extend(self.sometimes.iter().map(|s| s.mark.clone()));
        declared.sort();
        declared.dedup();
        self.never_hit = declared
            .into_iter()
            .filter(|m| !self.seeds_hit.contains_key(m))
            .collect();
        for s in &mut self.sometimes {
            s.seeds_hit = self.seeds_hit.get(&s.mark).copied().unwrap_or(0);
            s.share = s.seeds_hit as f64 / self.seeds.max(1) as f64;
            s.verdict = if s.share >= s.min_share {
                CoverageVerdict::Ok
            } else if self.unmutated_seeds >= COVERAGE_MIN_SEEDS {
                CoverageVerdict::Missed
            } else {
                CoverageVerdict::TooFewSeeds
            };
        }
    }

    fn absorb(&mut self, other: &Coverage) {
        self.seeds += other.seeds;
        self.unmutated_seeds += other.unmutated_seeds;
        for (m, n) in &other.seeds_hit {
            *self.seeds_hit.entry(m.clone()).or_default() += n;
        }
        self.never_hit.extend(other.never_hit.iter().cloned());
        for s in &other.sometimes {
            if !self.sometimes.iter().any(|x| x.mark == s.mark) {
                self.sometimes.push(s.clone());
            }
        }
    }
}

/// Combine shard summaries into one: counts add up, failures and coverage are pooled, the wall
/// time is the longest shard's (shards run side by side).
pub fn merge(parts: &[Summary]) -> Summary {
    let mut m = Summary {
        shards: 0,
        ..Summary::default()
    };
    for p in parts {
        m.runs += p.runs;
        m.passed += p.passed;
        m.failures.extend(p.failures.iter().cloned());
        for (id, k) in &p.known_findings {
            let e = m.known_findings.entry(id.clone()).or_default();
            e.title.clone_from(&k.title);
            e.runs += k.runs;
            e.failures.extend(k.failures.iter().cloned());
        }
        m.wall_s = m.wall_s.max(p.wall_s);
        m.sim_ns += p.sim_ns;
        m.events += p.events;
        m.messages += p.messages;
        m.shards += p.shards;
        for (id, c) in &p.coverage {
            m.coverage.entry(id.clone()).or_default().absorb(c);
        }
        if let Some(why) = &p.stopped_early {
            m.stopped_early.get_or_insert_with(|| why.clone());
        }
    }
    m.finish();
    m
}

/// The runs of an exploration that matched one known finding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KnownFinding {
    /// What the finding is.
    pub title: String,
    /// How many runs matched.
    pub runs: u64,
    /// Those runs.
    pub failures: Vec<FailureLine>,
}

/// One failure of an exploration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default)]
    pub finding: Option<String>,
}

/// Which part of the (scenario, seed) space an exploration runs: shard `index` (1-based) of
/// `count`, the convention of cargo-nextest's `--partition count:K/N`: pairs are numbered in
/// exploration order and pair `i` belongs to shard `i % count + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based shard number.
    pub index: u64,
    /// Number of shards.
    pub count: u64,
}

impl Shard {
    /// The whole space.
    pub const ALL: Shard = Shard { index: 1, count: 1 };

    /// Parse `K/N` (1 ≤ K ≤ N); `count:K/N` is accepted too.
    pub fn parse(s: &str) -> Result<Shard, String> {
        let bad = || format!("malformed shard '{s}' (expected K/N with 1 <= K <= N, e.g. 1/4)");
        let t = s.strip_prefix("count:").unwrap_or(s);
        let (k, n) = t.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    fn owns(&self, i: u64) -> bool {
        i % self.count == self.index - 1
    }
}

/// How an exploration is bounded besides its seed range.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    /// Stop starting new runs once this much wall time has passed.
    pub time_budget: Option<std::time::Duration>,
    /// Stop starting new runs after the first failure.
    pub fail_fast: bool,
}

/// Parse a duration: `90s`, `10m`, `2h`, or plain seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("malformed duration '{s}' (expected e.g. 90s, 10m, 2h)");
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        _ => (t, 1),
    };
    let n: u64 = num.trim().parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(n * mult))
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
    on_run: impl FnMut(&Finished, Option<&FailureLine>),
) -> Result<Summary, String> {
    explore_with(
        defs,
        seeds,
        Shard::ALL,
        Limits::default(),
        mutants,
        sets,
        jobs,
        out,
        on_run,
    )
}

/// [`explore`] restricted to one shard of the pairs and bounded by `limits`. Pairs are numbered
/// seed-major (every scenario of seed 0, then of seed 1, ...), so a time budget spreads over all
/// scenarios.
#[allow(clippy::too_many_arguments)]
pub fn explore_with(
    defs: &[ScenarioDef],
    seeds: std::ops::Range<u64>,
    shard: Shard,
    limits: Limits,
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
    let n_defs = defs.len() as u64;
    let total = n_defs.saturating_mul(seeds.end - seeds.start);
    let pair = |i: u64| ((i % n_defs) as usize, seeds.start + i / n_defs);
    #[allow(clippy::disallowed_methods)] // wall time of the exploration, outside any run
    let t0 = std::time::Instant::now();
    let stop = AtomicBool::new(false);
    let mut summary = Summary {
        shards: 1,
        ..Summary::default()
    };
    for d in defs {
        summary
            .coverage
            .entry(d.id.to_string())
            .or_insert_with(|| Coverage::declared(d));
    }
    let mut write_error = None;
    let mut stopped = None;
    sim::runtime::parallel_indexed(
        total,
        jobs,
        &stop,
        |i| shard.owns(i),
        |i| {
            if let Some(budget) = limits.time_budget {
                if t0.elapsed() >= budget {
                    return None;
                }
            }
            let (d, seed) = pair(i);
            Some((
                d,
                run_one(&defs[d], seed, mutants, sets).expect("resolved above"),
            ))
        },
        |_, res| {
            let Some((d, fin)) = res else {
                stopped.get_or_insert_with(|| "time budget spent".to_string());
                stop.store(true, Ordering::Relaxed);
                return;
            };
            summary.add_run(&defs[d], &fin.report);
            if fin.report.verdict == Verdict::Pass {
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
                None => {
                    summary.failures.push(line);
                    if limits.fail_fast {
                        stopped.get_or_insert_with(|| "fail-fast: first failure".to_string());
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            }
        },
    );
    if let Some(e) = write_error {
        return Err(e);
    }
    summary.stopped_early = stopped;
    summary.wall_s = t0.elapsed().as_secs_f64();
    summary.finish();
    Ok(summary)
}

/// The coverage part of an exploration's human summary: per scenario, each mark with the
/// seeds that hit it, the declared marks never hit, and the "sometimes" verdicts.
pub fn render_coverage(summary: &Summary) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for (id, c) in &summary.coverage {
        if c.seeds == 0 {
            continue;
        }
        let _ = writeln!(out, "coverage of {id} over {} seeds:", c.seeds);
        for (m, n) in &c.seeds_hit {
            let _ = writeln!(
                out,
                "  {:>6} seeds ({:5.1}%)  {m}",
                n,
                100.0 * *n as f64 / c.seeds as f64
            );
        }
        for m in &c.never_hit {
            let _ = writeln!(out, "  never hit: {m}");
        }
        for s in &c.sometimes {
            let _ = writeln!(
                out,
                "  sometimes '{}': {:.1}% of seeds (needs ≥ {:.1}%): {}",
                s.mark,
                100.0 * s.share,
                100.0 * s.min_share,
                match s.verdict {
                    CoverageVerdict::Ok => "ok".to_string(),
                    CoverageVerdict::Missed => "MISSED (coverage verdict: fail)".to_string(),
                    CoverageVerdict::TooFewSeeds => format!(
                        "below its share, not judged under {COVERAGE_MIN_SEEDS} unmutated seeds"
                    ),
                }
            );
        }
    }
    for line in summary.coverage_failures() {
        let _ = writeln!(out, "COVERAGE FAIL {line}");
    }
    out
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
    /// Seeds that failed under the mutant but also fail without it (a known finding, say):
    /// they prove nothing about the mutant, so the hunt went on past them.
    pub seeds_failing_unmutated: Vec<u64>,
}

/// For every (scenario, mutant) it declares, the first seed in `0..max_seeds` that fails under
/// the mutant and passes without it. A seed that fails both ways (an unmutated failure, such as
/// a known finding the swarm reaches) is not a catch: it is listed and the hunt goes on.
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
            let mut failing_unmutated = Vec::new();
            for seed in 0..max_seeds {
                let fin = run_one(def, seed, &mutants, &[]).expect("catalog configs resolve");
                if fin.report.verdict == Verdict::Pass {
                    continue;
                }
                let unmutated = run_one(def, seed, &[], &[]).expect("catalog configs resolve");
                if unmutated.report.verdict != Verdict::Pass {
                    failing_unmutated.push(seed);
                    continue;
                }
                return MutantResult {
                    mutant: mutant.to_string(),
                    scenario: def.id.to_string(),
                    caught_at_seed: Some(seed),
                    seeds_run: seed + 1,
                    verdict: Some(fin.report.verdict),
                    message: Some(failure_message(&fin.report)),
                    seeds_failing_unmutated: failing_unmutated,
                };
            }
            MutantResult {
                mutant: mutant.to_string(),
                scenario: def.id.to_string(),
                caught_at_seed: None,
                seeds_run: max_seeds,
                verdict: None,
                message: None,
                seeds_failing_unmutated: failing_unmutated,
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
