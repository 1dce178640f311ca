//! Sealed relay: a member with no direct route to another member sends
//! through the hub a message sealed to the recipient's key. The hub stores
//! and forwards it with retries until it expires, and sees (and logs) only
//! sender, recipient, size and time. The recipient opens it, checks the
//! sender's signature inside, and handles it exactly as if the sender had
//! called directly — its own policy checks included.

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
use crate::store::{self, StoreError, Tree};

/// How long the hub keeps trying when the sender sets no expiry.
pub const DEFAULT_EXPIRY: time::Duration = time::Duration::days(3);

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

fn route_key(peer: &str) -> Vec<u8> {
    format!("route/{peer}").into_bytes()
}

/// The hub to reach `peer` through, if a route is set.
pub fn route(node: &Node, peer: &str) -> Result<Option<String>, StoreError> {
    Ok(node.db.store().get(Tree::Meta, &route_key(peer))?.map(|v| String::from_utf8_lossy(&v).into_owned()))
}

pub async fn set_route(node: &Node, actor: &str, peer: &str, via: &str) -> Result<(), ExchangeError> {
    crate::peer::get(node, peer).map_err(|_| ExchangeError::NotFound(format!("peer {peer}")))?;
    if !via.is_empty() && !crate::hub::directory::joined_hubs(node)?.iter().any(|h| h == via) {
        return Err(exchange::invalid("via", format!("{via} is not a hub this node joined")));
    }
    node.db
        .write(|_, tx| {
            if via.is_empty() {
                tx.batch.delete(Tree::Meta, route_key(peer));
            } else {
                tx.batch.put(Tree::Meta, route_key(peer), via.as_bytes().to_vec());
            }
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
    let id = exchange::random_id("relay");
    let size = sealed.ciphertext.len();
    let recipient = sealed.recipient.clone();
    let q = Queued {
        sealed: Some(sealed),
        expire_time: req.expire_time.or(Some(timestamp(node.now() + DEFAULT_EXPIRY))),
        next_attempt: Some(timestamp(node.now())),
        attempts: 0,
    };
    node.db
        .write(|_, tx| {
            tx.batch.put(Tree::Relay, id.clone().into_bytes(), q.encode_to_vec());
            tx.audit(
                Event::new(format!("peer:{caller}"), "relay.accept")
                    .agreement(&agreement.agreement_id)
                    .reason(format!("{id}: {caller} → {recipient}, {size} bytes")),
            );
            Ok::<_, StoreError>(())
        })
        .await?;
    tracing::info!(relay = %id, from = %caller, to = %recipient, bytes = size, "relay accepted");
    node.outbox_wake.notify_one();
    Ok(id)
}

/// Hub: forward queued messages until delivered or expired.
pub fn spawn(node: Arc<Node>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = forward_due(&node).await {
                tracing::error!(error = %e, "relay forwarding failed");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

async fn forward_due(node: &Node) -> Result<(), ExchangeError> {
    let entries = node.db.store().range(Tree::Relay, Bound::Unbounded, Bound::Unbounded, 1000)?;
    metrics::gauge!("liaison_relay_queue").set(entries.len() as f64);
    let now = node.now();
    for (k, v) in entries {
        let id = String::from_utf8_lossy(&k).into_owned();
        let Ok(mut q) = Queued::decode(v.as_slice()) else { continue };
        let sealed = q.sealed.clone().unwrap_or_default();
        if q.expire_time.as_ref().and_then(from_timestamp).is_some_and(|t| now > t) {
            node.db
                .write(|_, tx| {
                    tx.batch.delete(Tree::Relay, k.clone());
                    tx.audit(
                        Event::new("node", "relay.expired")
                            .reason(format!("{id}: {} → {}", sealed.sender, sealed.recipient)),
                    );
                    Ok::<_, StoreError>(())
                })
                .await?;
            continue;
        }
        if q.next_attempt.as_ref().and_then(from_timestamp).is_some_and(|t| t > now) {
            continue;
        }
        let result = async {
            let mut c = exchange::client(node, &sealed.recipient).await?;
            c.deliver_sealed(pb::DeliverSealedRequest { relay_id: id.clone(), sealed: Some(sealed.clone()) })
                .await
                .map_err(|s| ExchangeError::from_status(&sealed.recipient, &s))?;
            Ok::<(), ExchangeError>(())
        }
        .await;
        match result {
            Ok(()) => {
                node.db
                    .write(|_, tx| {
                        tx.batch.delete(Tree::Relay, k.clone());
                        tx.audit(Event::new("node", "relay.forwarded").reason(format!(
                            "{id}: {} → {}, {} bytes",
                            sealed.sender,
                            sealed.recipient,
                            sealed.ciphertext.len()
                        )));
                        Ok::<_, StoreError>(())
                    })
                    .await?;
            }
            Err(e) => {
                q.attempts += 1;
                q.next_attempt = Some(timestamp(now + time::Duration::seconds((1i64 << q.attempts.min(6)).min(60))));
                tracing::warn!(relay = %id, error = %e, "relay delivery failed; will retry");
                node.db
                    .write(|_, tx| {
                        tx.batch.put(Tree::Relay, k.clone(), q.encode_to_vec());
                        Ok::<_, StoreError>(())
                    })
                    .await?;
            }
        }
    }
    Ok(())
}

/// Recipient: a sealed message arrives from a hub we joined.
pub async fn receive(node: &Node, caller: &str, req: pb::DeliverSealedRequest) -> Result<(), ExchangeError> {
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
    match call.call {
        Some(pb::relayed_call::Call::PushRecord(p)) => {
            crate::exchange::receive::push(node, &sender, p).await?;
        }
        Some(pb::relayed_call::Call::RequestEvent(e)) => {
            let env = e.event.ok_or_else(|| exchange::invalid("event", "required"))?;
            crate::sop::desk::receive(node, &sender, &e.delivery_id, env)
                .await
                .map_err(|e| ExchangeError::Refused(e.to_string()))?;
        }
        Some(pb::relayed_call::Call::RetractRecord(r)) => {
            crate::exchange::receive::retract(node, &sender, r).await?;
        }
        Some(pb::relayed_call::Call::CaseUpdate(c)) => {
            let env = c.case.ok_or_else(|| exchange::invalid("case", "required"))?;
            crate::sop::cases::receive(node, &sender, &c.delivery_id, env)
                .await
                .map_err(|e| ExchangeError::Refused(e.to_string()))?;
        }
        None => return Err(exchange::invalid("call", "empty")),
    }
    Ok(())
}

/// Entries waiting at the hub, for tests and metrics.
pub fn queued(node: &Node) -> Result<usize, StoreError> {
    node.db.store().len(store::Tree::Relay)
}
