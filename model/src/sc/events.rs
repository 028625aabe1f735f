//! History events of strongly consistent tables. The `sc` checkers rebuild placement,
//! persistence across incarnations and per-key linearizability from these alone.

use crate::raft::GroupId;
use crate::Outcome;
use serde::Serialize;
use sim::{EventKind, NodeId};

/// A node-side event (the node is the history entry's node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum ScEvent {
    /// Incarnation `inc` booted with `shards` shards, after loading tablet metadata that puts
    /// a replica of group `g` on shard `s` of this node for each `(g, s)` in `replicas`.
    Boot {
        /// Incarnation.
        inc: u32,
        /// The node's shard count in this incarnation.
        shards: u32,
        /// Every local tablet replica: (group, shard).
        replicas: Vec<(GroupId, u32)>,
    },
    /// Incarnation `inc` refused to start (SPEC §7.4).
    BootRefused {
        /// Incarnation.
        inc: u32,
        /// The node's shard count in this incarnation.
        shards: u32,
        /// The error, as upstream words it.
        message: String,
    },
    /// The server of group `g` on shard `server_shard` routes its metadata partition: the
    /// key names `key_shard`, writes go to `write_shards` under token `token`, reads to
    /// `read_shard` under token `read_token`.
    MetaPlaced {
        /// The group.
        g: GroupId,
        /// Incarnation.
        inc: u32,
        /// The shard the group's server runs on.
        server_shard: u32,
        /// The shard named by the partition key.
        key_shard: u32,
        /// The token rows are written under.
        token: i64,
        /// The shards a write goes to.
        write_shards: Vec<u32>,
        /// The token reads look up.
        read_token: i64,
        /// The shard a read goes to.
        read_shard: u32,
    },
    /// The server of group `g` started on shard `shard` with this state read from storage.
    Loaded {
        /// The group.
        g: GroupId,
        /// Incarnation.
        inc: u32,
        /// The shard the server runs on.
        shard: u32,
        /// Stored term (`vote_term`).
        term: u64,
        /// Stored vote.
        #[serde(skip_serializing_if = "Option::is_none")]
        vote: Option<NodeId>,
        /// Stored commit index.
        commit: u64,
        /// Stored snapshot index (after this boot's forward-only advance).
        snapshot_idx: u64,
        /// Last stored log index.
        log_last: u64,
        /// No snapshot descriptor was found: the initial configuration was stored.
        bootstrapped: bool,
    },
    /// A sync made this state of group `g`'s storage durable.
    Durable {
        /// The group.
        g: GroupId,
        /// Incarnation.
        inc: u32,
        /// Durable term.
        term: u64,
        /// Durable vote in `term`.
        #[serde(skip_serializing_if = "Option::is_none")]
        vote: Option<NodeId>,
        /// Durable commit index.
        commit: u64,
        /// Durable snapshot index.
        snapshot_idx: u64,
        /// Last durable log index.
        log_last: u64,
    },
}

impl EventKind for ScEvent {
    fn kind(&self) -> &'static str {
        match self {
            ScEvent::Boot { .. } => "sc_boot",
            ScEvent::BootRefused { .. } => "sc_boot_refused",
            ScEvent::MetaPlaced { .. } => "sc_meta_placed",
            ScEvent::Loaded { .. } => "sc_loaded",
            ScEvent::Durable { .. } => "sc_durable",
        }
    }
}

/// A client operation on a strongly consistent table (the node: where its coordinator ran).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum ScClientEvent {
    /// Operation `op` on `key` started: a write of `write`, or a read.
    Invoke {
        /// Operation id.
        op: u64,
        /// The key.
        key: u64,
        /// The value written (`None`: a read).
        #[serde(skip_serializing_if = "Option::is_none")]
        write: Option<u64>,
    },
    /// Operation `op` ended; an ok read returned `value` (`None`: never written).
    Complete {
        /// Operation id.
        op: u64,
        /// The client outcome.
        outcome: Outcome,
        /// What an ok read returned.
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<u64>,
    },
}

impl EventKind for ScClientEvent {
    fn kind(&self) -> &'static str {
        match self {
            ScClientEvent::Invoke { .. } => "sc_invoke",
            ScClientEvent::Complete { .. } => "sc_complete",
        }
    }
}
