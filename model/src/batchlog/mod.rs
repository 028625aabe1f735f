//! The batchlog (SPEC §5): logged batches made eventually atomic by a node-local batchlog
//! table, in both layouts — v1 (`system.batchlog`, a partition per batch) and v2
//! (`system.batchlog_v2`, stage/shard partitions cleaned by range tombstones).
//!
//! Pure cores: [`types`] (keys, payload, shard hash), [`table`] (the storage model with its
//! cost accounting), [`replay`] (one replay pass), [`bench`] (the v1/v2 steady-workload
//! comparison). The cluster shell (nodes, write path, replay loop, RPCs) builds on them.

pub mod bench;
pub mod config;
pub mod replay;
pub mod table;
pub mod types;

pub use config::BatchlogConfig;
pub use types::{BatchId, Layout, Stage};

#[cfg(test)]
mod tests;
