//! The resolved configuration of one run, and `--set key=value` overrides by dotted path.
//!
//! A seed *chooses* a config (cluster shape, phases, fault schedule); the resolved config is
//! what `explain` prints, what a repro bundle stores, and what `replay` runs.
//!
//! [`RunConfig::validate`] is the one place that decides whether a resolved config describes a
//! run that can exist (a replication factor within the node count, faults that name real nodes,
//! non-empty clusters and budgets). `resolve` and bundle loading both call it, so an impossible
//! config is a usage error (exit 2) before any run, never a panic or a silently skipped fault
//! inside the simulation. Protocol sections are read through their JSON fields, so the checks
//! survive a section gaining fields.

use fault_injection::{Fault, FaultModel, FaultSchedule};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sim::NetConfig;
use std::collections::BTreeMap;

/// Durations of the run's phases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseConfig {
    /// Warmup before faults start, ms.
    pub warmup_ms: u64,
    /// Chaos phase (workload + nemesis), ms.
    pub chaos_ms: u64,
    /// Budget for convergence after the heal, ms; what is pending after it is a liveness failure.
    pub converge_budget_ms: u64,
}

impl Default for PhaseConfig {
    fn default() -> Self {
        PhaseConfig {
            warmup_ms: 500,
            chaos_ms: 5_000,
            converge_budget_ms: 30_000,
        }
    }
}

/// Everything a run needs besides the binary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Scenario id.
    pub scenario: String,
    /// Run seed.
    pub seed: u64,
    /// Mutants switched on.
    pub mutants: Vec<String>,
    /// Number of nodes.
    pub nodes: u32,
    /// Shards per node.
    pub shards: u32,
    /// Transport latency.
    pub net: NetConfig,
    /// Phase durations.
    pub phases: PhaseConfig,
    /// Faults the scenario allows (the swarm draws `faults` from it when `faults` is empty).
    pub fault_model: FaultModel,
    /// The explicit fault schedule of this run.
    pub faults: FaultSchedule,
    /// Per-protocol sections (e.g. `batchlog`), each a JSON object of that protocol's config.
    pub params: BTreeMap<String, serde_json::Value>,
}

impl RunConfig {
    /// Defaults before the scenario fills in its own.
    pub fn base(scenario: &str, seed: u64, mutants: &[String]) -> RunConfig {
        RunConfig {
            scenario: scenario.to_string(),
            seed,
            mutants: mutants.to_vec(),
            nodes: 3,
            shards: 2,
            net: NetConfig::default(),
            phases: PhaseConfig::default(),
            fault_model: FaultModel::default(),
            faults: FaultSchedule::default(),
            params: BTreeMap::new(),
        }
    }

    /// Read section `name` of `params` as `T` (defaults where absent).
    pub fn section<T: DeserializeOwned + Default>(&self, name: &str) -> T {
        match self.params.get(name) {
            Some(v) => serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("config section {name} is invalid: {e}")),
            None => T::default(),
        }
    }

    /// Every protocol section a scenario reads parses as its type, so that a bad `--set` value
    /// (an unknown enum variant, a string for a number) is an error line here, not a panic in
    /// the run.
    fn validate_sections(&self) -> Result<(), String> {
        fn check<T: DeserializeOwned>(cfg: &RunConfig, name: &str) -> Result<(), String> {
            match cfg.params.get(name) {
                Some(v) => serde_json::from_value::<T>(v.clone())
                    .map(|_| ())
                    .map_err(|e| format!("invalid config: section {name}: {e}")),
                None => Ok(()),
            }
        }
        check::<model::batchlog::BatchlogConfig>(self, "batchlog")?;
        check::<crate::catalog::batchlog::SwarmParams>(self, "batchlog_swarm")?;
        check::<model::topology::TopologyConfig>(self, "topology")?;
        check::<crate::catalog::raft::RaftParams>(self, "raft")?;
        check::<crate::catalog::sc::ScParams>(self, "sc")
    }

    /// Store section `name` (a scenario's defaults, so `--set name.field=..` can find them).
    pub fn set_section<T: Serialize>(&mut self, name: &str, value: &T) {
        self.params.insert(
            name.to_string(),
            serde_json::to_value(value).expect("sections serialise"),
        );
    }

    /// The ids of the nodes, `n1..=nN`.
    pub fn node_ids(&self) -> Vec<sim::NodeId> {
        (1..=self.nodes).map(sim::NodeId).collect()
    }

    /// Is this a config of a run that can exist? The first problem found, as one sentence.
    pub fn validate(&self) -> Result<(), String> {
        let err = |m: String| Err(format!("invalid config: {m}"));
        self.validate_sections()?;
        let known = crate::runner::known_mutants();
        if let Some(m) = self.mutants.iter().find(|m| !known.contains(&m.as_str())) {
            return Err(format!(
                "unknown mutant '{m}' (known: {})",
                known.join(", ")
            ));
        }
        if self.nodes == 0 {
            return err("nodes must be at least 1".into());
        }
        if self.shards == 0 {
            return err("shards must be at least 1".into());
        }
        if self.net.latency_us_min > self.net.latency_us_max {
            return err(format!(
                "net.latency_us_min ({}) is above net.latency_us_max ({})",
                self.net.latency_us_min, self.net.latency_us_max
            ));
        }
        if self.phases.converge_budget_ms == 0 {
            return err("phases.converge_budget_ms must be positive".into());
        }
        let fm = &self.fault_model;
        if fm.min_faults > fm.max_faults {
            return err(format!(
                "fault_model.min_faults ({}) is above fault_model.max_faults ({})",
                fm.min_faults, fm.max_faults
            ));
        }
        if fm.max_faults > 0 && !fm.kinds.is_empty() && fm.window_ms == 0 {
            return err("fault_model.window_ms must be positive when faults are allowed".into());
        }
        if fm.max_down >= self.nodes && !fm.kinds.is_empty() && fm.max_faults > 0 {
            return err(format!(
                "fault_model.max_down ({}) must leave at least one of the {} nodes up",
                fm.max_down, self.nodes
            ));
        }
        for (i, sf) in self.faults.faults.iter().enumerate() {
            // A fault whose nodes come from the triggering event is checked when it fires.
            let bound = sf.after.as_ref().is_some_and(|t| !t.bind.is_empty());
            if !bound {
                if let Err(m) = check_fault(&sf.fault, self.nodes) {
                    return err(format!("fault #{i} ({}): {m}", sf.fault));
                }
            }
            if sf.duration_ms == Some(0) {
                return err(format!(
                    "fault #{i} ({}): duration_ms must be positive",
                    sf.fault
                ));
            }
            if let Some(t) = &sf.after {
                if let Err(m) = t.check(&sf.fault) {
                    return err(format!("fault #{i} ({}): {m}", sf.fault));
                }
            }
        }
        for (name, section) in &self.params {
            if let Err(m) = self.check_section(name, section) {
                return err(m);
            }
        }
        Ok(())
    }

    /// Checks of a protocol section that depend on the cluster shape, read by field name.
    fn check_section(&self, name: &str, v: &serde_json::Value) -> Result<(), String> {
        let num = |field: &str| v.get(field).and_then(|x| x.as_u64());
        let positive = |field: &str| match num(field) {
            Some(0) => Err(format!("{name}.{field} must be at least 1")),
            _ => Ok(()),
        };
        // Replication factors: every area's `rf` (or `replication_factor`) fits the cluster.
        for field in ["rf", "replication_factor"] {
            positive(field)?;
            if let Some(rf) = num(field) {
                if rf > self.nodes as u64 {
                    return Err(format!(
                        "{name}.{field} is {rf} but the cluster has {} nodes",
                        self.nodes
                    ));
                }
            }
        }
        // A section that restates the cluster shape (it has `nodes`) must agree with it.
        let restates = num("nodes").is_some();
        for (field, want) in [("nodes", self.nodes), ("shards", self.shards)] {
            if !restates {
                break;
            }
            if let Some(n) = num(field) {
                if n != want as u64 {
                    return Err(format!(
                        "{name}.{field} is {n} but {field} is {want}: set both to the same value"
                    ));
                }
            }
        }
        for field in [
            "tablets",
            "shard_count",
            "tables",
            "initial_holders",
            "stream_timeout_ms",
            "barrier_timeout_ms",
            "write_request_timeout_ms",
            "replay_interval_ms",
            "replay_write_timeout_ms",
        ] {
            positive(field)?;
        }
        if let Some(h) = num("initial_holders") {
            if h > self.nodes as u64 {
                return Err(format!(
                    "{name}.initial_holders is {h} but the cluster has {} nodes",
                    self.nodes
                ));
            }
        }
        // Raft timing: an election timeout range that exists, heartbeats inside it.
        let group = v.get("group").unwrap_or(v);
        let g = |field: &str| group.get(field).and_then(|x| x.as_u64());
        if let (Some(lo), Some(hi)) = (g("election_timeout_ms_min"), g("election_timeout_ms_max")) {
            if lo == 0 || lo > hi {
                return Err(format!(
                    "{name}: election timeouts must satisfy 0 < min ({lo}) <= max ({hi})"
                ));
            }
            if let Some(hb) = g("heartbeat_ms") {
                if hb == 0 || hb >= lo {
                    return Err(format!(
                        "{name}: heartbeat_ms ({hb}) must be positive and below election_timeout_ms_min ({lo})"
                    ));
                }
            }
        }
        for field in ["tick_ms", "rpc_timeout_ms", "op_timeout_ms"] {
            if g(field) == Some(0) {
                return Err(format!("{name}: {field} must be at least 1"));
            }
        }
        if let (Some(lo), Some(hi)) = (num("op_interval_ms_min"), num("op_interval_ms_max")) {
            if lo > hi {
                return Err(format!(
                    "{name}.op_interval_ms_min ({lo}) is above {name}.op_interval_ms_max ({hi})"
                ));
            }
        }
        Ok(())
    }

    /// Override the field at dotted path `key` (e.g. `phases.chaos_ms`, `params.batchlog.layout`
    /// or the shorthand `batchlog.layout`) with `value` (JSON, or a bare string).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        if matches!(key, "scenario" | "seed" | "mutants") {
            return Err(format!(
                "--set {key}: use the command's own argument for {key}"
            ));
        }
        let mut root = serde_json::to_value(&*self).expect("config serialises");
        // Fault-model fields left out of the serialised form at their defaults can be set too.
        if let Some(fm) = root.get_mut("fault_model").and_then(|f| f.as_object_mut()) {
            for (k, v) in FaultModel::optional_fields() {
                fm.entry(k).or_insert(v);
            }
        }
        let mut path: Vec<&str> = key.split('.').collect();
        if path.iter().any(|p| p.is_empty()) {
            return Err(format!("--set {key}: malformed key"));
        }
        if root.get(path[0]).is_none() && self.params.contains_key(path[0]) {
            path.insert(0, "params");
        }
        let mut slot = &mut root;
        for (i, part) in path.iter().enumerate() {
            slot = match slot {
                serde_json::Value::Object(map) => match map.get_mut(*part) {
                    Some(v) => v,
                    None => {
                        return Err(format!(
                            "--set {key}: unknown key '{}'",
                            path[..=i].join(".")
                        ))
                    }
                },
                _ => {
                    return Err(format!(
                        "--set {key}: '{}' has no fields",
                        path[..i].join(".")
                    ))
                }
            };
        }
        let parsed = serde_json::from_str::<serde_json::Value>(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        *slot = parsed;
        let updated: RunConfig =
            serde_json::from_value(root).map_err(|e| format!("--set {key}={value}: {e}"))?;
        // Sections are typed by their protocol: a value of the wrong type must not slip in.
        if path[0] == "params" && path.len() > 1 {
            if let (Some(old), Some(new)) = (self.params.get(path[1]), updated.params.get(path[1]))
            {
                if !same_shape(old, new) {
                    return Err(format!("--set {key}={value}: wrong type for this key"));
                }
            }
        }
        *self = updated;
        Ok(())
    }
}

/// Does `f` name only nodes `n1..=nodes`, with sane parameters?
fn check_fault(f: &Fault, nodes: u32) -> Result<(), String> {
    let exists = |n: &sim::NodeId| {
        if n.0 >= 1 && n.0 <= nodes {
            Ok(())
        } else {
            Err(format!(
                "node {n} does not exist (the cluster has n1..n{nodes})"
            ))
        }
    };
    match f {
        Fault::KillConnection { from, to }
        | Fault::Stall { from, to, .. }
        | Fault::Delay { from, to, .. } => {
            exists(from)?;
            exists(to)
        }
        Fault::Drop {
            from,
            to,
            probability,
            ..
        } => {
            exists(from)?;
            exists(to)?;
            if !(0.0..=1.0).contains(probability) {
                return Err(format!("probability {probability} is not within 0..=1"));
            }
            Ok(())
        }
        Fault::Partition { a, b, .. } => {
            if a.is_empty() || b.is_empty() {
                return Err("both sides of a partition need a node".into());
            }
            for n in a.iter().chain(b) {
                exists(n)?;
            }
            if let Some(n) = a.iter().find(|n| b.contains(n)) {
                return Err(format!("{n} is on both sides of the partition"));
            }
            Ok(())
        }
        Fault::Crash { node }
        | Fault::Pause { node }
        | Fault::DiskStall { node }
        | Fault::DiskError { node, .. }
        | Fault::DiskLatency { node, .. }
        | Fault::ExcludeNode { node } => exists(node),
        Fault::ClockSkew {
            node, drift_ppm, ..
        } => {
            if drift_ppm.unsigned_abs() >= 1_000_000 {
                return Err(format!(
                    "clock drift {drift_ppm} ppm would stop or reverse the clock"
                ));
            }
            exists(node)
        }
        Fault::Injection { node, name, .. } => {
            if name.is_empty() {
                return Err("an injection fault needs a point name".into());
            }
            exists(node)
        }
        Fault::KillLeader => Ok(()),
    }
}

/// Do two JSON values have the same shape (same kinds, recursively for objects)?
fn same_shape(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value::*;
    match (a, b) {
        (Object(x), Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_shape(v, w)))
        }
        (Number(x), Number(y)) => x.is_f64() == y.is_f64() || x.is_f64(),
        (Null, _) | (_, Null) => true,
        (String(_), String(_)) | (Bool(_), Bool(_)) | (Array(_), Array(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RunConfig {
        let mut c = RunConfig::base("x.y", 1, &[]);
        c.params.insert(
            "batchlog".into(),
            serde_json::json!({"layout": "v2", "shards": 4}),
        );
        c
    }

    #[test]
    fn set_known_keys() {
        let mut c = cfg();
        c.set("phases.chaos_ms", "123").unwrap();
        assert_eq!(c.phases.chaos_ms, 123);
        c.set("batchlog.layout", "v1").unwrap();
        assert_eq!(c.params["batchlog"]["layout"], "v1");
        c.set("params.batchlog.shards", "8").unwrap();
        assert_eq!(c.params["batchlog"]["shards"], 8);
        c.set("nodes", "5").unwrap();
        assert_eq!(c.nodes, 5);
    }

    #[test]
    fn set_reaches_fault_model_fields_left_out_at_their_defaults() {
        let mut c = cfg();
        c.set("fault_model.clock_skew_ms", "300").unwrap();
        c.set("fault_model.skew_every_node", "true").unwrap();
        assert_eq!(c.fault_model.clock_skew_ms, 300);
        assert!(c.fault_model.skew_every_node);
        assert!(c.set("fault_model.clock_skew", "3").is_err());
        assert!(c.set("fault_model.clock_drift_ppm", "fast").is_err());
    }

    #[test]
    fn set_rejects_unknown_keys_and_bad_values() {
        let mut c = cfg();
        assert!(c
            .set("phases.nope", "1")
            .unwrap_err()
            .contains("unknown key"));
        assert!(c.set("nope", "1").unwrap_err().contains("unknown key"));
        assert!(c.set("phases.chaos_ms", "soon").is_err());
        assert!(c.set("batchlog.shards", "many").is_err());
        assert!(c.set("seed", "3").is_err());
        assert!(c.set("phases..x", "3").is_err());
        assert_eq!(c, cfg(), "failed sets leave the config unchanged");
    }

    fn invalid(c: &RunConfig) -> String {
        c.validate().expect_err("config should be invalid")
    }

    #[test]
    fn validate_accepts_the_base_config() {
        cfg().validate().unwrap();
    }

    #[test]
    fn validate_rejects_impossible_shapes() {
        let mut c = cfg();
        c.nodes = 0;
        assert!(invalid(&c).contains("nodes must be at least 1"));
        let mut c = cfg();
        c.shards = 0;
        assert!(invalid(&c).contains("shards"));
        let mut c = cfg();
        c.params.get_mut("batchlog").unwrap()["rf"] = 4.into();
        assert!(invalid(&c).contains("batchlog.rf is 4 but the cluster has 3 nodes"));
        c.params.get_mut("batchlog").unwrap()["rf"] = 0.into();
        assert!(invalid(&c).contains("batchlog.rf must be at least 1"));
        let mut c = cfg();
        c.set_section(
            "topology",
            &serde_json::json!({"nodes": 3, "shards": 2, "tablets": 0, "initial_holders": 1}),
        );
        assert!(invalid(&c).contains("topology.tablets must be at least 1"));
        c.params.get_mut("topology").unwrap()["tablets"] = 4.into();
        c.validate().unwrap();
        c.params.get_mut("topology").unwrap()["initial_holders"] = 5.into();
        assert!(invalid(&c).contains("initial_holders is 5"));
        c.params.get_mut("topology").unwrap()["initial_holders"] = 1.into();
        c.nodes = 4;
        assert!(invalid(&c).contains("topology.nodes is 3 but nodes is 4"));
        let mut c = cfg();
        c.phases.converge_budget_ms = 0;
        assert!(invalid(&c).contains("converge_budget_ms"));
        let mut c = cfg();
        c.net.latency_us_min = 10;
        c.net.latency_us_max = 1;
        assert!(invalid(&c).contains("latency_us_min"));
        let mut c = cfg();
        c.set_section(
            "raft",
            &serde_json::json!({"group": {"election_timeout_ms_min": 300, "election_timeout_ms_max": 100, "heartbeat_ms": 50}}),
        );
        assert!(invalid(&c).contains("election timeouts"));
    }

    #[test]
    fn validate_rejects_faults_on_missing_nodes() {
        let mut c = cfg();
        c.set(
            "faults",
            r#"{"faults":[{"at_ms":1,"fault":{"type":"crash","node":99}}]}"#,
        )
        .unwrap();
        let e = invalid(&c);
        assert!(
            e.contains("fault #0 (crash n99): node n99 does not exist"),
            "{e}"
        );
        c.set(
            "faults",
            r#"{"faults":[{"at_ms":1,"fault":{"type":"partition","a":[1],"b":[1,2],"oneway":false}}]}"#,
        )
        .unwrap();
        assert!(invalid(&c).contains("both sides"));
        c.set(
            "faults",
            r#"{"faults":[{"at_ms":1,"fault":{"type":"kill_connection","from":1,"to":3}, "duration_ms": 5}]}"#,
        )
        .unwrap();
        c.validate().unwrap();
    }
}
