//! The `tablet_metadata_guard` of replica-side tablet operations (SPEC §1.6 step 3).
//!
//! The guard holds the node's erm for the whole operation. While *other* tablets change it
//! silently refreshes to the new version, so it never blocks their barriers; when *this*
//! tablet's transition changes (another stage, the transition deleted or replaced) it keeps the
//! old erm — which makes the next barrier's stale-version wait (SPEC §2.4 (a)) wait for the
//! operation — and fires its abort, so the operation stops promptly.
//!
//! Promise kept here: a tablet operation never outlives, unnoticed, the stage it was validated
//! in — a barrier of a later stage of the tablet answers only after it ended.

use super::ids::TabletId;
use super::stage::Stage;
use super::state::TopologyState;
use crate::node::NodeHandle;
use futures::future::{select, Either};
use std::cell::RefCell;
use std::future::Future;

/// What identifies "the same transition in the same stage" for the guard.
fn identity(s: &TopologyState, tablet: TabletId) -> Option<(u64, Stage)> {
    let t = s.tablets.get(&tablet)?.transition.as_ref()?;
    Some((t.migration, t.stage))
}

/// Run `op` under a tablet metadata guard on `tablet`. Returns `None` when the guard went stale
/// first (the tablet's transition changed): `op` is dropped, and the old erm was held until
/// then.
pub async fn guarded<T>(
    svc: &NodeHandle,
    tablet: TabletId,
    op: impl Future<Output = T>,
) -> Option<T> {
    let key = svc.g0.with_state(|s| identity(s, tablet));
    let erm = RefCell::new(svc.erm.acquire());
    let watch = async {
        loop {
            svc.g0.changed().await;
            let (v, k) = svc.g0.with_state(|s| (s.version, identity(s, tablet)));
            if k != key {
                return;
            }
            if v != erm.borrow().version() {
                // Refresh: take the new version first, then release the old one.
                let fresh = svc.erm.acquire();
                *erm.borrow_mut() = fresh;
            }
        }
    };
    let out = match select(Box::pin(watch), Box::pin(op)).await {
        Either::Left(((), _)) => {
            tracing::info!(%tablet, version = erm.borrow().version(), "tablet metadata guard of {tablet} went stale: the operation stops, holding v{} until it has", erm.borrow().version());
            None
        }
        Either::Right((r, _)) => Some(r),
    };
    drop(erm);
    out
}
