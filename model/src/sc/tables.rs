//! The Raft-group system tables (SPEC §7.1) and how a group's partition `(shard, group_id)`
//! is routed to a shard of the node.
//!
//! | table | partition key | clustering | columns |
//! |---|---|---|---|
//! | `raft_groups` | `(shard, group_id)` | — (statics only) | `vote_term`, `vote`, `snapshot_id`, `commit_idx` |
//! | `raft_groups_snapshots` | `(shard, group_id)` | — | `snapshot_id`, `idx`, `term` |
//! | `raft_groups_snapshot_config` | `(shard, group_id)` | `disposition`, `server_id` | `can_vote` |
//!
//! Log entries are rows of the group's `raft_groups` partition clustered by index (the first
//! layout; upstream now writes them to the shard's commitlog): either way they follow the
//! partition's routing.
//!
//! Routing ([`GroupPartition`]): the key's token comes from the fixed-shard partitioner and
//! both reads and writes go to the one shard the fixed-shard sharder gives. The mutants of
//! SPEC §7's rejected designs change exactly this routing.

use super::{
    MUTANT_METADATA_ON_SHARD_ZERO, MUTANT_RAFT_BYPASSES_SHARDER,
    MUTANT_SHARDER_READS_LIVE_ALLOCATION,
};
use crate::dht::fixed_shard::{self, FixedShardSharder};
use crate::dht::{murmur3_token, static_shard_of, Token};
use crate::raft::GroupId;
use serde::{Deserialize, Serialize};
use sim::{NodeId, Sim};

/// `system.raft_groups`.
pub const RAFT_GROUPS: &str = "raft_groups";
/// `system.raft_groups_snapshots`.
pub const RAFT_GROUPS_SNAPSHOTS: &str = "raft_groups_snapshots";
/// `system.raft_groups_snapshot_config`.
pub const RAFT_GROUPS_SNAPSHOT_CONFIG: &str = "raft_groups_snapshot_config";
/// Where log entries are kept: rows of `raft_groups` clustered by index (see
/// [`super::store`]).
pub const COMMITLOG: &str = RAFT_GROUPS;

/// The static row of a group's `raft_groups` partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStatics {
    /// `vote_term`.
    pub vote_term: u64,
    /// `vote`.
    pub vote: Option<NodeId>,
    /// `commit_idx`.
    pub commit_idx: u64,
    /// `snapshot_id`.
    pub snapshot_id: Option<u64>,
}

/// A `raft_groups_snapshots` row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRow {
    /// `snapshot_id`.
    pub snapshot_id: u64,
    /// `idx`.
    pub idx: u64,
    /// `term`.
    pub term: u64,
}

/// A `raft_groups_snapshot_config` row (clustering: disposition, server id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRow {
    /// `CURRENT` or `PREVIOUS`.
    pub disposition: String,
    /// `server_id`.
    pub server_id: NodeId,
    /// `can_vote`.
    pub can_vote: bool,
}

/// The rejected designs a run switches on (the mutants of SPEC §7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Routing {
    /// [`MUTANT_RAFT_BYPASSES_SHARDER`].
    pub bypass_sharder: bool,
    /// [`MUTANT_METADATA_ON_SHARD_ZERO`].
    pub shard_zero: bool,
    /// [`MUTANT_SHARDER_READS_LIVE_ALLOCATION`].
    pub live_allocation: bool,
}

impl Routing {
    /// The routing of a run (its mutants).
    pub fn of(sim: &Sim) -> Self {
        Routing {
            bypass_sharder: sim.mutant(MUTANT_RAFT_BYPASSES_SHARDER),
            shard_zero: sim.mutant(MUTANT_METADATA_ON_SHARD_ZERO),
            live_allocation: sim.mutant(MUTANT_SHARDER_READS_LIVE_ALLOCATION),
        }
    }
}

/// Where a group's metadata partition lives on its node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupPartition {
    /// The group.
    pub group: GroupId,
    /// The shard the group's server runs on.
    pub server_shard: u32,
    /// The shard the partition key names.
    pub key_shard: u16,
    /// The serialized partition key.
    pub key: Vec<u8>,
    /// The token rows are written under.
    pub write_token: Token,
    /// The shards writes go to (the sharder gives exactly one).
    pub write_shards: Vec<u32>,
    /// The token reads look up.
    pub read_token: Token,
    /// The shard reads go to.
    pub read_shard: u32,
}

impl GroupPartition {
    /// The routing of group `group`'s partition for its server on `server_shard` of a node
    /// with `shard_count` shards.
    pub fn route(routing: Routing, group: GroupId, server_shard: u32, shard_count: u32) -> Self {
        assert!(
            server_shard < shard_count,
            "a server runs on an existing shard"
        );
        // upstream: `raft_groups_storage` is created with `this_shard_id()`.
        let key_shard = if routing.shard_zero {
            0
        } else {
            u16::try_from(server_shard).expect("shard fits a smallint")
        };
        let key = fixed_shard::raft_group_key(key_shard, group.0);
        let token = fixed_shard::token(&key).expect("a well-formed raft group key");
        let sharder = FixedShardSharder::new(shard_count);
        let (write_token, write_shards, read_shard) = if routing.bypass_sharder {
            // Written straight to the server's own shard, keyed as the default partitioner
            // would key it; reads still go through the fixed-shard sharder.
            (
                murmur3_token(&key),
                vec![server_shard],
                sharder.shard_of(token),
            )
        } else if routing.live_allocation {
            // The shard comes from how the node currently spreads the ring over its shards,
            // not from the token's bits.
            let live = static_shard_of(murmur3_token(&key), shard_count);
            (token, vec![live], live)
        } else {
            (
                token,
                sharder.shard_for_writes(token),
                sharder.shard_of(token),
            )
        };
        assert_eq!(write_shards.len(), 1, "never two shards for a write");
        GroupPartition {
            group,
            server_shard,
            key_shard,
            key,
            write_token,
            write_shards,
            read_token: token,
            read_shard,
        }
    }

    /// The shard writes go to.
    pub fn write_shard(&self) -> u32 {
        self.write_shards[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dht::fixed_shard::decode_shard;

    #[test]
    fn the_partition_stays_on_the_servers_shard() {
        let r = Routing::default();
        for count in 1..6 {
            for shard in 0..count {
                let p = GroupPartition::route(r, GroupId(77), shard, count);
                assert_eq!(p.write_shards, vec![shard]);
                assert_eq!(p.read_shard, shard);
                assert_eq!(p.write_token, p.read_token);
                assert_eq!(decode_shard(p.write_token), shard);
            }
        }
        // A larger shard count moves nothing.
        let a = GroupPartition::route(r, GroupId(5), 1, 2);
        let b = GroupPartition::route(r, GroupId(5), 1, 8);
        assert_eq!(a, b);
    }

    #[test]
    fn each_mutant_changes_the_routing() {
        let zero = Routing {
            shard_zero: true,
            ..Routing::default()
        };
        let p = GroupPartition::route(zero, GroupId(9), 2, 4);
        assert_eq!((p.key_shard, p.write_shard()), (0, 0));
        let bypass = Routing {
            bypass_sharder: true,
            ..Routing::default()
        };
        let p = GroupPartition::route(bypass, GroupId(9), 2, 4);
        assert_eq!(p.write_shard(), 2);
        assert_ne!(p.write_token, p.read_token);
        let live = Routing {
            live_allocation: true,
            ..Routing::default()
        };
        let moved = (0..50u64).any(|g| {
            GroupPartition::route(live, GroupId(g), 0, 2).read_shard
                != GroupPartition::route(live, GroupId(g), 0, 4).read_shard
        });
        assert!(
            moved,
            "the live allocation moves some partition with the shard count"
        );
    }
}
