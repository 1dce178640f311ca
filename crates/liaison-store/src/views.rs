//! Audited views of a record's protected fields (`view/<record key>/<time>`
//! in the meta tree): who saw a victim's identity, when and why, listed on
//! the record itself. Written in the same transaction as the audit entry.

use prost::Message;

use crate::pb;
use crate::{Store, StoreError, Tree, Tx};

pub const PREFIX: &str = "view/";

/// Views kept per record; older ones remain on the audit log only.
pub const MAX_LISTED: usize = 200;

fn prefix(record_key: &str) -> Vec<u8> {
    format!("{PREFIX}{record_key}/").into_bytes()
}

/// Keeps one view, in `tx` (`tx.now` orders them).
pub fn put(tx: &mut Tx, record_key: &str, actor: &str, reason: &str) {
    let nanos = u64::try_from(tx.now.unix_timestamp_nanos()).unwrap_or(0);
    let mut key = prefix(record_key);
    key.extend_from_slice(&nanos.to_be_bytes());
    // Two views in the same nanosecond keep both.
    key.extend_from_slice(actor.as_bytes());
    let v = pb::ProtectedView {
        actor: actor.to_string(),
        time: Some(crate::convert::timestamp(tx.now)),
        reason: reason.to_string(),
    };
    tx.batch.put(Tree::Meta, key, v.encode_to_vec());
}

/// The record's views, newest first (at most [`MAX_LISTED`]).
pub fn of(st: &dyn Store, record_key: &str) -> Result<Vec<pb::ProtectedView>, StoreError> {
    let mut out = crate::scan_prefix(st, Tree::Meta, &prefix(record_key), None, usize::MAX)?
        .into_iter()
        .map(|(_, v)| pb::ProtectedView::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(format!("view: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    out.reverse();
    out.truncate(MAX_LISTED);
    Ok(out)
}

/// Forgets a purged record's views, in `tx` (the audit log keeps them).
pub fn forget(st: &dyn Store, tx: &mut Tx, record_key: &str) -> Result<(), StoreError> {
    for (k, _) in crate::scan_prefix(st, Tree::Meta, &prefix(record_key), None, usize::MAX)? {
        tx.batch.delete(Tree::Meta, k);
    }
    Ok(())
}
