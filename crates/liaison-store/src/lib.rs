//! Storage behind a narrow trait: named trees of ordered byte keys, atomic
//! multi-tree batches that are durable (flushed to disk) before `apply`
//! returns, and ordered range scans. Everything above it (records, peers,
//! users, audit) is plain key/value layout in the submodules here; sled is one
//! implementation and can be swapped without touching callers.
//!
//! A node's store is layered: [`SealedStore`] (values encrypted and bound to
//! their tree and key, index keys blinded) over [`SledStore`], opened with the
//! node's store key by the node's `store::at_rest::open`, which also encrypts a store written
//! before encryption at rest existed.

// The core modules the layouts store, under the names the node uses.
use liaison_core::{clock, convert, envelope, record, redact};
use liaison_proto as pb;

pub mod agreements;
pub mod audit;
pub mod catalogue;
pub mod changes;
#[cfg(test)]
mod conformance;
pub mod consents;
pub mod cursors;
mod db;
pub mod disk;
pub mod head;
pub mod hit_refs;
pub mod hubs;
#[cfg(test)]
mod layouts_tests;
pub mod outbox;
pub mod peers;
pub mod quotas;
pub mod receipts;
pub mod records;
pub mod released;
pub mod retention;
pub mod retries;
pub mod sealed;
pub mod search;
mod sled_store;
pub mod users;
pub mod views;
pub mod withdrawals;
pub mod witnessed;

use std::ops::Bound;

pub use db::{Db, Health, Signer, Tx, CHECKPOINT_PREFIX, CRASH_VAR};

/// The node's checkpoint signer.
pub fn db_signer(node_id: &str, key: &ed25519_dalek::SigningKey) -> Signer {
    Signer { node_id: node_id.to_string(), key: key.clone() }
}
pub use sealed::{SealedStore, StoreKey};
pub use sled_store::{SledStore, DEFAULT_CACHE_BYTES};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage failure: {0}")]
    Backend(String),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    /// Less than the configured reserve is free on the store's disk.
    #[error("the disk is nearly full ({free} bytes free, {reserve} kept in reserve): writes are refused until space is freed")]
    Full { free: u64, reserve: u64 },
    /// An earlier write could not be made durable: what the store holds in
    /// memory may be ahead of the disk, so nothing more is written.
    #[error("a write could not be made durable ({0}); the node stops and restarts from what is on disk")]
    Failed(String),
}

/// Logical trees. Names are stable: they are on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tree {
    Meta,
    Records,
    Identifiers,
    Changes,
    Peers,
    Users,
    Tokens,
    Audit,
    Agreements,
    Outbox,
    Requests,
    Relay,
}

impl Tree {
    pub const ALL: [Tree; 12] = [
        Tree::Meta,
        Tree::Records,
        Tree::Identifiers,
        Tree::Changes,
        Tree::Peers,
        Tree::Users,
        Tree::Tokens,
        Tree::Audit,
        Tree::Agreements,
        Tree::Outbox,
        Tree::Requests,
        Tree::Relay,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tree::Meta => "meta",
            Tree::Records => "records",
            Tree::Identifiers => "identifiers",
            Tree::Changes => "changes",
            Tree::Peers => "peers",
            Tree::Users => "users",
            Tree::Tokens => "tokens",
            Tree::Audit => "audit",
            Tree::Agreements => "agreements",
            Tree::Outbox => "outbox",
            Tree::Requests => "requests",
            Tree::Relay => "relay",
        }
    }
}

/// A set of writes applied atomically.
#[derive(Debug, Default, Clone)]
pub struct Batch {
    pub ops: Vec<(Tree, Vec<u8>, Option<Vec<u8>>)>,
}

impl Batch {
    pub fn put(&mut self, tree: Tree, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push((tree, key.into(), Some(value.into())));
        self
    }
    pub fn delete(&mut self, tree: Tree, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push((tree, key.into(), None));
        self
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

pub type Entry = (Vec<u8>, Vec<u8>);

pub trait Store: Send + Sync + 'static {
    fn get(&self, tree: Tree, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// Up to `limit` entries in key order within the bounds.
    fn range(
        &self,
        tree: Tree,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;
    /// Up to `limit` entries in reverse key order within the bounds.
    fn range_rev(
        &self,
        tree: Tree,
        start: Bound<Vec<u8>>,
        end: Bound<Vec<u8>>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError>;
    /// Applies every write or none, and returns only once it is on disk.
    fn apply(&self, batch: &Batch) -> Result<(), StoreError>;
    /// Applies every write or none, visible to reads at once, durable only
    /// after the next [`Store::flush`]: what lets concurrent writers share
    /// one flush (group commit). A store without the split flushes here.
    fn apply_unflushed(&self, batch: &Batch) -> Result<(), StoreError> {
        self.apply(batch)
    }
    /// Makes every write applied so far durable.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    /// Entries in `tree`, kept as state: never a walk of the tree.
    fn len(&self, tree: Tree) -> Result<usize, StoreError>;
    fn size_on_disk(&self) -> Result<u64, StoreError>;
    /// The form a searchable value (a normalised identifier) takes inside an
    /// index key. An encrypting store answers a keyed hash, so an index still
    /// finds exact matches without holding the value; a plain store answers
    /// the value itself.
    fn index_token(&self, value: &str) -> String;
}

/// Keys that start with `prefix`, in order, after `after` (exclusive) if given.
/// A counter kept as 8 big-endian bytes in the meta tree (0 when absent
/// or malformed): cursors, quotas and the hub's per-member counts.
pub(crate) fn meta_u64(store: &dyn Store, key: &[u8]) -> Result<u64, StoreError> {
    Ok(store.get(Tree::Meta, key)?.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map_or(0, u64::from_be_bytes))
}

pub fn scan_prefix(
    store: &dyn Store,
    tree: Tree,
    prefix: &[u8],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<Entry>, StoreError> {
    let start = match after {
        Some(a) => Bound::Excluded(a.to_vec()),
        None => Bound::Included(prefix.to_vec()),
    };
    let end = match prefix_end(prefix) {
        Some(e) => Bound::Excluded(e),
        None => Bound::Unbounded,
    };
    store.range(tree, start, end, limit)
}

/// The smallest key greater than every key starting with `prefix`.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_handles_carry() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff, 0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }
}
