//! Session scoping (SPEC §1.8, §2.2), from group0's committed tablet rows: a migration's
//! session is set exactly from `write_both_read_old` through `streaming` and deleted on the
//! edge out of `streaming`; only a migration rolled back from `write_both_read_old` (which
//! never streamed) may keep it until `revert_migration` deletes the transition row. And the
//! nodes follow: no node opens a session that group0 never listed. A node operation's
//! topology session (`system.topology.session`) is set exactly in `write_both_read_old`.

use super::{events, safety, Sessions};
use crate::config::RunConfig;
use crate::scenario::{Checker, RunEnd, Violation};
use model::topology::events::TopologyEvent;
use model::topology::stage::Stage;
use model::topology::TabletId;
use sim::History;
use std::collections::BTreeMap;

/// The session scoping checker.
pub struct SessionScoping;

impl Checker for SessionScoping {
    fn name(&self) -> &'static str {
        "session_scoping"
    }

    fn check(&self, _cfg: &RunConfig, h: &History, _end: &RunEnd) -> Vec<Violation> {
        use Stage::*;
        let entries = h.entries();
        let evs = events(&entries);
        let sessions = Sessions::from_events(&evs);
        let mut out = Vec::new();
        // Did the tablet's current migration enter streaming?
        let mut streamed: BTreeMap<(TabletId, u64), bool> = BTreeMap::new();
        for (e, ev) in &evs {
            match ev {
                TopologyEvent::StageCommitted {
                    tablet,
                    migration,
                    from,
                    stage,
                    session,
                    ..
                } => {
                    let s = streamed.entry((*tablet, *migration)).or_default();
                    if *stage == Some(Streaming) {
                        *s = true;
                    }
                    let allowed = match stage {
                        Some(WriteBothReadOld | Streaming) => true,
                        Some(CleanupTarget | RevertMigration) => !*s,
                        _ => false,
                    };
                    if let Some(id) = session {
                        if !allowed {
                            out.push(safety(self.name(), format!(
                                "{tablet}: session {id} still set in {} (from {}): a session lives only from write_both_read_old through streaming",
                                stage.map_or("done".into(), |s| s.to_string()),
                                from.map_or("none".into(), |s| s.to_string())
                            ), e));
                        }
                    } else if *stage == Some(Streaming) || *stage == Some(WriteBothReadOld) {
                        out.push(safety(
                            self.name(),
                            format!("{tablet}: no session set in {}", stage.expect("some")),
                            e,
                        ));
                    }
                }
                TopologyEvent::NodeTransitionCommitted {
                    node,
                    transition_state,
                    session,
                    ..
                } => {
                    // The topology session of a node operation lives exactly in
                    // `write_both_read_old` (SPEC §2.2: set on entering it, deleted on moving on).
                    let in_wbro = transition_state.as_deref() == Some("write_both_read_old");
                    if in_wbro != session.is_some() {
                        out.push(safety(self.name(), format!(
                            "{node}: topology session {} in transition state {}: it is set exactly in write_both_read_old",
                            session.map_or("none".into(), |s| s.to_string()),
                            transition_state.as_deref().unwrap_or("none")
                        ), e));
                    }
                }
                TopologyEvent::SessionOpened { session, shard, .. }
                    if !sessions.listed(session) =>
                {
                    out.push(safety(
                        self.name(),
                        format!(
                            "{} opened session {session} on shard {}, which group0 never listed",
                            e.node.map_or("?".into(), |n| n.to_string()),
                            shard.0
                        ),
                        e,
                    ));
                }
                _ => {}
            }
        }
        out
    }
}
