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

use std::collections::BTreeMap;

use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use super::log::{Entry, Log, Unstable};
use super::NodeId;

/// Static configuration of a core, in ticks.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// This node.
    pub id: NodeId,
    /// All voting members, including `id`.
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

/// AppendEntries request (also the empty probe).
#[derive(Clone, Debug, Serialize)]
pub struct AppendReq<C> {
    /// Leader's term.
    pub term: u64,
    /// Index of the entry before `entries`.
    pub prev_index: u64,
    /// Term of the entry at `prev_index`.
    pub prev_term: u64,
    /// Entries to append, contiguous from `prev_index + 1`.
    pub entries: Vec<Entry<C>>,
    /// Leader's commit index.
    pub commit: u64,
}

/// AppendEntries response.
#[derive(Clone, Debug, Serialize)]
pub struct AppendResp {
    /// Responder's term.
    pub term: u64,
    /// Consistency check passed.
    pub success: bool,
    /// On success: last index known to match the leader.
    pub match_index: u64,
    /// On failure: the `prev_index` that failed.
    pub reject_index: u64,
    /// On failure: where the leader should retry.
    pub hint: u64,
}

/// Heartbeat: leadership, commit index, and the read-index round number.
#[derive(Clone, Debug, Serialize)]
pub struct HeartbeatReq {
    /// Leader's term.
    pub term: u64,
    /// `min(match of the follower, leader commit)`: safe for the follower to commit.
    pub commit: u64,
    /// Read-index round.
    pub seq: u64,
}

/// Heartbeat response.
#[derive(Clone, Debug, Serialize)]
pub struct HeartbeatResp {
    /// Responder's term.
    pub term: u64,
    /// Echo of the request's round.
    pub seq: u64,
}

/// RequestVote (or pre-vote) request.
#[derive(Clone, Debug, Serialize)]
pub struct VoteReq {
    /// Candidate's term (for a pre-vote: the term it would campaign in).
    pub term: u64,
    /// Candidate's last log index.
    pub last_index: u64,
    /// Candidate's last log term.
    pub last_term: u64,
    /// Pre-vote round.
    pub pre_vote: bool,
}

/// RequestVote response.
#[derive(Clone, Debug, Serialize)]
pub struct VoteResp {
    /// Responder's term (for a granted pre-vote: the request's term).
    pub term: u64,
    /// Vote granted.
    pub granted: bool,
    /// Answer to a pre-vote.
    pub pre_vote: bool,
}

/// A request from one core to another.
#[derive(Clone, Debug, Serialize)]
pub enum Request<C> {
    /// AppendEntries.
    Append(AppendReq<C>),
    /// Heartbeat.
    Heartbeat(HeartbeatReq),
    /// RequestVote / pre-vote.
    Vote(VoteReq),
}

impl<C> Request<C> {
    /// Term the request carries.
    pub fn term(&self) -> u64 {
        match self {
            Request::Append(r) => r.term,
            Request::Heartbeat(r) => r.term,
            Request::Vote(r) => r.term,
        }
    }
}

/// The response to a [`Request`].
#[derive(Clone, Debug, Serialize)]
pub enum Response {
    /// To AppendEntries.
    Append(AppendResp),
    /// To a heartbeat.
    Heartbeat(HeartbeatResp),
    /// To RequestVote.
    Vote(VoteResp),
}

/// Coverage mark: a follower truncated conflicting entries (log repair).
pub const MARK_CONFLICT_TRUNCATED: &str = "raft follower truncated conflicting entries";
/// Coverage mark: a leader without a majority's contact stepped down (check-quorum).
pub const MARK_STEPPED_DOWN: &str = "raft leader stepped down without quorum";
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
        assert!(
            cfg.members.contains(&cfg.id),
            "a core must be a member of its group"
        );
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
                let active = 1 + self.progress.values().filter(|p| p.active).count();
                for p in self.progress.values_mut() {
                    p.active = false;
                }
                if active < self.quorum() {
                    self.ready.events.push(CoreEvent::Mark(MARK_STEPPED_DOWN));
                    self.become_follower(self.term, None);
                }
            }
        } else {
            self.election_elapsed += 1;
            if self.election_elapsed >= self.election_timeout {
                self.campaign();
            }
        }
    }

    /// Starts an election now, as if the election timeout had fired (etcd's `MsgHup`).
    pub fn campaign_now(&mut self) {
        if self.role != Role::Leader {
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

    // ----- elections -------------------------------------------------------------------

    fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        self.election_timeout = self
            .rng
            .gen_range(self.cfg.election_ticks_min..=self.cfg.election_ticks_max);
    }

    fn campaign(&mut self) {
        if self.cfg.pre_vote {
            self.become_pre_candidate();
        } else {
            self.become_candidate();
        }
    }

    fn become_pre_candidate(&mut self) {
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

    fn become_candidate(&mut self) {
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

    fn become_leader(&mut self) {
        assert_eq!(self.role, Role::Candidate);
        assert_eq!(self.vote, Some(self.cfg.id));
        self.role = Role::Leader;
        self.leader = Some(self.cfg.id);
        self.heartbeat_elapsed = 0;
        self.quorum_elapsed = 0;
        let next = self.log.last_index() + 1;
        self.progress = self
            .peers()
            .into_iter()
            .map(|p| {
                (
                    p,
                    Progress {
                        next_index: next,
                        ..Progress::default()
                    },
                )
            })
            .collect();
        self.ready
            .events
            .push(CoreEvent::BecameLeader { term: self.term });
        // The empty entry of the new term: committing it commits every earlier entry (the
        // leader may not count replicas of earlier-term entries: Raft figure 8).
        self.log.append(self.term, None);
        self.broadcast_append();
        self.maybe_commit();
    }

    /// Becomes follower in `term` (>= current), with `leader` if known.
    fn become_follower(&mut self, term: u64, leader: Option<NodeId>) {
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
    fn step_down_cleanup(&mut self) {
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
    fn follow(&mut self, term: u64, from: NodeId) {
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

    fn in_lease(&self) -> bool {
        self.cfg.check_quorum
            && (self.role == Role::Leader
                || (self.leader.is_some() && self.election_elapsed < self.cfg.election_ticks_min))
    }

    fn handle_vote(&mut self, from: NodeId, r: VoteReq) -> VoteResp {
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

    fn handle_vote_resp(&mut self, from: NodeId, sent_term: u64, v: VoteResp) {
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

    // ----- replication -----------------------------------------------------------------

    fn handle_append(&mut self, from: NodeId, r: AppendReq<C>) -> AppendResp {
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

    fn handle_heartbeat(&mut self, from: NodeId, r: HeartbeatReq) -> HeartbeatResp {
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

    fn advance_commit_to(&mut self, c: u64) {
        if c > self.commit {
            assert!(c <= self.log.last_index());
            self.commit = c;
            self.hard_dirty = true;
        }
    }

    fn handle_append_resp(&mut self, from: NodeId, sent_term: u64, a: AppendResp) {
        if a.term > self.term {
            self.become_follower(a.term, None);
            return;
        }
        if self.role != Role::Leader || sent_term != self.term {
            return;
        }
        let last = self.log.last_index();
        let pr = self
            .progress
            .get_mut(&from)
            .expect("response from a non-member");
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

    fn handle_heartbeat_resp(&mut self, from: NodeId, sent_term: u64, h: HeartbeatResp) {
        if h.term > self.term {
            self.become_follower(h.term, None);
            return;
        }
        if self.role != Role::Leader || sent_term != self.term {
            return;
        }
        let last = self.log.last_index();
        let pr = self
            .progress
            .get_mut(&from)
            .expect("response from a non-member");
        pr.active = true;
        pr.read_ack = pr.read_ack.max(h.seq);
        let lagging = pr.match_index < last && !pr.inflight;
        self.check_reads();
        if lagging {
            self.send_append(from);
        }
    }

    fn send(&mut self, to: NodeId, req: Request<C>) {
        self.ready.messages.push(Message {
            to,
            sent_term: self.term,
            req,
        });
    }

    fn send_append(&mut self, to: NodeId) {
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

    fn broadcast_append(&mut self) {
        for p in self.peers() {
            self.send_append(p);
        }
    }

    fn broadcast_heartbeat(&mut self) {
        for p in self.peers() {
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

    fn maybe_commit(&mut self) {
        assert_eq!(self.role, Role::Leader);
        let candidate = if self.cfg.commit_without_majority {
            // Mutant: "it is in my log, so it is committed".
            self.log.last_index()
        } else {
            let mut matches: Vec<u64> = self.progress.values().map(|p| p.match_index).collect();
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

    // ----- reads -----------------------------------------------------------------------

    fn start_reads(&mut self, ids: Vec<u64>) {
        assert_eq!(self.log.term(self.commit), Some(self.term));
        self.read_seq += 1;
        for id in ids {
            self.reads_pending.push(PendingRead {
                id,
                index: self.commit,
                seq: self.read_seq,
            });
        }
        if self.quorum() > 1 {
            self.broadcast_heartbeat();
        }
        self.check_reads();
    }

    fn check_reads(&mut self) {
        let quorum = self.quorum();
        let progress = &self.progress;
        let mut done = Vec::new();
        self.reads_pending.retain(|r| {
            let acks = 1 + progress.values().filter(|p| p.read_ack >= r.seq).count();
            if acks >= quorum {
                done.push((r.id, Ok(r.index)));
                false
            } else {
                true
            }
        });
        self.ready.reads.extend(done);
    }
}
