//! The outbox deliverer: one worker per peer delivers that peer's pending
//! items in queue order (the core's `outbox::next_due`), each attempt asking
//! the policy again, going direct or through a hub's relay, and settling the
//! item by the core's `outbox::next`. It sits above `exchange` and `hub`
//! because it uses both; nothing below imports it.

use crate::convert::ProtoEnum;
use std::sync::Arc;
use std::time::Duration;

use crate::audit::Event;
use crate::envelope::{self, payload};
use crate::exchange::outbox::{
    expired, item_of, next, next_due, prepare, queue_order, Code, Failure, Outcome, StepTerms, Stored, ATTEMPT_TIMEOUT,
};
use crate::exchange::{self, ExchangeError};
use crate::node::Node;
use crate::pb;
use crate::store::StoreError;

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
    let purpose = t.purpose();
    let only = (!t.agreement_id.is_empty()).then_some(t.agreement_id.as_str());
    // The addressee was checked when the request was made and is checked by
    // the receiver; what may change since is the agreement's state.
    let decided =
        crate::policy::decide_request(&agreements, node.id(), peer, &t.request_type, purpose, None, node.now(), only);
    Ok(match decided {
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
            crate::store::outbox::put(st, tx, &s)?;
            let delivered = i.state == pb::OutboxState::Delivered as i32;
            if delivered && i.action == pb::OutboxAction::Share as i32 && i.record_key.starts_with(&own) {
                crate::store::released::mark(tx, &i.record_key, &i.peer);
            }
            match pb::OutboxState::of(i.state) {
                Some(pb::OutboxState::Delivered) => tx.audit(
                    Event::new("node", "exchange.delivered")
                        .record(&i.record_key)
                        .reason(format!("to {} ({})", i.peer, i.delivery_id)),
                ),
                Some(pb::OutboxState::Refused) => tx.audit(
                    Event::new("node", "exchange.refused")
                        .record(&i.record_key)
                        .reason(format!("{}: {}", i.peer, i.last_error)),
                ),
                Some(pb::OutboxState::Failed) => tx.audit(
                    Event::new("node", "exchange.failed")
                        .record(&i.record_key)
                        .reason(format!("{}: {}", i.peer, i.last_error)),
                ),
                Some(pb::OutboxState::Expired) => tx.audit(
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
    let r: pb::Receipt = envelope::open(env, payload::RECEIPT, peer, &exchange::key_of(node, peer)?)?;
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
    let purpose = i.purpose();
    match check_step(node, &i.peer, s.terms.as_ref()) {
        Ok(StepCheck::Go) => {}
        Ok(StepCheck::Wait(why)) => return settle(node, s, Outcome::Held(why), now).await.map(Some),
        Ok(StepCheck::Refuse(why)) => return settle(node, s, Outcome::Refused(why), now).await.map(Some),
        Err(e) => {
            tracing::error!(delivery = %i.delivery_id, error = %e, "outbox policy check failed");
            return Ok(None);
        }
    }
    let action = i.action();
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
        let mut c = exchange::client(node, &i.peer).await?;
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
                Outcome::BadReceipt(format!("bad receipt: {}", exchange::refuse_answer(node, &i.peer, "receipt", e)))
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
        let mut c = exchange::client(node, &i.peer).await?;
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
    for s in crate::store::outbox::pending_in(node.db.store())? {
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
async fn deliver_in_order(node: &Node, queue: Vec<Stored>) {
    // The items' states, kept in step with each attempt: one pass over the
    // queue, never rebuilt (a peer back after a long outage may have
    // thousands waiting). Items before `from` are settled or skipped.
    let mut items: Vec<pb::OutboxItem> = queue.iter().map(item_of).collect();
    let mut from = 0;
    loop {
        let Some(n) = items.get(from..).and_then(|rest| next_due(rest, node.now())).map(|k| from + k) else {
            return;
        };
        let (Some(s), Some(slot)) = (queue.get(n), items.get_mut(n)) else { return };
        match attempt(node, s.clone()).await {
            Ok(Some(after)) => *slot = after,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(delivery = %slot.delivery_id, error = %e, "outbox update failed");
                return;
            }
        }
        from = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
