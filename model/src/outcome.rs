//! The one client outcome type of every area (Jepsen's `:ok` / `:fail` / `:info`).
//!
//! A client operation — a topology read or write, a logged batch, a group0 proposal — ends in
//! exactly one of three states. Checkers must treat `Unknown` as "may have applied, now or
//! later": a timeout after a killed connection, a coordinator that crashed before answering,
//! a batch whose batchlog entry may still be replayed.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Outcome of a client operation (three-valued).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Acknowledged: the operation took effect.
    Ok,
    /// Definitely not applied (rejected before any replica or log could apply it).
    Failed,
    /// May or may not have applied (timeout, killed connection, crash, a pending replay).
    Unknown,
}

impl Outcome {
    /// Is this `Ok`?
    pub fn is_ok(self) -> bool {
        self == Outcome::Ok
    }

    /// The outcome's name as it appears in the history (`ok`, `failed`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
