//! Identifiers of the topology area: tablets, shards, replicas, sessions, keys and values.
//!
//! Newtypes only; no behaviour beyond ordering and display. `NodeId` is the harness's host id.

use serde::{Deserialize, Serialize};
use std::fmt;

pub use sim::NodeId;

/// A shard of a node (a CPU shard in the real system).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ShardId(pub u32);

/// A tablet of the (single) test table: tablets are numbered `0..tablet_count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TabletId(pub u32);

impl fmt::Display for TabletId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
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

/// The tablet owning `key` when the table has `tablet_count` tablets (token ranges collapsed to
/// a modulus: the model needs a fixed, total key→tablet map, not murmur3).
pub fn tablet_of(key: Key, tablet_count: u32) -> TabletId {
    assert!(tablet_count > 0, "a table has at least one tablet");
    TabletId((key % u64::from(tablet_count)) as u32)
}
