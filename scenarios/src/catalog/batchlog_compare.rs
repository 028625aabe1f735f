//! The batchlog v1/v2 comparison table (`clustersim batchlog-compare`): the steady workload of
//! issue #23358 — logged batches that succeed and are deleted at once, with a replay with
//! cleanup every second — followed by one measured replay, for each layout and size.
//!
//! It drives the pure storage model directly ([`model::batchlog::bench`]), not a cluster, so a
//! million batches take seconds. `replay_sim_ms` is the measured replay's scan cost in the
//! model's virtual time; `replay_wall_ms` is the wall time of that replay call, measured outside
//! any simulation (a benchmark figure, never part of a run). v1's dead count grows with the
//! batches written; v2's stays flat.

use model::batchlog::bench::{self, SteadyParams};
use model::batchlog::Layout;

/// One row of the table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CompareRow {
    /// "v1" or "v2".
    pub layout: String,
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
        for layout in [Layout::V1, Layout::V2] {
            let p = SteadyParams::new(layout, n, seed);
            let (mut table, end_ms) = bench::steady_workload(&p);
            // Wall time of the replay call only: a benchmark figure outside any simulation.
            #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
            let started = std::time::Instant::now();
            let s = bench::final_replay(&p, &mut table, end_ms);
            #[allow(clippy::disallowed_methods, clippy::disallowed_types)]
            let wall = started.elapsed().as_secs_f64() * 1000.0;
            rows.push(CompareRow {
                layout: layout.name().to_string(),
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
        "batches_written",
        "replay_dead_scanned",
        "replay_live_scanned",
        "replay_sim_ms",
        "replay_wall_ms",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.layout.clone(),
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
                if i == 0 {
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
