//! Checkers over the recorded history: one directory per area.

pub mod batchlog;
pub mod harness;
pub mod raft;
pub mod sc;
pub mod topology;
pub mod view;
