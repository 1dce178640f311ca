//! Importing, listing, removing and pinging peers.

use std::time::Instant;

use crate::audit::Event;
use crate::convert::timestamp;
use crate::envelope::{self, payload};
use crate::identity::{self, fingerprint, IdentityError};
use crate::node::Node;
use crate::pb;
use crate::store::{self, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Card(#[from] IdentityError),
    #[error("card.node_id: {0} is this node's own id")]
    Own(String),
    #[error("peer {0} is already pinned with a different signing key; remove it first")]
    KeyConflict(String),
    #[error("card.tls_certificate: this certificate is already pinned for {0}")]
    CertConflict(String),
    #[error("peer {0} is not pinned")]
    NotFound(String),
    #[error("card.issue_time: this card for {0} is older than the one pinned; a replayed card cannot undo a rotation")]
    Stale(String),
    #[error("peer {peer} is unreachable: {reason}")]
    Unreachable { peer: String, reason: String },
    #[error("peer {peer} answered with an invalid card: {reason}")]
    BadAnswer { peer: String, reason: String },
    #[error(transparent)]
    Dial(#[from] crate::dial::DialError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies a signed card and pins it. Re-importing a newer card of the same
/// node (same signing key) replaces the pin, which is how certificates rotate.
/// Audited as `peer.add` by `actor`, in the same write.
pub async fn add(node: &Node, actor: &str, card_env: pb::Envelope, source: &str) -> Result<pb::Peer, PeerError> {
    let card = identity::verify_card(&card_env)?;
    if card.node_id == node.id() {
        return Err(PeerError::Own(card.node_id));
    }
    let fp = fingerprint(&card.tls_certificate);
    let peer = pb::Peer {
        card: Some(card.clone()),
        card_envelope: Some(card_env),
        tls_fingerprint: hex::encode(fp),
        pin_time: Some(timestamp(node.now())),
        source: source.to_string(),
    };
    node.db
        .write(|st, tx| {
            let existing = store::peers::get(st, &card.node_id)?;
            if let Some(existing) = &existing {
                let same_key = existing.card.as_ref().is_some_and(|c| c.signing_public_key == card.signing_public_key);
                if !same_key {
                    return Err(PeerError::KeyConflict(card.node_id.clone()));
                }
                let issued = |c: &pb::NodeCard| c.issue_time.as_ref().map(|t| (t.seconds, t.nanos));
                if existing.card.as_ref().and_then(issued) > issued(&card) {
                    return Err(PeerError::Stale(card.node_id.clone()));
                }
            }
            if let Some(other) = node.pins.node_for(&card.tls_certificate) {
                if other != card.node_id {
                    return Err(PeerError::CertConflict(other));
                }
            }
            let replaced = if existing.is_some() { "; replaces the previous pin" } else { "" };
            store::peers::put(tx, &peer);
            tx.audit(
                Event::new(actor, "peer.add")
                    .reason(format!("{} certificate {} from {source}{replaced}", card.node_id, peer.tls_fingerprint)),
            );
            Ok(())
        })
        .await?;
    node.peers.forget(&card.node_id);
    // A new card may carry a rotated certificate: the old one stops working at once.
    node.pins.remove_node(&card.node_id);
    node.pins.insert(&card.tls_certificate, &card.node_id);
    tracing::info!(peer = %card.node_id, fingerprint = %peer.tls_fingerprint, "peer pinned");
    Ok(peer)
}

/// Un-pins a peer. Audited as `peer.remove` by `actor`, in the same write.
pub async fn remove(node: &Node, actor: &str, node_id: &str) -> Result<(), PeerError> {
    node.db
        .write(|st, tx| {
            let Some(old) = store::peers::get(st, node_id)? else {
                return Err(PeerError::NotFound(node_id.to_string()));
            };
            store::peers::delete(tx, node_id);
            tx.audit(
                Event::new(actor, "peer.remove")
                    .reason(format!("{node_id} certificate {} (pinned from {})", old.tls_fingerprint, old.source)),
            );
            Ok(())
        })
        .await?;
    // Un-pin at once: new handshakes from it fail, calls on open connections are refused.
    node.pins.remove_node(node_id);
    node.peers.forget(node_id);
    tracing::info!(peer = %node_id, "peer removed");
    Ok(())
}

pub fn get(node: &Node, node_id: &str) -> Result<pb::Peer, PeerError> {
    store::peers::get(node.db.store(), node_id)?.ok_or_else(|| PeerError::NotFound(node_id.to_string()))
}

pub fn card_of(peer: &pb::Peer) -> Result<&pb::NodeCard, PeerError> {
    peer.card.as_ref().ok_or_else(|| PeerError::Store(StoreError::Corrupt("peer without card".into())))
}

/// Calls `Hello` on the peer and checks the card it returns against the pin.
pub async fn ping(node: &Node, node_id: &str) -> Result<(pb::NodeCard, u128), PeerError> {
    let peer = get(node, node_id)?;
    let pinned = card_of(&peer)?;
    let mut client = node.peers.client(&node.identity, pinned)?;
    let started = Instant::now();
    let resp = client
        .hello(pb::HelloRequest { node_id: node.id().to_string() })
        .await
        .map_err(|s| PeerError::Unreachable { peer: node_id.to_string(), reason: s.message().to_string() })?
        .into_inner();
    let rtt = started.elapsed().as_millis();
    let env = resp.card.ok_or_else(|| PeerError::BadAnswer { peer: node_id.to_string(), reason: "no card".into() })?;
    let key = envelope::verifying_key(&pinned.signing_public_key)
        .map_err(|e| PeerError::BadAnswer { peer: node_id.to_string(), reason: e.to_string() })?;
    // Verify with the pinned key before decoding.
    let card: pb::NodeCard = envelope::open(&env, payload::NODE_CARD, node_id, &key)
        .map_err(|e| PeerError::BadAnswer { peer: node_id.to_string(), reason: e.to_string() })?;
    if card.node_id != node_id || card.tls_certificate != pinned.tls_certificate {
        return Err(PeerError::BadAnswer {
            peer: node_id.to_string(),
            reason: "card does not match the pinned card".into(),
        });
    }
    Ok((card, rtt))
}
