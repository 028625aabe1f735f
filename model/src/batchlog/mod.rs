//! The batchlog (SPEC §5): logged batches made eventually atomic by a node-local batchlog
//! table, in both layouts — v1 (`system.batchlog`, a partition per batch) and v2
//! (`system.batchlog_v2`, stage/shard partitions cleaned by range tombstones).
//!
//! Pure cores: [`types`] (keys, payload, shard hash), [`table`] (the two tables on the storage
//! engine), [`replay`] (one replay pass), [`bench`] (the v1/v2 steady-workload comparison).
//! The services of every node, assembled by [`crate::node`] and depending only on its handle:
//! [`service`] (the batchlog verbs and tables), [`write_path`] (logged batches on the tablet
//! data plane, SPEC §5.3), [`manager`] (the replay loop, §5.4) and [`repair`] (repair's
//! batchlog flush, repair time and tombstone GC, §5.5). [`api`] is what scenarios drive and
//! observe.
//!
//! Simplifications, and what they cost the checkers:
//! - the batchlog tables live on shard 0 (upstream spreads `system.batchlog_v2` over shards by
//!   token); no checker depends on which shard holds an entry;
//! - "live node" (endpoint choice, availability) is the harness's `is_up` oracle, not gossip: a
//!   coordinator never picks an endpoint it wrongly believes alive, so hazards of a stale
//!   failure detector are not explored (no checker is weakened; that input is absent);
//! - the `batchlog_v2` feature and DROP TABLE take effect on every node at once;
//! - no hints, and of repair only what touches the batchlog ([`repair`]: the flush, the repair
//!   time, tombstone GC in `repair` mode), not row-level repair of the data: a replica that
//!   missed a write converges only through replays, which is why the checkers ask for a quorum
//!   of replicas, never for all of them;
//! - every node-local wall-clock read (`written_at`, a pass's `now`, the too-young test, write
//!   timestamps, a repair flush time) reads the node's own clock (`Sim::wall_clock_*`), which a
//!   `clock_skew` fault offsets and drifts; timers, RPC timeouts and the store's deadline are
//!   relative durations on the global virtual clock, as upstream's are on its steady clock.

pub mod api;
pub mod bench;
pub mod config;
pub mod events;
pub mod manager;
pub mod repair;
pub mod replay;
pub mod service;
pub mod state;
pub mod table;
pub mod types;
pub mod write_path;

pub use api::BatchlogCluster;
pub use config::{BatchlogConfig, ReplayCl};
pub use events::{BatchlogEvent, Outcome};
pub use types::{BatchId, Layout, Stage};

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;
