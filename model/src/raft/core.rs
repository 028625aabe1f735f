//! The pure Raft core of one node: a state machine stepped by requests, responses and ticks,
//! with no runtime, in the style of etcd raft's `Step`/`Ready`.
//!
//! Promises kept here (Raft paper, §5):
//! - *Election safety*: at most one leader per term. A node votes at most once per term, and
//!   only for a candidate whose log is at least as up to date as its own. Term and vote are
//!   handed to the shell for persistence ([`Core::take_persist`]); the shell makes them durable
//!   before any response leaves the node.
//! - *Log matching*: see [`super::log`].
//! - *Leader completeness / commit rule*: the leader advances the commit index only to an entry
//!   of its **current** term that a majority stores durably (its own copy counts only once it is
//!   synced: [`Core::persisted`]). Entries of earlier terms are committed indirectly, by the empty
//!   entry every new leader appends (the "figure 8" case).
//! - *Read index*: a read is answered with the commit index at the time of the request, once a
//!   majority has acknowledged this leader in its term after the request, and only once an
//!   entry of the current term is committed.
//!
//! Optional refinements, both on by default: pre-vote (a node that cannot win does not bump
//! terms) and check-quorum (a leader that has not heard from a majority for an election timeout
//! steps down; a follower that heard from its leader recently ignores votes).
//!
//! Files: this one holds the state, its inputs and outputs; `messages.rs` the requests and
//! responses between cores; `election.rs` roles, votes and terms; `replication.rs`
//! AppendEntries, heartbeats and the commit rule; `read_index.rs` the read-index rounds.

use std::collections::{BTreeMap, BTreeSet};

use rand::RngCore;
use serde::{Deserialize, Serialize};

use super::log::{Entry, Log, Unstable};
use super::NodeId;

mod election;
mod messages;
mod read_index;
mod replication;

pub use messages::{
    AppendReq, AppendResp, HeartbeatReq, HeartbeatResp, Request, Response, VoteReq, VoteResp,
};

/// Static configuration of a core, in ticks.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// This node.
    pub id: NodeId,
    /// All voting members. A core whose `id` is not among them is a *non-voter* (a learner):
    /// it follows a leader and applies the log, but never campaigns and never counts towards a
    /// majority.
    pub members: Vec<NodeId>,
    /// Lower bound of the randomised election timeout.
    pub election_ticks_min: u64,
    /// Upper bound (inclusive) of the randomised election timeout.
    pub election_ticks_max: u64,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: u64,
    /// Most entries in one AppendEntries request.
    pub max_entries_per_append: usize,
    /// Run a pre-vote round before bumping the term.
    pub pre_vote: bool,
    /// Leader steps down without a majority's contact; followers in lease ignore votes.
    pub check_quorum: bool,
    /// Mutant `raft-commit-without-majority`: the leader commits whatever is in its own log.
    pub commit_without_majority: bool,
}

/// The role of a node in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Follows the leader (or waits for one).
    Follower,
    /// Asks whether it could win an election, without bumping its term.
    PreCandidate,
    /// Asks for votes in its (bumped) term.
    Candidate,
    /// Leader of the current term.
    Leader,
}

/// The state that must be durable before a node answers: term, vote, and (lazily) commit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Current term.
    pub term: u64,
    /// Candidate voted for in `term`.
    pub vote: Option<NodeId>,
    /// Highest index known committed (an optimisation for recovery; not required for safety).
    pub commit: u64,
}

/// Coverage mark: a follower truncated conflicting entries (log repair).
pub const MARK_CONFLICT_TRUNCATED: &str = "raft follower truncated conflicting entries";
/// Coverage mark: a leader without a majority's contact stepped down (check-quorum).
pub const MARK_STEPPED_DOWN: &str = "raft leader stepped down without quorum";
/// Coverage mark: a node won an election holding entries of an older term past its commit index.
pub const MARK_LEADER_INHERITS_UNCOMMITTED: &str =
    "raft new leader holds uncommitted entries of an older term";
/// Coverage mark: a majority stored an older-term entry and the leader did not count it.
pub const MARK_OLD_TERM_NOT_COUNTED: &str = "raft old-term entry not committed by counting";

/// Something the shell records in the history.
#[derive(Clone, Debug, PartialEq)]
pub enum CoreEvent<C> {
    /// This node won the election of `term`.
    BecameLeader {
        /// The term.
        term: u64,
    },
    /// A coverage mark (one of the `MARK_*` constants).
    Mark(&'static str),
    /// As leader, this node advanced the commit index over these entries (copied at commit
    /// time: only the commit mutant could overwrite them before the shell records them).
    Committed {
        /// The newly committed entries, in index order.
        entries: Vec<Entry<C>>,
    },
}

/// A rejected proposal or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoreError {
    /// This node is not the leader.
    NotLeader,
    /// This node is not the leader of the requested term.
    TermChanged,
}

/// What the shell must write to disk (buffered) after a step.
#[derive(Clone, Debug)]
pub struct Persist<C> {
    /// Changed hard state.
    pub hard_state: Option<HardState>,
    /// Changed log suffix.
    pub log: Option<Unstable<C>>,
}

/// A request to send, stamped with the sender's term when it was made (its response is
/// matched against that term, not against the request's own term field).
#[derive(Clone, Debug)]
pub struct Message<C> {
    /// Destination.
    pub to: NodeId,
    /// The sender's term when the request was made.
    pub sent_term: u64,
    /// The request.
    pub req: Request<C>,
}

/// What the shell must do after steps: send, apply, answer reads, record.
#[derive(Clone, Debug)]
pub struct Ready<C> {
    /// Requests to send (only after everything persisted so far is synced).
    pub messages: Vec<Message<C>>,
    /// Newly committed entries, in order, to apply.
    pub committed: Vec<Entry<C>>,
    /// Finished read-index requests: (id, commit index to wait for).
    pub reads: Vec<(u64, Result<u64, CoreError>)>,
    /// History events.
    pub events: Vec<CoreEvent<C>>,
}

impl<C> Ready<C> {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.committed.is_empty()
            && self.reads.is_empty()
            && self.events.is_empty()
    }
}

/// The leader's view of one follower.
#[derive(Clone, Debug, Default)]
struct Progress {
    match_index: u64,
    next_index: u64,
    /// An AppendEntries is outstanding (at most one per follower).
    inflight: bool,
    /// Heard from in the current check-quorum window.
    active: bool,
    /// Highest read-index round acknowledged in this term.
    read_ack: u64,
    /// A voting member (counts towards commit, read and check-quorum majorities); false for a
    /// non-voter the leader only replicates to.
    voter: bool,
}

struct PendingRead {
    id: u64,
    index: u64,
    seq: u64,
}

/// The Raft state machine of one node.
pub struct Core<C> {
    cfg: CoreConfig,
    term: u64,
    vote: Option<NodeId>,
    commit: u64,
    role: Role,
    leader: Option<NodeId>,
    log: Log<C>,
    election_elapsed: u64,
    election_timeout: u64,
    heartbeat_elapsed: u64,
    quorum_elapsed: u64,
    votes: BTreeMap<NodeId, bool>,
    progress: BTreeMap<NodeId, Progress>,
    /// Non-voting members the leader replicates to (never `id` itself, never a voter).
    learners: BTreeSet<NodeId>,
    /// Committed entries handed to the shell so far.
    handed: u64,
    read_seq: u64,
    reads_waiting: Vec<u64>,
    reads_pending: Vec<PendingRead>,
    hard_dirty: bool,
    ready: Ready<C>,
    rng: Box<dyn RngCore>,
}

impl<C: Clone> Core<C> {
    /// A core recovered from its hard state and log (both empty for a fresh node).
    pub fn new(
        cfg: CoreConfig,
        hs: HardState,
        entries: Vec<Entry<C>>,
        rng: Box<dyn RngCore>,
    ) -> Self {
        assert!(!cfg.members.is_empty(), "a group has at least one voter");
        assert!(cfg.election_ticks_min >= 1 && cfg.election_ticks_min <= cfg.election_ticks_max);
        assert!(cfg.heartbeat_ticks >= 1 && cfg.max_entries_per_append >= 1);
        let mut members = cfg.members.clone();
        members.sort();
        members.dedup();
        assert_eq!(members.len(), cfg.members.len(), "duplicate members");
        let log = Log::recovered(entries);
        let commit = hs.commit.min(log.last_index());
        let mut core = Core {
            cfg,
            term: hs.term,
            vote: hs.vote,
            commit,
            role: Role::Follower,
            leader: None,
            log,
            election_elapsed: 0,
            election_timeout: 0,
            heartbeat_elapsed: 0,
            quorum_elapsed: 0,
            votes: BTreeMap::new(),
            progress: BTreeMap::new(),
            learners: BTreeSet::new(),
            handed: 0,
            read_seq: 0,
            reads_waiting: Vec::new(),
            reads_pending: Vec::new(),
            hard_dirty: false,
            ready: Ready {
                messages: Vec::new(),
                committed: Vec::new(),
                reads: Vec::new(),
                events: Vec::new(),
            },
            rng,
        };
        core.reset_election_timer();
        core
    }

    // ----- accessors -------------------------------------------------------------------

    /// This node.
    pub fn id(&self) -> NodeId {
        self.cfg.id
    }
    /// Current term.
    pub fn term(&self) -> u64 {
        self.term
    }
    /// Current role.
    pub fn role(&self) -> Role {
        self.role
    }
    /// Leader of the current term, if known.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }
    /// Is this node the leader?
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }
    /// Commit index.
    pub fn commit(&self) -> u64 {
        self.commit
    }
    /// Vote in the current term.
    pub fn vote(&self) -> Option<NodeId> {
        self.vote
    }
    /// The log (read only).
    pub fn log(&self) -> &Log<C> {
        &self.log
    }

    fn quorum(&self) -> usize {
        self.cfg.members.len() / 2 + 1
    }

    /// Is this node the group's only voter (its own durable copy is a majority)?
    pub fn is_sole_voter(&self) -> bool {
        self.cfg.members == [self.cfg.id]
    }

    /// Is this node a voting member (else a non-voter that never campaigns)?
    pub fn is_voter(&self) -> bool {
        self.cfg.members.contains(&self.cfg.id)
    }

    /// The non-voting members this node replicates to while it leads.
    pub fn learners(&self) -> &BTreeSet<NodeId> {
        &self.learners
    }

    /// Every node a leader replicates to: the other voters, then the non-voters.
    fn targets(&self) -> Vec<NodeId> {
        let mut v = self.peers();
        v.extend(self.learners.iter().copied());
        v
    }

    /// Sets the non-voting members (upstream: a group0 configuration change that adds a
    /// non-voter). Voters and this node itself are ignored. A leader starts replicating to a
    /// new non-voter at once (from its log end, backing off to what the non-voter holds) and
    /// stops replicating to one that was removed.
    pub fn set_learners(&mut self, learners: impl IntoIterator<Item = NodeId>) {
        let set: BTreeSet<NodeId> = learners
            .into_iter()
            .filter(|n| *n != self.cfg.id && !self.cfg.members.contains(n))
            .collect();
        if set == self.learners {
            return;
        }
        let added: Vec<NodeId> = set.difference(&self.learners).copied().collect();
        let removed: Vec<NodeId> = self.learners.difference(&set).copied().collect();
        self.learners = set;
        if self.role == Role::Leader {
            for n in removed {
                self.progress.remove(&n);
            }
            let next = self.log.last_index() + 1;
            for n in added {
                self.progress.insert(
                    n,
                    Progress {
                        next_index: next,
                        ..Progress::default()
                    },
                );
                self.send_append(n);
            }
        }
    }

    fn peers(&self) -> Vec<NodeId> {
        self.cfg
            .members
            .iter()
            .copied()
            .filter(|&m| m != self.cfg.id)
            .collect()
    }

    // ----- inputs ----------------------------------------------------------------------

    /// One unit of logical time.
    pub fn tick(&mut self) {
        if self.role == Role::Leader {
            self.heartbeat_elapsed += 1;
            if self.heartbeat_elapsed >= self.cfg.heartbeat_ticks {
                self.heartbeat_elapsed = 0;
                self.broadcast_heartbeat();
            }
            self.quorum_elapsed += 1;
            if self.cfg.check_quorum && self.quorum_elapsed >= self.cfg.election_ticks_min {
                self.quorum_elapsed = 0;
                let active = 1 + self
                    .progress
                    .values()
                    .filter(|p| p.voter && p.active)
                    .count();
                for p in self.progress.values_mut() {
                    p.active = false;
                }
                if active < self.quorum() {
                    self.ready.events.push(CoreEvent::Mark(MARK_STEPPED_DOWN));
                    self.become_follower(self.term, None);
                }
            }
        } else if self.is_voter() {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.election_timeout {
                self.campaign();
            }
        }
    }

    /// How many more [`Core::tick`]s until one does more than count (a heartbeat, a quorum
    /// check, an election); `None` if none ever would (a learner). Always at least 1. Ticks
    /// before that one change nothing but the counters, so a driver may apply them late, as
    /// long as it applies them before any other input that came after them.
    pub fn ticks_until_event(&self) -> Option<u64> {
        if self.role == Role::Leader {
            let heartbeat = self.cfg.heartbeat_ticks - self.heartbeat_elapsed;
            let quorum = self.cfg.check_quorum.then(|| {
                self.cfg
                    .election_ticks_min
                    .saturating_sub(self.quorum_elapsed)
            });
            Some(quorum.map_or(heartbeat, |q| heartbeat.min(q)).max(1))
        } else if self.is_voter() {
            Some(
                self.election_timeout
                    .saturating_sub(self.election_elapsed)
                    .max(1),
            )
        } else {
            None
        }
    }

    /// The leader's check-quorum marks, per follower (tests: a quorum check clears them).
    #[cfg(test)]
    pub(crate) fn active_marks(&self) -> Vec<bool> {
        self.progress.values().map(|p| p.active).collect()
    }

    /// Starts an election now, as if the election timeout had fired (etcd's `MsgHup`).
    pub fn campaign_now(&mut self) {
        if self.role != Role::Leader && self.is_voter() {
            self.campaign();
        }
    }

    /// Appends `cmd` if this node is the leader; returns (index, term) of the new entry.
    pub fn propose(&mut self, cmd: C) -> Result<(u64, u64), CoreError> {
        if self.role != Role::Leader {
            return Err(CoreError::NotLeader);
        }
        let index = self.log.append(self.term, Some(cmd));
        self.broadcast_append();
        self.maybe_commit();
        Ok((index, self.term))
    }

    /// Like [`Core::propose`], but only as the leader of exactly `term`.
    pub fn propose_in_term(&mut self, term: u64, cmd: C) -> Result<(u64, u64), CoreError> {
        if self.role != Role::Leader || self.term != term {
            return Err(CoreError::TermChanged);
        }
        self.propose(cmd)
    }

    /// Starts a read-index request `id`; its answer comes in [`Ready::reads`].
    pub fn read_index(&mut self, id: u64) -> Result<(), CoreError> {
        if self.role != Role::Leader {
            return Err(CoreError::NotLeader);
        }
        if self.log.term(self.commit) == Some(self.term) {
            self.start_reads(vec![id]);
        } else {
            self.reads_waiting.push(id);
        }
        Ok(())
    }

    /// The shell has made the log durable up to (`index`, `term`).
    pub fn persisted(&mut self, index: u64, term: u64) {
        self.log.persisted(index, term);
        if self.role == Role::Leader {
            self.maybe_commit();
        }
    }

    /// Handles a request from `from` and returns the response. The shell must persist
    /// ([`Core::take_persist`]) and sync before the response leaves the node.
    pub fn step_request(&mut self, from: NodeId, req: Request<C>) -> Response {
        assert_ne!(from, self.cfg.id, "a core does not send requests to itself");
        match req {
            Request::Append(r) => Response::Append(self.handle_append(from, r)),
            Request::Heartbeat(r) => Response::Heartbeat(self.handle_heartbeat(from, r)),
            Request::Vote(r) => Response::Vote(self.handle_vote(from, r)),
        }
    }

    /// Re-checks a response produced by [`Core::step_request`] just before it leaves the node,
    /// after the sync that makes it durable. If the term moved on meanwhile, the log the
    /// response describes may have been truncated by a newer leader (an append acknowledgement
    /// would claim entries we no longer hold), so it becomes a rejection in the current term,
    /// which also tells the stale sender to step down.
    pub fn revalidate(&self, resp: Response) -> Response {
        let term = self.term;
        match resp {
            Response::Append(a) if a.term < term => Response::Append(AppendResp {
                term,
                success: false,
                match_index: 0,
                reject_index: a.reject_index,
                hint: 0,
            }),
            Response::Heartbeat(h) if h.term < term => {
                Response::Heartbeat(HeartbeatResp { term, seq: h.seq })
            }
            Response::Vote(v) if v.term < term => Response::Vote(VoteResp {
                term,
                granted: false,
                pre_vote: v.pre_vote,
            }),
            r => r,
        }
    }

    /// Handles the response from `from` to a request this core sent in `sent_term`.
    pub fn step_response(&mut self, from: NodeId, sent_term: u64, resp: Response) {
        match resp {
            Response::Vote(v) => self.handle_vote_resp(from, sent_term, v),
            Response::Append(a) => self.handle_append_resp(from, sent_term, a),
            Response::Heartbeat(h) => self.handle_heartbeat_resp(from, sent_term, h),
        }
    }

    /// An AppendEntries sent to `to` in `sent_term` failed (connection, timeout): allow the next.
    pub fn append_failed(&mut self, to: NodeId, sent_term: u64) {
        if self.role == Role::Leader && sent_term == self.term {
            if let Some(p) = self.progress.get_mut(&to) {
                p.inflight = false;
            }
        }
    }

    // ----- outputs ---------------------------------------------------------------------

    /// What to write to disk now (buffered; the shell syncs before sending or answering).
    pub fn take_persist(&mut self) -> Persist<C> {
        let hard_state = if self.hard_dirty {
            self.hard_dirty = false;
            Some(HardState {
                term: self.term,
                vote: self.vote,
                commit: self.commit,
            })
        } else {
            None
        };
        Persist {
            hard_state,
            log: self.log.take_unstable(),
        }
    }

    /// Messages, committed entries, read answers and events accumulated since the last call.
    pub fn take_ready(&mut self) -> Ready<C> {
        if self.commit > self.handed {
            let entries = self.log.slice(self.handed + 1, self.commit, usize::MAX);
            assert_eq!(entries.len() as u64, self.commit - self.handed);
            self.ready.committed.extend(entries);
            self.handed = self.commit;
        }
        std::mem::replace(
            &mut self.ready,
            Ready {
                messages: Vec::new(),
                committed: Vec::new(),
                reads: Vec::new(),
                events: Vec::new(),
            },
        )
    }
}
