//! `clustersim bench`: throughput figures measured in one run, so they compare like with like.
//!
//! 1. Raw madsim request/response over `madsim::net::Endpoint` (no clustersim code at all).
//! 2. The same ping-pong through clustersim's transport, with history recording.
//! 3. Seeds/second of a harness scenario with 1 and 2 jobs, and simulated/wall time.
//! 4. Per protocol swarm: seeds/s, cost per transport message against raw madsim's, and the
//!    ratio to the figures before the per-seed leak fix and the streaming digest.
//! 5. Peak RSS of the one worker, before and after 400 more seeds (nothing may accumulate).
//!
//! Wall-clock time is read here, outside every simulation, only to time whole runs.
//!
//! Cost per message: the swarms' figure and the raw madsim figure it is divided by are both
//! measured in **CPU time of this process** (`CLOCK_PROCESS_CPUTIME_ID`; one worker, the calling
//! thread idle while it runs), so that load from other processes on a shared machine — which
//! stretches wall time, and differently for the raw run and the swarms minutes later — does not
//! skew the ratio. The wall-clock ratio is printed next to it. Both cover the same whole runs:
//! runtime creation, the run, the checkers and the report.
#![allow(clippy::disallowed_methods)]

use crate::explore;
use futures::FutureExt;
use serde::Serialize;
use sim::time::Duration;
use sim::{NetConfig, Sim, Verb};
use std::time::Instant;

struct Ping;
impl Verb for Ping {
    const NAME: &'static str = "ping";
    type Req = u64;
    type Resp = u64;
}

/// Figures of one bench run.
#[derive(Debug, Serialize)]
pub struct BenchReport {
    /// Round trips per run of the ping-pong benchmarks.
    pub round_trips: u64,
    /// Raw madsim: wall nanoseconds per message (request or response).
    pub raw_madsim_ns_per_msg: f64,
    /// Raw madsim: CPU nanoseconds of this process per message, over the same run.
    pub raw_madsim_cpu_ns_per_msg: f64,
    /// clustersim transport with history: wall nanoseconds per message.
    pub transport_ns_per_msg: f64,
    /// transport / raw (target ≤ 2.0).
    pub transport_cost_ratio: f64,
    /// History events recorded per round trip by the transport.
    pub events_per_round_trip: f64,
    /// Raw madsim CPU nanoseconds per message measured before each repetition of the swarms.
    pub raw_madsim_cpu_ns_per_msg_per_repetition: Vec<f64>,
    /// Scenario used for seeds/s.
    pub scenario: String,
    /// Seeds run per measurement.
    pub seeds: u64,
    /// Seeds per second with 1 job.
    pub seeds_per_s_1_job: f64,
    /// Seeds per second with 2 jobs.
    pub seeds_per_s_2_jobs: f64,
    /// 2 jobs / 1 job (target ≥ 1.7 on 2 cores).
    pub parallel_speedup: f64,
    /// Simulated time / wall time, 1 job.
    pub sim_over_wall: f64,
    /// Wall microseconds per history event, 1 job.
    pub us_per_event: f64,
    /// Per protocol scenario: seeds/s and transport messages/s with 1 job.
    pub scenarios: Vec<ScenarioFigures>,
    /// Peak RSS of the bench process (one worker ran every swarm seed in turn), kB.
    pub peak_rss_kb: Option<u64>,
    /// Peak RSS after a further 400 seeds of raft.swarm on one worker, kB (equal to the above
    /// when nothing of a finished seed stays alive).
    pub peak_rss_after_400_seeds_kb: Option<u64>,
}

/// Throughput of one scenario (1 job).
#[derive(Debug, Serialize)]
pub struct ScenarioFigures {
    /// Scenario id.
    pub scenario: String,
    /// Seeds run per repetition.
    pub seeds: u64,
    /// Repetitions measured (each with its own raw madsim run); the figures are the median
    /// repetition's.
    pub repetitions: usize,
    /// Seeds per wall second (median over the repetitions).
    pub seeds_per_s: f64,
    /// Transport messages per wall second.
    pub messages_per_s: f64,
    /// Simulated time / wall time.
    pub sim_over_wall: f64,
    /// Wall microseconds per history event.
    pub us_per_event: f64,
    /// CPU nanoseconds of the whole exploration per transport message, over raw madsim's CPU
    /// nanoseconds per message (target ≤ 3).
    pub cost_per_message_vs_raw: f64,
    /// Lowest and highest of that ratio over the repetitions.
    pub cost_per_message_vs_raw_min: f64,
    /// See `cost_per_message_vs_raw_min`.
    pub cost_per_message_vs_raw_max: f64,
    /// The same ratio in wall-clock time (skewed by other load on a shared machine).
    pub cost_per_message_vs_raw_wall: f64,
    /// Seeds/s of the same bench before the leak fix and the streaming digest (BENCHMARKS.md),
    /// if recorded.
    pub baseline_seeds_per_s: Option<f64>,
    /// seeds_per_s / baseline (target ≥ 2.5 for topology.swarm and batchlog.swarm).
    pub speedup_vs_baseline: Option<f64>,
}

/// Seeds/s the swarms reached in this bench on the binary before the per-seed leak fix and the
/// streaming digest (commit 3586912, same machine, same day; BENCHMARKS.md), to print the
/// today-vs-target ratio.
const BASELINE_SEEDS_PER_S: &[(&str, f64)] = &[
    ("raft.swarm", 24.0),
    ("topology.swarm", 10.1),
    ("batchlog.swarm", 13.4),
];

/// Peak resident set size of this process so far, in kB (Linux `VmHWM`; `None` elsewhere).
pub fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time this process has used so far, in nanoseconds (every thread; `None` if the clock
/// cannot be read).
pub fn process_cpu_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes one `timespec` through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return None;
    }
    Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Wall and process CPU time of `f`, in nanoseconds (CPU falls back to wall without the clock).
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64, f64) {
    let (c0, t0) = (process_cpu_ns(), Instant::now());
    let out = f();
    let wall = t0.elapsed().as_nanos() as f64;
    let cpu = match (c0, process_cpu_ns()) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64,
        _ => wall,
    };
    (out, wall, cpu)
}

/// Repetitions of the swarm measurements (and of the raw madsim run each is divided by).
const REPETITIONS: usize = 3;

/// One repetition of one swarm.
#[derive(Clone)]
struct SwarmSample {
    summary: explore::Summary,
    cpu_ratio: f64,
    wall_ratio: f64,
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
            (lo.min(*x), hi.max(*x))
        })
}

/// Protocol scenarios measured when the catalog has them.
const PROTOCOL_SCENARIOS: &[&str] = &["raft.swarm", "topology.swarm", "batchlog.swarm"];

/// Raw madsim's (wall, CPU) nanoseconds per message.
fn raw_madsim(round_trips: u64) -> (f64, f64) {
    let ((), wall, cpu) = timed(|| raw_madsim_run(round_trips));
    let msgs = (2 * round_trips) as f64;
    (wall / msgs, cpu / msgs)
}

fn raw_madsim_run(round_trips: u64) {
    let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
    rt.block_on(async move {
        let h = madsim::runtime::Handle::current();
        let server = h
            .create_node()
            .name("server")
            .ip("10.0.0.1".parse().expect("ip"))
            .build();
        let client = h
            .create_node()
            .name("client")
            .ip("10.0.0.2".parse().expect("ip"))
            .build();
        server.spawn(async move {
            let ep = madsim::net::Endpoint::bind("10.0.0.1:1")
                .await
                .expect("bind");
            let mut buf = [0u8; 8];
            loop {
                let (_, from) = ep.recv_from(1, &mut buf).await.expect("recv");
                ep.send_to(from, 2, &buf).await.expect("send");
            }
        });
        client
            .spawn(async move {
                madsim::time::sleep(Duration::from_millis(1)).await;
                let ep = madsim::net::Endpoint::bind("10.0.0.2:1")
                    .await
                    .expect("bind");
                let mut buf = [0u8; 8];
                for i in 0..round_trips {
                    ep.send_to("10.0.0.1:1", 1, &i.to_le_bytes())
                        .await
                        .expect("send");
                    ep.recv_from(2, &mut buf).await.expect("recv");
                }
            })
            .await
            .expect("client");
    });
}

fn transport(round_trips: u64) -> (f64, f64) {
    let t0 = Instant::now();
    let out = sim::runtime::run_seed(1, |h| async move {
        let sim = Sim::new(1, &[], NetConfig::default(), h);
        let server = sim.add_node(|_| std::future::pending().boxed_local());
        let client = sim.add_node(|_| std::future::pending().boxed_local());
        sim.net()
            .serve::<Ping>(server, |_f, x| async move { Ok(x) }.boxed_local());
        let s = sim.clone();
        let (tx, rx) = sim::sync::oneshot::channel();
        sim.spawn_on(client, async move {
            for i in 0..round_trips {
                s.net()
                    .call::<Ping>(client, server, i, Duration::from_secs(1))
                    .await
                    .expect("ping");
            }
            let _ = tx.send(());
        });
        let _ = rx.await;
    });
    let ns = t0.elapsed().as_nanos() as f64 / (2 * round_trips) as f64;
    (ns, out.history.len() as f64 / round_trips as f64)
}

fn explore_summary(scenario: &str, seeds: u64, jobs: usize) -> explore::Summary {
    let def = crate::runner::find(scenario).expect("bench scenario exists");
    explore::explore(&[def], 0..seeds, &[], &[], jobs, None, |_, _| {}).expect("bench exploration")
}

fn seeds_per_s(scenario: &str, seeds: u64, jobs: usize) -> (f64, f64, f64) {
    let s = explore_summary(scenario, seeds, jobs);
    (
        s.seeds_per_s,
        s.sim_s / s.wall_s.max(1e-9),
        s.wall_s * 1e6 / s.events.max(1) as f64,
    )
}

/// Run the benchmarks and print them.
pub fn run(quick: bool, json: bool) -> Result<i32, String> {
    let round_trips = if quick { 2_000 } else { 100_000 };
    let seeds = if quick { 10 } else { 1_000 };
    let scenario = "harness.receiver_outlives_killed_connection";
    // Warm both paths once so page faults and lazy init do not count.
    raw_madsim(100);
    transport(100);
    let (raw, raw_cpu) = raw_madsim(round_trips);
    let (ours, events) = transport(round_trips);
    let (one, sim_over_wall, us_per_event) = seeds_per_s(scenario, seeds, 1);
    let (two, _, _) = seeds_per_s(scenario, seeds, 2);
    let protocol_seeds = if quick { 3 } else { 50 };
    let reps = if quick { 1 } else { REPETITIONS };
    let ids: Vec<&str> = PROTOCOL_SCENARIOS
        .iter()
        .copied()
        .filter(|id| crate::runner::find(id).is_ok())
        .collect();
    // Each repetition measures raw madsim again right before the swarms it is divided into:
    // the machine's speed drifts (other tenants), and a ratio of two figures taken minutes
    // apart measured that drift. The figure kept is the median repetition's.
    let mut samples: Vec<Vec<SwarmSample>> = vec![Vec::new(); ids.len()];
    let mut raws = Vec::new();
    for _ in 0..reps {
        let (rw, rc) = raw_madsim(round_trips);
        raws.push((rw, rc));
        for (k, id) in ids.iter().enumerate() {
            let (s, _, cpu_ns) = timed(|| explore_summary(id, protocol_seeds, 1));
            let msgs = s.messages.max(1) as f64;
            let wall = s.wall_s.max(1e-9);
            samples[k].push(SwarmSample {
                summary: s,
                cpu_ratio: (cpu_ns / msgs) / rc,
                wall_ratio: (wall * 1e9 / msgs) / rw,
            });
        }
    }
    let scenarios = ids
        .iter()
        .zip(samples)
        .map(|(id, mut reps)| {
            let ratios: Vec<f64> = reps.iter().map(|r| r.cpu_ratio).collect();
            let (lo, hi) = min_max(&ratios);
            reps.sort_by(|a, b| a.cpu_ratio.total_cmp(&b.cpu_ratio));
            let med = &reps[reps.len() / 2];
            let s = &med.summary;
            let wall = s.wall_s.max(1e-9);
            let baseline = BASELINE_SEEDS_PER_S
                .iter()
                .find(|(b, _)| b == id)
                .map(|(_, v)| *v);
            let mut seeds_per_s: Vec<f64> = reps.iter().map(|r| r.summary.seeds_per_s).collect();
            seeds_per_s.sort_by(f64::total_cmp);
            let sps = seeds_per_s[seeds_per_s.len() / 2];
            ScenarioFigures {
                scenario: id.to_string(),
                seeds: protocol_seeds,
                repetitions: ratios.len(),
                seeds_per_s: sps,
                messages_per_s: s.messages as f64 / wall,
                sim_over_wall: s.sim_s / wall,
                us_per_event: wall * 1e6 / s.events.max(1) as f64,
                cost_per_message_vs_raw: med.cpu_ratio,
                cost_per_message_vs_raw_min: lo,
                cost_per_message_vs_raw_max: hi,
                cost_per_message_vs_raw_wall: med.wall_ratio,
                baseline_seeds_per_s: baseline,
                speedup_vs_baseline: baseline.map(|b| sps / b),
            }
        })
        .collect();
    let peak_rss_kb = self::peak_rss_kb();
    if crate::runner::find("raft.swarm").is_ok() {
        explore_summary("raft.swarm", if quick { 20 } else { 400 }, 1);
    }
    let peak_rss_after_400_seeds_kb = self::peak_rss_kb();
    let r = BenchReport {
        round_trips,
        raw_madsim_ns_per_msg: raw,
        raw_madsim_cpu_ns_per_msg: raw_cpu,
        raw_madsim_cpu_ns_per_msg_per_repetition: raws.iter().map(|r| r.1).collect(),
        transport_ns_per_msg: ours,
        transport_cost_ratio: ours / raw,
        events_per_round_trip: events,
        scenario: scenario.to_string(),
        seeds,
        seeds_per_s_1_job: one,
        seeds_per_s_2_jobs: two,
        parallel_speedup: two / one,
        sim_over_wall,
        us_per_event,
        scenarios,
        peak_rss_kb,
        peak_rss_after_400_seeds_kb,
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&r).expect("json"));
    } else {
        println!("ping-pong, {} round trips:", r.round_trips);
        println!(
            "  raw madsim Endpoint        {:8.0} ns/message ({:.0} ns of CPU)",
            r.raw_madsim_ns_per_msg, r.raw_madsim_cpu_ns_per_msg
        );
        println!(
            "  clustersim transport       {:8.0} ns/message  ({:.2}× raw, target ≤ 2; {:.1} history events per round trip)",
            r.transport_ns_per_msg, r.transport_cost_ratio, r.events_per_round_trip
        );
        println!("{} × {} seeds:", r.scenario, r.seeds);
        println!(
            "  1 job                      {:8.1} seeds/s",
            r.seeds_per_s_1_job
        );
        println!(
            "  2 jobs                     {:8.1} seeds/s  ({:.2}× one job, target ≥ 1.7)",
            r.seeds_per_s_2_jobs, r.parallel_speedup
        );
        println!("  simulated / wall time      {:8.0}×", r.sim_over_wall);
        println!("  wall per history event     {:8.2} µs", r.us_per_event);
        if !r.scenarios.is_empty() {
            let raws: Vec<String> = r
                .raw_madsim_cpu_ns_per_msg_per_repetition
                .iter()
                .map(|x| format!("{x:.0}"))
                .collect();
            println!(
                "protocol swarms, each repetition divided by the raw madsim run just before it ({} ns of CPU per message):",
                raws.join(", ")
            );
        }
        for f in &r.scenarios {
            println!(
                "{} × {} seeds (1 job): {:.1} seeds/s, {:.0} messages/s ({:.2}× the raw madsim message rate of {:.0}/s), {:.0}× simulated/wall, {:.2} µs per event",
                f.scenario,
                f.seeds,
                f.seeds_per_s,
                f.messages_per_s,
                f.messages_per_s / (1e9 / r.raw_madsim_ns_per_msg),
                1e9 / r.raw_madsim_ns_per_msg,
                f.sim_over_wall,
                f.us_per_event
            );
            print!(
                "  cost per message {:.2}× raw madsim in CPU time (median of {}, {:.2}–{:.2}; target ≤ 3; {:.2}× in wall time)",
                f.cost_per_message_vs_raw,
                f.repetitions,
                f.cost_per_message_vs_raw_min,
                f.cost_per_message_vs_raw_max,
                f.cost_per_message_vs_raw_wall
            );
            match (f.baseline_seeds_per_s, f.speedup_vs_baseline) {
                (Some(b), Some(x)) => println!(
                    "; {:.2}× the pre-fix {b:.1} seeds/s{}",
                    x,
                    if f.scenario == "raft.swarm" {
                        ""
                    } else {
                        " (target ≥ 2.5)"
                    }
                ),
                _ => println!(),
            }
        }
        if let (Some(a), Some(b)) = (r.peak_rss_kb, r.peak_rss_after_400_seeds_kb) {
            println!(
                "peak RSS per worker: {:.1} MB after the swarms, {:.1} MB after 400 more raft.swarm seeds ({:.2}×, target ≤ 1.5)",
                a as f64 / 1024.0,
                b as f64 / 1024.0,
                b as f64 / a.max(1) as f64
            );
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_cpu_time_counts_work() {
        let (sum, _, busy) = timed(|| {
            let mut x = 0u64;
            for i in 0..20_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
            x
        });
        assert_ne!(sum, 1);
        assert!(process_cpu_ns().is_some());
        assert!(
            busy > 1_000_000.0,
            "20M multiply-adds take over 1 ms of CPU: {busy}"
        );
        // (No upper bound on a sleep's CPU: other tests' threads share this process's clock.)
        let ((), wall, _) = timed(|| std::thread::sleep(std::time::Duration::from_millis(20)));
        assert!(wall >= 20e6);
    }
}
