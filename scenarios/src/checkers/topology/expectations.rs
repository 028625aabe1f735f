//! The scripted stories' own expectations (e.g. "0 rows after TRUNCATE", "the barrier did not
//! complete while a guard was held"), reported by the scenario in `final_state.expect_failed`.

use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use sim::History;

/// The expectations checker.
pub struct Expectations;

impl Checker for Expectations {
    fn name(&self) -> &'static str {
        "expectations"
    }

    fn check(&self, _cfg: &RunConfig, _h: &History, end: &RunEnd) -> Vec<Violation> {
        end.final_state
            .get("expect_failed")
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .map(|m| {
                        Violation::safety(
                            self.name(),
                            m.as_str().unwrap_or("expectation failed").to_string(),
                            None,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}
