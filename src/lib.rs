//! liaison: a federated information-exchange node for counter-trafficking authorities.
//!
//! See `docs/ARCHITECTURE.md` for the map of modules and the invariants they keep.
#![forbid(unsafe_code)]

pub mod envelope;
pub mod pb;
