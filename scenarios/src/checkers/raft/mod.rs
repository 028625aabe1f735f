//! Checkers of the raft area (placeholder until this area lands).
