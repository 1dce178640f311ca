//! Release marks (`released/<record key>\0<peer>` in the meta tree): the
//! peers a record this node originated was released to (a delivered share,
//! a sync or query answer, or the originator's consent to an onward share).
//! Only they may ask about it afterwards; anyone else is answered as if it
//! did not exist.

use crate::{Store, StoreError, Tree, Tx};

fn key(record_key: &str, peer: &str) -> Vec<u8> {
    format!("released/{record_key}\0{peer}").into_bytes()
}

/// Remembers, in the same write, that `peer` was given `record_key`.
pub fn mark(tx: &mut Tx, record_key: &str, peer: &str) {
    tx.batch.put(Tree::Meta, key(record_key, peer), Vec::new());
}

/// Whether `peer` was ever given `record_key` by this node.
pub fn contains(st: &dyn Store, record_key: &str, peer: &str) -> Result<bool, StoreError> {
    Ok(st.get(Tree::Meta, &key(record_key, peer))?.is_some())
}
