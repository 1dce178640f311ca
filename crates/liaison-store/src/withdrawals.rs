//! Withdrawal marks (`withdrawn/<originator>/<id>` in the meta tree),
//! written when the originator says a record is withdrawn. A withdrawal is
//! final: no version of that record is stored again (by push, sync or import).

use crate::{Store, StoreError, Tree, Tx};

fn key(record_key: &str) -> Vec<u8> {
    format!("withdrawn/{record_key}").into_bytes()
}

/// True if the originator told this node that `record_key` is withdrawn.
pub fn known(st: &dyn Store, record_key: &str) -> Result<bool, StoreError> {
    Ok(st.get(Tree::Meta, &key(record_key))?.is_some())
}

/// Remembers, in `tx`, that `record_key` is withdrawn.
pub fn mark(tx: &mut Tx, record_key: &str) {
    tx.batch.put(Tree::Meta, key(record_key), Vec::new());
}
