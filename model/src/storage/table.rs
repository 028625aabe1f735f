//! One table on one shard: a memtable, immutable sstables and a commitlog (a pure core: every
//! operation returns the [`DiskOp`]s that make it durable; [`super::engine`] writes them).
//!
//! - flush (memtable → sstable) and size-tiered compaction both drop data shadowed by a
//!   tombstone in their input, without waiting for tombstone GC;
//! - tombstone GC (gc_grace_seconds = 0) is held back while any commitlog segment holding the
//!   table's records is alive — the reason `system.batchlog` piles up partition tombstones;
//! - [`Table::drop_partitions`] removes partitions outright, tombstones and all (tablet cleanup
//!   and TRUNCATE drop the storage of a range instead of deleting its rows).

use super::commitlog::{Commitlog, Segment};
use super::fragment::{prune_range_tombstones, Mutation, PartitionFragment, Row, Run};
use super::read::{
    read_fragments, read_fragments_in, reconcile, LiveRow, RowVersion, ScanCost, Version,
};
use super::{Keys, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::ops::RangeBounds;
use std::rc::Rc;

/// Sizing of one table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableConfig {
    /// Flush the memtable once it holds this many fragments (rows and tombstones).
    pub memtable_flush_fragments: usize,
    /// Mutations per commitlog segment before it rolls over.
    pub commitlog_segment_mutations: u64,
    /// Size-tiered compaction: compact a size tier once it holds this many sstables.
    pub compaction_threshold: usize,
    /// Produce [`DiskOp`]s (false for pure benchmarks, which have no disk).
    pub persist: bool,
    /// Mutant [`MUTANT_COMPACTION_KEEPS_SHADOWED`]: flush and compaction keep rows shadowed by
    /// a tombstone in their input, so covered data is never dropped.
    pub keep_shadowed: bool,
}

/// Flush and compaction keep rows that a tombstone in their input shadows (the mechanism that
/// turns a cleanup range tombstone into a bounded scan is switched off). Set on every table of
/// a node by [`crate::storage::Engine::table`].
pub const MUTANT_COMPACTION_KEEPS_SHADOWED: &str = "storage-compaction-keeps-shadowed";

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            memtable_flush_fragments: 256,
            commitlog_segment_mutations: 256,
            compaction_threshold: 4,
            persist: true,
            keep_shadowed: false,
        }
    }
}

/// A write the shell must make to the node's simulated disk (then `sync`). Keys are relative to
/// the table's directory ([`COMMITLOG_PREFIX`], [`SSTABLE_PREFIX`]).
#[derive(Clone, Debug)]
pub enum DiskOp<K: Keys> {
    /// Append a commitlog record.
    PutCommitlog {
        /// Disk key (`cl/<segment>/<n>`, in append order).
        key: String,
        /// The record.
        mutation: Mutation<K>,
    },
    /// Write an sstable.
    PutSstable {
        /// Disk key (`sst/<generation>`).
        key: String,
        /// Its content.
        run: Rc<Run<K>>,
    },
    /// Delete a key (a freed commitlog record or a compacted sstable).
    Delete {
        /// Disk key.
        key: String,
    },
}

/// Relative disk key prefix of commitlog records.
pub const COMMITLOG_PREFIX: &str = "cl/";
/// Relative disk key prefix of sstables.
pub const SSTABLE_PREFIX: &str = "sst/";

fn commitlog_key(segment: u64, n: u64) -> String {
    // `format!("{COMMITLOG_PREFIX}{segment:010}/{n:010}")`, without the formatting machinery:
    // one key per mutation of every table made this a hot allocation-and-format.
    let mut k = String::with_capacity(COMMITLOG_PREFIX.len() + 21);
    k.push_str(COMMITLOG_PREFIX);
    push_zero_padded(&mut k, segment, 10);
    k.push('/');
    push_zero_padded(&mut k, n, 10);
    k
}

/// Append `v` as `{v:0width$}` does: decimal, zero-padded to at least `width` digits.
pub(crate) fn push_zero_padded(out: &mut String, v: u64, width: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut x = v;
    loop {
        i -= 1;
        digits[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    for _ in (digits.len() - i)..width {
        out.push('0');
    }
    out.push_str(std::str::from_utf8(&digits[i..]).expect("ascii digits"));
}

fn sstable_key(generation: u64) -> String {
    format!("{SSTABLE_PREFIX}{generation:010}")
}

/// Counters of a table's background work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TableStats {
    /// Memtable flushes.
    pub flushes: u64,
    /// Compactions.
    pub compactions: u64,
    /// Tombstones purged by GC.
    pub tombstones_purged: u64,
    /// Shadowed rows and covered row tombstones dropped at flush or compaction.
    pub shadowed_dropped: u64,
    /// The part of `shadowed_dropped` dropped by compactions (rows shadowed by a tombstone in
    /// another sstable, which only a compaction can drop).
    pub shadowed_dropped_by_compaction: u64,
}

impl TableStats {
    /// Adds another table's counters.
    pub fn add(&mut self, o: TableStats) {
        self.flushes += o.flushes;
        self.compactions += o.compactions;
        self.tombstones_purged += o.tombstones_purged;
        self.shadowed_dropped += o.shadowed_dropped;
        self.shadowed_dropped_by_compaction += o.shadowed_dropped_by_compaction;
    }
}

/// One table on one shard.
#[derive(Clone, Debug)]
pub struct Table<K: Keys> {
    cfg: TableConfig,
    memtable: Run<K>,
    memtable_fragments: usize,
    /// Sstables, oldest first, with their generation.
    sstables: Vec<(u64, Rc<Run<K>>)>,
    /// Fragments per sstable generation (for size tiers).
    sstable_sizes: BTreeMap<u64, usize>,
    next_generation: u64,
    commitlog: Commitlog,
    stats: TableStats,
}

impl<K: Keys> Table<K> {
    /// An empty table.
    pub fn new(cfg: TableConfig) -> Self {
        let cl = Commitlog::new(0, cfg.commitlog_segment_mutations);
        Table {
            cfg,
            memtable: Run::default(),
            memtable_fragments: 0,
            sstables: Vec::new(),
            sstable_sizes: BTreeMap::new(),
            next_generation: 0,
            commitlog: cl,
            stats: TableStats::default(),
        }
    }

    /// Rebuilds the table after a restart from the durable sstables and commitlog records (keys
    /// relative to the table's directory): replays the records into the memtable, flushes it,
    /// and deletes every replayed record.
    pub fn recover(
        cfg: TableConfig,
        sstables: Vec<(String, Rc<Run<K>>)>,
        records: Vec<(String, Mutation<K>)>,
    ) -> (Table<K>, Vec<DiskOp<K>>) {
        let mut max_gen = 0;
        let mut max_seg = 0;
        let mut t = Table::new(cfg);
        for (key, run) in sstables {
            let gen: u64 = key
                .strip_prefix(SSTABLE_PREFIX)
                .and_then(|g| g.parse().ok())
                .unwrap_or_else(|| panic!("bad sstable key {key}"));
            max_gen = max_gen.max(gen + 1);
            t.sstable_sizes.insert(gen, run.fragment_count());
            t.sstables.push((gen, run));
        }
        t.sstables.sort_by_key(|(g, _)| *g);
        t.next_generation = max_gen;
        let mut ops = Vec::new();
        for (key, m) in records {
            let seg: u64 = key
                .strip_prefix(COMMITLOG_PREFIX)
                .and_then(|k| k.get(..10))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad commitlog key {key}"));
            max_seg = max_seg.max(seg + 1);
            t.apply_to_memtable(&m);
            if t.cfg.persist {
                ops.push(DiskOp::Delete { key });
            }
        }
        // The replayed segments are gone once the memtable is flushed; a fresh commitlog starts.
        t.commitlog = Commitlog::new(max_seg, t.cfg.commitlog_segment_mutations);
        let mut flush_ops = t.flush();
        // The sstable must be durable before the records it replaces are deleted; the shell
        // syncs all of these at once, which is atomic in the disk model, so order suffices.
        flush_ops.extend(ops);
        (t, flush_ops)
    }

    /// The configuration.
    pub fn config(&self) -> &TableConfig {
        &self.cfg
    }

    /// Background-work counters.
    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Number of sstables.
    pub fn sstable_count(&self) -> usize {
        self.sstables.len()
    }

    /// Fragments in the memtable.
    pub fn memtable_fragments(&self) -> usize {
        self.memtable_fragments
    }

    /// Fragments over memtable and sstables (what a full scan would walk, at most).
    pub fn total_fragments(&self) -> usize {
        self.memtable_fragments
            + self
                .sstables
                .iter()
                .map(|(_, r)| r.fragment_count())
                .sum::<usize>()
    }

    /// Is tombstone GC currently allowed (no alive commitlog segment holds this table's data)?
    pub fn gc_allowed(&self) -> bool {
        self.commitlog.gc_allowed()
    }

    /// Applies one mutation: commitlog record, memtable, and a flush (plus compaction) when the
    /// memtable is full. Returns the disk writes to make before acknowledging.
    pub fn apply(&mut self, m: Mutation<K>) -> Vec<DiskOp<K>> {
        let mut ops = Vec::new();
        let ((seg, n), freed) = self.commitlog.append();
        self.free_segments(freed, &mut ops);
        self.apply_to_memtable(&m);
        if self.cfg.persist {
            ops.push(DiskOp::PutCommitlog {
                key: commitlog_key(seg, n),
                mutation: m,
            });
        }
        if self.memtable_fragments >= self.cfg.memtable_flush_fragments {
            ops.extend(self.flush());
        }
        ops
    }

    fn free_segments(&self, freed: Vec<Segment>, ops: &mut Vec<DiskOp<K>>) {
        if !self.cfg.persist {
            return;
        }
        for s in freed {
            for n in 0..s.mutations {
                ops.push(DiskOp::Delete {
                    key: commitlog_key(s.id, n),
                });
            }
        }
    }

    fn apply_to_memtable(&mut self, m: &Mutation<K>) {
        let before;
        let after;
        {
            let p = self.memtable.partitions.entry(m.pk().clone()).or_default();
            before = p.fragment_count();
            match m {
                Mutation::Insert { ck, ts, data, .. } => p.upsert_row(
                    ck.clone(),
                    Row::Live {
                        ts: *ts,
                        data: data.clone(),
                    },
                ),
                Mutation::DeleteRow { ck, ts, .. } => {
                    p.upsert_row(ck.clone(), Row::Dead { ts: *ts })
                }
                Mutation::DeletePartition { ts, .. } => {
                    p.tombstone = Some(p.tombstone.map_or(*ts, |t: Timestamp| t.max(*ts)))
                }
                Mutation::DeleteRange { rt, .. } => p.add_range_tombstone(*rt),
            }
            after = p.fragment_count();
        }
        // Pruning a subsumed range tombstone can shrink a partition.
        assert!(
            self.memtable_fragments >= before,
            "memtable fragment count out of step"
        );
        self.memtable_fragments = self.memtable_fragments - before + after;
    }

    /// Flushes the memtable into a new sstable, dropping what its own tombstones shadow, then
    /// frees clean commitlog segments and compacts if there are enough sstables.
    pub fn flush(&mut self) -> Vec<DiskOp<K>> {
        let mut ops = Vec::new();
        if !self.memtable.partitions.is_empty() {
            let mem = std::mem::take(&mut self.memtable);
            self.memtable_fragments = 0;
            let run = self.merge_runs(&[&mem], false);
            self.stats.flushes += 1;
            if !run.partitions.is_empty() {
                let gen = self.next_generation;
                self.next_generation += 1;
                self.add_sstable(gen, Rc::new(run), &mut ops);
            }
        }
        let freed = self.commitlog.mark_flushed();
        self.free_segments(freed, &mut ops);
        ops.extend(self.maybe_compact());
        ops
    }

    /// Compacts all sstables into one (a major compaction). Shadowed data is always dropped;
    /// tombstones are purged only if GC is allowed and the memtable holds nothing for their
    /// partition.
    pub fn compact(&mut self) -> Vec<DiskOp<K>> {
        if self.sstables.len() < 2 && !self.gc_allowed() {
            return Vec::new();
        }
        let all: Vec<u64> = self.sstables.iter().map(|(g, _)| *g).collect();
        self.compact_generations(&all)
    }

    /// Removes every partition `drop` selects from the memtable and every sstable, tombstones
    /// included, as dropping a tablet's storage does: flushes first and rolls the commitlog, so
    /// that no record of a dropped partition survives to be replayed after a crash. Returns the
    /// disk writes and the number of rows (live or dead) removed.
    pub fn drop_partitions(&mut self, drop: impl Fn(&K::Pk) -> bool) -> (Vec<DiskOp<K>>, u64) {
        let mut ops = self.flush();
        let freed = self.commitlog.roll();
        self.free_segments(freed, &mut ops);
        let freed = self.commitlog.mark_flushed();
        self.free_segments(freed, &mut ops);
        let mut removed = 0u64;
        let old = std::mem::take(&mut self.sstables);
        for (gen, run) in old {
            if !run.partitions.keys().any(&drop) {
                self.sstables.push((gen, run));
                continue;
            }
            let mut kept = Run::default();
            for (pk, p) in &run.partitions {
                if drop(pk) {
                    removed += p.rows.len() as u64;
                } else {
                    kept.partitions.insert(pk.clone(), p.clone());
                }
            }
            self.sstable_sizes.remove(&gen);
            if self.cfg.persist {
                ops.push(DiskOp::Delete {
                    key: sstable_key(gen),
                });
            }
            if !kept.partitions.is_empty() {
                let g = self.next_generation;
                self.next_generation += 1;
                self.add_sstable(g, Rc::new(kept), &mut ops);
            }
        }
        self.sstables.sort_by_key(|(g, _)| *g);
        (ops, removed)
    }

    /// Size-tiered compaction: while some size tier (fragments / flush size, in powers of 4)
    /// holds `compaction_threshold` sstables, compact that tier into one.
    fn maybe_compact(&mut self) -> Vec<DiskOp<K>> {
        let mut ops = Vec::new();
        loop {
            let mut tiers: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
            for (g, _) in &self.sstables {
                let size = self.sstable_sizes[g] / self.cfg.memtable_flush_fragments.max(1);
                let tier = if size <= 1 { 0 } else { size.ilog(4) };
                tiers.entry(tier).or_default().push(*g);
            }
            let Some(gens) = tiers
                .into_values()
                .find(|v| v.len() >= self.cfg.compaction_threshold)
            else {
                return ops;
            };
            ops.extend(self.compact_generations(&gens));
        }
    }

    /// Compacts the sstables of generations `gens` into one. Tombstones are purged only when
    /// every sstable takes part (nothing older elsewhere could be resurrected).
    fn compact_generations(&mut self, gens: &[u64]) -> Vec<DiskOp<K>> {
        let mut ops = Vec::new();
        let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sstables)
            .into_iter()
            .partition(|(g, _)| gens.contains(g));
        assert_eq!(old.len(), gens.len(), "compacting unknown sstables");
        self.sstables = keep;
        let runs: Vec<&Run<K>> = old.iter().map(|(_, r)| r.as_ref()).collect();
        let purge = self.gc_allowed() && self.sstables.is_empty();
        let dropped_before = self.stats.shadowed_dropped;
        let run = self.merge_runs(&runs, purge);
        self.stats.shadowed_dropped_by_compaction += self.stats.shadowed_dropped - dropped_before;
        self.stats.compactions += 1;
        for (g, _) in &old {
            self.sstable_sizes.remove(g);
            if self.cfg.persist {
                ops.push(DiskOp::Delete {
                    key: sstable_key(*g),
                });
            }
        }
        if !run.partitions.is_empty() {
            let gen = self.next_generation;
            self.next_generation += 1;
            self.add_sstable(gen, Rc::new(run), &mut ops);
        }
        ops
    }

    fn add_sstable(&mut self, gen: u64, run: Rc<Run<K>>, ops: &mut Vec<DiskOp<K>>) {
        if self.cfg.persist {
            ops.push(DiskOp::PutSstable {
                key: sstable_key(gen),
                run: run.clone(),
            });
        }
        self.sstable_sizes.insert(gen, run.fragment_count());
        self.sstables.push((gen, run));
    }

    /// Merges runs (oldest first) into one, dropping shadowed rows and covered row tombstones,
    /// and purging tombstones where `purge` allows and the memtable does not hold the partition.
    fn merge_runs(&mut self, runs: &[&Run<K>], purge: bool) -> Run<K> {
        let mut by_pk: BTreeMap<&K::Pk, Vec<&PartitionFragment<K>>> = BTreeMap::new();
        for r in runs {
            for (pk, p) in &r.partitions {
                by_pk.entry(pk).or_default().push(p);
            }
        }
        let mut out = Run::default();
        for (pk, frags) in by_pk {
            let mut merged = PartitionFragment::<K>::default();
            for f in &frags {
                merged.tombstone = merged.tombstone.max(f.tombstone);
                merged
                    .range_tombstones
                    .extend(f.range_tombstones.iter().copied());
                for (ck, row) in &f.rows {
                    merged.upsert_row(ck.clone(), row.clone());
                }
            }
            prune_range_tombstones(&mut merged.range_tombstones);
            let before = merged.rows.len();
            let rows = std::mem::take(&mut merged.rows);
            merged.rows = rows
                .into_iter()
                .filter(|(ck, row)| {
                    self.cfg.keep_shadowed || merged.shadow_ts(ck).is_none_or(|s| s < row.ts())
                })
                .collect();
            self.stats.shadowed_dropped += (before - merged.rows.len()) as u64;
            if purge && !self.memtable.partitions.contains_key(pk) {
                let purged = usize::from(merged.tombstone.is_some())
                    + merged.range_tombstones.len()
                    + merged
                        .rows
                        .values()
                        .filter(|r| matches!(r, Row::Dead { .. }))
                        .count();
                self.stats.tombstones_purged += purged as u64;
                merged.tombstone = None;
                merged.range_tombstones.clear();
                merged.rows.retain(|_, r| matches!(r, Row::Live { .. }));
            }
            if !merged.is_empty() {
                out.partitions.insert(pk.clone(), merged);
            }
        }
        out
    }

    fn fragments_of(&self, pk: &K::Pk) -> Vec<&PartitionFragment<K>> {
        self.sstables
            .iter()
            .filter_map(|(_, r)| r.partitions.get(pk))
            .chain(self.memtable.partitions.get(pk))
            .collect()
    }

    fn fragments_in<R: RangeBounds<K::Pk> + Clone>(
        &self,
        range: R,
    ) -> BTreeMap<&K::Pk, Vec<&PartitionFragment<K>>> {
        let mut by_pk: BTreeMap<&K::Pk, Vec<&PartitionFragment<K>>> = BTreeMap::new();
        for run in self
            .sstables
            .iter()
            .map(|(_, r)| r.as_ref())
            .chain(std::iter::once(&self.memtable))
        {
            for (pk, p) in run.partitions.range(range.clone()) {
                by_pk.entry(pk).or_default().push(p);
            }
        }
        by_pk
    }

    /// Reads one partition, merging all runs; returns the live rows in clustering order and the
    /// cost of the walk.
    pub fn read_partition(&self, pk: &K::Pk) -> (Vec<LiveRow<K>>, ScanCost) {
        read_fragments(pk, &self.fragments_of(pk))
    }

    /// Reads the rows of partition `pk` whose clustering key is in `range` (a clustering
    /// slice), in clustering order, with the cost of the walk: the partition's tombstones are
    /// stepped over whatever the slice.
    pub fn read_rows<R: RangeBounds<K::Ck> + Clone>(
        &self,
        pk: &K::Pk,
        range: R,
    ) -> (Vec<LiveRow<K>>, ScanCost) {
        read_fragments_in(pk, &self.fragments_of(pk), range)
    }

    /// The newest timestamp of anything partition `pk` holds: rows, row, range and partition
    /// tombstones, over every run (a writer that must outrun every earlier write, a tombstone
    /// shadowing no row included, starts above it).
    pub fn max_timestamp(&self, pk: &K::Pk) -> Option<Timestamp> {
        self.fragments_of(pk)
            .iter()
            .flat_map(|p| {
                p.tombstone
                    .into_iter()
                    .chain(p.range_tombstones.iter().map(|r| r.ts))
                    .chain(p.rows.values().map(|r| r.ts()))
            })
            .max()
    }

    /// Reads the partitions in `range`, in key order, with the cost of the walk.
    pub fn read_range<R: RangeBounds<K::Pk> + Clone>(
        &self,
        range: R,
    ) -> (Vec<LiveRow<K>>, ScanCost) {
        let mut rows = Vec::new();
        let mut cost = ScanCost::default();
        for (pk, frags) in self.fragments_in(range) {
            let (r, c) = read_fragments(pk, &frags);
            rows.extend(r);
            cost.add(c);
        }
        (rows, cost)
    }

    /// Reads the whole table, partition by partition.
    pub fn scan_all(&self) -> (Vec<LiveRow<K>>, ScanCost) {
        self.read_range(..)
    }

    /// The reconciled version of every row in `range`, deleted ones included, in key order.
    pub fn versions<R: RangeBounds<K::Pk> + Clone>(&self, range: R) -> Vec<RowVersion<K>> {
        let mut out = Vec::new();
        for (pk, frags) in self.fragments_in(range) {
            let (vs, _) = reconcile(&frags);
            for (ck, v) in vs {
                out.push((
                    pk.clone(),
                    ck.clone(),
                    Version {
                        ts: v.ts,
                        data: v.data.cloned(),
                    },
                ));
            }
        }
        out
    }

    /// Range tombstones a read of `pk` walks (over all runs).
    pub fn range_tombstone_count(&self, pk: &K::Pk) -> usize {
        self.fragments_of(pk)
            .iter()
            .map(|p| p.range_tombstones.len())
            .sum()
    }

    /// Every live row, without counting cost (final state, tests).
    pub fn live_rows(&self) -> Vec<LiveRow<K>> {
        self.scan_all().0
    }
}

#[cfg(test)]
mod key_tests {
    use super::{commitlog_key, push_zero_padded};

    #[test]
    fn commitlog_keys_are_what_format_gives() {
        for (seg, n) in [
            (0, 0),
            (1, 9),
            (42, 1_000),
            (9_999_999_999, 10_000_000_000),
            (u64::MAX, 123),
        ] {
            assert_eq!(
                commitlog_key(seg, n),
                format!("{}{seg:010}/{n:010}", super::COMMITLOG_PREFIX)
            );
        }
        for v in [0, 7, 42, 999, 1_000, 123_456, u64::MAX] {
            for width in [0, 3, 5, 10] {
                let mut s = String::new();
                push_zero_padded(&mut s, v, width);
                assert_eq!(s, format!("{v:0width$}"));
            }
        }
    }
}
