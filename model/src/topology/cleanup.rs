//! Tablet cleanup (SPEC §1.4 `cleanup`, §1.5 `cleanup_target`, §1.6): `tablet_cleanup` deletes a
//! tablet's data on the leaving replica (stage `cleanup`) or on the pending replica
//! (`cleanup_target`).
//!
//! Promise kept here: data is deleted only on the replica the committed stage names, after the
//! coordinator's barrier in a stage whose selectors no longer route to it; the operation
//! re-validates against fresh group0 state (read barrier first) and joins a running duplicate.

use super::data::Storage;
use super::events::TopologyEvent;
use super::ids::TabletId;
use super::stage::Stage;
use super::tablet_guard;
use crate::node::NodeHandle;
use sim::{RpcError, Verb};
use std::rc::Rc;

/// `tablet_cleanup(dst_id, gid)`.
pub struct TabletCleanup;
impl Verb for TabletCleanup {
    const NAME: &'static str = "tablet_cleanup";
    type Req = TabletId;
    type Resp = u64;
}

/// Register the cleanup verb on a node.
pub fn serve(svc: &Rc<NodeHandle>) {
    let s = svc.clone();
    svc.sim
        .net()
        .serve::<TabletCleanup>(svc.node, move |_from, tablet| {
            let s = s.clone();
            Box::pin(async move {
                let s2 = s.clone();
                s.join_or_run(tablet, "cleanup", move || async move {
                    cleanup_tablet(&s2, tablet).await
                })
                .await
            })
        });
}

async fn cleanup_tablet(svc: &NodeHandle, tablet: TabletId) -> Result<u64, RpcError> {
    svc.g0
        .read_barrier()
        .await
        .map_err(|e| RpcError::Remote(format!("{e:?}")))?;
    let info = svc
        .g0
        .with_state(|s| s.tablets.get(&tablet).cloned())
        .ok_or_else(|| RpcError::Remote("Tablet map not found".into()))?;
    let stage = info.stage();
    let migration = info.transition.as_ref().map_or(0, |t| t.migration);
    let replica = match stage {
        Some(Stage::Cleanup) => info.leaving_replica(),
        Some(Stage::CleanupTarget) => info.pending_replica(),
        _ => None,
    }
    .filter(|r| r.node == svc.node)
    .ok_or_else(|| RpcError::Remote(format!("invalid cleanup in stage {stage:?}")))?;
    let stage = stage.expect("validated");
    svc.sim.record(
        Some(svc.node),
        TopologyEvent::CleanupBegun {
            tablet,
            replica,
            stage,
            migration,
        },
    );
    // Under the tablet metadata guard (SPEC §1.6 step 3): the deletion holds the erm, so a
    // barrier of a later stage of the tablet waits for it.
    let storage = Storage::of(&svc.sim, svc.node);
    crate::view::staging::on_cleanup(svc, replica, tablet);
    let run = async {
        let rows = storage.delete_tablet(replica.shard, tablet);
        storage.sync().await.map(|()| rows)
    };
    let res = tablet_guard::guarded(svc, tablet, run)
        .await
        .unwrap_or_else(|| Err(RpcError::Remote("tablet metadata changed".into())));
    let rows = match res {
        Ok(rows) => rows,
        Err(e) => {
            svc.sim.record(
                Some(svc.node),
                TopologyEvent::CleanupDone {
                    tablet,
                    replica,
                    rows: 0,
                },
            );
            return Err(e);
        }
    };
    svc.sim.record(
        Some(svc.node),
        TopologyEvent::CleanupDone {
            tablet,
            replica,
            rows,
        },
    );
    if stage == Stage::CleanupTarget {
        svc.sim.mark("pending replica cleaned");
    }
    Ok(rows)
}
