//! Sync cursors (`sync/<peer>/<kind number>` in the meta tree → the peer's
//! change-log sequence we have read up to), saved in the write that stores
//! the page they follow.

use crate::pb;
use crate::{Store, StoreError, Tree, Tx};

fn key(peer: &str, kind: pb::RecordKind) -> Vec<u8> {
    format!("sync/{peer}/{}", kind as i32).into_bytes()
}

/// Where the next pull of `kind` from `peer` starts (0 at first).
pub fn get(st: &dyn Store, peer: &str, kind: pb::RecordKind) -> Result<u64, StoreError> {
    crate::meta_u64(st, &key(peer, kind))
}

/// Saves the cursor, in `tx`.
pub fn put(tx: &mut Tx, peer: &str, kind: pb::RecordKind, cursor: u64) {
    tx.batch.put(Tree::Meta, key(peer, kind), cursor.to_be_bytes().to_vec());
}
