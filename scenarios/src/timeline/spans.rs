//! The span model of a timeline: the history turned into lanes, spans, arrows, fault
//! intervals and a highlighted violation — what the page draws, computed here so it is tested
//! in Rust and the page only lays it out.
//!
//! Events are read generically, through their kind name and JSON fields ([`GenericEvent`]),
//! never through the model's types: a new protocol event still shows up as a point on its
//! node's lane, and one whose kind follows the `*_started` / `*_finished` naming (or any pair
//! in [`SUFFIXES`]) becomes a span without touching this file. The named [`RULES`] cover the
//! stories that need more than a pair: a session's open → closing → drained, a tablet's stage
//! after stage, a barrier from its start to every node's answer.
//!
//! What the history cannot say is not drawn: topology guards have no acquire/release events,
//! so a session's `closing` span carries the live guard count it started with (from
//! `session_closing.guards`) instead of one span per guard.

use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// One history entry, read through its kind and JSON fields.
#[derive(Clone, Debug, PartialEq)]
pub struct GenericEvent {
    /// Position in the history.
    pub i: usize,
    /// Virtual time, ns.
    pub t: u64,
    /// Node it happened on (`None`: cluster-wide).
    pub node: Option<u32>,
    /// Kind name, e.g. `session_opened`.
    pub kind: String,
    /// The event's fields (an object; the kind tag removed).
    pub data: Value,
}

impl GenericEvent {
    /// Read a history entry.
    pub fn from_entry(e: &sim::Entry) -> GenericEvent {
        let kind = e.event.kind().to_string();
        let mut data = match &e.event {
            sim::Event::Sim(_) => e.event.to_json(),
            sim::Event::Proto(_) => e.event.to_json()["data"].clone(),
        };
        if let Value::Object(m) = &mut data {
            if matches!(e.event, sim::Event::Sim(_)) {
                m.remove("kind");
            }
            // Protocol enums tag their variant (`ev`, `e`, `type`, …) with the kind again.
            m.retain(|k, v| !(k.len() <= 4 && v.as_str().is_some_and(|s| kind.ends_with(s))));
        }
        GenericEvent {
            i: e.index,
            t: e.at.0,
            node: e.node.map(|n| n.0),
            kind,
            data,
        }
    }

    fn u(&self, field: &str) -> Option<u64> {
        self.data.get(field).and_then(Value::as_u64)
    }

    fn s(&self, field: &str) -> Option<&str> {
        self.data.get(field).and_then(Value::as_str)
    }
}

/// A lane of the page: the cluster, a tablet, a node, or one shard of a node.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Lane {
    /// Stable id: `cluster`, `t0`, `n2`, `n2:0`.
    pub id: String,
    /// What the page prints.
    pub label: String,
    /// `cluster`, `tablet`, `node` or `shard`.
    pub group: &'static str,
}

/// A point event on a lane.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// History index.
    pub i: usize,
    /// Time, ns.
    pub t: u64,
    /// Lane id.
    pub lane: String,
    /// Kind name.
    pub kind: String,
    /// Category (legend, filter, colour).
    pub cat: &'static str,
    /// One line for the page.
    pub label: String,
    /// The fields.
    pub data: Value,
}

/// Something that lasted: a stage, a session state, a client op, a barrier wait.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Span {
    /// Lane id.
    pub lane: String,
    /// Start, ns.
    pub t0: u64,
    /// End, ns (the run's end if it never ended).
    pub t1: u64,
    /// History index of the event that began it.
    pub i0: usize,
    /// History index of the event that ended it (`None`: still open at the end).
    pub i1: Option<usize>,
    /// Category.
    pub cat: &'static str,
    /// What it was, e.g. `s1 open`, `streaming`, `write k7`.
    pub label: String,
    /// How it ended: `ok`, `failed`, `unknown`, `crashed`, `open`, … (empty: just ended).
    pub outcome: String,
    /// Spans of one story (a session's states, a tablet's stages) share a group.
    pub group: String,
}

/// A message from one lane to another.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Arrow {
    /// Sender lane.
    pub from: String,
    /// Receiver lane.
    pub to: String,
    /// Sent, ns.
    pub t0: u64,
    /// Admitted (or dropped / given up), ns.
    pub t1: u64,
    /// When the caller got its result, ns, if it did.
    pub t_done: Option<u64>,
    /// History index of the send.
    pub i0: usize,
    /// History indices of everything else about this call.
    pub rest: Vec<usize>,
    /// Verb.
    pub verb: String,
    /// `ok`, `error`, `killed`, `dropped`, `timeout`, `no_handler`, `pending`.
    pub status: String,
    /// The receiver's response was discarded because the connection had been killed.
    pub late_discarded: Option<u64>,
    /// Category (`rpc` or `rpc_raft`).
    pub cat: &'static str,
}

/// A fault as an interval on the lanes it hits.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultBand {
    /// Lanes hit (node lanes; `cluster` when it names no node).
    pub lanes: Vec<String>,
    /// Start, ns.
    pub t0: u64,
    /// End, ns (`t0` for an instantaneous fault).
    pub t1: u64,
    /// History index of the event that applied it.
    pub i0: usize,
    /// History index of the event that ended it.
    pub i1: Option<usize>,
    /// Description.
    pub label: String,
    /// `fault`, `down` (crashed), `paused`.
    pub what: &'static str,
}

/// The violation as the page marks it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Marked {
    /// Checker.
    pub checker: String,
    /// `safety` or `liveness`.
    pub verdict: String,
    /// The message.
    pub message: String,
    /// The offending event, if the checker named one.
    pub at_i: Option<usize>,
    /// Its time.
    pub at_t: Option<u64>,
    /// Events the message names: cited `#N` indices and events about the same session,
    /// tablet and key.
    pub related: Vec<usize>,
}

/// Everything the page draws.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Model {
    /// Lanes, in display order.
    pub lanes: Vec<Lane>,
    /// Point events (every event that is not an RPC's internals).
    pub points: Vec<Point>,
    /// Spans.
    pub spans: Vec<Span>,
    /// RPC and stream arrows.
    pub arrows: Vec<Arrow>,
    /// Fault intervals.
    pub faults: Vec<FaultBand>,
    /// Phase starts: (name, ns).
    pub phases: Vec<(String, u64)>,
    /// Violations, first (the deciding one) first.
    pub violations: Vec<Marked>,
    /// End of the run, ns.
    pub end_ns: u64,
}

/// A span that needs more than a start/end pair.
struct Rule {
    start: &'static str,
    /// Events that end the current state and start the next one of the same story.
    mids: &'static [&'static str],
    ends: &'static [&'static str],
    /// Fields that identify the story (with the node, unless `global`).
    key: &'static [&'static str],
    global: bool,
}

/// The named stories.
const RULES: &[Rule] = &[
    Rule {
        start: "session_opened",
        mids: &["session_closing"],
        ends: &["session_drained"],
        key: &["session", "shard"],
        global: false,
    },
    Rule {
        start: "op_invoke",
        mids: &[],
        ends: &["op_complete"],
        key: &["op"],
        global: false,
    },
    Rule {
        start: "batch_invoke",
        mids: &[],
        ends: &["batch_complete"],
        key: &["id"],
        global: true,
    },
    Rule {
        start: "stream_started",
        mids: &[],
        ends: &["stream_finished"],
        key: &["tablet", "session"],
        global: false,
    },
    Rule {
        start: "cleanup_begun",
        mids: &[],
        ends: &["cleanup_done"],
        key: &["tablet", "replica"],
        global: false,
    },
    Rule {
        start: "coordinator_started",
        mids: &[],
        ends: &["coordinator_stopped"],
        key: &["term"],
        global: false,
    },
    Rule {
        start: "barrier_started",
        mids: &[],
        ends: &["barrier_completed"],
        key: &["barrier"],
        global: true,
    },
    Rule {
        start: "batchlog_entry_written",
        mids: &["batchlog_entry_moved", "batchlog_entry_migrated"],
        ends: &["batchlog_entry_deleted"],
        key: &["id"],
        global: false,
    },
    Rule {
        start: "replay_pass_start",
        mids: &[],
        ends: &["replay_pass_end"],
        key: &[],
        global: false,
    },
    Rule {
        start: "injection_enabled",
        mids: &[],
        ends: &["injection_disabled"],
        key: &["name"],
        global: false,
    },
    Rule {
        start: "injection_entered",
        mids: &[],
        ends: &["injection_released"],
        key: &["name"],
        global: false,
    },
];

/// Stories kept on disk or in group0: a crash of the node that recorded them does not end them.
const DURABLE: &[&str] = &["stage|", "batchlog_entry_written|"];

/// Start and end suffixes of the generic pairing: `x_started` … `x_finished` is a span.
pub const SUFFIXES: &[(&str, &[&str])] = &[
    (
        "_started",
        &["_finished", "_completed", "_stopped", "_ended", "_failed"],
    ),
    ("_start", &["_end", "_done", "_stop"]),
    ("_begun", &["_done", "_finished"]),
    ("_opened", &["_closed"]),
    ("_invoke", &["_complete"]),
];

/// Fields that identify a story in the generic pairing.
const KEY_FIELDS: &[&str] = &[
    "id", "op", "batch", "barrier", "session", "tablet", "replica", "term", "name", "shard",
];

/// The category of a kind: colour, legend entry and filter.
pub fn category(kind: &str) -> &'static str {
    match kind {
        "fault" | "fault_applied" | "fault_undone" | "fault_skipped" | "connection_killed" => {
            "fault"
        }
        "crash" | "start" | "pause" => "node",
        "phase" => "phase",
        "disk_sync" => "disk",
        k if k.starts_with("rpc_") || k.starts_with("stream_open") || k == "stream_end" => "rpc",
        k if k.starts_with("raft_") || k.starts_with("coordinator_") || k.starts_with("group0") => {
            "raft"
        }
        k if k.starts_with("session_") => "session",
        k if k.starts_with("barrier_") => "barrier",
        k if k.starts_with("stage_") || k.starts_with("migration_") => "stage",
        k if k.starts_with("stream") || k.starts_with("fragment_") || k.starts_with("cleanup_") => {
            "stream"
        }
        k if k.starts_with("op_") || k.starts_with("batch_") => "client",
        k if k.contains("batchlog") || k.contains("replay") || k == "mutation_applied" => {
            "batchlog"
        }
        k if k.starts_with("injection_") => "injection",
        _ => "other",
    }
}

fn node_lane(n: u32) -> String {
    format!("n{n}")
}

/// The `{node, shard}` replica an event is about, if any.
fn replica_of(data: &Value) -> Option<(u64, u64)> {
    let r = data.get("replica")?;
    Some((r.get("node")?.as_u64()?, r.get("shard")?.as_u64()?))
}

/// A tablet's name: `t3` for a bare number, the id's own text (`table100/t0`) otherwise.
fn tablet_name(data: &Value) -> Option<String> {
    match data.get("tablet")? {
        Value::Number(n) => Some(format!("t{n}")),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// The lane an event belongs to.
fn lane_of(e: &GenericEvent) -> String {
    if let Some((n, s)) = replica_of(&e.data) {
        return format!("n{n}:{s}");
    }
    // Per-shard state of a node (a shard's session registry) goes on that shard's lane. The
    // batchlog's `shard` is a batchlog partition, not a CPU shard, so it stays on the node.
    if let (Some(n), Some(s)) = (e.node, e.u("shard")) {
        if matches!(
            category(&e.kind),
            "session" | "barrier" | "stream" | "stage"
        ) {
            return format!("n{n}:{s}");
        }
    }
    if matches!(e.kind.as_str(), "stage_committed" | "migration_requested") {
        if let Some(t) = tablet_name(&e.data) {
            return format!("t:{t}");
        }
    }
    e.node.map_or("cluster".to_string(), node_lane)
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        Value::Object(m) if m.contains_key("node") && m.contains_key("shard") => {
            format!("n{}:{}", m["node"], m["shard"])
        }
        Value::Array(a) => format!("[{}]", a.iter().map(compact).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// One line describing an event: its kind and its short fields.
pub fn label_of(e: &GenericEvent) -> String {
    let mut s = e.kind.clone();
    if let Value::Object(m) = &e.data {
        for (k, v) in m {
            let c = compact(v);
            if c.len() <= 40 {
                s.push_str(&format!(" {k}={c}"));
            }
        }
    }
    s
}

fn key_of(e: &GenericEvent, fields: &[&str], global: bool) -> String {
    let mut k = if global {
        String::new()
    } else {
        format!("{:?}|", e.node)
    };
    for f in fields {
        k.push_str(&compact(e.data.get(*f).unwrap_or(&Value::Null)));
        k.push('|');
    }
    k
}

fn span_label(e: &GenericEvent) -> String {
    let d = &e.data;
    let g = |f: &str| d.get(f).map(compact).unwrap_or_default();
    match e.kind.as_str() {
        "session_opened" => format!("s{} open", g("session")),
        "session_closing" => format!("s{} closing ({} guards live)", g("session"), g("guards")),
        "op_invoke" => match d.get("value").filter(|v| !v.is_null()) {
            Some(v) => format!("{} k{}={}", g("kind"), g("key"), compact(v)),
            None => format!("{} k{}", g("kind"), g("key")),
        },
        "batch_invoke" => format!("batch {}", g("id")),
        "stream_started" => format!("stream t{} s{}", g("tablet"), g("session")),
        "cleanup_begun" => format!("{} t{}", g("stage"), g("tablet")),
        "coordinator_started" => format!("coordinator term {}", g("term")),
        "barrier_started" => format!("barrier {} v{}", g("barrier"), g("version")),
        "batchlog_entry_written" => format!("entry {} {}", g("id"), g("stage")),
        "batchlog_entry_moved" => format!("entry {} failed_replay", g("id")),
        "batchlog_entry_migrated" => format!("entry {} migrated", g("id")),
        "replay_pass_start" => format!("replay pass cleanup={}", g("cleanup")),
        "injection_enabled" => format!("injection {} on", g("name")),
        "injection_entered" => format!("held at {}", g("name")),
        _ => label_of(e),
    }
}

fn outcome_of(end: &GenericEvent) -> String {
    let d = &end.data;
    if let Some(o) = d.get("outcome").and_then(Value::as_str) {
        return o.to_string();
    }
    if let Some(ok) = d.get("ok").and_then(Value::as_bool) {
        return if ok { "ok".into() } else { "failed".into() };
    }
    if let Some(e) = d.get("error").and_then(Value::as_str) {
        return format!("failed: {e}");
    }
    String::new()
}

struct Open {
    lane: String,
    t0: u64,
    i0: usize,
    cat: &'static str,
    label: String,
    group: String,
    node: Option<u32>,
}

#[derive(Default)]
struct Builder {
    spans: Vec<Span>,
    open: BTreeMap<String, Open>,
}

impl Builder {
    fn begin(&mut self, key: String, e: &GenericEvent, label: String, group: String) {
        if let Some(prev) = self.open.remove(&key) {
            // A tablet's next stage is the normal end of the previous one; anything else
            // started again without ending was cut short.
            let outcome = if key.starts_with("stage|") {
                String::new()
            } else {
                "superseded".into()
            };
            self.close(prev, e.t, Some(e.i), outcome);
        }
        self.open.insert(
            key,
            Open {
                lane: lane_of(e),
                t0: e.t,
                i0: e.i,
                cat: category(&e.kind),
                label,
                group,
                node: e.node,
            },
        );
    }

    fn close(&mut self, o: Open, t1: u64, i1: Option<usize>, outcome: String) {
        self.spans.push(Span {
            lane: o.lane,
            t0: o.t0,
            t1,
            i0: o.i0,
            i1,
            cat: o.cat,
            label: o.label,
            outcome,
            group: o.group,
        });
    }

    fn end(&mut self, key: &str, e: &GenericEvent) -> bool {
        match self.open.remove(key) {
            Some(o) => {
                self.close(o, e.t, Some(e.i), outcome_of(e));
                true
            }
            None => false,
        }
    }

    /// A crash loses every volatile story of the node.
    fn crash(&mut self, node: u32, e: &GenericEvent) {
        let keys: Vec<String> = self
            .open
            .iter()
            .filter(|(k, o)| o.node == Some(node) && !DURABLE.iter().any(|d| k.starts_with(d)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let o = self.open.remove(&k).expect("listed");
            self.close(o, e.t, Some(e.i), "crashed".into());
        }
    }
}

/// A fault record's label: the fault in the words of `clustersim` (`crash n2`), then who applied
/// it (`schedule #3` or `scripted`).
fn fault_text(fault: &Value, schedule: Option<u64>) -> String {
    let words = serde_json::from_value::<sim::Fault>(fault.clone())
        .map(|f| f.to_string())
        .unwrap_or_else(|_| compact(fault));
    match schedule {
        Some(i) => format!("{words} (schedule #{i})"),
        None => format!("{words} (scripted)"),
    }
}

/// Node numbers a fault names: typed fields (`node`, `from`, `to`, `a`, `b`) when the fault is
/// a JSON object, else every `nN` in its description.
pub fn nodes_named(fault: &Value) -> Vec<u32> {
    let mut out = Vec::new();
    match fault {
        Value::Object(m) => {
            for f in ["node", "from", "to", "a", "b"] {
                match m.get(f) {
                    Some(Value::Number(n)) => out.extend(n.as_u64().map(|n| n as u32)),
                    Some(Value::Array(a)) => {
                        out.extend(a.iter().filter_map(|x| x.as_u64()).map(|n| n as u32))
                    }
                    _ => {}
                }
            }
        }
        Value::String(s) => {
            let b = s.as_bytes();
            for (i, w) in b.iter().enumerate() {
                let boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
                if *w == b'n' && boundary {
                    let digits: String = s[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_digit())
                        .collect();
                    if let Ok(n) = digits.parse() {
                        out.push(n);
                    }
                }
            }
        }
        _ => {}
    }
    out.sort();
    out.dedup();
    out
}

/// Numbers written `<prefix><digits>` as a word in `msg` (`s1`, `t0`, `#421`).
fn numbers_after(msg: &str, prefix: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut rest = msg;
    while let Some(pos) = rest.find(prefix) {
        let before = msg.len() - rest.len() + pos;
        let boundary = before == 0
            || !msg.as_bytes()[before - 1].is_ascii_alphanumeric()
            || prefix.starts_with('#');
        rest = &rest[pos + prefix.len()..];
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let after_ok = !rest[digits.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
        if boundary && after_ok {
            if let Ok(n) = digits.parse() {
                out.push(n);
            }
        }
    }
    out
}

/// The events a violation's message names: `#N` citations, and events about every session,
/// tablet and key it names (an event counts if each of those fields it carries matches).
pub fn related_events(msg: &str, events: &[GenericEvent]) -> Vec<usize> {
    let mut out: Vec<usize> = numbers_after(msg, "#")
        .into_iter()
        .map(|n| n as usize)
        .collect();
    let sessions = numbers_after(msg, "s");
    let tablets = numbers_after(msg, "t");
    let keys = numbers_after(msg, "key ");
    let wanted: [(&[&str], &Vec<u64>); 3] = [
        (&["session", "origin"], &sessions),
        (&["tablet"], &tablets),
        (&["key"], &keys),
    ];
    for e in events {
        if category(&e.kind) == "rpc" || category(&e.kind) == "disk" {
            continue;
        }
        let mut matched = 0;
        let mut mismatched = false;
        for (fields, values) in &wanted {
            if values.is_empty() {
                continue;
            }
            for f in fields.iter() {
                match e.data.get(*f) {
                    Some(Value::Number(n)) if values.contains(&n.as_u64().unwrap_or(u64::MAX)) => {
                        matched += 1
                    }
                    Some(Value::Number(_)) | Some(Value::Null) => mismatched = true,
                    _ => {}
                }
            }
        }
        // Tablet alone matches too much (every stage of every migration); ask for more.
        let only_tablet = matched == 1 && e.data.get("tablet").is_some() && !tablets.is_empty();
        if matched > 0 && !mismatched && !(only_tablet && (sessions.len() + keys.len()) > 0) {
            out.push(e.i);
        }
    }
    out.sort();
    out.dedup();
    out.truncate(400);
    out
}

/// Build the model of a run from its events and violations.
pub fn build(events: &[GenericEvent], violations: &[crate::scenario::Violation]) -> Model {
    let end_ns = events.last().map_or(0, |e| e.t);
    let mut b = Builder::default();
    let mut m = Model {
        end_ns,
        ..Model::default()
    };
    let mut lanes: BTreeMap<(u8, u64, u64, String), Lane> = BTreeMap::new();
    let mut add_lane = |id: &str| {
        let lane = if id == "cluster" {
            ((0, 0, 0, String::new()), "cluster", "cluster".to_string())
        } else if let Some(t) = id.strip_prefix("t:") {
            let digits: String = t.chars().rev().take_while(char::is_ascii_digit).collect();
            let n: u64 = digits
                .chars()
                .rev()
                .collect::<String>()
                .parse()
                .unwrap_or(0);
            ((1, n, 0, t.to_string()), "tablet", format!("tablet {t}"))
        } else if let Some((n, s)) = id.trim_start_matches('n').split_once(':') {
            let (n, s): (u64, u64) = (n.parse().unwrap_or(0), s.parse().unwrap_or(0));
            (
                (2, n, s + 1, String::new()),
                "shard",
                format!("  n{n} shard {s}"),
            )
        } else {
            let n: u64 = id.trim_start_matches('n').parse().unwrap_or(0);
            ((2, n, 0, String::new()), "node", id.to_string())
        };
        lanes.entry(lane.0).or_insert(Lane {
            id: id.to_string(),
            label: lane.2,
            group: lane.1,
        });
    };
    add_lane("cluster");
    // RPC calls by id, built as their events arrive.
    let mut calls: BTreeMap<u64, Arrow> = BTreeMap::new();
    // Barrier starts by barrier id, for the per-node wait spans.
    let mut barriers: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
    // Current stage span of each tablet, and the current group0 leader span.
    let mut open_faults: BTreeMap<String, FaultBand> = BTreeMap::new();
    let mut leader: Option<(u32, u64)> = None;
    for e in events {
        let lane = lane_of(e);
        add_lane(&lane);
        if let Some(n) = e.node {
            add_lane(&node_lane(n));
        }
        let cat = category(&e.kind);
        let is_rpc = cat == "rpc";
        match e.kind.as_str() {
            "rpc_send" | "stream_open" => {
                let (Some(id), Some(from), Some(to)) = (e.u("id"), e.node, e.u("to")) else {
                    continue;
                };
                add_lane(&node_lane(to as u32));
                let verb = e.s("verb").unwrap_or("?").to_string();
                calls.insert(
                    id,
                    Arrow {
                        from: node_lane(from),
                        to: node_lane(to as u32),
                        t0: e.t,
                        t1: e.t,
                        t_done: None,
                        i0: e.i,
                        rest: Vec::new(),
                        cat: if verb.starts_with("raft_") {
                            "rpc_raft"
                        } else {
                            "rpc"
                        },
                        verb,
                        status: "pending".into(),
                        late_discarded: None,
                    },
                );
            }
            "rpc_admit"
            | "rpc_done"
            | "rpc_dropped"
            | "rpc_late_response_discarded"
            | "rpc_stalled"
            | "stream_end" => {
                if let Some(a) = e.u("id").and_then(|id| calls.get_mut(&id)) {
                    a.rest.push(e.i);
                    match e.kind.as_str() {
                        "rpc_admit" => a.t1 = e.t,
                        "rpc_dropped" => {
                            a.t1 = e.t;
                            a.status = "dropped".into();
                        }
                        "rpc_done" => {
                            a.t_done = Some(e.t);
                            let o = e.s("outcome").unwrap_or("ok");
                            if a.status != "dropped" {
                                a.status = match o {
                                    "connection_closed" => "killed".into(),
                                    other => other.to_string(),
                                };
                            }
                        }
                        "rpc_late_response_discarded" => a.late_discarded = Some(e.t),
                        "stream_end" => {
                            if a.t1 == a.t0 {
                                a.t1 = e.t;
                            }
                            if a.t_done.is_none() || e.t > a.t_done.unwrap_or(0) {
                                a.t_done = Some(e.t);
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        if !is_rpc {
            m.points.push(Point {
                i: e.i,
                t: e.t,
                lane: lane.clone(),
                kind: e.kind.clone(),
                cat,
                label: label_of(e),
                data: e.data.clone(),
            });
        }
        // Faults, crashes, pauses and phases.
        match e.kind.as_str() {
            "phase" => {
                let name = e.s("name").unwrap_or("?").to_string();
                if name == "heal" {
                    for (_, mut f) in std::mem::take(&mut open_faults) {
                        f.t1 = e.t;
                        f.i1 = Some(e.i);
                        m.faults.push(f);
                    }
                }
                m.phases.push((name, e.t));
            }
            "fault_applied" => {
                // A typed fault record: `fault` is the fault (an object) and `id` pairs it
                // with its `fault_undone`. Older bundles carried a text description instead.
                let desc = e.data.get("fault").cloned().unwrap_or(Value::Null);
                let text = fault_text(&desc, e.u("schedule"));
                let nodes = nodes_named(&desc);
                for n in &nodes {
                    add_lane(&node_lane(*n));
                }
                let band = FaultBand {
                    lanes: if nodes.is_empty() {
                        vec!["cluster".into()]
                    } else {
                        nodes.iter().map(|n| node_lane(*n)).collect()
                    },
                    t0: e.t,
                    t1: e.t,
                    i0: e.i,
                    i1: None,
                    label: text,
                    what: "fault",
                };
                let lasting = desc.get("type").and_then(Value::as_str) != Some("kill_connection");
                match e.u("id").or(e.u("index")) {
                    Some(id) if lasting => {
                        open_faults.insert(format!("f{id}"), band);
                    }
                    _ => m.faults.push(band),
                }
            }
            "fault_undone" => {
                if let Some(mut f) = e
                    .u("id")
                    .or(e.u("index"))
                    .and_then(|id| open_faults.remove(&format!("f{id}")))
                {
                    f.t1 = e.t;
                    f.i1 = Some(e.i);
                    m.faults.push(f);
                }
            }
            "crash" => {
                if let Some(n) = e.node {
                    b.crash(n, e);
                    if leader.is_some_and(|(l, _)| l == n) {
                        leader = None;
                    }
                    open_faults.insert(
                        format!("down{n}"),
                        FaultBand {
                            lanes: vec![node_lane(n)],
                            t0: e.t,
                            t1: e.t,
                            i0: e.i,
                            i1: None,
                            label: format!("n{n} down"),
                            what: "down",
                        },
                    );
                }
            }
            "start" => {
                if let Some(mut f) = e.node.and_then(|n| open_faults.remove(&format!("down{n}"))) {
                    f.t1 = e.t;
                    f.i1 = Some(e.i);
                    m.faults.push(f);
                }
            }
            "pause" => {
                let Some(n) = e.node else { continue };
                if e.data.get("paused").and_then(Value::as_bool) == Some(true) {
                    open_faults.insert(
                        format!("pause{n}"),
                        FaultBand {
                            lanes: vec![node_lane(n)],
                            t0: e.t,
                            t1: e.t,
                            i0: e.i,
                            i1: None,
                            label: format!("n{n} paused"),
                            what: "paused",
                        },
                    );
                } else if let Some(mut f) = open_faults.remove(&format!("pause{n}")) {
                    f.t1 = e.t;
                    f.i1 = Some(e.i);
                    m.faults.push(f);
                }
            }
            "connection_killed" => {
                if let (Some(from), Some(to)) = (e.u("from"), e.u("to")) {
                    m.faults.push(FaultBand {
                        lanes: vec![node_lane(from as u32), node_lane(to as u32)],
                        t0: e.t,
                        t1: e.t,
                        i0: e.i,
                        i1: None,
                        label: format!(
                            "connection n{from}->n{to} killed ({} calls failed)",
                            e.u("failed_calls").unwrap_or(0)
                        ),
                        what: "fault",
                    });
                }
            }
            _ => {}
        }
        // Tablet stages: each committed stage lasts until the next commit for the tablet.
        if e.kind == "stage_committed" {
            if let Some(t) = tablet_name(&e.data) {
                let key = format!("stage|{t}");
                let migration = e.u("migration").unwrap_or(0);
                match e.data.get("stage").and_then(Value::as_str) {
                    Some(stage) => {
                        let label = match e.u("session") {
                            Some(s) => format!("{stage} (s{s})"),
                            None => stage.to_string(),
                        };
                        b.begin(key, e, label, format!("{t} migration {migration}"));
                    }
                    None => {
                        b.end(&key, e);
                    }
                }
            }
        }
        // Raft leadership: from winning an election until another leader or a crash.
        if e.kind == "raft_became_leader" {
            if let (Some(n), Some(term)) = (e.node, e.u("t").or(e.u("term"))) {
                if let Some((_, old)) = leader {
                    b.end(&format!("leader|{old}"), e);
                }
                b.open.insert(
                    format!("leader|{term}"),
                    Open {
                        lane: node_lane(n),
                        t0: e.t,
                        i0: e.i,
                        cat: "raft",
                        label: format!("group0 leader, term {term}"),
                        group: format!("term {term}"),
                        node: Some(n),
                    },
                );
                leader = Some((n, term));
            }
        }
        // Barrier waits: from the barrier's start to each node's answer, on that node.
        if e.kind == "barrier_started" {
            if let Some(id) = e.u("barrier") {
                barriers.insert(id, (e.t, e.i));
            }
        }
        if matches!(e.kind.as_str(), "barrier_answered" | "barrier_refused") {
            if let Some((t0, i0)) = e.u("barrier").and_then(|id| barriers.get(&id)) {
                let waited = e.data.get("waited_for_drain").and_then(Value::as_bool) == Some(true);
                b.spans.push(Span {
                    lane: lane.clone(),
                    t0: *t0,
                    t1: e.t,
                    i0: *i0,
                    i1: Some(e.i),
                    cat: "barrier",
                    label: format!(
                        "barrier {} {}{}",
                        e.u("barrier").unwrap_or(0),
                        if e.kind == "barrier_refused" {
                            "refused"
                        } else {
                            "answered"
                        },
                        if waited { " after drain" } else { "" }
                    ),
                    outcome: if e.kind == "barrier_refused" {
                        "failed".into()
                    } else {
                        "ok".into()
                    },
                    group: format!("barrier {}", e.u("barrier").unwrap_or(0)),
                });
            }
        }
        // The named stories.
        let mut handled = false;
        for r in RULES {
            if e.kind == r.start {
                let key = format!("{}|{}", r.start, key_of(e, r.key, r.global));
                b.begin(key.clone(), e, span_label(e), key);
                handled = true;
            } else if r.mids.contains(&e.kind.as_str()) {
                let key = format!("{}|{}", r.start, key_of(e, r.key, r.global));
                if let Some(o) = b.open.remove(&key) {
                    let group = o.group.clone();
                    b.close(o, e.t, Some(e.i), String::new());
                    b.begin(key, e, span_label(e), group);
                }
                handled = true;
            } else if r.ends.contains(&e.kind.as_str()) {
                let key = format!("{}|{}", r.start, key_of(e, r.key, r.global));
                b.end(&key, e);
                handled = true;
            }
        }
        // Everything else that follows the start/end naming.
        if !handled && !is_rpc {
            for (start, ends) in SUFFIXES {
                if let Some(stem) = e.kind.strip_suffix(start) {
                    let key = format!("generic|{stem}|{}", key_of(e, KEY_FIELDS, false));
                    b.begin(key.clone(), e, span_label(e), key);
                    break;
                }
                if let Some(end) = ends.iter().find(|s| e.kind.ends_with(**s)) {
                    let stem = &e.kind[..e.kind.len() - end.len()];
                    let key = format!("generic|{stem}|{}", key_of(e, KEY_FIELDS, false));
                    if b.end(&key, e) {
                        break;
                    }
                }
            }
        }
    }
    for (_, o) in std::mem::take(&mut b.open) {
        b.close(o, end_ns, None, "open".into());
    }
    for (_, mut f) in open_faults {
        f.t1 = end_ns;
        m.faults.push(f);
    }
    m.spans = b.spans;
    m.spans.sort_by_key(|s| (s.t0, s.i0));
    m.faults.sort_by_key(|f| (f.t0, f.i0));
    m.arrows = calls.into_values().collect();
    m.lanes = lanes.into_values().collect();
    m.violations = violations
        .iter()
        .map(|v| Marked {
            checker: v.checker.clone(),
            verdict: v.verdict.to_string(),
            message: v.message.clone(),
            at_i: v.at_index,
            at_t: v.at_ns,
            related: related_events(&v.message, events),
        })
        .collect();
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Violation;
    use serde_json::json;

    fn ev(i: usize, t: u64, node: Option<u32>, kind: &str, data: Value) -> GenericEvent {
        GenericEvent {
            i,
            t,
            node,
            kind: kind.into(),
            data,
        }
    }

    fn spans_of<'a>(m: &'a Model, cat: &str) -> Vec<&'a Span> {
        m.spans.iter().filter(|s| s.cat == cat).collect()
    }

    #[test]
    fn a_session_is_open_then_closing_then_drained_per_node() {
        let evs = vec![
            ev(
                0,
                10,
                Some(1),
                "session_opened",
                json!({"session": 1, "version": 3}),
            ),
            ev(
                1,
                12,
                Some(2),
                "session_opened",
                json!({"session": 1, "version": 3}),
            ),
            ev(
                2,
                20,
                Some(1),
                "session_closing",
                json!({"session": 1, "guards": 2, "version": 5}),
            ),
            ev(3, 30, Some(1), "session_drained", json!({"session": 1})),
        ];
        let m = build(&evs, &[]);
        let s = spans_of(&m, "session");
        assert_eq!(s.len(), 3, "{s:?}");
        assert_eq!((s[0].lane.as_str(), s[0].t0, s[0].t1), ("n1", 10, 20));
        assert_eq!(s[0].label, "s1 open");
        assert_eq!((s[1].lane.as_str(), s[1].t0, s[1].t1), ("n2", 12, 30));
        assert_eq!(s[1].outcome, "open", "n2 never closed it");
        assert_eq!(s[1].i1, None);
        assert_eq!((s[2].t0, s[2].t1), (20, 30));
        assert_eq!(s[2].label, "s1 closing (2 guards live)");
        assert_eq!(s[0].group, s[2].group, "one story");
    }

    #[test]
    fn per_shard_sessions_get_shard_lanes() {
        let evs = vec![
            ev(
                0,
                10,
                Some(1),
                "session_opened",
                json!({"session": 1, "shard": 0}),
            ),
            ev(
                1,
                10,
                Some(1),
                "session_opened",
                json!({"session": 1, "shard": 1}),
            ),
            ev(
                2,
                20,
                Some(1),
                "session_closing",
                json!({"session": 1, "shard": 1, "guards": 0}),
            ),
            ev(
                3,
                30,
                Some(1),
                "batchlog_entry_written",
                json!({"id": 4, "shard": 7, "stage": "initial"}),
            ),
        ];
        let m = build(&evs, &[]);
        let s = spans_of(&m, "session");
        assert_eq!(s.len(), 3);
        assert_eq!(
            (s[0].lane.as_str(), s[0].t1),
            ("n1:0", 30),
            "shard 0 never closed"
        );
        assert_eq!((s[1].lane.as_str(), s[1].t1), ("n1:1", 20));
        assert!(m.lanes.iter().any(|l| l.id == "n1:1" && l.group == "shard"));
        assert_eq!(
            spans_of(&m, "batchlog")[0].lane,
            "n1",
            "a batchlog shard is not a lane"
        );
    }

    #[test]
    fn stages_follow_each_other_on_the_tablet_lane_and_ops_carry_outcomes() {
        let st = |i, t, stage: Value| {
            ev(
                i,
                t,
                Some(1),
                "stage_committed",
                json!({"tablet": 0, "stage": stage, "session": null, "migration": 2}),
            )
        };
        let evs = vec![
            st(0, 5, json!("allow_write_both_read_old")),
            ev(
                1,
                6,
                Some(1),
                "op_invoke",
                json!({"op": 1, "kind": "write", "key": 7, "value": 0}),
            ),
            st(2, 9, json!("streaming")),
            ev(
                3,
                11,
                Some(1),
                "op_complete",
                json!({"op": 1, "kind": "write", "outcome": "unknown", "value": null}),
            ),
            st(4, 14, Value::Null),
        ];
        let m = build(&evs, &[]);
        let s = spans_of(&m, "stage");
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].lane.as_str(), s[0].label.as_str(), s[0].t1),
            ("t:t0", "allow_write_both_read_old", 9)
        );
        assert_eq!(
            (s[1].label.as_str(), s[1].t0, s[1].t1),
            ("streaming", 9, 14)
        );
        let ops = spans_of(&m, "client");
        assert_eq!(ops.len(), 1);
        assert_eq!(
            (ops[0].label.as_str(), ops[0].outcome.as_str()),
            ("write k7=0", "unknown")
        );
        assert!(m
            .lanes
            .iter()
            .any(|l| l.id == "t:t0" && l.group == "tablet"));
        let named = vec![ev(
            0,
            1,
            Some(1),
            "stage_committed",
            json!({"tablet": "table100/t3", "stage": "streaming", "session": 2}),
        )];
        let m = build(&named, &[]);
        assert_eq!(
            m.spans[0].lane, "t:table100/t3",
            "tablet ids keyed by table keep their name"
        );
        assert!(m.lanes.iter().any(|l| l.label == "tablet table100/t3"));
    }

    #[test]
    fn barriers_span_from_start_to_every_answer() {
        let evs = vec![
            ev(
                0,
                100,
                Some(1),
                "barrier_started",
                json!({"barrier": 7, "version": 3, "nodes": [1, 2]}),
            ),
            ev(
                1,
                110,
                Some(1),
                "barrier_answered",
                json!({"barrier": 7, "waited_for_drain": false}),
            ),
            ev(
                2,
                150,
                Some(2),
                "barrier_answered",
                json!({"barrier": 7, "waited_for_drain": true}),
            ),
            ev(
                3,
                160,
                Some(1),
                "barrier_completed",
                json!({"barrier": 7, "ok": true}),
            ),
        ];
        let m = build(&evs, &[]);
        let s = spans_of(&m, "barrier");
        let waits: Vec<_> = s.iter().filter(|s| s.label.contains("answered")).collect();
        assert_eq!(waits.len(), 2);
        assert_eq!(
            (waits[1].lane.as_str(), waits[1].t0, waits[1].t1),
            ("n2", 100, 150)
        );
        assert!(waits[1].label.ends_with("after drain"));
        let whole: Vec<_> = s
            .iter()
            .filter(|s| s.label.starts_with("barrier 7 v3"))
            .collect();
        assert_eq!(
            (whole[0].t0, whole[0].t1, whole[0].outcome.as_str()),
            (100, 160, "ok")
        );
    }

    #[test]
    fn rpcs_become_arrows_and_killed_or_dropped_ones_are_marked() {
        let evs = vec![
            ev(
                0,
                1,
                Some(1),
                "rpc_send",
                json!({"id": 5, "verb": "stream", "to": 2, "conn": 0}),
            ),
            ev(
                1,
                3,
                Some(2),
                "rpc_admit",
                json!({"id": 5, "verb": "stream", "from": 1}),
            ),
            ev(
                2,
                4,
                Some(1),
                "connection_killed",
                json!({"from": 1, "to": 2, "failed_calls": 1}),
            ),
            ev(
                3,
                4,
                Some(1),
                "rpc_done",
                json!({"id": 5, "verb": "stream", "outcome": "connection_closed"}),
            ),
            ev(
                4,
                9,
                Some(2),
                "rpc_late_response_discarded",
                json!({"id": 5, "verb": "stream"}),
            ),
            ev(
                5,
                10,
                Some(1),
                "rpc_send",
                json!({"id": 6, "verb": "raft_heartbeat", "to": 3, "conn": 1}),
            ),
            ev(
                6,
                10,
                Some(1),
                "rpc_dropped",
                json!({"id": 6, "verb": "raft_heartbeat", "reason": "partition"}),
            ),
        ];
        let m = build(&evs, &[]);
        assert_eq!(m.arrows.len(), 2);
        let a = &m.arrows[0];
        assert_eq!(
            (a.from.as_str(), a.to.as_str(), a.t0, a.t1),
            ("n1", "n2", 1, 3)
        );
        assert_eq!(a.status, "killed");
        assert_eq!(a.late_discarded, Some(9));
        assert_eq!(m.arrows[1].status, "dropped");
        assert_eq!(m.arrows[1].cat, "rpc_raft");
        assert!(
            m.points.iter().all(|p| p.cat != "rpc"),
            "RPC internals are arrows, not points"
        );
        assert!(
            m.lanes.iter().any(|l| l.id == "n3"),
            "a receiver gets a lane"
        );
        let kill = m
            .faults
            .iter()
            .find(|f| f.label.contains("killed"))
            .unwrap();
        assert_eq!(kill.lanes, vec!["n1", "n2"]);
    }

    #[test]
    fn faults_are_intervals_on_the_nodes_they_name_and_crashes_end_volatile_spans() {
        let evs = vec![
            ev(0, 0, Some(1), "coordinator_started", json!({"term": 1})),
            ev(1, 1, Some(1), "raft_became_leader", json!({"t": 1})),
            ev(
                2,
                10,
                None,
                "fault_applied",
                json!({"id": 1, "schedule": 0, "fault": {"type": "partition", "a": [1], "b": [2, 3], "oneway": false}}),
            ),
            ev(3, 20, Some(1), "crash", json!({"lost_writes": 0})),
            ev(
                4,
                30,
                None,
                "fault_undone",
                json!({"id": 1, "by": "schedule", "fault": {"type": "partition", "a": [1], "b": [2, 3], "oneway": false}}),
            ),
            ev(5, 40, Some(1), "start", json!({"incarnation": 1})),
            ev(
                6,
                50,
                None,
                "fault_applied",
                json!({"id": 2, "schedule": null, "fault": {"type": "crash", "node": 2}}),
            ),
        ];
        let m = build(&evs, &[]);
        let p = m
            .faults
            .iter()
            .find(|f| f.label.starts_with("partition"))
            .unwrap();
        assert_eq!((p.t0, p.t1), (10, 30));
        assert_eq!(p.lanes, vec!["n1", "n2", "n3"]);
        assert_eq!(p.label, "partition [n1] <-/-> [n2,n3] (schedule #0)");
        let down = m.faults.iter().find(|f| f.what == "down").unwrap();
        assert_eq!((down.t0, down.t1, down.lanes[0].as_str()), (20, 40, "n1"));
        let typed = m.faults.iter().find(|f| f.i0 == 6).unwrap();
        assert_eq!(
            typed.lanes,
            vec!["n2"],
            "typed fault records name their nodes too"
        );
        assert_eq!(typed.t1, 50, "never undone: lasts to the end");
        assert_eq!(typed.label, "crash n2 (scripted)");
        let raft = spans_of(&m, "raft");
        assert_eq!(raft.len(), 2);
        assert!(
            raft.iter().all(|s| s.outcome == "crashed" && s.t1 == 20),
            "{raft:?}"
        );
    }

    #[test]
    fn unknown_kinds_with_start_end_names_still_become_spans() {
        let evs = vec![
            ev(
                0,
                5,
                Some(3),
                "view_build_started",
                json!({"id": 9, "view": "v"}),
            ),
            ev(
                1,
                6,
                Some(3),
                "view_build_started",
                json!({"id": 10, "view": "w"}),
            ),
            ev(
                2,
                8,
                Some(3),
                "view_build_finished",
                json!({"id": 9, "ok": false}),
            ),
            ev(3, 9, Some(3), "something_new", json!({"x": 1})),
        ];
        let m = build(&evs, &[]);
        assert_eq!(m.spans.len(), 2);
        let done = m.spans.iter().find(|s| s.i0 == 0).unwrap();
        assert_eq!((done.t1, done.outcome.as_str()), (8, "failed"));
        assert_eq!(m.spans.iter().find(|s| s.i0 == 1).unwrap().outcome, "open");
        assert!(m
            .points
            .iter()
            .any(|p| p.kind == "something_new" && p.lane == "n3"));
    }

    #[test]
    fn the_violation_names_its_events() {
        let evs = vec![
            ev(0, 1, Some(1), "session_opened", json!({"session": 1})),
            ev(1, 2, Some(1), "session_opened", json!({"session": 2})),
            ev(
                2,
                3,
                Some(1),
                "op_invoke",
                json!({"op": 1, "kind": "write", "key": 7}),
            ),
            ev(
                3,
                4,
                Some(1),
                "op_invoke",
                json!({"op": 2, "kind": "write", "key": 8}),
            ),
            ev(
                4,
                5,
                Some(2),
                "fragment_applied",
                json!({"tablet": 0, "key": 7, "session": 1, "origin": 1, "replica": {"node": 2, "shard": 0}}),
            ),
            ev(
                5,
                6,
                Some(1),
                "stage_committed",
                json!({"tablet": 0, "session": null, "stage": "cleanup"}),
            ),
            ev(
                6,
                7,
                Some(1),
                "stage_committed",
                json!({"tablet": 0, "session": 1, "stage": "streaming"}),
            ),
        ];
        let v = Violation {
            checker: "fencing".into(),
            verdict: crate::scenario::Verdict::Safety,
            message: "n2 applied a fragment (key 7) of t0 under session s1 after … (history #3)"
                .into(),
            at_index: Some(4),
            at_ns: Some(5),
        };
        let m = build(&evs, &[v]);
        assert_eq!(m.violations[0].related, vec![0, 2, 3, 4, 6]);
        assert!(m.lanes.iter().any(|l| l.id == "n2:0" && l.group == "shard"));
        assert_eq!(m.points.iter().find(|p| p.i == 4).unwrap().lane, "n2:0");
    }

    #[test]
    fn nodes_are_read_from_fault_text_and_typed_faults() {
        assert_eq!(nodes_named(&json!("kill connection n1->n12")), vec![1, 12]);
        assert_eq!(nodes_named(&json!("kill group0 leader")), Vec::<u32>::new());
        assert_eq!(
            nodes_named(&json!({"type": "partition", "a": [3], "b": [1, 2]})),
            vec![1, 2, 3]
        );
    }
}
