//! The history: every event of a run, typed, in order, with virtual time and node.
//!
//! The harness records its own events ([`SimEvent`]: RPCs, faults, crashes, disk syncs); protocol
//! models record their own typed events through [`ProtoEvent`]. Checkers read the history and
//! downcast protocol events with [`Entry::proto`]. The digest is a BLAKE3 hash of every entry's
//! compact canonical encoding ([`crate::encode`]), fed as each entry is recorded, so the same
//! seed on the same binary gives the same digest in any process and computing it costs nothing
//! after the run. JSON is for export only.

use crate::fault::{Fault, UndoneBy};
use crate::ids::{NodeId, SimInstant};
use crate::sync::Notify;
use serde::Serialize;
use std::any::Any;
use std::cell::{Ref, RefCell};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::Write;
use std::rc::Rc;

/// The name of an event's kind, used for counting and for event-triggered faults.
pub trait EventKind {
    /// Short snake_case name of this event's kind, e.g. `"stage_committed"`.
    fn kind(&self) -> &'static str;
}

/// A protocol event recorded by a model. Implemented for every
/// `T: Serialize + Debug + EventKind + 'static`.
pub trait ProtoEvent: Any + Debug {
    /// Short snake_case name of this event's kind.
    fn kind(&self) -> &'static str;
    /// JSON form (JSON-lines export, repro bundles, field-matching triggers).
    fn to_json(&self) -> serde_json::Value;
    /// Append the compact canonical encoding (see [`crate::encode`]) to `out`: what the
    /// digest hashes, as the event is recorded.
    fn encode(&self, out: &mut Vec<u8>);
    /// For downcasting by checkers.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Serialize + Debug + EventKind + 'static> ProtoEvent for T {
    fn kind(&self) -> &'static str {
        EventKind::kind(self)
    }
    fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("protocol events serialise")
    }
    fn encode(&self, out: &mut Vec<u8>) {
        crate::encode::encode_into(self, out);
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Outcome of an RPC as seen by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RpcOutcome {
    /// A response arrived.
    Ok,
    /// The handler returned an error.
    Error,
    /// The connection was killed (or its peer crashed) while the call was pending.
    ConnectionClosed,
    /// No answer within the caller's timeout.
    Timeout,
    /// No handler registered for the verb on the destination.
    NoHandler,
}

/// Events recorded by the harness itself.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SimEvent {
    /// A call or one-way message was sent.
    RpcSend {
        /// Call id, unique in the run.
        id: u64,
        /// Verb name.
        verb: &'static str,
        /// Destination.
        to: NodeId,
        /// Connection generation it travels on.
        conn: u64,
    },
    /// A request was admitted by the destination's handler.
    RpcAdmit {
        /// Call id.
        id: u64,
        /// Verb name.
        verb: &'static str,
        /// Source of the request.
        from: NodeId,
    },
    /// The caller got its result.
    RpcDone {
        /// Call id.
        id: u64,
        /// Verb name.
        verb: &'static str,
        /// How it ended.
        outcome: RpcOutcome,
    },
    /// A handler's response was discarded because its connection had been killed.
    RpcLateResponseDiscarded {
        /// Call id.
        id: u64,
        /// Verb name.
        verb: &'static str,
    },
    /// A message was dropped by a link rule or partition.
    RpcDropped {
        /// Call id.
        id: u64,
        /// Verb name.
        verb: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A message was held by a stall rule.
    RpcStalled {
        /// Call id.
        id: u64,
        /// Verb name.
        verb: &'static str,
    },
    /// A stream was opened.
    StreamOpen {
        /// Stream id.
        id: u64,
        /// Verb name.
        verb: &'static str,
        /// Destination.
        to: NodeId,
    },
    /// A stream ended on the receiving side.
    StreamEnd {
        /// Stream id.
        id: u64,
        /// `closed` or `broken`.
        how: &'static str,
    },
    /// A connection was killed (generation bumped).
    ConnectionKilled {
        /// Source of the connection.
        from: NodeId,
        /// Destination of the connection.
        to: NodeId,
        /// Calls failed on the caller's side.
        failed_calls: u64,
    },
    /// A fault was applied, by the nemesis or a scripted story (see [`crate::fault`]).
    FaultApplied {
        /// Record id: its [`SimEvent::FaultUndone`] carries the same.
        id: u64,
        /// The fault (resolved: a `kill_leader` is the crash of the node that led).
        fault: Fault,
        /// Position in the run's fault schedule; `None` for a scripted fault.
        schedule: Option<usize>,
    },
    /// A fault in force ended (restart, release, heal, ...).
    FaultUndone {
        /// Record id of the [`SimEvent::FaultApplied`].
        id: u64,
        /// The fault.
        fault: Fault,
        /// Who ended it.
        by: UndoneBy,
    },
    /// A scheduled fault was not applied (no live leader to kill, its node already down, an
    /// event binding that did not resolve).
    FaultSkipped {
        /// Position in the run's fault schedule.
        schedule: usize,
        /// The fault as scheduled.
        fault: Fault,
        /// Why.
        reason: String,
    },
    /// A node crashed (volatile state and unsynced writes lost).
    Crash {
        /// Unsynced disk writes lost.
        lost_writes: u64,
    },
    /// A node (re)started.
    Start {
        /// Incarnation number, 0 for the first boot.
        incarnation: u32,
    },
    /// A node was paused / resumed.
    Pause {
        /// True for pause, false for resume.
        paused: bool,
    },
    /// A disk sync completed.
    DiskSync {
        /// Writes made durable.
        writes: u64,
        /// Whether it failed with an injected I/O error.
        failed: bool,
    },
    /// A phase of the run began.
    Phase {
        /// `warmup`, `chaos`, `heal`, `converge`, `check`.
        name: &'static str,
    },
}

impl SimEvent {
    /// Kind name of this harness event.
    pub fn kind(&self) -> &'static str {
        match self {
            SimEvent::RpcSend { .. } => "rpc_send",
            SimEvent::RpcAdmit { .. } => "rpc_admit",
            SimEvent::RpcDone { .. } => "rpc_done",
            SimEvent::RpcLateResponseDiscarded { .. } => "rpc_late_response_discarded",
            SimEvent::RpcDropped { .. } => "rpc_dropped",
            SimEvent::RpcStalled { .. } => "rpc_stalled",
            SimEvent::StreamOpen { .. } => "stream_open",
            SimEvent::StreamEnd { .. } => "stream_end",
            SimEvent::ConnectionKilled { .. } => "connection_killed",
            SimEvent::FaultApplied { .. } => "fault_applied",
            SimEvent::FaultUndone { .. } => "fault_undone",
            SimEvent::FaultSkipped { .. } => "fault_skipped",
            SimEvent::Crash { .. } => "crash",
            SimEvent::Start { .. } => "start",
            SimEvent::Pause { .. } => "pause",
            SimEvent::DiskSync { .. } => "disk_sync",
            SimEvent::Phase { .. } => "phase",
        }
    }
}

/// A recorded event: harness or protocol.
#[derive(Debug)]
pub enum Event {
    /// Recorded by the harness.
    Sim(SimEvent),
    /// Recorded by a protocol model.
    Proto(Box<dyn ProtoEvent>),
}

impl Event {
    /// Kind name.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Sim(e) => e.kind(),
            Event::Proto(p) => p.kind(),
        }
    }
    /// The event's own fields as JSON (a protocol event without the `kind`/`data` wrapper of
    /// [`Event::to_json`]): what field-matching triggers read.
    pub fn fields_json(&self) -> serde_json::Value {
        match self {
            Event::Sim(e) => serde_json::to_value(e).expect("sim events serialise"),
            Event::Proto(p) => p.to_json(),
        }
    }
    /// Canonical JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Event::Sim(e) => serde_json::to_value(e).expect("sim events serialise"),
            Event::Proto(p) => {
                serde_json::json!({ "kind": p.kind(), "data": p.to_json() })
            }
        }
    }
}

/// One entry of the history.
#[derive(Debug)]
pub struct Entry {
    /// Position in the history.
    pub index: usize,
    /// Virtual time.
    pub at: SimInstant,
    /// Node the event happened on, if any.
    pub node: Option<NodeId>,
    /// What happened.
    pub event: Event,
}

impl Entry {
    /// The protocol event as `T`, if this entry is one.
    pub fn proto<T: 'static>(&self) -> Option<&T> {
        match &self.event {
            Event::Proto(p) => p.as_any().downcast_ref::<T>(),
            Event::Sim(_) => None,
        }
    }
    /// The harness event, if this entry is one.
    pub fn sim(&self) -> Option<&SimEvent> {
        match &self.event {
            Event::Sim(e) => Some(e),
            Event::Proto(_) => None,
        }
    }
    /// Canonical JSON line of this entry.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "i": self.index,
            "t_ns": self.at.0,
            "node": self.node,
            "ev": self.event.to_json(),
        })
    }
}

struct Inner {
    entries: Vec<Entry>,
    marks: BTreeMap<&'static str, u64>,
    metrics: BTreeMap<String, u64>,
    closed: bool,
    /// Running digest of every entry recorded so far, except the bytes still in `buf`.
    hasher: blake3::Hasher,
    /// Encodings of the latest entries, not yet fed to `hasher`: BLAKE3 hashes a long input
    /// several 1 KiB chunks at a time (SIMD), while one small entry at a time costs a whole
    /// compression per 64-byte block. Feeding the same bytes in larger pieces gives the same
    /// digest (the hash is of the concatenation).
    buf: Vec<u8>,
    /// Live watches (see [`History::watch`]) by the kind they watch, each kind's in the order
    /// they were made: an entry visits only the watches of its own kind (one list for all made
    /// a push walk every watch and compare kind names, ~4 % of a swarm's instructions).
    watches: BTreeMap<String, Vec<std::rc::Weak<WatchInner>>>,
    /// Entries per kind name, counted as they are recorded and keyed by the address and length
    /// of the `&'static str` (integer compares instead of a string compare per entry; two
    /// copies of one name are summed by [`History::kind_counts`], so addresses never show).
    kinds: BTreeMap<(usize, usize), (&'static str, u64)>,
    /// Values derived from the entries by [`History::memo`], by type, with the entry count
    /// they were derived at.
    /// (In a cell of its own: callers hold [`History::entries`] while they ask.)
    memos: RefCell<Memos>,
}

/// [`History::memo`]'s values by type, each with the entry count it was derived at.
type Memos = BTreeMap<std::any::TypeId, (usize, Rc<dyn Any>)>;

/// Bytes of entry encodings collected before they are hashed (see `Inner::buf`).
const HASH_BATCH_BYTES: usize = 64 * 1024;

thread_local! {
    /// The entry buffer of the last history dropped on this thread, emptied, kept for the next
    /// history (the next seed of an exploration). A swarm seed records 10^4–10^5 entries: grown
    /// afresh by doubling, every seed copied its history several times over and faulted in new
    /// pages for it (a profile showed ~20 % of a long run in `realloc` copies and the kernel's
    /// page clearing). Only the allocation is kept — the buffer is empty, so nothing of a run
    /// reaches the next one, and capacity changes no behaviour.
    static SPARE_ENTRIES: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

impl Inner {
    fn new() -> Self {
        let entries = SPARE_ENTRIES
            .try_with(|s| std::mem::take(&mut *s.borrow_mut()))
            .unwrap_or_default();
        debug_assert!(entries.is_empty());
        Inner {
            entries,
            marks: BTreeMap::new(),
            metrics: BTreeMap::new(),
            closed: false,
            hasher: blake3::Hasher::new(),
            buf: Vec::new(),
            watches: BTreeMap::new(),
            kinds: BTreeMap::new(),
            memos: RefCell::new(BTreeMap::new()),
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let mut entries = std::mem::take(&mut self.entries);
        entries.clear();
        // Keep the larger of the two buffers (a thread being torn down keeps none).
        let _ = SPARE_ENTRIES.try_with(|s| {
            let mut s = s.borrow_mut();
            if entries.capacity() > s.capacity() {
                *s = entries;
            }
        });
    }
}

type EntryFilter = Box<dyn Fn(&Watched<'_>) -> bool>;

/// An entry as a watch's filter sees it: the entry (it derefs to [`Entry`]) and its fields as
/// JSON, built at most once per entry however many watches of its kind read them.
pub struct Watched<'a> {
    entry: &'a Entry,
    fields: &'a std::cell::OnceCell<serde_json::Value>,
}

impl Watched<'_> {
    /// The entry's [`Event::fields_json`].
    pub fn fields(&self) -> &serde_json::Value {
        self.fields.get_or_init(|| self.entry.event.fields_json())
    }
}

impl std::ops::Deref for Watched<'_> {
    type Target = Entry;
    fn deref(&self) -> &Entry {
        self.entry
    }
}

struct WatchInner {
    filter: EntryFilter,
    matched: RefCell<Vec<usize>>,
    notify: Notify,
}

/// Entries of one kind (and a filter) as they are recorded: what event-triggered faults wait
/// on, woken by the recording itself instead of rescanning the history. Dropping it ends it.
pub struct Watch(Rc<WatchInner>);

impl Watch {
    /// History indices of the entries matched so far, in order.
    pub fn matched(&self) -> Vec<usize> {
        self.0.matched.borrow().clone()
    }

    /// Wait until `n` (1-based) entries matched; returns the history index of the `n`-th.
    pub async fn nth(&self, n: usize) -> usize {
        assert!(n >= 1, "occurrences are 1-based");
        loop {
            let notified = self.0.notify.notified();
            if let Some(i) = self.0.matched.borrow().get(n - 1) {
                return *i;
            }
            notified.await;
        }
    }
}

/// The history of one run. Cheap to clone; clones share the record.
#[derive(Clone)]
pub struct History(Rc<RefCell<Inner>>);

impl Default for History {
    fn default() -> Self {
        History(Rc::new(RefCell::new(Inner::new())))
    }
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append an event; returns its index.
    pub fn push(&self, at: SimInstant, node: Option<NodeId>, event: Event) -> usize {
        let mut inner = self.0.borrow_mut();
        let index = inner.entries.len();
        if inner.closed {
            // The run is over (its world is being torn down): tasks dropped now record nothing.
            return index;
        }
        let Inner { hasher, buf, .. } = &mut *inner;
        if buf.len() >= HASH_BATCH_BYTES {
            hasher.update(buf);
            buf.clear();
        }
        buf.extend_from_slice(&(index as u64).to_le_bytes());
        buf.extend_from_slice(&at.0.to_le_bytes());
        match node {
            Some(n) => {
                buf.push(1);
                buf.extend_from_slice(&n.0.to_le_bytes());
            }
            None => buf.push(0),
        }
        match &event {
            Event::Sim(e) => {
                buf.push(b'S');
                crate::encode::encode_into(e, buf);
            }
            Event::Proto(p) => {
                buf.push(b'P');
                crate::encode::encode_into(p.kind(), buf);
                p.encode(buf);
            }
        }
        let kind = event.kind();
        inner
            .kinds
            .entry((kind.as_ptr() as usize, kind.len()))
            .or_insert((kind, 0))
            .1 += 1;
        inner.entries.push(Entry {
            index,
            at,
            node,
            event,
        });
        if !inner.watches.is_empty() {
            let Inner {
                watches, entries, ..
            } = &mut *inner;
            if let Some(ws) = watches.get_mut(kind) {
                let fields = std::cell::OnceCell::new();
                let seen = Watched {
                    entry: entries.last().expect("just pushed"),
                    fields: &fields,
                };
                ws.retain(|w| {
                    let Some(w) = w.upgrade() else { return false };
                    if (w.filter)(&seen) {
                        w.matched.borrow_mut().push(index);
                        w.notify.notify();
                    }
                    true
                });
                if ws.is_empty() {
                    watches.remove(kind);
                }
            }
        }
        index
    }

    /// Watch entries of `kind` that pass `filter`, from the start of the history (entries
    /// already recorded count) and then as each one is recorded. `filter` must not touch the
    /// history.
    pub fn watch(&self, kind: &str, filter: impl Fn(&Watched<'_>) -> bool + 'static) -> Watch {
        let w = Rc::new(WatchInner {
            filter: Box::new(filter),
            matched: RefCell::new(Vec::new()),
            notify: Notify::new(),
        });
        let mut inner = self.0.borrow_mut();
        let past: Vec<usize> = inner
            .entries
            .iter()
            .filter(|e| {
                e.event.kind() == kind
                    && (w.filter)(&Watched {
                        entry: e,
                        fields: &std::cell::OnceCell::new(),
                    })
            })
            .map(|e| e.index)
            .collect();
        *w.matched.borrow_mut() = past;
        inner
            .watches
            .entry(kind.to_string())
            .or_default()
            .push(Rc::downgrade(&w));
        Watch(w)
    }

    /// Close the record: later events are ignored (used when a run's world is torn down).
    pub fn close(&self) {
        self.0.borrow_mut().closed = true;
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.borrow().entries.len()
    }

    /// True if nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Read access to every entry, in order.
    pub fn entries(&self) -> Ref<'_, Vec<Entry>> {
        Ref::map(self.0.borrow(), |i| &i.entries)
    }

    /// Count a coverage mark.
    pub fn mark(&self, name: &'static str) {
        let mut inner = self.0.borrow_mut();
        if inner.closed {
            // As for events: tasks dropped while the world is torn down count nothing.
            return;
        }
        *inner.marks.entry(name).or_default() += 1;
    }

    /// Coverage marks hit, with counts.
    pub fn marks(&self) -> BTreeMap<&'static str, u64> {
        self.0.borrow().marks.clone()
    }

    /// Add to a named counter.
    pub fn metric_add(&self, name: &str, v: u64) {
        let mut inner = self.0.borrow_mut();
        match inner.metrics.get_mut(name) {
            Some(x) => *x += v,
            None => {
                inner.metrics.insert(name.to_string(), v);
            }
        }
    }

    /// Raise a named maximum.
    pub fn metric_max(&self, name: &str, v: u64) {
        let mut inner = self.0.borrow_mut();
        let x = inner.metrics.entry(name.to_string()).or_default();
        *x = (*x).max(v);
    }

    /// Named counters.
    pub fn metrics(&self) -> BTreeMap<String, u64> {
        self.0.borrow().metrics.clone()
    }

    /// A value derived from the entries, built by `build` once and shared by every caller that
    /// asks for the same type while no entry is added: what several checkers of one area
    /// derive alike (a topology walk) is derived once per run. `build` must depend on the
    /// entries only (it may read the history, not change it).
    pub fn memo<T: 'static>(&self, build: impl FnOnce(&[Entry]) -> T) -> Rc<T> {
        let key = std::any::TypeId::of::<T>();
        let len = self.len();
        let inner = self.0.borrow();
        if let Some((at, v)) = inner.memos.borrow().get(&key) {
            if *at == len {
                return v.clone().downcast::<T>().expect("memo of its type");
            }
        }
        let v = Rc::new(build(&inner.entries));
        inner
            .memos
            .borrow_mut()
            .insert(key, (len, v.clone() as Rc<dyn Any>));
        v
    }

    /// Number of events of each kind.
    pub fn kind_counts(&self) -> BTreeMap<&'static str, u64> {
        let mut m = BTreeMap::new();
        for (name, n) in self.0.borrow().kinds.values() {
            *m.entry(*name).or_default() += n;
        }
        m
    }

    /// Stable digest: BLAKE3 over every entry's canonical encoding (hashed as it was
    /// recorded), hex, 32 characters.
    pub fn digest(&self) -> String {
        let inner = self.0.borrow();
        let mut hasher = inner.hasher.clone();
        hasher.update(&inner.buf);
        hasher.finalize().to_hex()[..32].to_string()
    }

    /// Write the history as JSON lines.
    pub fn write_jsonl(&self, mut w: impl Write) -> std::io::Result<()> {
        for e in self.entries().iter() {
            serde_json::to_writer(&mut w, &e.to_json())?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize)]
    struct Applied {
        key: u64,
    }
    impl EventKind for Applied {
        fn kind(&self) -> &'static str {
            "applied"
        }
    }

    #[test]
    fn a_memo_is_built_once_per_history_length_even_while_entries_are_borrowed() {
        let h = History::new();
        let push = |k: u64| {
            h.push(
                SimInstant(k),
                None,
                Event::Proto(Box::new(Applied { key: k })),
            );
        };
        push(1);
        push(2);
        let builds = std::cell::Cell::new(0);
        struct Keys(Vec<u64>);
        let keys = |e: &[Entry]| {
            builds.set(builds.get() + 1);
            Keys(
                e.iter()
                    .filter_map(|e| e.proto::<Applied>().map(|a| a.key))
                    .collect(),
            )
        };
        let held = h.entries();
        assert_eq!(h.memo(keys).0, [1, 2]);
        assert_eq!(h.memo(keys).0, [1, 2]);
        assert_eq!(builds.get(), 1, "the second ask is served from the memo");
        drop(held);
        push(3);
        assert_eq!(
            h.memo(keys).0,
            [1, 2, 3],
            "a new entry makes the memo stale"
        );
        assert_eq!(builds.get(), 2);
    }

    #[test]
    fn digest_is_stable_and_sensitive() {
        let mk = |k: u64| {
            let h = History::new();
            h.push(
                SimInstant(5),
                Some(NodeId(1)),
                Event::Proto(Box::new(Applied { key: k })),
            );
            h.push(
                SimInstant(9),
                None,
                Event::Sim(SimEvent::Phase { name: "heal" }),
            );
            h
        };
        assert_eq!(mk(1).digest(), mk(1).digest());
        assert_ne!(mk(1).digest(), mk(2).digest());
        let h = mk(3);
        let entries = h.entries();
        assert_eq!(entries[0].proto::<Applied>().map(|a| a.key), Some(3));
        assert!(entries[1].proto::<Applied>().is_none());
        assert_eq!(entries[1].event.kind(), "phase");
        drop(entries);
        // Counted as recorded; a name whose copies live at two addresses is one kind.
        #[derive(Debug, Serialize)]
        struct Named(#[serde(skip)] &'static str);
        impl EventKind for Named {
            fn kind(&self) -> &'static str {
                self.0
            }
        }
        let copy: &'static str = String::from("applied").leak();
        assert!(!std::ptr::eq(copy, "applied"));
        h.push(SimInstant(10), None, Event::Proto(Box::new(Named(copy))));
        assert_eq!(
            h.kind_counts(),
            BTreeMap::from([("applied", 2), ("phase", 1)])
        );
    }

    #[test]
    fn digest_does_not_depend_on_how_the_bytes_were_batched() {
        // Well past one hashing batch, with digests taken in the middle: each must equal a
        // BLAKE3 of the concatenated entry encodings so far, in one piece.
        let h = History::new();
        let mut all = Vec::new();
        for k in 0..20_000u64 {
            h.push(
                SimInstant(k),
                Some(NodeId(2)),
                Event::Proto(Box::new(Applied { key: k })),
            );
            let mut one = Vec::new();
            one.extend_from_slice(&k.to_le_bytes());
            one.extend_from_slice(&k.to_le_bytes());
            one.push(1);
            one.extend_from_slice(&2u32.to_le_bytes());
            one.push(b'P');
            crate::encode::encode_into("applied", &mut one);
            crate::encode::encode_into(&Applied { key: k }, &mut one);
            all.extend_from_slice(&one);
            if k % 4_999 == 0 {
                assert_eq!(h.digest(), blake3::hash(&all).to_hex()[..32].to_string());
            }
        }
        assert!(all.len() > 2 * HASH_BATCH_BYTES);
        assert_eq!(h.digest(), blake3::hash(&all).to_hex()[..32].to_string());
    }

    #[test]
    fn a_new_history_reuses_the_last_ones_buffer_empty() {
        let fill = |n: u64| {
            let h = History::new();
            for k in 0..n {
                h.push(
                    SimInstant(k),
                    None,
                    Event::Proto(Box::new(Applied { key: k })),
                );
            }
            h
        };
        let first = fill(5_000);
        let digest = first.digest();
        drop(first);
        let second = History::new();
        assert!(
            second.is_empty(),
            "nothing of the last history is kept but its buffer"
        );
        assert!(second.0.borrow().entries.capacity() >= 5_000);
        drop(second);
        // The same entries give the same digest in a reused buffer.
        assert_eq!(fill(5_000).digest(), digest);
    }

    #[test]
    fn jsonl_has_one_line_per_entry() {
        let h = History::new();
        h.push(
            SimInstant(1),
            None,
            Event::Sim(SimEvent::Phase { name: "chaos" }),
        );
        h.push(
            SimInstant(2),
            None,
            Event::Sim(SimEvent::Phase { name: "heal" }),
        );
        let mut out = Vec::new();
        h.write_jsonl(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.contains("\"t_ns\":2"));
    }
}
