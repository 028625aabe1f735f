//! Named injection points inside the model, with the semantics of ScyllaDB's error injection
//! (SPEC §4): enable (optionally one-shot, with parameters), disable, enter counts, messages
//! shared between handlers or consumed one per handler, wait-for-message with a deadline whose
//! expiry is a test failure, and abortable sleeps.
//!
//! One registry per run ([`Injections::of`]), keyed by (node, name): the REST API of the
//! original applies every call to all shards of a node, so a node-level registry is faithful.

use crate::sync::{AbortSource, Notify};
use crate::time::Duration;
use crate::{EventKind, NodeId, Sim};
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

/// History events of injection points.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "what", rename_all = "snake_case")]
pub enum InjectionEvent {
    /// Enabled on a node.
    Enabled {
        /// Injection name.
        name: String,
        /// One-shot?
        one_shot: bool,
    },
    /// Disabled (waiters released).
    Disabled {
        /// Injection name.
        name: String,
    },
    /// Code passed through an enabled point.
    Entered {
        /// Injection name.
        name: String,
    },
    /// A message was delivered to the point.
    Message {
        /// Injection name.
        name: String,
    },
    /// A handler waiting at the point went on (message, disable or no-wait).
    Released {
        /// Injection name.
        name: String,
        /// `message`, `disabled` or `aborted`.
        by: &'static str,
    },
}

impl EventKind for InjectionEvent {
    fn kind(&self) -> &'static str {
        match self {
            InjectionEvent::Enabled { .. } => "injection_enabled",
            InjectionEvent::Disabled { .. } => "injection_disabled",
            InjectionEvent::Entered { .. } => "injection_entered",
            InjectionEvent::Message { .. } => "injection_message",
            InjectionEvent::Released { .. } => "injection_released",
        }
    }
}

/// The error an enabled "fail here" point returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectedError(pub String);

impl std::fmt::Display for InjectedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "injected error at {}", self.0)
    }
}

/// Why a wait at an injection point did not end with a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InjectionError {
    /// The abort source fired.
    Aborted,
}

#[derive(Default)]
struct Shared {
    received: Cell<u64>,
    shared_read: Cell<u64>,
    waiters: Cell<u64>,
    disabled: Cell<bool>,
    handler_running: Cell<bool>,
    notify: Notify,
}

struct Point {
    one_shot: bool,
    params: BTreeMap<String, String>,
    shared: Rc<Shared>,
}

/// The injection registry of one run.
#[derive(Default)]
pub struct Injections {
    points: RefCell<BTreeMap<(NodeId, String), Point>>,
    enters: RefCell<BTreeMap<(NodeId, String), u64>>,
    entered: Notify,
}

impl Injections {
    /// The run's registry.
    pub fn of(sim: &Sim) -> Rc<Injections> {
        sim.ext::<Injections>()
    }

    /// Enable `name` on `node`. If already enabled, the existing entry and its parameters stay.
    pub fn enable(
        &self,
        sim: &Sim,
        node: NodeId,
        name: &str,
        one_shot: bool,
        params: BTreeMap<String, String>,
    ) {
        let key = (node, name.to_string());
        if self.points.borrow().contains_key(&key) {
            return;
        }
        self.points.borrow_mut().insert(
            key,
            Point {
                one_shot,
                params,
                shared: Rc::new(Shared::default()),
            },
        );
        tracing::info!(injection = %name, %node, one_shot, "injection point {name} enabled on {node}{}", if one_shot { " (one-shot)" } else { "" });
        sim.record(
            Some(node),
            InjectionEvent::Enabled {
                name: name.to_string(),
                one_shot,
            },
        );
    }

    /// Disable `name` on `node`: every waiter returns successfully, the entry is erased.
    pub fn disable(&self, sim: &Sim, node: NodeId, name: &str) {
        let removed = self.points.borrow_mut().remove(&(node, name.to_string()));
        if let Some(p) = removed {
            p.shared.disabled.set(true);
            p.shared.notify.notify();
            tracing::info!(injection = %name, %node, "injection point {name} disabled on {node}");
            sim.record(
                Some(node),
                InjectionEvent::Disabled {
                    name: name.to_string(),
                },
            );
        }
    }

    /// Is `name` enabled on `node` (and not a one-shot whose handler is running)?
    pub fn is_enabled(&self, node: NodeId, name: &str) -> bool {
        self.points
            .borrow()
            .get(&(node, name.to_string()))
            .is_some_and(|p| !(p.one_shot && p.shared.handler_running.get()))
    }

    /// A parameter of an enabled point, without entering it.
    pub fn parameter(&self, node: NodeId, name: &str, key: &str) -> Option<String> {
        self.points
            .borrow()
            .get(&(node, name.to_string()))
            .and_then(|p| p.params.get(key).cloned())
    }

    /// Deliver one message to `name` on `node` (ignored if not enabled).
    pub fn message(&self, sim: &Sim, node: NodeId, name: &str) {
        let shared = self
            .points
            .borrow()
            .get(&(node, name.to_string()))
            .map(|p| p.shared.clone());
        if let Some(s) = shared {
            s.received.set(s.received.get() + 1);
            s.notify.notify();
            tracing::info!(injection = %name, %node, "message sent to injection point {name} on {node}");
            sim.record(
                Some(node),
                InjectionEvent::Message {
                    name: name.to_string(),
                },
            );
        }
    }

    /// How many times code entered `name` on `node` (over the whole run).
    pub fn enter_count(&self, node: NodeId, name: &str) -> u64 {
        self.enters
            .borrow()
            .get(&(node, name.to_string()))
            .copied()
            .unwrap_or(0)
    }

    /// Handlers currently blocked in `wait_for_message` at `name` on `node`.
    pub fn waiters(&self, node: NodeId, name: &str) -> u64 {
        self.points
            .borrow()
            .get(&(node, name.to_string()))
            .map_or(0, |p| p.shared.waiters.get())
    }

    /// Wait until code has entered `name` on `node` at least `threshold` times.
    pub async fn wait_entered(&self, node: NodeId, name: &str, threshold: u64) {
        crate::sync::wait_until(&self.entered, || self.enter_count(node, name) >= threshold).await;
    }

    fn count_enter(&self, sim: &Sim, node: NodeId, name: &str) {
        *self
            .enters
            .borrow_mut()
            .entry((node, name.to_string()))
            .or_default() += 1;
        tracing::info!(injection = %name, "entered injection point {name}");
        sim.record(
            Some(node),
            InjectionEvent::Entered {
                name: name.to_string(),
            },
        );
        self.entered.notify();
    }

    /// "If injection `name` is on": counts the enter and consumes a one-shot.
    pub fn enter(&self, sim: &Sim, node: NodeId, name: &str) -> bool {
        if !self.is_enabled(node, name) {
            return false;
        }
        self.count_enter(sim, node, name);
        let one_shot = self.points.borrow()[&(node, name.to_string())].one_shot;
        if one_shot {
            self.disable(sim, node, name);
        }
        true
    }

    /// Fail here if `name` is enabled.
    pub fn fail(&self, sim: &Sim, node: NodeId, name: &str) -> Result<(), InjectedError> {
        if self.enter(sim, node, name) {
            Err(InjectedError(name.to_string()))
        } else {
            Ok(())
        }
    }

    /// Sleep `dur` here if `name` is enabled; wakes early with `Err` when `abort` fires.
    pub async fn sleep(
        &self,
        sim: &Sim,
        node: NodeId,
        name: &str,
        dur: Duration,
        abort: Option<&AbortSource>,
    ) -> Result<(), InjectionError> {
        if !self.enter(sim, node, name) {
            return Ok(());
        }
        match abort {
            None => {
                crate::time::sleep(dur).await;
                Ok(())
            }
            Some(a) => {
                let res = crate::time::timeout(dur, a.aborted()).await;
                if res.is_ok() {
                    Err(InjectionError::Aborted)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Fire a handler-based point ("wait for an event"): `Some(handler)` if `name` is enabled.
    /// A one-shot stays registered while its handler runs (other passes are no-ops) and is
    /// disabled when the handler is dropped.
    pub fn handler(self: &Rc<Self>, sim: &Sim, node: NodeId, name: &str) -> Option<Handler> {
        if !self.is_enabled(node, name) {
            return None;
        }
        self.count_enter(sim, node, name);
        let (shared, one_shot, sharing) = {
            let points = self.points.borrow();
            let p = &points[&(node, name.to_string())];
            let sharing = p.params.get("share_messages").is_none_or(|v| v != "false");
            (p.shared.clone(), p.one_shot, sharing)
        };
        if one_shot {
            shared.handler_running.set(true);
        }
        Some(Handler {
            registry: self.clone(),
            sim: sim.clone(),
            node,
            name: name.to_string(),
            shared,
            one_shot,
            sharing,
            read: Cell::new(0),
        })
    }
}

/// A firing of a handler-based injection point.
pub struct Handler {
    registry: Rc<Injections>,
    sim: Sim,
    node: NodeId,
    name: String,
    shared: Rc<Shared>,
    one_shot: bool,
    sharing: bool,
    read: Cell<u64>,
}

impl Handler {
    /// Consume a message if one is available (never blocks). A disabled point counts as one.
    pub fn poll_for_message(&self) -> bool {
        if self.sim.mutant("harness-injection-no-wait") {
            self.released("message");
            return true;
        }
        if self.shared.disabled.get() {
            self.released("disabled");
            return true;
        }
        let received = self.shared.received.get();
        let counter = if self.sharing {
            &self.read
        } else {
            &self.shared.shared_read
        };
        if counter.get() < received {
            counter.set(counter.get() + 1);
            self.released("message");
            true
        } else {
            false
        }
    }

    fn released(&self, by: &'static str) {
        tracing::info!(injection = %self.name, "released from injection point {} by {by}", self.name);
        self.sim.record(
            Some(self.node),
            InjectionEvent::Released {
                name: self.name.clone(),
                by,
            },
        );
    }

    /// A parameter of this point.
    pub fn param(&self, key: &str) -> Option<String> {
        self.registry.parameter(self.node, &self.name, key)
    }

    /// Wait for a message (or for the point to be disabled). An `abort` firing returns
    /// `Err(Aborted)`. Passing `timeout` is a test failure (the original raises an internal
    /// error that aborts the node): this panics.
    pub async fn wait_for_message(
        &self,
        timeout: Duration,
        abort: Option<&AbortSource>,
    ) -> Result<(), InjectionError> {
        self.shared.waiters.set(self.shared.waiters.get() + 1);
        let deadline = self.sim.now().0 + timeout.as_nanos() as u64;
        let result = loop {
            let notified = self.shared.notify.notified();
            if self.poll_for_message() {
                break Ok(());
            }
            if abort.is_some_and(|a| a.is_aborted()) {
                self.released("aborted");
                break Err(InjectionError::Aborted);
            }
            let now = self.sim.now().0;
            assert!(
                now < deadline,
                "injection {} on {}: wait_for_message deadline passed",
                self.name,
                self.node
            );
            let left = Duration::from_nanos(deadline - now);
            match abort {
                Some(a) => {
                    let _ = crate::time::timeout(
                        left,
                        futures::future::select(Box::pin(notified), Box::pin(a.aborted())),
                    )
                    .await;
                }
                None => {
                    let _ = crate::time::timeout(left, notified).await;
                }
            }
        };
        self.shared.waiters.set(self.shared.waiters.get() - 1);
        result
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        if self.one_shot {
            self.shared.handler_running.set(false);
            self.registry.disable(&self.sim, self.node, &self.name);
        }
    }
}
