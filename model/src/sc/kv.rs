//! The state machine of a strongly consistent tablet: a register per key.

use crate::raft::StateMachine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A command of a tablet's Raft group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScCmd {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: u64,
        /// The value.
        value: u64,
    },
}

/// The tablet's rows: key → value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScKv {
    /// Current values.
    pub values: BTreeMap<u64, u64>,
}

impl StateMachine for ScKv {
    type Command = ScCmd;
    fn apply(&mut self, _index: u64, cmd: &ScCmd) {
        match *cmd {
            ScCmd::Put { key, value } => {
                self.values.insert(key, value);
            }
        }
    }
}
