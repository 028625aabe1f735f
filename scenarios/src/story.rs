//! The story kit every area's scenarios share: expectations a scripted story states as it
//! goes ("0 rows after TRUNCATE"), waits with a deadline, background steps with a done flag,
//! and the [`RunEnd`] that carries both to the checkers.
//!
//! Two kinds of broken promise come out of a story, and they are kept apart:
//! - an expectation that was false is a **safety** finding, reported in
//!   `final_state.expect_failed` and judged by the `expectations` checker;
//! - a wait that timed out is **liveness**: the run did not get where the story wanted within
//!   its budget; it is reported in [`RunEnd::pending`] with what it waited for (exit 3).

use crate::config::RunConfig;
use crate::scenario::RunEnd;
use sim::time::{sleep, Duration};
use sim::Sim;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;

/// A running story: the world, the resolved config, and what went wrong so far.
pub struct Story {
    /// The simulation this story drives.
    pub sim: Sim,
    /// The run's resolved config.
    pub cfg: Rc<RunConfig>,
    expect_failed: RefCell<Vec<String>>,
    timed_out: RefCell<Vec<String>>,
}

impl Story {
    /// A story with nothing gone wrong yet.
    pub fn new(sim: &Sim, cfg: &Rc<RunConfig>) -> Story {
        Story {
            sim: sim.clone(),
            cfg: cfg.clone(),
            expect_failed: RefCell::new(Vec::new()),
            timed_out: RefCell::new(Vec::new()),
        }
    }

    /// State an expectation; a false one is a safety finding named `what`. Returns `ok`.
    pub fn expect(&self, ok: bool, what: &str) -> bool {
        if !ok {
            self.expect_failed.borrow_mut().push(what.to_string());
        }
        ok
    }

    /// Expectations that were false so far.
    pub fn failed(&self) -> Vec<String> {
        self.expect_failed.borrow().clone()
    }

    /// Wait (polling every 10 ms) until `cond` holds, at most `ms` of virtual time. A timeout
    /// is a liveness failure naming `what`; returns whether `cond` came true.
    pub async fn wait_until(&self, what: &str, ms: u64, mut cond: impl FnMut() -> bool) -> bool {
        let deadline = self.sim.now().0 + ms * 1_000_000;
        while !cond() {
            if self.sim.now().0 >= deadline {
                self.timed_out
                    .borrow_mut()
                    .push(format!("timed out waiting for: {what}"));
                return false;
            }
            sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Run `step` in the background (it outlives node crashes); the returned flag turns true
    /// when it returns.
    pub fn spawn(&self, step: impl Future<Output = ()> + 'static) -> Rc<Cell<bool>> {
        let done = Rc::new(Cell::new(false));
        let d = done.clone();
        self.sim.spawn_supervisor(async move {
            step.await;
            d.set(true);
        });
        done
    }

    /// The run's end: `final_state` (an object) gains `expect_failed`; the story's timed-out
    /// waits join what the converge phase left `pending`.
    pub fn end(&self, mut final_state: serde_json::Value, mut pending: Vec<String>) -> RunEnd {
        if let Some(obj) = final_state.as_object_mut() {
            obj.insert("expect_failed".into(), serde_json::json!(self.failed()));
        }
        pending.extend(self.timed_out.borrow().iter().cloned());
        RunEnd {
            final_state,
            pending,
        }
    }
}
