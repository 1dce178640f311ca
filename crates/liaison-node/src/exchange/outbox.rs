//! The durable outbox, as the exchange uses it: sharing a record (decided
//! now, queued for delivery), what a share would send at each attempt
//! (`prepare`, decided again), the items and receipts kept. Items wait in
//! the store (`store::outbox`) until `delivery` gets the peer's answer,
//! retried with back-off; delivery ids make retries idempotent at the
//! receiver, whose signed receipt is kept as evidence.

use std::time::Duration;

use super::{decide, exchange_for, onward_facts, seal_shared, ExchangeError};
use crate::envelope;
use crate::node::Node;
use crate::pb;
use crate::policy::{Decision, Direction};
use crate::redact;
use crate::store::records;
use crate::store::StoreError;

// The protocol decisions are the core's, the layout the store's; the
// deliverer is the node's `delivery` module.
pub use crate::store::outbox::{
    all, build_indexes, decode, item_of, new_item, pending_in, queue, queue_agreement, queue_payload, queue_update,
    queue_withdrawal, StepTerms, Stored,
};
pub use liaison_core::outbox::{
    expired, next, next_due, next_holder, queue_order, Code, Failure, Holder, Outcome, EXPIRY,
};

/// Budget for one attempt (connect, call, answer): a peer that hangs costs
/// its own queue this much, and nobody else anything.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

/// The pending items, through the index.
fn pending(node: &Node) -> Result<Vec<Stored>, StoreError> {
    pending_in(node.db.store())
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

/// Receipts kept for `key`, each with whether its signature verifies now
/// against the receiver's pinned key (what a person is shown as "verified").
pub fn checked_receipts(node: &Node, key: &str) -> Result<Vec<(pb::Receipt, bool)>, ExchangeError> {
    let (rs, envs) = receipts(node, key)?;
    Ok(rs
        .into_iter()
        .zip(envs)
        .map(|(r, env)| {
            let ok = super::key_of(node, &r.receiver).is_ok_and(|k| {
                envelope::verify_signer(&env, crate::envelope::payload::RECEIPT, &r.receiver, &k).is_ok()
            });
            (r, ok)
        })
        .collect())
}

/// What one share would send now: the envelope, the consent (onward), the decision.
pub(crate) async fn prepare(
    node: &Node,
    actor: &str,
    key: &str,
    peer: &str,
    purpose: pb::Purpose,
) -> Result<(pb::SharedRecord, Option<pb::Envelope>, Decision), ExchangeError> {
    prepare_as(node, actor, key, peer, purpose, Audited::Yes).await
}

/// Whether a decision goes on the audit log: a preview, which sends and
/// keeps nothing, does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audited {
    Yes,
    Preview,
}

async fn prepare_as(
    node: &Node,
    actor: &str,
    key: &str,
    peer: &str,
    purpose: pb::Purpose,
    audited: Audited,
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
    let d = match audited {
        Audited::Yes => decide(node, actor, ex, key).await?,
        Audited::Preview => super::preview(node, &ex)?,
    };
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
        seal_shared(node, &rec, &d, stored.envelope.as_ref())
            .ok_or_else(|| ExchangeError::Refused("not allowed".into()))?
    };
    Ok((shared, consent, d))
}

/// Decides a share exactly as [`share`] would, queuing and auditing
/// nothing: what a person sees before sending. The item is the one that
/// would be queued.
pub async fn preview(
    node: &Node,
    actor: &str,
    record_id: &str,
    peer: &str,
    purpose: pb::Purpose,
) -> Result<(pb::OutboxItem, pb::SharedRecord), ExchangeError> {
    crate::peer::get(node, peer).map_err(|_| ExchangeError::NotFound(format!("peer {peer}")))?;
    let key = records::resolve_key(node.id(), record_id);
    let (shared, _, _) = prepare_as(node, actor, &key, peer, purpose, Audited::Preview).await?;
    let version = records::get(node.db.store(), &key)?.map(|s| s.record()).transpose()?.map_or(0, |r| r.version);
    Ok((new_item(node.now(), pb::OutboxAction::Share, peer, &key, version, purpose), shared))
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
}
