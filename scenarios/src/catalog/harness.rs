//! The `harness.*` scenarios (placeholder until this area lands).

use crate::scenario::ScenarioDef;

/// Every `harness.*` scenario, in catalog order.
pub fn scenarios() -> Vec<ScenarioDef> {
    vec![]
}
