//! The topology area: tablets with (node, shard) replicas, tablet migration driven by the
//! topology coordinator on the group0 leader, topology sessions and the topology guard,
//! barriers, fenced streaming, cleanup and a stage-routed data plane (SPEC §0–§3).
//!
//! Pure cores: [`stage`] (stages, selectors, legal transitions), [`session`] (registry),
//! [`state`] (group0 state and guarded apply), [`pump`] (coordinator decisions), [`balancer`].
//! Async shells: [`group0`], [`coordinator`], [`join`], [`barrier`], [`stream`], [`cleanup`],
//! [`data`], [`api`]; the erm tracker [`erm`] and the tablet metadata guard [`tablet_guard`]. History events: [`events`].
//!
//! A node is assembled in [`crate::node`]; every service here receives its low-level handle
//! [`crate::node::NodeHandle`].
//!
//! As upstream: replicas fence only on group0's `fence_version`, which the coordinator commits
//! in its own "advance fence version" change right after a successful barrier; replica writes
//! and tablet operations hold the node's erm, so `barrier_and_drain`'s stale-version wait waits
//! for them; the rollback from `write_both_read_new` goes through
//! `write_both_read_old_fallback_cleanup` (or a barrier); excluded nodes (`ignored_nodes`, set
//! through the API) are skipped by barriers and are rollback reasons.
//!
//! Simplifications that remain, and what they cost the checkers:
//! - Only the `migration` transition kind (no intranode migration, rebuild, rebuild_v2 with
//!   `rebuild_repair`, repair, restore): the session edges of `rebuild_repair` and repair are
//!   never checked.
//! - A node can be added at run time through the coordinator's join path ([`join`]: a group0
//!   non-voter that bootstraps through `join_group0` … `write_both_read_new`, with the
//!   topology session and the barriers of each step); it stays a non-voter, the join is never
//!   rolled back, and there are no vnode tokens, CDC generations, decommission or removenode
//!   (see [`join`]'s header for what that leaves unchecked).
//! - An excluded node is restarted by the heal phase instead of being removed; INV-TABL-1 and
//!   the skew bound skip excluded nodes, so leftovers on an excluded node are not judged.
//! - Reads are neither fenced nor hold a replica-side erm (only the coordinating node's erm):
//!   a fence bug that lets a stale *read* through cannot be seen.
//! - A replica applies a write synchronously right after its fence check (the sync to disk
//!   follows, under the erm): upstream's window between admission and the memtable apply is
//!   narrower here, so a write admitted before a cleanup cannot be applied after it.
//! - One erm tracker per node (not per table and shard); the tablet metadata guard watches the
//!   tablet's (migration, stage) only — no resize, so tablet-count changes never fire it.
//! - The tablet barrier only: the vnode path (fence after a failed drain, then a plain barrier)
//!   is not modelled; rollback reasons are the injection and excluded replicas (no decommission
//!   or disk-utilisation reasons).

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
pub mod join;
pub mod pump;
pub mod session;
pub mod stage;
pub mod state;
pub mod stream;
pub mod system_tables;
pub mod tablet_guard;

pub use config::TopologyConfig;
pub use ids::*;

#[cfg(test)]
mod smoke_tests;
