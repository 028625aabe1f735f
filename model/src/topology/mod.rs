//! The topology area: tablets with (node, shard) replicas, tablet migration driven by the
//! topology coordinator on the group0 leader, topology sessions and the topology guard,
//! barriers, fenced streaming, cleanup and a stage-routed data plane (SPEC §0–§3).
//!
//! Pure cores: [`stage`] (stages, selectors, legal transitions), [`session`] (registry),
//! [`state`] (group0 state and guarded apply), [`pump`] (coordinator decisions), [`balancer`].
//! Async shells: [`group0`], [`node`], [`coordinator`], [`barrier`], [`stream`], [`cleanup`],
//! [`data`], [`api`]. History events: [`events`].

pub mod api;
pub mod balancer;
pub mod barrier;
pub mod cleanup;
pub mod coordinator;
pub mod data;
pub mod events;
pub mod group0;
pub mod ids;
pub mod node;
pub mod pump;
pub mod session;
pub mod stage;
pub mod state;
pub mod stream;

pub use ids::*;

#[cfg(test)]
mod smoke_tests;
