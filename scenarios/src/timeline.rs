//! A failing run as a self-contained HTML timeline: one lane per node (plus one for the
//! cluster-wide events), faults overlaid, every event hoverable. For people who would rather
//! look than read. No scripts or external assets: the file opens anywhere.

use crate::runner::RunReport;
use sim::History;
use std::collections::BTreeMap;
use std::fmt::Write;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn colour(kind: &str) -> &'static str {
    match kind {
        k if k.starts_with("fault") || k == "crash" || k == "connection_killed" => "#d62728",
        k if k.starts_with("rpc") || k.starts_with("stream") => "#c7c7c7",
        k if k.contains("session") || k.contains("barrier") => "#9467bd",
        k if k.contains("stage") || k.contains("migration") => "#1f77b4",
        k if k.contains("batch") || k.contains("replay") => "#ff7f0e",
        k if k.contains("leader") || k.contains("commit") || k.contains("applied") => "#2ca02c",
        "phase" => "#000000",
        _ => "#8c564b",
    }
}

/// Render `history` of the run `report` as one HTML page.
pub fn render(report: &RunReport, history: &History) -> String {
    let entries = history.entries();
    let end_ns = entries.last().map_or(1, |e| e.at.0.max(1));
    let mut lanes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for e in entries.iter() {
        let lane = e.node.map_or("cluster".to_string(), |n| n.to_string());
        lanes.entry(lane).or_default().push(e.index);
    }
    let width = 1600.0;
    let lane_h = 28.0;
    let left = 90.0;
    let height = lane_h * (lanes.len() as f64 + 1.0) + 20.0;
    let x = |ns: u64| left + (ns as f64 / end_ns as f64) * (width - left - 10.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="monospace" font-size="11">"#
    );
    // Phase boundaries across all lanes.
    for e in entries.iter() {
        if let Some(sim::SimEvent::Phase { name }) = e.sim() {
            let px = x(e.at.0);
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" y1="0" x2="{px:.1}" y2="{height}" stroke="#bbb" stroke-dasharray="3,3"/><text x="{:.1}" y="10" fill="#666">{name}</text>"##,
                px + 2.0
            );
        }
    }
    for (row, (lane, idxs)) in lanes.iter().enumerate() {
        let y = 20.0 + lane_h * row as f64;
        let _ = write!(
            svg,
            r##"<text x="4" y="{:.1}">{}</text><line x1="{left}" y1="{:.1}" x2="{width}" y2="{:.1}" stroke="#eee"/>"##,
            y + 14.0,
            escape(lane),
            y + 10.0,
            y + 10.0
        );
        for &i in idxs {
            let e = &entries[i];
            let kind = e.event.kind();
            let title = format!(
                "#{} t={}ms {} {}",
                e.index,
                e.at.0 / 1_000_000,
                kind,
                e.event.to_json()
            );
            let r = if colour(kind) == "#c7c7c7" { 1.5 } else { 3.0 };
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="{r}" fill="{}"><title>{}</title></circle>"#,
                x(e.at.0),
                y + 10.0,
                colour(kind),
                escape(&title)
            );
        }
    }
    // The violation, if any, as a red marker.
    if let Some(v) = report.first_violation() {
        if let Some(ns) = v.at_ns {
            let px = x(ns);
            let _ = write!(
                svg,
                r##"<line x1="{px:.1}" y1="0" x2="{px:.1}" y2="{height}" stroke="#d62728" stroke-width="2"/>"##
            );
        }
    }
    svg.push_str("</svg>");
    let mut faults = String::new();
    for f in &report.fault_timeline {
        let _ = write!(faults, "<li>{}</li>", escape(f));
    }
    let mut violations = String::new();
    for v in &report.violations {
        let _ = write!(
            violations,
            "<li><b>[{}] {}</b>: {}{}</li>",
            escape(&v.checker),
            v.verdict,
            escape(&v.message),
            v.at_index
                .map(|i| format!(" (event #{i})"))
                .unwrap_or_default()
        );
    }
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>{id} seed {seed}</title>
<style>body{{font-family:sans-serif;margin:1em}} .svg{{overflow-x:auto;border:1px solid #ddd}}</style></head>
<body><h2>{id} — seed {seed} — {verdict}</h2>
<p>{events} events, {sim:.3} s simulated, digest <code>{digest}</code>. Hover a dot for the event.</p>
<h3>Violations</h3><ul>{violations}</ul>
<h3>Faults</h3><ul>{faults}</ul>
<div class="svg">{svg}</div></body></html>
"#,
        id = escape(&report.scenario),
        seed = report.seed,
        verdict = report.verdict,
        events = report.events,
        sim = report.sim_time_ns as f64 / 1e9,
        digest = report.digest,
    )
}
