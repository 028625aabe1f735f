//! One typed fault record: every environment fault of a run, whoever applies it, goes through
//! [`Sim::apply_fault`] and is recorded once in the history as
//! [`SimEvent::FaultApplied`](crate::SimEvent::FaultApplied) carrying the [`Fault`] value; its
//! end (a restart, a release, a heal) is recorded once as
//! [`SimEvent::FaultUndone`](crate::SimEvent::FaultUndone) with the same id.
//!
//! The low-level entry points ([`Sim::crash`], [`Sim::pause`], [`Net::stall`](crate::Net::stall),
//! [`Net::kill_connection`](crate::Net::kill_connection), [`Disk::fail_syncs`](crate::Disk::fail_syncs),
//! ...) are thin wrappers over [`Sim::apply_fault`] / [`Sim::undo_fault`], so a scripted story
//! that calls `sim.crash(n)` and the nemesis executing a schedule leave the same record, and
//! nothing can apply a fault without recording it. The mechanics behind them are crate-private.
//! A fault that needs undoing stays in the world's table of open faults until it is undone;
//! the heal phase undoes every open fault, in the order they were applied — except those
//! marked [`Sim::keep_through_heal`], whose end comes only from whoever applied them (the
//! nemesis's release condition of a held injection point) or the run's end.

use crate::history::SimEvent;
use crate::ids::NodeId;
use crate::injection::Injections;
use crate::world::Sim;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;

/// One environment fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Kill the `from -> to` connection (pending calls fail, admitted requests keep running).
    KillConnection {
        /// Client side.
        from: NodeId,
        /// Server side.
        to: NodeId,
    },
    /// Hold requests of `verb` on `from -> to` until the fault ends.
    Stall {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
        /// Verb name.
        verb: String,
    },
    /// Drop messages on `from -> to` with a probability.
    Drop {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
        /// Only this verb, or all.
        verb: Option<String>,
        /// Probability of dropping each message.
        probability: f64,
    },
    /// Add latency on `from -> to`.
    Delay {
        /// Source.
        from: NodeId,
        /// Destination.
        to: NodeId,
        /// Only this verb, or all.
        verb: Option<String>,
        /// Extra milliseconds.
        ms: u64,
    },
    /// Cut `a` from `b` (both ways unless `oneway`).
    Partition {
        /// One side.
        a: Vec<NodeId>,
        /// The other side.
        b: Vec<NodeId>,
        /// Only `a -> b` is cut.
        oneway: bool,
    },
    /// Crash a node (restarted when the fault ends).
    Crash {
        /// The node.
        node: NodeId,
    },
    /// Pause a node (resumed when the fault ends).
    Pause {
        /// The node.
        node: NodeId,
    },
    /// Stall a node's disk syncs.
    DiskStall {
        /// The node.
        node: NodeId,
    },
    /// Fail a node's next `count` disk syncs.
    DiskError {
        /// The node.
        node: NodeId,
        /// How many syncs fail.
        count: u32,
    },
    /// Slow a node's disk syncs.
    DiskLatency {
        /// The node.
        node: NodeId,
        /// Milliseconds per sync.
        ms: u64,
    },
    /// Skew `node`'s wall clock (`db_clock`, write timestamps) by `offset_ms` and let it drift
    /// by `drift_ppm` parts per million from now on; virtual time, timers and timeouts stay
    /// global (see [`crate::clock`]). Undone: the clock steps back to true time.
    ClockSkew {
        /// The node.
        node: NodeId,
        /// Offset in ms (negative: behind).
        offset_ms: i64,
        /// Drift in parts per million (negative: slow).
        #[serde(default)]
        drift_ppm: i64,
    },
    /// Crash whichever node leads group0 when the fault fires (restarted when it ends).
    KillLeader,
    /// Buggify: enable the model's injection point `name` on `node` (disabled when the fault
    /// ends, which releases whoever waits there). What it does is the point's: a fail point
    /// returns its error, a sleep point sleeps (abortably), a wait-for-message point holds its
    /// caller until the fault ends.
    Injection {
        /// The node.
        node: NodeId,
        /// Injection point name, as the model declares it.
        name: String,
        /// Consumed by the first pass (a one-shot error, one held call).
        #[serde(default)]
        one_shot: bool,
    },
    /// The operator removes the dead `node` from the cluster (the model's `exclude_node` API,
    /// as the run's [`Operator`] carries it out). Instantaneous: an excluded node stays so.
    ExcludeNode {
        /// The node.
        node: NodeId,
    },
}

impl Fault {
    /// The kind name of this fault, as used in fault models.
    pub fn kind(&self) -> FaultKind {
        match self {
            Fault::KillConnection { .. } => FaultKind::KillConnection,
            Fault::Stall { .. } => FaultKind::Stall,
            Fault::Drop { .. } => FaultKind::Drop,
            Fault::Delay { .. } => FaultKind::Delay,
            Fault::Partition { .. } => FaultKind::Partition,
            Fault::Crash { .. } => FaultKind::Crash,
            Fault::Pause { .. } => FaultKind::Pause,
            Fault::DiskStall { .. } => FaultKind::DiskStall,
            Fault::DiskError { .. } => FaultKind::DiskError,
            Fault::DiskLatency { .. } => FaultKind::DiskLatency,
            Fault::KillLeader => FaultKind::KillLeader,
            Fault::Injection { .. } => FaultKind::Injection,
            Fault::ClockSkew { .. } => FaultKind::ClockSkew,
            Fault::ExcludeNode { .. } => FaultKind::ExcludeNode,
        }
    }
}

fn names(v: &[NodeId]) -> String {
    v.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillConnection { from, to } => write!(f, "kill connection {from}->{to}"),
            Fault::Stall { from, to, verb } => write!(f, "stall {verb} {from}->{to}"),
            Fault::Drop {
                from,
                to,
                verb,
                probability,
            } => write!(
                f,
                "drop {} {from}->{to} p={probability:.2}",
                verb.as_deref().unwrap_or("*")
            ),
            Fault::Delay { from, to, verb, ms } => {
                write!(
                    f,
                    "delay {} {from}->{to} +{ms}ms",
                    verb.as_deref().unwrap_or("*")
                )
            }
            Fault::Partition { a, b, oneway } => write!(
                f,
                "partition [{}] {} [{}]",
                names(a),
                if *oneway { "-/->" } else { "<-/->" },
                names(b)
            ),
            Fault::Crash { node } => write!(f, "crash {node}"),
            Fault::Pause { node } => write!(f, "pause {node}"),
            Fault::DiskStall { node } => write!(f, "disk stall {node}"),
            Fault::DiskError { node, count } => write!(f, "disk error {node} x{count}"),
            Fault::DiskLatency { node, ms } => write!(f, "disk latency {node} {ms}ms"),
            Fault::KillLeader => write!(f, "kill group0 leader"),
            Fault::ClockSkew {
                node,
                offset_ms,
                drift_ppm,
            } => {
                write!(f, "clock skew {node} {offset_ms:+}ms")?;
                if *drift_ppm != 0 {
                    write!(f, " drift {drift_ppm:+}ppm")?;
                }
                Ok(())
            }
            Fault::Injection {
                node,
                name,
                one_shot,
            } => write!(
                f,
                "injection {name} on {node}{}",
                if *one_shot { " (one-shot)" } else { "" }
            ),
            Fault::ExcludeNode { node } => write!(f, "exclude {node} (operator)"),
        }
    }
}

/// Fault kinds, for fault models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// [`Fault::KillConnection`].
    KillConnection,
    /// [`Fault::Stall`].
    Stall,
    /// [`Fault::Drop`].
    Drop,
    /// [`Fault::Delay`].
    Delay,
    /// [`Fault::Partition`].
    Partition,
    /// [`Fault::Crash`].
    Crash,
    /// [`Fault::Pause`].
    Pause,
    /// [`Fault::DiskStall`].
    DiskStall,
    /// [`Fault::DiskError`].
    DiskError,
    /// [`Fault::DiskLatency`].
    DiskLatency,
    /// [`Fault::KillLeader`].
    KillLeader,
    /// [`Fault::Injection`].
    Injection,
    /// [`Fault::ClockSkew`].
    ClockSkew,
    /// [`Fault::ExcludeNode`].
    ExcludeNode,
}

impl Fault {
    /// Does this fault stay in force until undone (a crash until the restart, a stall until
    /// the release)? A killed connection is instantaneous.
    pub fn lasts(&self) -> bool {
        !matches!(
            self,
            Fault::KillConnection { .. } | Fault::ExcludeNode { .. }
        )
    }

    /// Nodes this fault names (for timelines and filters).
    pub fn nodes(&self) -> Vec<NodeId> {
        let mut v = match self {
            Fault::KillConnection { from, to }
            | Fault::Stall { from, to, .. }
            | Fault::Drop { from, to, .. }
            | Fault::Delay { from, to, .. } => vec![*from, *to],
            Fault::Partition { a, b, .. } => a.iter().chain(b).copied().collect(),
            Fault::Crash { node }
            | Fault::Pause { node }
            | Fault::DiskStall { node }
            | Fault::DiskError { node, .. }
            | Fault::DiskLatency { node, .. }
            | Fault::Injection { node, .. }
            | Fault::ClockSkew { node, .. }
            | Fault::ExcludeNode { node } => vec![*node],
            Fault::KillLeader => vec![],
        };
        v.sort();
        v.dedup();
        v
    }
}

/// Who ended a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UndoneBy {
    /// Its scheduled duration ran out (the nemesis).
    Schedule,
    /// A story or test called the paired verb (`restart`, `release`, `heal_partition`, ...).
    Script,
    /// The heal phase.
    Heal,
    /// Its release condition held (the nemesis; see `ReleaseOn` in `fault_injection`).
    Release,
}

/// The run's operator: what a scenario lets an operator do to the cluster through the model's
/// API, which `sim` does not know (the model registers it). A [`Fault::ExcludeNode`] is applied
/// through it; without one the nemesis skips it.
#[derive(Default)]
pub struct Operator {
    exclude: RefCell<Option<ExcludeFn>>,
}

/// Starts the exclusion of a node (see [`Operator::set_exclude`]).
type ExcludeFn = Rc<dyn Fn(NodeId)>;

impl Operator {
    /// The run's operator.
    pub fn of(sim: &Sim) -> Rc<Operator> {
        sim.ext::<Operator>()
    }

    /// How this run excludes a node: `f` starts the exclusion (it may spawn the API call and
    /// its retries) and returns at once.
    pub fn set_exclude(&self, f: impl Fn(NodeId) + 'static) {
        *self.exclude.borrow_mut() = Some(Rc::new(f));
    }

    /// Can this run exclude a node?
    pub fn can_exclude(&self) -> bool {
        self.exclude.borrow().is_some()
    }
}

/// The open faults of a run, by record id.
#[derive(Default)]
pub(crate) struct FaultTable {
    next_id: u64,
    open: BTreeMap<u64, Fault>,
    /// Open faults the heal leaves in force ([`Sim::keep_through_heal`]).
    kept: BTreeSet<u64>,
}

impl Sim {
    /// Apply `fault` now and record it once (`schedule`: its position in the run's fault
    /// schedule, `None` for a scripted fault). Returns the record id, which
    /// [`Sim::undo_fault`] takes. The one way a fault enters a run.
    ///
    /// Panics on [`Fault::KillLeader`]: the nemesis resolves it to a crash first.
    pub fn apply_fault(&self, fault: &Fault, schedule: Option<usize>) -> u64 {
        assert!(
            !matches!(fault, Fault::KillLeader),
            "kill_leader is resolved to a concrete crash before it is applied"
        );
        let id = {
            let mut t = self.0.faults.borrow_mut();
            t.next_id += 1;
            let id = t.next_id;
            if fault.lasts() {
                t.open.insert(id, fault.clone());
            }
            id
        };
        self.record_sim(
            None,
            SimEvent::FaultApplied {
                id,
                fault: fault.clone(),
                schedule,
            },
        );
        let net = self.net();
        match fault {
            Fault::KillConnection { from, to } => net.kill_now(*from, *to),
            Fault::Stall { from, to, verb } => net.stall_now(*from, *to, verb),
            Fault::Drop {
                from,
                to,
                verb,
                probability,
            } => net.drop_now(*from, *to, verb.as_deref(), *probability),
            Fault::Delay { from, to, verb, ms } => net.delay_now(*from, *to, verb.as_deref(), *ms),
            Fault::Partition { a, b, oneway } => net.partition_now(a, b, *oneway),
            Fault::Crash { node } => self.crash_now(*node),
            Fault::Pause { node } => self.pause_now(*node),
            Fault::DiskStall { node } => self.disk(*node).stall_now(),
            Fault::DiskError { node, count } => self.disk(*node).fail_syncs_now(*count),
            Fault::DiskLatency { node, ms } => self.disk(*node).set_latency_now(*ms),
            Fault::Injection {
                node,
                name,
                one_shot,
            } => Injections::of(self).enable(self, *node, name, *one_shot, BTreeMap::new()),
            Fault::ClockSkew {
                node,
                offset_ms,
                drift_ppm,
            } => self.skew_clock_now(*node, *offset_ms, *drift_ppm),
            Fault::ExcludeNode { node } => {
                let exclude = Operator::of(self).exclude.borrow().clone();
                exclude.expect("an exclude is applied only where the run has an operator")(*node)
            }
            Fault::KillLeader => unreachable!("asserted above"),
        }
        id
    }

    /// End the open fault `id` now and record that once. Returns false (and does nothing) if
    /// it is not open: already undone, instantaneous, or unknown.
    pub fn undo_fault(&self, id: u64, by: UndoneBy) -> bool {
        let Some(fault) = ({
            let mut t = self.0.faults.borrow_mut();
            t.kept.remove(&id);
            t.open.remove(&id)
        }) else {
            return false;
        };
        self.record_sim(
            None,
            SimEvent::FaultUndone {
                id,
                fault: fault.clone(),
                by,
            },
        );
        let net = self.net();
        match &fault {
            Fault::KillConnection { .. } | Fault::KillLeader | Fault::ExcludeNode { .. } => {
                unreachable!("never open")
            }
            Fault::Stall { from, to, verb } => net.release_now(*from, *to, verb),
            Fault::Drop { from, to, .. } => net.clear_drop_now(*from, *to),
            Fault::Delay { from, to, .. } => net.clear_delay_now(*from, *to),
            Fault::Partition { a, b, .. } => net.heal_partition_now(a, b),
            Fault::Crash { node } => self.restart_now(*node),
            Fault::Pause { node } => self.resume_now(*node),
            Fault::DiskStall { node } => self.disk(*node).release_now(),
            Fault::DiskError { node, .. } => self.disk(*node).fail_syncs_now(0),
            Fault::DiskLatency { node, .. } => self.disk(*node).set_latency_now(0),
            Fault::Injection { node, name, .. } => Injections::of(self).disable(self, *node, name),
            Fault::ClockSkew { node, .. } => self.unskew_clock_now(*node),
        }
        true
    }

    /// Undo every open fault `pred` selects, oldest first, by a script. Returns how many.
    pub(crate) fn undo_matching(&self, pred: impl Fn(&Fault) -> bool) -> usize {
        let ids: Vec<u64> = self
            .0
            .faults
            .borrow()
            .open
            .iter()
            .filter(|(_, f)| pred(f))
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.undo_fault(*id, UndoneBy::Script);
        }
        ids.len()
    }

    /// The faults in force now, by record id.
    pub fn open_faults(&self) -> Vec<(u64, Fault)> {
        self.0
            .faults
            .borrow()
            .open
            .iter()
            .map(|(id, f)| (*id, f.clone()))
            .collect()
    }

    /// Let the open fault `id` outlive the heal phase: the heal undoes every other open fault,
    /// and this one ends only when whoever applied it undoes it (or with the run). For a hold
    /// whose release is a protocol condition, not a time: a receiver held at an injection
    /// point until its migration ends must not be let go by the heal, or a receiver that never
    /// checks its guard would finish late instead of never. Only what the heal's other steps
    /// leave alone truly outlives it (an injection point, a clock skew): the heal still
    /// reconnects every link, clears disk faults and restarts every node. Returns false (and
    /// does nothing) if `id` is not open.
    pub fn keep_through_heal(&self, id: u64) -> bool {
        let mut t = self.0.faults.borrow_mut();
        if !t.open.contains_key(&id) {
            return false;
        }
        t.kept.insert(id);
        true
    }

    /// Is the fault `id` open (applied, lasting, not yet undone)?
    pub fn is_open_fault(&self, id: u64) -> bool {
        self.0.faults.borrow().open.contains_key(&id)
    }

    /// Undo every open fault not kept through the heal, oldest first (the heal phase).
    pub(crate) fn undo_all(&self) {
        let ids: Vec<u64> = {
            let t = self.0.faults.borrow();
            t.open
                .keys()
                .filter(|id| !t.kept.contains(id))
                .copied()
                .collect()
        };
        for id in ids {
            self.undo_fault(id, UndoneBy::Heal);
        }
    }
}
