//! The fragments a run holds: clustering rows (live or row tombstones), range tombstones and a
//! partition tombstone, grouped by partition; and the [`Mutation`]s that write them.
//!
//! Reconciliation is by timestamp; a tombstone wins a tie (upstream's rule for a tombstone and a
//! live cell of the same timestamp).

use super::{Keys, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;

/// One version of a clustering row in one run.
#[derive(Clone, Debug)]
pub enum Row<C> {
    /// A live row with its cells.
    Live {
        /// Write timestamp.
        ts: Timestamp,
        /// The row's cells.
        data: C,
    },
    /// A row tombstone.
    Dead {
        /// Deletion timestamp.
        ts: Timestamp,
    },
}

impl<C> Row<C> {
    /// The version's timestamp.
    pub fn ts(&self) -> Timestamp {
        match self {
            Row::Live { ts, .. } | Row::Dead { ts } => *ts,
        }
    }

    /// Does this version win reconciliation against `other`? Higher timestamp wins; on a tie
    /// the tombstone wins.
    pub fn wins_over(&self, other: &Row<C>) -> bool {
        match self.ts().cmp(&other.ts()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => matches!(self, Row::Dead { .. }),
        }
    }
}

/// The end bound of a range tombstone that starts before every row of its partition (the only
/// shape the model needs: the batchlog's cleanup, SPEC §5.6 step 3). `B` is the clustering
/// prefix the bound is expressed in ([`Keys::Bound`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RtEnd<B> {
    /// Ends just before the prefix `x`: covers rows whose prefix is `< x`.
    Before(B),
    /// Ends just after the prefix `x`: covers rows whose prefix is `<= x`.
    After(B),
}

impl<B: Ord + Copy> RtEnd<B> {
    /// Does a tombstone with this end cover a row with clustering prefix `b`?
    pub fn covers_bound(self, b: B) -> bool {
        match self {
            RtEnd::Before(x) => b < x,
            RtEnd::After(x) => b <= x,
        }
    }

    /// A key that orders ends by how much they cover.
    pub(crate) fn reach(self) -> (B, u8) {
        match self {
            RtEnd::Before(x) => (x, 0),
            RtEnd::After(x) => (x, 1),
        }
    }
}

/// A range tombstone `[before all rows, end]` with its timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RangeTombstone<B> {
    /// The end bound.
    pub end: RtEnd<B>,
    /// Deletion timestamp.
    pub ts: Timestamp,
}

/// A partition's fragments in one run.
#[derive(Clone, Debug)]
pub struct PartitionFragment<K: Keys> {
    /// The partition tombstone, if any.
    pub tombstone: Option<Timestamp>,
    /// Clustering rows (live or row tombstones), one version per key in a run.
    pub rows: BTreeMap<K::Ck, Row<K::Cell>>,
    /// Range tombstones, pruned so that none is subsumed by a newer, wider one.
    pub range_tombstones: Vec<RangeTombstone<K::Bound>>,
}

impl<K: Keys> Default for PartitionFragment<K> {
    fn default() -> Self {
        PartitionFragment {
            tombstone: None,
            rows: BTreeMap::new(),
            range_tombstones: Vec::new(),
        }
    }
}

impl<K: Keys> PartitionFragment<K> {
    /// Rows and tombstones held.
    pub fn fragment_count(&self) -> usize {
        usize::from(self.tombstone.is_some()) + self.rows.len() + self.range_tombstones.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.fragment_count() == 0
    }

    /// The newest tombstone timestamp covering `ck` in this fragment.
    pub(crate) fn shadow_ts(&self, ck: &K::Ck) -> Option<Timestamp> {
        let b = K::bound_of(ck);
        let rt = self
            .range_tombstones
            .iter()
            .filter(|r| r.end.covers_bound(b))
            .map(|r| r.ts)
            .max();
        rt.max(self.tombstone)
    }

    /// Adds a range tombstone, dropping those it subsumes (or itself if subsumed).
    pub(crate) fn add_range_tombstone(&mut self, rt: RangeTombstone<K::Bound>) {
        self.range_tombstones.push(rt);
        prune_range_tombstones(&mut self.range_tombstones);
    }

    /// Inserts `row` at `ck` unless the version already there wins.
    pub(crate) fn upsert_row(&mut self, ck: K::Ck, row: Row<K::Cell>) {
        match self.rows.get(&ck) {
            Some(old) if old.wins_over(&row) => {}
            _ => {
                self.rows.insert(ck, row);
            }
        }
    }
}

/// Keeps only range tombstones that no kept one is at least as new and as wide as.
pub(crate) fn prune_range_tombstones<B: Ord + Copy>(rts: &mut Vec<RangeTombstone<B>>) {
    // Newest first, then widest first.
    rts.sort_by(|a, b| b.ts.cmp(&a.ts).then(b.end.reach().cmp(&a.end.reach())));
    let mut kept: Vec<RangeTombstone<B>> = Vec::with_capacity(rts.len());
    for r in rts.iter() {
        if !kept
            .iter()
            .any(|k| k.ts >= r.ts && k.end.reach() >= r.end.reach())
        {
            kept.push(*r);
        }
    }
    *rts = kept;
}

/// A run of fragments: the memtable or one sstable.
#[derive(Clone, Debug)]
pub struct Run<K: Keys> {
    /// Partitions in key order.
    pub partitions: BTreeMap<K::Pk, PartitionFragment<K>>,
}

impl<K: Keys> Default for Run<K> {
    fn default() -> Self {
        Run {
            partitions: BTreeMap::new(),
        }
    }
}

impl<K: Keys> Run<K> {
    /// Fragments (rows and tombstones) held.
    pub fn fragment_count(&self) -> usize {
        self.partitions.values().map(|p| p.fragment_count()).sum()
    }
}

/// A write to a table.
#[derive(Clone, Debug)]
pub enum Mutation<K: Keys> {
    /// Insert the row `(pk, ck)` with its cells.
    Insert {
        /// Partition.
        pk: K::Pk,
        /// Row.
        ck: K::Ck,
        /// Write timestamp.
        ts: Timestamp,
        /// The row's cells.
        data: K::Cell,
    },
    /// A row tombstone at `(pk, ck)`.
    DeleteRow {
        /// Partition.
        pk: K::Pk,
        /// Row.
        ck: K::Ck,
        /// Deletion timestamp.
        ts: Timestamp,
    },
    /// A partition tombstone.
    DeletePartition {
        /// Partition.
        pk: K::Pk,
        /// Deletion timestamp.
        ts: Timestamp,
    },
    /// A range tombstone from before all rows of the partition.
    DeleteRange {
        /// Partition.
        pk: K::Pk,
        /// The tombstone.
        rt: RangeTombstone<K::Bound>,
    },
}

impl<K: Keys> Mutation<K> {
    /// The partition written.
    pub fn pk(&self) -> &K::Pk {
        match self {
            Mutation::Insert { pk, .. }
            | Mutation::DeleteRow { pk, .. }
            | Mutation::DeletePartition { pk, .. }
            | Mutation::DeleteRange { pk, .. } => pk,
        }
    }
}
