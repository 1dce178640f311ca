//! Sealed relay: a member with no direct route to another member sends
//! through the hub a message sealed to the recipient's key. The hub stores
//! and forwards it with retries until it expires, and sees (and logs) only
//! sender, recipient, size and time. The recipient opens it, checks the
//! sender's signature inside, and handles it exactly as if the sender had
//! called directly — its own policy checks included.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use crate::audit::Event;
use crate::convert::{from_timestamp, timestamp};
use crate::envelope::{self, payload};
use crate::exchange::{self, ExchangeError};
use crate::hub::HubError;
use crate::node::Node;
use crate::pb;
use crate::policy::hub as rules;
use crate::store::hubs::{usage, Usage};
use crate::store::{self, StoreError, Tree};
use liaison_core::hub::relay as order;

/// How long the hub keeps trying: a sender may ask for less, never more.
pub const DEFAULT_EXPIRY: time::Duration = time::Duration::days(3);

/// Messages one sender may have waiting at the hub.
pub const MAX_QUEUED_PER_SENDER: u64 = 1000;
/// Bytes one sender may have waiting at the hub.
pub const MAX_BYTES_PER_SENDER: u64 = 256 * 1024 * 1024;

/// Whether one more message of `size` bytes fits the sender's share.
fn admit(u: Usage, size: u64) -> Result<Usage, String> {
    let messages = u.messages.saturating_add(1);
    let bytes = u.bytes.saturating_add(size);
    if messages > MAX_QUEUED_PER_SENDER {
        return Err(format!("{MAX_QUEUED_PER_SENDER} messages from this sender are already waiting"));
    }
    if bytes > MAX_BYTES_PER_SENDER {
        return Err(format!("{MAX_BYTES_PER_SENDER} bytes from this sender are already waiting"));
    }
    Ok(Usage { messages, bytes })
}

/// The expiry a queued message gets: the sender's, but never later than
/// [`DEFAULT_EXPIRY`] from now (nor earlier than now).
fn expiry(asked: Option<&pbjson_types::Timestamp>, now: time::OffsetDateTime) -> time::OffsetDateTime {
    let latest = crate::convert::after(now, DEFAULT_EXPIRY);
    asked.and_then(from_timestamp).map_or(latest, |t| t.clamp(now, latest))
}

/// Deletes a queued message and gives its sender's share back.
fn release(
    st: &dyn crate::store::Store,
    tx: &mut crate::store::Tx,
    key: &[u8],
    sealed: &pb::SealedMessage,
) -> Result<(), StoreError> {
    tx.batch.delete(Tree::Relay, key.to_vec());
    let u = usage(st, &sealed.sender)?;
    let left =
        Usage { messages: u.messages.saturating_sub(1), bytes: u.bytes.saturating_sub(sealed.ciphertext.len() as u64) };
    crate::store::hubs::put_usage(tx, &sealed.sender, left);
    Ok(())
}

#[derive(Clone, PartialEq, Message)]
struct Queued {
    #[prost(message, optional, tag = "1")]
    sealed: Option<pb::SealedMessage>,
    #[prost(message, optional, tag = "2")]
    expire_time: Option<pbjson_types::Timestamp>,
    #[prost(message, optional, tag = "3")]
    next_attempt: Option<pbjson_types::Timestamp>,
    #[prost(uint32, tag = "4")]
    attempts: u32,
}

/// The hub to reach `peer` through, if a route is set.
pub fn route(node: &Node, peer: &str) -> Result<Option<String>, StoreError> {
    crate::store::hubs::route(node.db.store(), peer)
}

pub async fn set_route(node: &Node, actor: &str, peer: &str, via: &str) -> Result<(), ExchangeError> {
    crate::peer::get(node, peer).map_err(|_| ExchangeError::NotFound(format!("peer {peer}")))?;
    if !via.is_empty() && !crate::hub::directory::joined_hubs(node)?.iter().any(|h| h == via) {
        return Err(exchange::invalid("via", format!("{via} is not a hub this node joined")));
    }
    node.db
        .write(|_, tx| {
            crate::store::hubs::set_route(tx, peer, (!via.is_empty()).then_some(via));
            tx.audit(
                Event::new(actor, "peer.route")
                    .reason(format!("{peer} via {}", if via.is_empty() { "direct" } else { via })),
            );
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(())
}

/// Sender: seal a call to `recipient` and hand it to `hub`.
pub async fn send(node: &Node, hub: &str, recipient: &str, call: pb::RelayedCall) -> Result<String, ExchangeError> {
    let peer = crate::peer::get(node, recipient).map_err(|_| ExchangeError::NotFound(format!("peer {recipient}")))?;
    let card = peer.card.unwrap_or_default();
    let inner = envelope::seal(payload::RELAYED_CALL, &call, node.id(), &node.identity.signing_key);
    let (encapped_key, ciphertext) =
        crate::seal::seal(&card.sealing_public_key, node.id(), recipient, &inner.encode_to_vec())
            .map_err(|e| ExchangeError::Refused(format!("{recipient}: {e}")))?;
    let sealed = pb::SealedMessage { sender: node.id().into(), recipient: recipient.into(), encapped_key, ciphertext };
    let mut c = exchange::client(node, hub).await?;
    let r = c
        .relay_message(pb::RelayMessageRequest {
            sealed: Some(sealed),
            expire_time: Some(timestamp(node.now() + DEFAULT_EXPIRY)),
        })
        .await
        .map_err(|s| ExchangeError::from_status(hub, &s))?;
    Ok(r.into_inner().relay_id)
}

/// Hub: accept a sealed message from one member for another, if
/// `policy::hub::may_relay` allows. A refusal is audited (`relay.refused`)
/// with the reason; the hub never learns more than sender and recipient.
pub async fn accept(node: &Node, caller: &str, req: pb::RelayMessageRequest) -> Result<String, HubError> {
    let sealed = req.sealed.ok_or_else(|| exchange::invalid("sealed", "required"))?;
    if sealed.sender != caller {
        return Err(ExchangeError::Refused(format!("{caller} cannot relay as {}", sealed.sender)).into());
    }
    if sealed.ciphertext.len() > 8 * 1024 * 1024 || sealed.encapped_key.len() > 256 {
        return Err(exchange::invalid("sealed", "too large").into());
    }
    if !crate::config::valid_node_id(&sealed.recipient) {
        return Err(exchange::invalid("sealed.recipient", "not a node id").into());
    }
    let facts = rules::RelayFacts {
        hub: node.id().into(),
        from: caller.into(),
        to: sealed.recipient.clone(),
        from_is_member: crate::hub::is_member(node, caller)?,
        to_is_member: crate::hub::is_member(node, &sealed.recipient)?,
        at: node.now(),
    };
    let agreement = match rules::may_relay(&crate::agreement::book::for_policy(node)?, &facts) {
        Ok(a) => a,
        Err(d) => {
            metrics::counter!("liaison_policy_denials_total", "reason" => d.code()).increment(1);
            let ev = Event::new(format!("peer:{caller}"), "relay.refused")
                .decision("deny", format!("{caller} → {}; {}", sealed.recipient, d.code()));
            node.db.audit(vec![ev]).await?;
            return Err(HubError::Denied(d));
        }
    };
    let nonce: [u8; 8] = rand::random();
    let size = sealed.ciphertext.len();
    let recipient = sealed.recipient.clone();
    let q = Queued {
        sealed: Some(sealed),
        expire_time: Some(timestamp(expiry(req.expire_time.as_ref(), node.now()))),
        next_attempt: Some(timestamp(node.now())),
        attempts: 0,
    };
    let id = node
        .db
        .write(|st, tx| {
            // Each member has a bounded share of the hub's storage.
            let u = admit(usage(st, caller)?, size as u64).map_err(HubError::Exhausted)?;
            crate::store::hubs::put_usage(tx, caller, u);
            // Keyed after every message still queued (read under the
            // writer's lock), so the queue is in acceptance order.
            let last = st.range_rev(Tree::Relay, Bound::Unbounded, Bound::Unbounded, 1)?;
            let last = last.first().and_then(|(k, _)| order::seq_of(k));
            let id = order::key(order::next_seq(last, tx.now), &hex::encode(nonce));
            tx.batch.put(Tree::Relay, id.clone().into_bytes(), q.encode_to_vec());
            tx.audit(
                Event::new(format!("peer:{caller}"), "relay.accept")
                    .agreement(&agreement.agreement_id)
                    .reason(format!("{id}: {caller} → {recipient}, {size} bytes")),
            );
            Ok::<_, HubError>(id)
        })
        .await?;
    tracing::info!(relay = %id, from = %caller, to = %recipient, bytes = size, "relay accepted");
    node.relay_wake.notify_one();
    Ok(id)
}

/// Hub: forward queued messages until delivered or expired. Each recipient
/// has its own worker (`workers`), so a slow member holds up only the
/// messages waiting for it.
pub fn spawn(node: Arc<Node>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut workers = crate::workers::Workers::default();
        loop {
            match due_by_recipient(&node).await {
                Ok(groups) => {
                    for (recipient, items) in groups {
                        let n = Arc::clone(&node);
                        workers.start(&recipient, async move { forward_all(&n, items).await });
                    }
                }
                Err(e) => tracing::error!(error = %e, "relay scan failed"),
            }
            workers.wait(&node.relay_wake, Duration::from_millis(500)).await;
        }
    })
}

/// Messages due now, per recipient; expired ones are dropped on the way.
async fn due_by_recipient(node: &Node) -> Result<BTreeMap<String, Vec<(Vec<u8>, Queued)>>, ExchangeError> {
    let entries = node.db.store().range(Tree::Relay, Bound::Unbounded, Bound::Unbounded, 1000)?;
    metrics::gauge!("liaison_relay_queue").set(entries.len() as f64);
    let now = node.now();
    let mut queued = Vec::with_capacity(entries.len());
    for (k, v) in entries {
        let id = String::from_utf8_lossy(&k).into_owned();
        let Ok(q) = Queued::decode(v.as_slice()) else { continue };
        let sealed = q.sealed.clone().unwrap_or_default();
        if q.expire_time.as_ref().and_then(from_timestamp).is_some_and(|t| now > t) {
            node.db
                .write(|st, tx| {
                    release(st, tx, &k, &sealed)?;
                    tx.audit(
                        Event::new("node", "relay.expired")
                            .reason(format!("{id}: {} → {}", sealed.sender, sealed.recipient)),
                    );
                    Ok::<_, StoreError>(())
                })
                .await?;
            continue;
        }
        queued.push((k, q, sealed));
    }
    let waiting: Vec<order::Waiting<'_>> = queued
        .iter()
        .map(|(_, q, s)| order::Waiting {
            sender: &s.sender,
            recipient: &s.recipient,
            next_attempt: q.next_attempt.as_ref().and_then(from_timestamp),
        })
        .collect();
    let go: BTreeSet<usize> = order::due(&waiting, now).into_iter().collect();
    let mut due: BTreeMap<String, Vec<(Vec<u8>, Queued)>> = BTreeMap::new();
    for (n, (k, q, sealed)) in queued.into_iter().enumerate() {
        if go.contains(&n) {
            due.entry(sealed.recipient).or_default().push((k, q));
        }
    }
    Ok(due)
}

/// Forwards one recipient's messages in queue order. After a failure, that
/// sender's later messages wait for it (they must not overtake it); other
/// senders' messages go on.
async fn forward_all(node: &Node, items: Vec<(Vec<u8>, Queued)>) {
    let mut failed: BTreeSet<String> = BTreeSet::new();
    for (k, q) in items {
        let sender = q.sealed.as_ref().map(|s| s.sender.clone()).unwrap_or_default();
        if failed.contains(&sender) {
            continue;
        }
        match forward_one(node, &k, q).await {
            Ok(true) => {}
            Ok(false) => {
                failed.insert(sender);
            }
            Err(e) => {
                tracing::error!(error = %e, "relay update failed");
                return;
            }
        }
    }
}

/// One delivery attempt; true when delivered.
async fn forward_one(node: &Node, k: &[u8], mut q: Queued) -> Result<bool, ExchangeError> {
    let id = String::from_utf8_lossy(k).into_owned();
    let sealed = q.sealed.clone().unwrap_or_default();
    let call = async {
        let mut c = exchange::client(node, &sealed.recipient).await?;
        c.deliver_sealed(pb::DeliverSealedRequest { relay_id: id.clone(), sealed: Some(sealed.clone()) })
            .await
            .map_err(|s| ExchangeError::from_status(&sealed.recipient, &s))?;
        Ok::<(), ExchangeError>(())
    };
    let result = tokio::time::timeout(crate::exchange::outbox::ATTEMPT_TIMEOUT, call).await.unwrap_or_else(|_| {
        Err(ExchangeError::Peer { peer: sealed.recipient.clone(), reason: "no answer in time".into() })
    });
    match result {
        Ok(()) => {
            node.db
                .write(|st, tx| {
                    release(st, tx, k, &sealed)?;
                    tx.audit(Event::new("node", "relay.forwarded").reason(format!(
                        "{id}: {} → {}, {} bytes",
                        sealed.sender,
                        sealed.recipient,
                        sealed.ciphertext.len()
                    )));
                    Ok::<_, StoreError>(())
                })
                .await?;
            Ok(true)
        }
        Err(e) => {
            q.attempts = q.attempts.saturating_add(1);
            let wait = time::Duration::seconds((1i64 << q.attempts.min(6)).min(60));
            q.next_attempt = Some(timestamp(crate::convert::after(node.now(), wait)));
            tracing::warn!(relay = %id, error = %e, "relay delivery failed; will retry");
            node.db
                .write(|_, tx| {
                    tx.batch.put(Tree::Relay, k.to_vec(), q.encode_to_vec());
                    Ok::<_, StoreError>(())
                })
                .await?;
            Ok(false)
        }
    }
}

/// Recipient: a sealed message arrives from a hub we joined. Returns the
/// sender and its call, verified; the federation handler hands the call to
/// the handler it names (`federation::deliver_relayed`).
pub async fn open(
    node: &Node,
    caller: &str,
    req: pb::DeliverSealedRequest,
) -> Result<(String, pb::RelayedCall), ExchangeError> {
    if !crate::hub::directory::joined_hubs(node)?.iter().any(|h| h == caller) {
        return Err(ExchangeError::Refused(format!("{caller} is not a hub this node joined")));
    }
    let sealed = req.sealed.ok_or_else(|| exchange::invalid("sealed", "required"))?;
    if sealed.recipient != node.id() {
        return Err(ExchangeError::Refused("sealed for another node".into()));
    }
    let (sk, _) = node.identity.sealing_keypair();
    let plain = crate::seal::open(&sk, &sealed.sender, &sealed.recipient, &sealed.encapped_key, &sealed.ciphertext)
        .map_err(|e| ExchangeError::Refused(e.to_string()))?;
    let inner = pb::Envelope::decode(plain.as_slice()).map_err(|e| exchange::invalid("sealed", e.to_string()))?;
    // The sender signed the call: verify before decoding it.
    let call: pb::RelayedCall =
        envelope::open(&inner, payload::RELAYED_CALL, &sealed.sender, &exchange::key_of(node, &sealed.sender)?)?;
    let sender = sealed.sender.clone();
    node.db
        .audit(vec![
            Event::new(format!("peer:{caller}"), "relay.received").reason(format!("{} from {sender}", req.relay_id))
        ])
        .await?;
    Ok((sender, call))
}

/// Entries waiting at the hub, for tests and metrics.
pub fn queued(node: &Node) -> Result<usize, StoreError> {
    node.db.store().len(store::Tree::Relay)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_senders_share_of_the_hub_is_bounded() {
        let full = Usage { messages: MAX_QUEUED_PER_SENDER, bytes: 10 };
        assert!(admit(full, 1).unwrap_err().contains("messages"));
        let heavy = Usage { messages: 1, bytes: MAX_BYTES_PER_SENDER - 5 };
        assert!(admit(heavy, 6).unwrap_err().contains("bytes"));
        assert_eq!(admit(heavy, 5), Ok(Usage { messages: 2, bytes: MAX_BYTES_PER_SENDER }));
        assert!(admit(Usage { messages: u64::MAX, bytes: u64::MAX }, u64::MAX).is_err(), "no overflow");
    }

    #[test]
    fn the_sender_cannot_choose_an_expiry_beyond_the_hubs() {
        let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let latest = now + DEFAULT_EXPIRY;
        assert_eq!(expiry(None, now), latest);
        let far = timestamp(now + time::Duration::days(3650));
        assert_eq!(expiry(Some(&far), now), latest);
        let soon = now + time::Duration::hours(1);
        assert_eq!(expiry(Some(&timestamp(soon)), now), soon);
        let past = timestamp(now - time::Duration::days(1));
        assert_eq!(expiry(Some(&past), now), now);
        let absurd = pbjson_types::Timestamp { seconds: i64::MAX, nanos: 0 };
        assert_eq!(expiry(Some(&absurd), now), latest);
    }
}
