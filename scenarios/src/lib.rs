//! clustersim's scenarios: the catalog, the checkers over the history, the runner, repro
//! bundles, exploration, replay and shrinking. The `clustersim` binary is a thin CLI over this.
#![warn(missing_docs)]

pub mod bench;
pub mod bundle;
pub mod catalog;
pub mod checkers;
pub mod cli;
pub mod config;
pub mod coverage;
pub mod explore;
pub mod junit;
pub mod phases;
pub mod runner;
pub mod scenario;
pub mod story;
pub mod timeline;
pub mod workload;

pub use config::RunConfig;
pub use runner::{resolve, run, RunReport};
pub use scenario::{Checker, RunEnd, ScenarioDef, Tier, Verdict, Violation};
