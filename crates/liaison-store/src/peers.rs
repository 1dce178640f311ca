//! Pinned peers, keyed by node id. Each holds the signed card as imported.

use prost::Message;

use super::{Store, StoreError, Tree, Tx};
use crate::pb;

pub fn get(store: &dyn Store, node_id: &str) -> Result<Option<pb::Peer>, StoreError> {
    match store.get(Tree::Peers, node_id.as_bytes())? {
        Some(v) => pb::Peer::decode(v.as_slice()).map(Some).map_err(|e| StoreError::Corrupt(e.to_string())),
        None => Ok(None),
    }
}

pub fn all(store: &dyn Store) -> Result<Vec<pb::Peer>, StoreError> {
    store
        .range(Tree::Peers, std::ops::Bound::Unbounded, std::ops::Bound::Unbounded, usize::MAX)?
        .into_iter()
        .map(|(_, v)| pb::Peer::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}

pub fn put(tx: &mut Tx, peer: &pb::Peer) {
    let id = peer.card.as_ref().map(|c| c.node_id.clone()).unwrap_or_default();
    tx.batch.put(Tree::Peers, id.into_bytes(), peer.encode_to_vec());
}

pub fn delete(tx: &mut Tx, node_id: &str) {
    tx.batch.delete(Tree::Peers, node_id.as_bytes().to_vec());
}
