//! The node's store: `liaison-store` (the `Store` trait, backends, the commit
//! path and layouts), opened from the node's configuration by [`at_rest`].

pub use liaison_store::*;

pub mod at_rest;
