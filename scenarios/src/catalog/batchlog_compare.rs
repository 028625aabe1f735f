//! The batchlog v1/v2 comparison table (`clustersim batchlog-compare`): the steady workload of
//! issue #23358 — logged batches that succeed and are deleted at once, with a replay with
//! cleanup every second — followed by one measured replay, for each layout and size.
//!
//! It drives the pure storage model directly ([`model::batchlog::bench`]), not a cluster, so a
//! million batches take seconds. `replay_sim_ms` is the measured replay's scan cost in the
//! model's virtual time; `replay_wall_ms` is the wall time of that replay call, measured outside
//! any simulation (a benchmark figure, never part of a run).
//!
//! Three workloads per size: v1 and v2 with every batch succeeding (the pure #23358 pattern), and
//! v2 with one batch in [`FAILED_EVERY`] left for replay. Under upstream's cleanup rule a shard is
//! cleaned only by a pass that deleted one of its entries, so the all-success v2 row grows like
//! v1; the row with replays stays flat.

use model::batchlog::bench::{self, SteadyParams};
use model::batchlog::Layout;

/// In the workload with replays, one batch in this many fails after its batchlog write and is
/// left for replay.
pub const FAILED_EVERY: u64 = 10;

/// One row of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareRow {
    /// "v1" or "v2".
    pub layout: String,
    /// "all_success", or "1_in_N_replayed" (one batch in N left for replay).
    pub workload: String,
    /// Batches written before the measured replay.
    pub batches_written: u64,
    /// Dead entries (tombstones, shadowed rows) the measured replay stepped over.
    pub replay_dead_scanned: u64,
    /// Live rows it returned.
    pub replay_live_scanned: u64,
    /// Its scan cost in virtual ms (1 µs per fragment walked).
    pub replay_sim_ms: u64,
    /// Its wall time, ms.
    pub replay_wall_ms: f64,
}

/// v1 and v2 rows for each size in `batches`.
pub fn compare(batches: &[u64], seed: u64) -> Vec<CompareRow> {
    let mut rows = Vec::new();
    for &n in batches {
        for (layout, failed_every) in [(Layout::V1, 0), (Layout::V2, 0), (Layout::V2, FAILED_EVERY)]
        {
            let mut p = SteadyParams::new(layout, n, seed);
            p.failed_every = failed_every;
            let (mut table, end_ms) = bench::steady_workload(&p);
            // Wall time of the replay call only: a benchmark figure outside any simulation.
            #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
            let started = std::time::Instant::now();
            let s = bench::final_replay(&p, &mut table, end_ms);
            #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
            let wall = started.elapsed().as_secs_f64() * 1000.0;
            rows.push(CompareRow {
                layout: layout.name().to_string(),
                workload: if failed_every == 0 {
                    "all_success".to_string()
                } else {
                    format!("1_in_{failed_every}_replayed")
                },
                batches_written: n,
                replay_dead_scanned: s.cost.dead,
                replay_live_scanned: s.cost.live,
                replay_sim_ms: bench::scan_sim_ms(&p, s.cost),
                replay_wall_ms: wall,
            });
        }
    }
    rows
}

/// The rows as an aligned text table.
pub fn render(rows: &[CompareRow]) -> String {
    let header = [
        "layout",
        "workload",
        "batches_written",
        "replay_dead_scanned",
        "replay_live_scanned",
        "replay_sim_ms",
        "replay_wall_ms",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|r| {
            [
                r.layout.clone(),
                r.workload.clone(),
                r.batches_written.to_string(),
                r.replay_dead_scanned.to_string(),
                r.replay_live_scanned.to_string(),
                r.replay_sim_ms.to_string(),
                format!("{:.3}", r.replay_wall_ms),
            ]
        })
        .collect();
    let mut width = header.map(|h| h.len());
    for c in &cells {
        for (w, s) in width.iter_mut().zip(c) {
            *w = (*w).max(s.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, c: &[&str]| {
        let parts: Vec<String> = c
            .iter()
            .zip(width)
            .enumerate()
            .map(|(i, (s, w))| {
                if i <= 1 {
                    format!("{s:<w$}")
                } else {
                    format!("{s:>w$}")
                }
            })
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut out, &header);
    for c in &cells {
        let refs: Vec<&str> = c.iter().map(|s| s.as_str()).collect();
        line(&mut out, &refs);
    }
    out
}
