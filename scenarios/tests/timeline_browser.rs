//! The timeline of a failing run, checked twice: its span model tells the story of the
//! failure (stages, sessions, the killed stream, the violation and the events it names), and
//! the page renders in a real headless Chromium without script errors, with the violation in
//! view. Without Chromium (`/usr/bin/chromium`, or `CLUSTERSIM_CHROMIUM`) the browser part is
//! skipped with a printed reason; `.ci/run` installs it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

const SCENARIO: &str = "streaming.fenced_after_kill_connection";
const MUTANT: &str = "no-fencing";

fn clustersim(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_clustersim"))
        .args(args)
        .output()
        .expect("run clustersim")
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("clustersim-tl-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A failing bundle of the scenario, rendered as a timeline page. Returns the page's path.
fn render_failing_timeline(dir: &Path) -> PathBuf {
    let out = clustersim(&[
        "run",
        SCENARIO,
        "--seed",
        "1",
        "--mutant",
        MUTANT,
        "--json",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "the mutant must fail the run");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bundle = v["bundle"].as_str().unwrap().to_string();
    let html = dir.join("timeline.html");
    let t = clustersim(&["timeline", &bundle, "--out", html.to_str().unwrap()]);
    assert_eq!(
        t.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&t.stderr)
    );
    html
}

#[test]
fn the_span_model_tells_the_story_of_the_failure() {
    let def = scenarios::runner::find(SCENARIO).unwrap();
    let cfg = scenarios::resolve(&def, 1, &[MUTANT.to_string()], &[]).unwrap();
    let (report, history) = scenarios::run(&def, &cfg);
    let m = scenarios::timeline::model(&report, &history);
    let lanes: Vec<&str> = m.lanes.iter().map(|l| l.id.as_str()).collect();
    for want in ["cluster", "n1", "n2", "n2:0"] {
        assert!(lanes.contains(&want), "lane {want} in {lanes:?}");
    }
    assert!(m.lanes.iter().any(|l| l.group == "tablet"), "{lanes:?}");
    // The tablet went through streaming under session s2 (s1 is node B's join session).
    assert!(m
        .spans
        .iter()
        .any(|s| s.lane.starts_with("t:") && s.label == "streaming (s2)" && s.cat == "stage"));
    // Session s2 was open, then closing, then drained, on both nodes.
    for node in ["n1", "n2"] {
        let s2: Vec<_> = m
            .spans
            .iter()
            .filter(|s| s.lane.starts_with(node) && s.label.starts_with("s2 "))
            .collect();
        assert!(s2.iter().any(|s| s.label == "s2 open"), "{node}: {s2:?}");
        assert!(
            s2.iter()
                .any(|s| s.label.starts_with("s2 closing") && s.i1.is_some()),
            "{node}: {s2:?}"
        );
    }
    // The stream that outlived its killed connection: killed for the caller, admitted by the
    // receiver, whose late response was discarded.
    let stream = m
        .arrows
        .iter()
        .find(|a| a.verb == "stream_mutation_fragments" && a.status == "killed")
        .expect("a killed stream");
    assert_eq!((stream.from.as_str(), stream.to.as_str()), ("n1", "n2"));
    assert!(stream.late_discarded.is_some());
    assert!(m.faults.iter().any(|f| f.label.contains("killed")));
    // The fencing violation is marked at its event and names the session's events.
    let v = &m.violations[0];
    assert_eq!(v.checker, "fencing");
    let at = v.at_i.expect("fencing names its event");
    assert!(v.related.contains(&at));
    let named: Vec<&str> = v
        .related
        .iter()
        .filter_map(|i| m.points.iter().find(|p| p.i == *i))
        .map(|p| p.kind.as_str())
        .collect();
    for kind in [
        "session_opened",
        "session_closing",
        "fragment_applied",
        "op_invoke",
    ] {
        assert!(named.contains(&kind), "{kind} in {named:?}");
    }
    // Client operations are spans with their outcome.
    assert!(m
        .spans
        .iter()
        .any(|s| s.cat == "client" && s.label == "write k7=0" && s.outcome == "ok"));
}

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var("CLUSTERSIM_CHROMIUM").unwrap_or_default(),
        "/usr/bin/chromium".into(),
        "/usr/bin/chromium-browser".into(),
    ];
    candidates
        .into_iter()
        .filter(|c| !c.is_empty())
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Load `page` in headless Chromium and return (dumped DOM, browser log).
fn load_in_browser(chromium: &Path, page: &Path, dir: &Path) -> (String, String) {
    let profile = dir.join(format!(
        "profile-{}",
        page.file_stem().unwrap().to_string_lossy()
    ));
    let dom_path = profile.with_extension("dom.html");
    let log_path = profile.with_extension("log");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1400,900",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        // Files, not pipes: the dumped DOM is larger than a pipe's buffer.
        .stdout(Stdio::from(std::fs::File::create(&dom_path).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&log_path).unwrap()))
        .spawn()
        .expect("start chromium");
    #[allow(clippy::disallowed_methods)] // a watchdog on an external browser, outside any run
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if t0.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("chromium did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    (
        std::fs::read_to_string(&dom_path).unwrap(),
        std::fs::read_to_string(&log_path).unwrap(),
    )
}

/// The attributes of `<div id="status" …>` in a dumped DOM.
fn status(dom: &str) -> std::collections::BTreeMap<String, String> {
    let start = dom
        .find("<div id=\"status\"")
        .expect("status element in the DOM");
    let tag = &dom[start..start + dom[start..].find('>').unwrap()];
    tag.split(" data-")
        .skip(1)
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.trim_matches('"').to_string()))
        })
        .collect()
}

#[test]
fn the_failing_timeline_renders_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "skipping the browser test: no Chromium at /usr/bin/chromium (install it with \
             `apt-get install chromium`, or point CLUSTERSIM_CHROMIUM at one)"
        );
        return;
    };
    let dir = temp_dir("browser");
    let page = render_failing_timeline(&dir);
    let html = std::fs::read_to_string(&page).unwrap();
    assert_eq!(
        html.matches("http").count(),
        html.matches("http://www.w3.org/2000/svg").count(),
        "self-contained: the only URL is the SVG namespace"
    );
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "no external assets"
    );
    let (dom, log) = load_in_browser(&chromium, &page, &dir);
    let st = status(&dom);
    assert_eq!(
        st.get("rendered").map(String::as_str),
        Some("1"),
        "{st:?}\n{log}"
    );
    assert_eq!(
        st.get("errors").map(String::as_str),
        Some("0"),
        "{st:?}\n{log}"
    );
    assert_eq!(
        st.get("violation-visible").map(String::as_str),
        Some("1"),
        "{st:?}"
    );
    for n in ["spans", "arrows", "related"] {
        let v: usize = st[n].parse().unwrap();
        assert!(v > 0, "{n} = 0 in {st:?}");
    }
    assert!(!log.contains("Uncaught"), "console errors:\n{log}");
    assert!(
        dom.contains("id=\"vmark\""),
        "the violation marker is in the SVG"
    );
    assert!(dom.contains("streaming (s2)"), "the stage spans are drawn");

    // The check bites: a page whose script fails is reported as such.
    let broken = dir.join("broken.html");
    std::fs::write(&broken, html.replacen("\"model\":", "\"modelx\":", 1)).unwrap();
    let (dom, _) = load_in_browser(&chromium, &broken, &dir);
    let st = status(&dom);
    assert_ne!(st.get("errors").map(String::as_str), Some("0"), "{st:?}");
    assert_eq!(st.get("rendered").map(String::as_str), Some("0"), "{st:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
