//! History events of a Raft group, kept compact (a topology swarm records thousands).
//!
//! The `raft` checker rebuilds election safety, commit stability and apply order from these
//! alone: who became leader in which term, which entry (index, term, command hash) the leader
//! committed, and which entry each node incarnation applied.

use serde::Serialize;
use sim::EventKind;

use super::GroupId;

/// One Raft event. The node is the history entry's node; `g` is the group (omitted for group0,
/// so group0's events read as they did before groups had ids).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum RaftEvent {
    /// This node won the election of term `t`.
    BecameLeader {
        /// The group.
        #[serde(skip_serializing_if = "GroupId::is_group0")]
        g: GroupId,
        /// Term.
        t: u64,
    },
    /// As leader, this node committed entry `i` of term `t` whose command hashes to `h`.
    Committed {
        /// The group.
        #[serde(skip_serializing_if = "GroupId::is_group0")]
        g: GroupId,
        /// Index.
        i: u64,
        /// Term of the entry.
        t: u64,
        /// [`command_hash`] of the command (0 for an empty entry).
        h: u64,
    },
    /// Incarnation `inc` of this node applied entry `i` of term `t`, command hash `h`.
    Applied {
        /// The group.
        #[serde(skip_serializing_if = "GroupId::is_group0")]
        g: GroupId,
        /// Incarnation of the node.
        inc: u32,
        /// Index.
        i: u64,
        /// Term of the entry.
        t: u64,
        /// [`command_hash`] of the command (0 for an empty entry).
        h: u64,
    },
}

impl EventKind for RaftEvent {
    fn kind(&self) -> &'static str {
        match self {
            RaftEvent::BecameLeader { .. } => "raft_became_leader",
            RaftEvent::Committed { .. } => "raft_committed",
            RaftEvent::Applied { .. } => "raft_applied",
        }
    }
}

/// A stable hash of a command: FNV-1a (64 bit) of its canonical JSON; 0 for `None` (a
/// leader's empty entry). Never 0 for a command.
///
/// The JSON is streamed into the hash as serde_json writes it (every entry is hashed on append
/// and on apply, on every member: building the text first was a hot allocation).
pub fn command_hash<C: Serialize>(cmd: Option<&C>) -> u64 {
    let Some(cmd) = cmd else { return 0 };
    let mut h = Fnv1a(0xcbf2_9ce4_8422_2325);
    serde_json::to_writer(&mut h, cmd).expect("raft commands serialise");
    h.0.max(1)
}

/// FNV-1a (64 bit) over the bytes written to it.
struct Fnv1a(u64);

impl std::io::Write for Fnv1a {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut h = self.0;
        for b in buf {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_and_compact_json() {
        assert_eq!(command_hash::<u32>(None), 0);
        assert_eq!(command_hash(Some(&7u32)), command_hash(Some(&7u32)));
        assert_ne!(command_hash(Some(&7u32)), command_hash(Some(&8u32)));
        // FNV-1a of "7".
        assert_eq!(command_hash(Some(&7u32)), 0xaf63_aa4c_8601_9796);
        // Streamed or whole, the same bytes give the same hash.
        let cmd = serde_json::json!({"op": "set", "key": "k\"1", "v": [1, 2.5, null]});
        let text = serde_json::to_string(&cmd).unwrap();
        let mut whole: u64 = 0xcbf2_9ce4_8422_2325;
        for b in text.as_bytes() {
            whole ^= *b as u64;
            whole = whole.wrapping_mul(0x0000_0100_0000_01b3);
        }
        assert_eq!(command_hash(Some(&cmd)), whole.max(1));
        let j = serde_json::to_string(&RaftEvent::Applied {
            g: GroupId::GROUP0,
            inc: 1,
            i: 2,
            t: 3,
            h: 4,
        })
        .unwrap();
        assert_eq!(j, r#"{"e":"applied","inc":1,"i":2,"t":3,"h":4}"#);
        let j = serde_json::to_string(&RaftEvent::BecameLeader {
            g: GroupId(3),
            t: 2,
        })
        .unwrap();
        assert_eq!(j, r#"{"e":"became_leader","g":3,"t":2}"#);
    }
}
