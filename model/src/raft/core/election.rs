//! Elections (Raft §5.2, plus pre-vote and check-quorum leases): the election timer, the
//! roles and their transitions, and the handling of votes. A node votes at most once per term,
//! only for a candidate whose log is at least as up to date as its own.

use std::collections::BTreeMap;

use rand::Rng;

use super::{Core, CoreError, CoreEvent, Progress, Request, Role, VoteReq, VoteResp};
use crate::raft::NodeId;

impl<C: Clone> Core<C> {
    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.election_timeout = self
            .rng
            .gen_range(self.cfg.election_ticks_min..=self.cfg.election_ticks_max);
    }

    pub(super) fn campaign(&mut self) {
        if self.cfg.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
    }

    pub(super) fn become_pre_candidate(&mut self) {
        self.step_down_cleanup();
        self.role = Role::PreCandidate;
        self.leader = None;
        self.reset_election_timer();
        self.votes = BTreeMap::from([(self.cfg.id, true)]);
        if self.quorum() == 1 {
            self.become_candidate();
            return;
        }
        let req = VoteReq {
            term: self.term + 1,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            pre_vote: true,
        };
        for p in self.peers() {
            self.send(p, Request::Vote(req.clone()));
        }
    }

    pub(super) fn become_candidate(&mut self) {
        self.step_down_cleanup();
        self.term += 1;
        self.vote = Some(self.cfg.id);
        self.hard_dirty = true;
        self.role = Role::Candidate;
        self.leader = None;
        self.reset_election_timer();
        self.votes = BTreeMap::from([(self.cfg.id, true)]);
        if self.quorum() == 1 {
            self.become_leader();
            return;
        }
        let req = VoteReq {
            term: self.term,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            pre_vote: false,
        };
        for p in self.peers() {
            self.send(p, Request::Vote(req.clone()));
        }
    }

    pub(super) fn become_leader(&mut self) {
        assert_eq!(self.role, Role::Candidate);
        assert!(self.is_voter(), "a non-voter never leads");
        assert_eq!(self.vote, Some(self.cfg.id));
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.heartbeat_elapsed = 0;
        self.quorum_elapsed = 0;
        let next = self.log.last_index() + 1;
        let voters = self.peers();
        self.progress = self
            .targets()
            .into_iter()
            .map(|p| {
                (
                    p,
                    Progress {
                        next_index: next,
                        voter: voters.contains(&p),
                        ..Progress::default()
                    },
                )
            })
            .collect();
        self.ready
            .events
            .push(CoreEvent::BecameLeader { term: self.term });
        if self.log.last_index() > self.commit {
            // Entries of older terms past the commit index this node knows of: they commit
            // only with an entry of the new term (below), never by counting replicas.
            assert!(self.log.last_term() < self.term);
            self.ready
                .events
                .push(CoreEvent::Mark(super::MARK_LEADER_INHERITS_UNCOMMITTED));
        }
        // The empty entry of the new term: committing it commits every earlier entry (the
        // leader may not count replicas of earlier-term entries: Raft figure 8).
        self.log.append(self.term, None);
        self.broadcast_append();
        self.maybe_commit();
    }

    /// Becomes follower in `term` (>= current), with `leader` if known.
    pub(super) fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
        assert!(term >= self.term);
        if term > self.term {
            self.term = term;
            self.vote = None;
            self.hard_dirty = true;
        }
        if self.role == Role::Leader {
            assert!(leader != Some(self.cfg.id));
        }
        self.step_down_cleanup();
        self.role = Role::Follower;
        self.leader = leader;
        self.votes.clear();
        self.reset_election_timer();
    }

    /// Fails the reads of a leader that is about to lose its role.
    pub(super) fn step_down_cleanup(&mut self) {
        if self.role != Role::Leader {
            assert!(self.reads_waiting.is_empty() && self.reads_pending.is_empty());
            return;
        }
        for id in self.reads_waiting.drain(..) {
            self.ready.reads.push((id, Err(CoreError::NotLeader)));
        }
        for r in self.reads_pending.drain(..) {
            self.ready.reads.push((r.id, Err(CoreError::NotLeader)));
        }
        self.progress.clear();
    }

    /// A message of `term` from the leader `from`: follow it.
    pub(super) fn follow(&mut self, term: u64, from: NodeId) {
        if term > self.term || self.role != Role::Follower || self.leader != Some(from) {
            assert!(
                !(self.role == Role::Leader && term == self.term),
                "two leaders in term {term}: {} and {from}",
                self.cfg.id
            );
            self.become_follower(term, Some(from));
        } else {
            self.election_elapsed = 0;
        }
    }

    pub(super) fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && (self.role == Role::Leader
                || (self.leader.is_some() && self.election_elapsed < self.cfg.election_ticks_min))
    }

    pub(super) fn handle_vote(&mut self, from: NodeId, r: VoteReq) -> VoteResp {
        if r.term > self.term && self.in_lease() {
            // We heard from a live leader recently: this candidate is disruptive.
            return VoteResp {
                term: self.term,
                granted: false,
                pre_vote: r.pre_vote,
            };
        }
        let up_to_date = self.log.is_up_to_date(r.last_index, r.last_term);
        if r.pre_vote {
            let granted = r.term > self.term && up_to_date;
            let term = if granted { r.term } else { self.term };
            return VoteResp {
                term,
                granted,
                pre_vote: true,
            };
        }
        if r.term > self.term {
            self.become_follower(r.term, None);
        }
        if r.term < self.term {
            return VoteResp {
                term: self.term,
                granted: false,
                pre_vote: false,
            };
        }
        let can_vote = self.vote == Some(from) || (self.vote.is_none() && self.leader.is_none());
        let granted = can_vote && up_to_date;
        if granted {
            assert!(
                self.role != Role::Leader && self.role != Role::Candidate,
                "a candidate or leader voted for another"
            );
            if self.role == Role::PreCandidate {
                self.become_follower(self.term, None);
            }
            self.vote = Some(from);
            self.hard_dirty = true;
            self.election_elapsed = 0;
        }
        VoteResp {
            term: self.term,
            granted,
            pre_vote: false,
        }
    }

    pub(super) fn handle_vote_resp(&mut self, from: NodeId, sent_term: u64, v: VoteResp) {
        if v.pre_vote {
            if !v.granted && v.term > self.term {
                self.become_follower(v.term, None);
                return;
            }
            if self.role != Role::PreCandidate || sent_term != self.term {
                return;
            }
        } else {
            if v.term > self.term {
                self.become_follower(v.term, None);
                return;
            }
            if self.role != Role::Candidate || sent_term != self.term || v.term != self.term {
                return;
            }
        }
        self.votes.insert(from, v.granted);
        let granted = self.votes.values().filter(|&&g| g).count();
        if granted >= self.quorum() {
            if v.pre_vote {
                self.become_candidate();
            } else {
                self.become_leader();
            }
        }
    }
}
