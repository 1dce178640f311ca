//! liaison's IO-free core: the rules and the protocol decisions.
//!
//! Nothing here touches a socket, a file, a clock or a thread: time is
//! passed in (or read through [`clock::Clock`]), storage and networking are
//! the node's adapters. So every rule and every protocol step can be driven
//! in a unit or property test, or in `liaison-sim`'s in-memory federation.
//! See `docs/ARCHITECTURE.md` for what lives where.
#![forbid(unsafe_code)]
// A peer controls much of what the core reads: no panics on input paths
// and no unchecked arithmetic. Tests may unwrap.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

pub use liaison_proto as pb;

pub mod actor;
pub mod agreement;
pub mod audit;
pub mod clock;
pub mod convert;
pub mod envelope;
pub mod formats;
pub mod hub;
pub mod outbox;
pub mod policy;
pub mod receive;
pub mod record;
pub mod redact;
pub mod scope;
pub mod seal;
pub mod sop;
pub mod sync;
