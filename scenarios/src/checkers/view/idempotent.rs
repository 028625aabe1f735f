//! V6 (SPEC §6.11): completion is idempotent. An RPC for a running batch attaches to it — no
//! task ever runs in two batches of a node at once — and an RPC sent after its tasks were
//! completed on the worker is answered from `completed_tasks` — a task completed on a node is
//! not started again there by an RPC sent afterwards, unless the worker restarted or the
//! processed base changed in between (both forget `completed_tasks`).
//!
//! "Sent afterwards" is judged for the RPC that started the batch (`BatchStarted::rpc`), not
//! the latest one that carried the task: an RPC sent before the completion may pass its
//! completed-tasks check, wait in its read barrier while the batch completes and a later RPC
//! is answered from `completed_tasks`, and then find no batch and start one — upstream's
//! `work_on_tasks` does not look at `completed_tasks` again after the barrier (view.swarm seed
//! 7643 showed this; judging by the latest RPC called it a violation).

use super::{safety, Item, Read};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::Replica;
use model::view::events::BatchEnd;
use model::view::state::TaskId;
use model::view::ViewEvent;
use sim::{History, NodeId};
use std::collections::{BTreeMap, BTreeSet};

/// The V6 checker.
pub struct CompletionIdempotent;

const NAME: &str = "vb_completion_idempotent";

impl Checker for CompletionIdempotent {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let r = Read::of(h);
        let mut out = Vec::new();
        let mut running: BTreeMap<u64, (NodeId, BTreeSet<TaskId>)> = BTreeMap::new();
        // (node, task) → history index of its completion there.
        let mut completed: BTreeMap<(NodeId, TaskId), usize> = BTreeMap::new();
        // RPC id → (target replica, history index of its sending).
        let mut sent: BTreeMap<u64, (Replica, usize)> = BTreeMap::new();
        for (at, it) in &r.items {
            match it {
                Item::Crash(n) => {
                    running.retain(|_, (node, _)| node != n);
                    completed.retain(|(node, _), _| node != n);
                }
                Item::View(ViewEvent::ProcessingBaseSet { .. }) => completed.clear(),
                Item::View(ViewEvent::WorkSent { replica, rpc, .. }) => {
                    sent.insert(*rpc, (*replica, at.index));
                }
                Item::View(ViewEvent::BatchStarted {
                    batch,
                    shard,
                    tasks,
                    rpc,
                    ..
                }) => {
                    let Some(node) = at.node else { continue };
                    let me = Replica {
                        node,
                        shard: *shard,
                    };
                    for id in tasks {
                        if let Some((other, _)) = running
                            .iter()
                            .find(|(_, (n, ts))| *n == node && ts.contains(id))
                        {
                            out.push(safety(NAME, format!("{id} started in batch {batch} on {node} while batch {other} was running it: the retry did not attach"), at));
                        }
                        let (Some(done), Some((to, sent_at))) =
                            (completed.get(&(node, *id)), sent.get(rpc))
                        else {
                            continue;
                        };
                        if *to == me && done < sent_at {
                            out.push(safety(NAME, format!("{id} re-run in batch {batch} on {me}: it was completed there before rpc {rpc}, which started the batch, was sent"), at));
                        }
                    }
                    running.insert(*batch, (node, tasks.iter().copied().collect()));
                }
                Item::View(ViewEvent::BatchFinished {
                    batch,
                    end,
                    completed: c,
                    ..
                }) => {
                    running.remove(batch);
                    if *end == BatchEnd::Done {
                        if let Some(node) = at.node {
                            for id in c {
                                completed.insert((node, *id), at.index);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}
