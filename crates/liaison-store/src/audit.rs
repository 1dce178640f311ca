//! Audit log layout: entries keyed by seq; signed checkpoints in the meta tree.

use std::ops::Bound;

use prost::Message;

use super::{Store, StoreError, Tree, CHECKPOINT_PREFIX};
use crate::pb;

fn decode(v: &[u8]) -> Result<pb::AuditEntry, StoreError> {
    pb::AuditEntry::decode(v).map_err(|e| StoreError::Corrupt(format!("audit entry: {e}")))
}

/// Entries with seq > `after`, in stored (key) order.
pub fn entries_after(store: &dyn Store, after: u64, limit: usize) -> Result<Vec<pb::AuditEntry>, StoreError> {
    store
        .range(Tree::Audit, Bound::Excluded(after.to_be_bytes().to_vec()), Bound::Unbounded, limit)?
        .into_iter()
        .map(|(_, v)| decode(&v))
        .collect()
}

pub fn entry(store: &dyn Store, seq: u64) -> Result<Option<pb::AuditEntry>, StoreError> {
    store.get(Tree::Audit, &seq.to_be_bytes())?.map(|v| decode(&v)).transpose()
}

pub fn checkpoints(store: &dyn Store) -> Result<Vec<pb::Envelope>, StoreError> {
    let end = super::prefix_end(CHECKPOINT_PREFIX).map_or(Bound::Unbounded, Bound::Excluded);
    store
        .range(Tree::Meta, Bound::Included(CHECKPOINT_PREFIX.to_vec()), end, usize::MAX)?
        .into_iter()
        .map(|(_, v)| pb::Envelope::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(format!("checkpoint: {e}"))))
        .collect()
}
