//! The scenario catalog: one file per area, one registry line per area here.

pub mod batchlog;
pub mod batchlog_compare;
pub mod cluster;
pub mod harness;
pub mod raft;
pub mod sc;
pub mod topology;
pub mod view;

use crate::scenario::ScenarioDef;

/// Every scenario, in catalog order.
pub fn all() -> Vec<ScenarioDef> {
    let mut v = harness::scenarios();
    v.extend(raft::scenarios());
    v.extend(topology::scenarios());
    v.extend(batchlog::scenarios());
    v.extend(cluster::scenarios());
    v.extend(sc::scenarios());
    v.extend(view::scenarios());
    v
}
