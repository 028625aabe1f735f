//! The async shell of a Raft group member on the harness: it moves the pure [`Core`]'s messages
//! over `sim.net()` (group-addressed verbs: [`super::verbs`]), drives its clock with
//! `sim::time::sleep`, persists its state through a [`RaftStorage`] and applies committed
//! entries to the application state machine.
//!
//! Promises kept here (the core keeps the protocol's):
//! - Durability before acknowledgement: every core mutation is written to the disk buffer at
//!   once, and nothing leaves the node (a vote, an append acknowledgement, a candidate's vote
//!   request) before a `sync()` that covers it has succeeded. The leader counts its own copy of
//!   an entry only after it is synced.
//! - Recovery: a restarted node reads term, vote, commit index and log from its storage and
//!   rebuilds the state machine by re-applying the committed entries from index 1.
//! - Apply order: committed entries are applied in index order, each exactly once per
//!   incarnation, and recorded as [`RaftEvent::Applied`].
//!
//! - The window between a durable write and its acknowledgement: injection point
//!   [`INJ_DELAY_ACK_AFTER_SYNC`] (an abortless sleep after a sync that made something durable,
//!   before the messages that acknowledge it leave) widens it, so a crash can land inside; a
//!   crash that does is counted as [`MARK_CRASH_BEFORE_ACK`]. Upstream has no such point; it
//!   only stretches a window that a slow node has anyway, and is off unless a test enables it.
//!
//! Many groups may run on one node: each has its own id, storage, timers and random stream;
//! they share the node's verbs (dispatched by group id) and its disk.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::rc::Rc;

use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use sim::sync::Notify;
use sim::time::{sleep, timeout, Duration};
use sim::{NodeCtx, NodeId, RpcError, Sim, SimInstant, Verb};

use super::core::{
    AppendReq, AppendResp, Core, CoreConfig, CoreError, CoreEvent, HardState, HeartbeatReq,
    HeartbeatResp, Message, Request, Response, VoteReq, VoteResp,
};
use super::events::{command_hash, RaftEvent};
use super::log::Entry;
use super::storage::RaftStorage;
use super::sys_table::SysTableStorage;
use super::verbs::{
    call_group, handler, serve_group, AppendEntriesVerb, ForwardProposalVerb, GroupHandler,
    HeartbeatVerb, ReadIndexVerb, RequestVoteVerb,
};
use super::{GroupId, RaftConfig, RaftError, StateMachine, MUTANT_COMMIT_WITHOUT_MAJORITY};
use sim::injection::Injections;

pub use super::verbs::VERBS;

// ----- answers of the leader ---------------------------------------------------------

/// Injection point (a sleep): after a sync that made something durable, hold the messages
/// that acknowledge it for a heartbeat interval.
pub const INJ_DELAY_ACK_AFTER_SYNC: &str = "raft_delay_ack_after_sync";
/// Coverage mark: a node crashed after a write was durable and before its acknowledgement left.
pub const MARK_CRASH_BEFORE_ACK: &str = "raft crashed between a durable write and its ack";

/// Open from a sync that made something durable until the messages acknowledging it are sent.
/// A crash drops the driver's future with it open: that is the window, and it is counted.
struct AckWindow {
    sim: Sim,
    node: NodeId,
    open: bool,
}

impl AckWindow {
    fn close(mut self) {
        self.open = false;
    }
}

impl Drop for AckWindow {
    fn drop(&mut self) {
        if self.open && !self.sim.is_up(self.node) {
            self.sim.mark(MARK_CRASH_BEFORE_ACK);
        }
    }
}

/// Answer of the leader to a forwarded proposal.
#[derive(Clone, Debug)]
pub enum ForwardResp {
    /// Appended to the leader's log at (index, term).
    Appended {
        /// Index of the new entry.
        index: u64,
        /// Term of the new entry.
        term: u64,
    },
    /// The callee is not the leader (nothing appended).
    NotLeader,
}

/// Answer of the leader to a read-index request.
#[derive(Clone, Debug)]
pub enum ReadIndexResp {
    /// Wait until the local applied index reaches this.
    Index(u64),
    /// The callee is not (or no longer) the leader.
    NotLeader,
}

// ----- the handle --------------------------------------------------------------------------

#[derive(Default)]
struct Io {
    /// Bumped at every buffered write.
    written_seq: u64,
    /// Highest `written_seq` covered by a successful sync.
    synced_seq: u64,
    /// Last log index stored on disk (buffered included).
    disk_last: u64,
    /// Log end (index, term) at the last buffered write.
    mark: (u64, u64),
}

type ProposalWaiter = (u64, oneshot::Sender<Result<u64, RaftError>>);

struct Inner<S: StateMachine> {
    sim: Sim,
    node: NodeId,
    incarnation: u32,
    group: GroupId,
    cfg: RaftConfig,
    storage: Box<dyn RaftStorage<S::Command>>,
    core: RefCell<Core<S::Command>>,
    sm: RefCell<S>,
    applied: Cell<u64>,
    io: RefCell<Io>,
    /// Wakes the driver: the core may have something ready.
    wake: Notify,
    /// Fires on every apply and every leadership / term change.
    changed: Notify,
    last_seen: Cell<(u64, bool, Option<NodeId>)>,
    waiters: RefCell<BTreeMap<u64, Vec<ProposalWaiter>>>,
    reads: RefCell<BTreeMap<u64, oneshot::Sender<Result<u64, CoreError>>>>,
    next_read_id: Cell<u64>,
    /// When the last tick was applied (ns); the next is `tick_ms` later (see [`Inner::tick_loop`]).
    last_tick: Cell<u64>,
    /// When the tick loop means to wake next (ns; `u64::MAX`: only when told).
    tick_deadline: Cell<u64>,
    /// Wakes the tick loop early: the core's next event came closer.
    reschedule: Notify,
}

/// Handle to the Raft group member on one node incarnation. Cheap to clone.
///
/// Typical boot code (see `scenarios/src/catalog/raft.rs`):
///
/// ```text
/// sim.add_node(move |ctx| async move {
///     let raft = Raft::start(&ctx, members, MySm::default(), RaftConfig::default());
///     registry.borrow_mut().insert(ctx.node, raft.clone());   // for leader probes, clients
///     std::future::pending::<()>().await
/// }.boxed_local());
/// ```
///
/// Client calls (`propose`, `read_barrier`) should run on the node itself
/// (`sim.spawn_on(node, ..)`), so they die with it.
pub struct Raft<S: StateMachine> {
    inner: Rc<Inner<S>>,
}

impl<S: StateMachine> Clone for Raft<S> {
    fn clone(&self) -> Self {
        Raft {
            inner: self.inner.clone(),
        }
    }
}

impl<S: StateMachine> Raft<S> {
    /// Starts the group0 member on `ctx.node`, persisting in the `system.raft*` tables of the
    /// node's storage engine ([`SysTableStorage`], shard 0). See [`Raft::start_group`].
    pub fn start(ctx: &NodeCtx, members: Vec<NodeId>, sm: S, cfg: RaftConfig) -> Self {
        let storage =
            SysTableStorage::<S::Command>::open(&ctx.sim, ctx.node, GroupId::GROUP0, &members);
        Self::start_group(ctx, GroupId::GROUP0, members, sm, cfg, Box::new(storage))
    }

    /// Starts the member of `group` on `ctx.node` (a voter if `members` lists it, else a
    /// non-voter that waits for a leader to replicate to it: see [`Raft::set_learners`]):
    /// recovers term, vote, commit and log from
    /// `storage`, registers its handlers with the node's group dispatch and spawns the tick and
    /// driver tasks (they die with the node). Committed entries are re-applied to `sm` from
    /// index 1.
    ///
    /// Call it from inside the node's boot future (`async move { Raft::start(&ctx, ..); .. }`),
    /// not synchronously in the boot closure: on a node's first boot the closure runs before
    /// the node is registered, and spawning its tasks would fail.
    pub fn start_group(
        ctx: &NodeCtx,
        group: GroupId,
        members: Vec<NodeId>,
        sm: S,
        cfg: RaftConfig,
        storage: Box<dyn RaftStorage<S::Command>>,
    ) -> Self {
        assert!(!members.is_empty(), "{group} has at least one voter");
        assert!(cfg.tick_ms >= 1 && cfg.heartbeat_ms >= cfg.tick_ms);
        assert!(cfg.election_timeout_ms_min <= cfg.election_timeout_ms_max);
        assert!(
            cfg.heartbeat_ms < cfg.election_timeout_ms_min,
            "heartbeats must beat elections"
        );
        let sim = ctx.sim.clone();
        let node = ctx.node;
        let hs: HardState = storage.load_hard_state();
        let entries: Vec<Entry<S::Command>> = storage.load_log();
        let disk_last = entries.len() as u64;
        let mark = entries.last().map_or((0, 0), |e| (e.index, e.term));
        let ticks = |ms: u64| ms.div_ceil(cfg.tick_ms).max(1);
        let core_cfg = CoreConfig {
            id: node,
            members,
            election_ticks_min: ticks(cfg.election_timeout_ms_min),
            election_ticks_max: ticks(cfg.election_timeout_ms_max),
            heartbeat_ticks: ticks(cfg.heartbeat_ms),
            max_entries_per_append: cfg.max_entries_per_append,
            pre_vote: cfg.pre_vote,
            check_quorum: cfg.check_quorum,
            commit_without_majority: sim.mutant(MUTANT_COMMIT_WITHOUT_MAJORITY),
        };
        // group0 keeps the stream name it had before groups had ids.
        let stream = if group.is_group0() {
            format!("raft/{node}/{}", ctx.incarnation)
        } else {
            format!("raft/g{}/{node}/{}", group.0, ctx.incarnation)
        };
        let rng = Box::new(sim.rng(&stream));
        let core = Core::new(core_cfg, hs, entries, rng);
        let inner = Rc::new(Inner {
            sim: sim.clone(),
            node,
            incarnation: ctx.incarnation,
            group,
            cfg,
            storage,
            last_seen: Cell::new((core.term(), false, None)),
            core: RefCell::new(core),
            sm: RefCell::new(sm),
            applied: Cell::new(0),
            io: RefCell::new(Io {
                written_seq: 0,
                synced_seq: 0,
                disk_last,
                mark,
            }),
            wake: Notify::new(),
            changed: Notify::new(),
            waiters: RefCell::new(BTreeMap::new()),
            reads: RefCell::new(BTreeMap::new()),
            next_read_id: Cell::new(1),
            last_tick: Cell::new(sim.now().0),
            tick_deadline: Cell::new(u64::MAX),
            reschedule: Notify::new(),
        });
        inner.serve();
        let i = inner.clone();
        sim.spawn_on(node, async move { i.drive().await });
        let i = inner.clone();
        sim.spawn_on(node, async move { i.tick_loop().await });
        Raft { inner }
    }

    /// Proposes `cmd` from any node (forwarded to the leader). Resolves once the entry is
    /// committed and applied on this node, with its index. `Timeout` is an unknown outcome;
    /// `NotLeader`, `Unavailable` and `Dropped` mean it was not (and will not be) committed.
    pub async fn propose(&self, cmd: S::Command) -> Result<u64, RaftError> {
        let me = &self.inner;
        let deadline = me.deadline();
        loop {
            if !me.alive() {
                return Err(RaftError::Unavailable);
            }
            let local = me.with_core(|c| c.propose(cmd.clone()));
            if let Ok((index, term)) = local {
                return me.wait_applied(index, term, deadline).await;
            }
            if let Some(leader) = self.leader().filter(|&l| l != me.node) {
                let res = call_group::<ForwardProposalVerb, S::Command, ForwardResp>(
                    &me.sim.net(),
                    me.node,
                    leader,
                    me.group,
                    cmd.clone(),
                    me.rpc_timeout(),
                )
                .await;
                tracing::debug!(%leader, group = me.group.0, "raft {}: proposal forwarded to leader {leader}: {}", me.group, match &res { Ok(ForwardResp::Appended { index, .. }) => format!("appended at {index}"), Ok(ForwardResp::NotLeader) => "not the leader any more".into(), Err(e) => e.to_string() });
                match res {
                    Ok(ForwardResp::Appended { index, term }) => {
                        return me.wait_applied(index, term, deadline).await;
                    }
                    // Definitely not appended: try again.
                    Ok(ForwardResp::NotLeader) | Err(RpcError::NoHandler) => {}
                    // The leader may have appended it: the outcome is unknown.
                    Err(_) => return Err(RaftError::Timeout),
                }
            }
            if !me.wait_for_change(deadline).await {
                return Err(RaftError::Unavailable);
            }
        }
    }

    /// Proposes `cmd` only if this node is the leader of exactly `term` (the topology
    /// coordinator is bound to its term). Resolves like [`Raft::propose`].
    pub async fn propose_in_term(&self, term: u64, cmd: S::Command) -> Result<u64, RaftError> {
        let me = &self.inner;
        if !me.alive() {
            return Err(RaftError::Unavailable);
        }
        let deadline = me.deadline();
        match me.with_core(|c| c.propose_in_term(term, cmd)) {
            Ok((index, t)) => {
                assert_eq!(t, term);
                me.wait_applied(index, t, deadline).await
            }
            Err(_) => Err(RaftError::TermChanged),
        }
    }

    /// Read barrier: resolves once this node has applied at least the leader's commit index as
    /// of the call (read index through the leader). `Timeout` if that takes too long.
    pub async fn read_barrier(&self) -> Result<(), RaftError> {
        let me = &self.inner;
        let deadline = me.deadline();
        loop {
            if !me.alive() {
                return Err(RaftError::Unavailable);
            }
            let index = match self.leader() {
                Some(l) if l == me.node => me.local_read_index().await,
                Some(l) => {
                    match call_group::<ReadIndexVerb, (), ReadIndexResp>(
                        &me.sim.net(),
                        me.node,
                        l,
                        me.group,
                        (),
                        me.rpc_timeout(),
                    )
                    .await
                    {
                        Ok(ReadIndexResp::Index(i)) => Some(i),
                        _ => None,
                    }
                }
                None => None,
            };
            if let Some(index) = index {
                return me.wait_applied_index(index, deadline).await;
            }
            if !me.wait_for_change(deadline).await {
                return Err(RaftError::Timeout);
            }
        }
    }

    /// Runs `f` on this node's copy of the state machine.
    pub fn with_state<R>(&self, f: impl FnOnce(&S) -> R) -> R {
        f(&self.inner.sm.borrow())
    }

    /// Highest index applied on this node (incarnation).
    pub fn applied_index(&self) -> u64 {
        self.inner.applied.get()
    }

    /// Resolves on the next apply or leadership / term change on this node.
    pub async fn changed(&self) {
        self.inner.changed.notified().await
    }

    /// Sets the group's non-voting members (upstream: a configuration change adding a
    /// non-voter). Only the leader acts on it (it replicates to them); every member may be told,
    /// so that whichever node leads next knows them too.
    pub fn set_learners(&self, learners: Vec<NodeId>) {
        let same = {
            let c = self.inner.core.borrow();
            let want: std::collections::BTreeSet<NodeId> =
                learners.iter().copied().filter(|n| *n != c.id()).collect();
            want == *c.learners()
        };
        if !same {
            self.inner.with_core(|c| c.set_learners(learners));
        }
    }

    /// Is this node a voting member of the group?
    pub fn is_voter(&self) -> bool {
        self.inner.core.borrow().is_voter()
    }

    /// Is this node the leader?
    pub fn is_leader(&self) -> bool {
        self.inner.core.borrow().is_leader()
    }

    /// Current term of this node.
    pub fn term(&self) -> u64 {
        self.inner.core.borrow().term()
    }

    /// The leader this node follows (itself if leader), if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.inner.core.borrow().leader()
    }

    /// This node.
    pub fn node(&self) -> NodeId {
        self.inner.node
    }

    /// The group this member belongs to.
    pub fn group(&self) -> GroupId {
        self.inner.group
    }

    /// This node's commit index.
    pub fn commit_index(&self) -> u64 {
        self.inner.core.borrow().commit()
    }
}

impl<S: StateMachine> Inner<S> {
    fn rpc_timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.rpc_timeout_ms)
    }

    fn deadline(&self) -> SimInstant {
        SimInstant(self.sim.now().0 + self.cfg.op_timeout_ms * 1_000_000)
    }

    fn remaining(&self, deadline: SimInstant) -> Option<Duration> {
        let now = self.sim.now();
        (deadline > now).then(|| Duration::from_nanos(deadline.0 - now.0))
    }

    /// Waits for a change (or a heartbeat interval), false once past `deadline`.
    async fn wait_for_change(&self, deadline: SimInstant) -> bool {
        let Some(left) = self.remaining(deadline) else {
            return false;
        };
        let step = left.min(Duration::from_millis(self.cfg.heartbeat_ms));
        let _ = timeout(step, self.changed.notified()).await;
        self.remaining(deadline).is_some()
    }

    /// Mutates the core, then writes what it must persist to the disk buffer, notes
    /// leadership changes and wakes the driver.
    fn with_core<R>(&self, f: impl FnOnce(&mut Core<S::Command>) -> R) -> R {
        let r = {
            let mut core = self.core.borrow_mut();
            self.catch_up_ticks(&mut core);
            let r = f(&mut core);
            self.check_tick_deadline(&core);
            r
        };
        self.write_persist();
        let seen = {
            let c = self.core.borrow();
            (c.term(), c.is_leader(), c.leader())
        };
        if seen != self.last_seen.get() {
            tracing::debug!(group = self.group.0, term = seen.0, leader = %sim::log::opt(&seen.2), "raft {} term {}: {}", self.group, seen.0, match seen { (_, true, _) => "this node leads".to_string(), (_, _, Some(l)) => format!("following leader {l}"), _ => "no leader known".to_string() });
            self.last_seen.set(seen);
            self.changed.notify();
        }
        self.wake.notify();
        r
    }

    /// Is this member's node incarnation still running? A handle kept across a crash (by a
    /// client task on the supervisor, say) must not act for the dead process.
    fn alive(&self) -> bool {
        self.sim.is_running(self.node, self.incarnation)
    }

    fn write_persist(&self) {
        let mut core = self.core.borrow_mut();
        let p = core.take_persist();
        if p.hard_state.is_none() && p.log.is_none() {
            return;
        }
        if !self.alive() {
            // A dead process writes nothing (its storage is the next incarnation's disk).
            return;
        }
        let mut io = self.io.borrow_mut();
        io.written_seq += 1;
        if let Some(hs) = p.hard_state {
            self.storage.store_hard_state(&hs);
        }
        if let Some(u) = p.log {
            self.storage.store_entries(&u.entries);
            if u.last_index < io.disk_last {
                self.storage.remove_entries(u.last_index + 1, io.disk_last);
            }
            io.disk_last = u.last_index;
        }
        io.mark = (core.log().last_index(), core.log().last_term());
    }

    /// Makes every buffered write so far durable (no-op if already synced), then tells the
    /// core how far its log is durable.
    async fn sync(&self) -> Result<(), sim::DiskError> {
        let (seq, mark) = {
            let io = self.io.borrow();
            (io.written_seq, io.mark)
        };
        if self.io.borrow().synced_seq >= seq {
            return Ok(());
        }
        if let Err(e) = self.storage.sync().await {
            tracing::debug!(
                group = self.group.0,
                "raft {}: log sync failed ({e:?}); retrying after a tick",
                self.group
            );
            return Err(e);
        }
        tracing::trace!(
            group = self.group.0,
            index = mark.0,
            term = mark.1,
            "raft {}: log durable up to entry {} of term {}",
            self.group,
            mark.0,
            mark.1
        );
        {
            let mut io = self.io.borrow_mut();
            io.synced_seq = io.synced_seq.max(seq);
        }
        self.with_core(|c| c.persisted(mark.0, mark.1));
        Ok(())
    }

    /// Like [`Inner::sync`], retrying failed syncs (I/O errors) until one succeeds. True if it
    /// made something new durable.
    async fn sync_retry(&self) -> bool {
        let before = self.io.borrow().synced_seq;
        while self.sync().await.is_err() {
            sleep(Duration::from_millis(self.cfg.tick_ms)).await;
        }
        self.io.borrow().synced_seq > before
    }

    /// The logical clock: a tick every `tick_ms`, as a periodic timer gives them — one at each
    /// multiple of `tick_ms` after the previous, and while the node is paused the timer's one
    /// pending tick runs when it resumes (the period restarts from there; ticks a pause
    /// swallowed are lost).
    ///
    /// Applied lazily, with the same result: a tick that only counts
    /// ([`Core::ticks_until_event`]) is applied when the core is next used ([`Inner::with_core`]
    /// catches up first, so it still comes before every later input), and this loop wakes only
    /// for the tick that acts (a heartbeat, a quorum check, an election). A task and a timer per
    /// tick and node were about a quarter of a topology swarm's task polls. What changes is only
    /// which of the tasks ready at one instant runs first, a choice the seeded executor makes
    /// anyway.
    async fn tick_loop(self: Rc<Self>) {
        loop {
            let deadline = {
                let mut core = self.core.borrow_mut();
                self.catch_up_ticks(&mut core);
                self.next_event_at(&core)
            };
            self.tick_deadline.set(deadline.unwrap_or(u64::MAX));
            let rescheduled = self.reschedule.notified();
            match deadline {
                Some(at) => {
                    let wait = Duration::from_nanos(at.saturating_sub(self.sim.now().0));
                    let _ = timeout(wait, rescheduled).await;
                }
                None => rescheduled.await,
            }
            self.with_core(|_| ());
        }
    }

    /// Apply every tick due by now (see [`Inner::tick_loop`]).
    fn catch_up_ticks(&self, core: &mut Core<S::Command>) {
        let now = self.sim.now().0;
        let period = self.cfg.tick_ms * 1_000_000;
        loop {
            let next = self.last_tick.get() + period;
            if next > now {
                // Not due (a pause only delays a tick): the common case, no pause lookup.
                return;
            }
            let at = match self.sim.pause_covering(self.node, next) {
                Some(Some(resumed)) => resumed,
                // Still paused: this code is not running (a paused node runs nothing).
                Some(None) => return,
                None => next,
            };
            if at > now {
                return;
            }
            core.tick();
            self.last_tick.set(at);
        }
    }

    /// When the next tick that acts is due, pauses aside (a pause only delays it: the loop
    /// then wakes early and looks again).
    fn next_event_at(&self, core: &Core<S::Command>) -> Option<u64> {
        let period = self.cfg.tick_ms * 1_000_000;
        core.ticks_until_event()
            .map(|n| self.last_tick.get() + n * period)
    }

    /// Wake the tick loop if the core's next acting tick is now due before it means to wake.
    fn check_tick_deadline(&self, core: &Core<S::Command>) {
        if self
            .next_event_at(core)
            .is_some_and(|at| at < self.tick_deadline.get())
        {
            self.tick_deadline.set(0);
            self.reschedule.notify();
        }
    }

    /// The driver: records events, applies committed entries, answers reads, and sends the
    /// core's messages once everything they depend on is synced.
    async fn drive(self: Rc<Self>) {
        loop {
            let woken = self.wake.notified();
            let rd = self.core.borrow_mut().take_ready();
            // The only voter commits on its own durable copy: it syncs without waiting for a
            // message to send (a multi-voter leader's appends always come with messages).
            let unsynced = {
                let io = self.io.borrow();
                io.written_seq > io.synced_seq
            };
            if rd.is_empty() && unsynced && self.core.borrow().is_sole_voter() {
                self.sync_retry().await;
                continue;
            }
            if rd.is_empty() {
                woken.await;
                continue;
            }
            for ev in rd.events {
                self.record_core_event(ev);
            }
            for e in rd.committed {
                self.apply(e);
            }
            for (id, res) in rd.reads {
                if let Some(tx) = self.reads.borrow_mut().remove(&id) {
                    let _ = tx.send(res);
                }
            }
            if !rd.messages.is_empty() {
                let wrote = self.sync_retry().await;
                let window = self.hold_ack(wrote).await;
                for m in rd.messages {
                    self.send(m);
                }
                window.close();
            }
        }
    }

    fn record_core_event(&self, ev: CoreEvent<S::Command>) {
        match ev {
            CoreEvent::BecameLeader { term } => {
                tracing::info!(
                    term,
                    group = self.group.0,
                    "raft {}: won the election of term {term}, now leader",
                    self.group
                );
                let ev = RaftEvent::BecameLeader {
                    g: self.group,
                    t: term,
                };
                self.sim.record(Some(self.node), ev);
            }
            CoreEvent::Mark(name) => self.sim.mark(name),
            CoreEvent::Committed { entries } => {
                for e in entries {
                    let h = command_hash(e.cmd.as_ref());
                    tracing::debug!(
                        group = self.group.0,
                        index = e.index,
                        term = e.term,
                        "raft {}: committed entry {} of term {}",
                        self.group,
                        e.index,
                        e.term
                    );
                    let ev = RaftEvent::Committed {
                        g: self.group,
                        i: e.index,
                        t: e.term,
                        h,
                    };
                    self.sim.record(Some(self.node), ev);
                }
            }
        }
    }

    fn apply(&self, e: Entry<S::Command>) {
        assert_eq!(
            e.index,
            self.applied.get() + 1,
            "apply out of order on {}",
            self.node
        );
        tracing::trace!(
            group = self.group.0,
            index = e.index,
            term = e.term,
            "raft {}: applying entry {} of term {}",
            self.group,
            e.index,
            e.term
        );
        let ev = RaftEvent::Applied {
            g: self.group,
            inc: self.incarnation,
            i: e.index,
            t: e.term,
            h: command_hash(e.cmd.as_ref()),
        };
        self.sim.record(Some(self.node), ev);
        if let Some(cmd) = &e.cmd {
            self.sm.borrow_mut().apply(e.index, cmd);
            let members = self.sm.borrow().members();
            if let Some(m) = members {
                let mut core = self.core.borrow_mut();
                // Ticks due before this input come first; a learner made a voter has an
                // election timer from now on.
                self.catch_up_ticks(&mut core);
                core.set_learners(m);
                self.check_tick_deadline(&core);
            }
        }
        self.applied.set(e.index);
        if let Some(ws) = self.waiters.borrow_mut().remove(&e.index) {
            for (term, tx) in ws {
                let res = if term == e.term {
                    Ok(e.index)
                } else {
                    Err(RaftError::Dropped)
                };
                let _ = tx.send(res);
            }
        }
        self.changed.notify();
    }

    fn send(self: &Rc<Self>, m: Message<S::Command>) {
        let me = self.clone();
        let net = self.sim.net();
        let (from, to, sent_term, rpc_timeout) = (self.node, m.to, m.sent_term, self.rpc_timeout());
        let group = self.group;
        self.sim.spawn_on(self.node, async move {
            match m.req {
                Request::Append(r) => {
                    let res = call_group::<AppendEntriesVerb, AppendReq<S::Command>, AppendResp>(
                        &net,
                        from,
                        to,
                        group,
                        r,
                        rpc_timeout,
                    )
                    .await;
                    match res {
                        Ok(a) => {
                            me.with_core(|c| c.step_response(to, sent_term, Response::Append(a)))
                        }
                        Err(_) => me.with_core(|c| c.append_failed(to, sent_term)),
                    }
                }
                Request::Heartbeat(r) => {
                    let res = call_group::<HeartbeatVerb, HeartbeatReq, HeartbeatResp>(
                        &net,
                        from,
                        to,
                        group,
                        r,
                        rpc_timeout,
                    )
                    .await;
                    if let Ok(h) = res {
                        me.with_core(|c| c.step_response(to, sent_term, Response::Heartbeat(h)));
                    }
                }
                Request::Vote(r) => {
                    let res = call_group::<RequestVoteVerb, VoteReq, VoteResp>(
                        &net,
                        from,
                        to,
                        group,
                        r,
                        rpc_timeout,
                    )
                    .await;
                    if let Ok(v) = res {
                        me.with_core(|c| c.step_response(to, sent_term, Response::Vote(v)));
                    }
                }
            }
        });
    }

    /// Steps a request from a peer, then syncs before the response may leave.
    async fn handle(&self, from: NodeId, req: Request<S::Command>) -> Response {
        let resp = self.with_core(|c| c.step_request(from, req));
        let wrote = self.sync_retry().await;
        let window = self.hold_ack(wrote).await;
        // The term may have moved on while we synced: never acknowledge a log we dropped.
        let resp = self.core.borrow().revalidate(resp);
        window.close();
        resp
    }

    /// After a sync that made something durable (`wrote`): the acknowledgement window opens,
    /// held for a heartbeat interval if [`INJ_DELAY_ACK_AFTER_SYNC`] is enabled here.
    async fn hold_ack(&self, wrote: bool) -> AckWindow {
        let window = AckWindow {
            sim: self.sim.clone(),
            node: self.node,
            open: wrote,
        };
        if wrote {
            let inj = Injections::of(&self.sim);
            let hold = Duration::from_millis(self.cfg.heartbeat_ms);
            let _ = inj
                .sleep(&self.sim, self.node, INJ_DELAY_ACK_AFTER_SYNC, hold, None)
                .await;
        }
        window
    }

    /// Registers this member's handlers with the node's group dispatch.
    fn serve(self: &Rc<Self>) {
        let mut hs: Vec<(&'static str, GroupHandler)> = Vec::new();
        let me = self.clone();
        hs.push((
            AppendEntriesVerb::NAME,
            handler(
                AppendEntriesVerb::NAME,
                move |from, req: AppendReq<S::Command>| {
                    let me = me.clone();
                    Box::pin(async move {
                        match me.handle(from, Request::Append(req)).await {
                            Response::Append(a) => a,
                            r => unreachable!("append answered with {r:?}"),
                        }
                    }) as LocalBoxFuture<'static, _>
                },
            ),
        ));
        let me = self.clone();
        hs.push((
            HeartbeatVerb::NAME,
            handler(HeartbeatVerb::NAME, move |from, req: HeartbeatReq| {
                let me = me.clone();
                Box::pin(async move {
                    match me.handle(from, Request::Heartbeat(req)).await {
                        Response::Heartbeat(h) => h,
                        r => unreachable!("heartbeat answered with {r:?}"),
                    }
                }) as LocalBoxFuture<'static, _>
            }),
        ));
        let me = self.clone();
        hs.push((
            RequestVoteVerb::NAME,
            handler(RequestVoteVerb::NAME, move |from, req: VoteReq| {
                let me = me.clone();
                Box::pin(async move {
                    match me.handle(from, Request::Vote(req)).await {
                        Response::Vote(v) => v,
                        r => unreachable!("vote answered with {r:?}"),
                    }
                }) as LocalBoxFuture<'static, _>
            }),
        ));
        let me = self.clone();
        hs.push((
            ForwardProposalVerb::NAME,
            handler(ForwardProposalVerb::NAME, move |_from, cmd: S::Command| {
                let res = me.with_core(|c| c.propose(cmd));
                Box::pin(async move {
                    match res {
                        Ok((index, term)) => ForwardResp::Appended { index, term },
                        Err(_) => ForwardResp::NotLeader,
                    }
                }) as LocalBoxFuture<'static, _>
            }),
        ));
        let me = self.clone();
        hs.push((
            ReadIndexVerb::NAME,
            handler(ReadIndexVerb::NAME, move |_from, ()| {
                let me = me.clone();
                Box::pin(async move {
                    match me.local_read_index().await {
                        Some(i) => ReadIndexResp::Index(i),
                        None => ReadIndexResp::NotLeader,
                    }
                }) as LocalBoxFuture<'static, _>
            }),
        ));
        serve_group(&self.sim, self.node, self.incarnation, self.group, hs);
    }

    /// As leader: the read index (commit index at the call, confirmed by a majority).
    async fn local_read_index(&self) -> Option<u64> {
        let id = self.next_read_id.get();
        self.next_read_id.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.reads.borrow_mut().insert(id, tx);
        if self.with_core(|c| c.read_index(id)).is_err() {
            self.reads.borrow_mut().remove(&id);
            return None;
        }
        let res = timeout(self.rpc_timeout(), rx).await;
        self.reads.borrow_mut().remove(&id);
        match res {
            Ok(Ok(Ok(i))) => Some(i),
            _ => None,
        }
    }

    /// Waits until entry `index` is applied here: `Ok` if it is the entry of `term` we
    /// proposed, `Dropped` if another entry took its place.
    async fn wait_applied(
        &self,
        index: u64,
        term: u64,
        deadline: SimInstant,
    ) -> Result<u64, RaftError> {
        if self.applied.get() >= index {
            // (Only the commit mutant can have truncated an applied entry.)
            let t = self.core.borrow().log().term(index);
            return if t == Some(term) {
                Ok(index)
            } else {
                Err(RaftError::Dropped)
            };
        }
        let (tx, rx) = oneshot::channel();
        self.waiters
            .borrow_mut()
            .entry(index)
            .or_default()
            .push((term, tx));
        let Some(left) = self.remaining(deadline) else {
            return Err(RaftError::Timeout);
        };
        match timeout(left, rx).await {
            Ok(Ok(res)) => res,
            _ => Err(RaftError::Timeout),
        }
    }

    /// Waits until the applied index reaches `index`.
    async fn wait_applied_index(&self, index: u64, deadline: SimInstant) -> Result<(), RaftError> {
        loop {
            let changed = self.changed.notified();
            if self.applied.get() >= index {
                return Ok(());
            }
            let Some(left) = self.remaining(deadline) else {
                return Err(RaftError::Timeout);
            };
            if timeout(left, changed).await.is_err() {
                return Err(RaftError::Timeout);
            }
        }
    }
}
