//! The topology area: tablets with (node, shard) replicas, tablet migration driven by the
//! topology coordinator on the group0 leader, topology sessions and the topology guard,
//! barriers, fenced streaming, cleanup and a stage-routed data plane (SPEC §0–§3).
//!
//! Pure cores: [`stage`] (stages, selectors, legal transitions), [`session`] (registry),
//! [`state`] (group0 state and guarded apply), [`pump`] (coordinator decisions), [`balancer`].
//! Async shells: [`group0`], [`coordinator`], [`barrier`], [`stream`], [`cleanup`],
//! [`data`], [`api`]; the erm tracker [`erm`] and the tablet metadata guard [`tablet_guard`]. History events: [`events`].
//!
//! A node is assembled in [`crate::node`]; every service here receives its low-level handle
//! [`crate::node::NodeHandle`].

pub mod api;
pub mod balancer;
pub mod barrier;
pub mod cleanup;
pub mod config;
pub mod coordinator;
pub mod data;
pub mod erm;
pub mod events;
pub mod group0;
pub mod ids;
pub mod pump;
pub mod session;
pub mod stage;
pub mod state;
pub mod stream;
pub mod tablet_guard;

pub use config::TopologyConfig;
pub use ids::*;

#[cfg(test)]
mod smoke_tests;
