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

/// The newest checkpoint this node signed: its seq and envelope.
pub fn newest_checkpoint(st: &dyn Store) -> Result<Option<(u64, pb::Envelope)>, StoreError> {
    let end = super::prefix_end(CHECKPOINT_PREFIX).map_or(Bound::Unbounded, Bound::Excluded);
    let Some((k, v)) = st.range_rev(Tree::Meta, Bound::Included(CHECKPOINT_PREFIX.to_vec()), end, 1)?.pop() else {
        return Ok(None);
    };
    let seq = k
        .get(CHECKPOINT_PREFIX.len()..)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::Corrupt("checkpoint key".into()))?;
    let env = pb::Envelope::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(format!("checkpoint: {e}")))?;
    Ok(Some((seq, env)))
}

/// Seq of the chain's last entry (0 if empty).
pub fn chain_len(st: &dyn Store) -> Result<u64, StoreError> {
    match st.range_rev(Tree::Audit, Bound::Unbounded, Bound::Unbounded, 1)?.pop() {
        Some((k, _)) => <[u8; 8]>::try_from(k.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| StoreError::Corrupt("audit key".into())),
        None => Ok(0),
    }
}
