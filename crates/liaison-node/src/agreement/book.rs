//! The node's agreements: drafting, signing, delivering to the other
//! parties, merging their signatures and notices. IO adapter around the pure
//! rules in [`crate::agreement`]; every change is audited.
//!
//! Every party signs the same body bytes, fixed when the draft is made. A
//! delivered envelope is accepted only if the caller signed it; each
//! signature is kept only if it verifies against that party's pinned key
//! over those exact bytes, and a different body for the same id and version
//! is refused.

use crate::convert::ProtoEnum;
use std::collections::BTreeSet;
use std::time::Duration;

use crate::agreement::{self, AgreementError, Standing};
use crate::audit::Event;
use crate::convert::{state_word, timestamp};
use crate::envelope::{self, payload, EnvelopeError};
use crate::node::Node;
use crate::pb;
use crate::pb::OutboxAction as Action;
use crate::store::agreements::{self as layout, StoredAgreement};
use crate::store::outbox;
use crate::store::{self, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BookError {
    #[error(transparent)]
    Invalid(#[from] AgreementError),
    #[error("agreement {0} not found")]
    NotFound(String),
    #[error("agreement {id} v{version} already exists")]
    Exists { id: String, version: u32 },
    #[error("{0} is not a party to this agreement")]
    NotAParty(String),
    #[error("agreement {0}: a different document with the same id and version is already held")]
    Conflict(String),
    #[error("agreement {0} was not proposed by another party; use propose")]
    NotReceived(String),
    #[error("{0}")]
    Refused(String),
    #[error("envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How long a proposal or notice waits for the parties' first answers
/// before reporting; delivery continues in the outbox after that.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

fn decode_doc(env: &pb::Envelope) -> Result<pb::Agreement, BookError> {
    Ok(envelope::decode(env)?)
}

/// The verifying key of `party` as this node knows it.
fn party_key(node: &Node, party: &str) -> Result<Option<ed25519_dalek::VerifyingKey>, BookError> {
    if party == node.id() {
        return Ok(Some(node.identity.signing_key.verifying_key()));
    }
    let Some(peer) = store::peers::get(node.db.store(), party)? else {
        return Ok(None);
    };
    Ok(peer.card.and_then(|c| envelope::verifying_key(&c.signing_public_key).ok()))
}

fn standing(node: &Node, stored: &StoredAgreement, doc: &pb::Agreement) -> Result<Standing, BookError> {
    let env = stored.envelope.as_ref().ok_or_else(|| StoreError::Corrupt("agreement without envelope".into()))?;
    let signed_by = env.signatures.iter().map(|s| s.signer_id.clone()).filter(|s| doc.parties.contains(s)).collect();
    let decode_all = |ns: &[pb::Envelope]| -> Vec<pb::AgreementNotice> {
        ns.iter().filter_map(|n| envelope::decode::<pb::AgreementNotice>(n).ok()).collect()
    };
    let mut notices = decode_all(&stored.notices);
    let mut superseded = false;
    for (v, other) in layout::versions(node.db.store(), &doc.id)? {
        if v == doc.version {
            continue;
        }
        // Suspend, resume and revoke act on the agreement, not on one version:
        // a notice held on any version applies to every version, so a newer
        // proposal (honest or planted by a peer) can never absorb one.
        notices.extend(decode_all(&other.notices));
        // A newer version signed by every party replaces this one.
        superseded |= v > doc.version && fully_signed(&other, &doc.parties);
    }
    // Each issuer's latest suspend/resume counts: order by the issuer's time.
    notices.sort_by_key(|n| n.issue_time.map(|t| (t.seconds, t.nanos)));
    Ok(Standing { signed_by, notices, superseded, proposed: stored.proposed })
}

fn fully_signed(stored: &StoredAgreement, parties: &[String]) -> bool {
    stored.envelope.as_ref().is_some_and(|e| parties.iter().all(|p| e.signatures.iter().any(|sig| &sig.signer_id == p)))
}

/// The version a notice without an explicit version is about: the newest
/// one every party signed (the one in force, or that would be), else the
/// newest. Never a mere proposal while a signed version exists.
fn notice_version(node: &Node, id: &str) -> Result<(u32, StoredAgreement), BookError> {
    let mut versions = layout::versions(node.db.store(), id)?;
    let signed = versions.iter().rposition(|(_, s)| {
        s.envelope
            .as_ref()
            .and_then(|e| envelope::decode::<pb::Agreement>(e).ok())
            .is_some_and(|doc| fully_signed(s, &doc.parties))
    });
    match signed {
        Some(i) => Ok(versions.swap_remove(i)),
        None => versions.pop().ok_or_else(|| BookError::NotFound(id.to_string())),
    }
}

/// The public view of a stored agreement, with its state now.
pub fn view(node: &Node, stored: &StoredAgreement) -> Result<pb::AgreementRecord, BookError> {
    let env = stored.envelope.clone().ok_or_else(|| StoreError::Corrupt("agreement without envelope".into()))?;
    let doc = decode_doc(&env)?;
    let s = standing(node, stored, &doc)?;
    let state = agreement::state(&doc, &s, node.now());
    let missing = doc.parties.iter().filter(|p| !s.signed_by.contains(*p)).cloned().collect();
    Ok(pb::AgreementRecord {
        agreement: Some(doc),
        envelope: Some(env),
        notices: stored.notices.clone(),
        state: state as i32,
        signed_by: s.signed_by.into_iter().collect(),
        missing_signatures: missing,
    })
}

fn load(node: &Node, id: &str, version: u32) -> Result<(u32, StoredAgreement), BookError> {
    if version != 0 {
        let s = layout::get(node.db.store(), id, version)?
            .ok_or_else(|| BookError::NotFound(format!("{id} v{version}")))?;
        return Ok((version, s));
    }
    layout::versions(node.db.store(), id)?.pop().ok_or_else(|| BookError::NotFound(id.to_string()))
}

/// Every agreement this node holds (newest version of each, or all versions).
pub fn list(node: &Node, include_history: bool) -> Result<Vec<pb::AgreementRecord>, BookError> {
    let mut out: Vec<pb::AgreementRecord> =
        layout::all(node.db.store())?.iter().map(|s| view(node, s)).collect::<Result<_, _>>()?;
    if !include_history {
        let newest: std::collections::BTreeMap<String, u32> =
            out.iter().filter_map(|r| r.agreement.as_ref()).fold(Default::default(), |mut m, a| {
                let e = m.entry(a.id.clone()).or_insert(0);
                *e = (*e).max(a.version);
                m
            });
        out.retain(|r| r.agreement.as_ref().is_some_and(|a| newest.get(&a.id) == Some(&a.version)));
    }
    Ok(out)
}

pub fn get(node: &Node, id: &str, version: u32) -> Result<pb::AgreementRecord, BookError> {
    let (_, s) = load(node, id, version)?;
    view(node, &s)
}

/// Every agreement with its state now, for the policy engine.
pub fn for_policy(node: &Node) -> Result<Vec<(pb::Agreement, pb::AgreementState)>, BookError> {
    Ok(list(node, true)?.into_iter().filter_map(|r| Some((r.agreement?, pb::AgreementState::of(r.state)?))).collect())
}

/// Stores a new draft (first version or amendment) from its TOML form.
pub async fn draft(
    node: &Node,
    actor: &str,
    toml: &str,
    amend_of: Option<&str>,
) -> Result<pb::AgreementRecord, BookError> {
    let doc = agreement::parse_toml(toml)?;
    if !doc.parties.iter().any(|p| p == node.id()) {
        return Err(BookError::NotAParty(node.id().to_string()));
    }
    if let Some(id) = amend_of {
        if doc.id != id {
            return Err(AgreementError {
                field: "id".into(),
                reason: format!("an amendment of {id} must keep its id"),
            }
            .into());
        }
        let (latest, _) = load(node, id, 0)?;
        if doc.version <= latest {
            return Err(AgreementError {
                field: "version".into(),
                reason: format!("must be higher than the current version {latest}"),
            }
            .into());
        }
    }
    let env = pb::Envelope {
        payload_type: payload::AGREEMENT.into(),
        body: prost::Message::encode_to_vec(&doc),
        signatures: Vec::new(),
    };
    let stored = StoredAgreement { envelope: Some(env), notices: Vec::new(), proposed: false };
    let action = if amend_of.is_some() { "agreement.amend" } else { "agreement.draft" };
    node.db
        .write(|st, tx| {
            if layout::get(st, &doc.id, doc.version)?.is_some() {
                return Err(BookError::Exists { id: doc.id.clone(), version: doc.version });
            }
            layout::put(tx, &doc.id, doc.version, &stored);
            tx.audit(Event::new(actor, action).agreement(format!("{} v{}", doc.id, doc.version)));
            Ok(())
        })
        .await?;
    view(node, &stored)
}

fn change(tx: &mut store::Tx, id: &str) {
    tx.change(pb::Change {
        seq: 0,
        time: Some(timestamp(tx.now)),
        r#type: pb::ChangeType::AgreementChanged as i32,
        record_key: String::new(),
        kind: 0,
        version: 0,
        agreement_id: id.to_string(),
        request_id: String::new(),
    });
}

/// Adds this node's signature.
pub async fn sign(node: &Node, actor: &str, id: &str, version: u32) -> Result<pb::AgreementRecord, BookError> {
    let (version, _) = load(node, id, version)?;
    let stored = node
        .db
        .write(|st, tx| {
            let mut s = layout::get(st, id, version)?.ok_or_else(|| BookError::NotFound(id.to_string()))?;
            let env = s.envelope.as_mut().ok_or_else(|| StoreError::Corrupt("agreement without envelope".into()))?;
            let doc = decode_doc(env)?;
            if !doc.parties.iter().any(|p| p == node.id()) {
                return Err(BookError::NotAParty(node.id().to_string()));
            }
            envelope::add_signature(env, node.id(), &node.identity.signing_key);
            env.signatures.sort_by(|a, b| a.signer_id.cmp(&b.signer_id));
            layout::put(tx, id, version, &s);
            change(tx, id);
            tx.audit(Event::new(actor, "agreement.sign").agreement(format!("{id} v{version}")));
            Ok(s)
        })
        .await?;
    view(node, &stored)
}

/// Signs (if needed), marks proposed and delivers to every other party.
/// `accept` is the same step for a document another party proposed.
pub async fn propose(
    node: &Node,
    actor: &str,
    id: &str,
    version: u32,
    accepting: bool,
) -> Result<(pb::AgreementRecord, Vec<pb::DeliveryResult>), BookError> {
    let (version, current) = load(node, id, version)?;
    if accepting && !current.proposed {
        return Err(BookError::NotReceived(id.to_string()));
    }
    sign(node, actor, id, version).await?;
    // Marked proposed and queued for every other party in one write: a party
    // that is down now gets it when it is back, and a crash cannot leave
    // the proposal (or acceptance) stored here but never sent.
    let (stored, queued) = node
        .db
        .write(|st, tx| {
            let mut s = layout::get(st, id, version)?.ok_or_else(|| BookError::NotFound(id.to_string()))?;
            s.proposed = true;
            layout::put(tx, id, version, &s);
            let action = if accepting { "agreement.accept" } else { "agreement.propose" };
            tx.audit(Event::new(actor, action).agreement(format!("{id} v{version}")));
            let env = s.envelope.clone().ok_or_else(|| StoreError::Corrupt("agreement without envelope".into()))?;
            let others = other_parties(node, &decode_doc(&env)?);
            let queued = outbox::queue_agreement(st, tx, actor, Action::Agreement, &others, id, version, &env)?;
            Ok::<_, BookError>((s, queued))
        })
        .await?;
    node.outbox_wake.notify_one();
    let deliveries = crate::node::delivery_outcome(node, &queued, DELIVERY_TIMEOUT).await;
    Ok((view(node, &stored)?, deliveries))
}

/// A peer delivers a document (a proposal, or more signatures).
pub async fn receive(node: &Node, caller: &str, env: pb::Envelope) -> Result<Vec<String>, BookError> {
    // The caller must have signed these exact bytes: verify before decoding.
    let caller_key = party_key(node, caller)?.ok_or_else(|| BookError::NotAParty(caller.to_string()))?;
    envelope::verify_signer(&env, payload::AGREEMENT, caller, &caller_key)?;
    let doc = decode_doc(&env)?;
    agreement::validate(&doc)?;
    if !doc.parties.iter().any(|p| p == caller) {
        return Err(BookError::NotAParty(caller.to_string()));
    }
    if !doc.parties.iter().any(|p| p == node.id()) {
        return Err(BookError::NotAParty(node.id().to_string()));
    }
    // Keep only signatures by parties that verify against keys we hold.
    let mut verified = Vec::new();
    for sig in &env.signatures {
        if !doc.parties.contains(&sig.signer_id)
            || verified.iter().any(|s: &pb::Signature| s.signer_id == sig.signer_id)
        {
            continue;
        }
        if let Some(key) = party_key(node, &sig.signer_id)? {
            if envelope::verify_signer(&env, payload::AGREEMENT, &sig.signer_id, &key).is_ok() {
                verified.push(sig.clone());
            }
        }
    }
    let label = format!("{} v{}", doc.id, doc.version);
    let stored = node
        .db
        .write(|st, tx| {
            let mut s = match layout::get(st, &doc.id, doc.version)? {
                Some(existing) => {
                    let held = existing
                        .envelope
                        .as_ref()
                        .ok_or_else(|| StoreError::Corrupt("agreement without envelope".into()))?;
                    if held.body != env.body {
                        return Err(BookError::Conflict(label.clone()));
                    }
                    existing
                }
                None => StoredAgreement {
                    envelope: Some(pb::Envelope {
                        payload_type: payload::AGREEMENT.into(),
                        body: env.body.clone(),
                        signatures: Vec::new(),
                    }),
                    notices: Vec::new(),
                    proposed: true,
                },
            };
            s.proposed = true;
            let held = s.envelope.as_mut().ok_or_else(|| StoreError::Corrupt("agreement without envelope".into()))?;
            for sig in &verified {
                if !held.signatures.iter().any(|h| h.signer_id == sig.signer_id) {
                    held.signatures.push(sig.clone());
                }
            }
            held.signatures.sort_by(|a, b| a.signer_id.cmp(&b.signer_id));
            let signers: Vec<String> = held.signatures.iter().map(|s| s.signer_id.clone()).collect();
            layout::put(tx, &doc.id, doc.version, &s);
            change(tx, &doc.id);
            tx.audit(
                Event::new(format!("peer:{caller}"), "agreement.receive")
                    .agreement(&label)
                    .reason(format!("signed by {}", signers.join(", "))),
            );
            Ok(s)
        })
        .await?;
    let v = view(node, &stored)?;
    tracing::info!(agreement = %label, from = %caller, state = %state_word(v.state()), "agreement received");
    Ok(v.signed_by)
}

/// Issues a signed suspend / resume / revoke notice and delivers it.
pub async fn notice(
    node: &Node,
    actor: &str,
    id: &str,
    version: u32,
    action: pb::NoticeAction,
    reason: &str,
) -> Result<(pb::AgreementRecord, Vec<pb::DeliveryResult>), BookError> {
    if action == pb::NoticeAction::Unspecified {
        return Err(AgreementError { field: "action".into(), reason: "suspend, resume or revoke".into() }.into());
    }
    if reason.trim().is_empty() || reason.chars().count() > 1000 {
        return Err(AgreementError {
            field: "reason".into(),
            reason: "a reason of 1-1000 characters is required".into(),
        }
        .into());
    }
    let (version, current) = if version == 0 { notice_version(node, id)? } else { load(node, id, version)? };
    let doc =
        decode_doc(current.envelope.as_ref().ok_or_else(|| StoreError::Corrupt("agreement without envelope".into()))?)?;
    if !doc.parties.iter().any(|p| p == node.id()) {
        return Err(BookError::NotAParty(node.id().to_string()));
    }
    let n = pb::AgreementNotice {
        agreement_id: id.to_string(),
        version,
        action: action as i32,
        reason: reason.to_string(),
        issuer: node.id().to_string(),
        issue_time: Some(timestamp(node.now())),
    };
    let env = envelope::seal(payload::AGREEMENT_NOTICE, &n, node.id(), &node.identity.signing_key);
    // Stored and queued for every other party in one write, retried until
    // delivered: a suspension or revocation must reach the others.
    let others = other_parties(node, &doc);
    let (stored, queued) = store_notice(node, actor, &doc, version, env, &n, &others).await?;
    if action == pb::NoticeAction::Revoke {
        node.housekeeping_wake.notify_one();
    }
    node.outbox_wake.notify_one();
    let deliveries = crate::node::delivery_outcome(node, &queued, DELIVERY_TIMEOUT).await;
    Ok((view(node, &stored)?, deliveries))
}

fn action_word(a: i32) -> &'static str {
    match pb::NoticeAction::of(a) {
        Some(pb::NoticeAction::Suspend) => "agreement.suspend",
        Some(pb::NoticeAction::Resume) => "agreement.resume",
        Some(pb::NoticeAction::Revoke) => "agreement.revoke",
        _ => "agreement.notice",
    }
}

/// Stores a notice and queues it for `deliver_to`; the delivery ids queued.
async fn store_notice(
    node: &Node,
    actor: &str,
    doc: &pb::Agreement,
    version: u32,
    env: pb::Envelope,
    n: &pb::AgreementNotice,
    deliver_to: &[String],
) -> Result<(StoredAgreement, Vec<(String, String)>), BookError> {
    let id = doc.id.clone();
    node.db
        .write(|st, tx| {
            let mut s = layout::get(st, &id, version)?.ok_or_else(|| BookError::NotFound(id.clone()))?;
            // A notice already held (same bytes) is not stored twice.
            if !s.notices.iter().any(|h| h.body == env.body) {
                s.notices.push(env.clone());
            }
            layout::put(tx, &id, version, &s);
            change(tx, &id);
            tx.audit(Event::new(actor, action_word(n.action)).agreement(format!("{id} v{version}")).reason(&n.reason));
            let queued =
                outbox::queue_agreement(st, tx, actor, Action::AgreementNotice, deliver_to, &id, version, &env)?;
            Ok((s, queued))
        })
        .await
}

/// A peer delivers a notice: it must be the issuer, a party, and have signed it.
pub async fn receive_notice(node: &Node, caller: &str, env: pb::Envelope) -> Result<(), BookError> {
    let key = party_key(node, caller)?.ok_or_else(|| BookError::NotAParty(caller.to_string()))?;
    let n: pb::AgreementNotice = envelope::open(&env, payload::AGREEMENT_NOTICE, caller, &key)?;
    if n.issuer != caller {
        return Err(BookError::Refused(format!("notice issued by {} cannot come from {caller}", n.issuer)));
    }
    // A notice acts on the agreement, not on one version (see `standing`):
    // one about a version this node never received (say, a proposal it was
    // not sent) is kept with the newest version it holds.
    let (version, stored) = match layout::get(node.db.store(), &n.agreement_id, n.version)? {
        Some(s) => (n.version, s),
        None => layout::versions(node.db.store(), &n.agreement_id)?
            .pop()
            .ok_or_else(|| BookError::NotFound(format!("{} v{}", n.agreement_id, n.version)))?,
    };
    let doc =
        decode_doc(stored.envelope.as_ref().ok_or_else(|| StoreError::Corrupt("agreement without envelope".into()))?)?;
    if !doc.parties.iter().any(|p| p == caller) {
        return Err(BookError::NotAParty(caller.to_string()));
    }
    pb::NoticeAction::of(n.action)
        .filter(|a| *a != pb::NoticeAction::Unspecified)
        .ok_or_else(|| BookError::Refused("unknown notice action".into()))?;
    store_notice(node, &format!("peer:{caller}"), &doc, version, env, &n, &[]).await?;
    if n.action == pb::NoticeAction::Revoke as i32 {
        node.housekeeping_wake.notify_one();
    }
    tracing::info!(agreement = %n.agreement_id, from = %caller, action = action_word(n.action), "agreement notice received");
    Ok(())
}

/// The parties of `doc` other than this node.
fn other_parties(node: &Node, doc: &pb::Agreement) -> Vec<String> {
    doc.parties.iter().filter(|p| *p != node.id()).cloned().collect()
}

/// Parties of every agreement, for convenience in views.
pub fn parties(records: &[pb::AgreementRecord]) -> BTreeSet<String> {
    records.iter().filter_map(|r| r.agreement.as_ref()).flat_map(|a| a.parties.iter().cloned()).collect()
}
