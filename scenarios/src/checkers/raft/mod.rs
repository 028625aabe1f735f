//! Checkers of Raft groups (group0 and any other), over the history's
//! [`model::raft::RaftEvent`]s (and, for the `raft.*` scenarios' workload, their client
//! events). Every promise holds per group: terms, indexes and applies of different groups are
//! unrelated. Each promise is one file:
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
use model::raft::GroupId;

/// " of group N" for a group other than group0 (group0's messages read as before).
fn of(g: GroupId) -> String {
    if g.is_group0() {
        String::new()
    } else {
        format!(" of {g}")
    }
}

/// The checkers every scenario running group0 should include.
pub const GROUP0: &[&dyn Checker] = &[&ElectionSafety, &LogAgreement];
