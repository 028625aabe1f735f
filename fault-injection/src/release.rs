//! Release conditions: a state-triggered fault that ends when a protocol event occurs, not after
//! a fixed time ("hold the receiver until every migration to its node has ended").
//!
//! A [`ReleaseOn`] sits in the fault's [`EventTrigger`](crate::EventTrigger) (`until`), so it is
//! data like the rest of the schedule: printed by `explain`, stored in bundles, replayed and
//! shrunk with its fault. Such a fault has no duration. Once it is *armed* (for an injection
//! point: code entered the point on the fault's node) it is kept through the heal
//! ([`Sim::keep_through_heal`]) and ends only when its condition holds — recorded as undone by
//! [`UndoneBy::Release`] — or with the run: a hold released by the heal would let a receiver
//! that never checks its guard finish late instead of never, and the swarm could not tell it
//! from a correct one. A fault not armed by the heal is undone by the heal like any other.
//!
//! The condition reads only the history (like a checker): the migrations in transition are
//! those whose last `stage_committed` event has a stage, each ended by a later one of its
//! tablet without a stage (the transition deleted: completed or reverted) or of another
//! migration.

use crate::fault::Fault;
use crate::trigger::lookup;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sim::injection::InjectionEvent;
use sim::{Event, NodeId, Sim, UndoneBy};
use std::collections::BTreeMap;
use std::fmt;

/// When a state-triggered fault ends, instead of after a duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseOn {
    /// For a [`Fault::Injection`]: once code has entered the point on the fault's node, when
    /// every migration to that node (its pending replica there) that was in transition at
    /// that moment has ended, completed or reverted (SPEC §3: a held receiver's only way out
    /// before that is its own guard check).
    MigrationsToNodeEnded,
}

impl fmt::Display for ReleaseOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReleaseOn::MigrationsToNodeEnded => write!(
                f,
                "until every migration to its node in transition when it was entered has ended"
            ),
        }
    }
}

const STAGE_COMMITTED: &str = "stage_committed";

impl ReleaseOn {
    /// Can `fault` carry this condition?
    pub fn check(&self, fault: &Fault) -> Result<(), String> {
        match (self, fault) {
            (ReleaseOn::MigrationsToNodeEnded, Fault::Injection { .. }) => Ok(()),
            (r, f) => Err(format!("`{r}` needs an injection fault, not {f}")),
        }
    }

    /// Hold the open fault `id` (`fault`, as applied) until this condition holds, then undo it
    /// ([`UndoneBy::Release`]). Runs past the nemesis's stop: that is the point.
    pub(crate) async fn hold(self, sim: &Sim, id: u64, fault: &Fault) {
        let ReleaseOn::MigrationsToNodeEnded = self;
        let Fault::Injection { node, name, .. } = fault else {
            unreachable!("checked: {fault}")
        };
        let (node, name) = (*node, name.clone());
        let entered = sim.history().watch("injection_entered", move |e| {
            e.node == Some(node)
                && matches!(e.proto::<InjectionEvent>(),
                    Some(InjectionEvent::Entered { name: n }) if *n == name)
        });
        let before = entered.matched().len();
        let at = entered.nth(before + 1).await;
        if !sim.keep_through_heal(id) {
            // Undone before it was entered (by the heal): nothing to hold.
            return;
        }
        let stages = sim.history().watch(STAGE_COMMITTED, |_| true);
        let mut open = migrations_to(sim, node, &stages.matched(), at);
        let mut seen = 0;
        loop {
            let matched = stages.matched();
            ended(sim, &mut open, &matched[seen..], at);
            seen = matched.len();
            if open.is_empty() {
                break;
            }
            stages.nth(seen + 1).await;
        }
        sim.undo_fault(id, UndoneBy::Release);
    }
}

/// A tablet's key in the event (its JSON text) and the migration, stage and pending nodes the
/// `stage_committed` event at history index `i` records.
fn stage_of(sim: &Sim, i: usize) -> Option<(String, u64, bool, Vec<NodeId>)> {
    let h = sim.history();
    let entries = h.entries();
    let e = &entries[i];
    let Event::Proto(p) = &e.event else {
        return None;
    };
    let ev = p.to_json();
    let tablet = ev.get("tablet")?.to_string();
    let migration = ev.get("migration")?.as_u64()?;
    let in_transition = !ev.get("stage").is_none_or(Value::is_null);
    let pending = match lookup(&ev, e.node, "(new_replicas - replicas)") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|r| r.get("node")?.as_u64())
            .map(|n| NodeId(n as u32))
            .collect(),
        _ => Vec::new(),
    };
    Some((tablet, migration, in_transition, pending))
}

/// The migrations (tablet -> migration id) with a pending replica on `node` in transition just
/// before history index `at`, from the `stage_committed` entries `stages`.
fn migrations_to(sim: &Sim, node: NodeId, stages: &[usize], at: usize) -> BTreeMap<String, u64> {
    let mut last: BTreeMap<String, (u64, bool, Vec<NodeId>)> = BTreeMap::new();
    for &i in stages.iter().filter(|&&i| i < at) {
        if let Some((t, m, on, pending)) = stage_of(sim, i) {
            last.insert(t, (m, on, pending));
        }
    }
    last.into_iter()
        .filter(|(_, (_, on, pending))| *on && pending.contains(&node))
        .map(|(t, (m, _, _))| (t, m))
        .collect()
}

/// Drop from `open` the migrations that the `stage_committed` entries `stages` (those after
/// index `at`) end: their tablet's transition deleted or taken by another migration.
fn ended(sim: &Sim, open: &mut BTreeMap<String, u64>, stages: &[usize], at: usize) {
    for &i in stages.iter().filter(|&&i| i > at) {
        if let Some((t, m, on, _)) = stage_of(sim, i) {
            if open.get(&t).is_some_and(|&om| !on || om != m) {
                open.remove(&t);
            }
        }
    }
}
