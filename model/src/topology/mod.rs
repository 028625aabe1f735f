//! The topology area: tablets with (node, shard) replicas, tablet migration driven by the
//! topology coordinator on the group0 leader, topology sessions and the topology guard,
//! barriers, fenced streaming, cleanup and a stage-routed data plane (SPEC §0–§3).

pub mod ids;
pub mod state;
pub mod session;
pub mod pump;
pub mod stage;

pub use ids::*;
