//! Checkers of the `sc.*` scenarios (strongly consistent tables, SPEC §7).
//!
//! - [`lin`]: the pure linearizability search over one key's register history;
//! - [`linearizable`]: every key of the table is linearizable (`sc_linearizable`);
//! - [`persistence`]: group state never goes back across incarnations, one vote per term
//!   (`sc_persistence`);
//! - [`placement`]: metadata on its server's shard, one shard per write, no replica beyond the
//!   shard count at boot (`sc_placement`).

pub mod lin;
pub mod linearizable;
pub mod persistence;
pub mod placement;

pub use linearizable::Linearizable;
pub use persistence::Persistence;
pub use placement::Placement;
