//! Victim cases shared by the sending and receiving nodes: opened on a
//! victim referral, advanced one step at a time through the gates in
//! [`super::victim`], each new state delivered to the other node, which
//! checks the gates again with its own copy of the referral when it has one.

use crate::convert::ProtoEnum;
use std::ops::Bound;

use prost::Message;

use super::victim::{self, GateError};
use crate::agreement::book;
use crate::audit::Event;
use crate::envelope::{self, payload};
use crate::exchange::{self, outbox, ExchangeError};
use crate::node::Node;
use crate::pb::{self, CaseStage as C};
use crate::policy;
use crate::store::records;
use crate::store::{Store, StoreError, Tree};

#[derive(Debug, thiserror::Error)]
pub enum CaseError {
    #[error(transparent)]
    Gate(#[from] GateError),
    #[error("denied ({code}): {0}", code = .0.code())]
    Denied(policy::Denial),
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    NotReady(String),
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn key(id: &str) -> Vec<u8> {
    format!("case/{id}").into_bytes()
}

pub fn get(st: &dyn Store, id: &str) -> Result<Option<pb::VictimCase>, StoreError> {
    st.get(Tree::Requests, &key(id))?
        .map(|v| pb::VictimCase::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

pub fn all(st: &dyn Store) -> Result<Vec<pb::VictimCase>, StoreError> {
    let p = b"case/".to_vec();
    let end = crate::store::prefix_end(&p).map_or(Bound::Unbounded, Bound::Excluded);
    st.range(Tree::Requests, Bound::Included(p), end, usize::MAX)?
        .into_iter()
        .map(|(_, v)| pb::VictimCase::decode(v.as_slice()).map_err(|e| StoreError::Corrupt(e.to_string())))
        .collect()
}

/// The referral's facts as this node holds them (own record or a received
/// copy), with the record's version.
fn referral(st: &dyn Store, record_key: &str) -> Result<Option<(u64, pb::VictimReferral)>, StoreError> {
    let Some(rec) = records::get(st, record_key)?.map(|s| s.record()).transpose()? else { return Ok(None) };
    Ok(match rec.body {
        Some(pb::record::Body::VictimReferral(v)) => Some((rec.version, v)),
        _ => None,
    })
}

/// The step to `to` with `peer` must be allowed now (`policy::decide_case_step`).
fn check_agreement(node: &Node, peer: &str, to: C) -> Result<(), CaseError> {
    let agreements = book::for_policy(node).map_err(ExchangeError::from)?;
    policy::decide_case_step(&agreements, node.id(), peer, to, node.now()).map_err(CaseError::Denied)
}

/// The case's other parties, seen from this node.
fn others(node: &Node, case: &pb::VictimCase) -> Vec<String> {
    victim::parties(case).filter(|p| *p != node.id()).map(str::to_string).collect()
}

/// Stores the case and queues it, in the same write, for every other party.
async fn store_and_send(node: &Node, actor: &str, case: &pb::VictimCase, action: &str) -> Result<(), CaseError> {
    let others = others(node, case);
    let env = envelope::seal(payload::VICTIM_CASE, case, node.id(), &node.identity.signing_key);
    let to = case.history.last().and_then(|e| C::of(e.to)).unwrap_or(C::Referral);
    let (request_type, purpose) = policy::case_step_terms(to);
    let terms =
        outbox::StepTerms { agreement_id: String::new(), request_type: request_type.into(), purpose: purpose as i32 };
    // The case step and its delivery are one write.
    node.db
        .write(|st, tx| {
            tx.batch.put(Tree::Requests, key(&case.id), case.encode_to_vec());
            let stage = C::word_of(case.stage);
            tx.audit(
                Event::new(actor, action).record(&case.referral_record_id).reason(format!("{} → {stage}", case.id)),
            );
            for other in &others {
                outbox::queue_payload(
                    st,
                    tx,
                    actor,
                    pb::OutboxAction::CaseUpdate,
                    other,
                    &case.id,
                    env.clone(),
                    terms.clone(),
                )?;
            }
            Ok::<_, StoreError>(())
        })
        .await?;
    node.outbox_wake.notify_one();
    Ok(())
}

pub async fn open(
    node: &Node,
    actor: &str,
    referral_record_id: &str,
    receiving: &str,
    transit: &[String],
) -> Result<pb::VictimCase, CaseError> {
    let rk = records::resolve_key(node.id(), referral_record_id);
    if referral(node.db.store(), &rk)?.is_none() {
        return Err(CaseError::Invalid {
            field: "referral_record_id",
            reason: format!("{rk} is not a victim referral held here"),
        });
    }
    crate::peer::get(node, receiving).map_err(|_| CaseError::Invalid {
        field: "receiving_node",
        reason: format!("{receiving} is not a pinned peer"),
    })?;
    if transit.len() > victim::MAX_TRANSIT {
        return Err(CaseError::Invalid {
            field: "transit_nodes",
            reason: format!("at most {} transit countries", victim::MAX_TRANSIT),
        });
    }
    let mut case = victim::open(&exchange::random_id("case"), &rk, node.id(), receiving, node.id(), node.now());
    case.transit_nodes = transit.to_vec();
    if let Err(why) = victim::check_update(&case, node.id(), node.id()) {
        return Err(CaseError::Invalid { field: "transit_nodes", reason: why.into() });
    }
    for (i, t) in transit.iter().enumerate() {
        crate::peer::get(node, t).map_err(|_| CaseError::Invalid {
            field: "transit_nodes",
            reason: format!("transit_nodes[{i}]: {t} is not a pinned peer"),
        })?;
    }
    // Every party takes part under an agreement with this node.
    for p in others(node, &case) {
        check_agreement(node, &p, C::IdentificationConfirmed)?;
    }
    store_and_send(node, actor, &case, "case.open").await?;
    Ok(case)
}

/// The gates for the next step, for display.
pub fn next_gates(node: &Node, case: &pb::VictimCase) -> Result<Vec<pb::GateStatus>, CaseError> {
    let Some((_, v)) = referral(node.db.store(), &case.referral_record_id)? else { return Ok(vec![]) };
    Ok(victim::next_step(case).map(|next| victim::gates(&v, next, node.now())).unwrap_or_default())
}

pub async fn advance(node: &Node, actor: &str, id: &str, to: C, note: &str) -> Result<pb::VictimCase, CaseError> {
    if note.chars().count() > 2000 {
        return Err(CaseError::Invalid { field: "note", reason: "at most 2000 characters".into() });
    }
    // Local and received steps are serialised (per node), so the check against the
    // case as held and the write that follows cannot interleave with another step.
    let _step = node.case_steps.lock().await;
    let case = get(node.db.store(), id)?.ok_or_else(|| CaseError::NotFound(format!("case {id}")))?;
    let (version, v) = referral(node.db.store(), &case.referral_record_id)?.ok_or_else(|| CaseError::Invalid {
        field: "referral_record_id",
        reason: "this node does not hold the referral; the gates cannot be checked here".into(),
    })?;
    for other in others(node, &case) {
        check_agreement(node, &other, to)?;
    }
    let next = match victim::advance(&case, &v, to, node.id(), note, node.now()) {
        Ok(mut n) => {
            if let Some(last) = n.history.last_mut() {
                last.referral_version = version;
            }
            n
        }
        Err(e) => {
            node.db
                .audit(vec![Event::new(actor, "case.refused")
                    .record(&case.referral_record_id)
                    .decision("deny", e.code())
                    .reason(e.to_string())])
                .await?;
            return Err(e.into());
        }
    };
    store_and_send(node, actor, &next, "case.advance").await?;
    Ok(next)
}

/// Answers a case update this node does not take with a refusal receipt,
/// audited as `case.refused`: one entry per refused update, as the sender
/// keeps one signed receipt per update.
async fn refuse_update(
    node: &Node,
    caller: &str,
    delivery_id: &str,
    case: &pb::VictimCase,
    reason: String,
) -> Result<pb::Envelope, CaseError> {
    let shown: String = reason.chars().take(300).collect();
    let id: String = case.id.chars().take(64).collect();
    let referral: String = case.referral_record_id.chars().take(200).collect();
    node.db
        .audit(vec![Event::new(format!("peer:{caller}"), "case.refused")
            .record(referral)
            .decision("deny", format!("{id}: {shown}"))])
        .await?;
    Ok(crate::exchange::receive::receipt(node, delivery_id, &case.id, case.history.len() as u64, false, &reason))
}

/// The other node's new state of a case arrives (`DeliverCaseUpdate`).
pub async fn receive(
    node: &Node,
    caller: &str,
    delivery_id: &str,
    env: pb::Envelope,
) -> Result<pb::Envelope, CaseError> {
    let k = exchange::key_of(node, caller)?;
    let case: pb::VictimCase = envelope::open(&env, payload::VICTIM_CASE, caller, &k).map_err(ExchangeError::from)?;
    if let Err(why) = victim::check_update(&case, node.id(), caller) {
        return refuse_update(node, caller, delivery_id, &case, why.into()).await;
    }
    // The step needs an agreement that allows it now, here as on the sender.
    let to = case.history.last().and_then(|e| C::of(e.to)).unwrap_or(C::Referral);
    match check_agreement(node, caller, to) {
        Ok(()) => {}
        Err(CaseError::Denied(d)) => {
            return refuse_update(node, caller, delivery_id, &case, format!("{}: {d}", d.code())).await;
        }
        Err(e) => return Err(e),
    }
    let _step = node.case_steps.lock().await;
    let held = get(node.db.store(), &case.id)?;
    // The update must extend what we hold by exactly the caller's step.
    let base_len = held.as_ref().map_or(0, |h| h.history.len());
    match victim::update(held.as_ref(), &case) {
        victim::Update::Extends => {}
        victim::Update::AlreadyHeld => {
            return Ok(crate::exchange::receive::receipt(
                node,
                delivery_id,
                &case.id,
                case.history.len() as u64,
                true,
                "already held",
            ));
        }
        victim::Update::Refused(why) => return refuse_update(node, caller, delivery_id, &case, why.into()).await,
        victim::Update::Behind => {
            // Another party's step is still on its way here: the sender retries.
            return Err(CaseError::NotReady(format!(
                "this node holds {base_len} steps of {}; a step before the caller's has not arrived yet",
                case.id
            )));
        }
    }
    // Check the step's gates again here when we hold the referral.
    if base_len > 0 {
        let last = case.history.last().cloned().unwrap_or_default();
        if let Some((version, v)) = referral(node.db.store(), &case.referral_record_id)? {
            if version < last.referral_version {
                // The referral's newer version is still on its way: let the sender retry.
                return Err(CaseError::NotReady(format!(
                    "this node holds version {version} of {}; the step was checked against version {}",
                    case.referral_record_id, last.referral_version
                )));
            }
            let prev = held.clone().unwrap_or_default();
            let to = last.to();
            let when = last.time.as_ref().and_then(crate::convert::from_timestamp).unwrap_or_else(|| node.now());
            // A step dated ahead of this node's clock could make a waiting
            // period (the reflection period) pass early: refused.
            if let Err(e) = crate::clock::check_peer_time(when, node.now(), crate::exchange::outbox::EXPIRY) {
                return refuse_update(node, caller, delivery_id, &case, format!("{}: {e}", e.code())).await;
            }
            if let Err(e) = victim::advance(&prev, &v, to, caller, &last.note, when.max(node.now())) {
                return refuse_update(node, caller, delivery_id, &case, format!("{}: {e}", e.code())).await;
            }
        }
    }
    node.db
        .write(|_, tx| {
            tx.batch.put(Tree::Requests, key(&case.id), case.encode_to_vec());
            tx.audit(
                Event::new(format!("peer:{caller}"), "case.update")
                    .record(&case.referral_record_id)
                    .reason(case.id.clone()),
            );
            Ok::<_, StoreError>(())
        })
        .await?;
    Ok(crate::exchange::receive::receipt(node, delivery_id, &case.id, case.history.len() as u64, true, ""))
}
