//! liaison: a federated information-exchange node for counter-trafficking authorities.
//!
//! See `docs/ARCHITECTURE.md` for the map of modules and the invariants they keep.
#![forbid(unsafe_code)]

pub mod agreement;
pub mod api;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod convert;
pub mod demo;
pub mod envelope;
pub mod exchange;
pub mod federation;
pub mod hub;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod pb;
pub mod peer;
pub mod policy;
pub mod record;
pub mod redact;
pub mod refusal;
pub mod seal;
pub mod sop;
pub mod store;
pub mod tls;
pub mod witness;
pub mod workers;
