//! Placement of Raft-group metadata (SPEC §7.5), from `sc_meta_placed` and `sc_boot`:
//! - every token a group writes decodes (fixed-shard layout, independent of the shard count)
//!   to the shard its server runs on, and its key names that shard;
//! - a write goes to exactly one shard, that shard; reads look up the same token there;
//! - no node runs with a tablet replica on a shard at or above its shard count (a boot that
//!   loaded such a replica must have been refused).

use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::dht::fixed_shard::{decode_shard, MAX_SHARD};
use model::dht::Token;
use model::sc::ScEvent;
use sim::{History, NodeId};
use std::collections::BTreeSet;

/// Metadata stays on its server's shard; no replica beyond the shard count at boot.
pub struct Placement;

impl Checker for Placement {
    fn name(&self) -> &'static str {
        "sc_placement"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        let mut out = Vec::new();
        let entries = h.entries();
        let refused: BTreeSet<(NodeId, u32)> = entries
            .iter()
            .filter_map(|e| match e.proto::<ScEvent>() {
                Some(&ScEvent::BootRefused { inc, .. }) => e.node.map(|n| (n, inc)),
                _ => None,
            })
            .collect();
        for e in entries.iter() {
            let Some(node) = e.node else { continue };
            match e.proto::<ScEvent>() {
                Some(ScEvent::MetaPlaced {
                    g,
                    server_shard,
                    key_shard,
                    token,
                    write_shards,
                    read_token,
                    read_shard,
                    ..
                }) => {
                    let mut bad = |what: String| {
                        out.push(Violation::safety(
                            self.name(),
                            format!("{g} on {node}, server on shard {server_shard}: {what}"),
                            Some(e),
                        ))
                    };
                    if *server_shard > MAX_SHARD as u32 {
                        bad(format!("shard above {MAX_SHARD}"));
                    }
                    if key_shard != server_shard {
                        bad(format!("the partition key names shard {key_shard}"));
                    }
                    let decoded = decode_shard(Token(*token));
                    if decoded != *server_shard {
                        bad(format!("its rows are written under token {token}, which decodes to shard {decoded}"));
                    }
                    if write_shards.len() != 1 {
                        bad(format!("a write goes to {} shards", write_shards.len()));
                    } else if write_shards[0] != *server_shard {
                        bad(format!("writes land on shard {}", write_shards[0]));
                    }
                    if read_token != token || !write_shards.contains(read_shard) {
                        bad(format!(
                            "reads look up token {read_token} on shard {read_shard}, writes go to token {token} on {write_shards:?}"
                        ));
                    }
                }
                Some(ScEvent::Boot {
                    inc,
                    shards,
                    replicas,
                }) => {
                    if refused.contains(&(node, *inc)) {
                        continue;
                    }
                    if let Some((g, s)) = replicas.iter().find(|(_, s)| s >= shards) {
                        out.push(Violation::safety(
                            self.name(),
                            format!("{node} started incarnation {inc} with {shards} shards although its replica of {g} is on shard {s}"),
                            Some(e),
                        ));
                    }
                }
                _ => {}
            }
        }
        out
    }
}
