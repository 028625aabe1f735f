//! V2 (SPEC §6.11): at most one running batch per (host, shard), and every task of a batch
//! shares type, base, replica and tablet. A crash ends every batch of the node.

use super::{safety, Item, Read};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::{Replica, ShardId};
use model::view::ViewEvent;
use sim::{History, NodeId};
use std::collections::BTreeMap;

/// The V2 checker.
pub struct OneBatchPerShard;

const NAME: &str = "vb_one_batch_per_shard";

impl Checker for OneBatchPerShard {
    fn name(&self) -> &'static str {
        NAME
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let r = Read::of(h);
        let mut out = Vec::new();
        let mut running: BTreeMap<(NodeId, ShardId), u64> = BTreeMap::new();
        for (at, it) in &r.items {
            match it {
                Item::Crash(n) => running.retain(|(node, _), _| node != n),
                Item::View(ViewEvent::BatchStarted {
                    batch,
                    shard,
                    kind,
                    base,
                    tablet,
                    tasks,
                    ..
                }) => {
                    let Some(node) = at.node else { continue };
                    if let Some(other) = running.insert((node, *shard), *batch) {
                        out.push(safety(NAME, format!("batch {batch} started on {node}:{} while batch {other} was still running there", shard.0), at));
                    }
                    let me = Replica {
                        node,
                        shard: *shard,
                    };
                    for id in tasks {
                        if let Some(t) = r.tasks.get(id) {
                            if t.kind != *kind
                                || t.base != *base
                                || t.tablet != *tablet
                                || t.replica != me
                            {
                                out.push(safety(NAME, format!("batch {batch} ({kind:?}, {tablet} on {me}) holds {id} of {:?}, {} on {}", t.kind, t.tablet, t.replica), at));
                            }
                        }
                    }
                }
                Item::View(ViewEvent::BatchFinished { batch, shard, .. }) => {
                    if let Some(node) = at.node {
                        if running.get(&(node, *shard)) == Some(batch) {
                            running.remove(&(node, *shard));
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}
