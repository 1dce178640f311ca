//! The durable outbox: shares and withdrawals wait here until the peer
//! answers, retried with back-off while it is unreachable. Delivery ids make
//! retries idempotent at the receiver; its signed receipt is kept as evidence.

use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use prost::Message;

use super::{decide, exchange_for, onward_facts, seal_shared, ExchangeError};
use crate::audit::Event;
use crate::convert::timestamp;
use crate::envelope::{self, payload};
use crate::node::Node;
use crate::pb;
use crate::policy::{Decision, Direction};
use crate::redact;
use crate::store::records;
use crate::store::{Store, StoreError, Tree};

// The protocol decisions are the core's; this module stores and calls.
pub use liaison_core::outbox::{
    expired, next, next_due, next_holder, queue_order, Code, Failure, Holder, Outcome, EXPIRY,
};

/// An error on the way to a peer, as the outbox's typed failure.
pub fn failure(e: ExchangeError) -> Failure {
    match e {
        ExchangeError::Denied(_) | ExchangeError::Refused(_) | ExchangeError::NotFound(_) => {
            Failure::Refused(e.to_string())
        }
        ExchangeError::PeerStatus { code, message, .. } => Failure::Peer { code: Code::from_i32(code as i32), message },
        other => Failure::Unanswered(other.to_string()),
    }
}

/// Budget for one attempt (connect, call, answer): a peer that hangs costs
/// its own queue this much, and nobody else anything.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

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
    #[prost(int32, tag = "3")]
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
fn index(st: &dyn Store, tx: &mut crate::store::Tx, i: &pb::OutboxItem, was_pending: bool) -> Result<(), StoreError> {
    let pending = i.state == pb::OutboxState::Pending as i32;
    if pending {
        tx.batch.put(Tree::Meta, pending_key(&i.delivery_id), Vec::new());
    } else {
        tx.batch.delete(Tree::Meta, pending_key(&i.delivery_id));
    }
    if i.action == pb::OutboxAction::Share as i32 && (pending || was_pending) {
        let state = pb::OutboxState::try_from(i.state).unwrap_or_default();
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
    let mut batch = crate::store::Batch::default();
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
            let state = pb::OutboxState::try_from(i.state).unwrap_or_default();
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

/// The pending items, through the index.
fn pending(node: &Node) -> Result<Vec<Stored>, StoreError> {
    pending_in(node.db.store())
}

/// The pending items of a store's outbox, through the index (what the
/// deliverer reads every half second).
pub fn pending_in(st: &dyn Store) -> Result<Vec<Stored>, StoreError> {
    let start = Bound::Included(PENDING_PREFIX.as_bytes().to_vec());
    let end = crate::store::prefix_end(PENDING_PREFIX.as_bytes()).map_or(Bound::Unbounded, Bound::Excluded);
    let mut out = Vec::new();
    for (k, _) in st.range(Tree::Meta, start, end, usize::MAX)? {
        let id = &k[PENDING_PREFIX.len()..];
        if let Some(v) = st.get(Tree::Outbox, id)? {
            out.push(decode(&v)?);
        }
    }
    Ok(out)
}

fn decode(v: &[u8]) -> Result<Stored, StoreError> {
    Stored::decode(v).map_err(|e| StoreError::Corrupt(format!("outbox: {e}")))
}

pub fn all(st: &dyn Store) -> Result<Vec<Stored>, StoreError> {
    st.range(Tree::Outbox, Bound::Unbounded, Bound::Unbounded, usize::MAX)?
        .into_iter()
        .map(|(_, v)| decode(&v))
        .collect()
}

fn item_of(s: &Stored) -> pb::OutboxItem {
    s.item.clone().unwrap_or_default()
}

pub fn list(node: &Node, everything: bool) -> Result<Vec<pb::OutboxItem>, ExchangeError> {
    let items = if everything { all(node.db.store())? } else { pending(node)? };
    Ok(items.iter().map(item_of).filter(|i| everything || i.state == pb::OutboxState::Pending as i32).collect())
}

/// Receipts kept for a record.
pub fn receipts(node: &Node, key: &str) -> Result<(Vec<pb::Receipt>, Vec<pb::Envelope>), ExchangeError> {
    let mut rs = Vec::new();
    let mut envs = Vec::new();
    for s in all(node.db.store())? {
        let i = item_of(&s);
        if i.record_key == key {
            if let Some(env) = i.receipt {
                if let Ok(r) = envelope::decode::<pb::Receipt>(&env) {
                    rs.push(r);
                    envs.push(env);
                }
            }
        }
    }
    Ok((rs, envs))
}

/// Queues `s` inside the caller's transaction, so a change and the
/// deliveries it causes are stored together or not at all. The caller wakes
/// the deliverer (`Node::outbox_wake`) once the write is committed.
pub fn queue(st: &dyn Store, tx: &mut crate::store::Tx, actor: &str, s: &Stored) -> Result<(), StoreError> {
    let i = item_of(s);
    let what = match pb::OutboxAction::try_from(i.action).unwrap_or_default() {
        pb::OutboxAction::Withdraw => "exchange.withdraw.queue",
        pb::OutboxAction::Share => "exchange.share.queue",
        _ => "exchange.step.queue",
    };
    tx.audit(Event::new(actor, what).record(&i.record_key).reason(format!("to {} ({})", i.peer, i.delivery_id)));
    tx.batch.put(Tree::Outbox, i.delivery_id.clone().into_bytes(), s.encode_to_vec());
    index(st, tx, &i, false)
}

fn new_item(
    now: time::OffsetDateTime,
    action: pb::OutboxAction,
    peer: &str,
    key: &str,
    version: u64,
    purpose: pb::Purpose,
) -> pb::OutboxItem {
    let now = timestamp(now);
    pb::OutboxItem {
        delivery_id: super::random_id("dlv"),
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

/// What one share would send now: the envelope, the consent (onward), the decision.
async fn prepare(
    node: &Node,
    actor: &str,
    key: &str,
    peer: &str,
    purpose: pb::Purpose,
) -> Result<(pb::SharedRecord, Option<pb::Envelope>, Decision), ExchangeError> {
    let stored = records::get(node.db.store(), key)?.ok_or_else(|| ExchangeError::NotFound(format!("record {key}")))?;
    let rec = stored.record()?;
    if rec.withdrawn {
        return Err(ExchangeError::Refused(format!("record {key} is withdrawn")));
    }
    if peer == rec.originator {
        return Err(ExchangeError::Refused(format!("{peer} is the record's originator")));
    }
    let mut ex = exchange_for(node, peer, Direction::Outgoing, pb::Operation::Push, &rec, purpose);
    let mut consent = None;
    if let Some(prov) = &stored.provenance {
        ex.onward = Some(onward_facts(node, key, prov, &rec, peer, purpose)?);
        consent = super::consent::held(node, key, peer, purpose)?;
    }
    let d = decide(node, actor, ex, key).await?;
    let (plan, agreement_id, agreement_version, onward, retention_days) = match &d {
        Decision::Allow { plan, agreement_id, agreement_version, onward, retention_days } => {
            (plan, agreement_id.clone(), *agreement_version, *onward, *retention_days)
        }
        Decision::Deny(denial) => return Err(ExchangeError::Denied(denial.clone())),
    };
    let shared = if stored.provenance.is_some() {
        // Forward the originator's own signed bytes; we cannot re-sign them,
        // so a grant that would need more redaction than the originator applied refuses.
        if redact::redact(&rec, plan).body != rec.body {
            return Err(ExchangeError::Refused(format!(
                "sharing {key} with {peer} would need redaction the originator did not sign ({})",
                plan.remove.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        pb::SharedRecord {
            record: stored.envelope.clone(),
            agreement_id,
            agreement_version,
            onward_sharing: onward as i32,
            retention_days,
        }
    } else {
        seal_shared(node, &rec, &d).ok_or_else(|| ExchangeError::Refused("not allowed".into()))?
    };
    Ok((shared, consent, d))
}

/// Queues a share after checking it is allowed now (the sender's check).
pub async fn share(
    node: &Node,
    actor: &str,
    record_id: &str,
    peer: &str,
    purpose: pb::Purpose,
) -> Result<(pb::OutboxItem, pb::SharedRecord), ExchangeError> {
    crate::peer::get(node, peer).map_err(|_| ExchangeError::NotFound(format!("peer {peer}")))?;
    let key = records::resolve_key(node.id(), record_id);
    let (shared, _, _) = prepare(node, actor, &key, peer, purpose).await?;
    let item = node
        .db
        .write(|st, tx| {
            let version = records::get(st, &key)?.map(|s| s.record()).transpose()?.map_or(0, |r| r.version);
            let item = new_item(tx.now, pb::OutboxAction::Share, peer, &key, version, purpose);
            queue(st, tx, actor, &Stored { item: Some(item.clone()), payload: None, terms: None })?;
            Ok::<_, StoreError>(item)
        })
        .await?;
    node.outbox_wake.notify_one();
    Ok((item, shared))
}

/// Peers that hold, or are being sent, a copy of `key`, with the purpose it went for.
fn holders(st: &dyn Store, key: &str) -> Result<Vec<(String, pb::Purpose)>, StoreError> {
    let prefix = holders_prefix(key);
    let mut out = Vec::new();
    for (k, v) in crate::store::scan_prefix(st, Tree::Meta, &prefix, None, usize::MAX)? {
        let peer = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
        let h = Holder::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(format!("outbox holder: {e}")))?;
        out.push((peer, pb::Purpose::try_from(h.purpose).unwrap_or_default()));
    }
    Ok(out)
}

/// In the transaction that stores a new version of `key`: the new version
/// goes to every holder of an older one, including one whose share is still
/// in flight. Returns how many were queued.
pub fn queue_update(
    st: &dyn Store,
    tx: &mut crate::store::Tx,
    actor: &str,
    key: &str,
    version: u64,
) -> Result<usize, StoreError> {
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
    tx: &mut crate::store::Tx,
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
    tx: &mut crate::store::Tx,
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

/// Waits (at most `within`) until each of the given deliveries was tried,
/// and says for each whether it was delivered, or why it is still waiting.
pub async fn outcome(node: &Node, deliveries: &[(String, String)], within: Duration) -> Vec<pb::DeliveryResult> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        // Registered before the check, so progress made meanwhile is not missed.
        let progress = node.outbox_progress.notified();
        tokio::pin!(progress);
        progress.as_mut().enable();
        let items: Vec<pb::OutboxItem> = deliveries
            .iter()
            .map(|(_, id)| {
                let stored = node.db.store().get(Tree::Outbox, id.as_bytes()).ok().flatten();
                stored.and_then(|v| decode(&v).ok()).as_ref().map(item_of).unwrap_or_default()
            })
            .collect();
        // Each has been answered, or tried at least once (a party that is
        // down is reported as such; delivery goes on without the caller).
        let settled = items.iter().all(|i| i.state != pb::OutboxState::Pending as i32 || i.attempts > 0);
        if settled || tokio::time::timeout_at(deadline, progress).await.is_err() {
            return deliveries
                .iter()
                .zip(items)
                .map(|((peer, _), i)| {
                    let error = match pb::OutboxState::try_from(i.state) {
                        Ok(pb::OutboxState::Delivered) => String::new(),
                        Ok(pb::OutboxState::Pending) if i.last_error.is_empty() => {
                            "not answered yet; delivery continues".into()
                        }
                        Ok(pb::OutboxState::Pending) => format!("{} (retried until delivered)", i.last_error),
                        _ => i.last_error,
                    };
                    pb::DeliveryResult {
                        node_id: peer.clone(),
                        delivered: i.state == pb::OutboxState::Delivered as i32,
                        error,
                    }
                })
                .collect();
        }
    }
}

/// In the caller's transaction: a signed payload (a request step or a case
/// update) for `peer`.
#[allow(clippy::too_many_arguments)]
pub fn queue_payload(
    st: &dyn Store,
    tx: &mut crate::store::Tx,
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

/// A request step or case update goes only while the policy allows it now.
/// A suspended (or not yet valid) agreement holds it back until resumed; a
/// revoked, expired or missing one refuses it for good.
enum StepCheck {
    Go,
    Wait(String),
    Refuse(String),
}

fn check_step(node: &Node, peer: &str, terms: Option<&StepTerms>) -> Result<StepCheck, ExchangeError> {
    let Some(t) = terms else { return Ok(StepCheck::Go) };
    let agreements = crate::agreement::book::for_policy(node)?;
    let purpose = pb::Purpose::try_from(t.purpose).unwrap_or_default();
    let only = (!t.agreement_id.is_empty()).then_some(t.agreement_id.as_str());
    Ok(match crate::policy::decide_request(&agreements, node.id(), peer, &t.request_type, purpose, node.now(), only) {
        Ok(_) => StepCheck::Go,
        Err(
            d @ crate::policy::Denial::AgreementNotActive {
                state: pb::AgreementState::Suspended | pb::AgreementState::Pending,
                ..
            },
        ) => StepCheck::Wait(format!("held back ({}): {d}", d.code())),
        Err(d) => StepCheck::Refuse(format!("denied ({}): {d}", d.code())),
    })
}

/// Stores the item's new state; returns it.
async fn finish(node: &Node, s: Stored) -> Result<pb::OutboxItem, StoreError> {
    let i = item_of(&s);
    update(node, s).await?;
    node.outbox_progress.notify_waiters();
    Ok(i)
}

async fn update(node: &Node, s: Stored) -> Result<(), StoreError> {
    let i = item_of(&s);
    let own = format!("{}/", node.id());
    node.db
        .write(|st, tx| {
            let was_pending = st
                .get(Tree::Outbox, i.delivery_id.as_bytes())?
                .map(|v| decode(&v))
                .transpose()?
                .is_some_and(|p| item_of(&p).state == pb::OutboxState::Pending as i32);
            tx.batch.put(Tree::Outbox, i.delivery_id.clone().into_bytes(), s.encode_to_vec());
            index(st, tx, &i, was_pending)?;
            let delivered = i.state == pb::OutboxState::Delivered as i32;
            if delivered && i.action == pb::OutboxAction::Share as i32 && i.record_key.starts_with(&own) {
                super::mark_released(tx, &i.record_key, &i.peer);
            }
            match pb::OutboxState::try_from(i.state) {
                Ok(pb::OutboxState::Delivered) => tx.audit(
                    Event::new("node", "exchange.delivered")
                        .record(&i.record_key)
                        .reason(format!("to {} ({})", i.peer, i.delivery_id)),
                ),
                Ok(pb::OutboxState::Refused) => tx.audit(
                    Event::new("node", "exchange.refused")
                        .record(&i.record_key)
                        .reason(format!("{}: {}", i.peer, i.last_error)),
                ),
                Ok(pb::OutboxState::Failed) => tx.audit(
                    Event::new("node", "exchange.failed")
                        .record(&i.record_key)
                        .reason(format!("{}: {}", i.peer, i.last_error)),
                ),
                Ok(pb::OutboxState::Expired) => tx.audit(
                    Event::new("node", "exchange.expired").record(&i.record_key).reason(format!("to {}", i.peer)),
                ),
                _ => {}
            }
            Ok::<_, StoreError>(())
        })
        .await
}

/// Verifies a receipt: signed by the peer over the exact bytes, for this delivery.
fn check_receipt(node: &Node, peer: &str, delivery_id: &str, env: &pb::Envelope) -> Result<pb::Receipt, ExchangeError> {
    let r: pb::Receipt = envelope::open(env, payload::RECEIPT, peer, &super::key_of(node, peer)?)?;
    if r.delivery_id != delivery_id || r.receiver != peer {
        return Err(ExchangeError::Refused("receipt is for another delivery".into()));
    }
    Ok(r)
}

/// One delivery attempt; true when the item is finished (delivered, refused,
/// failed or expired). The IO happens here; what it means for the item is
/// [`next`]'s decision.
async fn attempt(node: &Node, s: Stored) -> Result<Option<pb::OutboxItem>, StoreError> {
    let i = item_of(&s);
    let now = node.now();
    if expired(&i, now) {
        return settle(node, s, Outcome::Expired, now).await.map(Some);
    }
    let purpose = pb::Purpose::try_from(i.purpose).unwrap_or_default();
    match check_step(node, &i.peer, s.terms.as_ref()) {
        Ok(StepCheck::Go) => {}
        Ok(StepCheck::Wait(why)) => return settle(node, s, Outcome::Held(why), now).await.map(Some),
        Ok(StepCheck::Refuse(why)) => return settle(node, s, Outcome::Refused(why), now).await.map(Some),
        Err(e) => {
            tracing::error!(delivery = %i.delivery_id, error = %e, "outbox policy check failed");
            return Ok(None);
        }
    }
    let action = pb::OutboxAction::try_from(i.action).unwrap_or_default();
    // Agreements are between the parties themselves: never through a hub.
    let via = match action {
        pb::OutboxAction::Agreement | pb::OutboxAction::AgreementNotice => None,
        _ => crate::hub::relay::route(node, &i.peer)?,
    };
    if let Some(hub) = via {
        // No direct route: seal the call to the peer and let the hub carry it.
        let relayed: Result<String, ExchangeError> = async {
            let delivery_id = i.delivery_id.clone();
            let call = match action {
                pb::OutboxAction::RequestEvent => {
                    pb::relayed_call::Call::RequestEvent(pb::DeliverRequestEventRequest {
                        delivery_id,
                        event: s.payload.clone(),
                    })
                }
                pb::OutboxAction::Withdraw => pb::relayed_call::Call::RetractRecord(pb::RetractRecordRequest {
                    delivery_id,
                    record: s.payload.clone(),
                }),
                pb::OutboxAction::CaseUpdate => pb::relayed_call::Call::CaseUpdate(pb::DeliverCaseUpdateRequest {
                    delivery_id,
                    case: s.payload.clone(),
                }),
                _ => {
                    let (shared, consent, _) = prepare(node, "node", &i.record_key, &i.peer, purpose).await?;
                    pb::relayed_call::Call::PushRecord(pb::PushRecordRequest {
                        delivery_id,
                        shared: Some(shared),
                        purpose: i.purpose,
                        consent,
                    })
                }
            };
            crate::hub::relay::send(node, &hub, &i.peer, pb::RelayedCall { call: Some(call) }).await
        }
        .await;
        let outcome = match relayed {
            Ok(id) => Outcome::Delivered { note: format!("relayed via {hub} ({id})"), receipt: None },
            Err(e) => Outcome::Failed(failure(e)),
        };
        return settle(node, s, outcome, now).await.map(Some);
    }
    if matches!(action, pb::OutboxAction::Agreement | pb::OutboxAction::AgreementNotice) {
        return deliver_agreement(node, s, action, now).await.map(Some);
    }
    let result = async {
        let mut c = super::client(node, &i.peer).await?;
        let reply = if action == pb::OutboxAction::Withdraw {
            let req = pb::RetractRecordRequest { delivery_id: i.delivery_id.clone(), record: s.payload.clone() };
            c.retract_record(tonic::Request::new(req)).await.map(|r| r.into_inner().receipt)
        } else if action == pb::OutboxAction::RequestEvent {
            let req = pb::DeliverRequestEventRequest { delivery_id: i.delivery_id.clone(), event: s.payload.clone() };
            c.deliver_request_event(tonic::Request::new(req)).await.map(|r| r.into_inner().receipt)
        } else if action == pb::OutboxAction::CaseUpdate {
            let req = pb::DeliverCaseUpdateRequest { delivery_id: i.delivery_id.clone(), case: s.payload.clone() };
            c.deliver_case_update(tonic::Request::new(req)).await.map(|r| r.into_inner().receipt)
        } else {
            // The policy is asked again at send time: a revoked agreement stops the share.
            let (shared, consent, _) = prepare(node, "node", &i.record_key, &i.peer, purpose).await?;
            let req = pb::PushRecordRequest {
                delivery_id: i.delivery_id.clone(),
                shared: Some(shared),
                purpose: i.purpose,
                consent,
            };
            c.push_record(tonic::Request::new(req)).await.map(|r| r.into_inner().receipt)
        };
        let receipt = reply.map_err(|st| ExchangeError::from_status(&i.peer, &st))?;
        receipt.ok_or_else(|| ExchangeError::Refused("answer without a receipt".into()))
    };
    let outcome = match within_budget(&i.peer, result).await {
        Ok(env) => match check_receipt(node, &i.peer, &i.delivery_id, &env) {
            Ok(r) if r.delivered => Outcome::Delivered { note: r.reason, receipt: Some(env) },
            Ok(r) => Outcome::RefusedByPeer { reason: r.reason, receipt: env },
            Err(e) => {
                Outcome::BadReceipt(format!("bad receipt: {}", super::refuse_answer(node, &i.peer, "receipt", e)))
            }
        },
        Err(e) => Outcome::Failed(failure(e)),
    };
    settle(node, s, outcome, now).await.map(Some)
}

/// One attempt's answer within [`ATTEMPT_TIMEOUT`]: a peer that hangs
/// costs its own queue that much, and nobody else anything.
async fn within_budget<T>(
    peer: &str,
    attempt: impl std::future::Future<Output = Result<T, ExchangeError>>,
) -> Result<T, ExchangeError> {
    tokio::time::timeout(ATTEMPT_TIMEOUT, attempt).await.unwrap_or_else(|_| {
        Err(ExchangeError::Peer {
            peer: peer.into(),
            reason: format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
        })
    })
}

/// Stores the item's next state after `outcome`; true when it is finished.
async fn settle(
    node: &Node,
    mut s: Stored,
    outcome: Outcome,
    now: time::OffsetDateTime,
) -> Result<pb::OutboxItem, StoreError> {
    let failed = matches!(outcome, Outcome::Failed(_));
    let i = next(item_of(&s), outcome, now);
    if failed && i.state == pb::OutboxState::Pending as i32 {
        metrics::counter!("liaison_outbox_retries_total").increment(1);
    }
    s.item = Some(i);
    finish(node, s).await
}

/// One attempt at an agreement document or notice. The party answers with
/// what it now holds rather than a receipt; its errors are typed like any
/// peer's, and only those that can change are retried.
async fn deliver_agreement(
    node: &Node,
    s: Stored,
    action: pb::OutboxAction,
    now: time::OffsetDateTime,
) -> Result<pb::OutboxItem, StoreError> {
    let i = item_of(&s);
    let result = async {
        let mut c = super::client(node, &i.peer).await?;
        let reply = if action == pb::OutboxAction::Agreement {
            let req = pb::DeliverAgreementRequest { agreement: s.payload.clone() };
            c.deliver_agreement(req).await.map(|r| format!("signed by {}", r.into_inner().signed_by.join(", ")))
        } else {
            let req = pb::DeliverAgreementNoticeRequest { notice: s.payload.clone() };
            c.deliver_agreement_notice(req).await.map(|_| "notice taken".to_string())
        };
        reply.map_err(|st| ExchangeError::from_status(&i.peer, &st))
    };
    let outcome = match within_budget(&i.peer, result).await {
        Ok(said) => Outcome::Delivered { note: said, receipt: None },
        Err(e) => Outcome::Failed(failure(e)),
    };
    settle(node, s, outcome, now).await
}

/// Delivers due items until the node stops; woken early by new items.
///
/// Each peer's queue has its own worker (`workers`), so a slow or hanging
/// peer holds up only its own items (at most [`ATTEMPT_TIMEOUT`] per attempt).
pub fn spawn(node: Arc<Node>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut workers = crate::workers::Workers::default();
        loop {
            let queues = match pending_by_peer(&node) {
                Ok(q) => q,
                Err(e) => {
                    tracing::error!(error = %e, "outbox scan failed");
                    Vec::new()
                }
            };
            for items in queues {
                let peer = items.first().map(item_of).map(|i| i.peer).unwrap_or_default();
                let n = Arc::clone(&node);
                workers.start(&peer, async move { deliver_in_order(&n, items).await });
            }
            workers.wait(&node.outbox_wake, Duration::from_millis(500)).await;
        }
    })
}

/// Pending items grouped by peer, oldest first.
fn pending_by_peer(node: &Node) -> Result<Vec<Vec<Stored>>, StoreError> {
    let mut by_peer: std::collections::BTreeMap<String, Vec<Stored>> = std::collections::BTreeMap::new();
    let mut depth = 0;
    for s in pending(node)? {
        let i = item_of(&s);
        if i.state == pb::OutboxState::Pending as i32 {
            depth += 1;
            by_peer.entry(i.peer.clone()).or_default().push(s);
        }
    }
    metrics::gauge!("liaison_outbox_depth").set(f64::from(depth));
    let key = |s: &Stored| queue_order(&item_of(s));
    Ok(by_peer
        .into_values()
        .map(|mut v| {
            v.sort_by_key(key);
            v
        })
        .collect())
}

/// Delivers one peer's items in the order they were queued, so that (for
/// example) a new version of a record arrives before the step that relies
/// on it. Which item goes next is the core's [`next_due`]; the round ends
/// when nothing is due or an attempt could not be settled.
async fn deliver_in_order(node: &Node, mut queue: Vec<Stored>) {
    loop {
        let items: Vec<pb::OutboxItem> = queue.iter().map(item_of).collect();
        let Some(s) = next_due(&items, node.now()).and_then(|n| queue.get_mut(n)) else { return };
        let id = item_of(s).delivery_id;
        match attempt(node, s.clone()).await {
            Ok(Some(after)) => s.item = Some(after),
            Ok(None) => return,
            Err(e) => {
                tracing::error!(delivery = %id, error = %e, "outbox update failed");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_out_outcomes_come_from_the_code_not_the_text() {
        let e = |code| ExchangeError::PeerStatus { peer: "kh".into(), code, message: "PermissionDenied".into() };
        assert_eq!(super::super::peer_outcome(&e(tonic::Code::PermissionDenied)), pb::PeerOutcome::Denied);
        assert_eq!(super::super::peer_outcome(&e(tonic::Code::DeadlineExceeded)), pb::PeerOutcome::TimedOut);
        // A message that merely mentions a code changes nothing.
        assert_eq!(super::super::peer_outcome(&e(tonic::Code::Internal)), pb::PeerOutcome::Unreachable);
    }

    #[test]
    fn failures_keep_the_peer_code() {
        let e =
            ExchangeError::PeerStatus { peer: "kh".into(), code: tonic::Code::PermissionDenied, message: "no".into() };
        assert_eq!(failure(e), Failure::Peer { code: Code::PermissionDenied, message: "no".into() });
        assert!(matches!(failure(ExchangeError::Refused("gone".into())), Failure::Refused(_)));
        let down = ExchangeError::Peer { peer: "kh".into(), reason: "connection refused".into() };
        assert!(matches!(failure(down), Failure::Unanswered(_)));
    }
}
