//! The `batchlog.*` scenarios (placeholder until this area lands).

use crate::scenario::ScenarioDef;

/// Every `batchlog.*` scenario, in catalog order.
pub fn scenarios() -> Vec<ScenarioDef> {
    vec![]
}
