//! Hit references (`hit/<reference>` in the meta tree): what a hit answer's
//! reference points at, kept by the answering node so a follow-up request
//! can cite it.

use prost::Message;

use crate::{Store, StoreError, Tree, Tx};

/// The family's prefix (the bookkeeping sweep ends old references by it).
pub const PREFIX: &str = "hit/";

/// What a hit reference points at.
#[derive(Clone, PartialEq, Message)]
pub struct HitRef {
    #[prost(string, tag = "1")]
    pub requester: String,
    #[prost(string, tag = "2")]
    pub identifier: String,
    #[prost(string, repeated, tag = "3")]
    pub record_keys: Vec<String>,
    #[prost(message, optional, tag = "4")]
    pub time: Option<pbjson_types::Timestamp>,
}

fn key(reference: &str) -> Vec<u8> {
    format!("{PREFIX}{reference}").into_bytes()
}

/// Decodes a stored reference (the sweep reads raw entries).
pub fn decode(v: &[u8]) -> Result<HitRef, StoreError> {
    HitRef::decode(v).map_err(|e| StoreError::Corrupt(format!("hit reference: {e}")))
}

/// What `reference` points at, if it is ours and still kept.
pub fn get(st: &dyn Store, reference: &str) -> Result<Option<HitRef>, StoreError> {
    Ok(st.get(Tree::Meta, &key(reference))?.and_then(|v| decode(&v).ok()))
}

/// Keeps `r` under `reference`, in `tx`.
pub fn put(tx: &mut Tx, reference: &str, r: &HitRef) {
    tx.batch.put(Tree::Meta, key(reference), r.encode_to_vec());
}
