//! raft (placeholder until its work lands).
