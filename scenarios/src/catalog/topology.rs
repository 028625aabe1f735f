//! The `topology.*` scenarios (placeholder until this area lands).

use crate::scenario::ScenarioDef;

/// Every `topology.*` scenario, in catalog order.
pub fn scenarios() -> Vec<ScenarioDef> {
    vec![]
}
