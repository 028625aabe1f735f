//! The RPC verbs of Raft groups, addressed by group: every request carries its [`GroupId`], and
//! each node serves each verb once (per incarnation), with a handler that dispatches to the
//! group's member on that node. So many groups share a node — as upstream, where every group's
//! messages travel over the same `raft_*` verbs and a registry finds the server by group id.
//!
//! Payloads are type-erased on the wire ([`GroupMsg`], [`GroupReply`]) because groups of
//! different command types share one verb; each group's handler downcasts to its own types (a
//! mismatch is a model bug and panics).
//!
//! Verbs: `raft_append_entries`, `raft_heartbeat`, `raft_request_vote` (core to core),
//! `raft_forward_proposal` (a follower's `propose`), `raft_read_index` (a follower's
//! `read_barrier`). A request for a group the node does not run fails with
//! [`RpcError::NoHandler`], like a verb nobody serves.

use std::any::Any;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use sim::time::Duration;
use sim::{Net, NodeId, RpcError, Sim, Verb};

use super::GroupId;

/// A request to the member of `group` on the destination node.
pub struct GroupMsg {
    /// The addressed group.
    pub group: GroupId,
    /// The group's request (its own type).
    pub body: Box<dyn Any>,
}

impl Debug for GroupMsg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GroupMsg({})", self.group)
    }
}

/// The answer of a group member (its own type).
pub struct GroupReply(pub Box<dyn Any>);

impl Debug for GroupReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupReply")
    }
}

macro_rules! group_verb {
    ($(#[$doc:meta])* $ty:ident, $name:literal) => {
        $(#[$doc])*
        pub struct $ty;
        impl Verb for $ty {
            const NAME: &'static str = $name;
            type Req = GroupMsg;
            type Resp = GroupReply;
        }
    };
}

group_verb!(
    /// AppendEntries between cores.
    AppendEntriesVerb,
    "raft_append_entries"
);
group_verb!(
    /// Heartbeats between cores.
    HeartbeatVerb,
    "raft_heartbeat"
);
group_verb!(
    /// RequestVote (and pre-vote) between cores.
    RequestVoteVerb,
    "raft_request_vote"
);
group_verb!(
    /// A follower forwards a proposal to the leader.
    ForwardProposalVerb,
    "raft_forward_proposal"
);
group_verb!(
    /// A follower asks the leader for a read index.
    ReadIndexVerb,
    "raft_read_index"
);

/// Every verb name of Raft groups (for fault models).
pub const VERBS: &[&str] = &[
    AppendEntriesVerb::NAME,
    HeartbeatVerb::NAME,
    RequestVoteVerb::NAME,
    ForwardProposalVerb::NAME,
    ReadIndexVerb::NAME,
];

type ErasedFuture = LocalBoxFuture<'static, Result<Box<dyn Any>, RpcError>>;
/// A group member's handler of one verb.
pub(super) type GroupHandler = Rc<dyn Fn(NodeId, Box<dyn Any>) -> ErasedFuture>;

/// The groups one node incarnation runs, by (verb, group).
struct NodeRouter {
    incarnation: u32,
    handlers: BTreeMap<(&'static str, GroupId), GroupHandler>,
}

/// Every node's router (run-scoped, via `sim.ext`).
#[derive(Default)]
struct Routers(RefCell<BTreeMap<NodeId, NodeRouter>>);

/// Registers `group`'s handlers (verb name, handler) on `node`. The first group of a node
/// incarnation also registers the node's dispatchers with the transport.
pub(super) fn serve_group(
    sim: &Sim,
    node: NodeId,
    incarnation: u32,
    group: GroupId,
    handlers: Vec<(&'static str, GroupHandler)>,
) {
    let routers = sim.ext::<Routers>();
    let fresh = {
        let mut all = routers.0.borrow_mut();
        let r = all.entry(node).or_insert_with(|| NodeRouter {
            incarnation,
            handlers: BTreeMap::new(),
        });
        let fresh = r.incarnation != incarnation || r.handlers.is_empty();
        if r.incarnation != incarnation {
            r.incarnation = incarnation;
            r.handlers.clear();
        }
        for (verb, h) in handlers {
            assert!(VERBS.contains(&verb), "{verb} is not a verb of Raft groups");
            let old = r.handlers.insert((verb, group), h);
            assert!(
                old.is_none(),
                "{group} started twice on {node} (incarnation {incarnation})"
            );
        }
        fresh
    };
    if fresh {
        let net = sim.net();
        dispatch::<AppendEntriesVerb>(sim, &net, node);
        dispatch::<HeartbeatVerb>(sim, &net, node);
        dispatch::<RequestVoteVerb>(sim, &net, node);
        dispatch::<ForwardProposalVerb>(sim, &net, node);
        dispatch::<ReadIndexVerb>(sim, &net, node);
    }
}

/// Serves `V` on `node`: finds the addressed group's handler.
fn dispatch<V: Verb<Req = GroupMsg, Resp = GroupReply>>(sim: &Sim, net: &Net, node: NodeId) {
    let routers = sim.ext::<Routers>();
    net.serve::<V>(node, move |from, msg| {
        let handler = routers
            .0
            .borrow()
            .get(&node)
            .and_then(|r| r.handlers.get(&(V::NAME, msg.group)).cloned());
        match handler {
            Some(h) => {
                let fut = h(from, msg.body);
                Box::pin(async move { fut.await.map(GroupReply) })
            }
            None => Box::pin(async { Err(RpcError::NoHandler) }),
        }
    });
}

/// Calls `V` on the member of `group` on `to`, with the group's own request and response types.
pub(super) async fn call_group<V, Req, Resp>(
    net: &Net,
    from: NodeId,
    to: NodeId,
    group: GroupId,
    req: Req,
    timeout: Duration,
) -> Result<Resp, RpcError>
where
    V: Verb<Req = GroupMsg, Resp = GroupReply>,
    Req: 'static,
    Resp: 'static,
{
    let msg = GroupMsg {
        group,
        body: Box::new(req),
    };
    let reply = net.call::<V>(from, to, msg, timeout).await?;
    Ok(*reply
        .0
        .downcast::<Resp>()
        .unwrap_or_else(|_| panic!("{} answered {group} with another type", V::NAME)))
}

/// Wraps a typed handler of one group as a [`GroupHandler`].
pub(super) fn handler<Req: 'static, Resp: 'static>(
    verb: &'static str,
    f: impl Fn(NodeId, Req) -> LocalBoxFuture<'static, Resp> + 'static,
) -> GroupHandler {
    Rc::new(move |from, body: Box<dyn Any>| {
        let req = *body
            .downcast::<Req>()
            .unwrap_or_else(|_| panic!("{verb}: request of another group's type"));
        let fut = f(from, req);
        Box::pin(async move { Ok(Box::new(fut.await) as Box<dyn Any>) })
    })
}
