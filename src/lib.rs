//! liaison: a federated information-exchange node for counter-trafficking
//! authorities. This package is the `liaison` command (`cli`) and the demo
//! federation (`demo`); the node itself is `liaison-node`, re-exported here
//! under its module names so scripts and tests see one crate.
//!
//! See `docs/ARCHITECTURE.md` for the crates and what each may depend on.
#![forbid(unsafe_code)]

pub use liaison_node::*;

pub mod bench;
pub mod cli;
pub mod demo;
