//! Retention: received records are purged when their retention runs out, and
//! at once when the agreement they came under is revoked (if it says so).
//! Every purge is audited.

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use super::quota::Kind;
use super::receive::purge;
use super::ExchangeError;
use crate::agreement::book;
use crate::node::Node;
use crate::pb;
use crate::store::records::StoredRecord;
use crate::store::{StoreError, Tree};

/// Bookkeeping a peer's calls leave behind, and how long it is kept: the
/// receipts that make retried deliveries idempotent (a sender retries for at
/// most 7 days), hit references (cited in a follow-up request) and consent
/// requests. Without an end these would grow with every call, for ever.
pub const KEEP: [(&str, time::Duration); 3] = [
    (crate::store::receipts::PREFIX, time::Duration::days(14)),
    (crate::store::hit_refs::PREFIX, time::Duration::days(90)),
    (crate::store::consents::REQUEST_PREFIX, time::Duration::days(30)),
];

/// Entries looked at per prefix and round.
const SWEEP_BATCH: usize = 10_000;

/// When a bookkeeping entry under `prefix` was made; `None` if it does not decode.
fn made_at(prefix: &str, v: &[u8]) -> Option<time::OffsetDateTime> {
    use prost::Message;
    let t = match prefix {
        crate::store::receipts::PREFIX => {
            let env = pb::Envelope::decode(v).ok()?;
            crate::envelope::decode::<pb::Receipt>(&env).ok()?.time
        }
        crate::store::hit_refs::PREFIX => crate::store::hit_refs::decode(v).ok()?.time,
        _ => crate::store::consents::decode_request(v).ok()?.time,
    };
    t.as_ref().and_then(crate::convert::from_timestamp)
}

/// Whether an entry made at `made` (if known) is past `keep` at `now`.
/// An entry whose time cannot be read is stale: nothing else could end it.
pub fn stale(made: Option<time::OffsetDateTime>, keep: time::Duration, now: time::OffsetDateTime) -> bool {
    made.is_none_or(|t| now - t > keep)
}

/// Whose count a bookkeeping entry is in: its kind and peer.
fn owner(k: &[u8], v: &[u8]) -> Option<(Kind, String)> {
    let k = std::str::from_utf8(k).ok()?;
    if let Some(rest) = k.strip_prefix(crate::store::receipts::PREFIX) {
        return Some((Kind::Receipt, rest.split_once('/')?.0.to_string()));
    }
    if k.starts_with(crate::store::hit_refs::PREFIX) {
        return Some((Kind::HitRef, crate::store::hit_refs::decode(v).ok()?.requester));
    }
    if k.starts_with(crate::store::consents::REQUEST_PREFIX) {
        return Some((Kind::ConsentRequest, crate::store::consents::decode_request(v).ok()?.holder));
    }
    None
}

/// Deletes bookkeeping past its time ([`KEEP`]).
pub async fn sweep_bookkeeping(node: &Node) -> Result<usize, ExchangeError> {
    let now = node.now();
    let mut old = Vec::new();
    for (prefix, keep) in KEEP {
        let start = Bound::Included(prefix.as_bytes().to_vec());
        let end = crate::store::prefix_end(prefix.as_bytes()).map_or(Bound::Unbounded, Bound::Excluded);
        for (k, v) in node.db.store().range(Tree::Meta, start, end, SWEEP_BATCH)? {
            if stale(made_at(prefix, &v), keep, now) {
                old.push((k, v));
            }
        }
    }
    // Answers kept for retried calls, oldest first.
    let before = now.unix_timestamp().saturating_sub(crate::store::retries::KEEP_SECS);
    let answers = node.db.write(|st, tx| crate::store::retries::expire(st, tx, before, SWEEP_BATCH)).await?;
    if old.is_empty() {
        return Ok(answers);
    }
    let n = old.len().saturating_add(answers);
    node.db
        .write(|st, tx| {
            // Each ended entry leaves its peer's count (`quota`), in the same write.
            let mut ended: std::collections::BTreeMap<(Kind, String), u64> = std::collections::BTreeMap::new();
            for (k, v) in &old {
                if st.get(Tree::Meta, k)?.is_none() {
                    continue; // already gone
                }
                tx.batch.delete(Tree::Meta, k.clone());
                if let Some((kind, peer)) = owner(k, v) {
                    *ended.entry((kind, peer)).or_default() += 1;
                }
            }
            for ((kind, peer), n) in ended {
                super::quota::release(st, tx, kind, &peer, n)?;
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(n)
}

/// Purges every received record whose retention ended before now.
pub async fn purge_expired(node: &Node) -> Result<usize, ExchangeError> {
    let due = crate::store::retention::due(node.db.store(), node.now(), 1000)?;
    if due.is_empty() {
        return Ok(0);
    }
    let n = node
        .db
        .write(|st, tx| {
            let mut n = 0;
            for d in &due {
                if purge(st, tx, &d.record_key, "node", "retention period ended")? {
                    n += 1;
                } else {
                    d.delete(tx);
                }
            }
            Ok::<_, StoreError>(n)
        })
        .await?;
    Ok(n)
}

/// Purges records received under revoked agreements that say so, once per
/// agreement, and marks the agreement done in the purge's write, so later
/// rounds read only that mark.
///
/// The walk of every record runs on the blocking pool without the write
/// lock: once the revocation is in the store, no later write can store a
/// record under the agreement (`receive::InForce` refuses it inside the
/// write), so what the walk finds is all there is. The purge write reads
/// each record again and leaves one that a newer version under another
/// agreement has replaced since.
pub async fn purge_revoked(node: &Arc<Node>) -> Result<usize, ExchangeError> {
    let store = node.db.store();
    let mut revoked = Vec::new();
    for a in book::list(node, true)?
        .into_iter()
        .filter(|r| r.state == pb::AgreementState::Revoked as i32)
        .filter_map(|r| r.agreement)
        .filter(|a| a.retention.as_ref().is_some_and(|x| x.purge_on_revoke))
    {
        if !crate::store::retention::revoked_purged(store, &a.id)? {
            revoked.push(a.id);
        }
    }
    if revoked.is_empty() {
        return Ok(0);
    }
    let ids = revoked.clone();
    let found = crate::node::off_runtime(node, move |n| received_under(n.db.store(), &ids)).await?;
    let under_revoked = |s: &StoredRecord| s.provenance.as_ref().is_some_and(|p| revoked.contains(&p.agreement_id));
    Ok(node
        .db
        .write(|st, tx| {
            let mut n = 0;
            for k in &found {
                let still = crate::store::records::get(st, k)?.is_some_and(|s| under_revoked(&s));
                if still && purge(st, tx, k, "node", "agreement revoked")? {
                    n += 1;
                }
            }
            for id in &revoked {
                crate::store::retention::mark_revoked_purged(tx, id);
            }
            Ok::<_, StoreError>(n)
        })
        .await?)
}

/// Keys of the records received under any of `agreements`, by a walk of
/// every record.
fn received_under(st: &dyn crate::store::Store, agreements: &[String]) -> Result<Vec<String>, StoreError> {
    let mut found = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let chunk = crate::store::scan_prefix(st, Tree::Records, b"", after.as_deref(), WALK_CHUNK)?;
        let done = chunk.len() < WALK_CHUNK;
        for (k, v) in chunk {
            let s: StoredRecord =
                prost::Message::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if s.provenance.as_ref().is_some_and(|p| agreements.contains(&p.agreement_id)) {
                found.push(String::from_utf8_lossy(&k).into_owned());
            }
            after = Some(k);
        }
        if done {
            return Ok(found);
        }
    }
}

/// Records read at a time by the revocation purge's walk.
const WALK_CHUNK: usize = 1024;

/// Runs both purges now and then every `every`, and whenever woken (a revocation).
pub fn spawn(node: Arc<Node>, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            for (what, r) in [("retention", purge_expired(&node).await), ("revocation", purge_revoked(&node).await)] {
                match r {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(purged = n, reason = what, "received records purged"),
                    Err(e) => tracing::error!(error = %e, "purge failed"),
                }
            }
            match sweep_bookkeeping(&node).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "old receipts, hit references and consent requests removed"),
                Err(e) => tracing::error!(error = %e, "bookkeeping sweep failed"),
            }
            tokio::select! {
                _ = node.housekeeping_wake.notified() => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bookkeeping_ends() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let keep = time::Duration::days(14);
        assert!(!stale(Some(now - time::Duration::days(13)), keep, now));
        assert!(stale(Some(now - time::Duration::days(15)), keep, now));
        assert!(stale(None, keep, now), "an unreadable entry is not kept for ever");
        // A time in the future (a skewed peer) is kept until it is old.
        assert!(!stale(Some(now + time::Duration::days(400)), keep, now));
    }

    #[test]
    fn entries_are_read_by_their_prefix() {
        use prost::Message;
        let t = crate::convert::timestamp(time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap());
        let hit = super::super::hit::HitRef { time: Some(t), ..Default::default() };
        assert!(made_at("hit/", &hit.encode_to_vec()).is_some());
        let c = pb::ConsentRequest { time: Some(t), ..Default::default() };
        assert!(made_at(crate::store::consents::REQUEST_PREFIX, &c.encode_to_vec()).is_some());
        assert!(made_at("delivery/", b"junk").is_none());
    }
}
