//! The node-local API scenarios drive (the REST API of SPEC §3/§4.6): `move_tablet`, enable /
//! disable tablet balancing, exclude a dead node, kill connections (`inject_disconnect`) and
//! the error-injection calls (enable, message, disable, wait for enters).
//!
//! API writes to group0 take a guard like any writer: they are built on the state id they read
//! and retried on a concurrent modification.

use super::events::TopologyEvent;
use super::ids::{NodeId, Replica, TabletId};
use super::state::{ApplyOutcome, Group0Command, TabletUpdate, TopologyChange, TopologyState};
use crate::node::{lookup as services, Cluster, NodeHandle};
use fault_injection::injection::Injections;
use futures::future::select;
use sim::time::{sleep, Duration};
use sim::Sim;
use std::collections::BTreeMap;
use std::rc::Rc;

/// Why an API call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiError {
    /// No live node to serve the call.
    NoLiveNode,
    /// The request is invalid for the current state.
    Invalid(String),
    /// A node operation holds the topology state machine; try again once it is done.
    Busy,
}

async fn guarded_write(
    sim: &Sim,
    cluster: &Cluster,
    origin: &str,
    build: impl Fn(&TopologyState) -> Result<Option<TopologyChange>, ApiError>,
) -> Result<(), ApiError> {
    loop {
        let Some(svc) = cluster.any_live() else {
            sleep(Duration::from_millis(100)).await;
            continue;
        };
        if svc.g0.read_barrier().await.is_err() {
            sleep(Duration::from_millis(100)).await;
            continue;
        }
        let change = svc.g0.with_state(|s| build(s))?;
        let Some(mut change) = change else {
            return Ok(());
        };
        change.origin = origin.to_string();
        match svc.g0.propose(Group0Command::Change(change)).await {
            Ok(index) => {
                if svc
                    .g0
                    .with_state(|s| s.outcome(index) == Some(&ApplyOutcome::Applied))
                {
                    return Ok(());
                }
                sim.mark("api write retried after concurrent modification");
            }
            Err(_) => sleep(Duration::from_millis(100)).await,
        }
    }
}

fn change_on(s: &TopologyState) -> TopologyChange {
    TopologyChange {
        base_state_id: s.state_id,
        term: None,
        updates: vec![],
        fence_version: None,
        set_balancing: None,
        exclude: vec![],
        origin: String::new(),
    }
}

/// `POST /storage_service/tablets/move`: start migrating `tablet` from `src` to `dst` once it
/// has no transition, then wait until the tablet has no transition left.
pub async fn move_tablet(
    cluster: &Cluster,
    tablet: TabletId,
    src: Replica,
    dst: Replica,
) -> Result<(), ApiError> {
    let sim = cluster.sim.clone();
    sim.record(None, TopologyEvent::MigrationRequested { tablet, src, dst });
    tracing::info!(%tablet, %src, %dst, "move_tablet {tablet} {src} -> {dst} requested");
    // Wait until the tablet and the topology are idle, then commit the transition.
    loop {
        loop {
            let idle = cluster.with_state(|s| {
                s.node_transition.is_none()
                    && s.tablets
                        .get(&tablet)
                        .is_some_and(|t| t.transition.is_none())
            }) == Some(true);
            if idle {
                break;
            }
            sleep(Duration::from_millis(20)).await;
        }
        match start_move(&sim, cluster, tablet, src, dst).await {
            Err(ApiError::Busy) => continue,
            r => r?,
        }
        break;
    }
    wait_tablet_idle(cluster, tablet).await;
    Ok(())
}

async fn start_move(
    sim: &Sim,
    cluster: &Cluster,
    tablet: TabletId,
    src: Replica,
    dst: Replica,
) -> Result<(), ApiError> {
    guarded_write(sim, cluster, "move_tablet", |s| {
        if s.node_transition.is_some() {
            return Err(ApiError::Busy);
        }
        let info = s
            .tablets
            .get(&tablet)
            .ok_or_else(|| ApiError::Invalid(format!("no tablet {tablet}")))?;
        if info.transition.is_some() {
            return Err(ApiError::Invalid(format!("{tablet} in transition")));
        }
        if !info.replicas.contains(&src) {
            return Err(ApiError::Invalid(format!(
                "{src} is not a replica of {tablet}"
            )));
        }
        if info.replicas.contains(&dst) {
            return Err(ApiError::Invalid(format!("{dst} is already a replica")));
        }
        let new_replicas = info
            .replicas
            .iter()
            .map(|r| if *r == src { dst } else { *r })
            .collect();
        let mut ch = change_on(s);
        ch.updates.push(TabletUpdate::Start {
            tablet,
            new_replicas,
        });
        Ok(Some(ch))
    })
    .await
}

/// Add a node to the cluster (`servers_add`): boot it; it asks to join and bootstraps through
/// the topology coordinator. Returns its id once group0 lists it as `normal`.
pub async fn add_node(cluster: &Cluster) -> NodeId {
    let node = cluster.add_node();
    tracing::info!(%node, "{node} added: booting, it will ask to join");
    loop {
        let normal = cluster
            .with_state(|s| s.node_states.get(&node) == Some(&super::state::NodeState::Normal))
            == Some(true);
        if normal {
            return node;
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until `tablet` has no transition (as seen by a live node).
pub async fn wait_tablet_idle(cluster: &Cluster, tablet: TabletId) {
    loop {
        let idle = cluster.with_state(|s| {
            s.tablets
                .get(&tablet)
                .is_some_and(|t| t.transition.is_none())
        }) == Some(true);
        if idle {
            return;
        }
        match cluster.any_live() {
            Some(svc) => {
                let _ = select(
                    Box::pin(svc.g0.changed()),
                    Box::pin(sleep(Duration::from_millis(50))),
                )
                .await;
            }
            None => sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Enable or disable tablet balancing.
pub async fn set_balancing(cluster: &Cluster, enabled: bool) -> Result<(), ApiError> {
    guarded_write(&cluster.sim.clone(), cluster, "set_balancing", |s| {
        if s.tablet_balancing_enabled == enabled {
            return Ok(None);
        }
        let mut ch = change_on(s);
        ch.set_balancing = Some(enabled);
        Ok(Some(ch))
    })
    .await
}

/// Exclude a dead node (`ignored_nodes`): barriers skip it and it becomes a rollback reason.
pub async fn exclude_node(cluster: &Cluster, node: NodeId) -> Result<(), ApiError> {
    guarded_write(&cluster.sim.clone(), cluster, "exclude_node", |s| {
        if s.excluded.contains(&node) {
            return Ok(None);
        }
        let mut ch = change_on(s);
        ch.exclude.push(node);
        Ok(Some(ch))
    })
    .await
}

/// `POST /v2/error_injection/disconnect/{peer}` on `node`: kill `node`'s connection to `peer`.
pub fn inject_disconnect(sim: &Sim, node: NodeId, peer: NodeId) {
    sim.net().kill_connection(node, peer);
}

/// Enable an injection on `node`.
pub fn enable_injection(sim: &Sim, node: NodeId, name: &str, one_shot: bool) {
    Injections::of(sim).enable(sim, node, name, one_shot, BTreeMap::new());
}

/// Send one message to an injection on `node`.
pub fn message_injection(sim: &Sim, node: NodeId, name: &str) {
    Injections::of(sim).message(sim, node, name);
}

/// Disable an injection on `node`.
pub fn disable_injection(sim: &Sim, node: NodeId, name: &str) {
    Injections::of(sim).disable(sim, node, name);
}

/// Wait until `node` entered injection `name` at least `n` times.
pub async fn wait_for_injection_enter(sim: &Sim, node: NodeId, name: &str, n: u64) {
    Injections::of(sim).wait_entered(node, name, n).await;
}

/// The services of a live node (re-export for scenarios).
pub fn node(sim: &Sim, n: NodeId) -> Option<Rc<NodeHandle>> {
    services(sim, n)
}
