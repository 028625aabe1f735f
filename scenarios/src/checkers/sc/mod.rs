//! Checkers of the `sc.*` scenarios (strongly consistent tables, SPEC §7).
//!
//! - [`lin`]: the pure linearizability search over one key's register history.

pub mod lin;
