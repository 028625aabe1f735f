//! Fault injection for clustersim: named injection points inside the model ([`injection`]),
//! faults as data ([`fault`]), the swarm generator ([`swarm`]), the nemesis that executes a
//! schedule ([`nemesis`]), release conditions of held faults ([`release`]) and the shrinker
//! ([`shrink`]).
#![warn(missing_docs)]

pub mod fault;
pub mod injection;
pub mod nemesis;
pub mod release;
pub mod shrink;
pub mod swarm;
pub mod trigger;

pub use fault::{EventTrigger, Fault, FaultKind, FaultSchedule, ScheduledFault};
pub use injection::{Handler, InjectedError, InjectionError, InjectionEvent, Injections};
pub use nemesis::{LeaderProbe, Nemesis};
pub use release::ReleaseOn;
pub use swarm::{BuggifyPoint, FaultModel, TriggeredFault};
