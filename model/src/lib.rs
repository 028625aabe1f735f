//! The system under test: group0 Raft, the topology coordinator, tablets, sessions and the
//! topology guard, barriers, streaming, the data plane and the batchlog.
#![warn(missing_docs)]

pub mod batchlog;
pub mod dht;
pub mod node;
pub mod outcome;
pub mod raft;
pub mod sc;
pub mod schema;
pub mod storage;
pub mod topology;
pub mod view;

pub use outcome::Outcome;
