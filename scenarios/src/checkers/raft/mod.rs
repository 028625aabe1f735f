//! Checkers of group0 Raft, over the history's [`model::raft::RaftEvent`]s (and, for the
//! `raft.*` scenarios' workload, their client events). Each promise is one file:
//!
//! - [`election`]: at most one leader per term.
//! - [`agreement`]: a committed entry never changes (same index => same term and command hash
//!   in every commit and apply event on every node), and every node incarnation applies
//!   1, 2, 3, ... with no gap and no re-apply.
//! - [`acknowledged`]: a proposal acknowledged at index i is the entry every node applied at i,
//!   and a read barrier that returned saw every entry committed before it began.

pub mod acknowledged;
pub mod agreement;
pub mod election;

pub use acknowledged::AcknowledgedOps;
pub use agreement::LogAgreement;
pub use election::ElectionSafety;

use crate::scenario::Checker;

/// The checkers every scenario running group0 should include.
pub const GROUP0: &[&dyn Checker] = &[&ElectionSafety, &LogAgreement];
