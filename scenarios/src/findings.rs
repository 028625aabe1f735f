//! The findings registry: hazards that the faithful model reproduces from upstream ScyllaDB, as
//! opposed to model bugs or wrong checkers (DESIGN "Findings"). `FINDINGS.md` is the prose record
//! with measured rates; this file is what the tools use.
//!
//! Each finding names the upstream code it comes from, a deterministic scripted scenario that
//! shows its worst outcome, a committed repro bundle, and a candidate fix as `--set` overrides
//! under which that scenario passes. A failing run *matches* a finding when
//! - its scenario is one of the finding's scenarios,
//! - the run does not have the finding's fix switched on and runs no mutant (a mutant's failure
//!   is the mutant's, not the finding's),
//! - at least one violation matches the finding's *signature* (checker + message pattern), and
//! - every violation matches the signature or one of the finding's *consequences*, and
//! - if the finding names faults it needs (`needs_fault`), the run's fault timeline has one of
//!   them (F3 is a hazard of clocks that disagree, F4 of a write held in flight: without a
//!   clock skew, or without a fault that holds a message, the same message would be a model
//!   bug, and stays unknown).
//!
//! Anything else stays an unknown failure. Patterns are globs over the violation message: `*`
//! matches any run of characters, everything else matches itself.

use crate::config::RunConfig;
use crate::runner::RunReport;
use crate::scenario::Violation;
use serde::Serialize;

/// A checker and a glob over its violation message.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Pattern {
    /// Checker name.
    pub checker: &'static str,
    /// Glob over the message (`*` = any characters).
    pub message: &'static str,
}

impl Pattern {
    /// Does `v` match?
    pub fn matches(&self, v: &Violation) -> bool {
        v.checker == self.checker && glob(self.message, &v.message)
    }
}

/// A registered finding.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Finding {
    /// Id, `F1`, `F2`, …
    pub id: &'static str,
    /// One line: what happens.
    pub title: &'static str,
    /// The upstream code it comes from (file, function, what it does).
    pub upstream: &'static str,
    /// The scripted scenario that shows the worst outcome.
    pub scenario: &'static str,
    /// Its committed repro bundle (relative to the repository root).
    pub bundle: &'static str,
    /// The candidate fix: `--set` overrides under which the scenario passes.
    pub fix: &'static [(&'static str, &'static str)],
    /// Scenario id globs where runs may show it.
    pub scenarios: &'static [&'static str],
    /// At least one violation must match one of these.
    pub signature: &'static [Pattern],
    /// Other violations the finding explains (its consequences).
    pub consequences: &'static [Pattern],
    /// Globs one entry of the run's fault timeline must match one of (empty: no fault needed).
    pub needs_fault: &'static [&'static str],
}

/// What F1 and F3 explain besides their signature: the same store shadowed elsewhere, and what
/// follows from a shadowed store (never replayed, lost, half-applied).
const SHADOWED_STORE_CONSEQUENCES: &[Pattern] = &[
    Pattern {
        checker: "batchlog_range_tombstone_safety",
        message: "*",
    },
    Pattern {
        checker: "batchlog_drained",
        message:
            "batch * left the batchlog of * without being replayed or deleted by its coordinator*",
    },
    Pattern {
        checker: "batchlog_no_lost_batch",
        message: "batch * was logged but is lost*",
    },
    Pattern {
        checker: "batchlog_atomicity",
        message: "*",
    },
];

/// Every registered finding.
pub const ALL: &[Finding] = &[Finding {
    id: "F1",
    title: "a batchlog store still in flight while its shard is scanned, with written_at below the shard's min_too_fresh, is shadowed by the pass's cleanup range tombstone; with its coordinator gone, the batch is lost",
    upstream: "db/batchlog_manager.cc, replay_all_failed_batches_v2: the cleanup range tombstone of a batchlog shard with need_cleanup ends before min_too_fresh (the smallest too-fresh written_at the scan saw) and takes a fresh timestamp; an endpoint applies an incoming batchlog row without looking at earlier tombstones",
    scenario: "batchlog.finding_f1_inflight_store_shadowed",
    bundle: "findings/F1.json",
    fix: &[("batchlog.cleanup_end", "replay_timeout")],
    // Every scenario that runs the batchlog: its own area, and the cross-protocol scenario
    // (`cluster.batches_during_migration` seeds 28 and 252 show it and pass under the fix).
    scenarios: &["batchlog.*", "cluster.*"],
    signature: &[
        Pattern {
            checker: "batchlog_range_tombstone_safety",
            message: "range tombstone Before(*) * covers live initial entry * not replayed in that pass",
        },
        Pattern {
            checker: "batchlog_range_tombstone_safety",
            message: "store of initial entry * landed on * after range tombstone Before(*) * that shadows it",
        },
    ],
    consequences: SHADOWED_STORE_CONSEQUENCES,
    needs_fault: &[],
},
Finding {
    id: "F2",
    title: "an acknowledged base write (or delete) loses its view update when the base replica's erm is one stage away from the write's coordinator across write_both_read_new / use_new: the replica finds itself outside its own write-replica set and drops the update, so the built view misses the row",
    upstream: "db/view/view.cc, view_update_generator::mutate_MV and get_view_natural_endpoint: the pairing uses the replica's local base erm, get_replicas() = get_replicas_for_write() (previous while writes go to previous/both, next from use_new); a replica not in that set logs 'Could not find ... in base_endpoints' and returns no endpoint (the FIXME there: 'a view update would be lost'; cf_stats.total_view_updates_on_wrong_node)",
    scenario: "view.finding_f2_stale_pending_replica",
    bundle: "findings/F2.json",
    fix: &[("topology.view_pairing_any_write_replica", "true")],
    scenarios: &["view.*"],
    signature: &[Pattern {
        checker: "view_contents",
        message: "*every such row had a view update dropped by a base replica that found no pair in its erm",
    }],
    consequences: &[],
    needs_fault: &[],
},
Finding {
    id: "F3",
    title: "when a batch's coordinator's clock is behind its batchlog endpoint's by more than replay_timeout − write_request_timeout, a store still in flight while the endpoint cleans its shard lies below the endpoint's now − replay_timeout and under the cleanup range tombstone's newer timestamp: it is shadowed on landing, under either cleanup_end; with its coordinator gone, the batch is lost",
    upstream: "db/batchlog_manager.cc, replay_all_failed_batches_v2: the cleanup range tombstone of a shard with need_cleanup and no too-fresh entry ends after now − replay_timeout, where now = db_clock::now() on the endpoint, and takes api::new_timestamp() of the endpoint; service/storage_proxy.cc, mutate_atomically's context: written_at = db_clock::now() and the row timestamp api::new_timestamp() of the coordinator; nothing bounds how far those clocks disagree",
    scenario: "batchlog.finding_f3_skewed_store_shadowed",
    bundle: "findings/F3.json",
    fix: &[("batchlog.cleanup_clock_margin_ms", "2000")],
    scenarios: &["batchlog.*", "cluster.*"],
    signature: &[
        Pattern {
            checker: "batchlog_range_tombstone_safety",
            message: "store of initial entry * landed on * after range tombstone After(*) * that shadows it",
        },
        Pattern {
            checker: "batchlog_range_tombstone_safety",
            message: "range tombstone After(*) * covers live initial entry * not replayed in that pass",
        },
    ],
    consequences: SHADOWED_STORE_CONSEQUENCES,
    needs_fault: &["* clock skew *"],
},
Finding {
    id: "F4",
    title: "a repair's batchlog flush replays a batch older than a delete at EACH_QUORUM and answers all replayed while its write to a replica outside the quorum is still in flight; the repair records its repair time and repair-mode GC purges the delete's tombstone; the late write then lands on that replica, shadowed by nothing, and the deleted row is back on a QUORUM",
    upstream: "db/batchlog_manager.cc, replay_all_failed_batches: replayed mutations go through storage_proxy::send_batchlog_replay_to_all_replicas at EACH_QUORUM (since d9c3772e20, ALL before), so success says nothing of the replicas outside the quorum; repair/row_level.cc, repair_flush_hints_batchlog_handler: the flush answers once the replay reports all replayed, with a flush time taken before the replay; repair-mode tombstone GC then purges tombstones older than repair_time - propagation_delay, and nothing waits for replay writes still in flight (propagation_delay bounds a write's age by its timestamp, and a replayed write is older than its send)",
    scenario: "batchlog.finding_f4_flush_straggler_resurrects",
    bundle: "findings/F4.json",
    fix: &[("batchlog.replay_cl", "all")],
    scenarios: &["batchlog.*", "cluster.*"],
    signature: &[Pattern {
        checker: "batchlog_no_resurrection",
        message: "deleted row * is back*",
    }],
    consequences: &[],
    // Something must hold the replay's write in flight past the repair: a message delay or
    // stall (a disk stall too), a paused replica, or a slow disk under the write.
    needs_fault: &[
        "* delay *",
        "* stall *",
        "* pause *",
        "* disk latency *",
    ],
}];

/// The finding with this id.
pub fn find(id: &str) -> Option<&'static Finding> {
    ALL.iter().find(|f| f.id == id)
}

/// Does the run have every override of `f`'s fix?
fn fix_on(f: &Finding, cfg: &RunConfig) -> bool {
    let Ok(v) = serde_json::to_value(cfg) else {
        return false;
    };
    f.fix.iter().all(|(key, want)| {
        let mut cur = &v;
        let mut path = key.split('.').peekable();
        // Sections live under `params` in the resolved config.
        if let Some(first) = path.peek() {
            if cur.get(*first).is_none() {
                cur = &v["params"];
            }
        }
        for part in path {
            match cur.get(part) {
                Some(x) => cur = x,
                None => return false,
            }
        }
        cur.as_str().map_or_else(
            || {
                *cur == serde_json::Value::String((*want).to_string())
                    || cur.to_string().as_str() == *want
            },
            |s| s == *want,
        )
    })
}

/// The known finding a failing run matches, if any.
pub fn classify(cfg: &RunConfig, report: &RunReport) -> Option<&'static Finding> {
    if report.violations.is_empty() || report.panic.is_some() || !report.mutants.is_empty() {
        return None;
    }
    ALL.iter().find(|f| {
        f.scenarios.iter().any(|s| glob(s, &report.scenario))
            && !fix_on(f, cfg)
            && report
                .violations
                .iter()
                .any(|v| f.signature.iter().any(|p| p.matches(v)))
            && report.violations.iter().all(|v| {
                f.signature
                    .iter()
                    .chain(f.consequences)
                    .any(|p| p.matches(v))
            })
            && (f.needs_fault.is_empty()
                || f.needs_fault
                    .iter()
                    .any(|g| report.fault_timeline.iter().any(|t| glob(g, t))))
    })
}

/// Glob match: `*` matches any run of characters (including none).
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("batchlog.*", "batchlog.swarm"));
        assert!(!glob("batchlog.*", "raft.swarm"));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxbyy"));
        assert!(glob("*", ""));
        assert!(glob("exact", "exact"));
        assert!(!glob("exact", "exactly"));
        assert!(!glob("ab*ba", "aba"));
        assert!(glob(
            "range tombstone Before(*) * covers live initial entry * not replayed in that pass",
            "range tombstone Before(13094) of shard 1 on n4 (pass now=13096) covers live initial entry b2005 (written_at 13093) not replayed in that pass"
        ));
    }

    #[test]
    fn registry_is_well_formed() {
        for (i, f) in ALL.iter().enumerate() {
            assert_eq!(f.id, format!("F{}", i + 1));
            assert!(!f.signature.is_empty() && !f.fix.is_empty());
            assert!(f.bundle.starts_with("findings/"));
        }
    }
}
