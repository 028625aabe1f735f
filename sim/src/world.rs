//! The world of one run: the [`Sim`] handle every part of the model holds.
//!
//! It owns the history, the named RNG streams, the mutant switches, the transport, the disks and
//! the node table. Nodes are madsim nodes, so crashing one drops all of its tasks; everything
//! durable (disks) lives here, outside the node's tasks, so a restarted node recovers from it.

use crate::disk::{Disk, DiskState};
use crate::fault::{Fault, FaultTable};
use crate::history::{Event, History, ProtoEvent, SimEvent};
use crate::ids::{NodeId, SimInstant};
use crate::net::{Net, NetConfig, NetState};
use crate::rng::Rng;
use futures::future::LocalBoxFuture;
use std::any::{Any, TypeId};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

/// Wraps a value so it can cross madsim's `Send` bounds.
///
/// Sound here because a madsim runtime is single-threaded: everything of a run is created,
/// polled and dropped on the one OS thread that runs it.
pub struct AssertSend<T>(pub T);
// SAFETY: see the type's documentation; a run never leaves its thread.
unsafe impl<T> Send for AssertSend<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for AssertSend<T> {}

impl<F: Future> Future for AssertSend<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: structural pinning of the only field.
        unsafe { self.map_unchecked_mut(|s| &mut s.0) }.poll(cx)
    }
}

/// What a node's boot function receives, once per incarnation.
#[derive(Clone)]
pub struct NodeCtx {
    /// The world.
    pub sim: Sim,
    /// This node.
    pub node: NodeId,
    /// 0 for the first boot, +1 on each restart.
    pub incarnation: u32,
}

/// A node's boot function: starts its services. The future must never return.
pub type BootFn = Rc<dyn Fn(NodeCtx) -> LocalBoxFuture<'static, ()>>;

struct NodeSlot {
    madsim: Option<madsim::task::NodeId>,
    up: bool,
    paused: bool,
    /// Every pause of the node so far: (start, end) in ns, `None` while it lasts.
    pauses: Vec<(u64, Option<u64>)>,
    incarnation: u32,
}

pub(crate) struct World {
    pub(crate) seed: u64,
    mutants: BTreeSet<String>,
    pub(crate) history: History,
    rngs: RefCell<BTreeMap<String, Rng>>,
    nodes: RefCell<BTreeMap<NodeId, NodeSlot>>,
    pub(crate) disks: RefCell<BTreeMap<NodeId, Rc<RefCell<DiskState>>>>,
    pub(crate) net: RefCell<NetState>,
    ext: RefCell<BTreeMap<TypeId, Rc<dyn Any>>>,
    /// Faults in force (see [`crate::fault`]).
    pub(crate) faults: RefCell<FaultTable>,
    /// Supervisor tasks, aborted at teardown (their futures often hold the world).
    supervised: RefCell<Vec<madsim::task::AbortHandle>>,
    torn_down: std::cell::Cell<bool>,
}

impl Drop for World {
    fn drop(&mut self) {
        LIVE_WORLDS.with(|c| c.set(c.get() - 1));
    }
}

thread_local! {
    /// Worlds alive on this thread. Harness bookkeeping for the leak test and the teardown; it
    /// never reaches a run (nothing in a run reads it).
    static LIVE_WORLDS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Worlds created by the run in progress on this thread, torn down when it ends.
    static RUN_WORLDS: RefCell<Vec<std::rc::Weak<World>>> = const { RefCell::new(Vec::new()) };
}

/// Number of worlds still alive on this thread: 0 once every finished run was torn down. A
/// leak test runs many seeds and checks this.
pub fn live_worlds() -> usize {
    LIVE_WORLDS.with(|c| c.get())
}

/// Tear down every world created on this thread since the last call (see [`Sim::teardown`]).
pub(crate) fn teardown_run_worlds() {
    let worlds = RUN_WORLDS.with(|w| std::mem::take(&mut *w.borrow_mut()));
    for w in worlds {
        if let Some(world) = w.upgrade() {
            Sim(world).teardown();
        }
    }
}

/// Handle to the world of one run. Cheap to clone.
#[derive(Clone)]
pub struct Sim(pub(crate) Rc<World>);

impl Sim {
    /// A new world. Must be called inside a madsim runtime (`block_on`).
    pub fn new(seed: u64, mutants: &[String], net: NetConfig, history: History) -> Sim {
        LIVE_WORLDS.with(|c| c.set(c.get() + 1));
        let world = Rc::new(World {
            seed,
            mutants: mutants.iter().cloned().collect(),
            history,
            rngs: RefCell::new(BTreeMap::new()),
            nodes: RefCell::new(BTreeMap::new()),
            disks: RefCell::new(BTreeMap::new()),
            net: RefCell::new(NetState::new(net)),
            ext: RefCell::new(BTreeMap::new()),
            faults: RefCell::new(FaultTable::default()),
            supervised: RefCell::new(Vec::new()),
            torn_down: std::cell::Cell::new(false),
        });
        RUN_WORLDS.with(|w| w.borrow_mut().push(Rc::downgrade(&world)));
        Sim(world)
    }

    /// End of the run: free everything the world holds, so nothing of it outlives the run.
    ///
    /// A world is full of reference cycles by design — RPC handlers and node tasks hold the
    /// [`Sim`], the [`Sim`] holds the handlers, a task's waker sits in a `Notify` that the task
    /// itself holds — so dropping the last outside handle frees nothing. This closes the
    /// history to further events, marks every node down (so dropping a stream sink is not a
    /// model bug), cancels supervisor tasks, kills every madsim node (madsim wakes their tasks,
    /// and its executor drops them) and empties the transport, the disks and the extension
    /// registry. [`crate::runtime::run_seed`] calls it inside the runtime after every run.
    /// Idempotent.
    pub fn teardown(&self) {
        let w = &self.0;
        if w.torn_down.replace(true) {
            return;
        }
        w.history.close();
        let madsim_ids: Vec<madsim::task::NodeId> = {
            let mut nodes = w.nodes.borrow_mut();
            nodes
                .values_mut()
                .filter_map(|slot| {
                    let was_up = slot.up;
                    slot.up = false;
                    slot.paused = false;
                    slot.madsim.filter(|_| was_up)
                })
                .collect()
        };
        for a in std::mem::take(&mut *w.supervised.borrow_mut()) {
            a.abort();
        }
        if let Ok(h) = madsim::runtime::Handle::try_current() {
            for id in madsim_ids {
                h.kill(id);
            }
        }
        let net = std::mem::replace(
            &mut *w.net.borrow_mut(),
            NetState::new(NetConfig::default()),
        );
        drop(net);
        let disks = std::mem::take(&mut *w.disks.borrow_mut());
        drop(disks);
        let ext = std::mem::take(&mut *w.ext.borrow_mut());
        drop(ext);
        let rngs = std::mem::take(&mut *w.rngs.borrow_mut());
        drop(rngs);
    }

    /// The run's single instance of `T` (created on first use): per-run registries of other
    /// crates (e.g. injection points) live here, never in statics.
    pub fn ext<T: Default + 'static>(&self) -> Rc<T> {
        let v = self
            .0
            .ext
            .borrow_mut()
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Rc::new(T::default()) as Rc<dyn Any>)
            .clone();
        v.downcast::<T>().expect("ext type")
    }

    /// Virtual time since the run started.
    pub fn now(&self) -> SimInstant {
        match madsim::time::TimeHandle::try_current() {
            Some(t) => SimInstant(t.elapsed().as_nanos() as u64),
            // Outside the runtime (tasks dropped while it shuts down): the last recorded time.
            None => self
                .0
                .history
                .entries()
                .last()
                .map_or(SimInstant(0), |e| e.at),
        }
    }

    /// The run seed.
    pub fn seed(&self) -> u64 {
        self.0.seed
    }

    /// The named random stream `name` of this run.
    pub fn rng(&self, name: &str) -> Rng {
        let mut rngs = self.0.rngs.borrow_mut();
        if let Some(r) = rngs.get(name) {
            return r.clone();
        }
        let r = Rng::new(self.0.seed, name);
        rngs.insert(name.to_string(), r.clone());
        r
    }

    /// Is mutant `name` switched on for this run?
    pub fn mutant(&self, name: &str) -> bool {
        !self.0.mutants.is_empty() && self.0.mutants.contains(name)
    }

    /// Record a protocol event; returns its history index.
    pub fn record(&self, node: Option<NodeId>, ev: impl ProtoEvent) -> usize {
        self.0
            .history
            .push(self.now(), node, Event::Proto(Box::new(ev)))
    }

    /// Record a harness event.
    pub fn record_sim(&self, node: Option<NodeId>, ev: SimEvent) -> usize {
        crate::log::sim_event(node, &ev);
        self.0.history.push(self.now(), node, Event::Sim(ev))
    }

    /// Count a coverage mark.
    pub fn mark(&self, name: &'static str) {
        tracing::debug!(target: "sim::mark", "coverage mark: {name}");
        self.0.history.mark(name);
    }

    /// Add to a named counter of the run report.
    pub fn metric_add(&self, name: &str, v: u64) {
        self.0.history.metric_add(name, v);
    }

    /// Raise a named maximum of the run report.
    pub fn metric_max(&self, name: &str, v: u64) {
        self.0.history.metric_max(name, v);
    }

    /// The history (read side).
    pub fn history(&self) -> History {
        self.0.history.clone()
    }

    /// The transport.
    pub fn net(&self) -> Net {
        Net(self.clone())
    }

    /// The disk of `node`.
    pub fn disk(&self, node: NodeId) -> Disk {
        let state = self
            .0
            .disks
            .borrow_mut()
            .entry(node)
            .or_insert_with(|| Rc::new(RefCell::new(DiskState::default())))
            .clone();
        Disk {
            sim: self.clone(),
            node,
            state,
        }
    }

    /// Add a node that boots with `boot` now and on every restart. Ids are 1, 2, ...
    pub fn add_node(
        &self,
        boot: impl Fn(NodeCtx) -> LocalBoxFuture<'static, ()> + 'static,
    ) -> NodeId {
        let id = NodeId(self.0.nodes.borrow().len() as u32 + 1);
        let boot: BootFn = Rc::new(boot);
        let init = AssertSend((self.clone(), boot));
        // The slot must exist before madsim runs `init` (which happens inside `build`).
        self.0.nodes.borrow_mut().insert(
            id,
            NodeSlot {
                madsim: None,
                up: true,
                paused: false,
                pauses: Vec::new(),
                incarnation: 0,
            },
        );
        let handle = madsim::runtime::Handle::current()
            .create_node()
            .name(id.to_string())
            .init(move || {
                let whole = &init;
                let (sim, boot) = (&whole.0 .0, &whole.0 .1);
                let incarnation = sim.incarnation(id);
                sim.record_sim(Some(id), SimEvent::Start { incarnation });
                let boot = boot(NodeCtx {
                    sim: sim.clone(),
                    node: id,
                    incarnation,
                });
                tracing::Instrument::instrument(boot, crate::log::node_span(id))
            })
            .build();
        self.0.nodes.borrow_mut().get_mut(&id).expect("slot").madsim = Some(handle.id());
        id
    }

    /// Every node, in id order.
    pub fn nodes(&self) -> Vec<NodeId> {
        self.0.nodes.borrow().keys().copied().collect()
    }

    /// Is `node` running (not crashed)? A paused node is up.
    pub fn is_up(&self, node: NodeId) -> bool {
        self.0.nodes.borrow().get(&node).is_some_and(|s| s.up)
    }

    /// Is `node` paused?
    pub fn is_paused(&self, node: NodeId) -> bool {
        self.0.nodes.borrow().get(&node).is_some_and(|s| s.paused)
    }

    /// If `node` was paused at instant `t_ns` (a pause that began at or before it and had not
    /// ended), when that pause ended (`Some(None)`: it has not yet). What a task of the node
    /// whose timer fired at `t_ns` needs: it runs at the end of the pause.
    pub fn pause_covering(&self, node: NodeId, t_ns: u64) -> Option<Option<u64>> {
        let nodes = self.0.nodes.borrow();
        let slot = nodes.get(&node)?;
        slot.pauses
            .iter()
            .rev()
            .find(|(start, end)| *start <= t_ns && end.is_none_or(|e| t_ns < e))
            .map(|(_, end)| *end)
    }

    /// Current incarnation of `node`.
    pub fn incarnation(&self, node: NodeId) -> u32 {
        self.0
            .nodes
            .borrow()
            .get(&node)
            .map_or(0, |s| s.incarnation)
    }

    /// Is incarnation `incarnation` of `node` the one running now? False once it crashed,
    /// and after a restart (a handle kept across the crash belongs to a dead process).
    pub fn is_running(&self, node: NodeId, incarnation: u32) -> bool {
        self.0
            .nodes
            .borrow()
            .get(&node)
            .is_some_and(|s| s.up && s.incarnation == incarnation)
    }

    fn madsim_id(&self, node: NodeId) -> madsim::task::NodeId {
        self.0
            .nodes
            .borrow()
            .get(&node)
            .and_then(|s| s.madsim)
            .expect("unknown node")
    }

    /// Crash `node`: its tasks stop, its connections die, its unsynced disk writes are lost.
    /// Recorded as a [`Fault::Crash`]; a no-op if `node` is already down.
    pub fn crash(&self, node: NodeId) {
        if self.is_up(node) {
            self.apply_fault(&Fault::Crash { node }, None);
        }
    }

    /// Restart a crashed `node`: its boot function runs again with incarnation + 1. Ends the
    /// open crash record of `node`.
    pub fn restart(&self, node: NodeId) {
        if self.undo_matching(|f| *f == Fault::Crash { node }) == 0 {
            self.restart_now(node);
        }
    }

    /// Pause `node`: its tasks stop being polled until [`Sim::resume`]. Recorded as a
    /// [`Fault::Pause`]; a no-op if `node` is down or already paused.
    pub fn pause(&self, node: NodeId) {
        if self.is_up(node) && !self.is_paused(node) {
            self.apply_fault(&Fault::Pause { node }, None);
        }
    }

    /// Resume a paused `node`. Ends its open pause record.
    pub fn resume(&self, node: NodeId) {
        if self.undo_matching(|f| *f == Fault::Pause { node }) == 0 {
            self.resume_now(node);
        }
    }

    // The mechanics behind the fault records (see `crate::fault`).

    pub(crate) fn crash_now(&self, node: NodeId) {
        let now = self.now().0;
        {
            let mut nodes = self.0.nodes.borrow_mut();
            let slot = nodes.get_mut(&node).expect("unknown node");
            if !slot.up {
                return;
            }
            slot.up = false;
            slot.paused = false;
            // A pause ends with the process.
            if let Some(p) = slot.pauses.last_mut().filter(|p| p.1.is_none()) {
                p.1 = Some(now);
            }
        }
        let lost_writes = self.disk(node).crash();
        if lost_writes > 0 {
            self.mark("unsynced writes lost on crash");
        }
        self.record_sim(Some(node), SimEvent::Crash { lost_writes });
        self.net().on_crash(node);
        madsim::runtime::Handle::current().kill(self.madsim_id(node));
    }

    pub(crate) fn restart_now(&self, node: NodeId) {
        {
            let mut nodes = self.0.nodes.borrow_mut();
            let slot = nodes.get_mut(&node).expect("unknown node");
            if slot.up {
                return;
            }
            slot.up = true;
            slot.incarnation += 1;
        }
        madsim::runtime::Handle::current().restart(self.madsim_id(node));
    }

    pub(crate) fn pause_now(&self, node: NodeId) {
        if !self.is_up(node) || self.is_paused(node) {
            return;
        }
        {
            let now = self.now().0;
            let mut nodes = self.0.nodes.borrow_mut();
            let slot = nodes.get_mut(&node).expect("node");
            slot.paused = true;
            slot.pauses.push((now, None));
        }
        self.record_sim(Some(node), SimEvent::Pause { paused: true });
        madsim::runtime::Handle::current().pause(self.madsim_id(node));
    }

    pub(crate) fn resume_now(&self, node: NodeId) {
        if !self.is_paused(node) {
            return;
        }
        {
            let now = self.now().0;
            let mut nodes = self.0.nodes.borrow_mut();
            let slot = nodes.get_mut(&node).expect("node");
            slot.paused = false;
            if let Some(p) = slot.pauses.last_mut() {
                p.1 = Some(now);
            }
        }
        self.record_sim(Some(node), SimEvent::Pause { paused: false });
        madsim::runtime::Handle::current().resume(self.madsim_id(node));
    }

    /// Spawn `f` on `node`; it dies with the node's current incarnation. It runs in the node's
    /// log span.
    pub fn spawn_on<F: Future<Output = ()> + 'static>(&self, node: NodeId, f: F) {
        if !self.is_up(node) {
            return;
        }
        let handle = madsim::runtime::Handle::current()
            .get_node(self.madsim_id(node))
            .expect("madsim node");
        let f = tracing::Instrument::instrument(f, crate::log::node_span(node));
        drop(handle.spawn(AssertSend(f)));
    }

    /// Spawn `f` on the supervisor (never crashes): used by the nemesis and scenarios.
    pub fn spawn_supervisor<F: Future<Output = ()> + 'static>(&self, f: F) {
        if self.0.torn_down.get() {
            return;
        }
        let handle = madsim::task::spawn_local(f);
        let mut sup = self.0.supervised.borrow_mut();
        // Forget finished tasks now and then, so a long run does not grow this list.
        if sup.len() >= 64 && sup.len().is_power_of_two() {
            sup.retain(|a| !a.is_finished());
        }
        sup.push(handle.abort_handle());
    }

    /// Heal everything: undo every open fault (oldest first, each recorded as undone by the
    /// heal), then sweep what no record covers: link rules, partitions, stalls and disk faults
    /// are cleared, paused nodes resumed and crashed nodes restarted.
    pub fn heal(&self) {
        self.undo_all();
        self.net().heal_all();
        let disks: Vec<NodeId> = self.0.disks.borrow().keys().copied().collect();
        for n in disks {
            self.disk(n).clear_faults();
        }
        for n in self.nodes() {
            if self.is_paused(n) {
                self.resume_now(n);
            }
            if !self.is_up(n) {
                self.restart_now(n);
            }
        }
    }
}
