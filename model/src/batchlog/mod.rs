//! The batchlog (SPEC §5): logged batches made eventually atomic by a node-local batchlog
//! table, in both layouts — v1 (`system.batchlog`, a partition per batch) and v2
//! (`system.batchlog_v2`, stage/shard partitions cleaned by range tombstones).
//!
//! Pure cores: [`types`] (keys, payload, shard hash), [`table`] (the storage model with its
//! cost accounting), [`replay`] (one replay pass), [`bench`] (the v1/v2 steady-workload
//! comparison). The async shells build on them: [`cluster`] (nodes, data plane, RPCs, disk),
//! [`write_path`] (logged batches, SPEC §5.3) and [`manager`] (the replay loop, §5.4).

pub mod bench;
pub mod cluster;
pub mod config;
pub mod events;
pub mod manager;
pub mod replay;
pub mod table;
pub mod types;
pub mod write_path;

pub use cluster::Cluster;
pub use config::BatchlogConfig;
pub use events::{BatchlogEvent, Outcome};
pub use types::{BatchId, Layout, Stage};

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;
