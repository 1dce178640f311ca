//! The change log (`Tree::Changes`, keyed by sequence number): written by
//! `records` in the transaction of each change, read in order by the
//! change feed and by directory sync.

use prost::Message;

use crate::pb;
use crate::{Store, StoreError, Tree};

/// Changes with seq > `after`, in order, at most `limit`.
pub fn after(st: &dyn Store, after: u64, limit: usize) -> Result<Vec<pb::Change>, StoreError> {
    let start = std::ops::Bound::Excluded(after.to_be_bytes().to_vec());
    st.range(Tree::Changes, start, std::ops::Bound::Unbounded, limit)?
        .into_iter()
        .map(|(_, v)| pb::Change::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(format!("change: {e}"))))
        .collect()
}
