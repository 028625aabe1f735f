//! The batchlog's vocabulary: batch ids, stages, the v1 and v2 keys, the batch payload and the
//! stable batchlog-shard hash (SPEC §5.2).
//!
//! Everything here is plain data with a total order, so that tables, scans and histories built
//! from it are deterministic.

use serde::{Deserialize, Serialize};
use std::rc::Rc;

/// A batch id (the time-UUID of SPEC §5.3 step 1, modelled as a unique number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct BatchId(pub u64);

impl std::fmt::Display for BatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "b{}", self.0)
    }
}

/// A write timestamp (microseconds), as carried by every cell and tombstone.
pub type Timestamp = u64;

/// The batchlog stage of a v2 entry (SPEC §5.2: `initial` = 0, `failed_replay` = 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Written by the coordinator's write path (step 3).
    Initial,
    /// Moved here by a replay whose send failed (v2, cleanup=yes).
    FailedReplay,
}

impl Stage {
    /// The stage's name as SPEC §5.2 spells it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Initial => "initial",
            Stage::FailedReplay => "failed_replay",
        }
    }
}

/// Which batchlog table layout a node writes and replays (config `batchlog.layout`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// `system.batchlog`: one partition per batch, deleted with a partition tombstone.
    V1,
    /// `system.batchlog_v2`: (version, stage, shard) partitions, (written_at, id) rows.
    #[default]
    V2,
}

impl Layout {
    /// "v1" or "v2".
    pub fn name(self) -> &'static str {
        match self {
            Layout::V1 => "v1",
            Layout::V2 => "v2",
        }
    }
}

/// The serialization version stored in v2 partition keys; replay scans only this one.
pub const CURRENT_VERSION: u32 = 1;

/// A partition key of the batchlog table, for either layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PartitionKey {
    /// v1: partition key `id`.
    V1(BatchId),
    /// v2: partition key `(version, stage, shard)`.
    V2 {
        /// Serialization version.
        version: u32,
        /// Batchlog stage.
        stage: Stage,
        /// Batchlog shard (0..shard_count), from [`batchlog_shard`].
        shard: u32,
    },
}

impl PartitionKey {
    /// The v2 partition of `stage` and `shard` at the current version.
    pub fn v2(stage: Stage, shard: u32) -> Self {
        PartitionKey::V2 {
            version: CURRENT_VERSION,
            stage,
            shard,
        }
    }
}

/// A clustering key: `(written_at, id)`. v1 has no clustering key; its single row uses the same
/// pair so that both layouts share one storage model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ClusteringKey {
    /// Milliseconds on the coordinator's clock when the batch was created.
    pub written_at: u64,
    /// The batch id.
    pub id: BatchId,
}

/// A user table of the data plane, by its index among the user tables (`ks.t<i>`, schema id
/// [`crate::schema::TableId::user`]`(i)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TableId(pub u32);

impl TableId {
    /// The table's id in the schema registry.
    pub fn schema_id(self) -> crate::schema::TableId {
        crate::schema::TableId::user(self.0)
    }
}

impl std::fmt::Display for TableId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// One mutation of a batch: set `key` of `table` to `value` at timestamp `ts`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WriteMutation {
    /// The user table.
    pub table: TableId,
    /// The key (mapped to a tablet of the table, then to its replicas).
    pub key: u64,
    /// The value written.
    pub value: u64,
    /// The write timestamp (last write wins on replicas).
    pub ts: Timestamp,
}

/// What a replica write of a batch carries besides the cell: the batch and mutation it applies,
/// so that the replica records [`super::BatchlogEvent::MutationApplied`] once it is durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchTag {
    /// The batch.
    pub batch: BatchId,
    /// The mutation.
    pub m: WriteMutation,
    /// Sent by a replay (true) or the write path (false).
    pub replay: bool,
}

/// A batch as stored in the batchlog's `data` column: the batch id and its mutations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchBody {
    /// The batch id.
    pub id: BatchId,
    /// The mutations, in the order the client gave them.
    pub mutations: Vec<WriteMutation>,
}

/// The `data` blob, shared (immutable once written).
pub type Payload = Rc<BatchBody>;

/// The batchlog shard of an entry written at `written_at` ms: a stable 128-bit mix of the
/// millisecond count with its two halves XOR-ed, reduced to `shard_count` (SPEC §5.2 takes the
/// low 8 bits for 256 shards; fewer shards are allowed to keep runs small).
pub fn batchlog_shard(written_at: u64, shard_count: u32) -> u32 {
    assert!(shard_count > 0, "batchlog shard count must be positive");
    // Two independent 64-bit finalisers stand in for murmur3-128's two halves; any stable mix
    // keeps the property that matters: entries spread over shards by written_at.
    let h1 = fmix64(written_at ^ 0x9e37_79b9_7f4a_7c15);
    let h2 = fmix64(written_at.wrapping_add(0xc2b2_ae3d_27d4_eb4f));
    let low8 = ((h1 ^ h2) & 0xff) as u32;
    if shard_count >= 256 {
        low8
    } else {
        low8 % shard_count
    }
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_is_stable_and_spread() {
        assert_eq!(batchlog_shard(12345, 256), batchlog_shard(12345, 256));
        let mut seen = std::collections::BTreeSet::new();
        for t in 0..2000 {
            let s = batchlog_shard(t, 16);
            assert!(s < 16);
            seen.insert(s);
        }
        assert_eq!(seen.len(), 16);
    }
}
