//! Reads: merge a partition's fragments over every run, return what is live, and count the dead
//! entries stepped over on the way (the cost the batchlog comparison measures, SPEC §5.10).

use super::fragment::{PartitionFragment, RangeTombstone, Row};
use super::{Keys, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ops::RangeBounds;

/// What a read walked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScanCost {
    /// Live rows returned.
    pub live: u64,
    /// Dead entries stepped over: partition, row and range tombstones, and row versions that
    /// are shadowed or superseded.
    pub dead: u64,
}

impl ScanCost {
    /// Adds another read's cost.
    pub fn add(&mut self, o: ScanCost) {
        self.live += o.live;
        self.dead += o.dead;
    }
}

/// A live row returned by a read.
#[derive(Clone, Debug)]
pub struct LiveRow<K: Keys> {
    /// Partition.
    pub pk: K::Pk,
    /// Row.
    pub ck: K::Ck,
    /// Write timestamp.
    pub ts: Timestamp,
    /// The row's cells.
    pub data: K::Cell,
}

/// The reconciled version of one row, tombstones included (what streaming copies: a replica
/// must receive a deletion as well as a value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version<C> {
    /// Timestamp of the winning write or tombstone.
    pub ts: Timestamp,
    /// The cells, or `None` when the row is deleted.
    pub data: Option<C>,
}

/// Each row of a partition with its winning version, borrowed from the fragments.
pub(crate) type Reconciled<'a, K> = Vec<(&'a <K as Keys>::Ck, Version<&'a <K as Keys>::Cell>)>;

/// A row of a range read with its reconciled version: (partition, row, version).
pub type RowVersion<K> = (<K as Keys>::Pk, <K as Keys>::Ck, Version<<K as Keys>::Cell>);

/// The winning version of every row of one partition, with its shadowing tombstone applied,
/// and the cost of the walk. Fragments are given oldest first.
pub(crate) fn reconcile<'a, K: Keys>(
    frags: &[&'a PartitionFragment<K>],
) -> (Reconciled<'a, K>, ScanCost) {
    reconcile_in(frags, ..)
}

/// [`reconcile`] restricted to the rows whose clustering key is in `range` (a clustering
/// slice: the partition and range tombstones are walked, and counted, all the same).
pub(crate) fn reconcile_in<'a, K: Keys, R: RangeBounds<K::Ck> + Clone>(
    frags: &[&'a PartitionFragment<K>],
    range: R,
) -> (Reconciled<'a, K>, ScanCost) {
    let mut cost = ScanCost::default();
    let mut tombstone: Option<Timestamp> = None;
    let mut rts: Vec<RangeTombstone<K::Bound>> = Vec::new();
    for f in frags {
        if f.tombstone.is_some() {
            cost.dead += 1;
        }
        tombstone = tombstone.max(f.tombstone);
        cost.dead += f.range_tombstones.len() as u64;
        rts.extend(f.range_tombstones.iter().copied());
    }
    let mut winners: BTreeMap<&K::Ck, &Row<K::Cell>> = BTreeMap::new();
    for f in frags {
        for (ck, row) in f.rows.range(range.clone()) {
            match winners.get(ck) {
                Some(w) if w.wins_over(row) => cost.dead += 1,
                Some(_) => {
                    cost.dead += 1;
                    winners.insert(ck, row);
                }
                None => {
                    winners.insert(ck, row);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(winners.len());
    for (ck, row) in winners {
        let b = K::bound_of(ck);
        let shadow = rts
            .iter()
            .filter(|r| r.end.covers_bound(b))
            .map(|r| r.ts)
            .max()
            .max(tombstone);
        let v = match row {
            Row::Live { ts, data } if shadow.is_none_or(|s| s < *ts) => {
                cost.live += 1;
                Version {
                    ts: *ts,
                    data: Some(data),
                }
            }
            _ => {
                cost.dead += 1;
                Version {
                    ts: shadow.map_or(row.ts(), |s| s.max(row.ts())),
                    data: None,
                }
            }
        };
        out.push((ck, v));
    }
    (out, cost)
}

/// Merges one partition's fragments (oldest first) for a read and counts the walk.
pub(crate) fn read_fragments<K: Keys>(
    pk: &K::Pk,
    frags: &[&PartitionFragment<K>],
) -> (Vec<LiveRow<K>>, ScanCost) {
    read_fragments_in(pk, frags, ..)
}

/// [`read_fragments`] of the rows whose clustering key is in `range`.
pub(crate) fn read_fragments_in<K: Keys, R: RangeBounds<K::Ck> + Clone>(
    pk: &K::Pk,
    frags: &[&PartitionFragment<K>],
    range: R,
) -> (Vec<LiveRow<K>>, ScanCost) {
    let (versions, cost) = reconcile_in(frags, range);
    let live = versions
        .into_iter()
        .filter_map(|(ck, v)| {
            v.data.map(|data| LiveRow {
                pk: pk.clone(),
                ck: ck.clone(),
                ts: v.ts,
                data: data.clone(),
            })
        })
        .collect();
    (live, cost)
}
