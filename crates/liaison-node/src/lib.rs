//! liaison's node: the adapters around the IO-free core — mutual-TLS
//! federation and the local API (tonic), storage (`liaison-store`), the
//! background tasks, configuration, identity and metrics.
//!
//! The core's modules are re-exported under the names the node has always
//! used, so `crate::policy` here is `liaison_core::policy`. See
//! `docs/ARCHITECTURE.md` for the map of modules and the invariants they keep.
#![forbid(unsafe_code)]

pub use liaison_core::{audit, clock, convert, envelope, formats, policy, record, redact, scope, seal};
pub use liaison_proto as pb;

pub mod account;
pub mod agreement;
pub mod api;
pub mod config;
pub mod delivery;
pub mod dial;
pub mod exchange;
pub mod federation;
pub mod https;
pub mod hub;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod node;
pub mod peer;
pub mod refusal;
pub mod serve;
pub mod sop;
pub mod store;
pub mod tls;
pub mod witness;
pub mod workers;
