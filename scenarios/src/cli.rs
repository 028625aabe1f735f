//! The `clustersim` command line. Bad input (unknown scenario, malformed seed range, corrupt or
//! missing bundle, bad `--set`) prints one line on stderr and exits 2; a failing run prints the
//! line that reproduces it.

use crate::bundle::{self, Bundle};
use crate::explore::{self, Finished};
use crate::runner;
use crate::scenario::{ScenarioDef, Tier, Verdict};
use clap::{Args, Parser, Subcommand};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Exit code for usage and input errors.
pub const EXIT_USAGE: i32 = 2;
/// Exit code when a rerun's digest differs from the recorded one.
pub const EXIT_NONDETERMINISM: i32 = 5;

#[derive(Parser)]
#[command(
    name = "clustersim",
    version,
    about = "Deterministic simulation testbed for tablet-era coordination protocols"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Default)]
struct RunOpts {
    /// Switch on a mutant (a planted bug), by name; repeatable.
    #[arg(long = "mutant", value_name = "MUTANT")]
    mutants: Vec<String>,
    /// Override a resolved config field by dotted name, e.g. `--set phases.chaos_ms=2000`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

/// Logging of the protocol's steps (off unless asked for).
#[derive(Args, Clone, Default)]
struct LogOpts {
    /// Log at LEVEL (error, warn, info, debug, trace) for clustersim's crates, or an
    /// `EnvFilter` directive list (`model::topology=debug,sim=info`); lines carry simulated time
    /// and node. Without it `RUST_LOG` applies as usual.
    #[arg(long = "log", value_name = "LEVEL")]
    level: Option<String>,
    /// Write the log to FILE instead of stderr (implies `--log info` when no level is given).
    #[arg(long = "log-file", value_name = "FILE")]
    file: Option<PathBuf>,
}

impl LogOpts {
    fn init(&self) -> Result<sim::log::LogGuard, String> {
        sim::log::init(self.level.as_deref(), self.file.as_deref())
    }
}

/// How much of the (scenario, seed) space one `explore` covers, and when it stops.
#[derive(Args, Clone, Default)]
struct ExploreLimits {
    /// Run only shard K of N (1-based; cargo-nextest's `--partition count:K/N` convention):
    /// pair i of the exploration order belongs to shard i % N + 1.
    #[arg(long, value_name = "K/N")]
    shard: Option<String>,
    /// Stop starting runs after this much wall time (e.g. 90s, 10m, 2h); without `--seeds`
    /// the seed range is open-ended.
    #[arg(long, value_name = "DURATION")]
    time_budget: Option<String>,
    /// Stop starting runs after the first failure.
    #[arg(long)]
    fail_fast: bool,
    /// Fail (exit 1) on failures that match a known finding too (FINDINGS.md).
    #[arg(long)]
    strict: bool,
}

#[derive(Subcommand)]
enum Command {
    /// List the scenario catalog.
    List {
        /// Print JSON (an array of objects).
        #[arg(long)]
        json: bool,
    },
    /// Run one scenario with one seed.
    Run {
        /// Scenario id (see `list`).
        scenario: String,
        /// Seed.
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        opts: RunOpts,
        /// Print one JSON object instead of the human summary.
        #[arg(long)]
        json: bool,
        /// Write the history as JSON lines to FILE.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,
        /// Directory for the repro bundle of a failing run.
        #[arg(long, default_value = "failures")]
        out: PathBuf,
        /// Run twice and compare digests (exit 5 if they differ).
        #[arg(long)]
        check_determinism: bool,
        #[command(flatten)]
        log: LogOpts,
    },
    /// Run many seeds of one or more scenarios in parallel.
    Explore {
        /// Scenario ids or globs on ids (`'streaming.*'`), or `--all` / `--tier`.
        scenarios: Vec<String>,
        /// Every scenario of the catalog.
        #[arg(long)]
        all: bool,
        /// Only scenarios of this tier: harness, scripted or randomised (alone: the whole tier).
        #[arg(long, value_parser = parse_tier)]
        tier: Option<Tier>,
        /// Also write a JUnit XML report (one test case per scenario) to FILE.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Seed range: A..B (B exclusive), A..=B, or N (default 0..100; open-ended with
        /// `--time-budget`).
        #[arg(long)]
        seeds: Option<String>,
        /// Worker threads (default: available cores).
        #[arg(long)]
        jobs: Option<usize>,
        #[command(flatten)]
        opts: RunOpts,
        /// Directory for repro bundles of failing runs.
        #[arg(long, default_value = "failures")]
        out: PathBuf,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        limits: ExploreLimits,
    },
    /// Combine the `explore --json` summaries of shards into one (coverage included).
    Merge {
        /// Summary files written by `explore --json`.
        summaries: Vec<PathBuf>,
        /// Print the merged summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-run a repro bundle and compare verdict and digest.
    Replay {
        /// Bundle file.
        bundle: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        log: LogOpts,
    },
    /// Find the smallest fault schedule that still fails like the bundle.
    Shrink {
        /// Bundle file.
        bundle: PathBuf,
        /// Most runs to try.
        #[arg(long, default_value_t = 200)]
        budget: usize,
        /// Where to write the shrunk bundle (default: next to the input, `.shrunk.json`).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        log: LogOpts,
    },
    /// Print the resolved config and fault schedule of a run, without running it.
    Explain {
        /// Scenario id.
        scenario: String,
        /// Seed.
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        opts: RunOpts,
        /// Print the config as JSON only.
        #[arg(long)]
        json: bool,
    },
    /// Batchlog v1 vs v2: dead entries scanned and replay time per replay, by batches written.
    BatchlogCompare {
        /// Batches written before the replay, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 10_000, 100_000])]
        batches: Vec<u64>,
        /// Workload seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Print JSON rows.
        #[arg(long)]
        json: bool,
    },
    /// Re-run a bundle and render its history as a self-contained HTML timeline.
    Timeline {
        /// Bundle file.
        bundle: PathBuf,
        /// Output file (default: the bundle's path with `.html`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// For each scenario's mutants: the first seed that catches it.
    Mutants {
        /// Seeds to try per (scenario, mutant).
        #[arg(long, default_value_t = 50)]
        seeds: u64,
        /// Only these scenarios (default: all).
        scenarios: Vec<String>,
        /// Worker threads.
        #[arg(long)]
        jobs: Option<usize>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure throughput: raw madsim vs the clustersim transport, seeds/s with 1 and 2 jobs.
    Bench {
        /// Smaller workloads (for a smoke test).
        #[arg(long)]
        quick: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Parse `KEY=VALUE` pairs.
fn parse_sets(sets: &[String]) -> Result<Vec<(String, String)>, String> {
    sets.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| format!("--set expects KEY=VALUE, got '{s}'"))
        })
        .collect()
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Entry point: returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(
                e.kind(),
                DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = e.print();
                return if e.kind() == DisplayHelpOnMissingArgumentOrSubcommand {
                    EXIT_USAGE
                } else {
                    0
                };
            }
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("error: bad arguments");
            eprintln!("{first} (see --help)");
            return EXIT_USAGE;
        }
    };
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("error: {msg}");
            EXIT_USAGE
        }
    }
}

fn dispatch(cmd: Command) -> Result<i32, String> {
    match cmd {
        Command::List { json } => list(json),
        Command::Run {
            scenario,
            seed,
            opts,
            json,
            trace,
            out,
            check_determinism,
            log,
        } => {
            let _log = log.init()?;
            run(
                &scenario,
                seed,
                &opts,
                json,
                trace.as_deref(),
                &out,
                check_determinism,
            )
        }
        Command::Explore {
            scenarios,
            all,
            tier,
            junit,
            seeds,
            jobs,
            opts,
            out,
            json,
            limits,
        } => {
            let defs = select_work(&scenarios, all, tier)?;
            explore_cmd(
                &defs,
                seeds.as_deref(),
                jobs,
                &opts,
                &out,
                json,
                junit.as_deref(),
                &limits,
            )
        }
        Command::Merge { summaries, json } => merge_cmd(&summaries, json),
        Command::Replay { bundle, json, log } => {
            let _log = log.init()?;
            replay(&bundle, json)
        }
        Command::Shrink {
            bundle,
            budget,
            out,
            log,
        } => {
            let _log = log.init()?;
            shrink(&bundle, budget, out)
        }
        Command::Explain {
            scenario,
            seed,
            opts,
            json,
        } => explain(&scenario, seed, &opts, json),
        Command::Mutants {
            seeds,
            scenarios,
            jobs,
            json,
        } => mutants(seeds, &scenarios, jobs, json),
        Command::Bench { quick, json } => crate::bench::run(quick, json),
        Command::Timeline { bundle, out } => timeline(&bundle, out),
        Command::BatchlogCompare {
            batches,
            seed,
            json,
        } => {
            if batches.is_empty() || batches.contains(&0) {
                return Err("--batches needs positive counts, e.g. 1000,10000".into());
            }
            let rows = crate::catalog::batchlog_compare::compare(&batches, seed);
            if json {
                println!("{}", serde_json::to_string_pretty(&rows).expect("json"));
            } else {
                print!("{}", crate::catalog::batchlog_compare::render(&rows));
            }
            Ok(0)
        }
    }
}

fn list(json: bool) -> Result<i32, String> {
    let all = crate::catalog::all();
    if json {
        let v: Vec<serde_json::Value> = all
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.id,
                    "tier": s.tier,
                    "description": s.description,
                    "mutants": s.mutants,
                    "marks": s.marks,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        let w = all.iter().map(|s| s.id.len()).max().unwrap_or(0);
        for s in &all {
            println!(
                "{:w$}  {:10}  {}{}",
                s.id,
                format!("{:?}", s.tier).to_lowercase(),
                s.description,
                if s.mutants.is_empty() {
                    String::new()
                } else {
                    format!("  [mutants: {}]", s.mutants.join(", "))
                }
            );
        }
    }
    Ok(0)
}

fn report_json(r: &runner::RunReport, bundle: Option<&Path>) -> serde_json::Value {
    let mut v = serde_json::to_value(r).expect("report serialises");
    let obj = v.as_object_mut().expect("object");
    if let Some(first) = r.first_violation() {
        obj.insert(
            "violation".into(),
            serde_json::to_value(first).expect("json"),
        );
    }
    if let Some(p) = &r.panic {
        obj.insert(
            "violation".into(),
            serde_json::json!({"checker": "panic", "message": p}),
        );
    }
    obj.insert(
        "bundle".into(),
        bundle.map_or(serde_json::Value::Null, |p| p.display().to_string().into()),
    );
    v
}

fn print_human(r: &runner::RunReport) {
    println!(
        "{} seed {}{}: {}",
        r.scenario,
        r.seed,
        if r.mutants.is_empty() {
            String::new()
        } else {
            format!(" (mutants: {})", r.mutants.join(", "))
        },
        r.verdict
    );
    println!(
        "  {} events, {:.3} s simulated, digest {}",
        r.events,
        r.sim_time_ns as f64 / 1e9,
        r.digest
    );
    if !r.fault_timeline.is_empty() {
        println!("  faults:");
        for f in &r.fault_timeline {
            println!("    {f}");
        }
    }
    if !r.marks.is_empty() {
        let marks: Vec<String> = r.marks.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
        println!("  marks: {}", marks.join(", "));
    }
    if !r.missing_marks.is_empty() {
        println!("  marks missed: {}", r.missing_marks.join(", "));
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
    if let Some(p) = &r.panic {
        println!("  panic: {p}");
    }
    for v in &r.violations {
        let at = v
            .at_index
            .map(|i| format!(" (event #{i}, t={}ms)", v.at_ns.unwrap_or(0) / 1_000_000))
            .unwrap_or_default();
        println!(
            "  VIOLATION [{}] {}: {}{}",
            v.checker, v.verdict, v.message, at
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    scenario: &str,
    seed: u64,
    opts: &RunOpts,
    json: bool,
    trace: Option<&Path>,
    out: &Path,
    check_determinism: bool,
) -> Result<i32, String> {
    let def = runner::find(scenario)?;
    let sets = parse_sets(&opts.sets)?;
    let cfg = runner::resolve(&def, seed, &opts.mutants, &sets)?;
    let (report, history) = runner::run(&def, &cfg);
    let mut bundle_path = None;
    if report.verdict != Verdict::Pass {
        bundle_path = Some(Bundle::from_report(&cfg, &report).write(out)?);
    }
    if let Some(path) = trace {
        let f = std::fs::File::create(path)
            .map_err(|e| format!("cannot write trace {}: {e}", path.display()))?;
        history
            .write_jsonl(std::io::BufWriter::new(f))
            .map_err(|e| format!("cannot write trace {}: {e}", path.display()))?;
    }
    drop(history);
    let mut code = report.verdict.exit_code();
    if check_determinism {
        let (again, _) = runner::run(&def, &cfg);
        if again.digest != report.digest {
            eprintln!(
                "nondeterminism: digest {} then {} for the same seed",
                report.digest, again.digest
            );
            code = EXIT_NONDETERMINISM;
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&report, bundle_path.as_deref()))
                .expect("json")
        );
    } else {
        print_human(&report);
    }
    if let Some(p) = &bundle_path {
        eprintln!("repro: {}", Bundle::repro_line(p));
        eprintln!("   or: {}", bundle::run_line(&report, &sets));
    }
    Ok(code)
}

fn select(scenarios: &[String], all: bool) -> Result<Vec<ScenarioDef>, String> {
    select_work(scenarios, all, None)
}

/// Parse a `--tier` value.
fn parse_tier(s: &str) -> Result<Tier, String> {
    match s {
        "harness" => Ok(Tier::Harness),
        "scripted" => Ok(Tier::Scripted),
        "randomised" | "randomized" => Ok(Tier::Randomised),
        _ => Err("expected harness, scripted or randomised".into()),
    }
}

/// Does `id` match `pattern`, where `*` matches any run of characters and `?` any one?
pub fn glob_match(pattern: &str, id: &str) -> bool {
    let (p, s): (Vec<char>, Vec<char>) = (pattern.chars().collect(), id.chars().collect());
    // Iterative matcher with backtracking to the last `*`.
    let (mut pi, mut si, mut star, mut mark) = (0, 0, None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// The scenarios a command works on: ids and globs on ids (in catalog order, each once), the
/// whole catalog with `--all`, and only those of `tier` when one is given (alone: that tier).
fn select_work(
    scenarios: &[String],
    all: bool,
    tier: Option<Tier>,
) -> Result<Vec<ScenarioDef>, String> {
    if all && !scenarios.is_empty() {
        return Err("give scenario ids or --all, not both".into());
    }
    let catalog = crate::catalog::all();
    let mut picked: Vec<ScenarioDef> = if all || (scenarios.is_empty() && tier.is_some()) {
        catalog.clone()
    } else if scenarios.is_empty() {
        return Err("name at least one scenario, or pass --all or --tier".into());
    } else {
        let mut chosen = vec![false; catalog.len()];
        for pat in scenarios {
            if pat.contains(['*', '?']) {
                let mut any = false;
                for (i, d) in catalog.iter().enumerate() {
                    if glob_match(pat, d.id) {
                        chosen[i] = true;
                        any = true;
                    }
                }
                if !any {
                    return Err(format!(
                        "no scenario matches '{pat}' (see `clustersim list`)"
                    ));
                }
            } else {
                runner::find(pat)?;
                let i = catalog.iter().position(|d| d.id == pat).expect("found");
                chosen[i] = true;
            }
        }
        catalog
            .iter()
            .zip(chosen)
            .filter(|(_, c)| *c)
            .map(|(d, _)| d.clone())
            .collect()
    };
    if let Some(t) = tier {
        picked.retain(|d| d.tier == t);
        if picked.is_empty() {
            return Err(format!(
                "no selected scenario is of tier {}",
                format!("{t:?}").to_lowercase()
            ));
        }
    }
    Ok(picked)
}

/// Fail early (before any seed runs) if bundles cannot be written into `dir`.
fn check_writable(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("--out {}: cannot create the directory: {e}", dir.display()))?;
    let probe = dir.join(format!(".clustersim-probe-{}", std::process::id()));
    std::fs::write(&probe, b"").map_err(|e| {
        format!(
            "--out {}: cannot write into the directory: {e}",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn explore_cmd(
    defs: &[ScenarioDef],
    seeds: Option<&str>,
    jobs: Option<usize>,
    opts: &RunOpts,
    out: &Path,
    json: bool,
    junit: Option<&Path>,
    limits: &ExploreLimits,
) -> Result<i32, String> {
    let time_budget = limits
        .time_budget
        .as_deref()
        .map(explore::parse_duration)
        .transpose()?;
    let seed_text = seeds.unwrap_or(if time_budget.is_some() {
        "0.."
    } else {
        "0..100"
    });
    let seeds = match (seeds, time_budget) {
        (Some(s), _) => explore::parse_seeds(s)?,
        (None, Some(_)) => 0..u64::MAX,
        (None, None) => 0..100,
    };
    let shard = match &limits.shard {
        Some(s) => explore::Shard::parse(s)?,
        None => explore::Shard::ALL,
    };
    let bounds = explore::Limits {
        time_budget,
        fail_fast: limits.fail_fast,
    };
    let sets = parse_sets(&opts.sets)?;
    let jobs = jobs.unwrap_or_else(default_jobs);
    if jobs == 0 {
        return Err("--jobs must be at least 1".into());
    }
    // Bad input is found before the first seed, not after the failures it would have recorded.
    for d in defs {
        runner::resolve(d, seeds.start, &opts.mutants, &sets)?;
    }
    check_writable(out)?;
    if let Some(path) = junit {
        crate::junit::check_writable(path)?;
    }
    let total = (defs.len() as u64).saturating_mul(seeds.end - seeds.start) / shard.count;
    let bar = if std::io::stderr().is_terminal() && !json && seeds.end != u64::MAX {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} runs  {per_sec}  eta {eta}  {msg}",
            )
            .expect("template"),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut failed = 0;
    let mut known = 0;
    // Runs that match a known finding are printed in full only for the first few of each
    // (finding, scenario); the summary lists every seed and every run still gets its bundle.
    let mut known_printed: std::collections::BTreeMap<(String, String), u32> = Default::default();
    let mut case_stats: std::collections::BTreeMap<String, crate::junit::CaseStats> =
        Default::default();
    let summary = explore::explore_with(
        defs,
        seeds,
        shard,
        bounds,
        &opts.mutants,
        &sets,
        jobs,
        Some(out),
        |fin: &Finished, failure| {
            bar.inc(1);
            let st = case_stats.entry(fin.report.scenario.clone()).or_default();
            st.runs += 1;
            st.wall_s += fin.wall_s;
            if let Some(f) = failure {
                let mut print = true;
                let mut elide = false;
                match f.finding.as_deref() {
                    Some(id) => {
                        known += 1;
                        let n = known_printed
                            .entry((id.to_string(), f.scenario.clone()))
                            .or_default();
                        *n += 1;
                        print = *n <= KNOWN_RUNS_PRINTED;
                        elide = *n == KNOWN_RUNS_PRINTED + 1;
                    }
                    None => failed += 1,
                }
                bar.set_message(format!("{failed} failed, {known} known"));
                if !json && (print || elide) {
                    bar.suspend(|| {
                        let tag = f
                            .finding
                            .as_deref()
                            .map_or("FAIL".to_string(), |id| format!("KNOWN {id}"));
                        if elide {
                            eprintln!(
                                "{tag} {}: further matching runs are counted in the summary (their bundles are written)",
                                f.scenario
                            );
                            return;
                        }
                        eprintln!(
                            "{tag} {} seed {}: {} {}",
                            f.scenario, f.seed, f.verdict, f.message
                        );
                        if let Some(p) = &f.bundle {
                            eprintln!("     repro: {}", Bundle::repro_line(p));
                        }
                    });
                }
            }
        },
    )?;
    bar.finish_and_clear();
    print_summary(&summary, json);
    if let Some(path) = junit {
        let suite = crate::junit::Suite::from_summary(
            defs,
            seed_text,
            &opts.mutants,
            &sets,
            &case_stats,
            &summary,
        );
        suite.write(path)?;
        if !json {
            println!("wrote JUnit report {}", path.display());
        }
    }
    Ok(summary_exit_code(&summary, limits.strict))
}

/// How many runs matching one known finding in one scenario `explore` prints in full.
const KNOWN_RUNS_PRINTED: u32 = 3;

/// Exit code of an exploration: 1 if a run failed (or, with `strict`, matched a known
/// finding), 3 if only coverage missed, else 0.
fn summary_exit_code(summary: &explore::Summary, strict: bool) -> i32 {
    let known: u64 = summary.known_findings.values().map(|k| k.runs).sum();
    if !summary.failures.is_empty() || (strict && known > 0) {
        1
    } else if !summary.coverage_failures().is_empty() {
        Verdict::Liveness.exit_code()
    } else {
        0
    }
}

fn print_summary(summary: &explore::Summary, json: bool) {
    if json {
        println!("{}", serde_json::to_string_pretty(summary).expect("json"));
        return;
    }
    println!(
        "{} runs, {} passed, {} failed in {:.1} s wall ({:.1} seeds/s, {:.0}× simulated/wall, {} events){}",
        summary.runs,
        summary.passed,
        summary.failures.len(),
        summary.wall_s,
        summary.seeds_per_s,
        summary.sim_s / summary.wall_s.max(1e-9),
        summary.events,
        if summary.shards > 1 {
            format!(", {} shards merged", summary.shards)
        } else {
            String::new()
        }
    );
    if let Some(why) = &summary.stopped_early {
        println!("stopped early: {why}");
    }
    for f in &summary.failures {
        println!(
            "  {} seed {}: {} — {}",
            f.scenario, f.seed, f.verdict, f.message
        );
    }
    for (id, k) in &summary.known_findings {
        // Per scenario: how many seeds, and the first few of them (the JSON summary and the
        // bundles have all of them).
        let mut by_scenario: std::collections::BTreeMap<&str, Vec<u64>> = Default::default();
        for f in &k.failures {
            by_scenario.entry(&f.scenario).or_default().push(f.seed);
        }
        let parts: Vec<String> = by_scenario
            .iter()
            .map(|(scenario, seeds)| {
                const SHOWN: usize = 8;
                let mut list: Vec<String> =
                    seeds.iter().take(SHOWN).map(|s| s.to_string()).collect();
                if seeds.len() > SHOWN {
                    list.push("…".into());
                }
                format!("{scenario} {} (seeds {})", seeds.len(), list.join(", "))
            })
            .collect();
        println!(
            "known finding {id}: {} runs — {}; see FINDINGS.md; --strict fails on them",
            k.runs,
            parts.join("; ")
        );
    }
    print!("{}", explore::render_coverage(summary));
}

fn merge_cmd(paths: &[PathBuf], json: bool) -> Result<i32, String> {
    if paths.is_empty() {
        return Err("merge needs at least one summary file (written by `explore --json`)".into());
    }
    let mut parts = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(p)
            .map_err(|e| format!("cannot read summary {}: {e}", p.display()))?;
        let s: explore::Summary = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not an explore --json summary: {e}", p.display()))?;
        parts.push(s);
    }
    let merged = explore::merge(&parts);
    print_summary(&merged, json);
    Ok(summary_exit_code(&merged, false))
}

fn replay(path: &Path, json: bool) -> Result<i32, String> {
    let bundle = Bundle::load(path)?;
    let def = runner::find(&bundle.scenario)?;
    let (report, _) = runner::run(&def, &bundle.config);
    let verdict_matches = report.verdict == bundle.verdict;
    let digest_matches = report.digest == bundle.digest;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "scenario": bundle.scenario,
                "seed": bundle.seed,
                "verdict": report.verdict,
                "recorded_verdict": bundle.verdict,
                "verdict_matches": verdict_matches,
                "digest": report.digest,
                "recorded_digest": bundle.digest,
                "digest_matches": digest_matches,
                "violation": report.first_violation(),
            }))
            .expect("json")
        );
    } else {
        print_human(&report);
        println!(
            "replay: verdict {} ({} recorded), digest {}",
            if verdict_matches {
                "matches"
            } else {
                "DIFFERS"
            },
            bundle.verdict,
            if digest_matches { "matches" } else { "DIFFERS" }
        );
    }
    if !digest_matches {
        eprintln!(
            "nondeterminism or a changed binary: digest {} recorded, {} now",
            bundle.digest, report.digest
        );
        return Ok(EXIT_NONDETERMINISM);
    }
    Ok(report.verdict.exit_code())
}

fn shrink(path: &Path, budget: usize, out: Option<PathBuf>) -> Result<i32, String> {
    let bundle = Bundle::load(path)?;
    if bundle.verdict == Verdict::Pass {
        return Err(format!(
            "bundle {} records a passing run: nothing to shrink",
            path.display()
        ));
    }
    let def = runner::find(&bundle.scenario)?;
    let target = bundle.verdict;
    let mut last = None;
    // The fault record of the failing run says which scheduled faults were ever applied: the
    // rest (skipped, or not reached before the chaos phase ended) go first, in one run.
    let (_, history) = runner::run(&def, &bundle.config);
    let applied = runner::applied_schedule_positions(&history);
    let mut start = bundle.config.faults.clone();
    let mut runs_before = 1;
    let unapplied = fault_injection::shrink::without_unapplied(&start, &applied);
    if unapplied.faults.len() < start.faults.len() && budget > 1 {
        let mut cfg = bundle.config.clone();
        cfg.faults = unapplied.clone();
        let (r, _) = runner::run(&def, &cfg);
        runs_before += 1;
        if r.verdict == target {
            start = unapplied;
            last = Some((cfg, r));
        }
    }
    let (small, runs) =
        fault_injection::shrink::shrink(&start, budget.saturating_sub(runs_before), |s| {
            let mut cfg = bundle.config.clone();
            cfg.faults = s.clone();
            let (r, _) = runner::run(&def, &cfg);
            let fails = r.verdict == target;
            if fails {
                last = Some((cfg, r));
            }
            fails
        });
    let (cfg, report) = match last {
        Some((cfg, r)) if cfg.faults == small => (cfg, r),
        _ => {
            let mut cfg = bundle.config.clone();
            cfg.faults = small.clone();
            let (r, _) = runner::run(&def, &cfg);
            (cfg, r)
        }
    };
    let shrunk = Bundle::from_report(&cfg, &report);
    let out = out.unwrap_or_else(|| path.with_extension("shrunk.json"));
    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(&shrunk).expect("json");
    std::fs::write(&out, json + "\n")
        .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    let runs = runs + runs_before;
    println!(
        "shrunk {} -> {} faults in {runs} runs; still {}",
        bundle.config.faults.faults.len(),
        small.faults.len(),
        report.verdict
    );
    for f in &small.faults {
        println!("  {f}");
    }
    println!("wrote {}", out.display());
    eprintln!("repro: {}", Bundle::repro_line(&out));
    Ok(report.verdict.exit_code())
}

fn explain(scenario: &str, seed: u64, opts: &RunOpts, json: bool) -> Result<i32, String> {
    let def = runner::find(scenario)?;
    let sets = parse_sets(&opts.sets)?;
    let cfg = runner::resolve(&def, seed, &opts.mutants, &sets)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&cfg).expect("json"));
        return Ok(0);
    }
    println!("{} — {}", def.id, def.description);
    println!("tier: {:?}", def.tier);
    println!("mutants it should catch: {}", def.mutants.join(", "));
    println!("coverage marks: {}", def.marks.join(", "));
    println!("fault schedule ({} faults):", cfg.faults.faults.len());
    for f in &cfg.faults.faults {
        println!("  {f}");
    }
    println!("resolved config:");
    println!("{}", serde_json::to_string_pretty(&cfg).expect("json"));
    Ok(0)
}

fn mutants(
    seeds: u64,
    scenarios: &[String],
    jobs: Option<usize>,
    json: bool,
) -> Result<i32, String> {
    let defs = if scenarios.is_empty() {
        crate::catalog::all()
    } else {
        select(scenarios, false)?
    };
    let results = explore::hunt_mutants(&defs, seeds, jobs.unwrap_or_else(default_jobs));
    let uncaught = results
        .iter()
        .filter(|r| r.caught_at_seed.is_none())
        .count();
    if json {
        println!("{}", serde_json::to_string_pretty(&results).expect("json"));
    } else {
        for r in &results {
            if !r.seeds_failing_unmutated.is_empty() {
                let seeds: Vec<String> = r
                    .seeds_failing_unmutated
                    .iter()
                    .map(u64::to_string)
                    .collect();
                println!(
                    "{:32} {:48} not counted: seed(s) {} fail without the mutant too",
                    r.mutant,
                    r.scenario,
                    seeds.join(", ")
                );
            }
            match r.caught_at_seed {
                Some(s) => println!(
                    "{:32} {:48} caught at seed {s} ({} seeds): {} {}",
                    r.mutant,
                    r.scenario,
                    r.seeds_run,
                    r.verdict.map(|v| v.to_string()).unwrap_or_default(),
                    r.message.clone().unwrap_or_default()
                ),
                None => println!(
                    "{:32} {:48} NOT CAUGHT in {} seeds",
                    r.mutant, r.scenario, r.seeds_run
                ),
            }
        }
    }
    Ok(if uncaught == 0 { 0 } else { 1 })
}

fn timeline(path: &Path, out: Option<PathBuf>) -> Result<i32, String> {
    let bundle = Bundle::load(path)?;
    let def = runner::find(&bundle.scenario)?;
    let (report, history) = runner::run(&def, &bundle.config);
    let html = crate::timeline::render(&report, &history, &Bundle::repro_line(path));
    let out = out.unwrap_or_else(|| path.with_extension("html"));
    std::fs::write(&out, html).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    println!(
        "wrote {} ({} events, {})",
        out.display(),
        report.events,
        report.verdict
    );
    Ok(0)
}
