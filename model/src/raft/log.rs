//! The replicated log of one Raft node: entries `1..=last_index`, kept in memory, plus the
//! bookkeeping of which suffix still has to be written to disk and which prefix is durable.
//!
//! Promise kept here: the *log matching* rule of the Raft paper. An append from a leader is
//! accepted only if the entry before it matches (consistency check); an existing entry is
//! removed only if it conflicts with a new one (same index, different term), and then every
//! entry after it goes too. A stale, shorter append never truncates anything.

use serde::{Deserialize, Serialize};

/// One log entry. `cmd == None` is the empty entry a new leader appends to commit the entries
/// of earlier terms (it is never handed to the application state machine).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry<C> {
    /// Position in the log, from 1.
    pub index: u64,
    /// Term of the leader that created the entry.
    pub term: u64,
    /// The application command, or `None` for a leader's empty entry.
    pub cmd: Option<C>,
}

/// What a node has to write to disk since the last call to [`Log::take_unstable`].
#[derive(Clone, Debug, PartialEq)]
pub struct Unstable<C> {
    /// Entries to (over)write, in index order.
    pub entries: Vec<Entry<C>>,
    /// The log's last index after these writes: stored entries above it must be deleted.
    pub last_index: u64,
}

/// The in-memory log.
#[derive(Clone, Debug)]
pub struct Log<C> {
    entries: Vec<Entry<C>>,
    /// Lowest index changed (appended or truncated) since the last `take_unstable`.
    unstable_from: Option<u64>,
    /// Highest index known to be durable on this node's disk (the leader counts itself in the
    /// commit quorum only up to here).
    stable: u64,
}

impl<C: Clone> Default for Log<C> {
    fn default() -> Self {
        Self::new()
    }
}

impl<C: Clone> Log<C> {
    /// An empty log.
    pub fn new() -> Self {
        Log {
            entries: Vec::new(),
            unstable_from: None,
            stable: 0,
        }
    }

    /// A log recovered from disk: the entries must be contiguous from index 1, and all of them
    /// are durable.
    pub fn recovered(entries: Vec<Entry<C>>) -> Self {
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(e.index, i as u64 + 1, "recovered log is not contiguous");
            if i > 0 {
                assert!(
                    e.term >= entries[i - 1].term,
                    "recovered log terms go backwards"
                );
            }
        }
        let stable = entries.len() as u64;
        Log {
            entries,
            unstable_from: None,
            stable,
        }
    }

    /// Index of the last entry (0 if empty).
    pub fn last_index(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Term of the last entry (0 if empty).
    pub fn last_term(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.term)
    }

    /// Highest index known to be durable.
    pub fn stable_index(&self) -> u64 {
        self.stable
    }

    /// Term of the entry at `index`; `Some(0)` for index 0, `None` past the end.
    pub fn term(&self, index: u64) -> Option<u64> {
        if index == 0 {
            return Some(0);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if present.
    pub fn entry(&self, index: u64) -> Option<&Entry<C>> {
        if index == 0 {
            return None;
        }
        self.entries.get(index as usize - 1)
    }

    /// Entries `lo..=hi`, at most `max` of them (clamped to the log).
    pub fn slice(&self, lo: u64, hi: u64, max: usize) -> Vec<Entry<C>> {
        assert!(lo >= 1, "slice starts at index 0");
        let hi = hi.min(self.last_index());
        if lo > hi {
            return Vec::new();
        }
        let end = (hi as usize).min((lo as usize - 1).saturating_add(max));
        self.entries[lo as usize - 1..end].to_vec()
    }

    /// Appends a new entry in `term` (leader only); returns its index.
    pub fn append(&mut self, term: u64, cmd: Option<C>) -> u64 {
        assert!(
            term >= self.last_term(),
            "leader appends with an older term than its log"
        );
        let index = self.last_index() + 1;
        self.entries.push(Entry { index, term, cmd });
        self.mark_unstable(index);
        index
    }

    /// Raft's election restriction: is a log ending at (`last_index`, `last_term`) at least as
    /// up to date as this one?
    pub fn is_up_to_date(&self, last_index: u64, last_term: u64) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// The consistency check and append of AppendEntries. Returns the index of the last entry
    /// known to match the leader (`prev_index + entries.len()`), or `None` if the entry at
    /// `prev_index` does not have `prev_term`. Entries at or below `committed` must never
    /// conflict: that would mean two different committed entries at one index.
    pub fn maybe_append(
        &mut self,
        prev_index: u64,
        prev_term: u64,
        entries: &[Entry<C>],
        committed: u64,
    ) -> Option<u64> {
        if self.term(prev_index) != Some(prev_term) {
            return None;
        }
        for (k, e) in entries.iter().enumerate() {
            assert_eq!(
                e.index,
                prev_index + 1 + k as u64,
                "append entries not contiguous"
            );
            match self.term(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    assert!(
                        e.index > committed,
                        "conflict at committed index {} (commit {})",
                        e.index,
                        committed
                    );
                    self.truncate_from(e.index);
                    self.push_all(&entries[k..]);
                    break;
                }
                None => {
                    self.push_all(&entries[k..]);
                    break;
                }
            }
        }
        Some(prev_index + entries.len() as u64)
    }

    /// Where the leader should retry after a failed consistency check at (`prev_index`,
    /// `prev_term`): one past our last entry if we are short, else the first index of the
    /// conflicting term (so a whole wrong term is skipped in one round trip).
    pub fn conflict_hint(&self, prev_index: u64) -> u64 {
        if prev_index > self.last_index() {
            return self.last_index() + 1;
        }
        let t = self.term(prev_index).expect("checked above");
        let mut i = prev_index;
        while i > 1 && self.term(i - 1) == Some(t) {
            i -= 1;
        }
        i.max(1)
    }

    /// Records that everything up to (`index`, `term`) is durable (ignored if that entry has
    /// since been replaced).
    pub fn persisted(&mut self, index: u64, term: u64) {
        if index > self.stable && self.term(index) == Some(term) {
            self.stable = index;
        }
    }

    /// Takes what has to be written to disk since the last call.
    pub fn take_unstable(&mut self) -> Option<Unstable<C>> {
        let from = self.unstable_from.take()?;
        let entries = if from <= self.last_index() {
            self.entries[from as usize - 1..].to_vec()
        } else {
            Vec::new()
        };
        Some(Unstable {
            entries,
            last_index: self.last_index(),
        })
    }

    fn truncate_from(&mut self, index: u64) {
        assert!(index >= 1 && index <= self.last_index());
        self.entries.truncate(index as usize - 1);
        self.stable = self.stable.min(index - 1);
        self.mark_unstable(index);
    }

    fn push_all(&mut self, entries: &[Entry<C>]) {
        for e in entries {
            assert_eq!(e.index, self.last_index() + 1);
            assert!(
                e.term >= self.last_term(),
                "appended entry has an older term"
            );
            self.mark_unstable(e.index);
            self.entries.push(e.clone());
        }
    }

    fn mark_unstable(&mut self, index: u64) {
        self.unstable_from = Some(self.unstable_from.map_or(index, |u| u.min(index)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(index: u64, term: u64) -> Entry<u32> {
        Entry {
            index,
            term,
            cmd: Some(index as u32 * 100 + term as u32),
        }
    }

    fn log_of(terms: &[u64]) -> Log<u32> {
        Log::recovered(
            terms
                .iter()
                .enumerate()
                .map(|(i, &t)| e(i as u64 + 1, t))
                .collect(),
        )
    }

    #[test]
    fn consistency_check_rejects_mismatch() {
        let mut l = log_of(&[1, 1, 2]);
        assert_eq!(l.maybe_append(3, 1, &[e(4, 2)], 0), None);
        assert_eq!(l.maybe_append(4, 2, &[e(5, 2)], 0), None);
        assert_eq!(l.maybe_append(3, 2, &[e(4, 2)], 0), Some(4));
        assert_eq!(l.last_index(), 4);
    }

    #[test]
    fn conflict_truncates_suffix() {
        let mut l = log_of(&[1, 1, 2, 2, 2]);
        l.take_unstable();
        assert_eq!(l.maybe_append(2, 1, &[e(3, 3)], 2), Some(3));
        assert_eq!(l.last_index(), 3);
        assert_eq!(l.term(3), Some(3));
        assert_eq!(l.stable_index(), 2);
        let u = l.take_unstable().unwrap();
        assert_eq!(u.entries, vec![e(3, 3)]);
        assert_eq!(u.last_index, 3);
    }

    #[test]
    fn stale_shorter_append_does_not_truncate() {
        let mut l = log_of(&[1, 1, 1, 1]);
        assert_eq!(l.maybe_append(1, 1, &[e(2, 1)], 0), Some(2));
        assert_eq!(l.last_index(), 4);
        assert!(l.take_unstable().is_none());
    }

    #[test]
    #[should_panic(expected = "conflict at committed index")]
    fn conflict_below_commit_asserts() {
        let mut l = log_of(&[1, 1, 1]);
        l.maybe_append(1, 1, &[e(2, 2)], 2);
    }

    #[test]
    fn conflict_hint_skips_term() {
        let l = log_of(&[1, 2, 2, 2]);
        assert_eq!(l.conflict_hint(4), 2);
        assert_eq!(l.conflict_hint(9), 5);
        assert_eq!(l.conflict_hint(1), 1);
    }

    #[test]
    fn up_to_date_rule() {
        let l = log_of(&[1, 2]);
        assert!(l.is_up_to_date(2, 2));
        assert!(l.is_up_to_date(1, 3));
        assert!(!l.is_up_to_date(5, 1));
        assert!(!l.is_up_to_date(1, 2));
    }

    #[test]
    fn slice_and_persisted() {
        let mut l = log_of(&[1]);
        let i = l.append(2, Some(7));
        assert_eq!(i, 2);
        assert_eq!(l.stable_index(), 1);
        l.persisted(2, 1);
        assert_eq!(l.stable_index(), 1);
        l.persisted(2, 2);
        assert_eq!(l.stable_index(), 2);
        assert_eq!(l.slice(1, 9, 1).len(), 1);
        assert_eq!(l.slice(1, 9, 10).len(), 2);
        assert!(l.slice(3, 9, 10).is_empty());
    }
}
