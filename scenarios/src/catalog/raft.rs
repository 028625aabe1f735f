//! The `raft.*` scenarios (placeholder until this area lands).

use crate::scenario::ScenarioDef;

/// Every `raft.*` scenario, in catalog order.
pub fn scenarios() -> Vec<ScenarioDef> {
    vec![]
}
