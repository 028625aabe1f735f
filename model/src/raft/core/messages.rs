//! The requests and responses cores exchange (carried by the shell's Raft verbs).

use serde::Serialize;

use super::super::log::Entry;

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
