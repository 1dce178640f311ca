//! Agreement layout: one entry per (id, version) holding the signed document
//! (exact body bytes plus every verified signature) and verified notices.

use std::ops::Bound;

use prost::Message;

use super::{scan_prefix, Store, StoreError, Tree, Tx};
use crate::pb;

#[derive(Clone, PartialEq, Message)]
pub struct StoredAgreement {
    /// Payload type AGREEMENT; only signatures that verified are kept.
    #[prost(message, optional, tag = "1")]
    pub envelope: Option<pb::Envelope>,
    /// Verified notices (payload type AGREEMENT_NOTICE), in arrival order.
    #[prost(message, repeated, tag = "2")]
    pub notices: Vec<pb::Envelope>,
    /// Delivered to or received from another party.
    #[prost(bool, tag = "3")]
    pub proposed: bool,
}

pub fn key(id: &str, version: u32) -> Vec<u8> {
    let mut k = id.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(&version.to_be_bytes());
    k
}

fn decode(v: &[u8]) -> Result<StoredAgreement, StoreError> {
    StoredAgreement::decode(v).map_err(|e| StoreError::Corrupt(format!("agreement: {e}")))
}

pub fn get(store: &dyn Store, id: &str, version: u32) -> Result<Option<StoredAgreement>, StoreError> {
    store.get(Tree::Agreements, &key(id, version))?.map(|v| decode(&v)).transpose()
}

/// Every version of agreement `id`, oldest first.
pub fn versions(store: &dyn Store, id: &str) -> Result<Vec<(u32, StoredAgreement)>, StoreError> {
    let mut prefix = id.as_bytes().to_vec();
    prefix.push(0);
    scan_prefix(store, Tree::Agreements, &prefix, None, usize::MAX)?
        .into_iter()
        .map(|(k, v)| {
            let ver =
                k.get(prefix.len()..).and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_be_bytes).unwrap_or(0);
            Ok((ver, decode(&v)?))
        })
        .collect()
}

/// Every stored agreement version.
pub fn all(store: &dyn Store) -> Result<Vec<StoredAgreement>, StoreError> {
    store
        .range(Tree::Agreements, Bound::Unbounded, Bound::Unbounded, usize::MAX)?
        .into_iter()
        .map(|(_, v)| decode(&v))
        .collect()
}

pub fn put(tx: &mut Tx, id: &str, version: u32, a: &StoredAgreement) {
    tx.batch.put(Tree::Agreements, key(id, version), a.encode_to_vec());
}
