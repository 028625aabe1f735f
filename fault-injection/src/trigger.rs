//! State-triggered faults: a fault fires when a protocol event occurs, matched by its kind and
//! fields, and may take its nodes from the event ("when tablet t enters `streaming`, kill the
//! connection from its leaving to its pending replica").
//!
//! An [`EventTrigger`] is data like the rest of the schedule: printed by `explain`, stored in
//! bundles, replayed and shrunk. The nemesis watches the history ([`sim::Watch`]) for entries
//! of `kind` whose fields equal `fields`, waits for the `nth`, then fills the fault's fields
//! named in `bind` from the matched event and applies the result, which the fault record shows
//! resolved.
//!
//! Paths into an event (for `fields` and `bind`) read its JSON form (the same as the history
//! export, without the `data` wrapper):
//! - `a.b.c` — nested fields; a numeric segment indexes an array, *modulo its length* (so a
//!   generator may draw any index and still name an element);
//! - `@node` — the node the event was recorded on;
//! - `(A - B)` — the elements of array `A` that are not in array `B`, then optionally
//!   `.rest` — e.g. `(replicas - new_replicas).0.node` is the leaving replica's node of a
//!   `stage_committed`, `(new_replicas - replicas).0.node` the pending one's.

use crate::fault::Fault;
use crate::release::ReleaseOn;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sim::{Sim, Watched};
use std::collections::BTreeMap;
use std::fmt;

/// Fire after the `nth` (1-based) history event of `kind` whose fields match, plus `at_ms`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventTrigger {
    /// Event kind name, e.g. `"stage_committed"`.
    pub kind: String,
    /// Which matching occurrence (1-based).
    pub nth: u32,
    /// Only events whose value at each path equals the given one, e.g.
    /// `{"stage": "streaming"}`. Empty: every event of `kind`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, Value>,
    /// Fault fields filled from the matched event: fault field -> event path, e.g.
    /// `{"from": "(replicas - new_replicas).0.node"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bind: BTreeMap<String, String>,
    /// End the fault when this protocol condition holds instead of after a duration (see
    /// [`crate::release`]); the fault then outlives the heal once armed. `None`: the
    /// schedule's `duration_ms` (or the heal) ends it, as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<ReleaseOn>,
    /// Fire only if every node is up and running when the event occurs (else the fault is
    /// skipped): an operator's crash of a node it then excludes.
    #[serde(default, skip_serializing_if = "is_false")]
    pub all_up: bool,
}

fn is_false(v: &bool) -> bool {
    !*v
}

impl fmt::Display for EventTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        if !self.fields.is_empty() {
            let m: Vec<String> = self
                .fields
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            write!(f, "{{{}}}", m.join(", "))?;
        }
        write!(f, " #{}", self.nth)?;
        if self.all_up {
            write!(f, " while every node is up")?;
        }
        Ok(())
    }
}

fn index<'v>(v: &'v Value, seg: &str) -> Option<&'v Value> {
    match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) if !a.is_empty() => {
            let i: usize = seg.parse().ok()?;
            Some(&a[i % a.len()])
        }
        _ => None,
    }
}

/// Follow the dot-separated segments of `rest` from `v` (by reference: only what a path ends
/// at is cloned).
fn follow<'v>(v: &'v Value, rest: &str) -> Option<&'v Value> {
    rest.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(v, |cur, seg| index(cur, seg))
}

/// The value at `path` in event `ev` recorded on `node` (see the module docs).
pub fn lookup(ev: &Value, node: Option<sim::NodeId>, path: &str) -> Option<Value> {
    let path = path.trim();
    if path == "@node" {
        return node.map(|n| Value::from(n.0));
    }
    let Some(inner) = path.strip_prefix('(') else {
        return follow(ev, path).cloned();
    };
    let close = inner.find(')')?;
    let (a, b) = inner[..close].split_once(" - ")?;
    let (Value::Array(a), Value::Array(b)) = (lookup(ev, node, a)?, lookup(ev, node, b)?) else {
        return None;
    };
    let diff = Value::Array(a.into_iter().filter(|x| !b.contains(x)).collect());
    let rest = inner[close + 1..]
        .strip_prefix('.')
        .unwrap_or(&inner[close + 1..]);
    follow(&diff, rest).cloned()
}

/// Is `path` well-formed?
fn parses(path: &str) -> bool {
    let path = path.trim();
    if path == "@node" {
        return true;
    }
    match path.strip_prefix('(') {
        Some(inner) => inner
            .find(')')
            .and_then(|c| inner[..c].split_once(" - "))
            .is_some_and(|(a, b)| parses(a) && parses(b)),
        None => !path.is_empty() && !path.contains(['(', ')', ' ']),
    }
}

impl EventTrigger {
    /// A trigger on the `nth` event of `kind`, any fields.
    pub fn on(kind: &str, nth: u32) -> EventTrigger {
        EventTrigger {
            kind: kind.into(),
            nth,
            ..EventTrigger::default()
        }
    }

    /// Does history entry `e` (already of `kind`) match `fields`?
    pub fn matches(&self, e: &Watched<'_>) -> bool {
        if self.fields.is_empty() {
            return true;
        }
        let ev = e.fields();
        self.fields
            .iter()
            .all(|(path, want)| lookup(ev, e.node, path).as_ref() == Some(want))
    }

    /// Watch the history for the events this trigger counts.
    pub fn watch(&self, sim: &Sim) -> sim::Watch {
        let me = self.clone();
        sim.history().watch(&self.kind, move |e| me.matches(e))
    }

    /// Check the trigger against the fault it fires: paths parse, and every bound field is a
    /// field of the fault.
    pub fn check(&self, fault: &Fault) -> Result<(), String> {
        if self.nth == 0 || self.kind.is_empty() {
            return Err("an event trigger needs a kind and nth >= 1".into());
        }
        for p in self.fields.keys().chain(self.bind.values()) {
            if !parses(p) {
                return Err(format!("bad event path `{p}`"));
            }
        }
        if let Some(r) = &self.until {
            r.check(fault)?;
        }
        let fj = serde_json::to_value(fault).expect("faults serialise");
        for k in self.bind.keys() {
            if k == "type" || fj.get(k).is_none() {
                return Err(format!("`{k}` is not a field of the fault ({fault})"));
            }
        }
        Ok(())
    }

    /// The fault to apply once the trigger matched history entry `entry`: `fault` with its
    /// `bind` fields filled from the event. An `Err` says why it cannot fire (a path the event
    /// lacks, a node the cluster lacks, a link from a node to itself).
    pub fn bind_fault(&self, sim: &Sim, entry: usize, fault: &Fault) -> Result<Fault, String> {
        if self.bind.is_empty() {
            return Ok(fault.clone());
        }
        let (ev, node) = {
            let h = sim.history();
            let entries = h.entries();
            let e = &entries[entry];
            (e.event.fields_json(), e.node)
        };
        let mut fj = serde_json::to_value(fault).expect("faults serialise");
        for (field, path) in &self.bind {
            let v = lookup(&ev, node, path)
                .ok_or_else(|| format!("event #{entry} has no `{path}` for `{field}`"))?;
            fj[field.as_str()] = v;
        }
        let bound: Fault =
            serde_json::from_value(fj).map_err(|e| format!("bound fault does not parse: {e}"))?;
        let nodes = sim.nodes();
        if let Some(n) = bound.nodes().into_iter().find(|n| !nodes.contains(n)) {
            return Err(format!("bound fault names {n}, not in the cluster"));
        }
        if let Fault::KillConnection { from, to }
        | Fault::Stall { from, to, .. }
        | Fault::Drop { from, to, .. }
        | Fault::Delay { from, to, .. } = &bound
        {
            if from == to {
                return Err(format!("bound fault {bound} links {from} to itself"));
            }
        }
        Ok(bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stage_event() -> Value {
        json!({
            "ev": "stage_committed",
            "tablet": "100:0",
            "stage": "streaming",
            "replicas": [{"node": 1, "shard": 0}, {"node": 3, "shard": 1}],
            "new_replicas": [{"node": 3, "shard": 1}, {"node": 2, "shard": 0}],
        })
    }

    #[test]
    fn paths_read_fields_indices_differences_and_the_node() {
        let ev = stage_event();
        let n = Some(sim::NodeId(4));
        assert_eq!(lookup(&ev, n, "stage"), Some(json!("streaming")));
        assert_eq!(lookup(&ev, n, "replicas.1.node"), Some(json!(3)));
        assert_eq!(lookup(&ev, n, "replicas.5.node"), Some(json!(3)), "modulo");
        assert_eq!(
            lookup(&ev, n, "(replicas - new_replicas).0.node"),
            Some(json!(1)),
            "the leaving replica"
        );
        assert_eq!(
            lookup(&ev, n, "(new_replicas - replicas).0.node"),
            Some(json!(2)),
            "the pending replica"
        );
        assert_eq!(lookup(&ev, n, "@node"), Some(json!(4)));
        assert_eq!(lookup(&ev, n, "nope.x"), None);
        assert_eq!(lookup(&ev, n, "(replicas - replicas).0"), None, "empty");
    }

    #[test]
    fn check_rejects_bad_paths_and_unknown_fault_fields() {
        let mut t = EventTrigger::on("stage_committed", 1);
        t.bind
            .insert("from".into(), "(replicas - new_replicas).0.node".into());
        let kill = Fault::KillConnection {
            from: sim::NodeId(1),
            to: sim::NodeId(2),
        };
        assert!(t.check(&kill).is_ok());
        t.bind.insert("node".into(), "@node".into());
        assert!(t
            .check(&kill)
            .unwrap_err()
            .contains("`node` is not a field"));
        let mut t = EventTrigger::on("x", 1);
        t.fields.insert("(a - ".into(), json!(1));
        assert!(t.check(&kill).unwrap_err().contains("bad event path"));
        assert!(EventTrigger::on("x", 0).check(&kill).is_err());
    }

    #[test]
    fn triggers_round_trip_and_print_their_fields() {
        let mut t = EventTrigger::on("stage_committed", 2);
        t.fields.insert("stage".into(), json!("streaming"));
        let back: EventTrigger = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
        assert_eq!(t.to_string(), r#"stage_committed{stage="streaming"} #2"#);
        let plain: EventTrigger = serde_json::from_str(r#"{"kind":"k","nth":1}"#).unwrap();
        assert_eq!(plain, EventTrigger::on("k", 1), "old bundles still load");
    }
}
