//! What scenarios drive and read: CREATE VIEW / DROP VIEW as group0 schema changes, what is
//! still pending, and the final state the end-to-end check reads (base rows and view rows of
//! every view tablet, per paired replica).

use super::data::{view_rows, ViewUpdateQueues};
use super::staging::StagingLists;
use super::state::{ViewChange, ViewOp};
use crate::node::Cluster;
use crate::schema::TableId;
use crate::topology::data::Storage;
use crate::topology::group0::current_leader;
use crate::topology::ids::{Key, NodeId, Value};
use crate::topology::state::{ApplyOutcome, Group0Command, RejectReason};
use sim::time::{sleep, timeout, Duration};
use std::collections::BTreeMap;

async fn schema_change(c: &Cluster, op: ViewOp, origin: &str) -> Result<(), String> {
    // An attempt whose outcome is unknown (the propose timed out, or its node crashed or lost
    // leadership before the entry's fate was seen) may still commit. A client that retries a
    // CREATE VIEW after one is then told the view exists, as a CQL client that re-sends the
    // statement after a timeout is; like a client that checks the schema before giving up, this
    // one counts that as done when the state is exactly what its own statement would have made.
    let mut unknown_attempt = false;
    for _ in 0..200 {
        let node = current_leader(&c.sim).unwrap_or(NodeId(1));
        let Some(h) = c.services(node).or_else(|| c.any_live()) else {
            sleep(Duration::from_millis(100)).await;
            continue;
        };
        let _ = timeout(Duration::from_secs(2), h.g0.read_barrier()).await;
        let sid = h.g0.with_state(|s| s.state_id);
        let cmd = Group0Command::View(ViewChange {
            base_state_id: sid,
            term: None,
            ops: vec![op.clone()],
            origin: origin.into(),
        });
        match timeout(Duration::from_secs(5), h.g0.propose(cmd)).await {
            Ok(Ok(index)) => match h.g0.with_state(|s| s.outcome(index).cloned()) {
                Some(ApplyOutcome::Applied) => return Ok(()),
                Some(ApplyOutcome::Rejected(RejectReason::Invalid(e))) => {
                    let done = h.g0.with_state(|s| already_done(&op, &s.views));
                    return if unknown_attempt && done {
                        Ok(())
                    } else {
                        Err(e)
                    };
                }
                Some(ApplyOutcome::Rejected(_)) => {}
                None => unknown_attempt = true,
            },
            _ => unknown_attempt = true,
        }
        sleep(Duration::from_millis(50)).await;
    }
    Err(format!("{origin}: group0 unavailable"))
}

/// Does `views` hold what `op` would have made (a retried statement's earlier attempt applied)?
fn already_done(op: &ViewOp, views: &super::state::ViewBuildingState) -> bool {
    match op {
        ViewOp::CreateView { view, base, name } => views
            .views
            .get(view)
            .is_some_and(|v| v.base == *base && v.name == *name),
        ViewOp::DropView { view } => !views.views.contains_key(view),
        _ => false,
    }
}

/// CREATE MATERIALIZED VIEW `name` (table id `view`) over `base`: one `build_range` task per
/// base tablet replica.
pub async fn create_view(
    c: &Cluster,
    view: TableId,
    base: TableId,
    name: &str,
) -> Result<(), String> {
    schema_change(
        c,
        ViewOp::CreateView {
            view,
            base,
            name: name.into(),
        },
        "create view",
    )
    .await
}

/// DROP MATERIALIZED VIEW: its tasks and statuses go.
pub async fn drop_view(c: &Cluster, view: TableId) -> Result<(), String> {
    schema_change(c, ViewOp::DropView { view }, "drop view").await
}

/// What view building still has to do, by name (empty: every view built and delivered).
pub fn pending(c: &Cluster) -> Vec<String> {
    let mut out = Vec::new();
    let Some(st) = c.state() else {
        return vec!["no live node".into()];
    };
    let nodes: Vec<NodeId> = st
        .nodes
        .keys()
        .copied()
        .filter(|n| !st.excluded.contains(n))
        .collect();
    for v in st.views.views.values() {
        if !st.views.built_on(v.id, &nodes) {
            out.push(format!("view {} ({}) not built", v.name, v.id));
        }
    }
    if !st.views.tasks.is_empty() {
        out.push(format!(
            "{} view building task(s) left",
            st.views.tasks.len()
        ));
    }
    let q = c.sim.ext::<ViewUpdateQueues>().pending();
    if q > 0 {
        out.push(format!("{q} view update(s) not delivered"));
    }
    let staged = c.sim.ext::<StagingLists>().total();
    if staged > 0 {
        out.push(format!("{staged} staged row(s) not processed"));
    }
    out
}

fn rows_json(rows: &BTreeMap<Key, Value>) -> serde_json::Value {
    serde_json::Value::Object(
        rows.iter()
            .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
            .collect(),
    )
}

/// The final state of every live view: per tablet and replica index, the base replica's live
/// rows and the paired view replica's rows; plus the statuses.
pub fn final_state(c: &Cluster) -> serde_json::Value {
    let Some(st) = c.state() else {
        return serde_json::json!({ "views": [] });
    };
    let mut views = Vec::new();
    for v in st.views.views.values() {
        let mut tablets = Vec::new();
        for (t, info) in st.tablets_of(v.base) {
            let mut pairs = Vec::new();
            for (j, base_r) in info.replicas.iter().enumerate() {
                let base_rows: BTreeMap<Key, Value> = Storage::of(&c.sim, base_r.node)
                    .scan(base_r.shard, *t)
                    .into_iter()
                    .filter_map(|(k, cell)| cell.value.map(|val| (k, val)))
                    .collect();
                let view_r = v.placement[t.index as usize].get(j).copied();
                let vrows = view_r
                    .map(|r| view_rows(&c.sim, r, v.id, t.index))
                    .unwrap_or_default();
                pairs.push(serde_json::json!({
                    "base_replica": base_r.to_string(),
                    "view_replica": view_r.map(|r| r.to_string()),
                    "base_rows": rows_json(&base_rows),
                    "view_rows": rows_json(&vrows),
                }));
            }
            tablets.push(serde_json::json!({
                "tablet": t.to_string(),
                "in_transition": info.transition.is_some(),
                "pairs": pairs,
            }));
        }
        let statuses: BTreeMap<String, String> = st
            .views
            .statuses
            .get(&v.id)
            .map(|m| {
                m.iter()
                    .map(|(n, s)| (n.to_string(), format!("{s:?}")))
                    .collect()
            })
            .unwrap_or_default();
        views.push(serde_json::json!({
            "view": v.id.to_string(),
            "name": v.name,
            "base": v.base.to_string(),
            "statuses": statuses,
            "tablets": tablets,
        }));
    }
    serde_json::json!({
        "views": views,
        "tasks_left": st.views.tasks.len(),
        "view_updates_pending": c.sim.ext::<ViewUpdateQueues>().pending(),
    })
}
