//! Per-peer bounds on the bookkeeping a peer's calls leave behind: delivery
//! receipts, hit references and consent requests. Each is kept only for a
//! while (`retention::KEEP`), but within that time a peer could still grow
//! the store with every call; a per-peer count, kept in the same write as
//! each entry and lowered by the sweep that ends it, caps that. Beyond the
//! cap the call is refused with `RESOURCE_EXHAUSTED` until entries expire.

use crate::{Store, StoreError, Tree, Tx};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// `delivery/<peer>/<id>`: a push's signed receipt (14 days).
    Receipt,
    /// `hit/<ref>`: a hit reference answered to a peer (90 days).
    HitRef,
    /// `consent-req/<id>`: a peer's request for onward consent (30 days).
    ConsentRequest,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Receipt => "receipt",
            Kind::HitRef => "hit",
            Kind::ConsentRequest => "consent-request",
        }
    }

    /// Entries one peer may have at once: far above honest use (a receipt
    /// per delivery for two weeks at one a second is 1.2 million).
    pub fn max(self) -> u64 {
        match self {
            Kind::Receipt => 2_000_000,
            Kind::HitRef => 200_000,
            Kind::ConsentRequest => 10_000,
        }
    }

    /// The bookkeeping prefix this kind counts (as in the node's `retention::KEEP`).
    pub fn of_prefix(prefix: &str) -> Option<Kind> {
        match prefix {
            crate::receipts::PREFIX => Some(Kind::Receipt),
            crate::hit_refs::PREFIX => Some(Kind::HitRef),
            crate::consents::REQUEST_PREFIX => Some(Kind::ConsentRequest),
            _ => None,
        }
    }
}

/// A peer at its cap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{peer} already has {held} {kind}s kept here (at most {max}); they expire with time")]
pub struct Full {
    pub peer: String,
    pub kind: &'static str,
    pub held: u64,
    pub max: u64,
}

fn key(kind: Kind, peer: &str) -> Vec<u8> {
    format!("quota/{}/{peer}", kind.name()).into_bytes()
}

pub fn count(st: &dyn Store, kind: Kind, peer: &str) -> Result<u64, StoreError> {
    crate::meta_u64(st, &key(kind, peer))
}

/// The count after `n` more entries, or the refusal (pure).
pub fn admit(held: u64, n: u64, max: u64) -> Option<u64> {
    held.checked_add(n).filter(|after| *after <= max)
}

/// In the write that stores `n` new entries for `peer`: counts them, or
/// refuses when that would pass the cap.
pub fn take(st: &dyn Store, tx: &mut Tx, kind: Kind, peer: &str, n: u64) -> Result<Result<(), Full>, StoreError> {
    if n == 0 {
        return Ok(Ok(()));
    }
    let held = count(st, kind, peer)?;
    Ok(match admit(held, n, kind.max()) {
        Some(after) => {
            tx.batch.put(Tree::Meta, key(kind, peer), after.to_be_bytes().to_vec());
            Ok(())
        }
        None => Err(Full { peer: peer.into(), kind: kind.name(), held, max: kind.max() }),
    })
}

/// In the sweep's write: `n` entries of `peer` ended.
pub fn release(st: &dyn Store, tx: &mut Tx, kind: Kind, peer: &str, n: u64) -> Result<(), StoreError> {
    let left = count(st, kind, peer)?.saturating_sub(n);
    if left == 0 {
        tx.batch.delete(Tree::Meta, key(kind, peer));
    } else {
        tx.batch.put(Tree::Meta, key(kind, peer), left.to_be_bytes().to_vec());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_holds_and_counts_never_overflow() {
        assert_eq!(admit(0, 1, 10), Some(1));
        assert_eq!(admit(9, 1, 10), Some(10));
        assert_eq!(admit(10, 1, 10), None);
        assert_eq!(admit(3, 100, 10), None, "a batch that would pass the cap is refused whole");
        assert_eq!(admit(u64::MAX, 1, u64::MAX), None);
        assert_eq!(Kind::of_prefix("delivery/"), Some(Kind::Receipt));
        assert_eq!(Kind::of_prefix("hit/"), Some(Kind::HitRef));
        assert_eq!(Kind::of_prefix(crate::consents::REQUEST_PREFIX), Some(Kind::ConsentRequest));
    }

    /// Counted in the write that keeps the entries, refused at the cap,
    /// lowered by the sweep; each peer has its own count.
    #[tokio::test]
    async fn each_peer_is_counted_in_the_same_write_and_refused_at_its_cap() {
        use std::sync::Arc;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(crate::SledStore::open(dir.path()).unwrap());
        let db = crate::Db::new(store, Arc::new(crate::clock::SystemClock::default()), None).unwrap();
        let max = Kind::ConsentRequest.max();
        let take = |peer: &'static str, n: u64| {
            db.write(move |st, tx| {
                let r = take(st, tx, Kind::ConsentRequest, peer, n)?;
                tx.batch.put(Tree::Meta, format!("probe/{peer}/{n}").into_bytes(), Vec::new());
                Ok::<_, StoreError>(r)
            })
        };
        assert_eq!(take("kh-antht", max - 1).await.unwrap(), Ok(()));
        assert_eq!(take("kh-antht", 1).await.unwrap(), Ok(()));
        let full = take("kh-antht", 1).await.unwrap().unwrap_err();
        assert_eq!((full.held, full.max), (max, max));
        assert_eq!(take("vn-c02", 1).await.unwrap(), Ok(()), "another peer is not affected");
        db.write(|st, tx| release(st, tx, Kind::ConsentRequest, "kh-antht", 5)).await.unwrap();
        assert_eq!(count(db.store(), Kind::ConsentRequest, "kh-antht").unwrap(), max - 5);
        assert_eq!(take("kh-antht", 5).await.unwrap(), Ok(()));
        db.write(|st, tx| release(st, tx, Kind::ConsentRequest, "vn-c02", 9)).await.unwrap();
        assert_eq!(count(db.store(), Kind::ConsentRequest, "vn-c02").unwrap(), 0, "never below zero");
    }
}
