//! Exchange between nodes: queries, hit/no-hit checks, shares through a
//! durable outbox, withdrawals, onward consent, sync and retention.
//!
//! Nothing here decides what may cross: every step builds a
//! [`policy::Exchange`] and asks [`policy::decide`], on the sending side and
//! again, independently, on the receiving side. Every decision is audited.

pub mod consent;
pub mod hit;
pub mod import;
pub mod outbox;
pub mod query;
pub use crate::store::quotas as quota;
pub mod receive;
pub mod retention;
pub mod sync;

use crate::convert::ProtoEnum;
use std::time::Duration;

use crate::agreement::book;
use crate::audit::Event;
use crate::convert::{kind_word, operation_word, purpose_word};
use crate::envelope::{self, payload, EnvelopeError};
use crate::node::Node;
use crate::pb;
use crate::policy::{self, Decision, Denial, Direction, Exchange, OnwardFacts};
use crate::redact;
pub use crate::store::outbox::random_id;
use crate::store::{self, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("denied ({code}): {0}", code = .0.code())]
    Denied(Denial),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{0} not found")]
    NotFound(String),
    /// The peer could not be reached (no card, no channel).
    #[error("peer {peer}: {reason}")]
    Peer { peer: String, reason: String },
    /// The peer answered with an error status: kept typed, never re-parsed.
    #[error("peer {peer} answered {code:?}: {message}")]
    PeerStatus { peer: String, code: tonic::Code, message: String },
    #[error("{0}")]
    Refused(String),
    #[error("envelope: {0}")]
    Envelope(#[from] EnvelopeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Book(#[from] book::BookError),
    /// A peer at its cap of kept bookkeeping (`quota`).
    #[error(transparent)]
    Full(#[from] quota::Full),
}

impl ExchangeError {
    /// The kind of refusal this error records when it answers a peer (or
    /// when a peer's answer caused it): the same classification
    /// `api::status::refusal_kind` makes of the status this error maps to
    /// (a test there keeps the two equal). Policy denials, unreachable
    /// peers and this node's own failures record none.
    pub fn refusal(&self) -> Option<crate::refusal::Kind> {
        use crate::agreement::book::BookError as B;
        use crate::refusal::Kind;
        use ExchangeError as E;
        match self {
            E::Invalid { .. } | E::Book(B::Invalid(_)) => Some(Kind::Invalid),
            E::Envelope(_) | E::Book(B::Envelope(_)) => Some(Kind::Signature),
            E::PeerStatus {
                code: tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::ResourceExhausted,
                ..
            } => None,
            E::PeerStatus { .. }
            | E::Refused(_)
            | E::Book(B::NotAParty(_) | B::Conflict(_) | B::NotReceived(_) | B::Refused(_)) => Some(Kind::Refused),
            E::Denied(_)
            | E::NotFound(_)
            | E::Peer { .. }
            | E::Store(_)
            | E::Book(B::NotFound(_) | B::Exists { .. } | B::Store(_))
            | E::Full(_) => None,
        }
    }

    /// A peer's error answer, typed.
    pub fn from_status(peer: &str, s: &tonic::Status) -> ExchangeError {
        ExchangeError::PeerStatus { peer: peer.into(), code: s.code(), message: s.message().into() }
    }
}

/// How a failed call to one peer is reported in a fan-out result.
pub fn peer_outcome(e: &ExchangeError) -> pb::PeerOutcome {
    match e {
        ExchangeError::PeerStatus { code: tonic::Code::PermissionDenied, .. } => pb::PeerOutcome::Denied,
        ExchangeError::PeerStatus { code: tonic::Code::DeadlineExceeded, .. } => pb::PeerOutcome::TimedOut,
        _ => pb::PeerOutcome::Unreachable,
    }
}

pub fn invalid(field: &str, reason: impl Into<String>) -> ExchangeError {
    ExchangeError::Invalid { field: field.into(), reason: reason.into() }
}

/// Deadline for one peer when the caller does not give one.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// The facts of one record for the policy engine (the core's
/// [`Exchange::of_record`], at this node and its clock).
pub fn exchange_for(
    node: &Node,
    peer: &str,
    direction: Direction,
    operation: pb::Operation,
    rec: &pb::Record,
    purpose: pb::Purpose,
) -> Exchange {
    Exchange::of_record(node.id(), peer, direction, operation, rec, purpose, node.now())
}

/// Facts of a kind-level question (before any record is looked at).
pub fn exchange_kind(
    node: &Node,
    peer: &str,
    direction: Direction,
    operation: pb::Operation,
    kind: pb::RecordKind,
    purpose: pb::Purpose,
) -> Exchange {
    Exchange::of_kind(node.id(), peer, direction, operation, kind, purpose, node.now())
}

pub(crate) fn decision_event(actor: &str, ex: &Exchange, d: &Decision, record: &str) -> Event {
    let what = format!("{} {} {} {:?}", operation_word(ex.operation), kind_word(ex.kind), ex.peer, ex.direction)
        .to_lowercase();
    let ev = Event::new(actor, "policy.decision").record(record).purpose(purpose_word(ex.purpose));
    match d {
        Decision::Allow { agreement_id, plan, .. } => {
            let redacted = plan.remove.iter().cloned().collect::<Vec<_>>().join(",");
            ev.agreement(agreement_id.clone()).decision("allow", format!("{what}; redacted [{redacted}]"))
        }
        Decision::Deny(denial) => {
            metrics::counter!("liaison_policy_denials_total", "reason" => denial.code()).increment(1);
            ev.decision("deny", format!("{what}; {}", denial.code()))
        }
    }
}

/// Decides many exchanges against the agreements held now, and audits every decision.
pub async fn decide_all(
    node: &Node,
    actor: &str,
    exchanges: &[(Exchange, String)],
) -> Result<Vec<Decision>, ExchangeError> {
    let (decisions, events) = decide_all_unaudited(node, actor, exchanges)?;
    node.db.audit(events).await?;
    Ok(decisions)
}

/// [`decide_all`]'s decisions and their audit events, for a caller that
/// writes the events in the same batch as what the decisions allow.
pub fn decide_all_unaudited(
    node: &Node,
    actor: &str,
    exchanges: &[(Exchange, String)],
) -> Result<(Vec<Decision>, Vec<Event>), ExchangeError> {
    let agreements = book::for_policy(node)?;
    let decisions: Vec<Decision> = exchanges.iter().map(|(ex, _)| policy::decide(&agreements, ex)).collect();
    let events = exchanges.iter().zip(&decisions).map(|((ex, rec), d)| decision_event(actor, ex, d, rec)).collect();
    Ok((decisions, events))
}

/// Decides records another node sent (push, sync, query answer, relay) with
/// [`policy::decide_received`], and audits every decision. One path for
/// every way a record comes in.
pub async fn admit_all(
    node: &Node,
    actor: &str,
    received: &[(Exchange, &pb::Record)],
) -> Result<Vec<Decision>, ExchangeError> {
    let (decisions, events) = admit_unaudited(node, actor, received)?;
    node.db.audit(events).await?;
    Ok(decisions)
}

/// [`admit_all`]'s decisions and their audit events, for a caller that
/// writes the events in the same batch as what the decisions let in (one
/// write per call). Nothing may be kept or shown before they are written.
pub fn admit_unaudited(
    node: &Node,
    actor: &str,
    received: &[(Exchange, &pb::Record)],
) -> Result<(Vec<Decision>, Vec<Event>), ExchangeError> {
    let agreements = book::for_policy(node)?;
    let decisions: Vec<Decision> =
        received.iter().map(|(ex, rec)| policy::decide_received(&agreements, ex, rec)).collect();
    let events = received
        .iter()
        .zip(&decisions)
        .map(|((ex, rec), d)| decision_event(actor, ex, d, &store::records::key(&rec.originator, &rec.id)))
        .collect();
    Ok((decisions, events))
}

/// Decides `ex` and returns its audit event without writing it (see
/// [`admit_unaudited`]); a denial is the caller's to audit before refusing.
pub fn decide_unaudited(
    node: &Node,
    actor: &str,
    ex: &Exchange,
    record: &str,
) -> Result<(Decision, Event), ExchangeError> {
    let d = policy::decide(&book::for_policy(node)?, ex);
    let ev = decision_event(actor, ex, &d, record);
    Ok((d, ev))
}

/// The decision on `ex` against the agreements held now, not audited: for
/// previews, which send and keep nothing.
pub fn preview(node: &Node, ex: &Exchange) -> Result<Decision, ExchangeError> {
    Ok(policy::decide(&book::for_policy(node)?, ex))
}

pub async fn decide(node: &Node, actor: &str, ex: Exchange, record: &str) -> Result<Decision, ExchangeError> {
    Ok(decide_all(node, actor, &[(ex, record.to_string())]).await?.remove(0))
}

/// Our own record, redacted as allowed and signed by this node as
/// originator. When the decision removes nothing, the envelope `stored`
/// holds (`rec`'s exact signed bytes) goes as it is, not signed again.
pub fn seal_shared(
    node: &Node,
    rec: &pb::Record,
    d: &Decision,
    stored: Option<&pb::Envelope>,
) -> Option<pb::SharedRecord> {
    let Decision::Allow { agreement_id, agreement_version, plan, onward, retention_days } = d else { return None };
    let redacted = redact::redact(rec, plan);
    let unchanged = stored.filter(|env| {
        redacted == *rec && env.signatures.len() == 1 && env.signatures.iter().all(|s| s.signer_id == node.id())
    });
    let record = match unchanged {
        Some(env) => env.clone(),
        None => envelope::seal(payload::RECORD, &redacted, node.id(), &node.identity.signing_key),
    };
    Some(pb::SharedRecord {
        record: Some(record),
        agreement_id: agreement_id.clone(),
        agreement_version: *agreement_version,
        onward_sharing: *onward as i32,
        retention_days: *retention_days,
    })
}

/// The pinned signing key of `node_id` (or our own).
pub fn key_of(node: &Node, node_id: &str) -> Result<ed25519_dalek::VerifyingKey, ExchangeError> {
    if node_id == node.id() {
        return Ok(node.identity.signing_key.verifying_key());
    }
    let peer = store::peers::get(node.db.store(), node_id)?.ok_or_else(|| {
        ExchangeError::Refused(format!("originator {node_id} is not a pinned peer; its signature cannot be checked"))
    })?;
    let card = peer.card.ok_or_else(|| StoreError::Corrupt("peer without card".into()))?;
    Ok(envelope::verifying_key(&card.signing_public_key)?)
}

/// Verifies a record envelope against its originator's pinned key over the
/// exact bytes received, checks those bytes hold one kind body, then decodes
/// and validates the record, redacted or not (hard rules 7 and 8).
pub fn open_record(node: &Node, env: &pb::Envelope) -> Result<pb::Record, ExchangeError> {
    let signer = env
        .signatures
        .first()
        .map(|s| s.signer_id.clone())
        .ok_or(EnvelopeError::MissingSignature("originator".into()))?;
    let key = key_of(node, &signer)?;
    envelope::verify_signer(env, payload::RECORD, &signer, &key)?;
    verified_record(env, &signer)
}

/// [`open_record`] on each of a page of records (a query answer, a sync
/// page). The pinned key of each signer is read once, here; the signatures
/// are checked and the records decoded on the blocking pool, so a large
/// page never holds one of the runtime's few threads. When one originator
/// signed them all, as an honest peer's page is, the signatures are
/// verified in one batch ([`envelope::verify_all`]). Either way the first
/// record refused refuses the page.
pub async fn open_page(node: &Node, envs: Vec<pb::Envelope>) -> Result<Vec<(pb::Envelope, pb::Record)>, ExchangeError> {
    let mut keys = std::collections::BTreeMap::new();
    for env in &envs {
        let signer = first_signer(env)?;
        if !keys.contains_key(signer) {
            keys.insert(signer.to_string(), key_of(node, signer)?);
        }
    }
    tokio::task::spawn_blocking(move || {
        let opened = open_with(&keys, &envs)?;
        Ok(envs.into_iter().zip(opened).collect())
    })
    .await
    .map_err(|e| StoreError::Backend(format!("verification task failed: {e}")))?
}

fn first_signer(env: &pb::Envelope) -> Result<&str, ExchangeError> {
    Ok(env
        .signatures
        .first()
        .map(|s| s.signer_id.as_str())
        .ok_or(EnvelopeError::MissingSignature("originator".into()))?)
}

/// The checks of [`open_page`], given each signer's pinned key.
fn open_with(
    keys: &std::collections::BTreeMap<String, ed25519_dalek::VerifyingKey>,
    envs: &[pb::Envelope],
) -> Result<Vec<pb::Record>, ExchangeError> {
    let key = |signer: &str| {
        keys.get(signer).ok_or_else(|| ExchangeError::Refused(format!("no pinned key read for {signer}")))
    };
    if let Some((signer, k)) = keys.iter().next().filter(|_| keys.len() == 1) {
        let refs: Vec<&pb::Envelope> = envs.iter().collect();
        envelope::verify_all(&refs, payload::RECORD, signer, k).map_err(|(_, e)| e)?;
        return envs.iter().map(|env| verified_record(env, signer)).collect();
    }
    envs.iter()
        .map(|env| {
            let signer = first_signer(env)?;
            envelope::verify_signer(env, payload::RECORD, signer, key(signer)?)?;
            verified_record(env, signer)
        })
        .collect()
}

/// The checks of [`open_record`] after the signature: one kind body in the
/// signed bytes, then the decoded record's originator, kind, fields and
/// redaction marks.
fn verified_record(env: &pb::Envelope, signer: &str) -> Result<pb::Record, ExchangeError> {
    // Decoding keeps only the last of several bodies: count them on the signed bytes.
    if crate::record::body_fields(&env.body).map_err(|e| invalid(&e.field, e.reason))? > 1 {
        return Err(invalid("record.body", "a record has exactly one kind body"));
    }
    let rec: pb::Record = envelope::decode(env)?;
    if rec.originator != signer {
        return Err(ExchangeError::Refused(format!(
            "record claims originator {} but is signed by {signer}",
            rec.originator
        )));
    }
    if crate::record::kind(&rec).is_none() {
        return Err(invalid("record.body", "missing"));
    }
    crate::record::validate_received(&rec).map_err(|e| invalid(&e.field, e.reason))?;
    if let Some((i, f)) = rec.redacted_fields.iter().enumerate().find(|(_, f)| !redact::is_known_field(f)) {
        return Err(invalid(&format!("record.redacted_fields[{i}]"), format!("{f:?} is not a redactable field")));
    }
    Ok(rec)
}

/// Counts `peer`'s answer to one of this node's calls that this node refused
/// (a bad signature, an invalid record, a record of another originator) as
/// a refusal of `peer`, like a refused call; the peer refusing us, or our
/// own failures, are not. Returns the error's text.
pub fn refuse_answer(node: &Node, peer: &str, what: &str, e: ExchangeError) -> String {
    let text = e.to_string();
    if let Some(kind) = e.refusal() {
        node.refuse(&crate::refusal::peer(peer), kind, &format!("{what}: {text}"));
    }
    text
}

/// Onward facts for sharing a record this node received from someone else.
pub fn onward_facts(
    node: &Node,
    key: &str,
    prov: &pb::Provenance,
    rec: &pb::Record,
    peer: &str,
    purpose: pb::Purpose,
) -> Result<OnwardFacts, ExchangeError> {
    let consent = consent::held(node, key, peer, purpose)?.is_some();
    Ok(OnwardFacts {
        rule: pb::OnwardSharing::of(prov.onward_sharing).unwrap_or(pb::OnwardSharing::Forbidden),
        originator: rec.originator.clone(),
        originator_consent: consent,
    })
}

/// The peers this node has pinned.
pub fn peer_ids(node: &Node) -> Result<Vec<String>, ExchangeError> {
    Ok(store::peers::all(node.db.store())?.into_iter().filter_map(|p| p.card.map(|c| c.node_id)).collect())
}

pub async fn client(
    node: &Node,
    peer: &str,
) -> Result<pb::federation_service_client::FederationServiceClient<tonic::transport::Channel>, ExchangeError> {
    let p =
        crate::peer::get(node, peer).map_err(|e| ExchangeError::Peer { peer: peer.into(), reason: e.to_string() })?;
    let card =
        crate::peer::card_of(&p).map_err(|e| ExchangeError::Peer { peer: peer.into(), reason: e.to_string() })?;
    node.peers
        .client(&node.identity, card)
        .map_err(|e| ExchangeError::Peer { peer: peer.into(), reason: e.to_string() })
}

pub fn purpose_of(field: &str, v: i32) -> Result<pb::Purpose, ExchangeError> {
    pb::Purpose::known(field, v).map_err(|_| invalid(field, "a purpose is required"))
}

pub fn kind_of(field: &str, v: i32) -> Result<pb::RecordKind, ExchangeError> {
    pb::RecordKind::known(field, v).map_err(|_| invalid(field, "a record kind is required"))
}
