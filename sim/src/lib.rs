//! clustersim's harness over madsim.
//!
//! One [`Sim`] per run holds the world: nodes (madsim nodes that can crash, restart and pause),
//! the transport ([`net`]) with per-connection identity and faults, per-node disks ([`disk`])
//! that lose unsynced writes on a crash, named RNG streams ([`rng`]), and the [`History`] with
//! its stable digest. [`runtime`] runs one seed (or many, on threads) programmatically.
#![warn(missing_docs)]

pub mod clock;
pub mod disk;
pub mod encode;
pub mod fault;
pub mod history;
pub mod ids;
pub mod injection;
pub mod log;
pub mod net;
pub mod rng;
pub mod runtime;
pub mod sync;
pub mod world;

pub use disk::{Disk, DiskError};
pub use fault::{Fault, FaultKind, UndoneBy};
pub use history::{
    Entry, Event, EventKind, History, ProtoEvent, RpcOutcome, SimEvent, Watch, Watched,
};
pub use ids::{NodeId, SimInstant};
pub use net::{Net, NetConfig, RpcError, Sink, Source, StreamResponse, StreamVerb, Verb};
pub use rng::Rng;
pub use world::{AssertSend, NodeCtx, Sim};

/// Virtual time helpers (madsim's, re-exported so models need not name madsim).
pub mod time {
    pub use madsim::time::{sleep, timeout, Duration};
}

/// Spawn a task on the current node (it dies with the node). It keeps the spawner's span, so
/// its log lines name the same node.
pub fn spawn<F: std::future::Future<Output = ()> + 'static>(f: F) {
    drop(madsim::task::spawn_local(
        tracing::Instrument::in_current_span(f),
    ));
}
