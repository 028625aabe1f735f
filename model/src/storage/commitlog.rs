//! The commitlog of one table on one shard: segments of a fixed number of records, freed once
//! everything they hold has been flushed to an sstable.
//!
//! Simplification: upstream has one commitlog per shard, shared by every table; here each table
//! has its own. What depends on it — tombstone GC of the batchlog table being held back while a
//! segment holds batchlog data (SPEC §5.10) — is the same, since a segment counts only the
//! records of its own table either way.

/// One commitlog segment.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    pub(crate) id: u64,
    pub(crate) mutations: u64,
    /// Holds records not yet flushed to an sstable.
    dirty: bool,
}

/// The segments of a table's commitlog; the last one is active.
#[derive(Clone, Debug)]
pub(crate) struct Commitlog {
    segments: Vec<Segment>,
    next_id: u64,
    capacity: u64,
}

impl Commitlog {
    pub(crate) fn new(first_id: u64, capacity: u64) -> Self {
        assert!(
            capacity > 0,
            "a commitlog segment holds at least one record"
        );
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
    pub(crate) fn append(&mut self) -> ((u64, u64), Vec<Segment>) {
        let mut freed = Vec::new();
        if self.segments.last().expect("active segment").mutations >= self.capacity {
            freed = self.roll();
        }
        let active = self.segments.last_mut().expect("active segment");
        let pos = (active.id, active.mutations);
        active.mutations += 1;
        active.dirty = true;
        (pos, freed)
    }

    /// Starts a new active segment; returns the clean segments freed.
    pub(crate) fn roll(&mut self) -> Vec<Segment> {
        self.segments.push(Segment {
            id: self.next_id,
            mutations: 0,
            dirty: false,
        });
        self.next_id += 1;
        self.free_clean()
    }

    /// Marks everything flushed; returns the segments freed (all clean ones but the active).
    pub(crate) fn mark_flushed(&mut self) -> Vec<Segment> {
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
        assert!(
            !self.segments.is_empty(),
            "the active segment is never freed"
        );
        freed
    }

    /// Tombstone GC of a table is allowed only while no alive segment holds its records
    /// (SPEC §5.10).
    pub(crate) fn gc_allowed(&self) -> bool {
        self.segments.iter().all(|s| s.mutations == 0)
    }
}
