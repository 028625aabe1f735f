//! Checkers of the harness scenarios: each reads the history only.

use crate::catalog::harness::HarnessEvent;
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use fault_injection::{Fault, InjectionEvent};
use sim::{History, NodeId, SimEvent};
use std::collections::{BTreeMap, BTreeSet};

/// A call whose connection was killed after the receiver admitted it must still be applied by
/// the receiver, and its caller must not have seen success.
pub struct ReceiverOutlivesKill;

impl Checker for ReceiverOutlivesKill {
    fn name(&self) -> &'static str {
        "receiver_outlives_kill"
    }
    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let entries = h.entries();
        let mut started = BTreeSet::new();
        let mut applied = BTreeSet::new();
        let mut closed = Vec::new();
        for e in entries.iter() {
            match e.proto::<HarnessEvent>() {
                Some(HarnessEvent::HandlerStart { call, .. }) => {
                    started.insert(*call);
                }
                Some(HarnessEvent::HandlerApplied { call }) => {
                    applied.insert(*call);
                }
                Some(HarnessEvent::CallEnd { call, outcome }) if outcome == "connection_closed" => {
                    closed.push((*call, e.index));
                }
                _ => {}
            }
        }
        closed
            .into_iter()
            .filter(|(call, _)| started.contains(call) && !applied.contains(call))
            .map(|(call, idx)| {
                Violation::safety(
                    self.name(),
                    format!(
                        "call {call} was admitted before its connection was killed, but the receiver never applied it (it did not keep running)"
                    ),
                    entries.get(idx),
                )
            })
            .collect()
    }
}

/// The windows during which a fault `pred` selects was in force, from the fault records
/// (applied → undone; still open at the end: until the last entry).
fn windows(h: &History, pred: impl Fn(&Fault) -> bool) -> Vec<(Fault, u64, u64)> {
    let mut open: BTreeMap<u64, (Fault, u64)> = BTreeMap::new();
    let mut out = Vec::new();
    let end = h.entries().last().map_or(0, |e| e.at.0);
    for e in h.entries().iter() {
        match e.sim() {
            Some(SimEvent::FaultApplied { id, fault, .. }) if pred(fault) => {
                open.insert(*id, (fault.clone(), e.at.0));
            }
            Some(SimEvent::FaultUndone { id, .. }) => {
                if let Some((f, start)) = open.remove(id) {
                    out.push((f, start, e.at.0));
                }
            }
            _ => {}
        }
    }
    for (_, (f, start)) in open {
        out.push((f, start, end));
    }
    out
}

/// Calls by number: (start time, caller, callee), admission time, end (time, outcome).
#[derive(Default)]
struct Calls {
    start: BTreeMap<u64, (u64, NodeId, NodeId)>,
    admitted: BTreeMap<u64, (u64, usize)>,
    end: BTreeMap<u64, (u64, String)>,
}

fn calls(h: &History) -> Calls {
    let mut c = Calls::default();
    for e in h.entries().iter() {
        match e.proto::<HarnessEvent>() {
            Some(HarnessEvent::CallStart { call, to }) => {
                c.start
                    .insert(*call, (e.at.0, e.node.expect("caller"), *to));
            }
            Some(HarnessEvent::HandlerStart { call, .. }) => {
                c.admitted.entry(*call).or_insert((e.at.0, e.index));
            }
            Some(HarnessEvent::CallEnd { call, outcome }) => {
                c.end.insert(*call, (e.at.0, outcome.clone()));
            }
            _ => {}
        }
    }
    c
}

/// While a verb is stalled on a link, nothing sent on it is admitted; once released, every held
/// call goes through.
pub struct StallHolds;

impl Checker for StallHolds {
    fn name(&self) -> &'static str {
        "stall_holds_until_release"
    }
    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let c = calls(h);
        let mut v = Vec::new();
        for (fault, from_t, to_t) in windows(h, |f| matches!(f, Fault::Stall { .. })) {
            let Fault::Stall { from, to, .. } = &fault else {
                continue;
            };
            for (call, (t, caller, callee)) in &c.start {
                if caller != from || callee != to || *t < from_t || *t >= to_t {
                    continue;
                }
                match c.admitted.get(call) {
                    Some((at, idx)) if *at < to_t => v.push(Violation::safety(
                        self.name(),
                        format!("call {call} sent on a stalled link {from}->{to} was admitted before the release"),
                        h.entries().get(*idx),
                    )),
                    None => v.push(Violation::liveness(
                        self.name(),
                        format!("call {call} held by the stall {from}->{to} was never admitted after the release"),
                    )),
                    _ => {}
                }
            }
        }
        v
    }
}

/// Every write synced before a crash is recovered after it; no write that was not synced is.
pub struct CrashDurability;

impl Checker for CrashDurability {
    fn name(&self) -> &'static str {
        "crash_durability"
    }
    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let mut v = Vec::new();
        // Keys written since the last crash and not yet covered by a sync, and all synced keys.
        let mut unsynced: BTreeSet<u64> = BTreeSet::new();
        let mut synced: BTreeSet<u64> = BTreeSet::new();
        let mut lost: BTreeSet<u64> = BTreeSet::new();
        for e in h.entries().iter() {
            if let Some(SimEvent::Crash { .. }) = e.sim() {
                lost.extend(std::mem::take(&mut unsynced));
                continue;
            }
            match e.proto::<HarnessEvent>() {
                Some(HarnessEvent::Wrote { key }) => {
                    unsynced.insert(*key);
                }
                Some(HarnessEvent::Synced { upto }) => {
                    let done: Vec<u64> = unsynced.range(..=*upto).copied().collect();
                    for k in done {
                        unsynced.remove(&k);
                        synced.insert(k);
                    }
                }
                Some(HarnessEvent::Recovered { keys }) => {
                    let keys: BTreeSet<u64> = keys.iter().copied().collect();
                    if let Some(k) = synced.difference(&keys).next() {
                        v.push(Violation::safety(
                            self.name(),
                            format!("key {k} was synced before the crash but is missing after the restart"),
                            Some(e),
                        ));
                    }
                    if let Some(k) = lost.intersection(&keys).next() {
                        v.push(Violation::safety(
                            self.name(),
                            format!("key {k} was never synced before the crash, yet it survived the restart"),
                            Some(e),
                        ));
                    }
                }
                _ => {}
            }
        }
        v
    }
}

/// A handler at a wait-for-message injection point goes on only after a message was sent (or
/// the point was disabled).
pub struct InjectionBlocks;

impl Checker for InjectionBlocks {
    fn name(&self) -> &'static str {
        "injection_blocks_until_message"
    }
    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let mut messages: BTreeMap<(Option<NodeId>, String), u64> = BTreeMap::new();
        let mut v = Vec::new();
        for e in h.entries().iter() {
            match e.proto::<InjectionEvent>() {
                Some(InjectionEvent::Message { name }) => {
                    *messages.entry((e.node, name.clone())).or_default() += 1;
                }
                Some(InjectionEvent::Released { name, by })
                    if *by == "message"
                        && messages.get(&(e.node, name.clone())).copied().unwrap_or(0) == 0 =>
                {
                    v.push(Violation::safety(
                        self.name(),
                        format!(
                            "a handler at injection {name} went on before any message was sent"
                        ),
                        Some(e),
                    ));
                }
                _ => {}
            }
        }
        v
    }
}

/// Buggify: while an injection fault holds the wait-for-message point of
/// `harness.buggify_holds_calls` on a node, a call reaching it there is not applied before the
/// fault ends (a one-shot holds only the first), and is applied once it ends.
pub struct BuggifyHolds;

impl Checker for BuggifyHolds {
    fn name(&self) -> &'static str {
        "buggify_holds_calls"
    }
    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let point = crate::catalog::harness::BUGGIFY_POINT;
        let mut started: BTreeMap<u64, (u64, NodeId)> = BTreeMap::new();
        let mut applied: BTreeMap<u64, (u64, usize)> = BTreeMap::new();
        for e in h.entries().iter() {
            match e.proto::<HarnessEvent>() {
                Some(HarnessEvent::HandlerStart { call, .. }) => {
                    started.insert(*call, (e.at.0, e.node.expect("handler node")));
                }
                Some(HarnessEvent::HandlerApplied { call }) => {
                    applied.insert(*call, (e.at.0, e.index));
                }
                _ => {}
            }
        }
        let mut v = Vec::new();
        let held = |f: &Fault| matches!(f, Fault::Injection { name, .. } if name == point);
        for (fault, t0, t1) in windows(h, held) {
            let Fault::Injection { node, one_shot, .. } = &fault else {
                continue;
            };
            let mut reaching: Vec<(&u64, &(u64, NodeId))> = started
                .iter()
                .filter(|(_, (t, n))| n == node && *t >= t0 && *t < t1)
                .collect();
            reaching.sort_by_key(|(_, (t, _))| *t);
            if *one_shot {
                reaching.truncate(1);
            }
            for (call, _) in reaching {
                match applied.get(call) {
                    Some((at, idx)) if *at < t1 => v.push(Violation::safety(
                        self.name(),
                        format!("call {call} reached {point} on {node} while `{fault}` held it, but was applied before the fault ended"),
                        h.entries().get(*idx),
                    )),
                    None => v.push(Violation::liveness(
                        self.name(),
                        format!("call {call} held by `{fault}` was never applied after it ended"),
                    )),
                    _ => {}
                }
            }
        }
        v
    }
}

/// Nothing sent across a partition is admitted while it lasts; after the last heal, traffic
/// across the former cut succeeds again.
pub struct PartitionHolds;

impl Checker for PartitionHolds {
    fn name(&self) -> &'static str {
        "partition_holds_then_heals"
    }
    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let c = calls(h);
        let mut v = Vec::new();
        let mut last_heal = 0;
        let mut cuts = Vec::new();
        for (fault, from_t, to_t) in windows(h, |f| matches!(f, Fault::Partition { .. })) {
            let Fault::Partition { a, b, .. } = &fault else {
                continue;
            };
            last_heal = last_heal.max(to_t);
            cuts.push((a.clone(), b.clone()));
            let across = |x: &NodeId, y: &NodeId| {
                (a.contains(x) && b.contains(y)) || (b.contains(x) && a.contains(y))
            };
            for (call, (_, caller, callee)) in &c.start {
                if !across(caller, callee) {
                    continue;
                }
                if let Some((at, idx)) = c.admitted.get(call) {
                    if *at >= from_t && *at < to_t {
                        v.push(Violation::safety(
                            self.name(),
                            format!("call {call} {caller}->{callee} crossed the partition while it lasted"),
                            h.entries().get(*idx),
                        ));
                    }
                }
            }
        }
        if !cuts.is_empty() {
            let healed = c.start.iter().any(|(call, (t, x, y))| {
                *t > last_heal
                    && cuts.iter().any(|(a, b)| {
                        (a.contains(x) && b.contains(y)) || (b.contains(x) && a.contains(y))
                    })
                    && c.end.get(call).is_some_and(|(_, o)| o == "ok")
            });
            if !healed {
                v.push(Violation::liveness(
                    self.name(),
                    "no call across a healed partition succeeded after the heal",
                ));
            }
        }
        v
    }
}
