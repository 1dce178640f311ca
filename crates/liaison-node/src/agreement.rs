//! Agreements as the node holds them: the core's documents and rules
//! (`liaison_core::agreement`) and the book that stores, proposes and
//! delivers them.

pub use liaison_core::agreement::*;

pub mod book;
