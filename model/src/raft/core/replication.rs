//! Replication (Raft §5.3, §5.4): AppendEntries and heartbeats on both sides, the leader's
//! per-follower progress, and the commit rule (an entry of the current term stored durably by
//! a majority; earlier terms only indirectly — figure 8).

use super::{
    AppendReq, AppendResp, Core, CoreEvent, HeartbeatReq, HeartbeatResp, Message, Request, Role,
    MARK_CONFLICT_TRUNCATED, MARK_OLD_TERM_NOT_COUNTED,
};
use crate::raft::NodeId;

impl<C: Clone> Core<C> {
    pub(super) fn handle_append(&mut self, from: NodeId, r: AppendReq<C>) -> AppendResp {
        if r.term < self.term {
            return AppendResp {
                term: self.term,
                success: false,
                match_index: 0,
                reject_index: r.prev_index,
                hint: 0,
            };
        }
        self.follow(r.term, from);
        // Under the commit mutant a "committed" entry can be overwritten: let it happen (the
        // checker must see the divergence) instead of asserting.
        let mutant = self.cfg.commit_without_majority;
        let committed = if mutant { 0 } else { self.commit };
        if self.log.term(r.prev_index) == Some(r.prev_term)
            && r.entries
                .iter()
                .any(|e| self.log.term(e.index).is_some_and(|t| t != e.term))
        {
            self.ready
                .events
                .push(CoreEvent::Mark(MARK_CONFLICT_TRUNCATED));
        }
        let res = self
            .log
            .maybe_append(r.prev_index, r.prev_term, &r.entries, committed);
        if self.commit > self.log.last_index() {
            assert!(mutant, "committed entries truncated");
            self.commit = self.log.last_index();
        }
        match res {
            Some(last_new) => {
                self.advance_commit_to(r.commit.min(last_new));
                AppendResp {
                    term: self.term,
                    success: true,
                    match_index: last_new,
                    reject_index: 0,
                    hint: 0,
                }
            }
            None => AppendResp {
                term: self.term,
                success: false,
                match_index: 0,
                reject_index: r.prev_index,
                hint: self.log.conflict_hint(r.prev_index),
            },
        }
    }

    pub(super) fn handle_heartbeat(&mut self, from: NodeId, r: HeartbeatReq) -> HeartbeatResp {
        if r.term < self.term {
            return HeartbeatResp {
                term: self.term,
                seq: r.seq,
            };
        }
        self.follow(r.term, from);
        // The leader sends min(our match, its commit): our log matches it up to there.
        self.advance_commit_to(r.commit.min(self.log.last_index()));
        HeartbeatResp {
            term: self.term,
            seq: r.seq,
        }
    }

    pub(super) fn advance_commit_to(&mut self, c: u64) {
        if c > self.commit {
            assert!(c <= self.log.last_index());
            self.commit = c;
            self.hard_dirty = true;
        }
    }

    pub(super) fn handle_append_resp(&mut self, from: NodeId, sent_term: u64, a: AppendResp) {
        if a.term > self.term {
            self.become_follower(a.term, None);
            return;
        }
        if self.role != Role::Leader || sent_term != self.term {
            return;
        }
        let last = self.log.last_index();
        // A non-voter removed meanwhile: nothing to track.
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.inflight = false;
        pr.active = true;
        if a.success {
            assert!(
                a.match_index <= last,
                "follower matches beyond the leader's log"
            );
            if a.match_index > pr.match_index {
                pr.match_index = a.match_index;
            }
            pr.next_index = pr.next_index.max(pr.match_index + 1);
        } else if a.reject_index >= pr.match_index {
            let next = a.reject_index.min(a.hint).max(pr.match_index + 1);
            assert!(next >= 1 && next <= last + 1);
            pr.next_index = next;
        }
        let more = pr.next_index <= last;
        if a.success {
            self.maybe_commit();
        }
        if more {
            self.send_append(from);
        }
    }

    pub(super) fn handle_heartbeat_resp(&mut self, from: NodeId, sent_term: u64, h: HeartbeatResp) {
        if h.term > self.term {
            self.become_follower(h.term, None);
            return;
        }
        if self.role != Role::Leader || sent_term != self.term {
            return;
        }
        let last = self.log.last_index();
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        pr.active = true;
        pr.read_ack = pr.read_ack.max(h.seq);
        let lagging = pr.match_index < last && !pr.inflight;
        self.check_reads();
        if lagging {
            self.send_append(from);
        }
    }

    pub(super) fn send(&mut self, to: NodeId, req: Request<C>) {
        self.ready.messages.push(Message {
            to,
            sent_term: self.term,
            req,
        });
    }

    pub(super) fn send_append(&mut self, to: NodeId) {
        let (term, commit, max) = (self.term, self.commit, self.cfg.max_entries_per_append);
        let pr = self.progress.get_mut(&to).expect("append to a non-member");
        if pr.inflight {
            return;
        }
        let prev_index = pr.next_index - 1;
        let prev_term = self
            .log
            .term(prev_index)
            .expect("next_index beyond the log");
        let entries = self.log.slice(pr.next_index, self.log.last_index(), max);
        pr.inflight = true;
        self.send(
            to,
            Request::Append(AppendReq {
                term,
                prev_index,
                prev_term,
                entries,
                commit,
            }),
        );
    }

    pub(super) fn broadcast_append(&mut self) {
        for p in self.targets() {
            self.send_append(p);
        }
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        for p in self.targets() {
            let pr = &self.progress[&p];
            let req = HeartbeatReq {
                term: self.term,
                commit: pr.match_index.min(self.commit),
                seq: self.read_seq,
            };
            let lagging = pr.match_index < self.log.last_index() && !pr.inflight;
            self.send(p, Request::Heartbeat(req));
            if lagging {
                self.send_append(p);
            }
        }
    }

    pub(super) fn maybe_commit(&mut self) {
        assert_eq!(self.role, Role::Leader);
        let candidate = if self.cfg.commit_without_majority {
            // Mutant: "it is in my log, so it is committed".
            self.log.last_index()
        } else {
            // Only voters count (a non-voter's copy does not make an entry committed).
            let mut matches: Vec<u64> = self
                .progress
                .values()
                .filter(|p| p.voter)
                .map(|p| p.match_index)
                .collect();
            matches.push(self.log.stable_index());
            matches.sort_unstable_by(|a, b| b.cmp(a));
            matches[self.quorum() - 1]
        };
        if candidate <= self.commit {
            return;
        }
        if self.log.term(candidate) != Some(self.term) {
            // Raft figure 8: a majority stores an entry of an earlier term; wait for ours.
            self.ready
                .events
                .push(CoreEvent::Mark(MARK_OLD_TERM_NOT_COUNTED));
            return;
        }
        let lo = self.commit + 1;
        self.commit = candidate;
        self.hard_dirty = true;
        self.ready.events.push(CoreEvent::Committed {
            entries: self.log.slice(lo, candidate, usize::MAX),
        });
        if !self.reads_waiting.is_empty() {
            let ids = std::mem::take(&mut self.reads_waiting);
            self.start_reads(ids);
        }
        // Tell the followers (empty appends carry the commit index).
        self.broadcast_append();
    }
}
