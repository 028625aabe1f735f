//! The resolved configuration of one run, and `--set key=value` overrides by dotted path.
//!
//! A seed *chooses* a config (cluster shape, phases, fault schedule); the resolved config is
//! what `explain` prints, what a repro bundle stores, and what `replay` runs.

use fault_injection::{FaultModel, FaultSchedule};
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

    /// Override the field at dotted path `key` (e.g. `phases.chaos_ms`, `params.batchlog.layout`
    /// or the shorthand `batchlog.layout`) with `value` (JSON, or a bare string).
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        if matches!(key, "scenario" | "seed" | "mutants") {
            return Err(format!(
                "--set {key}: use the command's own argument for {key}"
            ));
        }
        let mut root = serde_json::to_value(&*self).expect("config serialises");
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
}
