//! Identifiers of the topology area: tables, tablets, shards, replicas, sessions, keys and
//! values.
//!
//! Newtypes only; no behaviour beyond ordering and display. `NodeId` is the harness's host id.

use serde::{Deserialize, Serialize};
use std::fmt;

pub use sim::NodeId;

/// A shard of a node (a CPU shard in the real system).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u32);

pub use crate::schema::TableId;

/// A tablet: (table, tablet index), as `system.tablets` keys it. Tablets of a table are
/// numbered `0..tablet_count`. Serialised as its display form (`table100/t3`), so it can key
/// a JSON map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TabletId {
    /// The table.
    pub table: TableId,
    /// The tablet's index within its table.
    pub index: u32,
}

impl TabletId {
    /// Tablet `index` of `table`.
    pub const fn new(table: TableId, index: u32) -> TabletId {
        TabletId { table, index }
    }
}

impl fmt::Display for TabletId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/t{}", self.table, self.index)
    }
}

impl std::str::FromStr for TabletId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("bad tablet id '{s}' (want tableN/tM)");
        let (t, i) = s.split_once("/t").ok_or_else(bad)?;
        let table = t.strip_prefix("table").ok_or_else(bad)?;
        Ok(TabletId {
            table: TableId(table.parse().map_err(|_| bad())?),
            index: i.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for TabletId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TabletId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A tablet replica: (host, shard), as stored in `system.tablets.replicas`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Replica {
    /// The host.
    pub node: NodeId,
    /// The shard on that host.
    pub shard: ShardId,
}

impl fmt::Display for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.node, self.shard.0)
    }
}

/// A topology session id. The real system uses time-UUIDs; here group0 hands out a counter,
/// which is just as fresh: a removed id is never listed again. `0` is the default session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub u64);

impl SessionId {
    /// The default session (`default_session_id`, a.k.a. `null_topology_guard`): always exists,
    /// never closed; a guard on it is always valid.
    pub const DEFAULT: SessionId = SessionId(0);

    /// Is this the default session?
    pub fn is_default(self) -> bool {
        self == Self::DEFAULT
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

/// A partition key of the test table (`pk int`).
pub type Key = u64;
/// A cell value of the test table (`c int`); the workload writes unique values.
pub type Value = u64;

/// The tablet of `table` owning `key` when the table has `tablet_count` tablets (token ranges
/// collapsed to a modulus: the model needs a fixed, total key→tablet map, not murmur3).
pub fn tablet_of(table: TableId, key: Key, tablet_count: u32) -> TabletId {
    assert!(tablet_count > 0, "a table has at least one tablet");
    TabletId::new(table, (key % u64::from(tablet_count)) as u32)
}

/// The user table a client key belongs to when the workload spreads keys over `tables` user
/// tables (key `k` goes to user table `k % tables`), so every key names one row of one table.
pub fn table_of(key: Key, tables: u32) -> TableId {
    assert!(tables > 0, "at least one user table");
    TableId::user((key % u64::from(tables)) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tablet_id_round_trips_through_its_display_form() {
        let t = TabletId::new(TableId::user(2), 7);
        assert_eq!(t.to_string(), "table102/t7");
        assert_eq!("table102/t7".parse::<TabletId>(), Ok(t));
        assert!("t7".parse::<TabletId>().is_err());
        let j = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<TabletId>(&j).unwrap(), t);
    }
}
