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

/// Marks that records received under a revoked agreement were purged
/// (`purged-revoked/<agreement id>` in the meta tree).
const PURGED_REVOKED: &[u8] = b"purged-revoked/";

fn purged_key(agreement_id: &str) -> Vec<u8> {
    let mut k = PURGED_REVOKED.to_vec();
    k.extend_from_slice(agreement_id.as_bytes());
    k
}

/// Whether the records received under the revoked `agreement_id` were
/// purged already: nothing can arrive under it afterwards, so one purge
/// is enough and later rounds need not walk the records again.
pub fn revoked_purged(st: &dyn Store, agreement_id: &str) -> Result<bool, StoreError> {
    Ok(st.get(Tree::Meta, &purged_key(agreement_id))?.is_some())
}

/// Records, in the purge's own write, that `agreement_id`'s purge was done.
pub fn mark_revoked_purged(tx: &mut Tx, agreement_id: &str) {
    tx.batch.put(Tree::Meta, purged_key(agreement_id), Vec::new());
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sled_store::SledStore;
    use crate::Db;

    #[tokio::test]
    async fn a_revoked_agreement_is_marked_purged_by_the_purge_and_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store: Arc<dyn Store> = Arc::new(SledStore::open(dir.path()).unwrap());
            let db = Db::new(Arc::clone(&store), Arc::new(crate::clock::SystemClock::default()), None).unwrap();
            assert!(!revoked_purged(store.as_ref(), "th-kh").unwrap());
            db.write(|_, tx| {
                mark_revoked_purged(tx, "th-kh");
                Ok::<_, StoreError>(())
            })
            .await
            .unwrap();
            assert!(revoked_purged(store.as_ref(), "th-kh").unwrap());
            assert!(!revoked_purged(store.as_ref(), "th-k").unwrap(), "a prefix of the id is another agreement");
        }
        let store = SledStore::open(dir.path()).unwrap();
        assert!(revoked_purged(&store, "th-kh").unwrap());
    }
}
