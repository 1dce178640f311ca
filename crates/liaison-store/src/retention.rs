//! The retention index (`retain/<until, micros big-endian><record key>` in
//! the meta tree): when each received record's retention ends, in time
//! order, so the purge reads only what is due.

use std::ops::Bound;

use time::OffsetDateTime;

use crate::convert::micros_key;
use crate::{Store, StoreError, Tree, Tx};

const PREFIX: &[u8] = b"retain/";

fn key(until: OffsetDateTime, record_key: &str) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(&micros_key(until));
    k.extend_from_slice(record_key.as_bytes());
    k
}

/// `record_key` is kept until `until`.
pub fn put(tx: &mut Tx, until: OffsetDateTime, record_key: &str) {
    tx.batch.put(Tree::Meta, key(until, record_key), Vec::new());
}

/// Drops `record_key`'s entry for `until`.
pub fn delete(tx: &mut Tx, until: OffsetDateTime, record_key: &str) {
    tx.batch.delete(Tree::Meta, key(until, record_key));
}

/// One due entry: the index key (to drop it) and the record it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    entry: Vec<u8>,
    pub record_key: String,
}

impl Due {
    /// Drops this entry, in `tx` (its record is already gone).
    pub fn delete(&self, tx: &mut Tx) {
        tx.batch.delete(Tree::Meta, self.entry.clone());
    }
}

/// At most `limit` entries whose retention ended before `now`, oldest first.
pub fn due(st: &dyn Store, now: OffsetDateTime, limit: usize) -> Result<Vec<Due>, StoreError> {
    let mut end = PREFIX.to_vec();
    end.extend_from_slice(&micros_key(now));
    let skip = PREFIX.len().saturating_add(8);
    Ok(st
        .range(Tree::Meta, Bound::Included(PREFIX.to_vec()), Bound::Excluded(end), limit)?
        .into_iter()
        .filter_map(|(k, _)| {
            let record_key = String::from_utf8_lossy(k.get(skip..)?).into_owned();
            Some(Due { entry: k, record_key })
        })
        .collect())
}
