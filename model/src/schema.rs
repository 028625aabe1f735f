//! The schema registry: every table of the cluster with its id, keyspace, name and kind.
//!
//! User tables are tablet-based: each has its own tablets, keyed by (table, tablet) in
//! `system.tablets`, with (node, shard) replicas. System tables are node-local (the system
//! keyspace uses local replication upstream): `system.topology` and `system.tablets` hold
//! group0 state, `system.raft`, `system.raft_snapshots` and `system.raft_snapshot_config`
//! group0's Raft persistence, `system.batchlog` and `system.batchlog_v2` the batchlog.
//!
//! Simplifications: no columns or types (a row is a key and a value); no co-location groups
//! (every user table has its own tablet map); the set of tables is fixed at cluster start
//! (no CREATE through group0). DROP TABLE ([`drop_table`]) is a cluster-wide schema change that
//! takes effect on every node at once: replicas then refuse writes to the table, and batchlog
//! replays skip its mutations (SPEC §5.5).

use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A table id (`table_id`). System tables take ids below [`TableId::FIRST_USER`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TableId(pub u32);

impl TableId {
    /// The id of the first user table; user table `i` has id `FIRST_USER + i`.
    pub const FIRST_USER: u32 = 100;

    /// The id of user table number `i` (0-based).
    pub const fn user(i: u32) -> TableId {
        TableId(Self::FIRST_USER + i)
    }

    /// Is this a user table's id?
    pub fn is_user(self) -> bool {
        self.0 >= Self::FIRST_USER
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table{}", self.0)
    }
}

/// How a table is replicated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// A tablet-based user table: tablets with (node, shard) replicas.
    User,
    /// A node-local system table (local replication).
    System,
}

/// One table of the registry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSchema {
    /// Its id.
    pub id: TableId,
    /// Keyspace (`system` for system tables).
    pub keyspace: String,
    /// Table name within the keyspace.
    pub name: String,
    /// User (tablets) or system (node-local).
    pub kind: TableKind,
    /// Tablets of a user table (0 for a system table).
    pub tablet_count: u32,
}

/// The system tables every node has, with their fixed ids.
pub const SYSTEM_TABLES: &[(u32, &str)] = &[
    (1, "topology"),
    (2, "tablets"),
    (3, "batchlog"),
    (4, "batchlog_v2"),
];

/// The tables of `raft_sys_table_storage` (`crate::raft::sys_table`): group0's Raft member
/// persists its hard state and log in `system.raft` (partition = group id, clustering = log
/// index, static cells for term, vote, commit index and snapshot id) and its snapshot
/// descriptor in `system.raft_snapshots` / `system.raft_snapshot_config`, on shard 0.
pub const RAFT_TABLES: &[(u32, &str)] = &[
    (8, "raft"),
    (9, "raft_snapshots"),
    (10, "raft_snapshot_config"),
];

/// The Raft-group tables of strongly consistent tablets (SPEC §7.1). They exist only when the
/// experimental feature `STRONGLY_CONSISTENT_TABLES` is enabled
/// ([`SchemaRegistry::enable_strongly_consistent_tables`]); their partition key is
/// `(shard, group_id)` and their partitioner [`FIXED_SHARD_PARTITIONER`].
pub const RAFT_GROUP_TABLES: &[(u32, &str)] = &[
    (5, "raft_groups"),
    (6, "raft_groups_snapshots"),
    (7, "raft_groups_snapshot_config"),
];

/// The partitioner class of the Raft-group tables (short name `FixedShardPartitioner`).
pub const FIXED_SHARD_PARTITIONER: &str = "com.scylladb.dht.FixedShardPartitioner";
/// The partitioner class of every other table.
pub const MURMUR3_PARTITIONER: &str = "org.apache.cassandra.dht.Murmur3Partitioner";

/// Every table of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRegistry {
    tables: BTreeMap<TableId, TableSchema>,
}

impl SchemaRegistry {
    /// The system tables plus `user_tables` user tables `ks.t0..` of `tablets` tablets each.
    pub fn new(user_tables: u32, tablets: u32) -> SchemaRegistry {
        assert!(user_tables >= 1, "at least one user table");
        assert!(tablets >= 1, "a user table has at least one tablet");
        let mut tables = BTreeMap::new();
        for &(id, name) in SYSTEM_TABLES.iter().chain(RAFT_TABLES) {
            let id = TableId(id);
            assert!(!id.is_user());
            tables.insert(
                id,
                TableSchema {
                    id,
                    keyspace: "system".into(),
                    name: name.into(),
                    kind: TableKind::System,
                    tablet_count: 0,
                },
            );
        }
        for i in 0..user_tables {
            let id = TableId::user(i);
            tables.insert(
                id,
                TableSchema {
                    id,
                    keyspace: "ks".into(),
                    name: format!("t{i}"),
                    kind: TableKind::User,
                    tablet_count: tablets,
                },
            );
        }
        SchemaRegistry { tables }
    }

    /// Adds the Raft-group system tables of strongly consistent tables (SPEC §7.1).
    pub fn enable_strongly_consistent_tables(&mut self) {
        for &(id, name) in RAFT_GROUP_TABLES {
            let id = TableId(id);
            assert!(!id.is_user() && !self.tables.contains_key(&id));
            self.tables.insert(
                id,
                TableSchema {
                    id,
                    keyspace: "system".into(),
                    name: name.into(),
                    kind: TableKind::System,
                    tablet_count: 0,
                },
            );
        }
    }

    /// The partitioner class of table `id`: the fixed-shard one for the Raft-group tables.
    pub fn partitioner(&self, id: TableId) -> &'static str {
        if RAFT_GROUP_TABLES.iter().any(|&(t, _)| t == id.0) {
            FIXED_SHARD_PARTITIONER
        } else {
            MURMUR3_PARTITIONER
        }
    }

    /// The table with `id`.
    pub fn get(&self, id: TableId) -> Option<&TableSchema> {
        self.tables.get(&id)
    }

    /// The table named `keyspace.name`.
    pub fn by_name(&self, keyspace: &str, name: &str) -> Option<&TableSchema> {
        self.tables
            .values()
            .find(|t| t.keyspace == keyspace && t.name == name)
    }

    /// Every user table, in id order.
    pub fn user_tables(&self) -> Vec<&TableSchema> {
        self.tables
            .values()
            .filter(|t| t.kind == TableKind::User)
            .collect()
    }

    /// Every system table, in id order.
    pub fn system_tables(&self) -> Vec<&TableSchema> {
        self.tables
            .values()
            .filter(|t| t.kind == TableKind::System)
            .collect()
    }
}

#[derive(Default)]
struct Dropped(RefCell<BTreeSet<TableId>>);

/// Drops `table` cluster-wide, at once. Returns whether it was not dropped before.
pub fn drop_table(sim: &sim::Sim, table: TableId) -> bool {
    assert!(table.is_user(), "only user tables are dropped, not {table}");
    sim.ext::<Dropped>().0.borrow_mut().insert(table)
}

/// Is `table` dropped?
pub fn is_dropped(sim: &sim::Sim, table: TableId) -> bool {
    sim.ext::<Dropped>().0.borrow().contains(&table)
}

/// Every dropped table, in id order.
pub fn dropped_tables(sim: &sim::Sim) -> Vec<TableId> {
    sim.ext::<Dropped>().0.borrow().iter().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_and_user_tables_have_distinct_ids() {
        let s = SchemaRegistry::new(3, 4);
        assert_eq!(
            s.system_tables().len(),
            SYSTEM_TABLES.len() + RAFT_TABLES.len()
        );
        assert_eq!(s.by_name("system", "raft").map(|t| t.id), Some(TableId(8)));
        assert_eq!(s.partitioner(TableId(8)), MURMUR3_PARTITIONER);
        let user: Vec<TableId> = s.user_tables().iter().map(|t| t.id).collect();
        assert_eq!(user, vec![TableId(100), TableId(101), TableId(102)]);
        assert!(user.iter().all(|t| t.is_user()));
        assert_eq!(
            s.by_name("system", "batchlog_v2").map(|t| t.id),
            Some(TableId(4))
        );
        assert_eq!(s.by_name("ks", "t2").map(|t| t.tablet_count), Some(4));
        assert!(s.system_tables().iter().all(|t| t.tablet_count == 0));
    }

    #[test]
    fn raft_group_tables_only_with_the_feature() {
        let mut s = SchemaRegistry::new(1, 1);
        assert!(s.by_name("system", "raft_groups").is_none());
        s.enable_strongly_consistent_tables();
        let t = s
            .by_name("system", "raft_groups_snapshot_config")
            .expect("added");
        assert_eq!(s.partitioner(t.id), FIXED_SHARD_PARTITIONER);
        assert_eq!(s.partitioner(TableId(1)), MURMUR3_PARTITIONER);
        assert_eq!(
            s.system_tables().len(),
            SYSTEM_TABLES.len() + RAFT_TABLES.len() + 3
        );
    }
}
