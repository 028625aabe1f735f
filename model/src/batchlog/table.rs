//! The batchlog table's storage model: a memtable, flushed sstables and a commitlog, with an
//! honest cost model for scans (SPEC §5.2, §5.10).
//!
//! What it models:
//! - partitions holding clustering rows, row tombstones, range tombstones and a partition
//!   tombstone, in a memtable and in immutable sstables (runs);
//! - reads that merge every run and count what they walk: live rows, and dead entries
//!   (tombstones of every kind, and row versions that are shadowed or superseded);
//! - flush (memtable → sstable) and size-tiered compaction, both of which drop data
//!   shadowed by a tombstone in their input, including v2 rows and row tombstones covered by a
//!   range tombstone, without waiting for tombstone GC;
//! - tombstone GC (gc_grace_seconds = 0) that is held back while **any** commitlog segment
//!   holding batchlog data is alive — the reason the v1 table piles up partition tombstones;
//! - persistence: every mutation is a commitlog record, every flush or compaction an sstable,
//!   described as [`DiskOp`]s that the async shell writes to the simulated disk and syncs; a
//!   crash loses what was not synced and [`Table::recover`] rebuilds from what was.
//!
//! The promise it keeps: a read returns exactly the rows whose newest version is live and not
//! shadowed by a newer-or-equal tombstone, whatever the flush and compaction history was.
//! Timestamps decide; a tombstone wins a tie.

use super::types::{ClusteringKey, PartitionKey, Payload, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Sizing of the storage model.
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

/// Compaction keeps rows that a tombstone in its input shadows (the mechanism that turns a
/// range tombstone into a bounded scan is switched off).
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

/// One version of a clustering row in one run.
#[derive(Clone, Debug)]
pub enum Row {
    /// A live row with its `data`.
    Live {
        /// Write timestamp.
        ts: Timestamp,
        /// The batch.
        data: Payload,
    },
    /// A row tombstone.
    Dead {
        /// Deletion timestamp.
        ts: Timestamp,
    },
}

impl Row {
    /// The version's timestamp.
    pub fn ts(&self) -> Timestamp {
        match self {
            Row::Live { ts, .. } | Row::Dead { ts } => *ts,
        }
    }

    /// Does this version win reconciliation against `other`? Higher timestamp wins; on a tie
    /// the tombstone wins.
    fn wins_over(&self, other: &Row) -> bool {
        match self.ts().cmp(&other.ts()) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => matches!(self, Row::Dead { .. }),
        }
    }
}

/// The end bound of a range tombstone. Every batchlog range tombstone starts before all rows of
/// its partition (SPEC §5.6 step 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RtEnd {
    /// Ends just before the `written_at` prefix: covers rows with `written_at < x`.
    Before(u64),
    /// Ends just after the `written_at` prefix: covers rows with `written_at <= x`.
    After(u64),
}

impl RtEnd {
    /// Does a tombstone with this end cover `ck`?
    pub fn covers(self, ck: &ClusteringKey) -> bool {
        match self {
            RtEnd::Before(x) => ck.written_at < x,
            RtEnd::After(x) => ck.written_at <= x,
        }
    }

    /// A key that orders ends by how much they cover.
    fn reach(self) -> (u64, u8) {
        match self {
            RtEnd::Before(x) => (x, 0),
            RtEnd::After(x) => (x, 1),
        }
    }
}

/// A range tombstone `[before all rows, end]` with its timestamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RangeTombstone {
    /// The end bound.
    pub end: RtEnd,
    /// Deletion timestamp.
    pub ts: Timestamp,
}

/// A partition's fragments in one run.
#[derive(Clone, Debug, Default)]
pub struct PartitionFragment {
    /// The partition tombstone, if any.
    pub tombstone: Option<Timestamp>,
    /// Clustering rows (live or row tombstones), one version per key in a run.
    pub rows: BTreeMap<ClusteringKey, Row>,
    /// Range tombstones, pruned so that none is subsumed by a newer, wider one.
    pub range_tombstones: Vec<RangeTombstone>,
}

impl PartitionFragment {
    fn fragment_count(&self) -> usize {
        usize::from(self.tombstone.is_some()) + self.rows.len() + self.range_tombstones.len()
    }

    fn is_empty(&self) -> bool {
        self.fragment_count() == 0
    }

    /// The newest tombstone timestamp covering `ck` in this fragment.
    fn shadow_ts(&self, ck: &ClusteringKey) -> Option<Timestamp> {
        let rt = self
            .range_tombstones
            .iter()
            .filter(|r| r.end.covers(ck))
            .map(|r| r.ts)
            .max();
        rt.max(self.tombstone)
    }

    /// Adds a range tombstone, dropping those it subsumes (or itself if subsumed).
    fn add_range_tombstone(&mut self, rt: RangeTombstone) {
        self.range_tombstones.push(rt);
        prune_range_tombstones(&mut self.range_tombstones);
    }
}

fn prune_range_tombstones(rts: &mut Vec<RangeTombstone>) {
    // Newest first, then widest first; keep one only if nothing kept is at least as new and at
    // least as wide.
    rts.sort_by(|a, b| b.ts.cmp(&a.ts).then(b.end.reach().cmp(&a.end.reach())));
    let mut kept: Vec<RangeTombstone> = Vec::with_capacity(rts.len());
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
#[derive(Clone, Debug, Default)]
pub struct Run {
    /// Partitions in key order.
    pub partitions: BTreeMap<PartitionKey, PartitionFragment>,
}

impl Run {
    /// Fragments (rows and tombstones) held.
    pub fn fragment_count(&self) -> usize {
        self.partitions.values().map(|p| p.fragment_count()).sum()
    }
}

/// A write to the batchlog table.
#[derive(Clone, Debug)]
pub enum Mutation {
    /// Insert the row `(pk, ck)` with `data`.
    Insert {
        /// Partition.
        pk: PartitionKey,
        /// Row.
        ck: ClusteringKey,
        /// Write timestamp.
        ts: Timestamp,
        /// The batch.
        data: Payload,
    },
    /// A row tombstone at `(pk, ck)` (v2 deletion).
    DeleteRow {
        /// Partition.
        pk: PartitionKey,
        /// Row.
        ck: ClusteringKey,
        /// Deletion timestamp.
        ts: Timestamp,
    },
    /// A partition tombstone (v1 deletion).
    DeletePartition {
        /// Partition.
        pk: PartitionKey,
        /// Deletion timestamp.
        ts: Timestamp,
    },
    /// A range tombstone from before all rows (v2 cleanup).
    DeleteRange {
        /// Partition.
        pk: PartitionKey,
        /// The tombstone.
        rt: RangeTombstone,
    },
}

impl Mutation {
    /// The partition written.
    pub fn pk(&self) -> PartitionKey {
        match self {
            Mutation::Insert { pk, .. }
            | Mutation::DeleteRow { pk, .. }
            | Mutation::DeletePartition { pk, .. }
            | Mutation::DeleteRange { pk, .. } => *pk,
        }
    }
}

/// A write the async shell must make to the node's simulated disk (then `sync`).
#[derive(Clone, Debug)]
pub enum DiskOp {
    /// Append a commitlog record.
    PutCommitlog {
        /// Disk key (`batchlog/cl/<segment>/<n>`, in append order).
        key: String,
        /// The record.
        mutation: Mutation,
    },
    /// Write an sstable.
    PutSstable {
        /// Disk key (`batchlog/sst/<generation>`).
        key: String,
        /// Its content.
        run: Rc<Run>,
    },
    /// Delete a key (a freed commitlog record or a compacted sstable).
    Delete {
        /// Disk key.
        key: String,
    },
}

/// Disk key prefix of commitlog records.
pub const COMMITLOG_PREFIX: &str = "batchlog/cl/";
/// Disk key prefix of sstables.
pub const SSTABLE_PREFIX: &str = "batchlog/sst/";

fn commitlog_key(segment: u64, n: u64) -> String {
    format!("{COMMITLOG_PREFIX}{segment:010}/{n:010}")
}

fn sstable_key(generation: u64) -> String {
    format!("{SSTABLE_PREFIX}{generation:010}")
}

#[derive(Clone, Debug)]
struct Segment {
    id: u64,
    mutations: u64,
    /// Holds records not yet flushed to an sstable.
    dirty: bool,
}

/// The node's commitlog, as far as the batchlog table uses it.
#[derive(Clone, Debug)]
struct Commitlog {
    /// Alive segments; the last one is active.
    segments: Vec<Segment>,
    next_id: u64,
    capacity: u64,
}

impl Commitlog {
    fn new(first_id: u64, capacity: u64) -> Self {
        assert!(capacity > 0);
        Commitlog {
            segments: vec![Segment {
                id: first_id,
                mutations: 0,
                dirty: false,
            }],
            next_id: first_id + 1,
            capacity,
        }
    }

    /// Appends one record; returns its (segment, n) and the segments freed by a roll-over.
    fn append(&mut self) -> ((u64, u64), Vec<Segment>) {
        let mut freed = Vec::new();
        if self.segments.last().expect("active segment").mutations >= self.capacity {
            self.segments.push(Segment {
                id: self.next_id,
                mutations: 0,
                dirty: false,
            });
            self.next_id += 1;
            freed = self.free_clean();
        }
        let active = self.segments.last_mut().expect("active segment");
        let pos = (active.id, active.mutations);
        active.mutations += 1;
        active.dirty = true;
        (pos, freed)
    }

    /// Marks everything flushed; returns the segments freed (all clean ones but the active).
    fn mark_flushed(&mut self) -> Vec<Segment> {
        for s in &mut self.segments {
            s.dirty = false;
        }
        self.free_clean()
    }

    fn free_clean(&mut self) -> Vec<Segment> {
        let last = self.segments.len() - 1;
        let mut freed = Vec::new();
        let mut kept = Vec::new();
        for (i, s) in self.segments.drain(..).enumerate() {
            if i != last && !s.dirty {
                freed.push(s);
            } else {
                kept.push(s);
            }
        }
        self.segments = kept;
        freed
    }

    /// Tombstone GC of the batchlog table is allowed only while no alive segment holds
    /// batchlog data (SPEC §5.10).
    fn gc_allowed(&self) -> bool {
        self.segments.iter().all(|s| s.mutations == 0)
    }
}

/// What a scan walked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScanCost {
    /// Live rows returned.
    pub live: u64,
    /// Dead entries stepped over: partition, row and range tombstones, and row versions that
    /// are shadowed or superseded.
    pub dead: u64,
}

impl ScanCost {
    /// Adds another scan's cost.
    pub fn add(&mut self, o: ScanCost) {
        self.live += o.live;
        self.dead += o.dead;
    }
}

/// A live row returned by a read.
#[derive(Clone, Debug)]
pub struct LiveRow {
    /// Partition.
    pub pk: PartitionKey,
    /// Row.
    pub ck: ClusteringKey,
    /// Write timestamp.
    pub ts: Timestamp,
    /// The batch.
    pub data: Payload,
}

/// Counters of the storage model's background work.
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
}

/// The batchlog table of one node.
#[derive(Clone, Debug)]
pub struct Table {
    cfg: TableConfig,
    memtable: Run,
    memtable_fragments: usize,
    /// Sstables, oldest first, with their generation.
    sstables: Vec<(u64, Rc<Run>)>,
    /// Fragments per sstable generation (for size tiers).
    sstable_sizes: BTreeMap<u64, usize>,
    next_generation: u64,
    commitlog: Commitlog,
    stats: TableStats,
}

impl Table {
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

    /// Rebuilds the table after a restart from the durable sstables and commitlog records:
    /// replays the records into the memtable, flushes it, and deletes every replayed record.
    pub fn recover(
        cfg: TableConfig,
        sstables: Vec<(String, Rc<Run>)>,
        records: Vec<(String, Mutation)>,
    ) -> (Table, Vec<DiskOp>) {
        let mut max_gen = 0;
        let mut max_seg = 0;
        let mut t = Table::new(cfg);
        for (key, run) in sstables {
            let gen: u64 = key[SSTABLE_PREFIX.len()..].parse().expect("sstable key");
            max_gen = max_gen.max(gen + 1);
            t.sstable_sizes.insert(gen, run.fragment_count());
            t.sstables.push((gen, run));
        }
        t.sstables.sort_by_key(|(g, _)| *g);
        t.next_generation = max_gen;
        let mut ops = Vec::new();
        for (key, m) in records {
            let seg: u64 = key[COMMITLOG_PREFIX.len()..COMMITLOG_PREFIX.len() + 10]
                .parse()
                .expect("commitlog key");
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

    /// Is tombstone GC currently allowed (no alive commitlog segment holds batchlog data)?
    pub fn gc_allowed(&self) -> bool {
        self.commitlog.gc_allowed()
    }

    /// Applies one mutation: commitlog record, memtable, and a flush (plus compaction) when the
    /// memtable is full. Returns the disk writes to make before acknowledging.
    pub fn apply(&mut self, m: Mutation) -> Vec<DiskOp> {
        let mut ops = Vec::new();
        let ((seg, n), freed) = self.commitlog.append();
        self.free_segments(freed, &mut ops);
        if self.cfg.persist {
            ops.push(DiskOp::PutCommitlog {
                key: commitlog_key(seg, n),
                mutation: m.clone(),
            });
        }
        self.apply_to_memtable(&m);
        if self.memtable_fragments >= self.cfg.memtable_flush_fragments {
            ops.extend(self.flush());
        }
        ops
    }

    fn free_segments(&self, freed: Vec<Segment>, ops: &mut Vec<DiskOp>) {
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

    fn apply_to_memtable(&mut self, m: &Mutation) {
        let before;
        let after;
        {
            let p = self.memtable.partitions.entry(m.pk()).or_default();
            before = p.fragment_count();
            match m {
                Mutation::Insert { ck, ts, data, .. } => upsert_row(
                    p,
                    *ck,
                    Row::Live {
                        ts: *ts,
                        data: data.clone(),
                    },
                ),
                Mutation::DeleteRow { ck, ts, .. } => upsert_row(p, *ck, Row::Dead { ts: *ts }),
                Mutation::DeletePartition { ts, .. } => {
                    p.tombstone = Some(p.tombstone.map_or(*ts, |t| t.max(*ts)))
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
    pub fn flush(&mut self) -> Vec<DiskOp> {
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
    pub fn compact(&mut self) -> Vec<DiskOp> {
        if self.sstables.len() < 2 && !self.gc_allowed() {
            return Vec::new();
        }
        let all: Vec<u64> = self.sstables.iter().map(|(g, _)| *g).collect();
        self.compact_generations(&all)
    }

    /// Size-tiered compaction: while some size tier (fragments / flush size, in powers of 4)
    /// holds `compaction_threshold` sstables, compact that tier into one.
    fn maybe_compact(&mut self) -> Vec<DiskOp> {
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
    fn compact_generations(&mut self, gens: &[u64]) -> Vec<DiskOp> {
        let mut ops = Vec::new();
        let (old, keep): (Vec<_>, Vec<_>) = std::mem::take(&mut self.sstables)
            .into_iter()
            .partition(|(g, _)| gens.contains(g));
        assert_eq!(old.len(), gens.len(), "compacting unknown sstables");
        self.sstables = keep;
        let runs: Vec<&Run> = old.iter().map(|(_, r)| r.as_ref()).collect();
        let purge = self.gc_allowed() && self.sstables.is_empty();
        let run = self.merge_runs(&runs, purge);
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

    fn add_sstable(&mut self, gen: u64, run: Rc<Run>, ops: &mut Vec<DiskOp>) {
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
    fn merge_runs(&mut self, runs: &[&Run], purge: bool) -> Run {
        let mut by_pk: BTreeMap<PartitionKey, Vec<&PartitionFragment>> = BTreeMap::new();
        for r in runs {
            for (pk, p) in &r.partitions {
                by_pk.entry(*pk).or_default().push(p);
            }
        }
        let mut out = Run::default();
        for (pk, frags) in by_pk {
            let mut merged = PartitionFragment::default();
            for f in &frags {
                merged.tombstone = merged.tombstone.max(f.tombstone);
                merged
                    .range_tombstones
                    .extend(f.range_tombstones.iter().copied());
                for (ck, row) in &f.rows {
                    upsert_row(&mut merged, *ck, row.clone());
                }
            }
            prune_range_tombstones(&mut merged.range_tombstones);
            let before = merged.rows.len();
            let shadow = |ck: &ClusteringKey, ts: Timestamp, m: &PartitionFragment| {
                m.shadow_ts(ck).is_some_and(|s| s >= ts)
            };
            let keep: Vec<ClusteringKey> = merged
                .rows
                .iter()
                .filter(|(ck, row)| self.cfg.keep_shadowed || !shadow(ck, row.ts(), &merged))
                .map(|(ck, _)| *ck)
                .collect();
            let mut rows = BTreeMap::new();
            for ck in keep {
                let row = merged.rows.remove(&ck).expect("kept row");
                rows.insert(ck, row);
            }
            merged.rows = rows;
            self.stats.shadowed_dropped += (before - merged.rows.len()) as u64;
            if purge && !self.memtable.partitions.contains_key(&pk) {
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
                out.partitions.insert(pk, merged);
            }
        }
        out
    }

    /// Reads one partition, merging all runs; returns the live rows in clustering order and the
    /// cost of the walk.
    pub fn read_partition(&self, pk: &PartitionKey) -> (Vec<LiveRow>, ScanCost) {
        let frags: Vec<&PartitionFragment> = self
            .sstables
            .iter()
            .filter_map(|(_, r)| r.partitions.get(pk))
            .chain(self.memtable.partitions.get(pk))
            .collect();
        read_fragments(*pk, &frags)
    }

    /// Reads the whole table (the v1 replay scan), partition by partition.
    pub fn scan_all(&self) -> (Vec<LiveRow>, ScanCost) {
        let mut by_pk: BTreeMap<PartitionKey, Vec<&PartitionFragment>> = BTreeMap::new();
        for (_, r) in &self.sstables {
            for (pk, p) in &r.partitions {
                by_pk.entry(*pk).or_default().push(p);
            }
        }
        for (pk, p) in &self.memtable.partitions {
            by_pk.entry(*pk).or_default().push(p);
        }
        let mut rows = Vec::new();
        let mut cost = ScanCost::default();
        for (pk, frags) in by_pk {
            let (r, c) = read_fragments(pk, &frags);
            rows.extend(r);
            cost.add(c);
        }
        (rows, cost)
    }

    /// Range tombstones a read of `pk` walks (over all runs).
    pub fn range_tombstone_count(&self, pk: &PartitionKey) -> usize {
        self.sstables
            .iter()
            .filter_map(|(_, r)| r.partitions.get(pk))
            .chain(self.memtable.partitions.get(pk))
            .map(|p| p.range_tombstones.len())
            .sum()
    }

    /// Every live row, without counting cost (final state, tests).
    pub fn live_rows(&self) -> Vec<LiveRow> {
        self.scan_all().0
    }
}

fn upsert_row(p: &mut PartitionFragment, ck: ClusteringKey, row: Row) {
    match p.rows.get(&ck) {
        Some(old) if old.wins_over(&row) => {}
        _ => {
            p.rows.insert(ck, row);
        }
    }
}

/// Merges one partition's fragments (oldest first) for a read and counts the walk.
fn read_fragments(pk: PartitionKey, frags: &[&PartitionFragment]) -> (Vec<LiveRow>, ScanCost) {
    let mut cost = ScanCost::default();
    let mut tombstone: Option<Timestamp> = None;
    let mut rts: Vec<RangeTombstone> = Vec::new();
    for f in frags {
        if f.tombstone.is_some() {
            cost.dead += 1;
        }
        tombstone = tombstone.max(f.tombstone);
        cost.dead += f.range_tombstones.len() as u64;
        rts.extend(f.range_tombstones.iter().copied());
    }
    let mut winners: BTreeMap<ClusteringKey, &Row> = BTreeMap::new();
    for f in frags {
        for (ck, row) in &f.rows {
            match winners.get(ck) {
                Some(w) if w.wins_over(row) => cost.dead += 1,
                Some(_) => {
                    cost.dead += 1;
                    winners.insert(*ck, row);
                }
                None => {
                    winners.insert(*ck, row);
                }
            }
        }
    }
    let mut live = Vec::new();
    for (ck, row) in winners {
        let shadow = rts
            .iter()
            .filter(|r| r.end.covers(&ck))
            .map(|r| r.ts)
            .max()
            .max(tombstone);
        match row {
            Row::Live { ts, data } if shadow.is_none_or(|s| s < *ts) => {
                cost.live += 1;
                live.push(LiveRow {
                    pk,
                    ck,
                    ts: *ts,
                    data: data.clone(),
                });
            }
            _ => cost.dead += 1,
        }
    }
    (live, cost)
}
