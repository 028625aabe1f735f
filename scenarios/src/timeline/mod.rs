//! A run as a self-contained HTML timeline that tells its story: a lane per node (and per
//! shard where events name a replica), one per tablet for its stages, and a cluster lane;
//! spans for everything that lasted (stages, sessions open → closing → drained, barrier waits,
//! client operations with their outcome, streams, group0 leadership), RPCs as arrows from
//! sender to receiver with killed, dropped and late-discarded ones marked, faults as shaded
//! intervals on the lanes they hit, and the violation marked at its event with the events its
//! message names highlighted.
//!
//! The span model is built in Rust ([`spans`]) and embedded as JSON next to a small
//! hand-written renderer (`timeline.js`, SVG) and stylesheet: no network, no external assets,
//! the file works from `file://`. The page reports its own health in
//! `<div id="status" data-errors=N data-violation-visible=0|1>`, which the browser test reads.

pub mod spans;

use crate::runner::RunReport;
use sim::History;

const SCRIPT: &str = include_str!("timeline.js");
const STYLE: &str = include_str!("timeline.css");

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// JSON that is safe inside a `<script>` element (no `</script>` or `<!--` can appear).
fn script_json(v: &serde_json::Value) -> String {
    serde_json::to_string(v)
        .expect("timeline model serialises")
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

/// The span model of a run (what the page draws).
pub fn model(report: &RunReport, history: &History) -> spans::Model {
    let events: Vec<spans::GenericEvent> = history
        .entries()
        .iter()
        .map(spans::GenericEvent::from_entry)
        .collect();
    // The deciding violation first.
    let mut violations = report.violations.clone();
    if let Some(first) = report.first_violation() {
        if let Some(pos) = violations.iter().position(|v| v == first) {
            let v = violations.remove(pos);
            violations.insert(0, v);
        }
    }
    if let Some(p) = &report.panic {
        violations.insert(
            0,
            crate::scenario::Violation {
                checker: "panic".into(),
                verdict: crate::scenario::Verdict::Panic,
                message: p.clone(),
                at_index: None,
                at_ns: None,
            },
        );
    }
    spans::build(&events, &violations)
}

/// Render `history` of the run `report` as one HTML page; `repro` is the command line the page
/// offers to reproduce it (the bundle's replay line: a bundle carries its whole config).
pub fn render(report: &RunReport, history: &History, repro: &str) -> String {
    let model = model(report, history);
    let meta = serde_json::json!({
        "scenario": report.scenario,
        "seed": report.seed,
        "mutants": report.mutants,
        "verdict": report.verdict,
        "digest": report.digest,
        "events": report.events,
        "sim_time_ns": report.sim_time_ns,
        "repro": repro,
        "pending": report.pending,
    });
    let data = serde_json::json!({ "meta": meta, "model": model });
    let title = format!(
        "{} seed {} — {}",
        report.scenario, report.seed, report.verdict
    );
    // The violations are also plain HTML, so the page says what failed even without scripts.
    let mut plain = String::new();
    for v in &report.violations {
        plain.push_str(&format!(
            "<li>[{}] {}: {}</li>",
            escape(&v.checker),
            v.verdict,
            escape(&v.message)
        ));
    }
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{STYLE}</style></head>
<body>
<div id="status" data-errors="0" data-violation-visible="0" data-rendered="0"></div>
<script>
window.__errors = [];
window.addEventListener("error", function (e) {{
  window.__errors.push(String(e.message));
  var s = document.getElementById("status");
  if (s) s.setAttribute("data-errors", String(window.__errors.length));
}});
</script>
<header id="head"><h1>{title}</h1><noscript><ul>{plain}</ul></noscript></header>
<div id="app"></div>
<script id="timeline-data" type="application/json">{data}</script>
<script>{SCRIPT}</script>
</body></html>
"#,
        title = escape(&title),
        data = script_json(&data),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_json_cannot_close_its_script_element() {
        let v = serde_json::json!({"m": "</script><script>alert(1)</script> <!-- & \u{2028}"});
        let s = script_json(&v);
        assert!(!s.contains("</script") && !s.contains("<!--") && !s.contains('\u{2028}'));
        let back: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }
}
