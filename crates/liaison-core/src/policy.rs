//! The policy engine: the one place exchange decisions are made.
//!
//! Given the agreements a node holds (with their states) and a proposed
//! exchange, [`decide`] returns either a denial with a machine-readable
//! reason or an allowance with the redaction plan to apply. It is pure: no
//! IO, no clock (the time is part of the exchange). Sender and receiver both
//! call it, each with its own copy of the agreements (hard rule 1).

use crate::agreement::VICTIM_PURPOSES;
use crate::convert::from_timestamp;
use crate::convert::ProtoEnum;
use crate::pb::{self, AgreementState, HandlingCode, Operation, Purpose, RecordKind};
use crate::redact::{self, RedactionPlan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// This node sends to the peer.
    Outgoing,
    /// The peer sends to this node.
    Incoming,
}

/// Facts about a victim referral that the victim rules need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VictimFacts {
    pub consent: pb::ConsentStatus,
    /// For consent "not possible": the guardian's decision is recorded.
    pub guardian_decision: bool,
    pub child: bool,
    pub best_interest: pb::BestInterestOutcome,
    /// The exchange carries the victim's identity (not just the pseudonymised record).
    pub identity_requested: bool,
    /// The exchange is a step of the person's return.
    pub return_step: bool,
}

impl VictimFacts {
    pub fn of(v: &pb::VictimReferral, identity_requested: bool, return_step: bool) -> Self {
        let consent = v.consent.clone().unwrap_or_default();
        Self {
            consent: consent.status(),
            guardian_decision: !consent.guardian_decision.trim().is_empty(),
            child: v.child,
            best_interest: v
                .best_interest_determination
                .as_ref()
                .and_then(|b| pb::BestInterestOutcome::of(b.outcome))
                .unwrap_or_default(),
            identity_requested,
            return_step,
        }
    }

    fn consent_recorded(&self) -> bool {
        self.consent == pb::ConsentStatus::Given
            || (self.consent == pb::ConsentStatus::NotPossible && self.guardian_decision)
    }
}

/// Forwarding a record received from its originator to a third node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnwardFacts {
    /// The onward-sharing rule of the grant the record arrived under.
    pub rule: pb::OnwardSharing,
    pub originator: String,
    /// The originator's signed consent to this onward share is held.
    pub originator_consent: bool,
}

/// A proposed exchange of one record (or one kind of record) with one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    pub local: String,
    pub peer: String,
    pub direction: Direction,
    pub operation: Operation,
    pub kind: RecordKind,
    pub purpose: Purpose,
    pub handling: HandlingCode,
    pub at: time::OffsetDateTime,
    pub victim: Option<VictimFacts>,
    /// Set when the data would be merged into a record of another kind.
    pub into_kind: Option<RecordKind>,
    pub onward: Option<OnwardFacts>,
}

impl Exchange {
    /// The facts of one record crossing between `local` and `peer` at `at`.
    pub fn of_record(
        local: &str,
        peer: &str,
        direction: Direction,
        operation: Operation,
        rec: &pb::Record,
        purpose: Purpose,
        at: time::OffsetDateTime,
    ) -> Exchange {
        // A received referral that carries identity fields is asking this node to
        // take the identity, so the identity rules apply to it in full.
        let identity = direction == Direction::Incoming && redact::holds_identity(rec);
        let victim = match &rec.body {
            Some(pb::record::Body::VictimReferral(v)) => Some(VictimFacts::of(v, identity, false)),
            _ => None,
        };
        Exchange {
            handling: rec.handling(),
            victim,
            ..Exchange::of_kind(
                local,
                peer,
                direction,
                operation,
                crate::record::kind(rec).unwrap_or_default(),
                purpose,
                at,
            )
        }
    }

    /// The facts of a kind-level question, before any record is looked at.
    pub fn of_kind(
        local: &str,
        peer: &str,
        direction: Direction,
        operation: Operation,
        kind: RecordKind,
        purpose: Purpose,
        at: time::OffsetDateTime,
    ) -> Exchange {
        Exchange {
            local: local.to_string(),
            peer: peer.to_string(),
            direction,
            operation,
            kind,
            purpose,
            handling: HandlingCode::Clear,
            at,
            victim: None,
            into_kind: None,
            onward: None,
        }
    }
}

/// Why an exchange is refused. Ordered from the first check to the last:
/// when several agreements fail, the reason reported is the one that got furthest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denial {
    InvalidExchange(String),
    NoAgreement,
    AgreementNotActive {
        agreement: String,
        state: AgreementState,
    },
    OutsideValidity {
        agreement: String,
    },
    WrongDirection {
        agreement: String,
    },
    KindNotGranted {
        agreement: String,
    },
    OperationNotGranted {
        agreement: String,
    },
    PurposeNotGranted {
        agreement: String,
    },
    HandlingAboveGrant {
        agreement: String,
        max: HandlingCode,
    },
    /// The receiver's role under the agreement (`actor`) never receives this kind.
    RoleMayNotReceive {
        agreement: String,
        party: String,
        role: pb::ActorRole,
    },
    RequestTypeNotDefined {
        agreement: String,
        request_type: String,
    },
    RequestPurposeNotAllowed {
        agreement: String,
        request_type: String,
    },
    /// The SOP names who answers this type, and the addressee is not among them.
    RequestNotForAddressee {
        agreement: String,
        request_type: String,
        addressee: String,
    },
    VictimDataIntoEntity,
    VictimIdentityPurpose,
    VictimConsentMissing,
    VictimIdentityNotReleased {
        agreement: String,
    },
    /// A received record carries a field the receiver's own decision withholds.
    WithheldFieldCarried {
        agreement: String,
        field: String,
    },
    ChildReturnWithoutBestInterest,
    OnwardForbidden {
        originator: String,
    },
    OnwardConsentMissing {
        originator: String,
    },
}

impl Denial {
    pub fn code(&self) -> &'static str {
        match self {
            Denial::InvalidExchange(_) => "invalid_exchange",
            Denial::NoAgreement => "no_agreement",
            Denial::AgreementNotActive { .. } => "agreement_not_active",
            Denial::OutsideValidity { .. } => "outside_validity",
            Denial::WrongDirection { .. } => "wrong_direction",
            Denial::KindNotGranted { .. } => "kind_not_granted",
            Denial::OperationNotGranted { .. } => "operation_not_granted",
            Denial::PurposeNotGranted { .. } => "purpose_not_granted",
            Denial::HandlingAboveGrant { .. } => "handling_above_grant",
            Denial::RoleMayNotReceive { .. } => "role_may_not_receive",
            Denial::RequestTypeNotDefined { .. } => "request_type_not_defined",
            Denial::RequestPurposeNotAllowed { .. } => "request_purpose_not_allowed",
            Denial::RequestNotForAddressee { .. } => "request_not_for_addressee",
            Denial::VictimDataIntoEntity => "victim_data_into_entity",
            Denial::VictimIdentityPurpose => "victim_identity_purpose",
            Denial::VictimConsentMissing => "victim_consent_missing",
            Denial::VictimIdentityNotReleased { .. } => "victim_identity_not_released",
            Denial::WithheldFieldCarried { .. } => "withheld_field_carried",
            Denial::ChildReturnWithoutBestInterest => "child_return_without_best_interest",
            Denial::OnwardForbidden { .. } => "onward_forbidden",
            Denial::OnwardConsentMissing { .. } => "onward_consent_missing",
        }
    }
}

impl std::fmt::Display for Denial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |x: AgreementState| crate::convert::state_word(x);
        match self {
            Denial::InvalidExchange(r) => write!(f, "invalid exchange: {r}"),
            Denial::NoAgreement => write!(f, "no agreement covers both parties"),
            Denial::AgreementNotActive { agreement, state } => {
                write!(f, "agreement {agreement} is {}", s(*state))
            }
            Denial::OutsideValidity { agreement } => {
                write!(f, "outside the validity window of agreement {agreement}")
            }
            Denial::WrongDirection { agreement } => {
                write!(f, "agreement {agreement} grants nothing in this direction")
            }
            Denial::KindNotGranted { agreement } => {
                write!(f, "agreement {agreement} does not grant this record kind")
            }
            Denial::OperationNotGranted { agreement } => {
                write!(f, "agreement {agreement} does not grant this operation")
            }
            Denial::PurposeNotGranted { agreement } => {
                write!(f, "agreement {agreement} does not grant this purpose")
            }
            Denial::HandlingAboveGrant { agreement, max } => {
                write!(
                    f,
                    "handling code is above the {} allowed by agreement {agreement}",
                    crate::convert::handling_word(*max)
                )
            }
            Denial::RoleMayNotReceive { agreement, party, role } => write!(
                f,
                "under agreement {agreement}, {party} (role: {}) may receive only {}",
                crate::actor::title(*role),
                crate::actor::receivable_words(*role)
            ),
            Denial::RequestTypeNotDefined { agreement, request_type } => {
                write!(f, "agreement {agreement} defines no {request_type} requests")
            }
            Denial::RequestPurposeNotAllowed { agreement, request_type } => {
                write!(f, "agreement {agreement} does not allow {request_type} requests for this purpose")
            }
            Denial::RequestNotForAddressee { agreement, request_type, addressee } => {
                write!(f, "under agreement {agreement}, {addressee} does not answer {request_type} requests")
            }
            Denial::VictimDataIntoEntity => {
                write!(f, "victim data never flows into entity (suspect) records")
            }
            Denial::VictimIdentityPurpose => {
                write!(f, "victim identity leaves only for victim identification, assistance or return")
            }
            Denial::VictimConsentMissing => {
                write!(f, "victim identity needs recorded consent (or 'not possible' with the guardian's decision)")
            }
            Denial::VictimIdentityNotReleased { agreement } => {
                write!(f, "agreement {agreement} does not release the victim's identity")
            }
            Denial::WithheldFieldCarried { agreement, field } => {
                write!(f, "the record carries {field}, which agreement {agreement} does not let this node receive")
            }
            Denial::ChildReturnWithoutBestInterest => {
                write!(f, "a child's return needs a best-interest determination in favour of return")
            }
            Denial::OnwardForbidden { originator } => {
                write!(f, "{originator} forbids sharing this record onwards")
            }
            Denial::OnwardConsentMissing { originator } => {
                write!(f, "onward sharing needs {originator}'s consent, which has not arrived")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow {
        agreement_id: String,
        agreement_version: u32,
        plan: RedactionPlan,
        /// Onward-sharing rule that travels with the record.
        onward: pb::OnwardSharing,
        /// Retention of the record at the receiver, in days (0: until withdrawn).
        retention_days: u32,
    },
    Deny(Denial),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

fn party_matches(side: &str, node: &str) -> bool {
    side == "*" || side == node
}

/// Does grant `g` cover traffic from `sender` to `receiver`? A grant naming
/// the same party on both sides covers nothing. The one place grant
/// direction is matched (exchanges here, the hub's relay in `policy::hub`).
fn grant_covers(g: &pb::Grant, sender: &str, receiver: &str) -> bool {
    party_matches(&g.from, sender) && party_matches(&g.to, receiver) && !(g.from == g.to && g.from != "*")
}

fn in_window(a: &pb::Agreement, at: time::OffsetDateTime) -> bool {
    let from = a.valid_from.as_ref().and_then(from_timestamp);
    let until = a.valid_until.as_ref().and_then(from_timestamp);
    matches!((from, until), (Some(f), Some(u)) if f <= at && at < u)
}

/// How an agreement is named in denials.
fn label(a: &pb::Agreement) -> String {
    format!("{} v{}", a.id, a.version)
}

/// An agreement is in force when it is active and `at` is inside its window.
fn in_force(a: &pb::Agreement, state: AgreementState, at: time::OffsetDateTime) -> Result<(), Denial> {
    if state != AgreementState::Active {
        return Err(Denial::AgreementNotActive { agreement: label(a), state });
    }
    if !in_window(a, at) {
        return Err(Denial::OutsideValidity { agreement: label(a) });
    }
    Ok(())
}

/// Whether a record admitted under agreement `id` v`version` may still be
/// stored at `at`, asked inside the write that stores it (the decision came
/// before the write, and a revocation, suspension or end may have come in
/// between): that version, or a newer version of the same agreement that
/// replaced it, is in force.
pub fn admitted_in_force(
    agreements: &[(pb::Agreement, AgreementState)],
    id: &str,
    version: u32,
    at: time::OffsetDateTime,
) -> bool {
    agreements.iter().any(|(a, s)| a.id == id && a.version >= version && in_force(a, *s, at).is_ok())
}

/// Decides one exchange against every agreement held.
pub fn decide(agreements: &[(pb::Agreement, AgreementState)], ex: &Exchange) -> Decision {
    if ex.purpose == Purpose::Unspecified {
        return Decision::Deny(Denial::InvalidExchange("purpose is required".into()));
    }
    if ex.kind == RecordKind::Unspecified
        || ex.operation == Operation::Unspecified
        || ex.handling == HandlingCode::Unspecified
    {
        return Decision::Deny(Denial::InvalidExchange("kind, operation and handling code are required".into()));
    }
    if ex.local == ex.peer {
        return Decision::Deny(Denial::InvalidExchange("a node does not exchange with itself".into()));
    }
    // Rules that hold whatever any agreement says.
    if ex.kind == RecordKind::VictimReferral {
        if ex.into_kind == Some(RecordKind::Entity) {
            return Decision::Deny(Denial::VictimDataIntoEntity);
        }
        if let Some(v) = &ex.victim {
            if v.return_step && v.child && v.best_interest != pb::BestInterestOutcome::Return {
                return Decision::Deny(Denial::ChildReturnWithoutBestInterest);
            }
        }
    }
    if let Some(o) = &ex.onward {
        match o.rule {
            pb::OnwardSharing::Allowed => {}
            pb::OnwardSharing::WithConsent if o.originator_consent => {}
            pb::OnwardSharing::WithConsent => {
                return Decision::Deny(Denial::OnwardConsentMissing { originator: o.originator.clone() })
            }
            _ => return Decision::Deny(Denial::OnwardForbidden { originator: o.originator.clone() }),
        }
    }

    let (sender, receiver) = match ex.direction {
        Direction::Outgoing => (ex.local.as_str(), ex.peer.as_str()),
        Direction::Incoming => (ex.peer.as_str(), ex.local.as_str()),
    };
    let mut worst = Denial::NoAgreement;
    let mut best: Option<(usize, Decision)> = None;
    let consider = |d: Denial, worst: &mut Denial| {
        if d > *worst {
            *worst = d;
        }
    };
    for (a, state) in agreements {
        let has = |n: &str| a.parties.iter().any(|p| p == n);
        if !(has(sender) && has(receiver)) {
            continue;
        }
        if let Err(d) = in_force(a, *state, ex.at) {
            consider(d, &mut worst);
            continue;
        }
        let label = label(a);
        let role = crate::actor::role_of(a, receiver);
        if !crate::actor::may_receive(role, ex.kind) {
            consider(Denial::RoleMayNotReceive { agreement: label, party: receiver.into(), role }, &mut worst);
            continue;
        }
        for g in &a.grants {
            if !grant_covers(g, sender, receiver) {
                consider(Denial::WrongDirection { agreement: label.clone() }, &mut worst);
                continue;
            }
            if !g.record_kinds.contains(&(ex.kind as i32)) {
                consider(Denial::KindNotGranted { agreement: label.clone() }, &mut worst);
                continue;
            }
            if !g.operations.contains(&(ex.operation as i32)) {
                consider(Denial::OperationNotGranted { agreement: label.clone() }, &mut worst);
                continue;
            }
            if !g.purposes.contains(&(ex.purpose as i32)) {
                consider(Denial::PurposeNotGranted { agreement: label.clone() }, &mut worst);
                continue;
            }
            let max = g.max_handling();
            if (ex.handling as i32) > g.max_handling {
                consider(Denial::HandlingAboveGrant { agreement: label.clone(), max }, &mut worst);
                continue;
            }
            let plan = RedactionPlan::for_grant(ex.kind, &g.released_protected_fields, &g.redacted_fields);
            let mut plan = plan;
            if ex.kind == RecordKind::VictimReferral {
                let facts = ex.victim.clone();
                let identity_ok = VICTIM_PURPOSES.contains(&ex.purpose)
                    && facts.as_ref().is_some_and(VictimFacts::consent_recorded)
                    && !plan.strips_identity();
                if facts.as_ref().is_some_and(|v| v.identity_requested) && !identity_ok {
                    let d = if !VICTIM_PURPOSES.contains(&ex.purpose) {
                        Denial::VictimIdentityPurpose
                    } else if !facts.as_ref().is_some_and(VictimFacts::consent_recorded) {
                        Denial::VictimConsentMissing
                    } else {
                        Denial::VictimIdentityNotReleased { agreement: label.clone() }
                    };
                    consider(d, &mut worst);
                    continue;
                }
                if !identity_ok {
                    // Not asked for, or not allowed: the record goes pseudonymised.
                    plan.remove.extend(redact::protected_fields(RecordKind::VictimReferral).map(str::to_string));
                }
            }
            let allow = Decision::Allow {
                agreement_id: a.id.clone(),
                agreement_version: a.version,
                plan: plan.clone(),
                onward: pb::OnwardSharing::of(g.onward_sharing).unwrap_or(pb::OnwardSharing::Forbidden),
                retention_days: a.retention.as_ref().map_or(0, |r| r.days),
            };
            // Least redaction wins; ties keep the first (agreements in stored order).
            if best.as_ref().is_none_or(|(n, _)| plan.remove.len() < *n) {
                best = Some((plan.remove.len(), allow));
            }
        }
    }
    match best {
        Some((_, d)) => d,
        None => Decision::Deny(worst),
    }
}

/// Decides a record another node sent (push, sync, query answer, relay).
/// A receiver cannot redact bytes the originator signed, so where its own
/// decision would withhold a field the record still carries, the record is
/// refused, naming the field, instead of being stored whole.
pub fn decide_received(agreements: &[(pb::Agreement, AgreementState)], ex: &Exchange, rec: &pb::Record) -> Decision {
    debug_assert_eq!(ex.direction, Direction::Incoming);
    let d = decide(agreements, ex);
    if let Decision::Allow { agreement_id, agreement_version, plan, .. } = &d {
        if let Some(field) = redact::carried(rec, plan).into_iter().next() {
            return Decision::Deny(Denial::WithheldFieldCarried {
                agreement: format!("{agreement_id} v{agreement_version}"),
                field,
            });
        }
    }
    d
}

/// The record kinds `peer` may sync to this node now, each with a purpose the
/// grant allows for it: every (kind, purpose) a grant names is put to
/// [`decide`] as a kind-level incoming sync, so the grant matching is the
/// engine's, not the caller's.
pub fn syncable(
    agreements: &[(pb::Agreement, AgreementState)],
    local: &str,
    peer: &str,
    at: time::OffsetDateTime,
) -> Vec<(RecordKind, Purpose)> {
    let mut out: Vec<(RecordKind, Purpose)> = Vec::new();
    let candidates = agreements
        .iter()
        .flat_map(|(a, _)| &a.grants)
        .flat_map(|g| g.record_kinds.iter().flat_map(move |k| g.purposes.iter().map(move |p| (*k, *p))));
    for (k, p) in candidates {
        let (Some(kind), Some(purpose)) = (RecordKind::of(k), Purpose::of(p)) else { continue };
        if out.iter().any(|(x, _)| *x == kind) {
            continue;
        }
        let ex = Exchange {
            local: local.to_string(),
            peer: peer.to_string(),
            direction: Direction::Incoming,
            operation: Operation::Sync,
            kind,
            purpose,
            handling: HandlingCode::Clear,
            at,
            victim: None,
            into_kind: None,
            onward: None,
        };
        if decide(agreements, &ex).is_allowed() {
            out.push((kind, purpose));
        }
    }
    out
}

/// Onward consent between a record's originator (`local`) and a holder:
/// only while an agreement naming both is active and in its window. After
/// a suspension or revocation the originator neither takes nor grants
/// consent requests.
pub fn decide_consent(
    agreements: &[(pb::Agreement, AgreementState)],
    local: &str,
    holder: &str,
    at: time::OffsetDateTime,
) -> Result<(), Denial> {
    let mut worst = Denial::NoAgreement;
    for (a, state) in agreements {
        if !(a.parties.iter().any(|p| p == local) && a.parties.iter().any(|p| p == holder)) {
            continue;
        }
        let Err(d) = in_force(a, *state, at) else { return Ok(()) };
        if d > worst {
            worst = d;
        }
    }
    Err(worst)
}

/// A later step of a request (acknowledge, answer, decline, withdraw) needs
/// what its submit needed: the request's own agreement still active, still
/// defining the type for the purpose. Checked when a step is made, sent and
/// received, so nothing moves under a suspended or revoked agreement.
pub fn decide_request_step(
    agreements: &[(pb::Agreement, AgreementState)],
    local: &str,
    peer: &str,
    header: &pb::RequestHeader,
    at: time::OffsetDateTime,
) -> Result<(), Denial> {
    let purpose = header.purpose();
    let only = Some(header.agreement_id.as_str());
    decide_request(agreements, local, peer, &header.request_type, purpose, Some(&header.to_node), at, only).map(|_| ())
}

/// The SOP request type and purpose that govern a victim-case step:
/// identification and assistance under `victim_identification`, the return
/// and what follows it under `victim_return`.
pub fn case_step_terms(to: pb::CaseStage) -> (&'static str, Purpose) {
    match to {
        pb::CaseStage::ReturnPlanned
        | pb::CaseStage::InTransit
        | pb::CaseStage::Returned
        | pb::CaseStage::ReintegrationFollowUp => ("victim_return", Purpose::ReturnAndReintegration),
        _ => ("victim_identification", Purpose::VictimIdentification),
    }
}

/// A victim-case step to `to` between this node and `peer`: an active
/// agreement whose SOP defines the step's request type for its purpose.
pub fn decide_case_step(
    agreements: &[(pb::Agreement, AgreementState)],
    local: &str,
    peer: &str,
    to: pb::CaseStage,
    at: time::OffsetDateTime,
) -> Result<(), Denial> {
    let (request_type, purpose) = case_step_terms(to);
    // A case step is not addressed to one side: both act on the case.
    let (a, _) = decide_request(agreements, local, peer, request_type, purpose, None, at, None)?;
    // A case is about a person: only parties whose role may receive a
    // victim referral take part in one (never an NHRI or a secretariat).
    for party in [local, peer] {
        let role = crate::actor::role_of(&a, party);
        if !crate::actor::may_receive(role, RecordKind::VictimReferral) {
            return Err(Denial::RoleMayNotReceive { agreement: label(&a), party: party.into(), role });
        }
    }
    Ok(())
}

/// A formal request under an agreement's SOP: the agreement must be active
/// for both parties and define the request type for the purpose, and, when
/// the SOP says who answers that type, `addressee` (the node the request is
/// to) must be one of them. Returns the agreement and the terms that set the
/// request's deadlines.
#[allow(clippy::too_many_arguments)]
pub fn decide_request(
    agreements: &[(pb::Agreement, AgreementState)],
    local: &str,
    peer: &str,
    request_type: &str,
    purpose: Purpose,
    addressee: Option<&str>,
    at: time::OffsetDateTime,
    only: Option<&str>,
) -> Result<(pb::Agreement, pb::RequestTypeTerms), Denial> {
    if purpose == Purpose::Unspecified {
        return Err(Denial::InvalidExchange("purpose is required".into()));
    }
    let mut worst = Denial::NoAgreement;
    for (a, state) in agreements {
        if only.is_some_and(|id| id != a.id)
            || !a.parties.iter().any(|p| p == local)
            || !a.parties.iter().any(|p| p == peer)
        {
            continue;
        }
        let d = match in_force(a, *state, at) {
            Err(d) => d,
            Ok(()) => match a.sop.iter().flat_map(|s| &s.request_types).find(|t| t.name == request_type) {
                None => Denial::RequestTypeNotDefined { agreement: label(a), request_type: request_type.into() },
                Some(t) if !t.purposes.is_empty() && !t.purposes.contains(&(purpose as i32)) => {
                    Denial::RequestPurposeNotAllowed { agreement: label(a), request_type: request_type.into() }
                }
                Some(t)
                    if addressee
                        .is_some_and(|to| !t.answered_by.is_empty() && !t.answered_by.iter().any(|p| p == to)) =>
                {
                    Denial::RequestNotForAddressee {
                        agreement: label(a),
                        request_type: request_type.into(),
                        addressee: addressee.unwrap_or_default().into(),
                    }
                }
                Some(t) => return Ok((a.clone(), t.clone())),
            },
        };
        if d > worst {
            worst = d;
        }
    }
    Err(worst)
}

pub mod hub;
pub mod import;

#[cfg(test)]
mod tests;
