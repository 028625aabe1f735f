//! Topology sessions and the topology guard (SPEC §2.1–§2.3).
//!
//! A node-local registry mirrors the sessions that group0 lists as open; a `topology_guard`
//! holds a session's gate so that draining waits for it; `check()` fails once the session is
//! closing. Promises kept here (SPEC §2.6 supporting invariants):
//! - a session is erased from the registry only after it is closed (no live guard);
//! - a guard cannot be taken on a session that is not in the registry, or that is closing;
//! - `create_session` never reopens a closing session, and a drained id is never re-added by
//!   the mirror because group0 never lists a removed id again;
//! - the default session is never closed;
//! - draining waits only for sessions that are already closing, never for open ones.
//!
//! As in the real system there is one registry per shard (see `crate::node::Shard`); the
//! group0 apply runs the same mirror step on every shard's registry in one atomic step, a
//! guard is taken on the shard of the replica it protects, and a barrier drains every shard.
//!
//! [`SessionRegistry`] is the pure core; [`SessionManager`] is the shared, awaitable shell with
//! RAII [`TopologyGuard`]s.

use super::ids::SessionId;
use serde::Serialize;
use sim::sync::{Notified, Notify};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::rc::Rc;

/// One-directional session states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SessionState {
    /// `enter()` succeeds.
    Open,
    /// `start_closing()` was called: abort source fired, gate closing, `enter()` fails.
    Closing,
    /// Every guard released; may now be erased.
    Closed,
}

/// A refused guard operation. A value, never a panic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SessionError {
    /// "Session not found": not yet created, or already drained.
    NotFound(SessionId),
    /// The session is closing (or closed): the gate refuses holders, `check()` throws.
    Closing(SessionId),
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionError::NotFound(id) => write!(f, "Session not found: {id}"),
            SessionError::Closing(id) => write!(f, "abort_requested: session {id} is closing"),
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    state: SessionState,
    guards: u32,
}

/// What one mirror step did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MirrorEffects {
    /// Sessions that started closing in this step.
    pub closing: Vec<SessionId>,
    /// Sessions created in this step.
    pub created: Vec<SessionId>,
}

/// The pure session registry of one node (`session_manager` without the awaiting).
#[derive(Clone, Debug)]
pub struct SessionRegistry {
    sessions: BTreeMap<SessionId, Entry>,
    /// The closing list, in the order sessions started closing.
    closing: Vec<SessionId>,
}

impl Default for SessionRegistry {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionRegistry {
    /// A registry holding only the default session.
    pub fn new() -> Self {
        let mut sessions = BTreeMap::new();
        sessions.insert(
            SessionId::DEFAULT,
            Entry {
                state: SessionState::Open,
                guards: 0,
            },
        );
        Self {
            sessions,
            closing: Vec::new(),
        }
    }

    /// `create_session(id)`: idempotent; never reopens a closing or closed session.
    /// Returns whether the session was created.
    pub fn create_session(&mut self, id: SessionId) -> bool {
        if self.sessions.contains_key(&id) {
            return false;
        }
        self.sessions.insert(
            id,
            Entry {
                state: SessionState::Open,
                guards: 0,
            },
        );
        true
    }

    /// `enter_session(id)`: take a guard on the session's gate.
    pub fn enter(&mut self, id: SessionId) -> Result<(), SessionError> {
        let e = self
            .sessions
            .get_mut(&id)
            .ok_or(SessionError::NotFound(id))?;
        if e.state != SessionState::Open {
            return Err(SessionError::Closing(id));
        }
        e.guards += 1;
        Ok(())
    }

    /// Release a guard. The last guard of a closing session closes it.
    pub fn leave(&mut self, id: SessionId) {
        let e = self
            .sessions
            .get_mut(&id)
            .expect("a guard cannot exist for a session that is not in the registry");
        assert!(e.guards > 0, "guard count underflow on {id}");
        e.guards -= 1;
        if e.guards == 0 && e.state == SessionState::Closing {
            e.state = SessionState::Closed;
        }
    }

    /// `guard.check()`: fails once the session is closing.
    pub fn check(&self, id: SessionId) -> Result<(), SessionError> {
        match self.sessions.get(&id) {
            None => Err(SessionError::NotFound(id)),
            Some(e) if e.state == SessionState::Open => Ok(()),
            Some(_) => Err(SessionError::Closing(id)),
        }
    }

    /// The state of a registered session.
    pub fn state(&self, id: SessionId) -> Option<SessionState> {
        self.sessions.get(&id).map(|e| e.state)
    }

    /// Live guards of a registered session.
    pub fn guards(&self, id: SessionId) -> u32 {
        self.sessions.get(&id).map_or(0, |e| e.guards)
    }

    /// `initiate_close_of_sessions_except(keep)`: start closing every open non-default session
    /// not in `keep`; returns the newly closing ones.
    pub fn initiate_close_except(&mut self, keep: &BTreeSet<SessionId>) -> Vec<SessionId> {
        let mut newly = Vec::new();
        for (id, e) in self.sessions.iter_mut() {
            if id.is_default() || keep.contains(id) || e.state != SessionState::Open {
                continue;
            }
            e.state = if e.guards == 0 {
                SessionState::Closed
            } else {
                SessionState::Closing
            };
            newly.push(*id);
        }
        self.closing.extend(newly.iter().copied());
        assert_eq!(
            self.state(SessionId::DEFAULT),
            Some(SessionState::Open),
            "the default session is never closed"
        );
        newly
    }

    /// The mirror step run on every token-metadata apply (SPEC §2.2): close every non-default
    /// session not in `open`, then create every session of `open` that does not exist yet.
    pub fn mirror(&mut self, open: &BTreeSet<SessionId>) -> MirrorEffects {
        let closing = self.initiate_close_except(open);
        let created = open
            .iter()
            .copied()
            .filter(|id| !id.is_default())
            .filter(|id| self.create_session(*id))
            .collect();
        MirrorEffects { closing, created }
    }

    /// The closing list (sessions that started closing and were not erased yet).
    pub fn closing_list(&self) -> Vec<SessionId> {
        self.closing.clone()
    }

    /// Erase a closed session from the registry and the closing list.
    pub fn erase(&mut self, id: SessionId) {
        let e = self.sessions.get(&id).expect("erase of an unknown session");
        assert_eq!(
            e.state,
            SessionState::Closed,
            "a session is erased only after it is closed"
        );
        assert_eq!(e.guards, 0);
        assert!(!id.is_default());
        self.sessions.remove(&id);
        self.closing.retain(|c| *c != id);
    }

    /// Non-default sessions currently open.
    pub fn open_sessions(&self) -> Vec<SessionId> {
        self.sessions
            .iter()
            .filter(|(id, e)| !id.is_default() && e.state == SessionState::Open)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Non-default sessions not yet erased whose gate still has live guards while closing.
    pub fn closing_with_guards(&self) -> Vec<SessionId> {
        self.sessions
            .iter()
            .filter(|(_, e)| e.state == SessionState::Closing)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Every non-default session in the registry, whatever its state.
    pub fn registered(&self) -> Vec<SessionId> {
        self.sessions
            .keys()
            .copied()
            .filter(|id| !id.is_default())
            .collect()
    }
}

struct ManagerInner {
    reg: RefCell<SessionRegistry>,
    changed: Notify,
    drain_busy: Cell<bool>,
    /// `barrier-skips-drain`-style mutants switch behaviour in the barrier, not here.
    _private: (),
}

/// The node's `session_manager`: the registry plus awaiting (drain) and RAII guards.
/// Cheap to clone; clones share the registry.
#[derive(Clone)]
pub struct SessionManager(Rc<ManagerInner>);

impl Default for SessionManager {
    fn default() -> Self {
        Self::new()
    }
}

impl SessionManager {
    /// A manager holding only the default session.
    pub fn new() -> Self {
        SessionManager(Rc::new(ManagerInner {
            reg: RefCell::new(SessionRegistry::new()),
            changed: Notify::new(),
            drain_busy: Cell::new(false),
            _private: (),
        }))
    }

    /// Read the registry.
    pub fn with<R>(&self, f: impl FnOnce(&SessionRegistry) -> R) -> R {
        f(&self.0.reg.borrow())
    }

    /// Run the mirror step (called from the group0 apply).
    pub fn mirror(&self, open: &BTreeSet<SessionId>) -> MirrorEffects {
        let fx = self.0.reg.borrow_mut().mirror(open);
        self.0.changed.notify();
        fx
    }

    /// Materialise a guard from a frozen guard (`topology_guard(frozen)`).
    pub fn enter(&self, frozen: FrozenTopologyGuard) -> Result<TopologyGuard, SessionError> {
        if let Err(e) = self.0.reg.borrow_mut().enter(frozen.0) {
            tracing::debug!(session = %frozen.0, "topology guard refused: {e}");
            return Err(e);
        }
        tracing::debug!(session = %frozen.0, "topology guard taken on session {}", frozen.0);
        Ok(TopologyGuard {
            mgr: self.clone(),
            id: frozen.0,
        })
    }

    /// `drain_closing_sessions()`: under a one-unit semaphore, wait until every session on the
    /// closing list (as of the call) is closed, then erase it. Returns whether it had to wait
    /// for a live guard.
    pub async fn drain_closing_sessions(&self) -> bool {
        while self.0.drain_busy.get() {
            self.0.changed.notified().await;
        }
        self.0.drain_busy.set(true);
        let mut waited = false;
        let list = self.0.reg.borrow().closing_list();
        for id in list {
            loop {
                let notified = self.0.changed.notified();
                let st = self.0.reg.borrow().state(id);
                match st {
                    Some(SessionState::Closed) => {
                        self.0.reg.borrow_mut().erase(id);
                        break;
                    }
                    None => break, // erased by a concurrent drain cannot happen (semaphore); defensive
                    Some(SessionState::Open) => unreachable!("a closing session never reopens"),
                    Some(SessionState::Closing) => {
                        if !waited {
                            tracing::debug!(session = %id, "drain waits for session {id}: a guard is still live");
                        }
                        waited = true;
                        notified.await;
                    }
                }
            }
        }
        self.0.drain_busy.set(false);
        self.0.changed.notify();
        waited
    }

    /// Resolves when something in the registry changed.
    pub fn changed(&self) -> Notified {
        self.0.changed.notified()
    }
}

/// `frozen_topology_guard`: just a session id, the permit that travels in RPCs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct FrozenTopologyGuard(pub SessionId);

/// `topology_guard`: holds the session's gate while alive; `check()` fails once closing.
pub struct TopologyGuard {
    mgr: SessionManager,
    id: SessionId,
}

impl TopologyGuard {
    /// The session this guard holds.
    pub fn session(&self) -> SessionId {
        self.id
    }

    /// `check()`: `Err` once the session is closing.
    pub fn check(&self) -> Result<(), SessionError> {
        self.mgr.0.reg.borrow().check(self.id)
    }

    /// The session's abort source: resolves once the session is closing.
    pub async fn aborted(&self) {
        loop {
            let n = self.mgr.changed();
            if self.check().is_err() {
                return;
            }
            n.await;
        }
    }
}

impl Drop for TopologyGuard {
    fn drop(&mut self) {
        tracing::debug!(session = %self.id, "topology guard on session {} released", self.id);
        self.mgr.0.reg.borrow_mut().leave(self.id);
        self.mgr.0.changed.notify();
    }
}

impl fmt::Debug for TopologyGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopologyGuard({})", self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(ids: &[u64]) -> BTreeSet<SessionId> {
        ids.iter().map(|i| SessionId(*i)).collect()
    }

    #[test]
    fn open_closing_closed() {
        let mut r = SessionRegistry::new();
        assert!(r.create_session(SessionId(1)));
        assert!(!r.create_session(SessionId(1)), "idempotent");
        r.enter(SessionId(1)).unwrap();
        assert_eq!(r.initiate_close_except(&set(&[])), vec![SessionId(1)]);
        assert_eq!(r.state(SessionId(1)), Some(SessionState::Closing));
        assert_eq!(
            r.check(SessionId(1)),
            Err(SessionError::Closing(SessionId(1)))
        );
        assert_eq!(
            r.enter(SessionId(1)),
            Err(SessionError::Closing(SessionId(1)))
        );
        assert!(
            !r.create_session(SessionId(1)),
            "never reopens a closing session"
        );
        r.leave(SessionId(1));
        assert_eq!(r.state(SessionId(1)), Some(SessionState::Closed));
        r.erase(SessionId(1));
        assert_eq!(
            r.enter(SessionId(1)),
            Err(SessionError::NotFound(SessionId(1)))
        );
    }

    #[test]
    fn enter_unknown_fails() {
        let mut r = SessionRegistry::new();
        assert_eq!(
            r.enter(SessionId(9)),
            Err(SessionError::NotFound(SessionId(9)))
        );
    }

    #[test]
    fn default_session_never_closed() {
        let mut r = SessionRegistry::new();
        r.enter(SessionId::DEFAULT).unwrap();
        r.mirror(&set(&[]));
        assert_eq!(r.check(SessionId::DEFAULT), Ok(()));
        assert!(r.closing_list().is_empty());
    }

    #[test]
    fn mirror_closes_then_creates() {
        let mut r = SessionRegistry::new();
        let fx = r.mirror(&set(&[1, 2]));
        assert_eq!(fx.created, vec![SessionId(1), SessionId(2)]);
        r.enter(SessionId(2)).unwrap();
        let fx = r.mirror(&set(&[1, 3]));
        assert_eq!(fx.closing, vec![SessionId(2)]);
        assert_eq!(fx.created, vec![SessionId(3)]);
        assert_eq!(r.open_sessions(), vec![SessionId(1), SessionId(3)]);
        assert_eq!(r.closing_with_guards(), vec![SessionId(2)]);
    }

    #[test]
    #[should_panic(expected = "erased only after it is closed")]
    fn erase_requires_closed() {
        let mut r = SessionRegistry::new();
        r.create_session(SessionId(1));
        r.enter(SessionId(1)).unwrap();
        r.initiate_close_except(&set(&[]));
        r.erase(SessionId(1));
    }

    #[test]
    fn manager_guard_raii_and_drain() {
        let m = SessionManager::new();
        m.mirror(&set(&[1, 2]));
        let g1 = m.enter(FrozenTopologyGuard(SessionId(1))).unwrap();
        let _g2 = m.enter(FrozenTopologyGuard(SessionId(2))).unwrap();
        m.mirror(&set(&[2]));
        assert!(g1.check().is_err());
        // Drain waits only for closing sessions: session 2 (open, guarded) does not block it.
        let mut drain = Box::pin(m.drain_closing_sessions());
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(drain.as_mut().poll(&mut cx).is_pending(), "waits for g1");
        drop(g1);
        match drain.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(waited) => assert!(waited),
            std::task::Poll::Pending => panic!("drain must finish once g1 is gone"),
        }
        m.with(|r| {
            assert_eq!(r.registered(), vec![SessionId(2)]);
            assert_eq!(r.state(SessionId(1)), None);
        });
    }

    use std::future::Future;
}
