//! The outbox as stored: items (`Tree::Outbox`), the index of pending items
//! and the index of who holds a copy of each record (both in `Tree::Meta`),
//! always written together in one transaction. What an item does next is
//! the core's `outbox` module; the node's `delivery` makes the calls.

use std::ops::Bound;

use liaison_core::audit::Event;
use liaison_core::outbox::{next_holder, Holder};
use prost::Message;

use crate::convert::timestamp;
use crate::pb;
use crate::{Store, StoreError, Tree, Tx};

/// A fresh random id: `<prefix>-<24 hex digits>`.
pub fn random_id(prefix: &str) -> String {
    let b: [u8; 12] = rand::random();
    format!("{prefix}-{}", hex::encode(b))
}

/// Stores `s` (a new state of an item already queued) and keeps the indexes in step.
pub fn put(st: &dyn Store, tx: &mut Tx, s: &Stored) -> Result<(), StoreError> {
    let i = item_of(s);
    let was_pending = st
        .get(Tree::Outbox, i.delivery_id.as_bytes())?
        .map(|v| decode(&v))
        .transpose()?
        .is_some_and(|p| item_of(&p).state == pb::OutboxState::Pending as i32);
    tx.batch.put(Tree::Outbox, i.delivery_id.clone().into_bytes(), s.encode_to_vec());
    index(st, tx, &i, was_pending)
}

/// An outbox entry: the public view plus what must be sent for withdrawals.
#[derive(Clone, PartialEq, Message)]
pub struct Stored {
    #[prost(message, optional, tag = "1")]
    pub item: Option<pb::OutboxItem>,
    /// For withdrawals: the originator's signed, withdrawn record.
    #[prost(message, optional, tag = "2")]
    pub payload: Option<pb::Envelope>,
    /// For request steps and case updates: the SOP terms the step travels
    /// under, decided again at every attempt.
    #[prost(message, optional, tag = "3")]
    pub terms: Option<StepTerms>,
}

/// What a request step or case update needs from the policy when it is sent.
#[derive(Clone, PartialEq, Message)]
pub struct StepTerms {
    /// The request's agreement; empty for case steps (any agreement that allows the step).
    #[prost(string, tag = "1")]
    pub agreement_id: String,
    #[prost(string, tag = "2")]
    pub request_type: String,
    // The same varint on the wire as before; typed for its getter.
    #[prost(enumeration = "pb::Purpose", tag = "3")]
    pub purpose: i32,
}

/// Index of pending items (`outbox-pending/<delivery id>` in the meta tree),
/// written in the same transaction as the item's state, so the deliverer's
/// scan every half second reads only what is pending — never the delivered
/// items kept as evidence.
const PENDING_PREFIX: &str = "outbox-pending/";

/// Set once the index covers items queued before it existed.
const PENDING_INDEXED: &[u8] = b"outbox-pending-indexed";

/// Index of who holds, or is being sent, a copy of a record
/// (`outbox-holder/<record key>\0<peer>` → [`Holder`]), kept in the same
/// transaction as the items it counts. A new version or a withdrawal goes to
/// every holder, including a peer whose share is still in flight.
const HOLDER_PREFIX: &str = "outbox-holder/";

/// Set once the holder index covers items queued before it existed.
const HOLDERS_INDEXED: &[u8] = b"outbox-holders-indexed";

fn pending_key(delivery_id: &str) -> Vec<u8> {
    format!("{PENDING_PREFIX}{delivery_id}").into_bytes()
}

fn holders_prefix(record_key: &str) -> Vec<u8> {
    format!("{HOLDER_PREFIX}{record_key}\0").into_bytes()
}

fn holder_key(record_key: &str, peer: &str) -> Vec<u8> {
    let mut k = holders_prefix(record_key);
    k.extend_from_slice(peer.as_bytes());
    k
}

fn holder(st: &dyn Store, record_key: &str, peer: &str) -> Result<Option<Holder>, StoreError> {
    st.get(Tree::Meta, &holder_key(record_key, peer))?
        .map(|v| Holder::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(format!("outbox holder: {e}"))))
        .transpose()
}

/// Keeps the pending and holder indexes in step with an item written in
/// `tx`; `was_pending` says whether the stored item was pending before.
fn index(st: &dyn Store, tx: &mut Tx, i: &pb::OutboxItem, was_pending: bool) -> Result<(), StoreError> {
    let pending = i.state == pb::OutboxState::Pending as i32;
    if pending {
        tx.batch.put(Tree::Meta, pending_key(&i.delivery_id), Vec::new());
    } else {
        tx.batch.delete(Tree::Meta, pending_key(&i.delivery_id));
    }
    if i.action == pb::OutboxAction::Share as i32 && (pending || was_pending) {
        let state = i.state();
        let key = holder_key(&i.record_key, &i.peer);
        match next_holder(holder(st, &i.record_key, &i.peer)?, i.purpose, was_pending, state) {
            Some(h) => tx.batch.put(Tree::Meta, key, h.encode_to_vec()),
            None => tx.batch.delete(Tree::Meta, key),
        };
    }
    Ok(())
}

/// Builds the indexes once for a store whose outbox predates them. Called
/// when the node opens, before anything is queued.
pub fn build_indexes(st: &dyn Store) -> Result<(), StoreError> {
    let need_pending = st.get(Tree::Meta, PENDING_INDEXED)?.is_none();
    let need_holders = st.get(Tree::Meta, HOLDERS_INDEXED)?.is_none();
    if !need_pending && !need_holders {
        return Ok(());
    }
    let mut batch = crate::Batch::default();
    let mut holders: std::collections::BTreeMap<Vec<u8>, Option<Holder>> = std::collections::BTreeMap::new();
    for s in all(st)? {
        let i = item_of(&s);
        let pending = i.state == pb::OutboxState::Pending as i32;
        if need_pending && pending {
            batch.put(Tree::Meta, pending_key(&i.delivery_id), Vec::new());
        }
        if need_holders && i.action == pb::OutboxAction::Share as i32 {
            let k = holder_key(&i.record_key, &i.peer);
            let before = holders.remove(&k).flatten();
            let state = i.state();
            holders.insert(k, next_holder(before, i.purpose, false, state));
        }
    }
    for (k, h) in holders {
        if let Some(h) = h {
            batch.put(Tree::Meta, k, h.encode_to_vec());
        }
    }
    batch.put(Tree::Meta, PENDING_INDEXED.to_vec(), Vec::new());
    batch.put(Tree::Meta, HOLDERS_INDEXED.to_vec(), Vec::new());
    st.apply(&batch)
}

/// The pending items of a store's outbox, through the index (what the
/// deliverer reads every half second).
pub fn pending_in(st: &dyn Store) -> Result<Vec<Stored>, StoreError> {
    let start = Bound::Included(PENDING_PREFIX.as_bytes().to_vec());
    let end = crate::prefix_end(PENDING_PREFIX.as_bytes()).map_or(Bound::Unbounded, Bound::Excluded);
    let mut out = Vec::new();
    for (k, _) in st.range(Tree::Meta, start, end, usize::MAX)? {
        let id = &k[PENDING_PREFIX.len()..];
        if let Some(v) = st.get(Tree::Outbox, id)? {
            out.push(decode(&v)?);
        }
    }
    Ok(out)
}

pub fn decode(v: &[u8]) -> Result<Stored, StoreError> {
    Stored::decode(v).map_err(|e| StoreError::Corrupt(format!("outbox: {e}")))
}

pub fn all(st: &dyn Store) -> Result<Vec<Stored>, StoreError> {
    st.range(Tree::Outbox, Bound::Unbounded, Bound::Unbounded, usize::MAX)?
        .into_iter()
        .map(|(_, v)| decode(&v))
        .collect()
}

pub fn item_of(s: &Stored) -> pb::OutboxItem {
    s.item.clone().unwrap_or_default()
}

/// Queues `s` inside the caller's transaction, so a change and the
/// deliveries it causes are stored together or not at all. The caller wakes
/// the deliverer (`Node::outbox_wake`) once the write is committed.
pub fn queue(st: &dyn Store, tx: &mut Tx, actor: &str, s: &Stored) -> Result<(), StoreError> {
    let i = item_of(s);
    let what = match i.action() {
        pb::OutboxAction::Withdraw => "exchange.withdraw.queue",
        pb::OutboxAction::Share => "exchange.share.queue",
        _ => "exchange.step.queue",
    };
    tx.audit(Event::new(actor, what).record(&i.record_key).reason(format!("to {} ({})", i.peer, i.delivery_id)));
    tx.batch.put(Tree::Outbox, i.delivery_id.clone().into_bytes(), s.encode_to_vec());
    index(st, tx, &i, false)
}

pub fn new_item(
    now: time::OffsetDateTime,
    action: pb::OutboxAction,
    peer: &str,
    key: &str,
    version: u64,
    purpose: pb::Purpose,
) -> pb::OutboxItem {
    let now = timestamp(now);
    pb::OutboxItem {
        delivery_id: random_id("dlv"),
        action: action as i32,
        peer: peer.into(),
        record_key: key.into(),
        version,
        purpose: purpose as i32,
        state: pb::OutboxState::Pending as i32,
        attempts: 0,
        create_time: Some(now),
        next_attempt_time: Some(now),
        last_error: String::new(),
        receipt: None,
    }
}

/// Peers that hold, or are being sent, a copy of `key`, with the purpose it went for.
fn holders(st: &dyn Store, key: &str) -> Result<Vec<(String, pb::Purpose)>, StoreError> {
    let prefix = holders_prefix(key);
    let mut out = Vec::new();
    for (k, v) in crate::scan_prefix(st, Tree::Meta, &prefix, None, usize::MAX)? {
        let peer = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        let h = Holder::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(format!("outbox holder: {e}")))?;
        out.push((peer, h.purpose()));
    }
    Ok(out)
}

/// In the transaction that stores a new version of `key`: the new version
/// goes to every holder of an older one, including one whose share is still
/// in flight. Returns how many were queued.
pub fn queue_update(st: &dyn Store, tx: &mut Tx, actor: &str, key: &str, version: u64) -> Result<usize, StoreError> {
    let to = holders(st, key)?;
    for (peer, purpose) in &to {
        let item = new_item(tx.now, pb::OutboxAction::Share, peer, key, version, *purpose);
        queue(st, tx, actor, &Stored { item: Some(item), payload: None, terms: None })?;
    }
    Ok(to.len())
}

/// In the transaction that withdraws (or purges) `key`: the signed withdrawn
/// record goes to every holder. Returns how many were queued.
pub fn queue_withdrawal(
    st: &dyn Store,
    tx: &mut Tx,
    actor: &str,
    key: &str,
    withdrawn: &pb::Envelope,
) -> Result<usize, StoreError> {
    let to = holders(st, key)?;
    for (peer, purpose) in &to {
        let item = new_item(tx.now, pb::OutboxAction::Withdraw, peer, key, 0, *purpose);
        queue(st, tx, actor, &Stored { item: Some(item), payload: Some(withdrawn.clone()), terms: None })?;
    }
    Ok(to.len())
}

/// In the caller's transaction: a signed agreement document or notice for
/// each of `parties`, delivered (and retried) like everything else, so a
/// party that is down while an agreement is proposed, accepted, suspended or
/// revoked still gets it. Returns the delivery ids, one per party.
#[allow(clippy::too_many_arguments)]
pub fn queue_agreement(
    st: &dyn Store,
    tx: &mut Tx,
    actor: &str,
    action: pb::OutboxAction,
    parties: &[String],
    id: &str,
    version: u32,
    signed: &pb::Envelope,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut ids = Vec::new();
    for peer in parties {
        let item = new_item(tx.now, action, peer, id, u64::from(version), pb::Purpose::Unspecified);
        ids.push((peer.clone(), item.delivery_id.clone()));
        queue(st, tx, actor, &Stored { item: Some(item), payload: Some(signed.clone()), terms: None })?;
    }
    Ok(ids)
}

/// In the caller's transaction: a signed payload (a request step or a case
/// update) for `peer`.
#[allow(clippy::too_many_arguments)]
pub fn queue_payload(
    st: &dyn Store,
    tx: &mut Tx,
    actor: &str,
    action: pb::OutboxAction,
    peer: &str,
    reference: &str,
    payload: pb::Envelope,
    terms: StepTerms,
) -> Result<(), StoreError> {
    let item = new_item(tx.now, action, peer, reference, 0, pb::Purpose::Unspecified);
    queue(st, tx, actor, &Stored { item: Some(item), payload: Some(payload), terms: Some(terms) })
}
