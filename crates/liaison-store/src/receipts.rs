//! Receipts this node gave (`delivery/<sender>/<delivery id>` in the meta
//! tree → the signed receipt): the answer to every repeat of a delivery, so
//! a retried or replayed call stores nothing twice.

use prost::Message;

use crate::pb;
use crate::{Store, StoreError, Tree, Tx};

/// The family's prefix (the bookkeeping sweep ends old receipts by it).
pub const PREFIX: &str = "delivery/";

fn key(sender: &str, delivery_id: &str) -> Vec<u8> {
    format!("{PREFIX}{sender}/{delivery_id}").into_bytes()
}

/// The receipt given for `sender`'s delivery, if it came before.
pub fn get(st: &dyn Store, sender: &str, delivery_id: &str) -> Result<Option<pb::Envelope>, StoreError> {
    st.get(Tree::Meta, &key(sender, delivery_id))?
        .map(|v| pb::Envelope::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(format!("receipt: {e}"))))
        .transpose()
}

/// Whether `sender`'s delivery was answered before.
pub fn contains(st: &dyn Store, sender: &str, delivery_id: &str) -> Result<bool, StoreError> {
    Ok(st.get(Tree::Meta, &key(sender, delivery_id))?.is_some())
}

/// Keeps the receipt for `sender`'s delivery, in `tx`.
pub fn put(tx: &mut Tx, sender: &str, delivery_id: &str, receipt: &pb::Envelope) {
    tx.batch.put(Tree::Meta, key(sender, delivery_id), receipt.encode_to_vec());
}
