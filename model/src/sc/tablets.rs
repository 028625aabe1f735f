//! The tablets of strongly consistent tables as a node sees them: `system.tablets` rows, each
//! with its replicas `(node, shard)` and its `raft_group_id`, and the boot check of SPEC §7.4.
//!
//! Simplification: the tablet map comes from the harness (the stand-in for group0, which the
//! topology area models); every boot writes it to the node's `system.tablets` and loads it
//! back, as a group0 replay would.

use crate::raft::GroupId;
use crate::schema::TableId;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sim::{Disk, NodeId};

/// One tablet of a strongly consistent table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScTablet {
    /// Its table.
    pub table: TableId,
    /// Its index in the table.
    pub tablet: u32,
    /// Replicas: (node, shard).
    pub replicas: Vec<(NodeId, u32)>,
    /// `raft_group_id`: the tablet's Raft group.
    pub raft_group_id: GroupId,
}

impl ScTablet {
    /// The replica nodes (the group's members).
    pub fn members(&self) -> Vec<NodeId> {
        self.replicas.iter().map(|r| r.0).collect()
    }

    /// The shard of `node`'s replica, if it has one.
    pub fn shard_on(&self, node: NodeId) -> Option<u32> {
        self.replicas.iter().find(|r| r.0 == node).map(|r| r.1)
    }
}

/// The tablet map of the strongly consistent tables.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TabletMap {
    /// Every tablet, in (table, tablet) order.
    pub tablets: Vec<ScTablet>,
}

impl TabletMap {
    /// Allocates `count` tablets of `table` with `rf` replicas on distinct nodes, each on a
    /// random shard of its node (`nodes`: each node with its shard count), with fresh group ids.
    pub fn allocate(
        rng: &mut impl Rng,
        table: TableId,
        count: u32,
        nodes: &[(NodeId, u32)],
        rf: usize,
    ) -> TabletMap {
        assert!(
            rf >= 1 && rf <= nodes.len(),
            "rf {rf} of {} nodes",
            nodes.len()
        );
        let tablets = (0..count)
            .map(|tablet| {
                let mut picked: Vec<(NodeId, u32)> =
                    nodes.choose_multiple(rng, rf).copied().collect();
                picked.sort();
                let replicas = picked
                    .into_iter()
                    .map(|(n, shards)| (n, rng.gen_range(0..shards)))
                    .collect();
                // upstream: a timeuuid; never group0's id.
                let raft_group_id = GroupId(rng.gen::<u64>() | (1 << 40));
                ScTablet {
                    table,
                    tablet,
                    replicas,
                    raft_group_id,
                }
            })
            .collect();
        TabletMap { tablets }
    }

    /// The tablet a key belongs to.
    pub fn tablet_of_key(&self, key: u64) -> &ScTablet {
        assert!(!self.tablets.is_empty());
        &self.tablets[(key % self.tablets.len() as u64) as usize]
    }

    /// The tablet of group `g`.
    pub fn by_group(&self, g: GroupId) -> Option<&ScTablet> {
        self.tablets.iter().find(|t| t.raft_group_id == g)
    }

    /// Every replica on `node`: (group, shard).
    pub fn local_replicas(&self, node: NodeId) -> Vec<(GroupId, u32)> {
        self.tablets
            .iter()
            .filter_map(|t| t.shard_on(node).map(|s| (t.raft_group_id, s)))
            .collect()
    }
}

const TABLETS_PREFIX: &str = "system/tablets/";

/// Writes the map to the node's `system.tablets` (buffered).
pub fn persist(disk: &Disk, map: &TabletMap) {
    for t in &map.tablets {
        disk.put(
            format!("{TABLETS_PREFIX}{:010}/{:010}", t.table.0, t.tablet),
            t.clone(),
        );
    }
}

/// Loads the node's `system.tablets`.
pub fn load(disk: &Disk) -> TabletMap {
    TabletMap {
        tablets: disk
            .scan::<ScTablet>(TABLETS_PREFIX)
            .into_iter()
            .map(|(_, t)| t)
            .collect(),
    }
}

/// The boot check of SPEC §7.4 (upstream `check_tablet_replica_shards`): no tablet replica on
/// `node` may have a shard at or above its shard count. The error says what upstream's does.
pub fn check_tablet_replica_shards(
    map: &TabletMap,
    node: NodeId,
    shard_count: u32,
) -> Result<(), String> {
    match map
        .tablets
        .iter()
        .find(|t| t.shard_on(node).is_some_and(|s| s >= shard_count))
    {
        None => Ok(()),
        Some(t) => Err(format!(
            "Detected a tablet with invalid replica shard ({}/{} on shard {} of {node}, which has {shard_count} shards): reducing the shard count with tablet-enabled tables is not supported; replace the node instead",
            t.table,
            t.tablet,
            t.shard_on(node).expect("found"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn allocation_and_boot_check() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let nodes: Vec<(NodeId, u32)> = (1..=4).map(|n| (NodeId(n), 3)).collect();
        let m = TabletMap::allocate(&mut rng, TableId::user(0), 8, &nodes, 3);
        assert_eq!(m.tablets.len(), 8);
        for t in &m.tablets {
            assert_eq!(t.members().len(), 3);
            let mut ns = t.members();
            ns.dedup();
            assert_eq!(ns.len(), 3, "replicas on distinct nodes");
            assert!(t.replicas.iter().all(|r| r.1 < 3));
            assert!(!t.raft_group_id.is_group0());
        }
        let n = m.tablets[0].replicas[0].0;
        let top = m
            .local_replicas(n)
            .iter()
            .map(|r| r.1)
            .max()
            .expect("a replica");
        assert!(check_tablet_replica_shards(&m, n, top + 1).is_ok());
        assert!(check_tablet_replica_shards(&m, n, 8).is_ok());
        let err = check_tablet_replica_shards(&m, n, top).unwrap_err();
        assert!(err.contains("replace the node instead"), "{err}");
        if top > 0 {
            assert!(err.contains(&format!("shard {top}")));
        }
    }
}
